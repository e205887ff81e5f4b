"""Hooks: programs run on leadership events (on_elected, on_demoted, on_leader_change).

Each hook is an argv list run without a shell, one at a time in the order of
events, with a timeout; its environment carries LEADERD_EVENT, LEADERD_LEADER,
LEADERD_TERM and LEADERD_SELF. A failing or hanging hook is logged and
killed (its whole process group); it never wedges the agent. The queue is
bounded: past it, the oldest pending run is dropped with a warning, since a
hook that cannot keep up is better served by the newest state.
"""

import asyncio
import logging
import os
import signal

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
    """Runs hook commands sequentially from a bounded queue."""

    def __init__(self, hooks, timeout_s, self_name):
        self.hooks = hooks or {}
        self.timeout_s = timeout_s
        self.self_name = self_name
        self._pending = []
        self._wakeup = asyncio.Event()
        self._task = None
        self.runs = 0
        self.failures = 0
        self.dropped = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def start(self):
        """Starts the worker task."""
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self):
        """Stops the worker; a hook still running is killed (callers wait for `idle` first)."""
        await cancel_task(self._task)
        self._task = None

    def update(self, hooks, timeout_s):
        """Swaps the hook table (SIGHUP)."""
        self.hooks = hooks or {}
        self.timeout_s = timeout_s

    def submit(self, event, leader, term):
        """Queues the hook for `event` (on_elected, on_demoted, on_leader_change), if configured."""
        argv = self.hooks.get(event)
        if not argv:
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0)
            self.dropped += 1
            log.warning("hook queue full: dropped the oldest pending hook run")
        env = child_environment()
        env.update({
            "LEADERD_EVENT": event,
            "LEADERD_LEADER": leader or "",
            "LEADERD_TERM": str(term),
            "LEADERD_SELF": self.self_name,
        })
        self._pending.append((event, list(argv), env))
        self.idle.clear()
        self._wakeup.set()

    async def _worker(self):
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                event, argv, env = self._pending.pop(0)
                await self._run(event, argv, env)
            self.idle.set()

    async def _run(self, event, argv, env):
        self.runs += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        except OSError as exc:
            self.failures += 1
            log.error("hook %s: cannot start %s: %s", event, argv[0], exc)
            return
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except asyncio.TimeoutError:
            self.failures += 1
            log.error("hook %s: %s still running after %.1fs: killed", event, argv[0], self.timeout_s)
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
    """Cancels an asyncio task (or None) and waits until it has ended."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
