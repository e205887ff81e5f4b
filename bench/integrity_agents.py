#!/usr/bin/env python3
"""Election integrity of real `leaderd run` processes on 127.0.0.1: forged Dead, partition heals.

From the repository root, with the venv's Python:

    python bench/integrity_agents.py                  # both parts (~5 min)
    python bench/integrity_agents.py --part forged    # (i) only, no root needed
    python bench/integrity_agents.py --part partition --cycles 20

(i) Forged Dead. Three agents (signed claims, authenticated keyring) follow
node-0 at term T. An attacker holding the cluster key but no trusted signing
key sends each follower one authenticated datagram as "mallory" carrying
Dead(name=node-0, incarnation=2^32-1, by=the other follower); the bench
watches every agent's `watch --json` stream for --window seconds and
reports the leader changes (leader_changed events whose new differs from
old), the `elected` events, the term growth (highest term any agent reports
at the end, minus T), each follower's dropped_incarnation delta, and
whether node-0 is alive in every table at the end. The same again with a
Dead at node-0's current incarnation (which followers take as their own
suspicion, and node-0 refutes).

(ii) Partition and heal (root and the `nft` command). Five agents follow
node-0. Each cycle: cut {node-0, node-1} | {node-2, node-3, node-4} by
dropping UDP between their ports on the loopback input hook (an nftables
table of its own, deleted at the heal and at exit); wait until the bigger
side agrees on node-2 at a higher term; heal; time until all five report
the same leader at a term above both sides' (heal to one leader); wait
until all see all alive and let --after seconds pass; then the cycle's
figures: leader changes per node during the cut (cut to heal) and during
the heal (heal to the end of the cycle), by side; term growth (term at the
end minus term before the cut); heal to the last leadership event
(leader_changed, elected or demoted anywhere: when the heal really
settled, even if a flap passed through agreement first). Every agent's
`watch --json` stream is recorded for the whole run. Between cycles the
cluster settles (all alive, node-0 leading) and runs --quiet seconds.

Clusters come from agent/localcluster.py (profile `local` unless
--profile says otherwise). Prints figures and, last, one JSON summary;
asserts on nothing.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (os.path.join(ROOT, "tests"), ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from agent import keys as keyfiles  # noqa: E402
from agent.core import wire  # noqa: E402
from agent.core.auth import Keyring  # noqa: E402
from agent.localcluster import Cluster, WaitTimeout  # noqa: E402
from partition_harness import (LoopbackPartition, WatchRecorder, leader_changes,  # noqa: E402
                               nft_unavailable_reason)

TOP_INCARNATION = 0xFFFFFFFF
# Seconds a cluster may take to start, converge and follow node-0.
SETTLE_TIMEOUT_S = 60
# Seconds a side may take to elect its own leader, and a heal to one leader.
CUT_TIMEOUT_S = 60
HEAL_TIMEOUT_S = 90
SIDE_KEPT = (0, 1)
SIDE_OTHER = (2, 3, 4)


def spread(values):
    """{"min", "median", "max"} of values (None for an empty list)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def fmt_spread(s, unit=""):
    if s["min"] is None:
        return "-"
    return "%s / %s / %s%s" % (_num(s["min"]), _num(s["median"]), _num(s["max"]), unit)


def _num(v):
    return "%d" % v if float(v).is_integer() else "%.2f" % v


def settle(c, quiet_s=0.0):
    """Cluster.settle(), then quiet_s seconds more (node-0 still leading); its leader reply."""
    info = c.settle(timeout=SETTLE_TIMEOUT_S)
    if quiet_s:
        time.sleep(quiet_s)  # lets the join's gossip drain before a measurement
        info = c.wait_leader(leader=0, timeout=SETTLE_TIMEOUT_S)
    return info


def start_recorders(c):
    recorders = {}
    for i in range(c.n):
        recorders[i] = WatchRecorder(c.socket_path(i), c.name(i))
        recorders[i].start()
    return recorders


def stop_recorders(recorders):
    for recorder in recorders.values():
        recorder.stop()


# --- (i) forged Dead ------------------------------------------------------------


def forge(c, sender, messages):
    """One datagram sealed with the cluster key, from `sender` (no signing key needed)."""
    codec = wire.Codec(c.cluster_name, sender, Keyring(keyfiles.load_keyring(c.keyring_path)))
    return codec.seal([wire.encode_message(m) for m in messages])


def send_to(c, i, data):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, ("127.0.0.1", c.port(i)))


def forged_dead_run(c, label, incarnation_of, window_s):
    """One forged-Dead measurement on a settled 3-node cluster; a dict of figures."""
    info = settle(c, quiet_s=1.0)
    leader, term = info["leader"], info["term"]
    followers = [i for i in range(c.n) if c.name(i) != leader]
    dropped_before = {i: c.client(i).status()["stats"].get("dropped_incarnation", 0) for i in followers}
    recorders = start_recorders(c)
    sent_at = time.monotonic()
    try:
        datagrams = []
        for i in followers:
            member = c.members(i)[leader]
            by = c.name(next(f for f in followers if f != i))
            datagrams.append((i, forge(c, "mallory", [wire.Dead(name=leader, incarnation=incarnation_of(member),
                                                                  by=by)])))
        for i, data in datagrams:  # back to back: the first receiver's news must not overtake the next
            send_to(c, i, data)
        time.sleep(window_s)  # the observation window; the figures come from what the agents report
    finally:
        stop_recorders(recorders)
    replies = {}
    for i in range(c.n):
        try:
            replies[c.name(i)] = c.client(i).leader()
        except Exception as exc:  # a figure, not a verdict: report what could not be read
            replies[c.name(i)] = {"leader": None, "term": None, "error": str(exc)}
    changes = {c.name(i): len(leader_changes(r.events())) for i, r in recorders.items()}
    elected = {c.name(i): sum(1 for _, e in r.events() if e.get("event") == "elected") for i, r in recorders.items()}
    suspected = {c.name(i): sum(1 for _, e in r.events() if e.get("event") == "member_suspected"
                                and e.get("name") == leader) for i, r in recorders.items()}
    terms = [r["term"] for r in replies.values() if r.get("term") is not None]
    last_change = None
    for r in recorders.values():
        for at, e in r.events():
            if e.get("event") == "leader_changed":
                last_change = max(last_change or 0.0, at - sent_at)
    alive = None
    try:
        c.wait_member(range(c.n), leader, "alive", timeout=10)
        alive = True
    except WaitTimeout:
        alive = False
    dropped = {}
    for i in followers:
        try:
            dropped[c.name(i)] = c.client(i).status()["stats"].get("dropped_incarnation", 0) - dropped_before[i]
        except Exception:
            dropped[c.name(i)] = None
    return {
        "scenario": label, "window_s": window_s, "leader_before": leader, "term_before": term,
        "leaders_after": sorted({r["leader"] or "(none)" for r in replies.values()}),
        "term_after_max": max(terms) if terms else None,
        "term_growth": (max(terms) - term) if terms else None,
        "leader_changes_total": sum(changes.values()), "leader_changes": changes,
        "elected_total": sum(elected.values()),
        "last_leader_change_s": None if last_change is None else round(last_change, 3),
        "leader_suspected": suspected, "dropped_incarnation_delta": dropped,
        "leader_alive_everywhere_at_end": alive,
    }


def run_forged(args, work):
    results = []
    with Cluster(os.path.join(work, "forged"), 3, profile=args.profile) as c:
        settle(c)
        for label, incarnation_of in (("top incarnation (2^32-1)", lambda m: TOP_INCARNATION),
                                      ("current incarnation", lambda m: m["incarnation"])):
            try:
                result = forged_dead_run(c, label, incarnation_of, args.window)
            except WaitTimeout as exc:
                result = {"scenario": label, "error": str(exc).splitlines()[0]}
            results.append(result)
            print_forged(result)
    return results


def print_forged(r):
    print("(i) forged Dead at the %s, 3 agents, %s s window" % (r["scenario"], r.get("window_s", "-")))
    if "error" in r:
        print("    could not measure: %s" % r["error"])
        return
    rows = [
        ("leader before", "%s, term %d" % (r["leader_before"], r["term_before"])),
        ("leaders after", ", ".join(r["leaders_after"])),
        ("term growth", "%s (to %s)" % (r["term_growth"], r["term_after_max"])),
        ("leader changes", "%d (%s)" % (r["leader_changes_total"],
                                        ", ".join("%s %d" % kv for kv in sorted(r["leader_changes"].items())))),
        ("elected events", str(r["elected_total"])),
        ("last change after", "-" if r["last_leader_change_s"] is None else "%.3f s" % r["last_leader_change_s"]),
        ("leader suspected", ", ".join("%s %d" % kv for kv in sorted(r["leader_suspected"].items()))),
        ("dropped_incarnation", ", ".join("%s +%s" % kv for kv in sorted(r["dropped_incarnation_delta"].items()))),
        ("leader alive at end", "yes" if r["leader_alive_everywhere_at_end"] else "NO"),
    ]
    for label, value in rows:
        print("    %-20s %s" % (label, value))


# --- (ii) partition and heal -----------------------------------------------------------


def one_leader(c, min_term, timeout):
    """The first (leader, term) all five agree on with a term above min_term, and when (monotonic)."""
    info = c.wait_leader(min_term=min_term, timeout=timeout)
    return info, time.monotonic()


def partition_cycle(c, recorders, number, args):
    start = settle(c, quiet_s=args.quiet)
    ports = [[c.port(i) for i in SIDE_KEPT], [c.port(i) for i in SIDE_OTHER]]
    with LoopbackPartition(ports) as cut:
        cut_at = time.monotonic()
        cut.cut()
        other = c.wait_leader(observers=SIDE_OTHER, leader=2, min_term=start["term"], timeout=CUT_TIMEOUT_S)
        other_at = time.monotonic()
        kept = c.wait_leader(observers=SIDE_KEPT, timeout=CUT_TIMEOUT_S)
        dropped = cut.dropped_packets()
        cut.heal()
        heal_at = time.monotonic()
    final, final_at = one_leader(c, max(kept["term"], other["term"]), HEAL_TIMEOUT_S)
    c.wait_converged(SETTLE_TIMEOUT_S)
    time.sleep(args.after)  # a window for late flaps; the figures are what the agents reported
    end = c.wait_leader(timeout=SETTLE_TIMEOUT_S)
    end_at = time.monotonic()
    cut_changes = {i: len(leader_changes(recorders[i].events(), cut_at, heal_at)) for i in range(c.n)}
    heal_changes = {i: len(leader_changes(recorders[i].events(), heal_at, end_at)) for i in range(c.n)}
    # The last leadership event anywhere (a change of leader or of term):
    # when the heal really settled, even if a flap passed through agreement.
    last = None
    for recorder in recorders.values():
        for at, event in recorder.events():
            if heal_at <= at <= end_at and event.get("event") in ("leader_changed", "elected", "demoted"):
                last = at if last is None else max(last, at)
    return {
        "cycle": number, "term_before": start["term"],
        "kept_side": {"leader": kept["leader"], "term": kept["term"]},
        "other_side": {"leader": other["leader"], "term": other["term"]},
        "cut_to_other_leader_s": round(other_at - cut_at, 3), "dropped_packets": dropped,
        "heal_to_one_leader_s": round(final_at - heal_at, 3), "leader_at_heal": final["leader"],
        "heal_to_last_event_s": None if last is None else round(last - heal_at, 3),
        "term_at_heal": final["term"], "leader_at_end": end["leader"], "term_at_end": end["term"],
        "term_growth": end["term"] - start["term"],
        "cut_changes": {c.name(i): cut_changes[i] for i in range(c.n)},
        "heal_changes": {c.name(i): heal_changes[i] for i in range(c.n)},
    }


def run_partition(args, work):
    reason = nft_unavailable_reason()
    if reason is not None:
        print("(ii) partition and heal: not run: %s" % reason)
        return {"skipped": reason}
    cycles = []
    with Cluster(os.path.join(work, "partition"), 5, profile=args.profile) as c:
        settle(c)
        recorders = start_recorders(c)
        try:
            print("(ii) partition %s | %s and heal, 5 agents, %d cycles" % (
                "{" + ", ".join(c.name(i) for i in SIDE_KEPT) + "}",
                "{" + ", ".join(c.name(i) for i in SIDE_OTHER) + "}", args.cycles))
            print("    %5s %9s %9s %9s %11s %11s %12s %12s %s" % (
                "cycle", "cut->L2", "heal->1L", "->last", "terms A|B", "term after", "heal chg A", "heal chg B",
                "cut chg B"))
            for number in range(1, args.cycles + 1):
                try:
                    row = partition_cycle(c, recorders, number, args)
                except WaitTimeout as exc:
                    row = {"cycle": number, "error": str(exc).splitlines()[0]}
                    print("    %5d could not measure: %s" % (number, row["error"]))
                    cycles.append(row)
                    continue
                cycles.append(row)
                print("    %5d %8.2fs %8.2fs %8s %5d|%-5d %5d (+%d) %12s %12s %s" % (
                    number, row["cut_to_other_leader_s"], row["heal_to_one_leader_s"],
                    "-" if row["heal_to_last_event_s"] is None else "%.2fs" % row["heal_to_last_event_s"],
                    row["kept_side"]["term"], row["other_side"]["term"], row["term_at_end"], row["term_growth"],
                    ",".join(str(row["heal_changes"][c.name(i)]) for i in SIDE_KEPT),
                    ",".join(str(row["heal_changes"][c.name(i)]) for i in SIDE_OTHER),
                    ",".join(str(row["cut_changes"][c.name(i)]) for i in SIDE_OTHER)))
                if row["leader_at_end"] != "node-0":
                    print("          leader at the end: %s" % row["leader_at_end"])
        finally:
            stop_recorders(recorders)
    done = [r for r in cycles if "error" not in r]
    names_kept = ["node-%d" % i for i in SIDE_KEPT]
    names_other = ["node-%d" % i for i in SIDE_OTHER]
    summary = {
        "cycles": len(cycles), "measured": len(done),
        "heal_changes_kept_side_per_node": spread([r["heal_changes"][n] for r in done for n in names_kept]),
        "heal_changes_other_side_per_node": spread([r["heal_changes"][n] for r in done for n in names_other]),
        "heal_changes_kept_side_per_cycle": spread([sum(r["heal_changes"][n] for n in names_kept) for r in done]),
        "heal_changes_other_side_per_cycle": spread([sum(r["heal_changes"][n] for n in names_other) for r in done]),
        "cut_changes_kept_side_per_node": spread([r["cut_changes"][n] for r in done for n in names_kept]),
        "cut_changes_other_side_per_node": spread([r["cut_changes"][n] for r in done for n in names_other]),
        "term_growth_per_cycle": spread([r["term_growth"] for r in done]),
        "heal_to_one_leader_s": spread([r["heal_to_one_leader_s"] for r in done]),
        "heal_to_last_event_s": spread([r["heal_to_last_event_s"] for r in done]),
        "cut_to_other_leader_s": spread([r["cut_to_other_leader_s"] for r in done]),
        "final_leader_node_0": sum(1 for r in done if r["leader_at_end"] == "node-0"),
        "final_term_above_both_sides": sum(1 for r in done if r["term_at_end"] > max(
            r["kept_side"]["term"], r["other_side"]["term"])),
    }
    print("    min / median / max over %d cycles:" % len(done))
    rows = [
        ("changes at heal, kept side (per node)", fmt_spread(summary["heal_changes_kept_side_per_node"])),
        ("changes at heal, other side (per node)", fmt_spread(summary["heal_changes_other_side_per_node"])),
        ("changes at heal, kept side (per cycle)", fmt_spread(summary["heal_changes_kept_side_per_cycle"])),
        ("changes at heal, other side (per cycle)", fmt_spread(summary["heal_changes_other_side_per_cycle"])),
        ("changes during cut, kept side (per node)", fmt_spread(summary["cut_changes_kept_side_per_node"])),
        ("changes during cut, other side (per node)", fmt_spread(summary["cut_changes_other_side_per_node"])),
        ("term growth per cycle", fmt_spread(summary["term_growth_per_cycle"])),
        ("cut to other side's leader", fmt_spread(summary["cut_to_other_leader_s"], " s")),
        ("heal to one leader", fmt_spread(summary["heal_to_one_leader_s"], " s")),
        ("heal to last leadership event", fmt_spread(summary["heal_to_last_event_s"], " s")),
        ("final leader node-0", "%d of %d" % (summary["final_leader_node_0"], len(done))),
        ("final term above both sides", "%d of %d" % (summary["final_term_above_both_sides"], len(done))),
    ]
    for label, value in rows:
        print("    %-42s %s" % (label, value))
    return {"summary": summary, "cycles": cycles}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Election integrity of real agents on 127.0.0.1: (i) a forged Dead about the leader "
                    "at the top incarnation, (ii) partition/heal cycles of 5 agents (root and nft). "
                    "Prints figures and a JSON summary; asserts on nothing.",
        epilog="(ii) needs root and the nft command (Debian: apt-get install nftables); without them it "
               "is reported as not run.")
    parser.add_argument("--part", choices=("all", "forged", "partition"), default="all",
                        help="which measurements to run (default: all)")
    parser.add_argument("--cycles", type=int, default=10, metavar="N",
                        help="partition/heal cycles (default: 10)")
    parser.add_argument("--window", type=float, default=10.0, metavar="S",
                        help="seconds to watch after a forged Dead (default: 10)")
    parser.add_argument("--after", type=float, default=3.0, metavar="S",
                        help="seconds a healed cluster is watched after all see all alive (default: 3)")
    parser.add_argument("--quiet", type=float, default=2.0, metavar="S",
                        help="seconds a settled cluster runs before the next cut (default: 2)")
    parser.add_argument("--profile", choices=("local", "lan", "wan"), default="local",
                        help="gossip profile of every agent (default: local)")
    parser.add_argument("--keep", action="store_true", help="keep the agents' directories and logs")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles: must be at least 1")

    work = tempfile.mkdtemp(prefix="leaderd-integrity-")
    started = time.monotonic()
    report = {"profile": args.profile, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        if args.part in ("all", "forged"):
            report["forged_dead"] = run_forged(args, work)
        if args.part in ("all", "partition"):
            report["partition_heal"] = run_partition(args, work)
    finally:
        report["wall_s"] = round(time.monotonic() - started, 1)
        if args.keep:
            print("agents' directories kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("wall time %.1f s" % report["wall_s"])
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
