"""The election on its own, driven without a Node (run under CPython and MicroPython).

An Election works with a member table, the live names, a broadcast queue
and counters, and is handed its node's way out (send, emit) and three
questions as callables; here those are a real MemberTable, NameSet and
BroadcastQueue, and plain functions that record what they are given. Members are put into the
table by hand, claims are made with wire.Claim, time is moved by hand.
The fake signer of the signed tests is this file's own: a "signature" is
the key's name and the signed bytes' checksum, checked the same way.
Plain functions and plain asserts only: see tests/mp_runner.py.
"""

from agent.core import profile, wire
from agent.core.broadcast import BroadcastQueue
from agent.core.election import Election
from agent.core.membership import MemberTable
from agent.core.nameset import NameSet

PROFILE = profile.local()
ALIVE = b"alive-message"


class Harness:
    """One election and what it works with; `asked` records the callables' calls."""

    def __init__(self, name="me", priority=100, waiting=False, trusted_keys=None, signer=None, verifier=None):
        self.table = MemberTable()
        self.live = NameSet()
        self.broadcasts = BroadcastQueue()
        self.stats = {"claims_stale": 0, "signature_checks": 0}
        self.codec = wire.Codec("default", name, None)
        self.waiting = waiting
        self.asked = []
        self.out = []      # (address, [encoded messages]) sent
        self.told = []     # events emitted
        self.election = Election(
            name, PROFILE, self.codec.cluster_tag, self.table, self.live, self.broadcasts, self.stats,
            (self._send, self.told.append, self._alive, lambda: self.waiting, self._tell_dead), 0,
            signer, verifier, trusted_keys)
        self.election.set_local(priority, 1, True)

    def _send(self, addr, messages):
        self.out.append((addr, messages))

    def _alive(self):
        self.asked.append("alive")
        return wire.encode_message(wire.Alive(name="me", incarnation=1, address=("10.0.0.1", 7946),
                                              priority=0, eligible=False, tags=None))

    def _tell_dead(self, member, address, now):
        self.asked.append(("dead", member.name))

    def add(self, name, priority, state=wire.STATE_ALIVE, index=2):
        self.table.apply(name, 1, state, 0, ("10.0.0.%d" % index, 7946), priority, True, None)
        if state <= wire.STATE_SUSPECT:
            self.live.add(name)
        self.election.member_changed(self.table.get(name))

    def events(self):
        out = [e.as_dict() for e in self.told]
        self.told[:] = []
        return out

    def sent(self):
        """[(address, [messages])] sent since the last call."""
        out = [(addr, self.codec.open(self.codec.seal(messages))[1]) for addr, messages in self.out]
        self.out[:] = []
        return out

    def run(self, now):
        self.election.evaluate(now)
        self.election.handle_timer(now)


def _claim(name, term, priority, counter=0, signature=b""):
    return wire.Claim(term=term, name=name, priority=priority, incarnation=1, counter=counter, signature=signature)


def test_alone_it_claims_after_the_hold_down_and_not_before():
    h = Harness()
    h.run(0)
    assert h.election.leader is None, "claimed inside the start-up hold-down"
    h.run(PROFILE.startup_holddown_ms)
    assert h.election.leader == "me" and h.election.term == 1
    kinds = [e["event"] for e in h.events()]
    assert kinds == ["elected", "leader_changed"], kinds


def test_it_waits_for_its_seeds():
    h = Harness(waiting=True)
    h.run(10 * PROFILE.startup_holddown_ms)
    assert h.election.leader is None and h.events() == []
    h.waiting = False
    h.run(10 * PROFILE.startup_holddown_ms + 1)
    assert h.election.leader == "me"


def test_it_follows_a_better_claim_and_announces_it_to_no_one():
    h = Harness(priority=10)
    h.add("boss", 200)
    h.election.datagram_started()
    h.election.receive_claim(_claim("boss", 1, 200), 100)
    assert h.election.leader == "boss" and h.election.leader_term == 1
    assert h.events() == [{"event": "leader_changed", "old": None, "new": "boss", "term": 1}]
    # A follower sends nothing of its own about it (the claim is relayed
    # only as piggybacked gossip, in the broadcast queue).
    assert h.sent() == []
    assert len(h.broadcasts) == 1


def test_a_stale_heartbeat_drops_the_leader():
    h = Harness(priority=10)
    h.add("boss", 200)
    h.election.datagram_started()
    h.election.receive_claim(_claim("boss", 1, 200), 0)
    h.events()
    interval = PROFILE.claim_interval_ms
    h.election.receive_claim(_claim("boss", 1, 200, counter=1), interval)
    h.run(3 * interval)
    assert h.election.leader == "boss", "dropped while heartbeats were fresh"
    h.run(interval + 3 * interval)
    assert h.election.leader != "boss", "a leader without heartbeats for 3 claim intervals is still followed"
    assert {"event": "leader_changed", "old": "boss", "new": None, "term": 1} in h.events()


def test_a_leader_made_ineligible_resigns_to_every_live_member_with_its_alive_first():
    h = Harness()
    h.add("a", 50, index=2)
    h.add("b", 40, index=3)
    h.run(PROFILE.startup_holddown_ms)
    assert h.election.leader == "me"
    h.sent()
    h.events()
    h.election.set_local(0, 2, True)
    h.run(PROFILE.startup_holddown_ms + 1)
    out = h.sent()
    assert sorted(addr for addr, _ in out) == [("10.0.0.2", 7946), ("10.0.0.3", 7946)], out
    for _, messages in out:
        assert [m.type_code for m in messages[:2]] == [wire.T_ALIVE, wire.T_RESIGN], messages
    assert "alive" in h.asked
    assert h.election.leader != "me"
    assert {"event": "demoted", "term": 1, "reason": "ineligible"} in h.events()


def _sign(key):
    def signer(data, may_defer=False):
        return (key + b":" + bytes([sum(data) & 0xFF])) * 4 + bytes(64 - 4 * (len(key) + 2))
    return signer


def _verify(public_key, data, signature):
    return signature == _sign(public_key)(data)


def test_signed_mode_follows_a_trusted_claim_and_rejects_a_forged_one():
    trusted = {"me": b"k-me", "boss": b"k-boss"}
    h = Harness(trusted_keys=trusted, signer=_sign(b"k-me"), verifier=_verify)
    h.add("boss", 200)
    data = wire.claim_signed_bytes(h.codec.cluster_tag, 1, "boss", 200, 1, 0)
    forged = _claim("boss", 1, 200, signature=_sign(b"k-other")(data))
    h.election.datagram_started()
    h.election.receive_claim(forged, 10)
    assert h.election.leader is None
    rejected = [e for e in h.events() if e["event"] == "claim_rejected"]
    assert rejected and rejected[0]["name"] == "boss" and rejected[0]["reason"] == "bad_signature", rejected
    good = _claim("boss", 1, 200, counter=1, signature=_sign(b"k-boss")(
        wire.claim_signed_bytes(h.codec.cluster_tag, 1, "boss", 200, 1, 1)))
    # Within a claim interval of a failed check, (boss, term 1) is not
    # checked again (bounded work: a forger cannot make us verify at will).
    h.election.datagram_started()
    h.election.receive_claim(good, 20)
    assert h.election.leader is None
    h.election.datagram_started()
    h.election.receive_claim(good, 20 + PROFILE.claim_interval_ms)
    assert h.election.leader == "boss"
    assert h.stats["signature_checks"] >= 2


def test_a_claim_from_a_member_held_dead_gets_it_told_not_followed():
    trusted = {"me": b"k-me", "ghost": b"k-ghost"}
    h = Harness(trusted_keys=trusted, signer=_sign(b"k-me"), verifier=_verify)
    h.add("ghost", 200, state=wire.STATE_DEAD)
    data = wire.claim_signed_bytes(h.codec.cluster_tag, 1, "ghost", 200, 1, 0)
    h.election.datagram_started()
    h.election.receive_claim(_claim("ghost", 1, 200, signature=_sign(b"k-ghost")(data)), 10)
    assert h.election.leader != "ghost"
    assert ("dead", "ghost") in h.asked, h.asked
