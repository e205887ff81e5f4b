"""Unit tests of agent.hooks.HookRunner: settled leader changes, order, and hooks that cannot start.

Real commands (/bin/sh) in a real asyncio loop; every wait is on a condition
with a deadline. The settle window is set per test: long where a test shows
that nothing runs inside it, short where a test waits for it to pass.
"""

import asyncio
import os

import pytest

from agent.hooks import HookRunner

DEADLINE_S = 10.0

# Appends "EVENT LEADER TERM" (LEADER "-" when empty) to the file named by $1.
RECORD = ["/bin/sh", "-c", 'printf "%s %s %s\\n" "$LEADERD_EVENT" "${LEADERD_LEADER:--}" "$LEADERD_TERM" >> "$0"']


def records(path):
    try:
        with open(path) as handle:
            return [line.split() for line in handle if line.strip()]
    except FileNotFoundError:
        return []


async def wait_until(condition, what):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            pytest.fail("timed out after %.1f s waiting for %s" % (DEADLINE_S, what))
        await asyncio.sleep(0.005)


@pytest.fixture
async def make_runner():
    runners = []

    def make(hooks, settle_s=60.0, timeout_s=5.0):
        runner = HookRunner(hooks, timeout_s, "node-2", settle_s=settle_s)
        runner.start()
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.stop()


async def test_a_transient_no_leader_is_not_a_hook_run(make_runner, tmp_path):
    out = str(tmp_path / "out")
    runner = make_runner({"on_leader_change": RECORD + [out]})
    runner.leader_changed("node-0", 4)
    await wait_until(lambda: len(records(out)) == 1 and runner.idle.is_set(), "the first run")
    # A failover: no leader for a moment, then node-1 at a later term.
    runner.leader_changed(None, 4)
    runner.leader_changed("node-1", 5)
    await wait_until(lambda: len(records(out)) == 2 and runner.idle.is_set(), "the run for node-1")
    # Back to the leader already reported: no change, no run.
    runner.leader_changed(None, 5)
    runner.leader_changed("node-1", 5)
    await wait_until(lambda: runner.idle.is_set(), "the runner to be idle")
    assert records(out) == [["on_leader_change", "node-0", "4"], ["on_leader_change", "node-1", "5"]]
    assert runner.runs == 2 and runner.failures == 0


async def test_no_leader_that_lasts_the_settle_window_is_a_run_with_an_empty_leader(make_runner, tmp_path):
    out = str(tmp_path / "out")
    runner = make_runner({"on_leader_change": RECORD + [out]}, settle_s=0.2)
    runner.leader_changed("node-0", 4)
    runner.leader_changed(None, 4)
    await wait_until(lambda: len(records(out)) == 2, "the settled no-leader run")
    assert records(out) == [["on_leader_change", "node-0", "4"], ["on_leader_change", "-", "4"]]


async def test_a_run_still_waiting_its_turn_is_replaced_by_the_newer_state(make_runner, tmp_path):
    out, gate = str(tmp_path / "out"), str(tmp_path / "gate")
    # on_elected blocks until the test creates the gate file.
    blocker = ["/bin/sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.01; done; echo "$LEADERD_EVENT - x" >> "$1"',
               gate, out]
    runner = make_runner({"on_elected": blocker, "on_leader_change": RECORD + [out]})
    runner.submit("on_elected", "node-2", 3)
    await wait_until(lambda: runner.runs == 1, "on_elected to start")
    runner.leader_changed("node-2", 3)
    runner.leader_changed("node-0", 4)
    open(gate, "w").close()
    await wait_until(lambda: runner.idle.is_set() and len(records(out)) == 2, "the queue to drain")
    # In order, and on_leader_change once, with the latest state.
    assert records(out) == [["on_elected", "-", "x"], ["on_leader_change", "node-0", "4"]]


@pytest.mark.parametrize("bad", [
    {"on_elected": ["/bin/true\0"]},                           # a NUL byte in the argv
    {"on_elected": [os.path.join(os.sep, "nonexistent", "hook")]},  # no such program
])
async def test_a_hook_that_cannot_start_is_logged_and_counted_and_the_next_still_runs(
        make_runner, tmp_path, caplog, bad):
    out = str(tmp_path / "out")
    runner = make_runner(dict(bad, on_leader_change=RECORD + [out]))
    runner.submit("on_elected", "node-2", 3)
    runner.leader_changed("node-2", 3)
    await wait_until(lambda: len(records(out)) == 1 and runner.idle.is_set(), "the hook after the broken one")
    assert runner.failures == 1 and runner.runs == 2
    assert any("hook on_elected: cannot start" in r.getMessage() for r in caplog.records), caplog.text
    # The worker is alive: a later leader with a NUL byte in its environment fails alone too.
    runner.leader_changed("bad\0name", 4)
    await wait_until(lambda: runner.failures == 2 and runner.idle.is_set(), "the run with the bad environment")
    runner.leader_changed("node-0", 5)
    await wait_until(lambda: len(records(out)) == 2 and runner.idle.is_set(), "the run after the bad environment")
    assert records(out)[-1] == ["on_leader_change", "node-0", "5"]
    assert runner.failures == 2 and runner.runs == 4
