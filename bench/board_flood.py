"""A board's time to follow the real leader during a one-per-second forged-claim flood.

    python bench/board_flood.py [--trials 3] [--profile local] [--batch 17]

Three `leaderd run` agents (agent/localcluster.py; priorities 200, 190,
180, signed claims, an authenticated keyring) and board-f (micropython/main.py
on the unix port as tests/test_board_harness.py runs it, 128k heap; priority
0: it only follows, and checks every claim it follows). A forger that holds
the cluster key (it seals datagrams the board opens) but no trusted signing
key sends board-f one datagram a second, from the moment the board's process
starts, cycling through:

  (a) a claim under the current leader's name (as the agents report it) at a
      higher term, with 64 garbage bytes for a signature;
  (b) a claim under another trusted name (node-1; node-2 while node-1 leads)
      at a higher term and priority 255 (so it outranks the leader and the
      board must check it), signed by a key nobody trusts;
  (c) one datagram holding --batch (default 17) garbage-signed claims under
      the live trusted names at priority 255, each at its own higher term.

Every forged term is 1,000 + a running count above the real term, so a
forged claim the board followed is recognisable in its leader_changed lines.
(c) at 17 claims of 6-letter names is larger than the profile's mtu_bytes:
the script prints its size; the board then drops it as oversized before
reading a claim (--batch 15 is the most that fits).

Each trial runs two phases, a baseline (no forger) and a flood, in
alternating order. A phase: start board-f; (1) time from its start until its
leader_changed line names the real leader at the real term; wait until the
agents list it alive, then --settle seconds (default 10) more, flood or
quiet; kill -9 the leader; (2) time from the kill until the
board's leader_changed line names a new leader at a higher term (checked
against the agents' own answer); (3) the board's {"heap": ...} lines (every
second) give its verification count, memory errors and peak; its
out-of-memory log lines are counted, and so is every leader_changed line at a
forged (name, term) (must be 0). Then the forger stops, board-f leaves
(SIGINT) and the killed agent restarts and leads again before the next phase.
Times are stamped when each board line arrives here. The counts of forged
datagrams sent before the follow and between the kill and the new follow say
how many could have got in the way (at one a second, few: the unix port
follows in well under a second). --level debug adds each check's duration.

Prints one line per trial, then medians and a JSON summary. Never pass/fail
on time (a wait that runs out is recorded as null).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent import keys as keyfiles  # noqa: E402
from agent.core import profile as profiles  # noqa: E402
from agent.core import wire  # noqa: E402
from agent.core.auth import Keyring  # noqa: E402
from agent.localcluster import Cluster, free_udp_port  # noqa: E402
from test_board_harness import BoardProcess, BoardTimeout, board_config, board_runtime  # noqa: E402

# Setup waits (the cluster agreeing, a restarted agent leading again).
SETUP_TIMEOUT_S = 60
# Forged terms start this far above the real one: never a term the cluster reaches in a run.
FORGED_TERM_OFFSET = 1000
FORGED_PRIORITY = 255
BOARD = "board-f"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Forger(threading.Thread):
    """Sends the board one forged datagram every `interval` seconds (a, b, c, a, ...) until stopped.

    Holds the cluster keyring (its datagrams pass the board's tag check) and
    an Ed25519 key that no one trusts. Learns the current leader, terms and
    incarnations from the agents (what it would learn by listening to gossip).
    """

    def __init__(self, cluster, address, batch, interval):
        super().__init__(daemon=True)
        self.cluster = cluster
        host, port = address.rsplit(":", 1)
        self.target = (host, int(port))
        self.batch = batch
        self.interval = interval
        self.keyring = Keyring(keyfiles.load_keyring(cluster.keyring_path))
        self.untrusted = Ed25519PrivateKey.generate()
        self.codecs = {}
        self.names = [cluster.name(i) for i in range(cluster.n)]
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.forged = set()         # (name, term) of every forged claim sent
        self.sent = {"a": 0, "b": 0, "c": 0}
        self.sent_at = []           # time.monotonic() of each datagram sent
        self.bytes = {}             # kind -> size of its last datagram
        self.errors = 0
        self.seq = 0
        self.leader = None
        self.term = 0
        self.incarnations = {}
        self.live = set(self.names)
        self.start_at = None

    def codec(self, sender):
        if sender not in self.codecs:
            self.codecs[sender] = wire.Codec(self.cluster.cluster_name, sender, self.keyring)
        return self.codecs[sender]

    def learn(self):
        """The leader, its term and everyone's incarnation, from the first agent that answers."""
        for i in range(self.cluster.n):
            if not self.cluster.running(i):
                continue
            try:
                client = self.cluster.client(i, timeout=0.5)
                reply = client.leader()
                members = client.members()["members"]
            except Exception:
                continue
            if reply.get("leader"):
                self.leader = reply["leader"]
            self.term = max(self.term, reply.get("term") or 0)
            for m in members:
                self.incarnations[m["name"]] = m["incarnation"]
            self.live = set(m["name"] for m in members if m["state"] in ("alive", "suspect")
                            and m["name"] in self.names)
            return True
        return False

    def next_term(self):
        self.seq += 1
        return self.term + FORGED_TERM_OFFSET + self.seq

    def claim(self, name, priority, signer=None):
        term = self.next_term()
        incarnation = self.incarnations.get(name, 0)
        if signer is None:
            signature = os.urandom(64)
        else:
            signature = signer.sign(wire.claim_signed_bytes(self.codec(name).cluster_tag, term, name, priority,
                                                            incarnation, 0))
        with self.lock:
            self.forged.add((name, term))
        return wire.encode_message(wire.Claim(term=term, name=name, priority=priority, incarnation=incarnation,
                                              counter=0, signature=signature))

    def datagram(self, kind):
        leader = self.leader or self.names[0]
        if kind == "a":
            priority = self.cluster.priorities[self.cluster.index(leader)] if leader in self.names else 200
            return self.codec(leader).seal([self.claim(leader, priority)])
        if kind == "b":
            other = self.names[1] if leader != self.names[1] else self.names[2]
            return self.codec(other).seal([self.claim(other, FORGED_PRIORITY, self.untrusted)])
        names = [n for n in self.names if n in self.live] or self.names
        claims = [self.claim(names[k % len(names)], FORGED_PRIORITY) for k in range(self.batch)]
        return self.codec(leader).seal(claims)

    def sample_sizes(self):
        """{kind: bytes} of each kind of datagram, without counting them as sent."""
        saved = (self.seq, set(self.forged))
        self.learn()
        sizes = dict((kind, len(self.datagram(kind))) for kind in "abc")
        self.seq, self.forged = saved
        return sizes

    def run(self):
        kinds = "abc"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            at = self.start_at if self.start_at is not None else time.monotonic()
            k = 0
            while not self.stop_event.is_set():
                left = at - time.monotonic()
                if left > 0 and self.stop_event.wait(left):
                    break
                kind = kinds[k % 3]
                try:
                    data = self.datagram(kind)
                    sock.sendto(data, self.target)
                    self.sent[kind] += 1
                    self.sent_at.append(time.monotonic())
                    self.bytes[kind] = len(data)
                except Exception:
                    self.errors += 1
                k += 1
                at += self.interval
                # Learned after the send: the send keeps its beat.
                self.learn()
        finally:
            sock.close()

    def stop(self):
        self.stop_event.set()
        self.join(10)

    def forged_pairs(self):
        with self.lock:
            return set(self.forged)


def make_board(cluster, runtime, workdir, profile, port, level):
    cfg = board_config(BOARD, port, cluster.cluster_name, [cluster.address(i) for i in range(cluster.n)],
                       keyring=keyfiles.load_keyring(cluster.keyring_path),
                       trusted_keys=keyfiles.load_trusted_dir(cluster.trusted_dir),
                       priority=0, profile=profile, preempt_delay=cluster.preempt_delay, level=level,
                       heap_interval="1s")
    os.makedirs(workdir, exist_ok=True)
    return BoardProcess(runtime, cfg, workdir)


def wait_line(board, predicate, timeout, since=0):
    """(arrival time, record) of the first line from `since` on matching predicate, or None on timeout/exit."""
    try:
        return board.wait(lambda: board.first_time(predicate, since) or (None if board.running() else "exited"),
                          timeout, "a line")
    except BoardTimeout:
        return None


def run_phase(cluster, runtime, args, workdir, port, flood, describe_extra):
    """One phase (baseline or flood): start the board, follow, kill the leader, follow the new one."""
    info = cluster.wait_leader(leader=0, timeout=SETUP_TIMEOUT_S)
    real = {(info["leader"], info["term"])}
    board = make_board(cluster, runtime, workdir, args.profile, port, args.level)
    forger = Forger(cluster, board.address, args.batch, args.interval) if flood else None
    out = {"flood": flood, "leader": info["leader"], "term": info["term"], "start_follow_ms": None,
           "failover_ms": None, "new_leader": None, "new_term": None, "board_new": None}

    def describe():
        return board.describe() + "\n" + describe_extra()

    try:
        if forger is not None:
            forger.learn()
        started_at = time.monotonic()
        board.start()
        if forger is not None:
            forger.start_at = time.monotonic()   # the first datagram as the process starts
            forger.start()
        hit = wait_line(board, lambda r: r.get("event") == "leader_changed"
                        and (r.get("leader"), r.get("term")) == (info["leader"], info["term"]), args.timeout)
        if hit is None or hit == "exited":
            print("  [%s] board-f did not follow %s term %d within %ss%s" % (
                "flood" if flood else "baseline", info["leader"], info["term"], args.timeout,
                " (it exited)" if hit == "exited" else ""), file=sys.stderr, flush=True)
            print(describe()[-4000:], file=sys.stderr, flush=True)
        else:
            out["start_follow_ms"] = round((hit[0] - started_at) * 1000.0)
            if forger is not None:
                out["forged_before_follow"] = sum(1 for t in list(forger.sent_at) if t < hit[0])
            cluster.wait_member(range(cluster.n), BOARD, "alive", timeout=SETUP_TIMEOUT_S)
            # The flood (or the quiet) goes on for a while before the crash.
            settle_until = time.monotonic() + args.settle
            while time.monotonic() < settle_until and board.running():
                time.sleep(0.1)
            out["verifications_before_kill"] = (([r["heap"]["verifications"] for r in board.records("heap")]
                                                 or [None])[-1])
            victim = info["leader_index"]
            mark = board.mark()
            killed_at = time.monotonic()
            cluster.kill(victim)
            hit = wait_line(board, lambda r: r.get("event") == "leader_changed" and r.get("leader")
                            not in (None, info["leader"]) and r.get("term", 0) > info["term"], args.timeout, mark)
            survivors = [i for i in range(cluster.n) if i != victim]
            new = cluster.wait_leader(observers=survivors, min_term=info["term"], timeout=SETUP_TIMEOUT_S)
            real.add((new["leader"], new["term"]))
            out["new_leader"], out["new_term"] = new["leader"], new["term"]
            if hit is None or hit == "exited":
                print("  [%s] board-f did not follow a new leader within %ss of the kill" % (
                    "flood" if flood else "baseline", args.timeout), file=sys.stderr, flush=True)
                print(describe()[-4000:], file=sys.stderr, flush=True)
            else:
                out["failover_ms"] = round((hit[0] - killed_at) * 1000.0)
                out["board_new"] = [hit[1]["leader"], hit[1]["term"]]
                if forger is not None:
                    out["forged_during_failover"] = sum(1 for t in list(forger.sent_at) if killed_at <= t < hit[0])
            out["victim"] = victim
        if forger is not None:
            forger.stop()
        # One more heap line: the counts include every check the flood started.
        mark = board.mark()
        wait_line(board, lambda r: "heap" in r, 5, mark)
        out["phase_s"] = round(time.monotonic() - started_at, 1)
    finally:
        if forger is not None and forger.is_alive():
            forger.stop()
        if board.running():
            board.send_signal(signal.SIGINT)
            try:
                board.wait_exit(10)
            except Exception:
                board.kill()

    heaps = [r["heap"] for r in board.records("heap")]
    last = heaps[-1] if heaps else {}
    oom_lines = [r["log"] for r in board.records("log") if "out of memory" in r["log"]]
    changes = [(r["leader"], r["term"]) for r in board.records(event="leader_changed") if r["leader"] is not None]
    forged = forger.forged_pairs() if forger is not None else set()
    check_ms = [int(r["log"].split()[1]) for r in board.records("log") if r["log"].startswith("verifications:")]
    out.update({
        "verifications": last.get("verifications"),
        "check_ms_median": median(check_ms),
        "check_ms_max": max(check_ms) if check_ms else None,
        "memory_errors": max([h.get("memory_errors", 0) for h in heaps] or [0]),
        "oom_lines": len(oom_lines),
        "peak_heap": last.get("peak"),
        "claim_rejected_lines": len(board.records(event="claim_rejected")),
        "oversized_drop_lines": len([r for r in board.records("log") if r["log"].endswith(": oversized")
                                     or ": oversized (" in r["log"]]),
        "followed_forged": [list(p) for p in changes if p in forged],
        "followed_unexpected": [list(p) for p in changes if p not in real and p not in forged],
        "exit": board.proc.returncode if board.proc is not None else None,
    })
    if forger is not None:
        out["forged_datagrams"] = dict(forger.sent)
        out["forged_claims"] = len(forged)
        out["forger_errors"] = forger.errors
    if oom_lines:
        out["oom_first"] = oom_lines[0]
    return out


def fmt_ms(value):
    return "timeout" if value is None else "%d ms" % value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog="See the module docstring for what each phase does.")
    parser.add_argument("--trials", type=int, default=3, help="trials, each a baseline and a flood phase (default 3)")
    parser.add_argument("--profile", default="local", choices=("local", "lan", "wan"))
    parser.add_argument("--runtime", choices=("frozen", "mpy", "source"), help="how the board runs (default: best)")
    parser.add_argument("--batch", type=int, default=17, help="claims in the (c) datagram (default 17)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between forged datagrams (default 1)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds between the board following and the kill, flood or quiet (default 10)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a measured wait may take (default 60)")
    parser.add_argument("--level", default="info", choices=("debug", "info", "warning", "error"),
                        help="the board's log.level (default info; debug adds each check's duration)")
    args = parser.parse_args(argv)
    runtime = board_runtime(args.runtime)
    if runtime is None:
        print("no micropython interpreter", file=sys.stderr)
        return 2
    load_start = os.getloadavg()
    print("board runtime: %r, profile %s, %d CPUs, load average %.2f %.2f %.2f" % (
        runtime, args.profile, os.cpu_count() or 0, *load_start), flush=True)
    # The cluster's temporary directory holds the boards' as well: closing the cluster removes all.
    cluster = Cluster(None, 3, profile=args.profile, prefix="leaderd-board-flood-")
    workdir = cluster.root
    mtu = profiles.make(args.profile).mtu_bytes
    port = free_udp_port()

    records = []
    sizes = None
    with cluster:
        cluster.start_all()
        cluster.wait_leader(leader=0, timeout=SETUP_TIMEOUT_S)
        sizes = Forger(cluster, "127.0.0.1:1", args.batch, args.interval).sample_sizes()
        print("forged datagrams: (a) %d B, (b) %d B, (c) %d claims %d B; mtu_bytes %d%s" % (
            sizes["a"], sizes["b"], args.batch, sizes["c"], mtu,
            "" if sizes["c"] <= mtu else " -> (c) is OVERSIZED: the board drops it unread"), flush=True)
        for trial in range(args.trials):
            order = (False, True) if trial % 2 == 0 else (True, False)
            phases = {}
            for flood in order:
                result = run_phase(cluster, runtime, args, os.path.join(workdir, "board-%d-%d" % (trial, flood)),
                                   port, flood, cluster.logs)
                phases["flood" if flood else "baseline"] = result
                # The killed agent back; it leads again (preempt) before the next phase.
                if result.get("victim") is not None and not cluster.running(result["victim"]):
                    cluster.start(result["victim"])
                elif any(not cluster.running(i) for i in range(cluster.n)):
                    cluster.start_all()
                cluster.wait_leader(leader=0, timeout=SETUP_TIMEOUT_S)
            base, fl = phases["baseline"], phases["flood"]
            records.append({"trial": trial + 1, "order": ["flood" if f else "baseline" for f in order],
                            "baseline": base, "flood": fl})
            print("trial %d (%s first): start->follow baseline %s, flood %s; failover (%s -> %s) baseline %s, "
                  "flood %s; forged datagrams before the follow %s, during the failover %s; "
                  "verifications baseline %s / flood %s (phase %ss / %ss); flood sent %s; "
                  "memory errors %s/%s, OOM lines %d/%d; followed forged: %d" % (
                      trial + 1, "baseline" if not order[0] else "flood",
                      fmt_ms(base["start_follow_ms"]), fmt_ms(fl["start_follow_ms"]),
                      fl["leader"], fl["new_leader"], fmt_ms(base["failover_ms"]), fmt_ms(fl["failover_ms"]),
                      fl.get("forged_before_follow"), fl.get("forged_during_failover"),
                      base["verifications"], fl["verifications"], base.get("phase_s"), fl.get("phase_s"),
                      fl.get("forged_datagrams"), base["memory_errors"], fl["memory_errors"],
                      base["oom_lines"], fl["oom_lines"], len(fl["followed_forged"])), flush=True)

    def col(phase, key):
        return [r[phase][key] for r in records]

    load_end = os.getloadavg()
    summary = {
        "trials": len(records), "profile": args.profile, "runtime": runtime.kind, "heapsize": runtime.heapsize,
        "interval_s": args.interval, "settle_s": args.settle, "batch": args.batch, "datagram_bytes": sizes, "mtu_bytes": mtu,
        "cpus": os.cpu_count(), "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in load_end],
        "median": {
            "start_follow_ms": {"baseline": median(col("baseline", "start_follow_ms")),
                                "flood": median(col("flood", "start_follow_ms"))},
            "failover_ms": {"baseline": median(col("baseline", "failover_ms")),
                            "flood": median(col("flood", "failover_ms"))},
            "verifications": {"baseline": median(col("baseline", "verifications")),
                              "flood": median(col("flood", "verifications"))},
        },
        "timeouts": sum(1 for r in records for p in ("baseline", "flood") for k in ("start_follow_ms", "failover_ms")
                        if r[p][k] is None),
        "memory_errors": sum(r[p]["memory_errors"] for r in records for p in ("baseline", "flood")),
        "oom_lines": sum(r[p]["oom_lines"] for r in records for p in ("baseline", "flood")),
        "followed_forged": sum(len(r[p]["followed_forged"]) for r in records for p in ("baseline", "flood")),
        "followed_unexpected": sum(len(r[p]["followed_unexpected"]) for r in records
                                   for p in ("baseline", "flood")),
        "records": records,
    }
    m = summary["median"]
    print("medians over %d trials: start->follow baseline %s, flood %s; failover baseline %s, flood %s; "
          "verifications baseline %s, flood %s" % (
              len(records), m["start_follow_ms"]["baseline"], m["start_follow_ms"]["flood"],
              m["failover_ms"]["baseline"], m["failover_ms"]["flood"],
              m["verifications"]["baseline"], m["verifications"]["flood"]))
    print("followed a forged claim: %d times; memory errors %d; OOM lines %d; load average at the end %.2f %.2f %.2f"
          % (summary["followed_forged"], summary["memory_errors"], summary["oom_lines"], *load_end))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
