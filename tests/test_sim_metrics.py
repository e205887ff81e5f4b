"""Unit tests of the simulator's incremental metrics (agent/sim/metrics.py)."""

import random

from agent.core import events
from agent.sim.metrics import Metrics, seconds


def joined(name):
    return events.MemberJoined(name=name, address=("10.0.0.1", 7946), incarnation=0,
                               priority=100, eligible=True)


def suspected(name):
    return events.MemberSuspected(name=name, incarnation=0, by="x")


def died(name):
    return events.MemberDied(name=name, incarnation=0, by="x")


class World:
    """Metrics plus the up/reachable answers the simulation would give."""

    def __init__(self, count, election=False):
        self.metrics = Metrics(count, election=election)
        self.up = [True] * count
        self.cut = set()
        self.metrics.is_up = lambda index: self.up[index]
        self.metrics.reachable = lambda a, b: (a, b) not in self.cut and (b, a) not in self.cut
        self.count = count

    def start_all(self, now=0):
        for index in range(self.count):
            self.metrics.started += 1
            self.metrics.make_live(index, now)

    def see(self, observer, target, event_factory, now=0):
        self.metrics.observe(observer, event_factory("n%d" % target), target, now)
        self.metrics.check(now)

    def mesh(self, now=0):
        for observer in range(self.count):
            for target in range(self.count):
                if observer != target:
                    self.see(observer, target, joined, now)


def brute_good(metrics):
    live = [i for i in range(metrics.count) if metrics.live[i]]
    return sum(1 for o in live for t in live if t != o and t in metrics.views[o])


def test_seconds_rounds_to_milliseconds():
    assert seconds(None) is None
    assert seconds(1234) == 1.234
    assert seconds(0) == 0.0


def test_convergence_is_recorded_once_when_all_see_all():
    world = World(3)
    world.start_all()
    assert not world.metrics.converged()
    world.mesh(now=500)
    assert world.metrics.converged()
    assert world.metrics.convergence_at == 500
    world.see(0, 1, suspected, now=900)
    world.see(0, 1, joined, now=950)
    assert world.metrics.convergence_at == 500


def test_convergence_waits_for_every_start():
    world = World(3)
    for index in (0, 1):
        world.metrics.started += 1
        world.metrics.make_live(index, 0)
    world.see(0, 1, joined)
    world.see(1, 0, joined)
    assert world.metrics.converged() and world.metrics.convergence_at is None


def test_self_events_and_unknown_names_are_ignored():
    world = World(2)
    world.start_all()
    world.metrics.observe(0, joined("n0"), 0, 0)
    world.metrics.observe(0, joined("zz"), None, 0)
    assert world.metrics.views[0] == set()
    assert world.metrics.event_counts["member_joined"] == 2


def test_counters_match_a_brute_force_count_under_random_churn():
    rng = random.Random(7)
    world = World(8)
    world.start_all()
    metrics = world.metrics
    kinds = [joined, joined, suspected, died]
    for step in range(3000):
        roll = rng.random()
        node = rng.randrange(8)
        if roll < 0.03:
            metrics.make_down(node, step, forget=rng.random() < 0.5)
        elif roll < 0.06:
            metrics.make_live(node, step)
        else:
            target = rng.randrange(8)
            world.see(node, target, rng.choice(kinds), step)
        assert metrics.good == brute_good(metrics)
        live = [i for i in range(8) if metrics.live[i]]
        for target in range(8):
            assert metrics.seen_by[target] == sum(
                1 for o in live if o != target and target in metrics.views[o])
        for observer in range(8):
            assert metrics.live_seen[observer] == sum(
                1 for t in metrics.views[observer] if metrics.live[t])


def test_false_alarms_count_only_up_and_reachable_targets():
    world = World(3)
    world.start_all()
    world.mesh()
    world.see(0, 1, suspected)          # 1 is up and reachable: false
    world.cut.add((0, 2))
    world.see(0, 2, suspected)          # across a partition: not false
    world.up[1] = False
    world.see(2, 1, died)               # 1 is down: not false
    world.up[1] = True
    world.see(2, 1, died)               # up again: false death
    assert world.metrics.false_suspicions == 1
    assert world.metrics.false_deaths == 1


def test_detection_first_and_all():
    world = World(4)
    world.start_all()
    world.mesh()
    metrics = world.metrics
    metrics.make_down(3, 1000, forget=True)
    metrics.watch_crash(3, 1000)
    world.see(0, 3, died, now=1500)
    world.see(1, 3, died, now=1700)
    assert metrics.detection() == (1000, 1500, None)
    world.see(2, 3, died, now=2100)
    assert metrics.detection() == (1000, 1500, 2100)


def test_detection_completes_when_the_last_holdout_goes_down():
    world = World(4)
    world.start_all()
    world.mesh()
    metrics = world.metrics
    metrics.make_down(3, 1000, forget=True)
    metrics.watch_crash(3, 1000)
    world.see(0, 3, died, now=1500)
    world.see(1, 3, died, now=1600)
    metrics.make_down(2, 1800, forget=True)
    assert metrics.detection() == (1000, 1500, 1800)


def test_rejoin_and_heal_watchers():
    world = World(3)
    world.start_all()
    world.mesh()
    metrics = world.metrics
    metrics.make_down(2, 1000)
    world.see(0, 2, died, 1500)
    world.see(1, 2, died, 1500)
    metrics.make_live(2, 2000)
    metrics.watch_rejoin("rejoin_s", 2, 2000)
    metrics.watch_convergence("heal_s", 2000)
    world.see(0, 2, joined, 2100)
    assert metrics.extras["rejoin_s"] is None
    world.see(1, 2, joined, 2300)
    assert metrics.extras == {"rejoin_s": 300, "heal_s": 300}


def set_all_leaders(world, name, now):
    for index in range(world.count):
        world.metrics.set_leader(index, name, now)


def test_agreed_leader_failover_and_changes():
    world = World(3, election=True)
    world.start_all()
    metrics = world.metrics
    set_all_leaders(world, "n2", 100)
    assert metrics.agreed == "n2" and metrics.leader_changes == 0
    world.mesh(now=200)  # first convergence after the first agreement: not a change
    assert metrics.leader_changes == 0
    metrics.watch_failover("n2", 1000)
    metrics.make_down(2, 1000, forget=True)
    assert metrics.agreed == "n2"  # the survivors still follow it
    metrics.set_leader(0, "n1", 1400)
    assert metrics.failover_ms is None
    metrics.set_leader(1, "n1", 1600)
    assert metrics.agreed == "n1" and metrics.failover_ms == 600
    assert metrics.leader_changes == 1
    metrics.set_leader(0, None, 1700)
    metrics.set_leader(0, "n1", 1800)  # lost and regained, same leader: no change
    assert metrics.leader_changes == 1
