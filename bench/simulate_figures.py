"""Runs the `leaderd simulate` matrix behind docs/BENCHMARKS.md and prints it.

Each row is one `leaderd simulate ... --json` run (the exact command is
printed with it), so every figure can be reproduced by hand. Runs in
parallel processes; prints a markdown table per group. Figures, not
pass/fail: nothing here asserts on time.

    python bench/simulate_figures.py            # the whole matrix (~25 minutes on 2 busy cores)
    python bench/simulate_figures.py --quick    # N <= 100 only (~2.5 minutes)
    python bench/simulate_figures.py --large    # N = 1000 only

It prints the commit it ran at first (with "+ changes" when the tree differs
from it): docs/BENCHMARKS.md puts it beside each table, and
tests/test_benchmarks_drift.py re-runs the small rows against the doc.
"""

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

GROUPS = [
    ("Steady state: convergence and per-node load (SWIM: load flat as N grows)",
     [["--nodes", str(n), "--scenario", "steady", "--duration", "60s"] for n in (10, 100, 1000)]
     + [["--nodes", "10", "--profile", p, "--scenario", "steady", "--duration", "60s"] for p in ("local", "wan")],
     ["nodes", "profile", "convergence_s", "msgs_per_node_s", "bytes_per_node_s", "max_datagram_bytes", "wall_s"]),
    ("Crash of a random node: detection",
     [["--nodes", str(n), "--profile", p, "--scenario", "crash-random"]
      for p in ("lan", "local") for n in (10, 100, 1000)],
     ["nodes", "profile", "detect_first_s", "detect_all_s", "false_deaths", "wall_s"]),
    ("Crash of the leader: failover",
     [["--nodes", str(n), "--profile", p, "--scenario", "crash-leader"]
      for p in ("lan", "local") for n in (10, 100, 1000)]
     + [["--nodes", str(n), "--profile", "wan", "--scenario", "crash-leader"] for n in (10, 100)],
     ["nodes", "profile", "detect_all_s", "failover_s", "leader_changes", "wall_s"]),
    ("Graceful leave of the leader (resign): failover",
     [["--nodes", str(n), "--scenario", "resign"] for n in (10, 100, 1000)],
     ["nodes", "profile", "failover_s", "wall_s"]),
    ("10 % loss on every link, 10 virtual minutes (Lifeguard: no false deaths)",
     [["--nodes", "50", "--loss", "0.1", "--scenario", "steady", "--duration", "10m", "--seed", str(s)]
      for s in (1, 2, 3)],
     ["nodes", "seed", "false_suspicions", "false_deaths", "leader_changes", "wall_s"]),
    ("Partition into halves, then heal",
     [["--nodes", "20", "--scenario", "partition-heal", "--seed", str(s)] for s in (1, 2, 3)],
     ["nodes", "seed", "heal_s", "heal_leader_s", "leader_changes", "term_regressions", "wall_s"]),
    ("Election scenarios",
     [["--nodes", "20", "--scenario", s] for s in ("preempt", "flap", "forged", "pause", "restart")]
     + [["--nodes", "20", "--scenario", "preempt", "--no-preempt"]],
     ["scenario", "failover_s", "preempt_s", "rejoin_s", "leader_changes", "forged_rejected",
      "false_deaths", "leader_at_end", "wall_s"]),
]


def commit():
    """The short commit of the tree, "+ changes" added when it differs from it; "unknown" outside git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agent"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + changes in agent/" if dirty else "")


def run(args):
    cmd = [sys.executable, "-m", "agent.cli", "simulate", "--json"] + args
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return args, {"error": out.stderr.strip().splitlines()[-1:]}
    return args, json.loads(out.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="skip the N = 1000 runs")
    sizes.add_argument("--large", action="store_true", help="only the N = 1000 runs")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    opts = parser.parse_args(argv)
    print("commit %s" % commit(), flush=True)
    with ThreadPoolExecutor(opts.jobs) as pool:
        for title, runs, columns in GROUPS:
            if opts.quick:
                runs = [r for r in runs if "1000" not in r]
            if opts.large:
                runs = [r for r in runs if "1000" in r]
                if not runs:
                    continue
            print("\n### %s\n" % title)
            print("| command | " + " | ".join(columns) + " |")
            print("|---|" + "---|" * len(columns))
            for args, result in pool.map(run, runs):
                cells = ["`leaderd simulate %s --json`" % " ".join(args)]
                for c in columns:
                    value = result.get(c, result.get("extras", {}).get(c) if isinstance(result.get("extras"), dict) else None)
                    cells.append("error: %s" % result["error"] if "error" in result and c == columns[0]
                                 else "-" if value is None else str(value))
                print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
