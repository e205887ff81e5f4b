"""Hooks: programs run on leadership events (on_elected, on_demoted, on_leader_change, pre_demote).

Each hook is an argv list run without a shell, one at a time in the order of
events, with a timeout; its environment carries LEADERD_EVENT, LEADERD_LEADER,
LEADERD_TERM and LEADERD_SELF. A failing or hanging hook is logged and
killed (its whole process group); it never wedges the agent. A hook that
cannot even start (no such program, a NUL byte in its argv or environment)
is logged and counted as a failure, and the next one runs.

on_leader_change runs once per *settled* change (theory of operation):
- a change to a leader (leader_changed with a new leader) settles at once;
- a change to "no leader" settles only if no leader follows within the
  settle window (one claim interval of the profile: lan 5 s, wan 15 s,
  local 2 s). A failover (leader dropped, then the next one claims) is one
  run, naming the new leader, never a run with an empty LEADERD_LEADER;
- a settled state equal to the last one run for ((leader, term) unchanged,
  e.g. the same leader back within the window) is no run;
- a run still waiting for its turn when the next settled change comes is
  replaced by it (moved to the end of the queue): the hook sees the latest
  state, and runs stay in the order of events.
on_elected and on_demoted are about this node and run at once.
pre_demote runs when the agent is about to give the role up on purpose
(maintenance, a stop, a failed health check), with a timeout of its own,
and the agent waits for it (run_now) before it resigns: in the same queue,
so never beside another hook.

The queue is bounded: past it, the oldest pending run is dropped with a
warning, since a hook that cannot keep up is better served by the newest state.
"""

import asyncio
import logging
import os
import signal
import time

log = logging.getLogger("leaderd.hooks")

MAX_PENDING = 32


# systemd's per-process variables: meant for the agent, not for what it runs.
_PRIVATE = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def child_environment():
    """The environment for hooks and health checks: ours, less systemd's private variables."""
    env = dict(os.environ)
    for key in _PRIVATE:
        env.pop(key, None)
    return env


class HookRunner:
    """Runs hook commands sequentially from a bounded queue; settles leader changes (see above)."""

    def __init__(self, hooks, timeout_s, self_name, settle_s=5.0):
        self.hooks = hooks or {}
        self.timeout_s = timeout_s
        self.self_name = self_name
        # How long a "no leader" must last to be a run of on_leader_change.
        self.settle_s = settle_s
        self._pending = []
        self._wakeup = asyncio.Event()
        self._task = None
        self._settle_timer = None
        self._unsettled_term = None   # the term of a "no leader" within its settle window
        self._last_change = None      # (leader, term) of the last settled change submitted
        self._running = 0
        self._stopping = False
        self.runs = 0
        self.failures = 0
        self.seconds = 0.0  # time spent running hooks
        self.dropped = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def pending(self):
        """Runs queued or in progress, plus a "no leader" still within its settle window."""
        return len(self._pending) + self._running + (1 if self._settle_timer is not None else 0)

    def start(self):
        """Starts the worker task."""
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self):
        """Stops the worker; a hook still running is killed (callers wait for `idle` first).

        A "no leader" still within its settle window is dropped: the agent is leaving.
        """
        self._cancel_settle()
        # The flag, not only the cancel: before Python 3.12, asyncio.wait_for
        # (the hook's timeout) can swallow a cancel that arrives as the hook
        # ends, and the worker would then wait for the next hook for ever.
        self._stopping = True
        self._wakeup.set()
        await cancel_task(self._task)
        self._task = None
        for run in self._pending:  # never run: their waiters (run_now) go on
            if run[4] is not None and not run[4].done():
                run[4].set_result(None)

    def update(self, hooks, timeout_s):
        """Swaps the hook table (SIGHUP)."""
        self.hooks = hooks or {}
        self.timeout_s = timeout_s

    def leader_changed(self, leader, term):
        """A leader_changed event (leader None: no leader now): on_leader_change once it has settled."""
        if leader is None:
            if self._settle_timer is None:
                self._settle_timer = asyncio.get_running_loop().call_later(self.settle_s, self._settled)
            self._unsettled_term = term
            return
        self._cancel_settle()
        self._settle(leader, term)

    def _settled(self):
        self._settle_timer = None
        self._settle(None, self._unsettled_term)

    def _cancel_settle(self):
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None

    def _settle(self, leader, term):
        if (leader, term) == self._last_change:
            return
        self._last_change = (leader, term)
        self._pending[:] = [run for run in self._pending if run[0] != "on_leader_change"]
        self.submit("on_leader_change", leader, term)

    async def run_now(self, event, leader, term, timeout_s, extra=None):
        """Queues the hook for event (pre_demote) with its own timeout and waits until it has run
        (after the runs queued before it: never two at once). False when none is configured."""
        future = asyncio.get_running_loop().create_future()
        if not self.submit(event, leader, term, extra, timeout_s, future):
            return False
        await future
        return True

    def submit(self, event, leader, term, extra=None, timeout_s=None, done=None):
        """Queues the hook for `event` (on_elected, on_demoted, on_leader_change), if configured;
        returns whether it was queued. extra: more environment; timeout_s: not the hooks'
        timeout; done: a future set when the run is over."""
        argv = self.hooks.get(event)
        if not argv:
            return False
        if len(self._pending) >= MAX_PENDING:
            dropped = self._pending.pop(0)
            if dropped[4] is not None and not dropped[4].done():
                dropped[4].set_result(None)  # its waiter goes on
            self.dropped += 1
            log.warning("hook queue full: dropped the oldest pending hook run")
        env = child_environment()
        env.update({
            "LEADERD_EVENT": event,
            "LEADERD_LEADER": leader or "",
            "LEADERD_TERM": str(term),
            "LEADERD_SELF": self.self_name,
        })
        env.update(extra or {})
        self._pending.append((event, list(argv), env, timeout_s, done))
        self.idle.clear()
        self._wakeup.set()
        return True

    async def _worker(self):
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and not self._stopping:
                event, argv, env, timeout_s, done = self._pending.pop(0)
                self.runs += 1
                self._running = 1
                started = time.monotonic()
                try:
                    await self._run(event, argv, env, self.timeout_s if timeout_s is None else timeout_s)
                except Exception:
                    # Our bug, not the hook's: counted, and the next hook still runs.
                    self.failures += 1
                    log.exception("hook %s: %s failed in the agent", event, argv[0])
                finally:
                    self._running = 0
                    self.seconds += time.monotonic() - started
                    if done is not None and not done.done():
                        done.set_result(None)
            self.idle.set()

    async def _run(self, event, argv, env, timeout_s):
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        except (OSError, ValueError, TypeError) as exc:
            # OSError: no such program, not executable, ...; ValueError: a NUL
            # byte in the argv or the environment (the exec cannot carry it).
            self.failures += 1
            log.error("hook %s: cannot start %r: %s", event, argv[0], exc)
            return
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.TimeoutError:
            self.failures += 1
            log.error("hook %s: %s still running after %.1fs: killed", event, argv[0], timeout_s)
            kill_group(proc)
            await proc.wait()
            return
        except asyncio.CancelledError:
            # stop() during a run (agent shutdown): never leave the hook
            # behind in its own session, where nothing would ever kill it.
            if proc.returncode is None:
                log.warning("hook %s: %s still running at shutdown: killed", event, argv[0])
                kill_group(proc)
            raise
        text = output.decode("utf-8", "replace").strip() if output else ""
        if proc.returncode != 0:
            self.failures += 1
            log.error("hook %s: %s exited with %s%s", event, argv[0], proc.returncode,
                      (": " + text[-500:]) if text else "")
        else:
            log.info("hook %s: %s ran%s", event, argv[0], (": " + text[-200:]) if text else "")


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


async def cancel_task(task):
    """Cancels an asyncio task (or None) and waits until it has ended.

    Cancelled again every 0.1 s until it ends: before Python 3.12,
    asyncio.wait_for can swallow a cancel that lands as what it waits for
    completes, and a loop would then go on for ever.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    try:
        await task
    except asyncio.CancelledError:
        pass
