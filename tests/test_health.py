"""Unit tests of agent.health.HealthChecker: rise and fall, starting unhealthy, and a task nothing kills.

record() is pure counting, tested with tables of results; the periodic task
runs real commands (true, false) in an asyncio loop, waiting on conditions
with deadlines.
"""

import asyncio
import shutil

import pytest

from agent.health import HealthChecker

TRUE = shutil.which("true") or "/bin/true"
FALSE = shutil.which("false") or "/bin/false"


def checker(rise=2, fall=3, healthy=True):
    changes = []
    return HealthChecker([TRUE], 0.01, 1.0, rise, fall, changes.append, healthy=healthy), changes


@pytest.mark.parametrize("healthy, rise, fall, results, changes", [
    (False, 2, 3, [True], []),                              # one pass is not `rise`
    (False, 2, 3, [True, True], [True]),                    # starts unhealthy: rise passes make it healthy
    (False, 3, 3, [True, True, False, True, True], []),     # a failure restarts the count
    (False, 3, 3, [True, True, False, True, True, True], [True]),
    (False, 1, 1, [False, False, False], []),               # never passing: never healthy, never reported
    (True, 2, 3, [False, False], []),
    (True, 2, 3, [False, False, False], [False]),           # fall failures in a row
    (True, 2, 3, [False, False, False, True, True], [False, True]),
])
def test_record_flips_after_rise_or_fall_results_in_a_row(healthy, rise, fall, results, changes):
    check, seen = checker(rise, fall, healthy)
    for ok in results:
        check.record(ok)
    assert seen == changes
    assert check.healthy == (changes[-1] if changes else healthy)
    assert check.checks == len(results)


def test_passes_counts_the_passes_in_a_row():
    check, _ = checker(rise=5, healthy=False)
    for ok, passes in ((True, 1), (True, 2), (False, 0), (True, 1)):
        check.record(ok)
        assert check.passes == passes


async def wait_until(predicate, timeout_s, what):
    """Polls predicate every 10 ms until it holds; fails at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting for " + what
        await asyncio.sleep(0.01)


async def test_a_callback_that_raises_kills_neither_the_task_nor_the_checks(caplog):
    calls = []

    def on_change(healthy):
        calls.append(healthy)
        raise ValueError("incarnation exhausted")

    check = HealthChecker([TRUE], 0.01, 1.0, 1, 1, on_change, healthy=False)
    check.start()
    try:
        await wait_until(lambda: calls, 10, "the first change")
        await wait_until(lambda: check.checks >= 10, 10, "10 checks after the failing callback")
        assert not check._task.done()
        # The failing change to healthy is reported once: it happened, the callback failed.
        assert calls == [True] and check.healthy is True and check.errors == 1
        assert "Traceback" in caplog.text and "incarnation exhausted" in caplog.text
        # A later change still reaches the callback.
        check.argv = [FALSE]
        await wait_until(lambda: len(calls) == 2, 10, "the change back to unhealthy")
        assert calls == [True, False] and check.errors == 2
        assert not check._task.done()
    finally:
        await check.stop()
    assert check._task is None


async def test_a_check_that_never_passes_never_reports_healthy():
    calls = []
    check = HealthChecker([FALSE], 0.01, 1.0, 2, 3, calls.append, healthy=False)
    check.start()
    try:
        await wait_until(lambda: check.checks >= 10, 10, "10 checks")
    finally:
        await check.stop()
    assert calls == [] and check.healthy is False and check.passes == 0
