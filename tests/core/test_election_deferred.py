"""Deferred claim verification: a verifier that returns None (a board verifying in slices).

The core asks the verifier once per new claim; None means "later": the
claim waits, unfollowed, until the shell calls verification_done(data,
signature, ok, now). ok=True follows it, ok=False rejects it, and the
verdict is cached so re-assertions of the same claim cost nothing. At most
8 claims wait at once; more are refused as "busy" without asking the
verifier (which bounds the shell's own queue).

Signing likewise: a signer may return None for a claim (never for a
resignation); the node makes no claim until signing_done(data, signature,
now) brings that claim's signature, and ignores one for a claim it no
longer wants to make.

Plain functions and asserts: runs under CPython (pytest) and MicroPython
(tests/mp_runner.py). Signatures are core_harness's stand-ins (SHA-256
based), not Ed25519: what is tested is the flow, not the crypto.
"""

from agent.core import events, wire
from agent.core.node import Node
from core_harness import PROFILE, Net, XorShift, fake_check, fake_sign, key_of


class DeferringVerifier:
    """A verifier that answers None and remembers what it was asked."""

    def __init__(self):
        self.calls = []

    def __call__(self, key, data, signature):
        self.calls.append((key, data, signature))
        return None


TRUSTED = {"a": key_of("a"), "b": key_of("b")}


def start_pair(ok_signer=True):
    """Leader candidate a (priority 100, signing) and follower f (priority 0) whose verifier defers."""
    net = Net(PROFILE, seed=5)
    deferring = DeferringVerifier()
    signer = fake_sign("a") if ok_signer else fake_sign("intruder")
    net.start("a", priority=100, signer=signer, verifier=fake_check, trusted_keys=TRUSTED)
    # As a board: it verifies claims and heartbeats, no member records.
    net.start("f", seeds=["a"], priority=0, verifier=deferring, trusted_keys=TRUSTED, member_checks=False)
    assert net.run(10000, lambda: net.by_name["a"].leader() is not None), "a never claimed: " + net.describe()
    assert net.run(5000, lambda: len(deferring.calls) > 0), "f never asked its verifier"
    return net, deferring


def run_for(net, ms):
    net.run(ms)


def test_a_deferred_claim_is_not_followed_until_verified():
    net, deferring = start_pair()
    f = net.by_name["f"]
    # The leader re-asserts its claim (claim_interval) and state syncs carry
    # it: still one question to the verifier, and no leader yet.
    run_for(net, 3 * PROFILE.claim_interval_ms)
    assert f.leader() is None, "followed before verification: %r" % (f.leader(),)
    assert len(deferring.calls) == 1, "verifier asked %d times" % len(deferring.calls)
    assert f.member("a").state_name == "alive", "pending check broke membership"
    assert net.by_name["a"].member("f").state_name == "alive", "f stopped answering while a check waits"
    key, data, signature = deferring.calls[0]
    assert key == key_of("a")
    mark = net.mark()
    f.verification_done(data, signature, fake_check(key, data, signature), net.now)
    net.deliver()
    term = net.by_name["a"].leader()[1]
    assert f.leader() == ("a", term), "not followed after ok=True: %r" % (f.leader(),)
    changes = net.found("f", "leader_changed", since=mark)
    assert len(changes) == 1 and changes[0][1].new == "a" and changes[0][1].term == term, changes
    # Heartbeats (the claim again, counter one higher, signed afresh): a
    # board checks the first that comes 1.5 claim intervals after the last
    # it verified (every other one), each once, one at a time; the leader
    # stays followed meanwhile.
    answered = 1
    for _ in range(3):
        run_for(net, PROFILE.claim_interval_ms)
        while answered < len(deferring.calls):
            key, data, signature = deferring.calls[answered]
            answered += 1
            f.verification_done(data, signature, fake_check(key, data, signature), net.now)
            net.deliver()
    asked = [call[1] + call[2] for call in deferring.calls]
    assert len(asked) == len(set(asked)), "one heartbeat checked twice"
    assert 2 <= len(asked) <= 3, "checks in 3 intervals: %d" % len(asked)
    assert f.leader() == ("a", term)


def test_a_deferred_claim_that_fails_is_rejected_and_stays_rejected():
    net, deferring = start_pair(ok_signer=False)
    f = net.by_name["f"]
    key, data, signature = deferring.calls[0]
    ok = fake_check(key, data, signature)
    assert ok is False, "the stand-in signature should not verify"
    mark = net.mark()
    f.verification_done(data, signature, ok, net.now)
    net.deliver()
    assert f.leader() is None, "followed a claim that failed verification"
    rejected = net.found("f", "claim_rejected", since=mark)
    assert rejected and rejected[0][1].reason == "bad_signature" and rejected[0][1].name == "a", rejected
    assert f.stats.get("claims_rejected_bad_signature") == 1, f.stats
    run_for(net, 3 * PROFILE.claim_interval_ms)
    assert f.leader() is None, "followed the re-asserted bad claim"
    # Heartbeats of a claimant whose signature failed are checked at most
    # once per claim interval.
    assert len(deferring.calls) <= 4, "checks after a bad signature: %d" % len(deferring.calls)


def test_a_verdict_for_a_claim_nobody_waits_for_is_only_cached():
    net, deferring = start_pair()
    f = net.by_name["f"]
    f.verification_done(b"some other bytes", bytes(64), True, net.now)
    assert f.leader() is None


def _forged_claims(count, first_term):
    codec = wire.Codec("default", "b", None)
    out = []
    for i in range(count):
        term = first_term + i
        claim = wire.Claim(term=term, name="b", priority=50, incarnation=0,
                           signature=fake_sign("b")(wire.claim_signed_bytes(codec.cluster_tag, term, "b", 50, 0)))
        out.append(codec.seal([wire.encode_message(claim)]))
    return out


def test_at_most_eight_claims_wait_and_the_rest_are_busy():
    # A follower that knows b (alive, trusted) and gets claims for nine
    # distinct terms from it while none has been verified.
    deferring = DeferringVerifier()
    f = Node("f", ("10.0.0.9", 7946), PROFILE, XorShift(3), 0, priority=0, verifier=deferring,
             trusted_keys=TRUSTED, member_checks=False)
    b_codec = wire.Codec("default", "b", None)
    statement = wire.alive_signed_bytes(b_codec.cluster_tag, "b", 1, ("10.0.0.2", 7946), 50, True, None)
    alive = wire.Alive(name="b", incarnation=1, address=("10.0.0.2", 7946), priority=50, eligible=True, tags=None,
                       signature=fake_sign("b")(statement))
    f.receive_datagram(b_codec.seal([wire.encode_message(alive)]), ("10.0.0.2", 7946), 10)
    assert f.member("b").state_name == "alive"
    while f.next_event() is not None:
        pass
    # b is the candidate f expects to win: its claims get the two urgent
    # slots on top of the eight.
    for data in _forged_claims(11, 5):
        f.receive_datagram(data, ("10.0.0.2", 7946), 20)
    assert len(deferring.calls) == 10, "verifier asked %d times for 11 claims" % len(deferring.calls)
    reasons = []
    event = f.next_event()
    while event is not None:
        if event.kind == "claim_rejected":
            reasons.append((event.term, event.reason))
        event = f.next_event()
    assert reasons == [(15, "busy")], reasons
    assert f.leader() is None
    # Verdicts arrive: the highest verified claim wins.
    for key, data, signature in deferring.calls:
        f.verification_done(data, signature, fake_check(key, data, signature), 30)
    assert f.leader() == ("b", 14), f.leader()


# --- Deferred signing: a candidate board signs its claims in slices too -------


class DeferringSigner:
    """A signer that defers claims (answers None) and signs resignations at once, as a board's does."""

    def __init__(self, name):
        self.sign = fake_sign(name)
        self.claims = []

    def __call__(self, data, may_defer):
        # It defers what it may (claims and heartbeats; not the node's own
        # Alive statements, which this test does not follow).
        if may_defer and data[:len(wire.CLAIM_DOMAIN)] == wire.CLAIM_DOMAIN:
            self.claims.append(data)
            return None
        return self.sign(data, may_defer)


def start_deferred_candidate():
    net = Net(PROFILE, seed=7)
    signer = DeferringSigner("a")
    net.start("f", priority=0, verifier=fake_check, trusted_keys=TRUSTED)
    net.start("a", seeds=["f"], priority=100, signer=signer, verifier=fake_check, trusted_keys=TRUSTED)
    assert net.run(10000, lambda: len(signer.claims) > 0), "a never asked to sign: " + net.describe()
    return net, signer


def test_a_deferred_signature_holds_the_claim_until_it_is_done():
    net, signer = start_deferred_candidate()
    a, f = net.by_name["a"], net.by_name["f"]
    # Time passes (hold-downs, re-evaluations): one request, no claim sent.
    net.run(3 * PROFILE.claim_interval_ms)
    assert len(signer.claims) == 1, "signer asked %d times for one claim" % len(signer.claims)
    assert a.leader() is None and f.leader() is None, "claimed before its signature was done"
    assert a.member("f").state_name == "alive" and f.member("a").state_name == "alive"
    data = signer.claims[0]
    a.signing_done(data, signer.sign(data), net.now)
    assert a.is_leader(), "signing_done() did not make the claim"
    term = a.leader()[1]
    assert net.run(3000, lambda: f.leader() == ("a", term)), "f did not follow the signed claim"
    # The claim's signature is used, not asked for again; each heartbeat
    # (counter one higher) is one more request, and goes out when signed.
    net.run(PROFILE.claim_interval_ms + 10)
    assert len(signer.claims) == 2 and signer.claims[0] != signer.claims[1], signer.claims
    a.signing_done(signer.claims[1], signer.sign(signer.claims[1]), net.now)
    assert net.run(3000, lambda: f.election.leader_counter == 1), "f did not get the signed heartbeat"
    assert f.leader() == ("a", term)


def test_a_signature_for_a_claim_no_longer_wanted_is_ignored():
    net, signer = start_deferred_candidate()
    a = net.by_name["a"]
    stale = signer.claims[0]
    # Another claim is now the one to make (the priority changed: other bytes).
    a.set_priority(90, net.now)
    net.run(2000)
    assert len(signer.claims) == 2 and signer.claims[1] != stale, signer.claims
    a.signing_done(stale, signer.sign(stale), net.now)
    assert a.leader() is None, "claimed with the signature of an outdated claim"
    a.signing_done(signer.claims[1], signer.sign(signer.claims[1]), net.now)
    assert a.is_leader()


def test_resignations_are_signed_at_once_even_with_a_deferring_signer():
    net, signer = start_deferred_candidate()
    a, f = net.by_name["a"], net.by_name["f"]
    a.signing_done(signer.claims[0], signer.sign(signer.claims[0]), net.now)
    term = a.leader()[1]
    assert net.run(3000, lambda: f.leader() == ("a", term))
    a.leave(net.now)
    assert net.run(1000, lambda: f.leader() is None), "f still follows a after its signed resignation"
