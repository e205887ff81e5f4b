"""Election integrity: leadership follows signatures, never gossip alone.

Each test is one attack or fault from the election-integrity review, on a
signed cluster of cores moved by hand: a forger that holds the cluster key
(or none is set) but no trusted signing key sends what a hostile board
could, and the leader, its term and the followers must not move.

Plain functions and asserts: runs under CPython (pytest) and MicroPython
(tests/mp_runner.py). Signatures are core_harness's stand-ins (SHA-256
based): the flow is tested, not the crypto.
"""

from agent.core import wire
from core_harness import PROFILE, Net, fake_check, fake_sign, key_of

NAMES = ("a", "b", "c")
PRIORITIES = {"a": 200, "b": 150, "c": 100, "d": 90, "e": 80}
TRUSTED = {}
for _name in PRIORITIES:
    TRUSTED[_name] = key_of(_name)
# The core's leader timeout: three claim intervals without a fresh heartbeat.
TIMEOUT_MS = 3 * PROFILE.claim_interval_ms
# The core's window above the highest term seen (election.py).
TERM_WINDOW = 1 << 16


class CountingCheck:
    """fake_check that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, key, data, signature):
        self.calls += 1
        return fake_check(key, data, signature)


def signed_cluster(names=NAMES, seed=3, verifier=fake_check):
    net = Net(PROFILE, seed=seed)
    first = names[0]
    for name in names:
        net.start(name, seeds=[] if name == first else [first], priority=PRIORITIES[name],
                  signer=fake_sign(name), verifier=verifier, trusted_keys=TRUSTED)
    assert net.run(30000, lambda: one_leader(net) == "a"), "no leader: " + net.describe()
    # Past the first heartbeats, so every follower has a fresh one.
    net.run(PROFILE.claim_interval_ms)
    return net


def one_leader(net):
    """The leader every running node follows, or None if they differ."""
    seen = set()
    for node in net.by_name.values():
        current = node.leader()
        seen.add(current[0] if current else None)
    return seen.pop() if len(seen) == 1 else None


def follows(net, names, leader):
    """Whether every node in names follows `leader`."""
    for name in names:
        current = net.by_name[name].leader()
        if current is None or current[0] != leader:
            return False
    return True


def term_of(net):
    return max(node.election.term for node in net.by_name.values())


def forge(net, to, messages, sender="z"):
    """Delivers a datagram from `sender` (no keyring in these clusters) to node `to` now."""
    codec = wire.Codec("default", sender, None)
    net.by_name[to].receive_datagram(codec.seal([wire.encode_message(m) for m in messages]),
                                     ("10.9.9.9", 7946), net.now)
    net.deliver()


def changes_since(net, mark):
    out = []
    for name in net.by_name:
        out.extend(net.found(name, "leader_changed", since=mark))
    return out


def test_one_forged_dead_at_the_top_incarnation_moves_nothing():
    net = signed_cluster()
    term = term_of(net)
    mark = net.mark()
    for name in ("b", "c"):
        forge(net, name, [wire.Dead(name="a", incarnation=0xFFFFFFFF, by="c")])
    net.run(10000)
    assert changes_since(net, mark) == [], changes_since(net, mark)
    assert term_of(net) == term, "term moved %d -> %d" % (term, term_of(net))
    assert net.by_name["b"].stats["dropped_incarnation"] >= 1
    assert net.all_see("alive"), net.describe()


def test_a_forged_dead_at_the_current_incarnation_moves_nothing():
    net = signed_cluster()
    term = term_of(net)
    mark = net.mark()
    incarnation = net.by_name["b"].member("a").incarnation
    for name in ("b", "c"):
        forge(net, name, [wire.Dead(name="a", incarnation=incarnation, by="c")])
    net.run(10000)
    assert changes_since(net, mark) == [], changes_since(net, mark)
    assert term_of(net) == term
    assert one_leader(net) == "a"


def test_unsigned_metadata_about_a_trusted_member_is_not_believed():
    net = signed_cluster()
    b = net.by_name["b"]
    before = b.member("c").incarnation
    # An unsigned Alive making c the best candidate, and one signed by the
    # wrong key: neither is merged, and the leader stays.
    forge(net, "b", [wire.Alive(name="c", incarnation=0xFFFFFFFF, address=net.address("c"), priority=255,
                         eligible=True, tags=None)])
    statement = wire.alive_signed_bytes(b.codec.cluster_tag, "c", before + 1, net.address("c"), 255, True, None)
    forge(net, "b", [wire.Alive(name="c", incarnation=before + 1, address=net.address("c"), priority=255,
                         eligible=True, tags=None, signature=fake_sign("z")(statement))])
    assert b.member("c").incarnation == before and b.member("c").priority == 100
    assert b.stats["dropped_unsigned"] == 1 and b.stats["dropped_bad_signature"] == 1, b.stats
    net.run(5000)
    assert one_leader(net) == "a"


def test_a_forged_left_of_the_leader_is_ignored():
    net = signed_cluster()
    mark = net.mark()
    b = net.by_name["b"]
    incarnation = b.member("a").incarnation
    forge(net, "b", [wire.Left(name="a", incarnation=incarnation)])
    forge(net, "b", [wire.Left(name="a", incarnation=incarnation, signature=bytes(64))])
    assert b.member("a").state_name == "alive"
    net.run(5000)
    assert changes_since(net, mark) == []


def test_news_far_above_our_incarnation_is_not_adopted_and_set_calls_never_raise():
    net = signed_cluster()
    c = net.by_name["c"]
    before = c.incarnation
    forge(net, "c", [wire.Suspect(name="c", incarnation=0xFFFFFFFE, by="b")])
    assert c.incarnation == before, "adopted a forged incarnation"
    assert c.stats["dropped_incarnation"] == 1
    c.set_priority(120, net.now)
    c.set_eligible(False, net.now)
    assert c.incarnation == before + 2


def test_an_impostor_under_the_leaders_name_is_dropped_when_heartbeats_stop():
    net = signed_cluster()
    net.crash("a")
    # A stock node started under a's name (and address), without a's key:
    # it answers probes, but cannot sign heartbeats.
    net.start("a", seeds=["b"], priority=200, verifier=fake_check, trusted_keys=TRUSTED)
    assert net.run(TIMEOUT_MS + 10000, lambda: net.by_name["b"].is_leader()
                   and net.by_name["c"].leader() is not None and net.by_name["c"].leader()[0] == "b"), \
        "still following the impostor: " + net.describe()


def test_a_replayed_heartbeat_does_not_keep_a_crashed_leader():
    net = signed_cluster()
    recorded = net.by_name["a"].election.claim_message
    b = net.by_name["b"]
    net.crash("a")
    codec = wire.Codec("default", "a", None)
    end = net.now + TIMEOUT_MS + 5000
    while net.now < end and not b.is_leader():
        b.receive_datagram(codec.seal([recorded]), net.address("a"), net.now)
        net.run(200)
    assert b.is_leader(), "a replayed heartbeat kept a crashed leader: " + net.describe()


def test_a_claim_far_above_the_term_is_refused():
    net = signed_cluster()
    b = net.by_name["b"]
    term = b.election.term + TERM_WINDOW + 1
    data = wire.claim_signed_bytes(b.codec.cluster_tag, term, "c", 100, 0, 0)
    forge(net, "b", [wire.Claim(term=term, name="c", priority=100, incarnation=0, counter=0,
                         signature=fake_sign("c")(data))], sender="c")
    assert b.stats.get("claims_rejected_term_window") == 1, b.stats
    assert b.leader()[0] == "a" and b.election.term < term


def test_garbage_claims_in_one_datagram_cost_at_most_two_checks():
    counting = CountingCheck()
    net = signed_cluster(verifier=counting)
    c = net.by_name["c"]
    before = counting.calls
    claims = []
    for i in range(17):
        claims.append(wire.Claim(term=c.election.term + 1 + i, name="b", priority=250, incarnation=0,
                                 counter=0, signature=bytes([i]) * 64))
    forge(net, "c", claims, sender="b")
    assert counting.calls - before <= 2, "checks for one datagram: %d" % (counting.calls - before)
    assert c.leader()[0] == "a"


def test_heal_follows_the_better_leader_with_one_change_on_the_other_side():
    names = ("a", "b", "c", "d", "e")
    net = signed_cluster(names)
    net.partition(["a", "b"], ["c", "d", "e"])
    assert net.run(TIMEOUT_MS + 20000, lambda: follows(net, ("c", "d", "e"), "c")), \
        "the other side elected no leader: " + net.describe()
    # The side without a leader may have moved its term more than once.
    other_term = net.by_name["c"].election.term
    mark = net.mark()
    net.heal()
    assert net.run(60000, lambda: one_leader(net) == "a"), "no single leader after heal: " + net.describe()
    net.run(5000)
    def changes(name):
        # Changes of leader (the same leader at a new term is not one).
        return [c for c in net.found(name, "leader_changed", since=mark) if c[1].new != c[1].old]
    for name in ("a", "b"):
        assert changes(name) == [], "%s changed leader: %r" % (name, changes(name))
    for name in ("c", "d", "e"):
        seen = changes(name)
        assert len(seen) == 1 and seen[0][1].new == "a", "%s: %r" % (name, seen)
    assert net.by_name["a"].leader()[1] > other_term


def test_preempt_delay_counts_from_the_moment_the_node_can_lead():
    net = signed_cluster(("a", "b", "c"))
    a = net.by_name["a"]
    a.set_eligible(False, net.now)
    assert net.run(10000, lambda: one_leader(net) == "b"), net.describe()
    net.run(10000)  # a has been up far longer than the preempt delay
    back = net.now
    a.set_eligible(True, net.now)
    assert net.run(20000, lambda: one_leader(net) == "a"), net.describe()
    elected = net.found("a", "elected")[-1][0]
    assert elected - back >= a.election.preempt_delay_ms, "took the role back after %d ms" % (elected - back)
