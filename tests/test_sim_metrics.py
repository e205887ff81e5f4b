"""Unit tests of the simulator's incremental metrics (agent/sim/metrics.py)."""

import random

from agent.core import events
from agent.sim.metrics import Metrics, seconds


def joined(name):
    return events.MemberJoined(name=name, address=("10.0.0.1", 7946), incarnation=0,
                               priority=100, eligible=True)


def suspected(name, by="x"):
    return events.MemberSuspected(name=name, incarnation=0, by=by)


def died(name, by="x"):
    return events.MemberDied(name=name, incarnation=0, by=by)


def own(factory, observer):
    """The event as observer's own declaration (by = the observer's name)."""
    return lambda name: factory(name, by="n%d" % observer)


class World:
    """Metrics plus the up/reachable answers (and their history) the simulation would give."""

    def __init__(self, count, election=False):
        self.metrics = Metrics(count, election=election)
        self.metrics.names = ["n%d" % index for index in range(count)]
        self.up = [True] * count
        self.up_since = [0] * count
        self.cut = set()
        self.cut_changed = {}  # frozenset pair -> last time cut or healed
        self.metrics.is_up = lambda index: self.up[index]
        self.metrics.reachable = lambda a, b: (a, b) not in self.cut and (b, a) not in self.cut
        self.metrics.steady_since = self.steady_since
        self.metrics.suspicion_window_ms = 100
        self.metrics.death_window_ms = 1000
        self.count = count

    def set_up(self, index, up, now):
        self.up[index] = up
        if up:
            self.up_since[index] = now

    def set_cut(self, a, b, cut, now):
        (self.cut.add if cut else self.cut.discard)((a, b))
        self.cut_changed[frozenset((a, b))] = now

    def steady_since(self, a, b, since):
        return (self.up[a] and self.up[b] and self.up_since[a] <= since and self.up_since[b] <= since
                and (a, b) not in self.cut and (b, a) not in self.cut
                and self.cut_changed.get(frozenset((a, b)), 0) <= since)

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


def test_seen_false_alarms_count_every_event_about_up_and_reachable_targets():
    world = World(3)
    world.start_all()
    world.mesh()
    world.see(0, 1, suspected)          # 1 is up and reachable: seen
    world.cut.add((0, 2))
    world.see(0, 2, suspected)          # across a partition: not
    world.up[1] = False
    world.see(2, 1, died)               # 1 is down: not
    world.up[1] = True
    world.see(2, 1, died)               # up again: seen
    assert world.metrics.false_suspicions_seen == 1
    assert world.metrics.false_deaths_seen == 1
    # Nobody declared anything itself ("by" is someone else every time).
    assert world.metrics.false_suspicions == 0
    assert world.metrics.false_deaths == 0


def test_false_alarms_are_own_declarations_about_steadily_reachable_nodes():
    world = World(4)
    world.start_all()
    world.mesh()
    metrics = world.metrics
    world.see(0, 1, own(suspected, 0), now=5000)     # its own failed probe: false
    world.see(2, 1, suspected, now=5000)             # news from someone else: not counted
    assert (metrics.false_suspicions, metrics.false_suspicions_seen) == (1, 2)
    world.see(0, 1, own(died, 0), now=6000)          # its own suspicion timed out: false death
    world.see(2, 1, died, now=6000)                  # the same death, heard of: not a new one
    world.see(3, 1, own(died, 3), now=6000)          # a second declaration by another node: false
    assert (metrics.false_deaths, metrics.false_deaths_seen) == (2, 3)


def test_no_false_alarm_across_a_partition_or_restart_within_the_window():
    world = World(4)
    world.start_all()
    world.mesh()
    metrics = world.metrics
    world.set_cut(0, 1, True, 5000)
    world.see(0, 1, own(suspected, 0), now=5050)     # across the cut: a true suspicion
    world.set_cut(0, 1, False, 5200)
    world.see(0, 1, own(died, 0), now=5900)          # healed 700 ms ago < death window: excused
    world.see(0, 1, own(suspected, 0), now=5250)     # healed 50 ms ago < probe window: excused
    world.see(0, 1, own(died, 0), now=6300)          # healed 1100 ms ago: false
    assert (metrics.false_suspicions, metrics.false_deaths) == (0, 1)
    world.set_up(2, False, 7000)
    world.set_up(2, True, 7500)                      # restarted (or resumed)
    world.see(3, 2, own(died, 3), now=8000)          # it was down during the suspicion: excused
    world.set_up(3, False, 8100)
    world.set_up(3, True, 8200)                      # the observer itself was paused
    world.see(3, 0, own(suspected, 3), now=8250)     # its own probe spanned its pause: excused
    world.see(3, 0, own(suspected, 3), now=8400)     # a whole probe window later: false
    assert (metrics.false_suspicions, metrics.false_deaths) == (1, 1)


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


def test_term_regressions_are_counted_per_core():
    world = World(3, election=True)
    world.start_all()
    metrics = world.metrics
    metrics.set_leader(0, "n2", 100, term=3)
    metrics.set_leader(0, None, 200)             # no leader: the term is kept
    metrics.set_leader(0, "n1", 300, term=4)
    metrics.set_leader(0, "n2", 400, term=4)     # same term, another claimant: allowed
    assert metrics.term_regressions == 0
    metrics.set_leader(0, "n2", 500, term=2)
    assert metrics.term_regressions == 1 and metrics.regressions == [(500, 0, 4, 2)]
    metrics.observe(1, events.LeaderChanged(old=None, new="n2", term=7), None, 600)
    metrics.observe(1, events.LeaderChanged(old="n2", new=None, term=7), None, 650)
    metrics.set_leader(1, "n0", 700, term=6)
    assert metrics.term_regressions == 2
    metrics.make_down(1, 800, forget=True)
    metrics.new_core(1)                          # restarted: a fresh core starts from scratch
    metrics.make_live(1, 900)
    metrics.set_leader(1, "n0", 1000, term=1)
    assert metrics.term_regressions == 2


def test_leaders_at_once_counts_live_self_leaders():
    world = World(3, election=True)
    world.start_all()
    metrics = world.metrics
    metrics.set_leader(2, "n2", 100, term=1, is_self=True)
    assert (metrics.leaders_now, metrics.max_leaders_at_once) == (1, 1)
    metrics.make_down(2, 200)                    # paused: it still thinks so, but is not live
    metrics.set_leader(1, "n1", 300, term=2, is_self=True)
    assert (metrics.leaders_now, metrics.max_leaders_at_once) == (1, 1)
    metrics.make_live(2, 400)                    # resumed: two leaders until it hears of term 2
    assert (metrics.leaders_now, metrics.max_leaders_at_once) == (2, 2)
    metrics.set_leader(2, "n1", 410, term=2)
    assert metrics.leaders_now == 1


def test_agreement_watcher_waits_for_every_live_node():
    world = World(3, election=True)
    world.start_all()
    metrics = world.metrics
    set_all_leaders(world, "n2", 100)
    metrics.watch_agreement("any", 500)
    assert metrics.extras["any"] == 0            # already agreed
    metrics.watch_agreement("on_n1", 600, name="n1")
    metrics.set_leader(0, "n1", 700)
    metrics.set_leader(1, "n1", 800)
    assert metrics.extras["on_n1"] is None and metrics.agreed_now() is None
    metrics.set_leader(2, "n1", 900)
    assert metrics.extras["on_n1"] == 300 and metrics.agreed_now() == "n1"


def test_forger_followers_and_forged_terms_are_counted():
    world = World(3, election=True)
    world.start_all()
    metrics = world.metrics
    metrics.forger = "n9"
    metrics.forged_term(1005)
    metrics.set_leader(0, "n2", 100, term=5)
    assert (metrics.forger_followed, metrics.forged_term_adopted) == (0, 0)
    metrics.set_leader(1, "n9", 200, term=1005)
    assert (metrics.forger_followed, metrics.forged_term_adopted) == (1, 1)
