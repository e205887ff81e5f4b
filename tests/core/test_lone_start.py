"""Lone start: a join timeout after which a node stops waiting for its seeds (CPython and MicroPython).

Node(join_timeout_ms=...): with no seed answering by then, the node emits
JoinTimedOut and takes part in the election with the members it has, alone
if need be, while it keeps trying the seeds until one of them is a live
member. Without a timeout (None) it waits for a seed forever. Driven by
hand with the Net of tests/core/core_harness.py.

Plain functions and plain asserts only: see tests/mp_runner.py.
"""

from core_harness import PROFILE, Net

TIMEOUT_MS = 3000


def leaders(net):
    """{name: (leader, term)} for every running node."""
    out = {}
    for name in net._names():
        out[name] = net.by_name[name].leader()
    return out


def test_without_a_join_timeout_a_node_waits_for_its_seeds_forever():
    net = Net()
    a = net.start("a", seeds=["ghost"])
    net.run(20 * TIMEOUT_MS)
    assert a.leader() is None, net.describe()
    assert a.waiting_for_seeds() and a.has_seeds() and not a.joined
    assert not net.found("a", "join_timed_out")


def test_after_the_join_timeout_a_node_whose_seeds_never_answer_leads_alone():
    net = Net()
    ghost = net.address("ghost")
    a = net.start("a", seeds=["ghost"], join_timeout_ms=TIMEOUT_MS)
    net.run(TIMEOUT_MS - 1)
    assert a.leader() is None and a.waiting_for_seeds(), "led before the join timeout"
    assert not net.found("a", "join_timed_out")
    net.run(PROFILE.join_retry_ms)
    timed_out = net.found("a", "join_timed_out")
    assert len(timed_out) == 1, net.events["a"]
    at, event = timed_out[0]
    assert at == TIMEOUT_MS, "noticed at %d, not at the deadline" % at
    assert event.seeds == ["%s:%d" % ghost] and event.after_ms == TIMEOUT_MS, event
    assert event.as_dict() == {"event": "join_timed_out", "seeds": ["%s:%d" % ghost], "after_ms": TIMEOUT_MS}
    assert not a.waiting_for_seeds() and not a.has_seeds() and not a.joined
    elected = net.found("a", "elected")
    assert elected and elected[0][0] == TIMEOUT_MS, "the election did not run at the timeout: %r" % elected
    assert a.leader() == ("a", 1)
    net.run(10 * TIMEOUT_MS)
    assert len(net.found("a", "join_timed_out")) == 1, "reported more than once"


def test_a_seed_that_comes_up_later_merges_and_one_leader_remains():
    net = Net()
    a = net.start("a", seeds=["s"], priority=100, join_timeout_ms=TIMEOUT_MS)
    net.run(TIMEOUT_MS + PROFILE.join_retry_ms)
    assert a.leader() == ("a", 1), net.describe()
    # The seed comes up on its own (no seeds of its own: it cannot find a),
    # and leads its side. Only a's retries can bring the two together.
    s = net.start("s", priority=200)
    assert net.run(PROFILE.join_retry_ms + 2 * PROFILE.gossip_interval_ms, until=lambda: net.all_see("alive")), \
        net.describe()
    assert a.joined and s.member("a") is not None
    # preempt: s, the higher priority, ends up leading both, with a higher term.
    end = net.now + PROFILE.startup_holddown_ms + 5000 + 10 * PROFILE.probe_interval_ms
    net.run_to(end, until=lambda: leaders(net)["a"] == leaders(net)["s"] and leaders(net)["a"][0] == "s")
    assert leaders(net)["a"] == leaders(net)["s"], leaders(net)
    assert leaders(net)["a"][0] == "s", net.describe()


def test_after_a_lone_start_a_node_joined_by_others_still_tries_its_seeds():
    net = Net()
    a = net.start("a", seeds=["s"], priority=100, join_timeout_ms=TIMEOUT_MS)
    net.run(TIMEOUT_MS + PROFILE.join_retry_ms)
    c = net.start("c", seeds=["a"], priority=50)
    assert net.run(5 * PROFILE.join_retry_ms, until=lambda: a.joined and c.joined), net.describe()
    assert net.all_see("alive")
    # a is joined (c synced with it), but not with its seed's side: it goes on trying s.
    s = net.start("s", priority=200)
    assert net.run(PROFILE.join_retry_ms + 10 * PROFILE.gossip_interval_ms,
                   until=lambda: net.all_see("alive")), net.describe()
    assert s.member("c") is not None and s.member("a") is not None


def test_seeds_that_answer_in_time_mean_no_lone_start():
    net = Net()
    net.start("s", priority=200)
    a = net.start("a", seeds=["s"], priority=100, join_timeout_ms=TIMEOUT_MS)
    assert net.run(TIMEOUT_MS, until=lambda: a.joined), net.describe()
    net.run(3 * TIMEOUT_MS)
    assert not net.found("a", "join_timed_out"), net.events["a"]
    assert a.has_seeds() and not a.waiting_for_seeds()
    assert leaders(net)["a"] == leaders(net)["s"] and leaders(net)["a"][0] == "s", leaders(net)


def test_no_seeds_and_only_itself_as_seed_need_no_timeout():
    net = Net()
    alone = net.start("alone", seeds=["alone"], join_timeout_ms=TIMEOUT_MS)
    assert alone.joined and not alone.has_seeds() and not alone.waiting_for_seeds()
    net.run(TIMEOUT_MS)
    assert alone.leader() == ("alone", 1) and not net.found("alone", "join_timed_out")
