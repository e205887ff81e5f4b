"""Reflection, amplification and bounded state: one Node under attack (CPython and MicroPython).

The attacker may hold the cluster key or have none, and sends from any
source address (spoofed). Each test feeds forged or replayed datagrams to a
Node and checks what it sends back, byte for byte: nothing larger than the
datagram that caused it goes to an address that has not proven it answers
(agent/core/guard.py has the rules). Plain functions and asserts: see
tests/mp_runner.py.
"""

import gc

from agent.core import guard, wire
from agent.core.auth import Keyring
from agent.core.node import Node
from core_harness import fake_check, fake_sign, key_of
from test_node import KEY_OLD, PROFILE, Net, XorShift

HOME = ("10.0.1.1", 7946)
VICTIM = ("192.0.2.7", 7946)
MEMBER = ("10.0.2.1", 7946)


def _node(address=HOME, keyring=None, **kwargs):
    return Node(name="obs", address=address, profile=PROFILE, rng=XorShift(99), now=0, keyring=keyring,
                **kwargs)


def _codec(node, sender):
    return wire.Codec("default", sender, node.codec.keyring)


def _seal(node, sender, messages):
    """A datagram from `sender` that node accepts (sealed with its key, if it has one)."""
    return _codec(node, sender).seal([wire.encode_message(m) for m in messages])


def _alive(name, address, incarnation=0, tags=None):
    return wire.Alive(name=name, incarnation=incarnation, address=address, priority=1, eligible=True, tags=tags)


def _sync(session, records=(), reply_wanted=True, join=False):
    return wire.Sync(session=session, reply_wanted=reply_wanted, join=join, page=0, pages=1, records=list(records))


def _record(name, address, state=wire.STATE_ALIVE):
    return wire.Record(name=name, incarnation=0, address=address, priority=1, eligible=True, tags=None,
                       state=state)


def _sent(node, now=0):
    """What node sends now, as [(address, size, [messages])]."""
    checker = _codec(node, "checker")
    out = []
    for data, addr in node.datagrams_to_send(now):
        out.append((addr, len(data), checker.open(data)[1]))
    return out


def _bytes_to(out, address):
    total = 0
    for addr, size, _ in out:
        if addr == address:
            total += size
    return total


def _of_type(out, type_code, address=None):
    found = []
    for addr, _, messages in out:
        if address is None or addr == address:
            for m in messages:
                if m.type_code == type_code:
                    found.append(m)
    return found


def _member_address(i):
    return ("10.%d.%d.%d" % (1 + i // 62500, (i // 250) % 250, i % 250 + 1), 7946)


def _populate(node, count, now=0):
    """Makes node know `count` members (Alives from a feeder, ten a datagram), with their gossip pending."""
    for start in range(0, count, 10):
        messages = []
        for i in range(start, min(count, start + 10)):
            messages.append(_alive("m%d" % i, _member_address(i)))
        node.receive_datagram(_seal(node, "feeder", messages), ("10.9.9.9", 7946), now)
    node.datagrams_to_send(now)


def _prove(node, address, sender, session, now):
    """Proves address the way a joiner does: a sync, the challenge Ping, its Ack; returns the reply."""
    node.receive_datagram(_seal(node, sender, [_sync(session, [_record(sender, address)])]), address, now)
    pings = _of_type(_sent(node, now), wire.T_PING, address)
    assert len(pings) == 1 and pings[0].target == sender, "no challenge for %r: %r" % (address, pings)
    node.receive_datagram(_seal(node, sender, [wire.Ack(seq=pings[0].seq)]), address, now)
    assert node.guard.known(address), "%r not proven by its Ack" % (address,)
    return _sent(node, now)


# --- Address rules ------------------------------------------------------------


def test_ip_literals_and_where_they_may_be_sent():
    # (host, allowed for a node at an ordinary address, allowed for a node on loopback)
    ordinary = (True, True)
    local = (False, True)      # loopback, unspecified: a one-machine cluster only
    never = (False, False)     # broadcast, multicast, anything not an IP literal
    cases = [
        ("10.0.0.1", ordinary), ("192.168.1.20", ordinary), ("1.2.3.4", ordinary), ("240.0.0.1", ordinary),
        ("127.0.0.1", local), ("127.8.9.10", local), ("0.0.0.0", local), ("0.1.2.3", local),
        ("255.255.255.255", never), ("224.0.0.251", never), ("239.255.255.250", never),
        ("fd00::1", ordinary), ("2001:db8::8:800:200c:417a", ordinary), ("fe80::1%eth0", ordinary),
        ("1:2:3:4:5:6:7:8", ordinary), ("1::", ordinary), ("1:2:3:4:5:6:1.2.3.4", ordinary),
        ("64:ff9b::1.2.3.4", ordinary), ("::ffff:10.0.0.1", ordinary),
        ("::1", local), ("::", local), ("0:0:0:0:0:0:0:1", local), ("::ffff:127.0.0.1", local),
        ("ff02::1", never), ("::ffff:224.0.0.1", never), ("::ffff:255.255.255.255", never),
        # Not IP literals: host names, shorthand, octal-looking, malformed.
        ("localhost", never), ("db.example.com", never), ("pi-garage.local", never), ("10.1", never),
        ("10.0.0.010", never), ("10.0.0.256", never), ("10.0.0.1.", never), ("+1.2.3.4", never), ("", never),
        ("1:2:3:4:5:6:7:8:9", never), ("1::2::3", never), ("12345::1", never), ("::g", never), (":1::", never),
        ("1:2:3:4:5:6:7::8", never), ("1:2:3:4:5:6:7:1.2.3.4", never), ("fe80::1%", never),
        ("fe80::1%a b", never), ("::ffff:1.2.3", never), (None, never), (7946, never),
    ]
    for host, expected in cases:
        got = (guard.address_allowed((host, 7946), False), guard.address_allowed((host, 7946), True))
        assert got == expected, "%r: %r, not %r" % (host, got, expected)
    for address in (("10.0.0.1", 0), ("10.0.0.1", 65536), ("10.0.0.1", "7946"), ("10.0.0.1",), None):
        assert not guard.address_allowed(address, True), address


def test_member_records_with_host_names_or_forbidden_addresses_are_not_merged():
    node = _node()
    bad = [("db.example.com", 7946), ("localhost", 7946), ("127.0.0.1", 7946), ("0.0.0.0", 7946),
           ("255.255.255.255", 7946), ("224.0.0.251", 7946), ("::1", 7946), ("10.0.0.1", 0)]
    for i in range(len(bad)):
        node.receive_datagram(_seal(node, "feeder", [_alive("bad%d" % i, bad[i])]), MEMBER, 0)
    node.receive_datagram(_seal(node, "feeder", [_sync(1, [_record("sync-bad", ("evil.example.org", 1)),
                                                           _record("sync-good", ("10.0.3.3", 7946))],
                                                       reply_wanted=False)]), MEMBER, 0)
    assert node.stats.get("refused_member_address", 0) == len(bad) + 1, node.stats
    names = [m.name for m in node.members()]
    assert names == ["obs", "sync-good"], names
    # A known member cannot be moved to a forbidden address either.
    node.receive_datagram(_seal(node, "feeder", [_alive("sync-good", ("127.0.0.1", 7946), incarnation=5)]),
                          MEMBER, 0)
    assert node.member("sync-good").address == ("10.0.3.3", 7946) and node.member("sync-good").incarnation == 0
    assert node.stats.get("refused_member_address", 0) == len(bad) + 2
    # A node whose own address is loopback (a test cluster on one machine)
    # takes loopback members; broadcast and host names still not.
    local = _node(address=("127.0.0.1", 7946))
    for name, address in (("a", ("127.0.0.2", 7001)), ("b", ("255.255.255.255", 7002)), ("c", ("localhost", 7003))):
        local.receive_datagram(_seal(local, "feeder", [_alive(name, address)]), ("127.0.0.9", 7946), 0)
    assert [m.name for m in local.members()] == ["a", "obs"], local.members()
    assert local.stats.get("refused_member_address", 0) == 2


def test_member_cap_refuses_strangers_and_keeps_updating_members():
    node = _node(max_members=8)
    _populate(node, 20)
    assert len(node.members()) == 8, "members %d (cap 8, this node included)" % len(node.members())
    assert node.stats.get("refused_member_cap", 0) == 13, node.stats
    known = [m.name for m in node.members() if m.name != "obs"][0]
    node.receive_datagram(_seal(node, "feeder", [_alive(known, ("10.0.7.7", 7946), incarnation=3)]), MEMBER, 0)
    assert node.member(known).incarnation == 3, "a member's news is still merged at the cap"
    try:
        _node(max_members=1)
    except ValueError:
        pass
    else:
        raise AssertionError("max_members=1 accepted")


# --- Sync replies ---------------------------------------------------------------


def _spoofed_sync_gets_only_a_small_ping(keyring):
    node = _node(keyring=keyring)
    _populate(node, 300)
    total_in = 0
    total_out = 0
    for session in range(20):
        # A join page (the sender's own record) gets a challenge; an empty
        # page is smaller than the challenge would be, and gets nothing.
        # (Each from another port: one address gets one answer a probe
        # interval, test_replayed_sync_pages_get_nothing_more.)
        victim = (VICTIM[0], VICTIM[1] + session)
        records = [_record("stranger", victim)] if session % 2 else []
        data = _seal(node, "stranger", [_sync(1000 + session, records)])
        node.receive_datagram(data, victim, 0)
        out = _sent(node)
        total_in += len(data)
        total_out += _bytes_to(out, victim)
        assert _bytes_to(out, victim) <= len(data), "%d bytes back for %d" % (_bytes_to(out, victim), len(data))
        assert not _of_type(out, wire.T_SYNC), "state sent to an unproven address"
        pings = _of_type(out, wire.T_PING, victim)
        if records:
            assert len(pings) == 1 and pings[0].target == "stranger", out
        else:
            assert out == [], out
    assert total_out <= total_in
    assert node.stats.get("challenges_sent", 0) == 10 and node.stats.get("refused_reply_size", 0) == 10, node.stats
    # The same node does answer an address that proves itself: the state is
    # large, so the checks above could fail.
    reply = _prove(node, MEMBER, "member", 1, 0)
    assert _bytes_to(reply, MEMBER) > 100 * len(data), "reply of %d bytes" % _bytes_to(reply, MEMBER)


def test_spoofed_sync_without_a_key_gets_no_more_bytes_than_it_carried():
    _spoofed_sync_gets_only_a_small_ping(None)


def test_spoofed_sync_with_the_key_gets_no_more_bytes_than_it_carried():
    _spoofed_sync_gets_only_a_small_ping([KEY_OLD])


def test_the_challenge_ack_releases_one_reply_and_only_from_the_challenged_address():
    node = _node(keyring=[KEY_OLD])
    _populate(node, 50)
    node.receive_datagram(_seal(node, "joiner", [_sync(7, [_record("joiner", MEMBER)])]), MEMBER, 0)
    seq = _of_type(_sent(node), wire.T_PING, MEMBER)[0].seq
    other = ("10.0.2.99", 7946)
    for ack_seq, source in ((seq + 1, MEMBER), (seq, other)):
        node.receive_datagram(_seal(node, "joiner", [wire.Ack(seq=ack_seq)]), source, 1)
        assert _sent(node, 1) == [], "an Ack with seq %d from %r released something" % (ack_seq, source)
    assert not node.guard.known(other) and not node.guard.known(MEMBER)
    node.receive_datagram(_seal(node, "joiner", [wire.Ack(seq=seq)]), MEMBER, 2)
    pages = _of_type(_sent(node, 2), wire.T_SYNC, MEMBER)
    assert pages and not pages[0].reply_wanted, pages
    assert sum(len(list(p.records)) for p in pages) == 52, "this node, 50 members and the joiner"
    node.receive_datagram(_seal(node, "joiner", [wire.Ack(seq=seq)]), MEMBER, 3)
    assert _sent(node, 3) == [], "a replayed Ack released a second reply"


def test_replayed_sync_pages_get_nothing_more():
    node = _node(keyring=[KEY_OLD])
    _populate(node, 300)
    first = _prove(node, MEMBER, "member", 1, 0)
    assert _of_type(first, wire.T_SYNC, MEMBER), "the member's own sync got no reply"
    # Recorded pages of the member's syncs (the session is under the tag:
    # a replay cannot change it), replayed from its address and from others.
    recorded = [_seal(node, "member", [_sync(s, [_record("member", MEMBER)])]) for s in range(1, 40)]
    carried = 0
    back = 0
    now = 10
    for data in recorded:
        for source in (MEMBER, VICTIM, ("198.51.100.1", 7946)):
            node.receive_datagram(data, source, now)
            out = _sent(node, now)
            carried += len(data)
            for _, size, _ in out:
                back += size
            assert _bytes_to(out, source) <= len(data), "%d bytes to %r for a replay of %d" % (
                _bytes_to(out, source), source, len(data))
            assert not _of_type(out, wire.T_SYNC), "a replay got state back"
        now += 3  # all within one probe interval of the reply at 0
    assert now < PROFILE.probe_interval_ms
    assert back <= carried, "%d bytes back for %d replayed" % (back, carried)
    assert node.stats.get("refused_sync_rate_address", 0) >= 38, node.stats
    # A probe interval later the member may sync again, once, and only with
    # a session not answered before.
    later = 10 + PROFILE.probe_interval_ms
    node.receive_datagram(recorded[0], MEMBER, later)
    assert _sent(node, later) == [], "session 1, answered before, answered again"
    node.receive_datagram(_seal(node, "member", [_sync(500)]), MEMBER, later)
    assert _of_type(_sent(node, later), wire.T_SYNC, MEMBER), "the member's next sync got no reply"


def test_sync_replies_are_capped_per_second_in_all():
    # A burst of 16 more than the live members (every member at once: a
    # whole cluster joining through one seed), then 16 a second.
    node = _node()
    _populate(node, 20)
    addresses = [("10.0.4.%d" % (i + 1), 7946) for i in range(40)]
    for i in range(len(addresses)):
        _prove(node, addresses[i], "p%d" % i, 1, i * 1000)
    assert node.table.live_count == 20 + len(addresses), "the provers are live members too"
    now = 1000000
    answered = 0
    for i in range(len(addresses)):
        node.receive_datagram(_seal(node, "p%d" % i, [_sync(2)]), addresses[i], now)
        if _of_type(_sent(node, now), wire.T_SYNC):
            answered += 1
    assert answered == len(addresses), "%d of %d members answered at once" % (answered, len(addresses))
    # Every member asking again each probe interval: once the burst is
    # spent, 16 a second (one every 62 ms) get through.
    per_round = []
    for session in range(3, 23):
        now += node.profile.probe_interval_ms
        answered = 0
        for i in range(len(addresses)):
            node.receive_datagram(_seal(node, "p%d" % i, [_sync(session)]), addresses[i], now)
            if _of_type(_sent(node, now), wire.T_SYNC):
                answered += 1
        per_round.append(answered)
    span = 10 * node.profile.probe_interval_ms  # the last 10 rounds
    last = sum(per_round[-10:])
    assert span // 62 - 1 <= last <= span // 62 + 1, "%d replies in %d ms: %r" % (last, span, per_round)
    assert node.stats.get("refused_sync_rate_global", 0) == 40 * 20 - sum(per_round), node.stats


def test_join_through_a_seed_costs_one_round_trip():
    for keyring in (None, [KEY_OLD]):
        net = Net()
        order = []
        peek = wire.Codec("default", "peek", Keyring(keyring) if keyring else None)

        def watch(src, dst, data):
            order.append((src, dst, [m.type_code for m in peek.open(data)[1]]))
            return False

        net.drop = watch
        a = net.start("a", keyring=keyring)
        b = net.start("b", seeds=["a"], keyring=keyring)
        assert net.run(2000, lambda: b.joined and net.all_see("alive")), net.describe()
        flow = [(src == b.address, types[0]) for src, dst, types in order[:4]]
        assert flow == [(True, wire.T_SYNC), (False, wire.T_PING), (True, wire.T_ACK), (False, wire.T_SYNC)], \
            "join flow %r" % (order[:4],)
        assert a.stats.get("challenges_sent", 0) >= 1 and a.guard.known(b.address), a.stats


# --- Ping and Ack -------------------------------------------------------------


def test_an_ack_to_a_stranger_is_no_larger_than_its_ping():
    for keyring in (None, [KEY_OLD]):
        node = _node(keyring=keyring)
        _populate(node, 60)  # 60 Alives pending: every datagram could carry gossip
        assert len(node.broadcasts) >= 60
        _prove(node, MEMBER, "member", 1, 0)
        for i in range(5):
            for sender, target in (("s", "*"), ("stranger", "obs")):
                ping = _seal(node, sender, [wire.Ping(seq=i, target=target)])
                node.receive_datagram(ping, VICTIM, 1)
                out = _sent(node, 1)
                assert len(_of_type(out, wire.T_ACK, VICTIM)) == 1 or out == [], out
                assert _bytes_to(out, VICTIM) <= len(ping), "ack of %d bytes for a ping of %d" % (
                    _bytes_to(out, VICTIM), len(ping))
        # Many Pings in one datagram: their Acks together still fit in it.
        many = _seal(node, "s", [wire.Ping(seq=100 + i, target="obs") for i in range(40)])
        node.receive_datagram(many, VICTIM, 2)
        out = _sent(node, 2)
        assert 0 < _bytes_to(out, VICTIM) <= len(many), (_bytes_to(out, VICTIM), len(many))
        assert node.stats.get("refused_reply_size", 0) > 0, node.stats
        # A proven address gets its Ack with gossip on it: larger than its Ping.
        ping = _seal(node, "member", [wire.Ping(seq=9, target="obs")])
        node.receive_datagram(ping, MEMBER, 3)
        assert _bytes_to(_sent(node, 3), MEMBER) > 2 * len(ping), "no gossip to a proven member"


def test_a_dead_members_datagram_gets_a_dead_no_larger_than_it():
    node = _node()
    node.receive_datagram(_seal(node, "feeder", [_alive("gone" + "x" * 50, VICTIM)]), MEMBER, 0)
    node.receive_datagram(_seal(node, "feeder", [wire.Dead(name="gone" + "x" * 50, incarnation=0, by="feeder")]),
                          MEMBER, 0)
    node.datagrams_to_send(0)
    # A small datagram "from" the dead member: the Dead we would tell it is larger.
    small = _seal(node, "gone" + "x" * 50, [wire.Nack(seq=1)])
    node.receive_datagram(small, VICTIM, 10)
    assert _sent(node, 10) == [] and node.stats.get("refused_reply_size", 0) == 1, node.stats
    bigger = _seal(node, "gone" + "x" * 50, [wire.Ping(seq=5, target="obs" + "y" * 60)])
    node.receive_datagram(bigger, VICTIM, 1000)
    out = _sent(node, 1000)
    assert _of_type(out, wire.T_DEAD, VICTIM), "a larger datagram got no Dead: %r" % (out,)
    assert _bytes_to(out, VICTIM) <= len(bigger)


# --- PingReq relays -------------------------------------------------------------


def _ping_req(node, seq, target, address, sender="member"):
    return _seal(node, sender, [wire.PingReq(seq=seq, target=target, address=address)])


def test_ping_req_to_a_host_name_or_a_local_address_is_refused():
    node = _node()
    _prove(node, MEMBER, "member", 1, 0)
    refused = [("db.example.com", 7946), ("localhost", 7946), ("127.0.0.1", 7946), ("0.0.0.0", 7946),
               ("255.255.255.255", 7946), ("224.0.0.251", 5353), ("::1", 7946), ("ff02::1", 7946),
               ("10.0.0.010", 7946), ("10.0.0.1", 0)]
    for i in range(len(refused)):
        node.receive_datagram(_ping_req(node, i, "t%d" % i, refused[i]), MEMBER, 10)
        assert _sent(node, 10) == [], "relayed to %r" % (refused[i],)
    assert node.stats.get("refused_relay_address", 0) == len(refused), node.stats
    node.receive_datagram(_ping_req(node, 99, "t", ("10.0.5.5", 7946)), MEMBER, 10)
    pings = _of_type(_sent(node, 10), wire.T_PING, ("10.0.5.5", 7946))
    assert len(pings) == 1 and pings[0].target == "t", pings
    # On a loopback node (one machine), loopback targets are fine; broadcast is not.
    local = _node(address=("127.0.0.1", 7000))
    _prove(local, ("127.0.0.2", 7001), "member", 1, 0)
    local.receive_datagram(_ping_req(local, 1, "t", ("127.0.0.3", 7002)), ("127.0.0.2", 7001), 10)
    assert _of_type(_sent(local, 10), wire.T_PING, ("127.0.0.3", 7002)), "loopback relay refused on loopback"
    local.receive_datagram(_ping_req(local, 2, "t", ("255.255.255.255", 7002)), ("127.0.0.2", 7001), 10)
    assert _sent(local, 10) == [] and local.stats.get("refused_relay_address", 0) == 1


def test_ping_req_relays_are_deduplicated_and_capped_per_requester():
    node = _node()
    _prove(node, MEMBER, "member", 1, 0)
    targets = [("10.0.6.%d" % (i + 1), 7946) for i in range(7)]
    for i in range(len(targets)):
        node.receive_datagram(_ping_req(node, 50 + i, "t%d" % i, targets[i]), MEMBER, 10)
    node.receive_datagram(_ping_req(node, 50, "t0", targets[0]), MEMBER, 10)
    out = _sent(node, 10)
    relayed = [addr for addr, _, _ in out if addr in targets]
    assert relayed == targets[:4], "relayed to %r" % (relayed,)
    assert node.stats.get("refused_relay_busy", 0) == 3 and node.stats.get("refused_relay_duplicate", 0) == 1, node.stats
    # Unanswered: a Nack each to the requester, then room for more.
    now = 10 + PROFILE.probe_timeout_ms
    node.handle_timer(now)
    nacks = _of_type(_sent(node, now), wire.T_NACK, MEMBER)
    assert sorted(n.seq for n in nacks) == [50, 51, 52, 53], nacks
    node.receive_datagram(_ping_req(node, 60, "t4", targets[4]), MEMBER, now)
    assert _of_type(_sent(node, now), wire.T_PING, targets[4])


def test_ping_req_from_a_stranger_is_challenged_before_it_is_relayed():
    node = _node()
    target = ("10.0.6.1", 7946)
    request = _ping_req(node, 77, "t", target, sender="asker")
    node.receive_datagram(request, VICTIM, 10)
    out = _sent(node, 10)
    assert _bytes_to(out, target) == 0, "relayed for an unproven requester"
    pings = _of_type(out, wire.T_PING, VICTIM)
    assert len(pings) == 1 and pings[0].target == "asker" and _bytes_to(out, VICTIM) <= len(request), out
    # The requester answers: now the relay goes out, and its Ack comes back to it.
    node.receive_datagram(_seal(node, "asker", [wire.Ack(seq=pings[0].seq)]), VICTIM, 11)
    relayed = _of_type(_sent(node, 11), wire.T_PING, target)
    assert len(relayed) == 1 and relayed[0].target == "t", relayed
    node.receive_datagram(_seal(node, "t", [wire.Ack(seq=relayed[0].seq)]), target, 12)
    acks = _of_type(_sent(node, 12), wire.T_ACK, VICTIM)
    assert [a.seq for a in acks] == [77], acks
    assert node.guard.known(target), "the relayed Ack proves the target's address"


# --- Our own syncs, and bounded state ---------------------------------------------


def test_a_forged_members_address_gets_bare_pings_and_never_our_state():
    # A member at an address that never answers (a victim's, in a forged
    # Alive): probed, gossiped to, push-pulled, suspected, buried, reprobed.
    node = _node()
    _populate(node, 30)  # gossip pending all along
    node.receive_datagram(_seal(node, "feeder", [_alive("forged", VICTIM)]), MEMBER, 0)
    node.datagrams_to_send(0)
    now = 0
    to_victim = []
    end = 2 * PROFILE.push_pull_interval_ms
    while now < end:
        now = max(now, node.get_timer())
        node.handle_timer(now)
        to_victim.extend([o for o in _sent(node, now) if o[0] == VICTIM])
    assert node.member("forged").state_name == "dead", node.member("forged")
    assert to_victim, "the forged member was never probed"
    gossip = 0
    for _, size, messages in to_victim:
        if messages[0].type_code in (wire.T_ALIVE, wire.T_SUSPECT, wire.T_DEAD) and len(messages) > 1:
            gossip += 1  # at most one gossip round's datagram (see the next test)
            continue
        assert size <= 200, "a datagram of %d bytes to an address that never answered: %r" % (size, messages)
        for m in messages:
            # Pings, PingReqs (it is a relay), the Suspect a suspect's probe
            # carries, the leader's Claim: no gossip, no state.
            assert m.type_code in (wire.T_PING, wire.T_PING_REQ, wire.T_SUSPECT, wire.T_CLAIM), m
    assert gossip <= 1, "%d gossip datagrams to an address that never answered" % gossip
    assert node.stats.get("refused_gossip_unproven", 0) > 0, node.stats
    challenges = [o for o in to_victim if o[2][0].type_code == wire.T_PING and o[2][0].target == "*"]
    assert challenges, "no challenge"


def test_gossip_to_an_unanswering_address_goes_once_then_waits_for_its_ack():
    node = _node()
    node.receive_datagram(_seal(node, "feeder", [_alive("quiet", VICTIM)]), MEMBER, 0)
    node.datagrams_to_send(0)
    rounds = []  # per gossip round to VICTIM: (has gossip, challenge seqs)
    now = 0
    while len(rounds) < 17:
        # Fresh news every round (so every round gossips), to the one member there is.
        node.receive_datagram(_seal(node, "feeder", [_alive("quiet", VICTIM, incarnation=1 + len(rounds))]),
                              MEMBER, now)
        node.datagrams_to_send(now)
        now += PROFILE.gossip_interval_ms
        node.handle_timer(now)
        out = [o for o in _sent(node, now) if o[0] == VICTIM]
        gossiped = [o for o in out if o[2][0].type_code == wire.T_ALIVE]
        challenges = [o[2][0].seq for o in out if o[2][0].type_code == wire.T_PING and o[2][0].target == "*"]
        rounds.append((len(gossiped), challenges))
    assert rounds[0][0] == 1 and len(rounds[0][1]) == 1, "first round: %r" % (rounds[0],)
    for i in range(1, 17):
        assert rounds[i][0] == 0, "round %d gossiped to an unanswering address: %r" % (i, rounds)
        assert len(rounds[i][1]) == (1 if i % 8 == 0 else 0), "round %d: %r" % (i, rounds)
    assert node.stats.get("refused_gossip_unproven", 0) == 16, node.stats
    # It answers: it is proven, and the next round's gossip goes to it.
    node.receive_datagram(_seal(node, "quiet", [wire.Ack(seq=rounds[16][1][0])]), VICTIM, now)
    assert node.guard.known(VICTIM)
    node.receive_datagram(_seal(node, "feeder", [_alive("quiet", VICTIM, incarnation=99)]), MEMBER, now)
    node.datagrams_to_send(now)
    now += PROFILE.gossip_interval_ms
    node.handle_timer(now)
    assert _of_type(_sent(node, now), wire.T_ALIVE, VICTIM), "no gossip after the Ack"


def test_a_trusted_members_signed_address_is_proven_without_a_round_trip():
    # Signed mode: a trusted member's address, in its own verified Alive,
    # is its word (a forger without its key cannot name a victim's address
    # for it); an untrusted name's address, or one under a bad signature,
    # still needs the round trip.
    trusted = {"m": key_of("m"), "bad": key_of("bad")}
    node = _node(signer=fake_sign("obs"), verifier=fake_check, trusted_keys=trusted)
    tag = node.codec.cluster_tag

    def signed(name, address, signer):
        data = wire.alive_signed_bytes(tag, name, 0, address, 1, True, None)
        return wire.Alive(name=name, incarnation=0, address=address, priority=1, eligible=True, tags=None,
                          signature=signer(data))

    stranger = ("10.0.3.1", 7946)
    node.receive_datagram(_seal(node, "feeder", [
        signed("m", VICTIM, fake_sign("m")),
        signed("bad", MEMBER, fake_sign("forger")),
        _alive("u", stranger),
    ]), ("10.9.9.9", 7946), 0)
    node.datagrams_to_send(0)
    assert node.member("m") is not None and node.guard.known(VICTIM), node.stats
    assert node.member("bad") is None and not node.guard.known(MEMBER), node.stats
    assert node.member("u") is not None and not node.guard.known(stranger), node.stats


def test_an_address_that_answers_a_challenge_gets_the_push_pull():
    node = _node()
    node.receive_datagram(_seal(node, "feeder", [_alive("m", VICTIM)]), MEMBER, 0)
    node.datagrams_to_send(0)
    now = 0
    synced_at = None
    while synced_at is None and now < 2 * PROFILE.push_pull_interval_ms:
        now = max(now, node.get_timer())
        node.handle_timer(now)
        pending = _sent(node, now)
        while pending:
            if _of_type(pending, wire.T_SYNC, VICTIM):
                synced_at = now
                break
            # It answers challenges (not its probes: it ends up dead, and reprobed).
            acks = [wire.Ack(seq=p.seq) for p in _of_type(pending, wire.T_PING, VICTIM) if p.target == "*"]
            pending = []
            if acks:
                node.receive_datagram(_seal(node, "m", acks), VICTIM, now)
                pending = _sent(node, now)
    assert synced_at is not None, "no state sync after the challenges were answered: %r" % (node.stats,)
    assert node.guard.known(VICTIM) and node.stats.get("challenges_sent", 0) >= 1, node.stats


def test_a_state_of_600_members_is_truncated_to_one_sync_without_raising():
    # Records of ~290 bytes (long names, three long tags) and a 576-byte MTU
    # (the smallest datagram IPv4 promises to carry): one record a page, so
    # 600 members would need 600 pages, and one sync has at most 255. (With
    # the default 1400 bytes and the most tags, ~520 members used to raise
    # ValueError out of receive_datagram; this is the same path in less heap.)
    tags = {}
    for k in range(3):
        tags[("k%d" % k) * 16] = ("v%d" % k) * 16
    node = Node(name="obs", address=HOME, profile=PROFILE.replace(mtu_bytes=576), rng=XorShift(99), now=0,
                cache_records=False)
    # Sync records, one a datagram (not gossiped on: light on MicroPython's
    # heap, which the collections keep unfragmented); every sixth member dead.
    dead = []
    for i in range(600):
        name = "m%d-%s" % (i, "n" * 56)
        record = wire.Record(name=name, incarnation=0, address=_member_address(i), priority=1, eligible=True,
                             tags=tags, state=wire.STATE_ALIVE)
        messages = [_sync(i, [record], reply_wanted=False)]
        if i % 6 == 0:
            dead.append(name)
            messages.append(wire.Dead(name=name, incarnation=0, by="feeder"))
        node.receive_datagram(_seal(node, "feeder", messages), MEMBER, 0)
        while node.next_event() is not None:
            pass
        if i % 10 == 9:
            node.datagrams_to_send(0)
            gc.collect()
    assert len(node.members()) == 601 and node.live_count() == 501, (len(node.members()), node.live_count())
    gc.collect()
    try:
        reply = _prove(node, MEMBER, "member", 1, 0)
    except ValueError as exc:
        raise AssertionError("a large state raised: %r" % (exc,))
    pages = _of_type(reply, wire.T_SYNC, MEMBER)
    assert len(pages) == 255 and pages[0].pages == 255, "%d pages" % len(pages)
    names = []
    for page in pages:
        for record in page.records:
            names.append(record.name)
    assert names[0] == "obs", "this node's record first: %r" % names[:2]
    dead_set = set(dead)
    # This node, then live members only: 500 of them would need more
    # pages than one sync has.
    assert len(names) >= 255 and len(set(names)) == len(names), "%d records" % len(names)
    for name in names:
        assert name not in dead_set, "%s (dead) sent before all the live members" % name
    assert node.stats.get("sync_truncated", 0) == 1, node.stats
