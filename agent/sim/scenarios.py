"""Scenarios: named fault schedules for `leaderd simulate`.

Each scenario is a function `setup(sim, plan)` that schedules actions onto a
Simulation before it runs; it never acts at once. A fault goes in once the
cluster has settled: `plan.settle_ms` after the first convergence (all live
nodes see all live nodes alive), or at `plan.fallback_ms` if the cluster has
not converged by then, so every run exercises its fault.

Timings derive from the profile and the cluster size (`Plan`), so each
scenario means the same thing for `local`, `lan` and `wan`:

- detect_ms ~ the time for everyone to declare a crashed node dead: a few
  probe rounds until someone probes it and others confirm, plus the minimum
  suspicion timeout (profile.py's formula);
- hold_ms = 2 * detect_ms: how long a pause lasts, and how long a crashed
  node stays down before its restart, so that the fault is detected
  everywhere before it ends;
- partition_hold_ms = 3 * detect_ms: a partition lasts long enough for each
  side to declare the other dead and, with election, elect its own leader;
- recovery_ms ~ two dead-member re-probe intervals plus a few probe rounds:
  time allowed after the fault for healing and rejoining;
- flap_pause_ms = half the minimum suspicion timeout: a pause that no node
  may take for a death;
- forge_interval_ms = two probe intervals: how often the forger injects.

"The leader" is always the node the cores report (node.leader() and
node.is_leader()), never a guess.
"""

import math
import random

from agent.core import wire
from agent.core.suspicion import suspicion_bounds_ms

STEADY = "steady"
CRASH_RANDOM = "crash-random"
CRASH_LEADER = "crash-leader"
PARTITION_HEAL = "partition-heal"
PAUSE = "pause"
RESTART = "restart"
RESIGN = "resign"
PREEMPT = "preempt"
FLAP = "flap"
FORGED = "forged"
TRANSFER = "transfer"

# The forged scenario's extra member, and how far above every term seen its
# claims go (far enough that no honest election gets there in one run).
FORGER_NAME = "forger"
FORGER_PRIORITY = 255
FORGED_TERM_JUMP = 1000
# Pause / resume cycles of the flap scenario.
FLAP_CYCLES = 5
# Default preempt delay (the config's election.preempt_delay default: 5s).
PREEMPT_DELAY_MS = 5000

# The smallest default duration: a minute of virtual time.
MIN_DEFAULT_DURATION_MS = 60 * 1000


def suspicion_min_ms(profile, nodes):
    """The minimum suspicion timeout at cluster size nodes (profile.py's formula)."""
    return int(profile.suspicion_mult * max(1.0, math.log10(max(nodes, 1))) * profile.probe_interval_ms)


class Plan:
    """The timings of one scenario run (int ms), derived from profile and size, and its rng."""

    def __init__(self, scenario, profile, nodes, seed, start_window_ms=1000, preempt_delay_ms=PREEMPT_DELAY_MS):
        self.scenario = scenario
        self.nodes = nodes
        interval = profile.probe_interval_ms
        self.interval_ms = interval
        self.preempt_delay_ms = preempt_delay_ms
        # Startup: everyone started, joined through a seed, and heard of everyone.
        self.converge_ms = start_window_ms + 20 * interval + 4 * profile.join_retry_ms
        self.settle_ms = 10 * interval
        self.detect_ms = 6 * interval + suspicion_min_ms(profile, nodes)
        self.hold_ms = 2 * self.detect_ms
        self.partition_hold_ms = 3 * self.detect_ms
        self.recovery_ms = 2 * profile.dead_reprobe_interval_ms + 10 * interval
        self.fallback_ms = self.converge_ms + self.settle_ms
        self.flap_pause_ms = suspicion_bounds_ms(profile, nodes)[0] // 2
        self.flap_gap_ms = self.hold_ms
        self.forge_interval_ms = 2 * interval
        # Picks (which node crashes, how the cluster splits) come from their own stream.
        self.rng = random.Random("leaderd-sim/scenario/%d/%s" % (seed, scenario))
        # Filled in when the fault happens (for the report).
        self.fault_at = None
        self.fault_node = None
        self.extras = {}  # scenario figures for the report (preempt_s is timed by the metrics)

    def default_duration_ms(self):
        """Virtual time enough for the scenario: at least a minute."""
        fault = self.fallback_ms
        if self.scenario == STEADY:
            needed = 0
        elif self.scenario in (CRASH_RANDOM, CRASH_LEADER, RESIGN, FORGED):
            needed = fault + 3 * self.detect_ms
        elif self.scenario == PARTITION_HEAL:
            needed = fault + self.partition_hold_ms + self.recovery_ms
        elif self.scenario == PREEMPT:
            # Crash, failover (at most 3 detections), settle, restart, preempt.
            needed = (fault + 3 * self.detect_ms + self.settle_ms + self.preempt_delay_ms
                      + self.recovery_ms)
        elif self.scenario == FLAP:
            needed = fault + FLAP_CYCLES * (self.flap_pause_ms + self.flap_gap_ms)
        else:
            needed = fault + self.hold_ms + self.recovery_ms
        # Whole tens of seconds read better in a report.
        needed = -(-needed // 10000) * 10000
        return max(MIN_DEFAULT_DURATION_MS, needed)


def when_settled(sim, plan, action):
    """Schedule action() settle_ms after the first convergence, or at fallback_ms: once.

    With election, the fault also waits (up to fallback_ms more) until every
    live node follows one leader, so leader faults hit a leader everyone
    knows (the start-up hold-down grows with log10 n).
    """
    state = {"done": False}

    def fire():
        if state["done"]:
            return
        if sim.election and sim.metrics.agreed_now() is None and sim.now < 2 * plan.fallback_ms:
            sim.schedule(sim.now + 100, fire)
            return
        state["done"] = True
        action()

    sim.metrics.on_first_convergence.append(lambda now: sim.schedule(now + plan.settle_ms, fire))
    sim.schedule(plan.fallback_ms, fire)


def pick_random(sim, plan):
    """A random live node that is not a seed (the seeds are the first three), if any."""
    live = sim.live_indexes()
    others = [index for index in live if index >= len(sim.seeds)]
    pool = others or live
    return pool[plan.rng.randrange(len(pool))] if pool else None


def pick_leader(sim, plan):
    """The real leader: the live node that leads itself (node.is_leader()) and that
    most live nodes follow (node.leader()). Without election, or when no live node
    leads, the live node with the highest (priority, name)."""
    metrics = sim.metrics
    if sim.election:
        best = None
        for index in sim.live_indexes():
            node = sim.node(index)
            if node.is_leader():
                followers = metrics.votes.get(sim.slots[index].name, 0)
                if best is None or followers > best[0]:
                    best = (followers, index)
        if best is not None:
            return best[1]
    return pick_best(sim, plan)


def pick_best(sim, plan):
    """The live node with the highest (priority, name): the one that should lead."""
    best = None
    for index in sim.live_indexes():
        slot = sim.slots[index]
        if slot.name == FORGER_NAME:
            continue
        if best is None or (slot.priority, slot.name) > (sim.slots[best].priority, sim.slots[best].name):
            best = index
    return best


def _mark(sim, plan, index):
    plan.fault_at = sim.now
    plan.fault_node = sim.slots[index].name


def steady(sim, plan):
    """No faults: startup convergence, false alarms and steady traffic."""


def crash_random(sim, plan):
    """Crash one random non-seed node once settled; measures detection."""
    def act():
        index = pick_random(sim, plan)
        if index is not None:
            _mark(sim, plan, index)
            sim.crash(index)
    when_settled(sim, plan, act)


def crash_leader(sim, plan):
    """Crash the leader once settled; measures detection and failover."""
    def act():
        index = pick_leader(sim, plan)
        if index is not None:
            _mark(sim, plan, index)
            sim.crash(index)
    when_settled(sim, plan, act)


def partition_heal(sim, plan):
    """Split the cluster into two random halves for partition_hold_ms, then heal; measures heal_s."""
    def act():
        live = sim.live_indexes()
        order = live[:]
        plan.rng.shuffle(order)
        half = len(order) // 2
        plan.fault_at = sim.now
        sim.partition([sorted(order[:half]), sorted(order[half:])])
        sim.schedule(sim.now + plan.partition_hold_ms, heal)

    def heal():
        sim.heal()
        sim.metrics.watch_convergence("heal_s", sim.now)
        if sim.election:
            sim.metrics.watch_agreement("heal_leader_s", sim.now)
        sim.metrics.check(sim.now)
    when_settled(sim, plan, act)


def pause(sim, plan):
    """Pause a random node for hold_ms (longer than detection), then resume; measures rejoin_s."""
    def act():
        index = pick_random(sim, plan)
        if index is None:
            return
        _mark(sim, plan, index)
        sim.pause(index)
        sim.schedule(sim.now + plan.hold_ms, lambda: resume(index))

    def resume(index):
        sim.resume(index)
        sim.metrics.watch_rejoin("rejoin_s", index, sim.now)
        sim.metrics.check(sim.now)
    when_settled(sim, plan, act)


def restart(sim, plan):
    """Crash a random node, restart it (incarnation 0) after hold_ms; measures rejoin_s."""
    def act():
        index = pick_random(sim, plan)
        if index is None:
            return
        _mark(sim, plan, index)
        sim.crash(index)
        sim.schedule(sim.now + plan.hold_ms, lambda: start_again(index))

    def start_again(index):
        sim.restart(index)
        sim.metrics.watch_rejoin("rejoin_s", index, sim.now)
        sim.metrics.check(sim.now)
    when_settled(sim, plan, act)


def resign(sim, plan):
    """The leader (node.is_leader()) leaves gracefully with node.leave(now), which
    resigns first; without election a random node leaves. Measures failover from the leave."""
    def act():
        index = pick_leader(sim, plan) if sim.election else pick_random(sim, plan)
        if index is not None:
            _mark(sim, plan, index)
            if sim.election:
                sim.metrics.watch_failover(sim.slots[index].name, sim.now)
            sim.leave(index)
    when_settled(sim, plan, act)


def preempt(sim, plan):
    """The best node (the leader) crashes; once the others agree on a new leader it
    restarts (fresh core, same name). With preempt it takes the role back after
    preempt_delay (measured as preempt_s); with --no-preempt the sitting leader keeps it."""
    def act():
        index = pick_best(sim, plan)
        if index is None:
            return
        _mark(sim, plan, index)
        plan.extras["leader_before"] = sim.metrics.agreed_now()
        sim.crash(index)
        wait(index, sim.now + 3 * plan.detect_ms)

    def wait(index, deadline):
        if sim.metrics.failover_ms is None and sim.now < deadline:
            sim.schedule(sim.now + plan.interval_ms, lambda: wait(index, deadline))
        else:
            sim.schedule(sim.now + plan.settle_ms, lambda: back(index))

    def back(index):
        plan.extras["interim_leader"] = sim.metrics.agreed_now()
        plan.extras["restart_at_s"] = sim.now
        sim.restart(index)
        if sim.election:
            sim.metrics.watch_agreement("preempt_s", sim.now, name=sim.slots[index].name)
        sim.metrics.watch_rejoin("rejoin_s", index, sim.now)
        sim.metrics.check(sim.now)
    when_settled(sim, plan, act)


def flap(sim, plan):
    """The leader pauses for half the minimum suspicion timeout, then resumes, FLAP_CYCLES
    times, hold_ms apart: no node may declare it dead and the leader must not change."""
    plan.extras["flaps"] = 0
    plan.extras["flap_pause_s"] = plan.flap_pause_ms

    def cycle(round_number):
        index = pick_leader(sim, plan)
        if index is None:
            return
        if round_number == 0:
            _mark(sim, plan, index)
        sim.pause(index)
        sim.schedule(sim.now + plan.flap_pause_ms, lambda: resume(index, round_number))

    def resume(index, round_number):
        sim.resume(index)
        plan.extras["flaps"] += 1
        if round_number + 1 < FLAP_CYCLES:
            sim.schedule(sim.now + plan.flap_gap_ms, lambda: cycle(round_number + 1))
    when_settled(sim, plan, lambda: cycle(0))


def forged(sim, plan):
    """An insider (member "forger": it holds the cluster key, its own Ed25519 key is in
    nobody's trust list) injects, every forge_interval_ms to every node, real datagrams
    with (a) a claim under its own name, signed with its untrusted key, and (b) a claim
    under the current leader's name with a random 64-byte signature, both at a term
    FORGED_TERM_JUMP above any term seen. Nobody may follow either."""
    forger = sim.index_by_name[FORGER_NAME]
    sim.metrics.forger = FORGER_NAME
    plan.extras["forged_sent"] = 0
    state = {}

    def inject():
        node = sim.node(forger)
        if node is None or sim.slots[forger].paused:
            sim.schedule(sim.now + plan.forge_interval_ms, inject)
            return
        codec = state.get("codec")
        if codec is None:
            # A codec of its own, as a hand-made tool would have: the same
            # cluster, and no keyring (the simulated nodes run without one).
            codec = state["codec"] = wire.Codec(node.cluster, FORGER_NAME, None)
        top = 0
        for slot in sim.slots:
            if slot.node is not None and slot.index != forger:
                top = max(top, slot.node.term())
        term = top + FORGED_TERM_JUMP
        sim.metrics.forged_term(term, FORGER_NAME)
        datagrams = []
        signer = getattr(sim.node_factory, "signer", None)
        own = b""
        if signer is not None:
            own = signer(FORGER_NAME)(wire.claim_signed_bytes(
                codec.cluster_tag, term, FORGER_NAME, node.priority, node.incarnation))
        datagrams.append(codec.seal([wire.encode_message(wire.Claim(
            term=term, name=FORGER_NAME, priority=node.priority, incarnation=node.incarnation,
            signature=own))]))
        leader = node.leader()
        if leader is not None and leader[0] != FORGER_NAME:
            member = node.member(leader[0])
            sim.metrics.forged_term(term, leader[0])
            bad = plan.rng.getrandbits(8 * wire.SIGNATURE_BYTES).to_bytes(wire.SIGNATURE_BYTES, "big")
            datagrams.append(codec.seal([wire.encode_message(wire.Claim(
                term=term, name=leader[0], priority=member.priority, incarnation=member.incarnation,
                signature=bad))]))
        for slot in sim.slots:
            if slot.index != forger:
                for data in datagrams:
                    sim.inject(forger, data, slot.address)
                    plan.extras["forged_sent"] += 1
        sim.schedule(sim.now + plan.forge_interval_ms, inject)

    def act():
        plan.fault_at = sim.now
        plan.fault_node = FORGER_NAME
        inject()
    when_settled(sim, plan, act)


def transfer(sim, plan):
    """The leader hands the role (Node.transfer) to the lowest-ranked member it may name, so
    that every other candidate outranks the successor (preempt on): measures transfer_s, until
    every live node follows it; leader_at_end says whether it kept the role."""
    def act():
        index = pick_leader(sim, plan) if sim.election else None
        if index is None:
            return
        node = sim.node(index)
        ranked = sorted((sim.slots[i].priority, sim.slots[i].name, i) for i in sim.live_indexes() if i != index)
        for _, name, _ in ranked:
            try:
                node.successor(name)
            except ValueError:
                continue
            _mark(sim, plan, index)
            plan.extras["transfer_to"] = name
            sim.transfer(index, name)
            sim.metrics.watch_agreement("transfer_s", sim.now, name=name)
            return
    when_settled(sim, plan, act)


# name -> (setup function, one-line description for --help)
SCENARIOS = {
    STEADY: (steady, "no faults: convergence, false alarms and traffic"),
    CRASH_RANDOM: (crash_random, "crash one random non-seed node once settled (detection)"),
    CRASH_LEADER: (crash_leader, "crash the leader once settled (detection, failover)"),
    PARTITION_HEAL: (partition_heal, "split into two halves for longer than detection, then heal"),
    PAUSE: (pause, "pause a node (gray failure) past its suspicion timeout, then resume"),
    RESTART: (restart, "crash a node, restart it with incarnation 0 (refutation, rejoin)"),
    RESIGN: (resign, "the leader resigns and leaves gracefully (failover from the leave)"),
    PREEMPT: (preempt, "the best node crashes, then restarts: takes the role back after the "
                       "preempt delay (or not, with --no-preempt)"),
    FLAP: (flap, "the leader pauses for half a suspicion timeout, 5 times: the leader must not change"),
    FORGED: (forged, "an insider without a trusted key injects forged, higher-term claims: "
                     "nobody may follow"),
    TRANSFER: (transfer, "the leader hands the role (leaderd transfer) to the lowest-ranked "
                         "candidate: all follow it, and no one preempts it"),
}

# Scenarios that report rejoin_s / heal_s.
REJOIN_SCENARIOS = (PAUSE, RESTART, PREEMPT)
HEAL_SCENARIOS = (PARTITION_HEAL,)
# Scenarios with one extra member, named FORGER_NAME, beyond --nodes.
FORGER_SCENARIOS = (FORGED,)
