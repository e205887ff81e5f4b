#!/usr/bin/env python3
"""Failover of real `leaderd run` processes on 127.0.0.1: kill the leader, time the new one.

From the repository root, with the venv's Python:

    python bench/daemon_failover.py                      # the whole matrix (~15 min)
    python bench/daemon_failover.py --nodes 5 --profile local --trials 20
    python bench/daemon_failover.py --planned            # SIGTERM only
    python bench/daemon_failover.py --crash              # SIGKILL only

One trial: every node runs and follows node-0 (the highest priority);
one poller thread per surviving node asks its API socket `leader` every
--poll-ms (Client(path).leader()); the leader gets SIGKILL (crash) or
SIGTERM (planned: it resigns, then exits); the figure is the time from just
before the signal to the moment every survivor reports the same new
(leader, term) - the latest of the survivors' first replies naming it, each
survivor having named it in every reply since. "first" is when the earliest
survivor named it. After a trial the killed node is started again and the
bench waits until all nodes see each other alive and follow node-0 again
(preempt, preempt_delay 300 ms); it lets the settled cluster run --quiet
seconds (default 2, so the restart's gossip has drained), then the next
trial starts.

`--observe watch` replaces the pollers by one `watch` stream per survivor
(the agent pushes each leader change): no polling load and no poll lag, a
reference for how much of a figure is the pollers' own.

Clusters come from agent/localcluster.py: signed claims (Ed25519 key per
node, trust list), an authenticated keyring, profile lan or local.
Percentiles interpolate linearly between the two nearest trials (with 10
trials, p95 lies between the 9th and the 10th). Prints figures; asserts on
nothing.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent.client import Client, ClientError  # noqa: E402
from agent.localcluster import Cluster, WaitTimeout, wait_for  # noqa: E402

# Seconds a trial may take before it counts as failed (no agreement).
TRIAL_TIMEOUT_S = 30
# Seconds the cluster may take to settle (start, converge, follow node-0).
SETTLE_TIMEOUT_S = 60


def percentile(values, q):
    """The q-th percentile (0..100) of values, interpolating linearly between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class Poller(threading.Thread):
    """Asks one agent `leader` every poll_s; keeps (value, since) of its latest answer.

    value is (leader, term); since is the monotonic time of the first reply
    carrying that value in the current unbroken run of such replies. Both
    are published as one tuple, so a reader never sees half an update.
    """

    def __init__(self, path, poll_s, stop):
        threading.Thread.__init__(self, daemon=True)
        self.client = Client(path, timeout=2.0)
        self.poll_s = poll_s
        self.stop = stop
        self.state = (None, None)   # ((leader, term), since)
        self.replies = 0
        self.errors = 0

    def run(self):
        while not self.stop.is_set():
            try:
                reply = self.client.leader()
            except ClientError:
                self.errors += 1
            else:
                now = time.monotonic()
                value = (reply["leader"], reply["term"])
                self.replies += 1
                if value != self.state[0]:
                    self.state = (value, now)
            self.stop.wait(self.poll_s)


class Watcher(threading.Thread):
    """Like Poller, but fed by the agent's `watch` stream (pushed events, no polling load).

    A reference for Poller's figures: `--observe watch`. Reads the stream
    with a short socket timeout so it can stop when told.
    """

    def __init__(self, path, poll_s, stop):
        threading.Thread.__init__(self, daemon=True)
        self.path = path
        self.stop = stop
        self.state = (None, None)
        self.replies = 0
        self.errors = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2.0)
        self.sock.connect(path)
        self.sock.sendall(b'{"cmd": "watch"}\n')

    def run(self):
        buffer = b""
        self.sock.settimeout(0.05)
        try:
            while not self.stop.is_set():
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                now = time.monotonic()
                if not chunk:
                    self.errors += 1
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    event = json.loads(line)
                    if event.get("event") in ("leader", "leader_changed"):
                        self.replies += 1
                        value = (event["leader"], event["term"])
                        if value != self.state[0]:
                            self.state = (value, now)
        finally:
            self.sock.close()


OBSERVERS = {"poll": Poller, "watch": Watcher}


def one_trial(cluster, sig, poll_s, quiet_s, observer=Poller):
    """Kills the leader with sig; returns (all_s, first_s, new_leader, term) or raises WaitTimeout."""
    # A quiet spell after settling: the restart's join and claim gossip has
    # drained, so the kill hits a steady cluster (part of the setup, not the figure).
    time.sleep(quiet_s)
    info = cluster.wait_leader(leader=0, timeout=SETTLE_TIMEOUT_S)
    old_name, old_term = info["leader"], info["term"]
    victim = info["leader_index"]
    survivors = [i for i in cluster.live() if i != victim]
    stop = threading.Event()
    pollers = [observer(cluster.socket_path(i), poll_s, stop) for i in survivors]
    for poller in pollers:
        poller.start()
    try:
        wait_for(lambda: all(p.state[0] is not None for p in pollers), 10, "every poller's first answer",
                 interval=0.002)
        t0 = time.monotonic()
        cluster.send_signal(victim, sig)
        deadline = t0 + TRIAL_TIMEOUT_S
        while True:
            states = [p.state for p in pollers]
            values = {value for value, _ in states}
            if len(values) == 1:
                leader, term = next(iter(values))
                if leader is not None and leader != old_name and term > old_term:
                    all_at = max(since for _, since in states)
                    first_at = min(since for _, since in states)
                    return all_at - t0, first_at - t0, leader, term
            if time.monotonic() > deadline:
                raise WaitTimeout("no agreement on a new leader %d s after the signal: %s"
                                     % (TRIAL_TIMEOUT_S, sorted(values, key=str)))
            time.sleep(0.002)
    finally:
        stop.set()
        for poller in pollers:
            poller.join()
        cluster.wait_exit(victim, timeout=15)


def run_cell(kind, profile, n, trials, poll_s, quiet_s, keep=False, observer=Poller):
    """Runs `trials` trials of one (kind, profile, n); returns a result dict."""
    sig = signal.SIGKILL if kind == "crash" else signal.SIGTERM
    result = {"kind": kind, "profile": profile, "n": n, "all": [], "first": [], "failures": 0,
              "leaders": {}}
    cluster = Cluster(None, n, profile=profile, cluster_name="bench-" + os.urandom(3).hex(),
                      prefix="leaderd-bench-", keep=keep)
    try:
        started = time.monotonic()
        cluster.settle(timeout=SETTLE_TIMEOUT_S)
        print("  %s %s N=%d: cluster settled in %.1f s" % (kind, profile, n, time.monotonic() - started),
              flush=True)
        for trial in range(trials):
            try:
                all_s, first_s, leader, term = one_trial(cluster, sig, poll_s, quiet_s, observer)
            except WaitTimeout as exc:
                result["failures"] += 1
                print("  trial %d: FAILED: %s" % (trial + 1, str(exc).splitlines()[0]), flush=True)
            else:
                result["all"].append(all_s)
                result["first"].append(first_s)
                result["leaders"][leader] = result["leaders"].get(leader, 0) + 1
                print("  trial %2d: all agree on %s (term %d) after %6.3f s (first %6.3f s)"
                      % (trial + 1, leader, term, all_s, first_s), flush=True)
            cluster.settle(timeout=SETTLE_TIMEOUT_S)
    except WaitTimeout as exc:
        print("  cell aborted: %s" % str(exc).splitlines()[0], flush=True)
        cluster.keep = True
    finally:
        cluster.close()
        if cluster.keep:
            print("  logs kept in %s" % cluster.root)
    return result


def loadavg():
    """The 1, 5 and 15 minute load averages, as text (other work on the machine shows here)."""
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def fmt(value):
    return "    -" if value is None else "%5.3f" % value


def print_table(results):
    print()
    print("| kind    | profile |  N | trials | p50 all (s) | p95 all (s) | max all (s) | p50 first (s) | failed |")
    print("|---------|---------|---:|-------:|------------:|------------:|------------:|--------------:|-------:|")
    for r in results:
        values = r["all"]
        print("| %-7s | %-7s | %2d | %6d | %11s | %11s | %11s | %13s | %6d |" % (
            r["kind"], r["profile"], r["n"], len(values), fmt(percentile(values, 50)),
            fmt(percentile(values, 95)), fmt(max(values) if values else None),
            fmt(percentile(r["first"], 50)), r["failures"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 20], help="cluster sizes (default 5 20)")
    parser.add_argument("--profile", nargs="+", default=["lan", "local"], choices=["lan", "wan", "local"],
                        help="gossip profiles (default lan local)")
    parser.add_argument("--trials", type=int, default=10, help="trials per cell (default 10)")
    kinds = parser.add_mutually_exclusive_group()
    kinds.add_argument("--planned", action="store_true", help="only planned failover (SIGTERM)")
    kinds.add_argument("--crash", action="store_true", help="only crash failover (SIGKILL)")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="API poll period per survivor (default 10)")
    parser.add_argument("--observe", choices=sorted(OBSERVERS), default="poll",
                        help="poll: Client.leader() every --poll-ms (default); watch: the agents' "
                             "watch streams (no polling load, a reference)")
    parser.add_argument("--quiet", type=float, default=2.0,
                        help="seconds the settled cluster runs before each kill (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep each cluster's directory and logs")
    args = parser.parse_args(argv)
    kinds = ["planned"] if args.planned else ["crash"] if args.crash else ["crash", "planned"]
    print("leaderd failover on loopback: %s, %d CPUs, Python %s; observing with %s%s; load average %s" % (
        os.uname().release, os.cpu_count(), sys.version.split()[0], args.observe,
        " every %g ms" % args.poll_ms if args.observe == "poll" else "", loadavg()), flush=True)
    results = []
    for kind in kinds:
        for profile in args.profile:
            for n in args.nodes:
                print("%s failover, profile %s, N = %d, %d trials" % (kind, profile, n, args.trials), flush=True)
                results.append(run_cell(kind, profile, n, args.trials, args.poll_ms / 1000.0,
                                        args.quiet, args.keep,
                                        OBSERVERS[args.observe]))
    print_table(results)
    print()
    print("load average at the end: %s" % loadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
