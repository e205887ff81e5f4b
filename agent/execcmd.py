"""`leaderd exec -- CMD ARGS...`: run CMD while this node leads, and only then.

The runner follows the local agent over its API socket: a `watch` stream for
prompt news of a change, and a `leader` request every second as proof that
the agent still answers. It starts CMD when the agent says this node leads,
and stops it (SIGTERM to its process group, SIGKILL after the grace period)
when the node stops leading, when the agent cannot be reached (a node that
cannot ask cannot know it still leads), and when `leaderd exec` itself is
told to stop. CMD runs in a process group of its own, and the whole group is
stopped, so grandchildren do not linger.

Bounds (docs/OPERATIONS.md, "Running a job on the leader"): a demotion the
agent reports reaches the child at once (the watch stream); an agent that is
gone (socket closed, process dead) is noticed at once too, and a hung one
(the socket open, no answers) within LOST_AFTER_S; the child then has the
grace period to exit before SIGKILL.
"""

import asyncio
import os
import signal
import sys
import time

from agent.leadership import LOST_AFTER_S, POLL_INTERVAL_S, Monitor  # noqa: F401  (LOST_AFTER_S: --help)

# Between two starts of the child in one term (--restart on-failure / always).
RESTART_DELAY_S = 1.0
RESTART_POLICIES = ("on-failure", "always", "never")


def exit_status(returncode):
    """A child's exit status as a shell gives it: 128 + N for a child killed by signal N."""
    if returncode is None:
        return 0
    return 128 - returncode if returncode < 0 else returncode


class Runner:
    """One `leaderd exec`: the child, the leadership it runs under (agent.leadership.Monitor), and
    the rules above.

    client: an agent.client.AsyncClient; argv: the command; grace_s: SIGTERM
    to SIGKILL; restart: one of RESTART_POLICIES; log(text): a line for the
    operator (stderr).
    """

    def __init__(self, client, argv, grace_s, restart, log):
        self.monitor = Monitor(client, log)
        self.argv = list(argv)
        self.grace_s = grace_s
        self.restart = restart
        self.log = log
        self.done_term = None       # the term whose child is not to run again (--restart)
        self.next_start = 0.0
        self.child = None
        self.status = None          # exit status of the last child (exit_status)
        self.stopping = False

    # --- the child -------------------------------------------------------

    def _wanted(self):
        monitor = self.monitor
        if not monitor.leading:
            self.done_term = None  # a later election starts the child again
        return monitor.leading and not self.stopping and self.done_term != monitor.term

    async def _start(self):
        monitor = self.monitor
        env = dict(os.environ)
        env["LEADERD_TERM"] = str(monitor.term)
        env["LEADERD_SELF"] = str(monitor.self_name)
        env["LEADERD_LEADER"] = str(monitor.leader)
        try:
            self.child = await asyncio.create_subprocess_exec(*self.argv, env=env, start_new_session=True)
        except OSError as exc:
            self.log("cannot start %s: %s" % (self.argv[0], exc))
            self.status = 127
            self.done_term = monitor.term  # not again in this term: it would fail the same way
            return
        self.log("started %s (pid %d, term %s)" % (self.argv[0], self.child.pid, monitor.term))

    async def _group_gone(self, pgid, deadline):
        """Waits until no process is left in pgid or the deadline passes; True when none is left."""
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def _stop(self, why):
        """SIGTERM to the child's group, SIGKILL after the grace period; waits for the child."""
        child = self.child
        pgid = child.pid  # start_new_session: the child leads its own group
        self.log("stopping %s (pid %d): %s" % (self.argv[0], child.pid, why))
        started = time.monotonic()
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = started + self.grace_s
        try:
            await asyncio.wait_for(child.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        if not await self._group_gone(pgid, deadline):
            self.log("%s did not stop within %.1f s: SIGKILL" % (self.argv[0], self.grace_s))
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await child.wait()
        await self._group_gone(pgid, time.monotonic() + 1.0)
        self._ended(child, " after %.2f s" % (time.monotonic() - started))

    def _ended(self, child, after=""):
        self.status = exit_status(child.returncode)
        self.log("%s (pid %d) exited with status %d%s" % (self.argv[0], child.pid, self.status, after))
        self.child = None

    async def _reap_leftovers(self, pgid):
        # The child exited by itself; what it left in its group goes too.
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not await self._group_gone(pgid, time.monotonic() + self.grace_s):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def _reconcile(self):
        child = self.child
        if child is not None and child.returncode is not None:
            self._ended(child)
            await self._reap_leftovers(child.pid)
            if self.restart == "never" or (self.restart == "on-failure" and self.status == 0):
                self.done_term = self.monitor.term
                if self.monitor.leading:
                    self.log("not restarting (--restart %s) until this node is elected again" % self.restart)
            else:
                self.next_start = time.monotonic() + RESTART_DELAY_S
        if self.child is not None and not self._wanted():
            await self._stop("leaderd exec was told to stop" if self.stopping else self.monitor.reason)
        elif self.child is None and self._wanted() and time.monotonic() >= self.next_start:
            await self._start()

    async def run(self):
        """Runs until stop(); returns the exit status of the last child (0 if none ran)."""
        changed = self.monitor.changed
        tasks = [asyncio.ensure_future(self.monitor.run())]
        try:
            while True:
                await self._reconcile()
                if self.stopping and self.child is None:
                    break
                waits = [asyncio.ensure_future(changed.wait())]
                if self.child is not None:
                    waits.append(asyncio.ensure_future(self.child.wait()))
                await asyncio.wait(waits, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                changed.clear()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.status if self.status is not None else 0

    def stop(self):
        self.stopping = True
        self.monitor.changed.set()


def run_exec(client, argv, grace_s, restart, log=None):
    """Runs a Runner until SIGINT or SIGTERM; returns the exit status (the child's)."""
    if log is None:
        def log(text):
            print("leaderd exec: %s" % text, file=sys.stderr, flush=True)

    async def main():
        runner = Runner(client, argv, grace_s, restart, log)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        return await runner.run()

    return asyncio.run(main())
