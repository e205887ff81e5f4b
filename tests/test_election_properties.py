"""Election properties under random faults: hypothesis drives the seeded simulator.

A RuleBasedStateMachine builds a small cluster (3..7 nodes, profile local,
real Ed25519 keys, preempt on) plus one insider, "forger", whose key nobody
trusts, and applies a random schedule: time passes, the network splits and
heals, nodes crash, restart, pause, change priority and eligibility, and the
forger attacks. It holds the cluster's datagram key (an insider), so all it
sends is opened; none of it may be believed:

- claims: under its own name signed with its untrusted key; under honest
  names (the receiver's own included) unsigned or with garbage 64-byte
  signatures, at forged terms (FORGED_TERM_JUMP above any real one, just
  outside the term window, the top terms) and at real ones (the leader's
  term with a higher heartbeat counter, the next term), priority up to 255;
- membership news about honest nodes: Suspect and Dead (by anyone), Left
  and Alive (priority 255, its own address or the forger's), unsigned or
  with garbage signatures, at the node's current incarnation, the next one
  and the top ones (0xFFFFFFFE, 0xFFFFFFFF), under the forger's name or
  the victim's in the datagram header;
- replays: datagrams honest nodes sent (a bounded uniform sample of all of
  them, and one of those that carried a claim; agent.sim.network.Recorder),
  re-injected later to random nodes.

Safety, after every step (and every 250 ms of simulated time):

- each node's followed term never decreases (per core; a restarted node
  starts from its saved term, as the daemon's term file gives it);
- nobody follows the forger or a forged claim: every claim a node follows
  (node.election.claim_message) carries its claimant's valid signature, and
  no node reaches a forged term;
- terms stay small: at most TERM_SLACK + TERMS_PER_STEP per fault step so
  far (each fault is worth a few elections; a claim war between two nodes,
  each re-claiming on the other's claim, is not). Only faults count:
  passing time and the forger's steps add nothing to the budget, so terms
  the forger's messages add show up as a broken bound.

Liveness, whenever the faults stop (rule `quiesce`, and at the end of every
run): the network heals and paused nodes resume; within BOUND_MS (computed
from the profile below) at most one node believes it leads, and every live
node follows the eligible live trusted node with the highest (priority,
name).

Every run is a pure function of hypothesis's draws (the simulator is seeded
by the drawn `seed`). Hypothesis draws new schedules at every run of the
suite (CI included; no example database), so each run explores schedules no
earlier run tried: that is how the machine found the bugs reproduced below.
To replay the one fixed, derandomized set instead (to compare two checkouts
on the same schedules):

    LEADERD_FIXED_SCHEDULES=1 .venv/bin/python -m pytest -q tests/test_election_properties.py

On failure it prints the falsifying schedule, step by step with the seed in
`start(...)`, and a @reproduce_failure(...) line: put it on the machine
class (ElectionMachine or SafetyMachine) to replay exactly that run.
Shrinking is off (a failing schedule can take minutes to shrink);
LEADERD_SHRINK=1 turns it on.

Below the machine, one deterministic test per core bug it found.
"""

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agent.core import profile, wire
from agent.core.suspicion import suspicion_bounds_ms
from agent.sim.network import Recorder, Simulation, node_name
from agent.sim.nodes import NodeFactory

PROFILE = profile.make("local")
MAX_NODES = 7
PREEMPT_DELAY_MS = 1000
FORGER = "forger"
FORGED_TERM_JUMP = 1000
TERM_WINDOW = 1 << 16  # election._TERM_WINDOW: a claim further above the highest term seen is refused
TOP = 0xFFFFFFFF
TERM_SLACK = 10
TERMS_PER_STEP = 4
# Datagrams kept for replay, per recorder.
RECORDED = 64
# The longest a forged datagram takes to arrive (latency 0, jitter 1 ms).
DELIVERY_MS = 2


def bound_ms(prof, nodes, preempt_delay_ms):
    """Time after the faults stop by which every live node must follow the best node.

    Twice the sum of what has to happen in turn, in the worst case:
    - a stale suspicion ends (refuted or a death): a probe at its slowest
      (Lifeguard's worst local health), the longest suspicion, the final probe;
    - the two sides of a healed partition find each other: a node re-probes
      its dead members in turn, one per dead-member re-probe interval, so up
      to nodes - 1 intervals (the one it needs may come last);
    - the best node claims: start-up hold-down, then the preempt delay;
    - everyone hears of the claim: a re-assertion interval, a few gossip rounds.
    """
    probe = prof.probe_interval_ms * prof.awareness_max_multiplier
    suspicion = suspicion_bounds_ms(prof, nodes)[1] + prof.probe_timeout_ms
    election = prof.startup_holddown_ms + preempt_delay_ms + prof.claim_interval_ms
    reprobe = (nodes - 1) * prof.dead_reprobe_interval_ms
    return 2 * (probe + suspicion + reprobe + election + 5 * prof.gossip_interval_ms)


BOUND_MS = bound_ms(PROFILE, MAX_NODES + 1, PREEMPT_DELAY_MS)
# Enough for a cold start: join, hold-down, first claim, everybody hears it.
STARTUP_MS = 1000 + 20 * PROFILE.probe_interval_ms + 4 * PROFILE.join_retry_ms

priorities = st.sampled_from([0, 50, 100, 100, 100, 200])
garbage = st.binary(min_size=wire.SIGNATURE_BYTES, max_size=wire.SIGNATURE_BYTES)


class ElectionMachine(RuleBasedStateMachine):
    """A small signed cluster with an untrusted insider, under random faults and forgeries."""

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
        # Replays: any datagram an honest node sent, and those carrying a claim.
        self.any_sent = Recorder(RECORDED, seed, keep=lambda src, data: src != self.forger)
        self.claims_sent = Recorder(RECORDED, seed + 1, keep=self.carries_claim)
        self.sim.recorders.extend([self.any_sent, self.claims_sent])
        self.codecs = {}
        self.signed_claims = {}  # encoded claim -> whether its claimant's signature checks out
        self.faults = 0  # fault steps so far: the term budget
        self.forgeries = 0
        self.sim.run(STARTUP_MS)

    # -- helpers ----------------------------------------------------------

    def honest(self, index):
        return index % self.nodes

    def running(self, index):
        return self.sim.node(index) is not None

    def fault(self):
        """Counts one fault step: each may be worth a few elections (TERMS_PER_STEP)."""
        self.faults += 1

    def carries_claim(self, src, data):
        if src == self.forger:
            return False
        claim = self.sim.slots[src].node.election.claim_message
        return claim is not None and claim in data

    def codec(self, sender):
        """A Codec sealing datagrams under `sender`'s name, with the cluster's datagram key."""
        codec = self.codecs.get(sender)
        if codec is None:
            node = self.sim.node(self.forger)
            codec = self.codecs[sender] = wire.Codec(node.cluster, sender, node.codec.keyring)
        return codec

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
        lines = ["seed %d, t=%d ms, %d fault steps, %d forger steps, term budget %d"
                 % (sim.seed, sim.now, self.faults, self.forgeries, self.term_limit())]
        for slot in sim.slots:
            node = slot.node
            state = "down" if node is None else ("paused" if slot.paused else "up")
            follows = node.leader() if node is not None else None
            term = node.election.term if node is not None else None
            incarnation = node.incarnation if node is not None else None
            lines.append("  %s prio=%d eligible=%s %s follows=%s term=%s incarnation=%s"
                         % (slot.name, slot.priority, slot.eligible, state, follows, term, incarnation))
        return "\n".join(lines)

    def targets(self):
        """The slots the forger sends to: every running node but itself."""
        return [slot for slot in self.sim.slots if slot.index != self.forger and slot.node is not None]

    def forger_ready(self):
        slot = self.sim.slots[self.forger]
        return slot.node is not None and not slot.paused

    def deliver(self):
        """Lets what the forger sent arrive (run_for checks the safety properties at once)."""
        self.run_for(DELIVERY_MS)

    # -- rules: faults ----------------------------------------------------

    def run_for(self, ms):
        """Advance the simulation, in slices, failing at once on a claim war (it floods)."""
        until = self.sim.now + ms
        while self.sim.now < until:
            self.sim.run(min(until, self.sim.now + 250))
            self.check_term_bound()
            self.followed_claims_are_signed()

    @rule(ms=st.integers(50, 4000))
    def advance(self, ms):
        self.run_for(ms)

    @rule(groups=st.lists(st.integers(0, 2), min_size=MAX_NODES + 1, max_size=MAX_NODES + 1))
    def partition(self, groups):
        self.fault()
        split = {}
        for index in range(self.nodes + 1):
            split.setdefault(groups[index], []).append(index)
        self.sim.partition([split[key] for key in sorted(split)])

    @rule()
    def heal(self):
        self.fault()
        self.sim.heal()

    @rule(i=st.integers(0, MAX_NODES - 1))
    def crash(self, i):
        self.fault()
        self.sim.crash(self.honest(i))

    @rule(i=st.integers(0, MAX_NODES - 1))
    def restart(self, i):
        self.fault()
        self.sim.restart(self.honest(i))

    @rule(i=st.integers(0, MAX_NODES - 1), ms=st.integers(100, 6000))
    def pause(self, i, ms):
        self.fault()
        index = self.honest(i)
        if self.running(index) and not self.sim.slots[index].paused:
            self.sim.pause(index)
            self.sim.schedule(self.sim.now + ms, lambda: self.sim.resume(index))

    @rule(i=st.integers(0, MAX_NODES - 1), p=priorities)
    def set_priority(self, i, p):
        self.fault()
        self.sim.set_priority(self.honest(i), p)

    @rule(i=st.integers(0, MAX_NODES - 1), flag=st.booleans())
    def set_eligible(self, i, flag):
        self.fault()
        self.sim.set_eligible(self.honest(i), flag)

    @rule()
    def quiesce(self):
        self.fault()
        self.settle_and_check()

    # -- rules: the forger ------------------------------------------------

    @rule(data=st.data())
    def forge(self, data):
        """The forger sends every node claims nobody may accept: (a) under its own name,
        signed with its untrusted key, at a forged term; (b) under an honest name (the
        receiver's own too) with a garbage signature, at a forged or a real term (the
        leader's own with a higher counter, or the next one); (c) unsigned, under an
        honest name, at a forged term."""
        sim = self.sim
        if not self.forger_ready():
            return
        self.forgeries += 1
        node = sim.node(self.forger)
        codec = self.codec(FORGER)
        highest = max(slot.node.election.term for slot in sim.slots if slot.node is not None)
        forged_terms = [highest + FORGED_TERM_JUMP, highest + TERM_WINDOW + 1, TOP - 1, TOP]
        claims = []  # (claim, forged term: registered with the metrics)

        term = data.draw(st.sampled_from(forged_terms), label="own_term")
        counter = data.draw(st.sampled_from([0, 1, TOP]), label="own_counter")
        signature = self.factory.signer(FORGER)(wire.claim_signed_bytes(
            codec.cluster_tag, term, FORGER, node.priority, node.incarnation, counter))
        claims.append((wire.Claim(term=term, name=FORGER, priority=node.priority, incarnation=node.incarnation,
                                  counter=counter, signature=signature), True))

        leader = node.leader()
        name = data.draw(st.sampled_from(
            ([leader[0]] if leader is not None and leader[0] != FORGER else [])
            + [sim.slots[index].name for index in range(self.nodes)]), label="garbage_as")
        member = node.member(name)
        real = sim.node(sim.index_by_name[name])
        incarnation = real.incarnation if real is not None else (member.incarnation if member else 0)
        followed = real.election if real is not None and real.election.leader == name else None
        kind = data.draw(st.sampled_from(["forged_term", "heartbeat", "next_term"]), label="garbage_kind")
        if kind == "forged_term" or (kind == "heartbeat" and followed is None):
            term, counter, forged = data.draw(st.sampled_from(forged_terms), label="garbage_term"), 0, True
        elif kind == "heartbeat":
            term, forged = followed.leader_term, False
            counter = data.draw(st.sampled_from([followed.leader_counter + 1, TOP]), label="garbage_counter")
        else:
            term, counter, forged = highest + 1, 0, False
        priority = data.draw(st.sampled_from([sim.slots[sim.index_by_name[name]].priority, 255]),
                             label="garbage_priority")
        claims.append((wire.Claim(term=term, name=name, priority=priority, incarnation=incarnation,
                                  counter=counter, signature=data.draw(garbage, label="signature")), forged))

        victim = sim.slots[self.honest(data.draw(st.integers(0, MAX_NODES - 1), label="unsigned_as"))]
        real = victim.node
        member = node.member(victim.name)
        incarnation = real.incarnation if real is not None else (member.incarnation if member else 0)
        claims.append((wire.Claim(term=data.draw(st.sampled_from(forged_terms), label="unsigned_term"),
                                  name=victim.name, priority=victim.priority, incarnation=incarnation,
                                  counter=0, signature=b""), True))

        for claim, forged in claims:
            if forged:
                sim.metrics.forged_term(claim.term, claim.name)
        for slot in self.targets():
            for claim, _ in claims:
                sim.inject(self.forger, codec.seal([wire.encode_message(claim)]), slot.address)
        self.deliver()

    @rule(data=st.data())
    def forge_membership(self, data):
        """The forger sends every node (the victim too) news about an honest node: Suspect,
        Dead, Left or Alive (priority 255), at its current incarnation, the next or a top
        one, Left and Alive unsigned or with a garbage signature."""
        sim = self.sim
        if not self.forger_ready():
            return
        self.forgeries += 1
        node = sim.node(self.forger)
        victim = sim.slots[self.honest(data.draw(st.integers(0, MAX_NODES - 1), label="victim"))]
        member = node.member(victim.name)
        known = [victim.node.incarnation] if victim.node is not None else []
        if member is not None:
            known.append(member.incarnation)
        current = data.draw(st.sampled_from(known or [0]), label="current")
        incarnation = data.draw(st.sampled_from([current, current + 1, TOP - 1, TOP]), label="incarnation")
        kind = data.draw(st.sampled_from(["suspect", "dead", "left", "alive"]), label="kind")
        signature = data.draw(st.one_of(st.just(b""), garbage), label="signature")
        if kind in ("suspect", "dead"):
            by = data.draw(st.sampled_from([FORGER] + [sim.slots[index].name for index in range(self.nodes)]),
                           label="by")
            cls = wire.Suspect if kind == "suspect" else wire.Dead
            message = cls(name=victim.name, incarnation=incarnation, by=by)
        elif kind == "left":
            message = wire.Left(name=victim.name, incarnation=incarnation, signature=signature)
        else:
            address = data.draw(st.sampled_from([victim.address, sim.slots[self.forger].address]),
                                label="address")
            message = wire.Alive(name=victim.name, incarnation=incarnation, address=address, priority=255,
                                 eligible=True, tags=member.tags if member is not None else None,
                                 signature=signature)
        sender = data.draw(st.sampled_from([FORGER, victim.name]), label="header_sender")
        datagram = self.codec(sender).seal([wire.encode_message(message)])
        for slot in self.targets():
            sim.inject(self.forger, datagram, slot.address)
        self.deliver()

    @rule(data=st.data())
    def replay(self, data):
        """The forger re-sends a datagram an honest node sent earlier (any, or one that
        carried a claim) to a few random nodes."""
        sim = self.sim
        if not self.forger_ready():
            return
        recorder = data.draw(st.sampled_from([self.any_sent, self.claims_sent]), label="recorder")
        if not recorder.kept:
            return
        self.forgeries += 1
        at, src, datagram, _ = recorder.kept[data.draw(st.integers(0, len(recorder.kept) - 1), label="recorded")]
        to = data.draw(st.lists(st.integers(0, MAX_NODES - 1), min_size=1, max_size=3, unique=True), label="to")
        for i in to:
            slot = sim.slots[self.honest(i)]
            sim.inject(self.forger, datagram, slot.address)
        self.deliver()

    # -- properties -------------------------------------------------------

    def term_limit(self):
        return TERM_SLACK + TERMS_PER_STEP * self.faults

    def check_term_bound(self):
        metrics = self.sim.metrics
        assert metrics.max_term <= self.term_limit(), (
            "term %d after %d fault steps (and %d forger steps): a claim war, or forged messages "
            "adding terms?\n%s" % (metrics.max_term, self.faults, self.forgeries, self.describe()))
        assert metrics.forged_term_adopted == 0, (
            "a node reached a forged term (>= %d)\n%s" % (metrics.forged_floor, self.describe()))

    @invariant()
    def terms_stay_small(self):
        self.check_term_bound()

    @invariant()
    def terms_only_grow(self):
        metrics = self.sim.metrics
        assert metrics.term_regressions == 0, "term regressions (time, node, from, to): %r\n%s" % (
            metrics.regressions, self.describe())

    @invariant()
    def nobody_follows_a_forged_claim(self):
        metrics = self.sim.metrics
        assert metrics.forger_followed == 0, "a node followed the forger or a forged claim\n" + self.describe()

    @invariant()
    def followed_claims_are_signed(self):
        """Every claim a node follows (its latest heartbeat) carries its claimant's valid signature."""
        codec = self.codec(FORGER)
        for slot in self.sim.slots:
            node = slot.node
            if node is None or node.election.claim_message is None:
                continue
            election = node.election
            message = election.claim_message
            _, (claim,) = codec.open(codec.seal([message]))
            ok = self.signed_claims.get(message)
            if ok is None:
                key = self.factory.trusted_keys.get(claim.name)
                ok = key is not None and self.factory.verify(key, wire.claim_signed_bytes(
                    codec.cluster_tag, claim.term, claim.name, claim.priority, claim.incarnation, claim.counter),
                    claim.signature)
                if len(self.signed_claims) >= 1024:
                    self.signed_claims.clear()
                self.signed_claims[message] = ok
            assert ok and (claim.name, claim.term) == (election.leader, election.leader_term), (
                "%s follows %r (as leader %s, term %d): not signed by its claimant\n%s"
                % (slot.name, claim, election.leader, election.leader_term, self.describe()))

    def settle_and_check(self):
        sim = self.sim
        sim.heal()
        for index in range(sim.count):
            sim.resume(index)
        expected = self.expected_leader()
        # Waits for the outcome, up to the bound (it usually comes far sooner).
        deadline = sim.now + BOUND_MS
        while True:
            follows = {}
            leaders = []
            for index in sim.live_indexes():
                node = sim.node(index)
                leader = node.leader()
                follows[sim.slots[index].name] = leader[0] if leader else None
                if node.is_leader():
                    leaders.append(sim.slots[index].name)
            if sim.now >= deadline or (len(leaders) <= 1 and set(follows.values()) == {expected}):
                break
            self.run_for(250)
        assert len(leaders) <= 1, "%d ms after the faults stopped, %r all believe they lead\n%s" % (
            BOUND_MS, leaders, self.describe())
        assert set(follows.values()) == {expected}, (
            "%d ms after the faults stopped, expected every live node to follow %s, got %r\n%s"
            % (BOUND_MS, expected, follows, self.describe()))

    # Liveness (one agreed, best leader within a bound after the faults)
    # is checked by TestElection; TestElectionSafety checks the safety
    # invariants only, through the same schedules.
    CHECK_LIVENESS = True

    def teardown(self):
        if hasattr(self, "sim"):
            self.fault()
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
    max_examples=150, stateful_step_count=30, deadline=None,
    derandomize=bool(os.environ.get("LEADERD_FIXED_SCHEDULES")), database=None,
    print_blob=True, phases=PHASES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SafetyMachine.TestCase.settings = ElectionMachine.TestCase.settings
TestElectionSafety = SafetyMachine.TestCase
TestElection = ElectionMachine.TestCase



# --- Core bugs the machine found, one deterministic reproduction each -------
#
# Each test reproduces one bug the machine above found (seed and schedule
# fixed); they passed once agent/core was fixed, and guard the fixes.


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

    Was a core bug (agent/core/election.py receive_claim): a node that does
    not lead and gets a claim under its own name took its term unverified
    (it read it as a claim from a past life of its own) and claimed term + 1,
    so one unsigned datagram from an insider moved every node's fencing
    token by as much as the insider liked; at term 0xFFFFFFFF the next claim
    raised ValueError out of receive_datagram.
    """
    sim, names = _cluster(seed=1)
    leader = sim.metrics.agreed_now()
    victim = next(slot for slot in sim.slots if slot.node is not None and slot.name != leader)
    node = victim.node
    before = node.election.term
    codec = wire.Codec(node.cluster, names[0], node.codec.keyring)
    forged = wire.Claim(term=before + FORGED_TERM_JUMP, name=victim.name, priority=node.priority,
                        incarnation=node.incarnation, counter=0, signature=b"")
    sim.metrics.forged_term(forged.term, victim.name)
    sim.inject(0, codec.seal([wire.encode_message(forged)]), victim.address)
    sim.run(sim.now + 3000)
    assert not sim.metrics.forged_term_adopted and node.election.term < forged.term, (
        "an unsigned claim under the receiver's own name moved its term from %d to %d (seed 1)"
        % (before, node.election.term))
    assert sim.metrics.agreed_now() == leader


def test_leader_that_lowers_its_priority_is_preempted():
    """Was a core bug: preemption compared with the priority in the leader's
    claim (Election.leader_priority), not the leader's current one, so a leader
    that lowered its priority kept the role until it failed, preempt or not."""
    sim, names = _cluster(seed=1, nodes=3, priorities=[100, 100, 200])
    assert sim.metrics.agreed_now() == "node-2"
    sim.set_priority(2, 50)
    sim.run(sim.now + BOUND_MS)
    assert sim.metrics.agreed_now() == "node-1", (
        "node-2 lowered its priority 200 -> 50; %d ms later the agreed leader is %r; node-1 sees "
        "node-2 at %d, its claim's priority is %d (seed 1)"
        % (BOUND_MS, sim.metrics.agreed_now(), sim.node(1).member("node-2").priority,
           sim.node(1).election.leader_priority))


def test_stale_metadata_starts_no_claim_war():
    """Was a core bug: node-2 raises its priority 0 -> 200 as the cluster splits
    and node-1 misses the news (node-2's Alive used up its retransmissions).
    node-1 followed node-2's claim, dropped it at once (priority 0 in its table)
    and claimed term + 1; node-2 outranked it at once (preempt, delay long
    past): two terms per round trip, about 10 000 terms a second, until a state
    sync fixed node-1's table. (Found by the machine above: seed 148.)"""
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
        assert sim.metrics.max_term <= start + 20, (
            "claim war: term %d -> %d by t=%d ms (seed 148)" % (start, sim.metrics.max_term, sim.now))


def test_returning_sole_candidate_is_followed_again():
    """Was a core bug: the only eligible node leads, is paused past detection
    and resumes. The others dropped it (settled_term = its term); it never lost
    the role in its own eyes, so it re-asserted the same term, which they
    ignored as stale: nobody followed it again, for ever."""
    sim, names = _cluster(seed=1, nodes=3, priorities=[0, 0, 100])
    assert sim.metrics.agreed_now() == "node-2"
    sim.pause(2)
    sim.run(sim.now + BOUND_MS)
    sim.resume(2)
    sim.run(sim.now + BOUND_MS)
    assert sim.metrics.agreed_now() == "node-2", (
        "after its pause node-2 leads in its own eyes at term %d, followed by: %r (seed 1)"
        % (sim.node(2).election.leader_term, [sim.node(i).leader() for i in range(3)]))


def _terms(sim):
    return [(slot.name, slot.node.leader()) for slot in sim.slots if slot.node is not None]


def test_leader_of_a_lower_term_leads_above_a_resigned_one():
    """Was a core bug (found by the machine above, seed 988): while split,
    node-1 led up to term 3 on its side and then resigned (ineligible), and
    node-0 led at term 2 on the other. After the heal node-2, which had
    followed term 3, could never follow term 2 (terms a node follows only
    grow): it showed node-0 a claim of the wrong term (a resignation left
    the previous settled claim in place), and node-0 could not lead above a
    claimant that had since signed itself ineligible. Now node-0 leads above
    term 3 and everybody follows it."""
    sim, _ = _cluster(seed=1, nodes=2, priorities=[100, 200])
    assert sim.metrics.agreed_now() == "node-1"
    sim.partition([[0], [1]])
    sim.run(sim.now + BOUND_MS)
    for _ in range(2):  # node-1 restarts twice: terms 2 and 3 on its side
        sim.restart(1)
        sim.run(sim.now + BOUND_MS)
    assert sim.node(1).election.leader_term > sim.node(0).election.leader_term, _terms(sim)
    top = sim.node(1).election.leader_term
    sim.set_eligible(1, False)
    sim.run(sim.now + 2000)
    sim.heal()
    end = sim.now + BOUND_MS
    while sim.now < end:
        sim.run(sim.now + 50)
        assert sim.node(0).leader()[0] == "node-0", (
            "t=%d: node-0 follows %r, which resigned term %d and is ineligible" % (sim.now, sim.node(0).leader(), top))
    leaders = _terms(sim)
    assert all(leader is not None and leader[0] == "node-0" and leader[1] > top for _, leader in leaders), (
        "after the heal (node-1 led term %d, then resigned): %r" % (top, leaders))


def test_leader_of_a_lower_term_leads_above_a_dead_claimant():
    """Was a core bug (found by the machine above): while split, node-1 led
    up to term 3 on its side and then crashed; node-0 led at term 2 on the
    other. After the heal node-2, which had followed term 3, could never
    follow term 2, and node-0 would not lead above a claim from a member it
    held dead (it only probed it). Now node-0 adopts the proved term and
    claims above it at its next heartbeat."""
    sim, _ = _cluster(seed=1, nodes=3, priorities=[100, 200, 0])
    sim.partition([[0], [1, 2]])
    sim.run(sim.now + BOUND_MS)
    for _ in range(2):
        sim.restart(1)
        sim.run(sim.now + BOUND_MS)
    top = sim.node(1).election.leader_term
    assert top > sim.node(0).election.leader_term, _terms(sim)
    sim.crash(1)
    sim.run(sim.now + 2000)
    sim.heal()
    sim.run(sim.now + BOUND_MS)
    leaders = _terms(sim)
    assert all(leader is not None and leader[0] == "node-0" and leader[1] > top for _, leader in leaders), (
        "after the heal (node-1 led term %d, then crashed): %r" % (top, leaders))
