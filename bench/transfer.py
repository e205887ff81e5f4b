#!/usr/bin/env python3
"""`leaderd transfer` on real agents: how long a planned hand-over takes.

From the repository root, with the venv's Python:

    python bench/transfer.py [--nodes 5] [--trials 20] [--profile local]

Starts N `leaderd run` agents on 127.0.0.1 (agent/localcluster.py: signed
claims, a keyring, preempt after 300 ms) and opens a `watch` stream on
every one. Each trial asks the leader, over its socket, to hand the role
to the next node in a round (node-1, node-2, ..., so both higher and lower
ranks are named), and measures:

- reply: the request sent to the reply received (`leaderd transfer`'s own
  time, without starting a Python process): the signed hand-over, the
  successor's signed claim coming back to the old leader, the API round trip;
- all follow: the request sent to the moment the last of the N agents'
  watch streams reported the successor as leader at the new term;
- agent: the `elapsed_ms` the old leader reports (hand-over to claim back).

No hooks are configured (hooks.pre_demote would add its own time). Prints
one line per trial, then min / p50 / max. Figures, not pass/fail; times
are this machine's monotonic clock (every process runs here).
"""

import argparse
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_failover import percentile  # noqa: E402  (linear between the nearest trials)
from agent.client import Client  # noqa: E402
from agent.localcluster import Cluster  # noqa: E402


class Watcher:
    """A thread on one agent's watch stream: when it first reported each (leader, term)."""

    def __init__(self, socket_path):
        self.seen = {}
        self.cond = threading.Condition()
        self.client = Client(socket_path, timeout=None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.client.watch():
                if event.get("leader") is not None and event.get("term") is not None:
                    key = (event["leader"], event["term"])
                    with self.cond:
                        self.seen.setdefault(key, time.monotonic())
                        self.cond.notify_all()
        except Exception:  # the agent stopped: the bench is over
            pass

    def wait(self, key, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while key not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[key]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--profile", default="local")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="leaderd-transfer-") as root:
        with Cluster(os.path.join(root, "c"), args.nodes, profile=args.profile) as cluster:
            cluster.start_all()
            info = cluster.wait_leader(leader=0, timeout=30)
            watchers = [Watcher(cluster.socket_path(i)) for i in range(args.nodes)]
            for w in watchers:
                if w.wait(("node-0", info["term"]), 10) is None:
                    raise SystemExit("a watch stream did not report the first leader")
            leader = 0
            term = info["term"]
            print("%d agents, profile %s, leader node-0 at term %d" % (args.nodes, args.profile, term))
            for trial in range(args.trials):
                successor = (leader + 1) % args.nodes
                name = cluster.name(successor)
                client = Client(cluster.socket_path(leader), timeout=10)
                sent = time.monotonic()
                reply = client.transfer(name)
                replied = time.monotonic()
                if not reply["confirmed"]:
                    for i in range(args.nodes):
                        print("--- %s\n%s" % (cluster.name(i), "\n".join(cluster.log_text(i).splitlines()[-12:])))
                    raise SystemExit("trial %d: not confirmed: %r" % (trial + 1, reply))
                term = reply["term"]
                times = [w.wait((name, term), 10) for w in watchers]
                if None in times:
                    raise SystemExit("trial %d: not every agent reported %s at term %d" % (trial, name, term))
                row = ((replied - sent) * 1000, (max(times) - sent) * 1000, reply["elapsed_ms"])
                rows.append(row)
                print("trial %2d  node-%d -> %s  term %3d  reply %6.1f ms  all follow %6.1f ms  agent %6.1f ms"
                      % (trial + 1, leader, name, term, row[0], row[1], row[2]), flush=True)
                leader = successor
    print()
    for i, what in enumerate(("reply", "all follow", "agent")):
        values = sorted(r[i] for r in rows)
        print("%-10s min %6.1f  p50 %6.1f  max %6.1f ms  (%d trials, %d agents, profile %s)"
              % (what, values[0], percentile(values, 50), values[-1], len(values), args.nodes, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
