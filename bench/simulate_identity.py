"""Proves a refactor changed no protocol behaviour: `leaderd simulate --json` before and after.

Runs the standard scenarios at N = 100 with fixed seeds and keeps every
figure but wall_s (real time, the only one that may differ). Save the
figures on the old code, then compare on the new:

    git stash / checkout the old commit
    python bench/simulate_identity.py --save /tmp/before.json
    git checkout the new commit
    python bench/simulate_identity.py --compare /tmp/before.json

--compare prints each differing figure and exits 1 when any differs, 0
when every run is identical. Runs in parallel processes (one per core).
"""

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

SCENARIOS = ("steady", "crash-leader", "crash-random", "partition-heal", "pause", "restart", "resign")
SEEDS = (1, 2)
NODES = 100


def runs():
    """[(run name, leaderd simulate arguments)] of the standard matrix."""
    out = []
    for scenario in SCENARIOS:
        for seed in SEEDS:
            args = ["--nodes", str(NODES), "--scenario", scenario, "--seed", str(seed), "--json"]
            out.append(("%s seed %d" % (scenario, seed), args))
    return out


def simulate(args):
    """The figures of one run, wall_s removed."""
    command = [sys.executable, "-m", "agent.cli", "simulate"] + args
    result = subprocess.run(command, capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    figures = json.loads(result.stdout)
    figures.pop("wall_s", None)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="FILE", help="write the figures of this checkout to FILE")
    group.add_argument("--compare", metavar="FILE", help="compare this checkout's figures with FILE")
    args = parser.parse_args(argv)
    matrix = runs()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        figures = dict(zip([name for name, _ in matrix], pool.map(simulate, [a for _, a in matrix])))
    if args.save:
        with open(args.save, "w") as handle:
            json.dump(figures, handle, indent=1, sort_keys=True)
        print("saved %d runs to %s" % (len(figures), args.save))
        return 0
    with open(args.compare) as handle:
        before = json.load(handle)
    differ = 0
    for name, _ in matrix:
        old, new = before.get(name), figures[name]
        if old is None:
            print("%s: not in %s" % (name, args.compare))
            differ += 1
            continue
        keys = sorted(set(old) | set(new))
        changed = [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]
        for key, a, b in changed:
            print("%s: %s %r -> %r" % (name, key, a, b))
        differ += bool(changed)
        if not changed:
            print("%s: identical (%d figures)" % (name, len(keys)))
    print("%d of %d runs identical" % (len(matrix) - differ, len(matrix)))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
