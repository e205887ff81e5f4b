"""Election properties under random faults: hypothesis drives the seeded simulator.

A RuleBasedStateMachine builds a small cluster (3..7 nodes, profile local,
real Ed25519 keys, preempt on) plus one insider, "forger", whose key nobody
trusts, and applies a random schedule: time passes, the network splits and
heals, nodes crash, restart, pause, change priority and eligibility, and the
forger injects claims nobody may accept. Safety, after every step:

- each node's followed term never decreases (per core; a restarted node
  starts from its saved term, as the daemon's term file gives it);
- no node ever follows the forger, an unsigned claim or a claim with a bad
  signature;
- terms stay small: at most TERM_SLACK + TERMS_PER_STEP per step so far
  (each fault is worth a few elections; a claim war between two nodes,
  each re-claiming on the other's claim, is not). Forged terms are
  FORGED_TERM_JUMP above any real one, so no node reaches them either.

Liveness, whenever the faults stop (rule `quiesce`, and at the end of every
run): the network heals and paused nodes resume; within BOUND_MS (computed
from the profile below) every live node follows the same leader, and it is
the eligible live node with the highest (priority, name).

Everything is seeded (the simulator by the drawn seed, hypothesis
derandomized), so a run is reproducible; on failure hypothesis prints the
steps, the seed among them. Shrinking is off (a failing schedule can take
minutes to shrink); LEADERD_SHRINK=1 turns it on.

Below the machine, one deterministic test per core bug it found: each
xfails while its bug shows and passes once the core is fixed.
"""

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agent.core import profile, wire
from agent.core.suspicion import suspicion_bounds_ms
from agent.sim.network import Simulation, node_name
from agent.sim.nodes import NodeFactory

PROFILE = profile.make("local")
MAX_NODES = 7
PREEMPT_DELAY_MS = 1000
FORGER = "forger"
FORGED_TERM_JUMP = 1000
TERM_SLACK = 10
TERMS_PER_STEP = 4


def bound_ms(prof, nodes, preempt_delay_ms):
    """Time after the faults stop by which every live node must follow the best node.

    Twice the sum of what has to happen in turn, in the worst case:
    - a stale suspicion ends (refuted or a death): a probe at its slowest
      (Lifeguard's worst local health), the longest suspicion, the final probe;
    - the two sides of a healed partition find each other: one dead-member
      re-probe interval;
    - the best node claims: start-up hold-down, then the preempt delay;
    - everyone hears of the claim: a re-assertion interval, a few gossip rounds.
    """
    probe = prof.probe_interval_ms * prof.awareness_max_multiplier
    suspicion = suspicion_bounds_ms(prof, nodes)[1] + prof.probe_timeout_ms
    election = prof.startup_holddown_ms + preempt_delay_ms + prof.claim_interval_ms
    return 2 * (probe + suspicion + prof.dead_reprobe_interval_ms + election + 5 * prof.gossip_interval_ms)


BOUND_MS = bound_ms(PROFILE, MAX_NODES + 1, PREEMPT_DELAY_MS)
# Enough for a cold start: join, hold-down, first claim, everybody hears it.
STARTUP_MS = 1000 + 20 * PROFILE.probe_interval_ms + 4 * PROFILE.join_retry_ms

priorities = st.sampled_from([0, 50, 100, 100, 100, 200])


class ElectionMachine(RuleBasedStateMachine):
    """A small signed cluster with an untrusted insider, under random faults."""

    @initialize(nodes=st.integers(3, MAX_NODES), seed=st.integers(0, 2 ** 20),
                prios=st.lists(priorities, min_size=MAX_NODES, max_size=MAX_NODES))
    def start(self, nodes, seed, prios):
        self.nodes = nodes
        names = [node_name(index, nodes) for index in range(nodes)] + [FORGER]
        self.factory = NodeFactory(seed, names, preempt=True, preempt_delay_ms=PREEMPT_DELAY_MS,
                                   untrusted=(FORGER,))
        self.sim = Simulation(nodes + 1, PROFILE, seed=seed, latency_ms=0, jitter_ms=1,
                              node_factory=self.factory, names=names,
                              priorities=list(prios[:nodes]) + [255])
        self.forger = nodes
        self.sim.metrics.forger = FORGER
        self.codec = None
        self.steps = 0
        self.sim.run(STARTUP_MS)

    # -- helpers ----------------------------------------------------------

    def honest(self, index):
        return index % self.nodes

    def running(self, index):
        return self.sim.node(index) is not None

    def expected_leader(self):
        """The eligible live node with the highest (priority, name), or None."""
        best = None
        for index in self.sim.live_indexes():
            slot = self.sim.slots[index]
            if index == self.forger or slot.priority == 0 or not slot.eligible:
                continue
            if best is None or (slot.priority, slot.name) > best:
                best = (slot.priority, slot.name)
        return best[1] if best else None

    def describe(self):
        sim = self.sim
        lines = ["seed %d, t=%d ms" % (sim.seed, sim.now)]
        for slot in sim.slots:
            node = slot.node
            state = "down" if node is None else ("paused" if slot.paused else "up")
            follows = node.leader() if node is not None else None
            term = node.election.term if node is not None else None
            lines.append("  %s prio=%d eligible=%s %s follows=%s term=%s"
                         % (slot.name, slot.priority, slot.eligible, state, follows, term))
        return "\n".join(lines)

    # -- rules: faults ----------------------------------------------------

    def run_for(self, ms):
        """Advance the simulation, in slices, failing at once on a claim war (it floods)."""
        until = self.sim.now + ms
        while self.sim.now < until:
            self.sim.run(min(until, self.sim.now + 250))
            self.check_term_bound()

    @rule(ms=st.integers(50, 4000))
    def advance(self, ms):
        self.run_for(ms)

    @rule(groups=st.lists(st.integers(0, 2), min_size=MAX_NODES + 1, max_size=MAX_NODES + 1))
    def partition(self, groups):
        split = {}
        for index in range(self.nodes + 1):
            split.setdefault(groups[index], []).append(index)
        self.sim.partition([split[key] for key in sorted(split)])

    @rule()
    def heal(self):
        self.sim.heal()

    @rule(i=st.integers(0, MAX_NODES - 1))
    def crash(self, i):
        self.sim.crash(self.honest(i))

    @rule(i=st.integers(0, MAX_NODES - 1))
    def restart(self, i):
        self.sim.restart(self.honest(i))

    @rule(i=st.integers(0, MAX_NODES - 1), ms=st.integers(100, 6000))
    def pause(self, i, ms):
        index = self.honest(i)
        if self.running(index) and not self.sim.slots[index].paused:
            self.sim.pause(index)
            self.sim.schedule(self.sim.now + ms, lambda: self.sim.resume(index))

    @rule(i=st.integers(0, MAX_NODES - 1), p=priorities)
    def set_priority(self, i, p):
        self.sim.set_priority(self.honest(i), p)

    @rule(i=st.integers(0, MAX_NODES - 1), flag=st.booleans())
    def set_eligible(self, i, flag):
        self.sim.set_eligible(self.honest(i), flag)

    @rule(data=st.data())
    def forge(self, data):
        """The forger sends every node claims nobody may accept, 1000 terms above any seen:
        (a) under its own name, signed with its untrusted key; (b) under the leader's name
        with a random signature; (c) unsigned, under another node's name."""
        sim = self.sim
        node = sim.node(self.forger)
        if node is None or sim.slots[self.forger].paused:
            return
        if self.codec is None:
            self.codec = wire.Codec(node.cluster, FORGER, node.codec.keyring)
        codec = self.codec
        term = max(slot.node.election.term for slot in sim.slots if slot.node is not None) + FORGED_TERM_JUMP
        signature = self.factory.signer(FORGER)(wire.claim_signed_bytes(
            codec.cluster_tag, term, FORGER, node.priority, node.incarnation))
        claims = [wire.Claim(term=term, name=FORGER, priority=node.priority,
                             incarnation=node.incarnation, signature=signature)]
        leader = node.leader()
        if leader is not None and node.member(leader[0]) is not None:
            member = node.member(leader[0])
            bad = data.draw(st.binary(min_size=64, max_size=64), label="signature")
            claims.append(wire.Claim(term=term, name=leader[0], priority=member.priority,
                                     incarnation=member.incarnation, signature=bad))
        victim = sim.slots[self.honest(data.draw(st.integers(0, MAX_NODES - 1), label="unsigned_as"))]
        member = node.member(victim.name)
        if member is not None:
            claims.append(wire.Claim(term=term, name=victim.name, priority=member.priority,
                                     incarnation=member.incarnation, signature=b""))
        for claim in claims:
            sim.metrics.forged_term(term, claim.name)
        for slot in sim.slots:
            if slot.index == self.forger:
                continue
            for claim in claims:
                # A claim under the receiver's own name is left out: the core
                # adopts its term unverified (reported; see
                # test_forged_claim_under_own_name_is_not_adopted below).
                if claim.name != slot.name:
                    sim.inject(self.forger, codec.seal([wire.encode_message(claim)]), slot.address)

    @rule()
    def quiesce(self):
        self.settle_and_check()

    # -- properties -------------------------------------------------------

    def check_term_bound(self):
        metrics = self.sim.metrics
        limit = TERM_SLACK + TERMS_PER_STEP * (self.steps + 1)
        assert metrics.max_term <= limit, "term %d by step %d (a claim war?)\n%s" % (
            metrics.max_term, self.steps + 1, self.describe())
        assert metrics.forged_term_adopted == 0, (
            "a node reached a forged term (>= %d)\n%s" % (metrics.forged_floor, self.describe()))

    @invariant()
    def terms_stay_small(self):
        self.check_term_bound()
        self.steps += 1

    @invariant()
    def terms_only_grow(self):
        metrics = self.sim.metrics
        assert metrics.term_regressions == 0, "term regressions (time, node, from, to): %r\n%s" % (
            metrics.regressions, self.describe())

    @invariant()
    def nobody_follows_a_forged_claim(self):
        metrics = self.sim.metrics
        assert metrics.forger_followed == 0, "a node followed the forger or a forged claim\n" + self.describe()

    def settle_and_check(self):
        sim = self.sim
        sim.heal()
        for index in range(sim.count):
            sim.resume(index)
        self.run_for(BOUND_MS)
        expected = self.expected_leader()
        follows = {}
        for index in sim.live_indexes():
            leader = sim.node(index).leader()
            follows[sim.slots[index].name] = leader[0] if leader else None
        assert set(follows.values()) == {expected}, (
            "%d ms after the faults stopped, expected every live node to follow %s, got %r\n%s"
            % (BOUND_MS, expected, follows, self.describe()))

    # Liveness (one agreed, best leader within a bound after the faults)
    # is checked by TestElection; TestElectionSafety checks the safety
    # invariants only, through the same schedules.
    CHECK_LIVENESS = True

    def teardown(self):
        if hasattr(self, "sim"):
            if self.CHECK_LIVENESS:
                self.settle_and_check()
            else:
                self.sim.heal()
                self.run_for(BOUND_MS)
                self.check_term_bound()
                self.nobody_follows_a_forged_claim()
                self.terms_only_grow()


class SafetyMachine(ElectionMachine):
    """The same machine, safety invariants only."""

    CHECK_LIVENESS = False


PHASES = tuple(Phase) if os.environ.get("LEADERD_SHRINK") else (Phase.explicit, Phase.generate)
ElectionMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=25, deadline=None, derandomize=True, database=None,
    phases=PHASES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SafetyMachine.TestCase.settings = ElectionMachine.TestCase.settings
TestElectionSafety = SafetyMachine.TestCase
TestElection = ElectionMachine.TestCase



# --- Known core bugs, one deterministic reproduction each -------------------
#
# Each test reproduces one bug the machine above found (seed and schedule
# fixed), and xfails while the bug shows; once agent/core is fixed it passes.


def _cluster(seed, nodes=5, priorities=None, names=None, untrusted=()):
    names = names or [node_name(index, nodes) for index in range(nodes)]
    factory = NodeFactory(seed, names, preempt_delay_ms=PREEMPT_DELAY_MS, untrusted=untrusted)
    sim = Simulation(len(names), PROFILE, seed=seed, latency_ms=0, jitter_ms=1, node_factory=factory,
                     names=names, priorities=priorities)
    sim.run(STARTUP_MS)
    assert sim.metrics.agreed_now() is not None, "seed %d: no leader after start-up" % seed
    return sim, names


def test_forged_claim_under_own_name_is_not_adopted():
    """A claim under the receiver's own name must be verified before its term counts.

    Core bug (agent/core/election.py receive_claim): a node that does not
    lead and gets a claim under its own name takes its term unverified (it
    reads it as a claim from a past life of its own) and claims term + 1,
    so one unsigned datagram from an insider moves every node's fencing
    token by as much as the insider likes; at term 0xFFFFFFFF the next claim
    raises ValueError out of receive_datagram.
    """
    sim, names = _cluster(seed=1)
    leader = sim.metrics.agreed_now()
    victim = next(slot for slot in sim.slots if slot.node is not None and slot.name != leader)
    node = victim.node
    before = node.election.term
    codec = wire.Codec(node.cluster, names[0], node.codec.keyring)
    forged = wire.Claim(term=before + FORGED_TERM_JUMP, name=victim.name, priority=node.priority,
                        incarnation=node.incarnation, signature=b"")
    sim.metrics.forged_term(forged.term, victim.name)
    sim.inject(0, codec.seal([wire.encode_message(forged)]), victim.address)
    sim.run(sim.now + 3000)
    if sim.metrics.forged_term_adopted or node.election.term >= forged.term:
        pytest.xfail("core bug: an unsigned claim under the receiver's own name moved its term "
                     "from %d to %d (seed 1)" % (before, node.election.term))
    assert sim.metrics.agreed_now() == leader


def test_leader_that_lowers_its_priority_is_preempted():
    """Core bug: preemption compares with the priority in the leader's claim
    (Election.leader_priority), not the leader's current one, so a leader that
    lowers its priority keeps the role until it fails, preempt or not."""
    sim, names = _cluster(seed=1, nodes=3, priorities=[100, 100, 200])
    assert sim.metrics.agreed_now() == "node-2"
    sim.set_priority(2, 50)
    sim.run(sim.now + BOUND_MS)
    if sim.metrics.agreed_now() == "node-2":
        pytest.xfail("core bug: node-2 lowered its priority 200 -> 50 and still leads %d ms later; "
                     "node-1 sees it at %d but compares with its claim's %d (seed 1)"
                     % (BOUND_MS, sim.node(1).member("node-2").priority, sim.node(1).election.leader_priority))
    assert sim.metrics.agreed_now() == "node-1"


def test_stale_metadata_starts_no_claim_war():
    """Core bug: node-2 raises its priority 0 -> 200 as the cluster splits and
    node-1 misses the news (node-2's Alive used up its retransmissions). node-1
    follows node-2's claim, drops it at once (priority 0 in its table) and
    claims term + 1; node-2 outranks it at once (preempt, delay long past):
    two terms per round trip, about 10 000 terms a second, until a state sync
    fixes node-1's table. (Found by the machine above: seed 148.)"""
    names = [node_name(index, 6) for index in range(6)] + [FORGER]
    sim, _ = _cluster(seed=148, names=names, priorities=[200, 200, 0, 200, 100, 100, 255],
                      untrusted=(FORGER,))
    sim.restart(0)
    sim.crash(3)
    sim.partition([[5], [0, 6], [1, 2, 3, 4]])
    sim.set_priority(4, 0)
    sim.set_priority(2, 200)
    sim.restart(0)
    sim.restart(0)
    start = sim.metrics.max_term
    for _ in range(20):
        sim.run(sim.now + 100)
        if sim.metrics.max_term > start + 20:
            pytest.xfail("core bug: claim war, term %d -> %d within %d ms (seed 148)"
                         % (start, sim.metrics.max_term, sim.now - 7000))
    assert sim.metrics.max_term <= start + 20


def test_returning_sole_candidate_is_followed_again():
    """Core bug: the only eligible node leads, is paused past detection and
    resumes. The others dropped it (settled_term = its term); it never lost
    the role in its own eyes, so it re-asserts the same term, which they
    ignore as stale: nobody follows it again, for ever."""
    sim, names = _cluster(seed=1, nodes=3, priorities=[0, 0, 100])
    assert sim.metrics.agreed_now() == "node-2"
    sim.pause(2)
    sim.run(sim.now + BOUND_MS)
    sim.resume(2)
    sim.run(sim.now + BOUND_MS)
    if sim.metrics.agreed_now() != "node-2":
        pytest.xfail("core bug: after its pause node-2 leads in its own eyes at term %d, followed by "
                     "nobody: %r (seed 1)" % (sim.node(2).election.leader_term,
                                              [sim.node(i).leader() for i in range(3)]))
    assert sim.metrics.agreed_now() == "node-2"
