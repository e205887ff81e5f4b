"""Crash failover as the boards see it, in a mixed cluster: p50 over trials.

    python bench/board_failover.py [--trials 10] [--profile local]

Three `leaderd run` agents (agent/localcluster.py; priorities 200, 190,
180, signed claims, an authenticated keyring) and two boards (the unix port,
as tests/test_board_harness.py runs it: frozen at 128k when built): board-f
(priority 0) and board-c (priority 5, a signing key). Each trial kill -9s the
current leader and measures the time from the kill until *both* boards
report the new leader (their leader_changed JSON lines, stamped when each
line arrives here), then restarts the killed agent and waits until it
leads again (preempt) and everyone follows it before the next trial: every
trial is node-0 crashing and node-1 taking over.

Prints one line per trial, then p50 / p90 / max and a JSON summary. Never
pass/fail on time.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from agent import keys as keyfiles  # noqa: E402
from agent.localcluster import Cluster, free_udp_port, wait_for  # noqa: E402
from test_board_harness import BoardProcess, board_config, board_runtime  # noqa: E402

TIMEOUT_S = 30


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def make_boards(cluster, runtime, workdir, profile):
    key_path, _ = cluster.add_key("board-c")
    with open(key_path) as handle:
        import base64
        seed = base64.b64decode(handle.read().strip())
    boards = []
    for name, priority, key in (("board-f", 0, None), ("board-c", 5, seed)):
        cfg = board_config(name, free_udp_port(), cluster.cluster_name,
                           [cluster.address(i) for i in range(cluster.n)],
                           keyring=keyfiles.load_keyring(cluster.keyring_path),
                           trusted_keys=keyfiles.load_trusted_dir(cluster.trusted_dir),
                           priority=priority, signing_key=key, profile=profile,
                           preempt_delay=cluster.preempt_delay)
        path = os.path.join(workdir, name)
        os.makedirs(path, exist_ok=True)
        boards.append(BoardProcess(runtime, cfg, path))
    return boards


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--profile", default="local", choices=("local", "lan", "wan"))
    parser.add_argument("--runtime", choices=("frozen", "mpy", "source"), help="how boards run (default: best)")
    args = parser.parse_args(argv)
    runtime = board_runtime(args.runtime)
    if runtime is None:
        print("no micropython interpreter", file=sys.stderr)
        return 2
    print("board runtime: %r, profile %s" % (runtime, args.profile), flush=True)
    # The cluster's temporary directory holds the boards' as well: closing the cluster removes all.
    cluster = Cluster(None, 3, profile=args.profile, prefix="leaderd-board-failover-")
    try:
        boards = make_boards(cluster, runtime, cluster.root, args.profile)
    except BaseException:
        cluster.close()
        raise

    def describe():
        return "\n".join([b.describe() for b in boards] + [cluster.logs()])

    def agreed():
        # node-0 (the highest priority) leads again once back: every trial is the same crash.
        info = cluster.wait_leader(leader=0, timeout=TIMEOUT_S)
        expected = (info["leader"], info["term"])
        wait_for(lambda: all(b.leader() == expected for b in boards), TIMEOUT_S,
                 "the boards to follow %s term %d" % expected, describe)
        return info

    results = []
    with cluster:
        try:
            cluster.start_all()
            for board in boards:
                board.start()
            for board in boards:
                cluster.wait_member(range(cluster.n), board.name, "alive", timeout=TIMEOUT_S)
            for trial in range(args.trials):
                info = agreed()
                victim = info["leader_index"]
                marks = [b.mark() for b in boards]
                killed_at = time.monotonic()
                cluster.kill(victim)

                def seen():
                    times = []
                    for board, mark in zip(boards, marks):
                        hit = board.first_time(lambda r: r.get("event") == "leader_changed" and r["leader"]
                                               not in (None, info["leader"]) and r["term"] > info["term"], mark)
                        if hit is None:
                            return None
                        times.append(hit[0])
                    return times
                times = wait_for(seen, TIMEOUT_S, "both boards to follow a new leader", describe)
                per_board = [round((t - killed_at) * 1000.0) for t in times]
                failover_ms = max(per_board)
                results.append(failover_ms)
                new = boards[0].leader()
                print("trial %2d: killed %s (term %d) -> %s (term %d): boards followed after %s ms -> %d ms" % (
                    trial + 1, info["leader"], info["term"], new[0], new[1], per_board, failover_ms), flush=True)
                cluster.start(victim)
            agreed()
        finally:
            for board in boards:
                board.kill()
    summary = {"trials": len(results), "profile": args.profile, "runtime": runtime.kind,
               "heapsize": runtime.heapsize, "failover_ms": results,
               "p50_ms": percentile(results, 0.5), "p90_ms": percentile(results, 0.9),
               "max_ms": max(results) if results else None}
    print("failover seen by both boards: p50 %s ms, p90 %s ms, max %s ms over %d trials" % (
        summary["p50_ms"], summary["p90_ms"], summary["max_ms"], len(results)))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
