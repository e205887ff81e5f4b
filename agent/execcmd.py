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

# How often the agent is asked who leads (the proof it still answers), and
# how long without an answer makes it lost.
POLL_INTERVAL_S = 1.0
LOST_AFTER_S = 3.0
# Between two starts of the child in one term (--restart on-failure / always).
RESTART_DELAY_S = 1.0
RESTART_POLICIES = ("on-failure", "always", "never")


def exit_status(returncode):
    """A child's exit status as a shell gives it: 128 + N for a child killed by signal N."""
    if returncode is None:
        return 0
    return 128 - returncode if returncode < 0 else returncode


class Runner:
    """One `leaderd exec`: the child, the leadership it runs under, and the rules above.

    client: an agent.client.AsyncClient; argv: the command; grace_s: SIGTERM
    to SIGKILL; restart: one of RESTART_POLICIES; log(text): a line for the
    operator (stderr).
    """

    def __init__(self, client, argv, grace_s, restart, log):
        self.client = client
        self.argv = list(argv)
        self.grace_s = grace_s
        self.restart = restart
        self.log = log
        self.leading = False
        self.term = None
        self.self_name = None
        self.leader = None
        self.agent_ok = False
        self.last_answer = None     # monotonic time of the agent's last answer
        self.done_term = None       # the term whose child is not to run again (--restart)
        self.next_start = 0.0
        self.child = None
        self.status = None          # exit status of the last child (exit_status)
        self.starts = 0
        self.wake = asyncio.Event()
        self.stopping = False

    # --- what the agent says ---------------------------------------------

    def _update(self, reply, now):
        """A `leader` reply, the watch snapshot or a leader_changed event."""
        self.agent_ok = True
        self.last_answer = now
        if "is_leader" not in reply:
            return
        leading = bool(reply.get("is_leader"))
        if leading != self.leading or reply.get("term") != self.term:
            self.wake.set()
        if not leading:
            self.done_term = None  # a later election starts the child again
        self.leading = leading
        self.term = reply.get("term")
        self.self_name = reply.get("self")
        self.leader = reply.get("leader")

    def _lost(self, why):
        if self.agent_ok:
            self.log("lost the agent (%s): this node cannot know it still leads" % why)
        self.agent_ok = False
        self.leading = False
        self.done_term = None
        self.wake.set()

    async def _watch(self):
        from agent.client import ClientError
        while not self.stopping:
            try:
                async for event in self.client.watch():
                    self._update(event, time.monotonic())
            except ClientError as exc:
                self._lost(str(exc))
            except OSError as exc:
                self._lost(str(exc))
            await asyncio.sleep(POLL_INTERVAL_S / 2)

    async def _poll(self):
        from agent.client import ClientError
        warned_at = None
        while not self.stopping:
            now = time.monotonic()
            try:
                self._update(await self.client.leader(), now)
                warned_at = None
            except (ClientError, OSError) as exc:
                if self.last_answer is None or now - self.last_answer >= LOST_AFTER_S:
                    self._lost(str(exc))
                if warned_at is None or now - warned_at >= 10:
                    warned_at = now
                    if self.last_answer is None:
                        self.log("waiting for the agent: %s" % exc)
            await asyncio.sleep(POLL_INTERVAL_S)

    # --- the child -------------------------------------------------------

    def _wanted(self):
        return self.leading and self.agent_ok and not self.stopping and self.done_term != self.term

    async def _start(self):
        env = dict(os.environ)
        env["LEADERD_TERM"] = str(self.term)
        env["LEADERD_SELF"] = str(self.self_name)
        env["LEADERD_LEADER"] = str(self.leader)
        try:
            self.child = await asyncio.create_subprocess_exec(*self.argv, env=env, start_new_session=True)
        except OSError as exc:
            self.log("cannot start %s: %s" % (self.argv[0], exc))
            self.status = 127
            self.done_term = self.term  # not again in this term: it would fail the same way
            return
        self.starts += 1
        self.log("started %s (pid %d, term %s)" % (self.argv[0], self.child.pid, self.term))

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
                self.done_term = self.term
                if self.leading:
                    self.log("not restarting (--restart %s) until this node is elected again" % self.restart)
            else:
                self.next_start = time.monotonic() + RESTART_DELAY_S
        if self.child is not None and not self._wanted():
            why = "stopping leaderd exec" if self.stopping else (
                "the agent is lost" if not self.agent_ok else "this node no longer leads")
            await self._stop(why)
        elif self.child is None and self._wanted() and time.monotonic() >= self.next_start:
            await self._start()

    async def run(self):
        """Runs until stop(); returns the exit status of the last child (0 if none ran)."""
        tasks = [asyncio.ensure_future(self._watch()), asyncio.ensure_future(self._poll())]
        try:
            while True:
                await self._reconcile()
                if self.stopping and self.child is None:
                    break
                waits = [asyncio.ensure_future(self.wake.wait())]
                if self.child is not None:
                    waits.append(asyncio.ensure_future(self.child.wait()))
                await asyncio.wait(waits, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                self.wake.clear()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.status if self.status is not None else 0

    def stop(self):
        self.stopping = True
        self.wake.set()


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
