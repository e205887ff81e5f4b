"""Tests for agent.core.suspicion (run under CPython pytest and MicroPython)."""

from agent.core import profile
from agent.core import suspicion
from agent.core.suspicion import Suspicion, remaining_suspicion_ms, suspicion_bounds_ms


def test_remaining_suspicion_memberlist_table():
    # memberlist suspicion_test.go TestSuspicion_remainingSuspicionTime,
    # seconds converted to ms: (confirmations, expected, elapsed, min, max, remaining)
    table = [
        (0, 3, 0, 2000, 30000, 30000),
        (1, 3, 2000, 2000, 30000, 14000),
        (2, 3, 3000, 2000, 30000, 4810),
        (3, 3, 4000, 2000, 30000, -2000),
        (4, 3, 5000, 2000, 30000, -3000),
        (5, 3, 10000, 2000, 30000, -8000),
    ]
    for c, k, elapsed, lo, hi, expected in table:
        got = remaining_suspicion_ms(c, k, elapsed, lo, hi)
        assert got == expected, (c, k, elapsed, got, expected)
        assert isinstance(got, int)


def test_remaining_suspicion_edge_table():
    # (confirmations, expected, elapsed, min, max, remaining)
    table = [
        # No confirmations expected: always the minimum.
        (0, 0, 0, 1000, 6000, 1000),
        (5, 0, 300, 1000, 6000, 700),
        (0, -1, 0, 1000, 6000, 1000),
        # One expected: max, then straight to min.
        (0, 1, 0, 1000, 6000, 6000),
        (1, 1, 0, 1000, 6000, 1000),
        # lan at 100 members: min 2 s, max 12 s, 3 confirmations.
        (0, 3, 0, 2000, 12000, 12000),
        (1, 3, 0, 2000, 12000, 7000),
        (2, 3, 0, 2000, 12000, 4075),
        (3, 3, 0, 2000, 12000, 2000),
        # min == max: nothing to shorten.
        (0, 3, 0, 500, 500, 500),
        (2, 3, 100, 500, 500, 400),
        # Elapsed beyond the timeout goes negative.
        (0, 3, 13000, 2000, 12000, -1000),
    ]
    for c, k, elapsed, lo, hi, expected in table:
        got = remaining_suspicion_ms(c, k, elapsed, lo, hi)
        assert got == expected, (c, k, elapsed, lo, hi, got, expected)


def test_timeout_falls_monotonically_to_min():
    for k in (1, 2, 3, 5, 8, 20):
        previous = None
        for c in range(k + 2):
            timeout = suspicion.suspicion_timeout_ms(c, k, 1000, 6000)
            assert 1000 <= timeout <= 6000, (c, k, timeout)
            if previous is not None:
                assert timeout <= previous, (c, k, timeout, previous)
            previous = timeout
        assert suspicion.suspicion_timeout_ms(0, k, 1000, 6000) == 6000
        assert suspicion.suspicion_timeout_ms(k, k, 1000, 6000) == 1000


def test_suspicion_bounds_table():
    lan = profile.lan()  # probe 500 ms, suspicion_mult 2, max mult 6
    wan = profile.wan()  # probe 3000 ms, suspicion_mult 6, max mult 6
    local = profile.local()  # probe 150 ms, suspicion_mult 2, max mult 6
    # (profile, members, min_ms, max_ms)
    table = [
        (lan, 0, 1000, 6000),
        (lan, 1, 1000, 6000),
        (lan, 2, 1000, 6000),
        (lan, 10, 1000, 6000),
        (lan, 11, 1041, 6246),
        (lan, 50, 1699, 10194),
        (lan, 100, 2000, 12000),
        (lan, 1000, 3000, 18000),
        (wan, 5, 18000, 108000),
        (wan, 100, 36000, 216000),
        (local, 100, 600, 3600),
        (lan.replace(suspicion_mult=4, probe_interval_ms=1000, probe_timeout_ms=500), 100, 8000, 48000),
    ]
    for prof, n, lo, hi in table:
        got = suspicion_bounds_ms(prof, n)
        assert got == (lo, hi), (prof.name, n, got, (lo, hi))
        assert isinstance(got[0], int) and isinstance(got[1], int)


def test_suspicion_confirmations_shorten_deadline():
    s = Suspicion("a", 10000, 2000, 30000, 3)
    assert s.by == "a"
    assert s.started_ms == 10000
    assert s.confirmations == 0
    assert s.deadline_ms() == 40000
    assert s.remaining_ms(12000) == 28000
    # The first suspecter never confirms its own suspicion.
    assert s.confirm("a") is False
    assert s.confirmations == 0
    # (confirmer, accepted, confirmations after, deadline after)
    steps = [
        ("b", True, 1, 26000),
        ("b", False, 1, 26000),
        ("c", True, 2, 17810),
        ("a", False, 2, 17810),
        ("d", True, 3, 12000),
        # Already at the expected count: no one else counts.
        ("e", False, 3, 12000),
    ]
    for name, accepted, count, deadline in steps:
        assert s.confirm(name) is accepted, name
        assert s.confirmations == count, (name, s.confirmations)
        assert s.deadline_ms() == deadline, (name, s.deadline_ms())
    assert s.remaining_ms(13000) == -1000


def test_suspicion_without_expected_confirmations():
    s = Suspicion("a", 500, 1000, 6000, 0)
    assert s.deadline_ms() == 1500
    assert s.confirm("b") is False
    assert s.confirmations == 0
    assert s.deadline_ms() == 1500


def test_suspicion_rejects_bad_bounds():
    for lo, hi in ((-1, 10), (10, 5)):
        try:
            Suspicion("a", 0, lo, hi, 3)
        except ValueError:
            continue
        assert False, (lo, hi)


def test_suspicion_repr_names_the_suspecter():
    assert "'a'" in repr(Suspicion("a", 0, 1000, 6000, 3))
