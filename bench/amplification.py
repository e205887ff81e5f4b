"""Reflection and amplification: what forged and replayed datagrams get back from one node.

Builds one core Node (agent.core.node.Node, profile lan) that knows N members
(default 1000: a cluster's worth of state, all of their Alives still pending
as gossip, which is when a reply could carry the most), then, on a fresh copy
for each attack, feeds it the attacker's datagrams and runs its timers for a
while, and adds up the bytes it sends to the addresses the attack names: the
spoofed source (the victim of a reflection) and any address written inside
the datagrams (a PingReq target, a forged member). Prints, per attack, bytes
in, bytes out and their ratio, then the largest ratio (docs/PROTOCOL.md,
"Reflection and amplification", says it must be at most 1).

The attacker may hold the cluster key ("key") or not ("no key"), and
spoofs any source address. "Recorded" datagrams are ones a real member sent
(here, built as it would send them), replayed unchanged: the key is not
needed to replay, and the session and seq inside are under the tag.

    python bench/amplification.py [--nodes N] [--repeat K]

Figures, not pass/fail: the exit status is 0 either way.
"""

import argparse
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent.core import profile as profiles  # noqa: E402
from agent.core import wire  # noqa: E402
from agent.core.node import Node  # noqa: E402

KEY = b"leaderd-bench-amplification-key!"
HOME = ("10.0.0.1", 7946)
VICTIM = ("192.0.2.7", 7946)       # the reflection's target: the spoofed source
VICTIM_2 = ("198.51.100.9", 7946)  # an address written inside a datagram
FEEDER = ("10.0.0.2", 7946)


class Rng:
    """random.Random behind the one call the core makes (getrandbits)."""

    def __init__(self, seed):
        self._random = random.Random(seed)

    def getrandbits(self, n):
        return self._random.getrandbits(n)


def member_name(i):
    return "node-%04d" % i


def member_address(i):
    return ("10.1.%d.%d" % (i // 250, i % 250 + 1), 7946)


MEMBER = member_address(1)


def codec(keyed, sender):
    from agent.core.auth import Keyring
    return wire.Codec("default", sender, Keyring([KEY]) if keyed else None)


def seal(keyed, sender, messages):
    return codec(keyed, sender).seal([wire.encode_message(m) for m in messages])


def own_record(name, address):
    return wire.Record(name=name, incarnation=0, address=address, priority=100, eligible=True, tags=None,
                       state=wire.STATE_ALIVE)


def sync_page(keyed, sender, address, session):
    """A one-record page, reply wanted: what a joiner sends (and a member's shortest page)."""
    return seal(keyed, sender, [wire.Sync(session=session, reply_wanted=True, join=False, page=0, pages=1,
                                          records=[own_record(sender, address)])])


def build(count, keyed):
    """A node at HOME knowing `count` - 1 members (their Alives pending), member 1 proven."""
    prof = profiles.lan()
    node = Node(name=member_name(0), address=HOME, profile=prof, rng=Rng(count), now=0,
                keyring=[KEY] if keyed else None)
    for start in range(1, count, 10):
        alives = [wire.Alive(name=member_name(i), incarnation=0, address=member_address(i), priority=100,
                             eligible=True, tags=None) for i in range(start, min(count, start + 10))]
        node.receive_datagram(seal(keyed, "feeder", alives), FEEDER, 0)
    # Member 1 syncs with the node as members do: the node pings it first,
    # it answers, it gets the node's state. Its address is now proven.
    node.receive_datagram(sync_page(keyed, member_name(1), MEMBER, 1), MEMBER, 0)
    checker = codec(keyed, "checker")
    for data, addr in node.datagrams_to_send(0):
        for m in checker.open(data)[1]:
            if m.type_code == wire.T_PING and addr == MEMBER:
                node.receive_datagram(seal(keyed, member_name(1), [wire.Ack(seq=m.seq)]), MEMBER, 0)
    state_bytes = sum(len(data) for data, addr in node.datagrams_to_send(0) if addr == MEMBER)
    while node.next_event() is not None:
        pass
    return node, state_bytes


def run_attack(node, datagrams, start, watched, settle_ms, spacing_ms=1):
    """Feeds (data, source) pairs spacing_ms apart from `start` (timers run between), then runs
    timers for settle_ms.

    Returns (bytes in, bytes out to the watched addresses).
    """
    bytes_in = 0
    bytes_out = 0
    now = start
    for data, source in datagrams:
        while spacing_ms > 1:
            t = node.get_timer()
            if t is None or t >= now:
                break
            node.handle_timer(t)
            for out, addr in node.datagrams_to_send(t):
                if addr in watched:
                    bytes_out += len(out)
        bytes_in += len(data)
        node.receive_datagram(data, source, now)
        for out, addr in node.datagrams_to_send(now):
            if addr in watched:
                bytes_out += len(out)
        now += spacing_ms
    end = now + settle_ms
    while True:
        t = node.get_timer()
        if t is None or t > end:
            break
        now = max(now, t)
        node.handle_timer(now)
        for out, addr in node.datagrams_to_send(now):
            if addr in watched:
                bytes_out += len(out)
        while node.next_event() is not None:
            pass
    return bytes_in, bytes_out


def attacks(repeat):
    """(label, keyed, make(node) -> (datagrams, watched addresses), settle ms)."""
    def spoofed_sync(keyed):
        def make(node):
            return [(sync_page(keyed, "joiner", VICTIM, 1000 + k), VICTIM) for k in range(repeat)], [VICTIM]
        return make

    def replayed_page(source):
        def make(node):
            # The member's recorded pages: `repeat` sessions of them.
            return [(sync_page(True, member_name(1), MEMBER, 2 + k), source) for k in range(repeat)], [source]
        return make

    def pings(keyed):
        def make(node):
            # As a member would probe it (its name, the node's name): small
            # enough to leave the Ack little room for the gossip pending.
            return [(seal(keyed, member_name(999), [wire.Ping(seq=k, target=member_name(0))]), VICTIM)
                    for k in range(repeat)], [VICTIM]
        return make

    def ping_reqs(source):
        def make(node):
            return [(seal(True, member_name(1), [wire.PingReq(seq=5000 + k, target="x", address=VICTIM_2)]), source)
                    for k in range(repeat)], [source, VICTIM_2]
        return make

    def alive_stranger(node):
        return [(seal(True, "forged", [wire.Alive(name="forged", incarnation=0, address=VICTIM, priority=100,
                                                    eligible=True, tags=None)]), VICTIM)], [VICTIM]

    def replays_once_per_interval(node):
        # Sustained: one recorded page each probe interval, from the member's address.
        prof = profiles.lan()
        return [(sync_page(True, member_name(1), MEMBER, 2 + k), MEMBER) for k in range(10)], [MEMBER], \
            prof.probe_interval_ms

    def alive_of_the_dead(node):
        # A member the node holds dead "speaks": the node tells it so (a Dead).
        name = member_name(2)
        node.receive_datagram(seal(True, "feeder", [wire.Dead(name=name, incarnation=0, by="feeder")]), FEEDER, 0)
        node.datagrams_to_send(0)
        return [(seal(True, name, [wire.Alive(name=name, incarnation=0, address=member_address(2), priority=100,
                                              eligible=True, tags=None)]), VICTIM)], [VICTIM]

    probe_window = 2000  # relays answer, owed replies wait, a few probes go out
    bounded_by_size = [
        ("Sync (reply wanted), spoofed source, no key", False, spoofed_sync(False), probe_window, {}),
        ("Sync (reply wanted), spoofed source, key", True, spoofed_sync(True), probe_window, {}),
        ("recorded Sync page replayed, spoofed source", True, replayed_page(VICTIM), probe_window, {}),
        # Right after the member's own sync got its reply (the recording).
        ("recorded Sync pages replayed in one probe interval, member's own address", True, replayed_page(MEMBER),
         0, {"start": 10}),
        ("Ping, spoofed source, no key", False, pings(False), probe_window, {}),
        ("Ping, spoofed source, key", True, pings(True), probe_window, {}),
        ("PingReq, spoofed requester, key", True, ping_reqs(VICTIM), probe_window, {}),
        ("recorded PingReq replayed, member's own address", True, ping_reqs(MEMBER), probe_window, {}),
        ("Alive from a member held dead, spoofed source, key", True, alive_of_the_dead, probe_window, {}),
        ("Alive of a new member at the spoofed source, key (60 s of timers)", True, alive_stranger, 60000, {}),
    ]
    bounded_by_rate = [
        ("recorded Sync page replayed once a probe interval, member's own address", True,
         replays_once_per_interval, 0, {}),
        ("Alive of a new member at the spoofed source, key, a 3-member node (60 s)", True, alive_stranger, 60000,
         {"nodes": 3}),
    ]
    return bounded_by_size, bounded_by_rate


def measure(rows, count, out):
    prof = profiles.lan()
    for label, keyed, make, settle, options in rows:
        node, _ = build(options.get("nodes", count), keyed)
        # Unless said otherwise, the build's rate limits are long past.
        start = options.get("start", 10 * prof.probe_interval_ms)
        made = make(node)
        spacing = made[2] if len(made) > 2 else 1
        bytes_in, bytes_out = run_attack(node, made[0], start, made[1], settle, spacing)
        refused = sum(v for k, v in node.stats.items() if k.startswith("refused_"))
        out.append((label, bytes_in, bytes_out, bytes_out / bytes_in if bytes_in else 0.0, refused))


def table(rows):
    width = max(len(r[0]) for r in rows)
    print("%-*s  %9s  %9s  %7s  %7s" % (width, "attack", "bytes in", "bytes out", "ratio", "refused"))
    for label, bytes_in, bytes_out, ratio, refused in rows:
        print("%-*s  %9d  %9d  %7.3f  %7d" % (width, label, bytes_in, bytes_out, ratio, refused))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="members the node knows, itself included")
    parser.add_argument("--repeat", type=int, default=100, help="datagrams per attack (distinct sessions, seqs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    prof = profiles.lan()
    print("amplification: one node knowing %d members, profile lan (probe interval %d ms), %d datagrams an attack"
          % (args.nodes, prof.probe_interval_ms, args.repeat))
    by_size, by_rate = attacks(args.repeat)
    sized = []
    measure(by_size, args.nodes, sized)
    print()
    print("Replies and everything else sent to the addresses the attack names, bounded by size:")
    table(sized)
    worst = max(sized, key=lambda r: r[3])
    print()
    print("largest ratio: %.3f (%s)" % (worst[3], worst[0]))
    rated = []
    measure(by_rate, args.nodes, rated)
    print()
    print("Bounded by rate, not size (docs/PROTOCOL.md, \"What remains\"): a member's own address answers our")
    print("challenges itself, so a replayed page from it gets one sync reply per probe interval; an address in a")
    print("forged Alive gets one gossip round's datagram and bare pings, never our state:")
    table(rated)
    _, state_no_key = build(args.nodes, False)
    _, state_key = build(args.nodes, True)
    print()
    print("the node's state, as one sync reply: %d bytes (no key), %d bytes (key); a %d-byte page asked for it"
          % (state_no_key, state_key, len(sync_page(True, member_name(1), MEMBER, 2))))
    print("wall: %.1f s" % (time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
