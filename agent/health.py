"""The health check: a command run every interval; failing makes the node ineligible.

Like keepalived's track scripts: `fall` consecutive failures mark the node
unhealthy (it steps down if it leads and stops being a candidate), `rise`
consecutive successes mark it healthy again. A run that exceeds `timeout` is
killed and counts as a failure.

A node starts unhealthy (``healthy=False``, the daemon's choice): it becomes
a candidate only once its check has passed `rise` times in a row, so a node
whose check never passes is never elected. Nothing stops the periodic task
but stop(): an exception from the check or from on_change is logged with
its traceback and the next check runs on time.
"""

import asyncio
import logging

from agent.hooks import cancel_task, child_environment, kill_group

log = logging.getLogger("leaderd.health")


class HealthChecker:
    """Runs the check periodically and calls on_change(healthy) on transitions."""

    def __init__(self, argv, interval_s, timeout_s, rise, fall, on_change, healthy=True):
        self.argv = list(argv)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.rise = rise
        self.fall = fall
        self.on_change = on_change
        self.healthy = healthy
        self.checks = 0
        self.passes = 0     # checks passed in a row (0 after a failure)
        self.errors = 0     # exceptions caught in the loop (from the check or from on_change)
        self._streak = 0
        self._task = None

    def start(self):
        """Starts the periodic task."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self):
        """Stops the periodic task."""
        await cancel_task(self._task)
        self._task = None

    async def _loop(self):
        while True:
            try:
                self.record(await self.run_once())
            except asyncio.CancelledError:
                raise
            except Exception:
                # Our bug or on_change's: never the end of health checking.
                self.errors += 1
                log.exception("health check %s: error handling its result; checking again in %.1fs",
                              self.argv[0], self.interval_s)
            await asyncio.sleep(self.interval_s)

    def record(self, ok):
        """Counts one result; flips `healthy` after rise / fall results in a row."""
        self.checks += 1
        self.passes = self.passes + 1 if ok else 0
        if ok == self.healthy:
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= (self.rise if ok else self.fall):
            self._streak = 0
            self.healthy = ok
            log.warning("health check %s: node is now %s", self.argv[0],
                        "healthy (eligible)" if ok else "unhealthy (ineligible)")
            self.on_change(ok)

    async def run_once(self):
        """Runs the command once; True when it exits 0 within the timeout."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, env=child_environment(), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.error("health check: cannot start %s: %s", self.argv[0], exc)
            return False
        try:
            code = await asyncio.wait_for(proc.wait(), self.timeout_s)
        except asyncio.TimeoutError:
            kill_group(proc)
            await proc.wait()
            log.warning("health check %s timed out after %.1fs", self.argv[0], self.timeout_s)
            return False
        if code != 0:
            log.debug("health check %s exited %s", self.argv[0], code)
        return code == 0
