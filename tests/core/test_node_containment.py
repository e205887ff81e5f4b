"""Internal errors are contained at the facade (run under CPython and MicroPython).

A bug in the core (an exception from our own code while handling a datagram
or a timer, not bad input) is counted, reported as an internal_error event,
kept as the node's last_error, and the node goes on: it still probes, still
answers, still sees its peers. Faults are injected by replacing one bound
method on one node for a while. Plain functions and plain asserts only.
"""

from agent.core import wire

from core_harness import PROFILE, Net


class Fault(Exception):
    pass


def _raise(*args):
    raise Fault("injected")


def _cluster():
    net = Net()
    net.start("a")
    net.start("b", seeds=["a"])
    net.start("c", seeds=["a"])
    assert net.run(10 * PROFILE.probe_interval_ms, until=lambda: net.all_see("alive")), "no convergence"
    return net


def _kinds(net, name, since):
    return [e for _, e in net.events[name][since[name]:] if e.kind == "internal_error"]


def test_a_fault_in_the_timers_is_counted_reported_and_the_node_goes_on():
    net = _cluster()
    node = net.by_name["b"]
    since = net.mark()
    before = node.counters()["probes"]
    node._start_probe = _raise  # every probe fails, for a while
    start = net.now
    net.run(3 * PROFILE.probe_interval_ms)
    errors = _kinds(net, "b", since)
    assert errors, "no internal_error event"
    assert errors[0].where == "handle_timer" and errors[0].error == "Fault: injected", errors[0].as_dict()
    assert isinstance(node.last_error, Fault)
    count = node.counters()["internal_errors"]
    assert count == len(errors), (count, len(errors))
    # A fault that repeats costs a report a probe interval, never a busy loop.
    assert count <= 3 * PROFILE.probe_interval_ms // PROFILE.probe_interval_ms + 1, count
    assert node.get_timer() > start
    # The fault goes away: the node probes again and its peers never lost it.
    del node._start_probe
    net.run(5 * PROFILE.probe_interval_ms)
    assert node.counters()["probes"] > before, "b stopped probing"
    assert node.counters()["internal_errors"] == count, "errors after the fault went away"
    assert net.all_see("alive"), "a member was lost over the fault"


def test_a_fault_while_handling_a_datagram_drops_that_datagram_only():
    net = _cluster()
    node = net.by_name["c"]
    since = net.mark()
    node._handle_message = _raise
    net.run(2 * PROFILE.probe_interval_ms)
    errors = _kinds(net, "c", since)
    assert errors and errors[0].where == "receive_datagram", [e.as_dict() for e in errors]
    assert node.counters()["internal_errors"] == len(errors)
    del node._handle_message
    # It answers a ping again at once.
    a = net.by_name["a"]
    ping = a.codec.seal([wire.encode_message(wire.Ping(seq=77, target="c"))])
    node.receive_datagram(ping, a.address, net.now)
    acks = []
    for data, dst in node.datagrams_to_send(net.now):
        for msg in a.codec.open(data)[1]:
            if msg.type_code == wire.T_ACK and msg.seq == 77 and dst == a.address:
                acks.append(msg)
    assert acks, "c does not answer after the fault"
    net.run(5 * PROFILE.probe_interval_ms)
    assert net.all_see("alive")


def test_out_of_memory_is_not_contained_but_left_to_the_shell():
    # A board's shell counts MemoryError and gives its heap a moment
    # (micropython/leaderd.py): the facade must let it through.
    net = _cluster()
    node = net.by_name["a"]

    def oom(*args):
        raise MemoryError("heap")

    node._start_probe = oom
    try:
        node.handle_timer(node.get_timer() + PROFILE.probe_interval_ms)
    except MemoryError:
        pass
    else:
        raise AssertionError("MemoryError was swallowed")
    assert node.counters()["internal_errors"] == 0
