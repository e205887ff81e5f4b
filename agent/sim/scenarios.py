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
  time allowed after the fault for healing and rejoining.
"""

import math
import random

STEADY = "steady"
CRASH_RANDOM = "crash-random"
CRASH_LEADER = "crash-leader"
PARTITION_HEAL = "partition-heal"
PAUSE = "pause"
RESTART = "restart"
RESIGN = "resign"

# The smallest default duration: a minute of virtual time.
MIN_DEFAULT_DURATION_MS = 60 * 1000


def suspicion_min_ms(profile, nodes):
    """The minimum suspicion timeout at cluster size nodes (profile.py's formula)."""
    return int(profile.suspicion_mult * max(1.0, math.log10(max(nodes, 1))) * profile.probe_interval_ms)


class Plan:
    """The timings of one scenario run (int ms), derived from profile and size, and its rng."""

    def __init__(self, scenario, profile, nodes, seed, start_window_ms=1000):
        self.scenario = scenario
        self.nodes = nodes
        interval = profile.probe_interval_ms
        # Startup: everyone started, joined through a seed, and heard of everyone.
        self.converge_ms = start_window_ms + 20 * interval + 4 * profile.join_retry_ms
        self.settle_ms = 10 * interval
        self.detect_ms = 6 * interval + suspicion_min_ms(profile, nodes)
        self.hold_ms = 2 * self.detect_ms
        self.partition_hold_ms = 3 * self.detect_ms
        self.recovery_ms = 2 * profile.dead_reprobe_interval_ms + 10 * interval
        self.fallback_ms = self.converge_ms + self.settle_ms
        # Picks (which node crashes, how the cluster splits) come from their own stream.
        self.rng = random.Random("leaderd-sim/scenario/%d/%s" % (seed, scenario))
        # Filled in when the fault happens (for the report).
        self.fault_at = None
        self.fault_node = None

    def default_duration_ms(self):
        """Virtual time enough for the scenario: at least a minute."""
        fault = self.fallback_ms
        if self.scenario == STEADY:
            needed = 0
        elif self.scenario in (CRASH_RANDOM, CRASH_LEADER, RESIGN):
            needed = fault + 3 * self.detect_ms
        elif self.scenario == PARTITION_HEAL:
            needed = fault + self.partition_hold_ms + self.recovery_ms
        else:
            needed = fault + self.hold_ms + self.recovery_ms
        # Whole tens of seconds read better in a report.
        needed = -(-needed // 10000) * 10000
        return max(MIN_DEFAULT_DURATION_MS, needed)


def when_settled(sim, plan, action):
    """Schedule action() settle_ms after the first convergence, or at fallback_ms: once."""
    state = {"done": False}

    def fire():
        if not state["done"]:
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
    """The agreed leader when the core elects one; else the live node with the highest (priority, name)."""
    metrics = sim.metrics
    if sim.election and metrics.agreed is not None and metrics.agreed in sim.index_by_name:
        index = sim.index_by_name[metrics.agreed]
        if metrics.live[index]:
            return index
    best = None
    for index in sim.live_indexes():
        slot = sim.slots[index]
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
    """The leader leaves gracefully (without election: a random node); measures failover."""
    def act():
        index = pick_leader(sim, plan) if sim.election else pick_random(sim, plan)
        if index is not None:
            _mark(sim, plan, index)
            sim.leave(index)
    when_settled(sim, plan, act)


# name -> (setup function, one-line description for --help)
SCENARIOS = {
    STEADY: (steady, "no faults: convergence, false alarms and traffic"),
    CRASH_RANDOM: (crash_random, "crash one random non-seed node once settled (detection)"),
    CRASH_LEADER: (crash_leader, "crash the leader once settled (detection, failover)"),
    PARTITION_HEAL: (partition_heal, "split into two halves for longer than detection, then heal"),
    PAUSE: (pause, "pause a node (gray failure) past its suspicion timeout, then resume"),
    RESTART: (restart, "crash a node, restart it with incarnation 0 (refutation, rejoin)"),
    RESIGN: (resign, "the leader leaves gracefully (without election: a random node)"),
}

# Scenarios that report rejoin_s / heal_s.
REJOIN_SCENARIOS = (PAUSE, RESTART)
HEAL_SCENARIOS = (PARTITION_HEAL,)
