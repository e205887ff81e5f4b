"""Transfer: the leader hands the role to a named member with a signed Handover.

The successor claims the next term as soon as it hears the hand-over, every
other node waits for that claim instead of electing by rank, and no node
that ranks above the successor preempts it while it leads. A refusal says
why; a forged hand-over moves nothing; a successor that never claims is
passed over and the rule elects as usual.

Plain functions and asserts: runs under CPython (pytest) and MicroPython
(tests/mp_runner.py), on a signed cluster of cores moved by hand
(core_harness's stand-in signatures).
"""

from agent.core import wire
from core_harness import PROFILE, Net, fake_check, fake_sign, key_of

NAMES = ("a", "b", "c", "d", "e")
PRIORITIES = {"a": 200, "b": 150, "c": 100, "d": 90, "e": 0}
TRUSTED = {}
for _name in NAMES:
    TRUSTED[_name] = key_of(_name)
TIMEOUT_MS = 3 * PROFILE.claim_interval_ms


def cluster(preempt_delay_ms=1000, extra=None):
    net = Net(PROFILE, seed=5)
    for name in NAMES:
        net.start(name, seeds=[] if name == "a" else ["a"], priority=PRIORITIES[name],
                  signer=fake_sign(name), verifier=fake_check, trusted_keys=TRUSTED,
                  preempt_delay_ms=preempt_delay_ms)
    if extra is not None:
        extra(net)
    assert net.run(30000, lambda: one_leader(net) == "a"), "no leader: " + net.describe()
    net.run(PROFILE.claim_interval_ms)
    return net


def one_leader(net):
    seen = set()
    for node in net.by_name.values():
        current = node.leader()
        seen.add(current[0] if current else None)
    return seen.pop() if len(seen) == 1 else None


def refusal(node, name):
    try:
        node.successor(name)
    except ValueError as exc:
        return str(exc)
    return None


def test_a_transfer_to_a_lower_member_holds_and_is_not_preempted():
    net = cluster()
    a = net.by_name["a"]
    term = a.term()
    assert a.transfer("c", net.now) == "c"
    assert not a.is_leader()
    net.deliver()
    # The successor's claim came back in the same round of datagrams: no timer ran.
    assert one_leader(net) == "c", net.describe()
    assert net.by_name["c"].term() == term + 1
    # Well past the preempt delay and several heartbeats: a and b (both above c) keep following c.
    net.run(10 * PROFILE.claim_interval_ms + 5000)
    assert one_leader(net) == "c", net.describe()
    assert net.by_name["c"].term() == term + 1
    demoted = [e for t, e in net.found("a", "demoted")]
    assert demoted[-1].reason == "transfer"


def test_without_a_name_the_next_in_rank_takes_over():
    net = cluster()
    a = net.by_name["a"]
    assert a.successor() == "b"
    assert a.transfer(None, net.now) == "b"
    net.deliver()
    assert one_leader(net) == "b"


def test_refusals_say_why():
    def untrusted(net):
        net.start("x", seeds=["a"], priority=250, signer=fake_sign("x"), verifier=fake_check,
                  trusted_keys=TRUSTED)

    net = cluster(extra=untrusted)
    a = net.by_name["a"]
    assert "the leader is a" in refusal(net.by_name["b"], "c")
    assert "not a member" in refusal(a, "nobody")
    assert "this node" in refusal(a, "a")
    assert "not eligible" in refusal(a, "e")
    assert "trust list" in refusal(a, "x")
    net.crash("d")
    assert net.run(30000, lambda: net.state("a", "d") == "dead")
    assert "not alive" in refusal(a, "d")
    # A refused transfer changes nothing.
    try:
        a.transfer("d", net.now)
        assert False, "transfer to a dead member went through"
    except ValueError:
        pass
    assert a.is_leader()


def test_a_forged_hand_over_moves_nothing():
    net = cluster()
    c = net.by_name["c"]
    term = c.term()
    forged = wire.Handover(term=term, name="a", successor="d", signature=fake_sign("d")(b"anything"))
    data = net.by_name["b"].codec.seal([wire.encode_message(forged)])
    c.receive_datagram(data, net.address("b"), net.now)
    net.deliver()
    assert one_leader(net) == "a"
    assert c.counters().get("claims_rejected_bad_signature", 0) >= 1


def test_a_successor_that_dies_before_claiming_is_passed_over():
    net = cluster()
    a = net.by_name["a"]
    # c is cut off from everyone just before the hand-over reaches it.
    net.partition(["c"], ["a", "b", "d", "e"])
    a.transfer("c", net.now)
    net.deliver()
    assert one_leader(net) is None
    assert net.run(2 * TIMEOUT_MS + 30000, lambda: all(
        net.by_name[n].leader() is not None and net.by_name[n].leader()[0] == "a" for n in ("a", "b", "d", "e")))


def test_when_the_successor_fails_rank_decides_again():
    net = cluster()
    net.by_name["a"].transfer("c", net.now)
    net.deliver()
    assert one_leader(net) == "c"
    net.crash("c")
    assert net.run(60000, lambda: one_leader(net) == "a"), net.describe()


def test_a_late_copy_of_its_own_last_heartbeat_does_not_bring_the_old_leader_back():
    # A follower relays the leader's heartbeats; one such copy can arrive after the hand-over.
    net = cluster()
    a = net.by_name["a"]
    current = a.leader()
    heartbeat = wire.Claim(term=current[1], name="a", priority=PRIORITIES["a"], incarnation=a.incarnation,
                           counter=0, signature=b"")
    data = wire.claim_signed_bytes(a.codec.cluster_tag, heartbeat.term, "a", heartbeat.priority,
                                   heartbeat.incarnation, 0)
    heartbeat.signature = fake_sign("a")(data)
    a.transfer("d", net.now)
    relayed = net.by_name["b"].codec.seal([wire.encode_message(heartbeat)])
    a.receive_datagram(relayed, net.address("b"), net.now)
    net.deliver()
    assert one_leader(net) == "d", net.describe()
    assert net.by_name["d"].term() == current[1] + 1
