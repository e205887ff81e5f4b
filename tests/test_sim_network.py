"""Unit tests of the simulator's scheduler and network (agent/sim/network.py).

These drive the scheduler with a tiny fake node defined here (a fake only
inside this module's unit tests), so they test the shell loop, the timer
bookkeeping and every network fault without the protocol core.
"""

import pytest

from agent.core import events, profile
from agent.sim.network import (
    DELIVER, TIMER, LinkFaults, Simulation, node_address, node_name,
)

PROFILE = profile.make("local")


class FakeNode:
    """Pings every known peer every `period` ms; answers pings; reports peers it hears of."""

    period = 100
    instances = []

    def __init__(self, name, address, profile, rng, now, priority):
        self.name = name
        self.address = address
        self.rng = rng
        self.created_at = now
        self.peers = []
        self.timer_at = now + self.period
        self.timer_calls = []
        self.received = []  # (data, addr, now)
        self.out = []
        self.events = []
        self.left = False
        self.stats = {"dropped_fake": 0, "sent_datagrams": 0}
        self.seen = set()
        FakeNode.instances.append(self)

    def join(self, seeds, now):
        for seed in seeds:
            if seed not in self.peers:
                self.peers.append(seed)

    def receive_datagram(self, data, addr, now):
        self.received.append((data, addr, now))
        kind, _, sender = data.decode().partition(":")
        if addr not in self.peers:
            self.peers.append(addr)
        if sender not in self.seen:
            self.seen.add(sender)
            self.events.append(events.MemberJoined(name=sender, address=addr, incarnation=0,
                                                   priority=100, eligible=True))
        if kind == "ping":
            self._send(b"pong:" + self.name.encode(), addr)

    def handle_timer(self, now):
        assert now >= self.timer_at, "handle_timer called early"
        self.timer_calls.append(now)
        self.timer_at = now + self.period
        for peer in self.peers:
            self._send(b"ping:" + self.name.encode(), peer)

    def _send(self, data, addr):
        self.stats["sent_datagrams"] += 1
        self.out.append((data, addr))

    def get_timer(self):
        return None if self.left else self.timer_at

    def datagrams_to_send(self, now):
        out, self.out = self.out, []
        return out

    def next_event(self):
        return self.events.pop(0) if self.events else None

    def leave(self, now):
        for peer in self.peers:
            self._send(b"bye:" + self.name.encode(), peer)
        self.left = True


def fake_sim(count=3, seed=1, **network):
    FakeNode.instances = []
    network.setdefault("latency_ms", 1)
    network.setdefault("jitter_ms", 0)
    return Simulation(count, PROFILE, seed=seed, node_factory=FakeNode, **network)


def valid_timer_entries(sim):
    """Heap timer entries that would still fire (the scheduler's view of armed timers)."""
    out = []
    for entry in sim.heap:
        if entry[2] == TIMER:
            slot = sim.slots[entry[3]]
            if slot.timer_token == entry[4]:
                assert slot.timer_at == entry[0]
                out.append(entry)
    return out


def test_names_and_addresses():
    assert node_name(7, 10) == "node-7"
    assert node_name(7, 1000) == "node-007"
    assert node_address(0) == ("10.0.0.1", 7946)
    assert node_address(251) == ("10.0.1.2", 7946)
    assert len({node_address(i) for i in range(5000)}) == 5000


def test_nodes_start_in_the_first_second_and_join_the_first_three():
    sim = fake_sim(count=6)
    sim.run(1000)
    assert all(slot.node is not None for slot in sim.slots)
    for slot in sim.slots:
        assert 0 <= slot.node.created_at < 1000
        seeds = [node_address(i) for i in range(3) if i != slot.index]
        assert slot.node.peers[:len(seeds)] == seeds
    assert sim.metrics.started == 6


def test_timer_fires_at_its_deadline_with_now_equal_to_it():
    sim = fake_sim(count=2)
    sim.run(1000)
    node = sim.node(0)
    sim.run(1500)
    expected = list(range(node.created_at + 100, 1501, 100))
    assert node.timer_calls == expected


def test_one_armed_timer_per_node_and_no_duplicate_pushes():
    sim = fake_sim(count=5)
    for until in range(100, 3000, 77):
        sim.run(until)
        armed = valid_timer_entries(sim)
        nodes = [entry[3] for entry in armed]
        assert len(nodes) == len(set(nodes)), "two live timer entries for one node"
        for slot in sim.slots:
            if slot.node is not None:
                assert nodes.count(slot.index) == 1
    # Each receive re-arms at an unchanged deadline: nothing is pushed for it,
    # so the heap holds about one timer per node plus datagrams in flight.
    timers = sum(1 for entry in sim.heap if entry[2] == TIMER)
    assert timers <= 5


def test_moved_timer_leaves_a_stale_entry_that_is_skipped():
    sim = fake_sim(count=2)
    sim.run(1000)
    slot = sim.slots[0]
    node = slot.node
    first = node.timer_at
    node.timer_at = first + 50  # the core moved its deadline later
    sim._arm(slot, node.get_timer(), sim.now)
    calls = len(node.timer_calls)
    sim.run(first)
    assert len(node.timer_calls) == calls, "stale entry fired"
    sim.run(first + 50)
    assert node.timer_calls[-1] == first + 50


def test_timer_that_never_advances_is_reported_with_the_seed():
    class StuckNode(FakeNode):
        def handle_timer(self, now):
            self.timer_calls.append(now)  # deadline not moved on

    sim = Simulation(2, PROFILE, seed=42, node_factory=StuckNode)
    with pytest.raises(RuntimeError, match="seed 42"):
        sim.run(2000)


def test_latency_and_jitter_bound_delivery_times_and_reorder():
    sim = fake_sim(count=2, latency_ms=5, jitter_ms=10)
    sent = []
    original = sim._send

    def spy(slot, data, address, now):
        sent.append(now)
        original(slot, data, address, now)

    sim._send = spy
    sim.run(5000)
    node = sim.node(1)
    delays = []
    assert all(addr == node_address(0) for _, addr, _ in node.received)
    arrivals = [at for _, _, at in node.received]
    assert arrivals == sorted(arrivals)
    # Every ping from 0 arrives 5..15 ms after a timer tick of node 0.
    ticks = sim.node(0).timer_calls
    for data, addr, at in node.received:
        if data.startswith(b"ping"):
            delays.append(min(at - t for t in ticks if t <= at))
    assert delays and min(delays) >= 5 and max(delays) <= 15
    assert len(set(delays)) > 3, "jitter draws no variety"


def test_jitter_reorders_datagrams():
    class Burst(FakeNode):
        def handle_timer(self, now):
            super().handle_timer(now)
            for number in range(20):
                self._send(b"seq:%d" % number, self.peers[0])

    sim = Simulation(2, PROFILE, seed=3, node_factory=Burst, latency_ms=1, jitter_ms=20)
    sim.run(2000)
    received = [data for data, _, _ in sim.node(1).received if data.startswith(b"seq")]
    numbers = [int(data.split(b":")[1]) for data in received]
    assert len(numbers) >= 20
    assert sorted(numbers[:20]) != numbers[:20], "20 datagrams with 0..20 ms jitter kept their order"


def test_global_loss_drops_about_that_share():
    sim = fake_sim(count=4, loss=0.3)
    sim.run(20000)
    net = sim.network
    share = net["lost"] / float(sim.sent)
    assert 0.25 < share < 0.35
    assert net["delivered"] + net["lost"] + net["to_down"] <= sim.sent + net["duplicated"]


def test_per_link_loss_only_on_that_link():
    sim = fake_sim(count=3)
    sim.set_link(0, 1, LinkFaults(loss=1.0))
    sim.run(3000)
    from_zero = [addr for _, addr, _ in sim.node(1).received if addr == node_address(0)]
    assert from_zero == []
    assert any(addr == node_address(0) for _, addr, _ in sim.node(2).received)
    assert any(addr == node_address(1) for _, addr, _ in sim.node(0).received)
    sim.set_link(0, 1, None)
    sim.run(4000)
    assert any(addr == node_address(0) for _, addr, _ in sim.node(1).received)


def test_duplication_delivers_twice():
    sim = fake_sim(count=2, duplicate=1.0)
    sim.run(1000)
    received = sim.node(1).received
    pings = [(data, at) for data, _, at in received if data.startswith(b"ping")]
    assert sim.network["duplicated"] == sim.sent
    assert len(pings) >= 2 and len(pings) % 2 == 0


def test_symmetric_partition_and_heal():
    sim = fake_sim(count=4)
    sim.run(1000)
    sim.partition([[0, 1], [2, 3]])
    assert not sim.reachable(0, 2) and sim.reachable(0, 1) and sim.reachable(2, 3)
    before = {i: len(sim.node(i).received) for i in range(4)}
    sim.run(3000)
    for index in (2, 3):
        late = [addr for data, addr, at in sim.node(index).received[before[index]:] if at > 1010]
        assert node_address(0) not in late and node_address(1) not in late
    assert sim.network["blocked"] > 0
    sim.heal()
    assert sim.reachable(0, 2)
    mark = len(sim.node(2).received)
    sim.run(4000)
    assert node_address(0) in [addr for _, addr, _ in sim.node(2).received[mark:]]


def test_one_way_block_is_asymmetric():
    sim = fake_sim(count=2)
    sim.run(1000)
    sim.block(0, 1)
    assert not sim.reachable(0, 1) and not sim.reachable(1, 0)
    mark0, mark1 = len(sim.node(0).received), len(sim.node(1).received)
    sim.run(2000)
    assert [a for d, a, t in sim.node(1).received[mark1:] if t > 1005] == []
    assert len(sim.node(0).received) > mark0  # 1 -> 0 still passes
    sim.unblock(0, 1)
    sim.run(3000)
    assert sim.node(1).received[-1][2] > 2000


def test_crash_discards_the_node_and_drops_datagrams_to_it():
    sim = fake_sim(count=3)
    sim.run(1000)
    old = sim.node(2)
    sim.schedule(1500, lambda: sim.crash(2))
    sim.run(3000)
    assert sim.node(2) is None
    assert old.timer_calls[-1] <= 1500
    assert max(at for _, _, at in old.received) <= 1500
    assert sim.network["to_down"] > 0
    assert not sim.is_up(2)
    assert sim.metrics.live_count == 2
    assert sim.total_stats()["sent_datagrams"] == sim.sent  # crashed cores' counters kept
    assert sim.metrics.crash_watches[0].target == 2


def test_restart_is_a_fresh_node_with_the_same_name_and_address():
    sim = fake_sim(count=3)
    sim.run(1000)
    old = sim.node(1)
    sim.schedule(1200, lambda: sim.crash(1))
    sim.schedule(2000, lambda: sim.restart(1))
    sim.run(3000)
    new = sim.node(1)
    assert new is not old and new.name == old.name and new.address == old.address
    assert new.created_at == 2000
    assert new.peers[:2] == [node_address(0), node_address(2)]
    assert new.rng is not old.rng  # each generation gets its own seeded stream
    assert new.timer_calls and new.timer_calls[0] == 2100
    assert sim.metrics.live_count == 3


def test_pause_queues_datagrams_and_resume_delivers_them_in_order_then_the_timer():
    sim = fake_sim(count=3)
    sim.run(1000)
    node = sim.node(0)
    sim.schedule(1500, lambda: sim.pause(0))
    sim.schedule(2500, lambda: sim.resume(0))
    sim.run(2499)
    assert node.timer_calls[-1] <= 1500
    assert max(at for _, _, at in node.received) <= 1500
    backlog = list(sim.slots[0].backlog)
    assert backlog and not sim.is_up(0)
    assert sim.metrics.live_count == 2
    count = len(node.received)
    sim.run(2500)
    handed = node.received[count:count + len(backlog)]
    assert [(data, addr) for data, addr, _ in handed] == backlog
    assert all(at == 2500 for _, _, at in handed)
    assert node.timer_calls[-1] == 2500  # the overdue timer, at the resume time
    assert sim.slots[0].backlog == []
    sim.run(2700)
    assert node.timer_calls[-2:] == [2600, 2700]
    assert sim.metrics.live_count == 3


def test_pause_and_resume_in_the_same_millisecond_as_the_timer():
    sim = fake_sim(count=2)
    sim.run(1000)
    node = sim.node(0)
    due = node.timer_at
    order = []
    # The timer entry is popped while paused; resume at that same instant
    # must still run it (the slot re-arms after a pause).
    sim.schedule(due - 1, lambda: sim.pause(0))
    sim.run(due)
    assert node.timer_calls[-1] < due
    sim.resume(0)
    sim.run(due)
    assert node.timer_calls[-1] == due
    assert len(valid_timer_entries(sim)) == 2
    del order


def test_paused_backlog_is_bounded():
    sim = fake_sim(count=3, backlog_limit=4)
    sim.run(1000)
    sim.pause(0)
    sim.run(3000)
    assert len(sim.slots[0].backlog) == 4
    assert sim.network["backlog_overflow"] > 0


def test_leave_runs_until_left_then_departs():
    sim = fake_sim(count=3)
    sim.run(1000)
    sim.schedule(1500, lambda: sim.leave(2))
    sim.run(2000)
    assert sim.node(2) is None and sim.slots[2].departed
    byes = [data for data, _, _ in sim.node(0).received if data.startswith(b"bye")]
    assert byes == [b"bye:node-2"]
    assert sim.metrics.live_count == 2


def test_events_feed_convergence():
    sim = fake_sim(count=4)
    sim.run(3000)
    assert sim.metrics.converged()
    assert sim.metrics.convergence_at is not None and sim.metrics.convergence_at < 1200


def trace(seed, **network):
    sim = fake_sim(count=5, seed=seed, **network)
    sim.run(5000)
    return [(node.name, node.created_at, node.timer_calls, node.received)
            for node in FakeNode.instances]


def test_same_seed_same_run_and_another_seed_differs():
    faults = dict(loss=0.2, jitter_ms=7, duplicate=0.1)
    assert trace(5, **faults) == trace(5, **faults)
    assert trace(5, **faults) != trace(6, **faults)


def test_schedule_never_goes_back_in_time():
    sim = fake_sim(count=2)
    sim.run(1000)
    seen = []
    sim.schedule(10, lambda: seen.append(sim.now))
    sim.run(1001)
    assert seen == [1000]


def test_link_faults_validate():
    with pytest.raises(ValueError):
        LinkFaults(loss=1.5)
    with pytest.raises(ValueError):
        LinkFaults(latency_ms=-1)
    with pytest.raises(ValueError):
        LinkFaults(jitter_ms=0.5)
    assert DELIVER != TIMER


def test_steady_since_follows_up_times_and_the_reachability_history():
    sim = fake_sim(count=3)
    sim.run(1000)
    both_up = max(sim.slots[0].up_since, sim.slots[1].up_since)
    assert sim.steady_since(0, 1, both_up) and not sim.steady_since(0, 1, both_up - 1)
    sim.run(2000)
    sim.partition([[0], [1, 2]])
    sim.run(2500)
    assert not sim.steady_since(0, 1, 2400)         # cut now
    sim.heal()
    sim.run(3000)
    assert not sim.steady_since(0, 1, 1500)         # the cut (2000..2500) lies in the window
    assert sim.steady_since(0, 1, 2500)             # healed at 2500: steady since then
    assert sim.steady_since(1, 2, 1500)             # 1 and 2 were on the same side
    sim.block(2, 1)
    sim.run(3200)
    sim.unblock(2, 1)
    sim.run(3500)
    assert not sim.steady_since(1, 2, 3100) and sim.steady_since(1, 2, 3200)
    sim.pause(2)
    sim.run(3600)
    assert not sim.steady_since(1, 2, 3200)         # paused: down
    sim.resume(2)
    sim.run(3700)
    assert not sim.steady_since(1, 2, 3200) and sim.steady_since(1, 2, 3600)
    sim.crash(2)
    assert not sim.steady_since(1, 2, 0)


def test_network_history_keeps_one_entry_per_instant():
    sim = fake_sim(count=3)
    sim.run(1000)
    sim.partition([[0], [1, 2]])
    sim.heal()                                      # same millisecond: the split never existed
    assert [entry[0] for entry in sim.net_history] == [0, 1000]
    assert sim.steady_since(0, 1, max(sim.slots[0].up_since, sim.slots[1].up_since))


def test_inject_sends_a_crafted_datagram_through_the_network_faults():
    sim = fake_sim(count=3)
    sim.run(1000)
    sim.inject(0, b"ping:crafted", node_address(1))
    sim.run(1010)
    assert any(data == b"ping:crafted" for data, _, _ in sim.node(1).received)
    sim.partition([[0], [1, 2]])
    blocked = sim.network["blocked"]
    sim.inject(0, b"ping:crafted", node_address(1))
    assert sim.network["blocked"] == blocked + 1


def test_priority_and_eligibility_outlive_a_restart():
    sim = Simulation(3, PROFILE, seed=1, latency_ms=0, jitter_ms=1)
    sim.run(3000)
    sim.set_priority(1, 7)
    sim.set_eligible(1, False)
    assert (sim.node(1).priority, sim.node(1).eligible_by_operator()) == (7, False)
    sim.restart(1)
    assert (sim.node(1).priority, sim.node(1).eligible_by_operator()) == (7, False)
    sim.pause(2)
    sim.set_priority(2, 9)                          # a paused node acts on resume
    assert sim.node(2).priority == 100
    sim.resume(2)
    assert sim.node(2).priority == 9


def test_a_restarted_core_starts_from_its_saved_term():
    # As the daemon's term file: the highest term in the slot's leader events.
    sim = Simulation(3, PROFILE, seed=1, latency_ms=0, jitter_ms=1)
    sim.run(8000)
    term = sim.node(0).election.term
    assert term >= 1 and sim.slots[0].saved_term == term
    sim.restart(0)
    assert sim.node(0).election.term == term


def test_names_must_be_distinct_and_one_per_node():
    with pytest.raises(ValueError):
        Simulation(2, PROFILE, names=["a"], node_factory=FakeNode)
    with pytest.raises(ValueError):
        Simulation(2, PROFILE, names=["a", "a"], node_factory=FakeNode)
    sim = Simulation(2, PROFILE, names=["a", "b"], node_factory=FakeNode)
    assert sim.index_by_name == {"a": 0, "b": 1}
