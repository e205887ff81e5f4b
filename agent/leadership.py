"""This node's leadership, followed from a program: `leadership()` and what `leaderd exec` runs on.

``Monitor`` follows the local agent over its API socket: a ``watch`` stream
for prompt news of a change, and a ``leader`` request every POLL_INTERVAL_S
as proof that the agent still answers. A node whose agent cannot be reached
(gone, or no answer for LOST_AFTER_S) is taken as not leading: a program
that cannot ask cannot know it still leads.

``leadership()`` is the asyncio context manager for programs that embed the
decision (agent.client re-exports it)::

    from agent.client import LeadershipLost, leadership

    while True:
        try:
            async with leadership() as lease:     # waits until this node leads
                await run_the_job(fencing_token=lease.term)
        except LeadershipLost as lost:            # the body was cancelled
            log("no longer leading: %s" % lost)

The body runs only while this node leads: when it is demoted, or its agent
is lost, the body is cancelled and ``async with`` raises LeadershipLost.
"""

import asyncio
import time

# How often the agent is asked who leads, and how long without an answer makes it lost.
POLL_INTERVAL_S = 1.0
LOST_AFTER_S = 3.0


class LeadershipLost(Exception):
    """The body of ``async with leadership()`` was cancelled: this node stopped leading (reason)."""

    def __init__(self, reason, term):
        Exception.__init__(self, "%s (the lease was for term %s)" % (reason, term))
        self.reason = reason
        self.term = term


class Lease:
    """What ``async with leadership()`` gives: the term this node leads in (the fencing token), its name."""

    def __init__(self, term, name):
        self.term = term
        self.name = name

    def __repr__(self):
        return "Lease(term=%r, name=%r)" % (self.term, self.name)


class Monitor:
    """This node's leadership as its agent reports it, kept current by run().

    leading, term, self_name, leader: the agent's last word (leading is False
    while the agent is lost); agent_ok: it answers; reason: why this node
    does not lead now; changed: an asyncio.Event set on every change (the
    reader clears it). log(text), if given, hears when the agent is lost and
    while it is awaited.
    """

    def __init__(self, client, log=None):
        self.client = client
        self.log = log or (lambda text: None)
        self.leading = False
        self.term = None
        self.self_name = None
        self.leader = None
        self.agent_ok = False
        self.reason = "the agent has not answered yet"
        self.last_answer = None
        self.changed = asyncio.Event()

    def update(self, reply, now):
        """A `leader` reply, the watch snapshot or an event (only those with is_leader count)."""
        self.agent_ok = True
        self.last_answer = now
        if "is_leader" not in reply:
            return
        leading = bool(reply.get("is_leader"))
        if leading != self.leading or reply.get("term") != self.term:
            self.changed.set()
        if not leading:
            self.reason = "this node no longer leads (%s leads in term %s)" % (
                reply.get("leader") or "no one", reply.get("term"))
        self.leading = leading
        self.term = reply.get("term")
        self.self_name = reply.get("self")
        self.leader = reply.get("leader")

    def lost(self, why):
        """The agent cannot be reached: not leading."""
        if self.agent_ok:
            self.log("lost the agent (%s): this node cannot know it still leads" % why)
        self.agent_ok = False
        self.leading = False
        self.reason = "the agent is lost (%s)" % why
        self.changed.set()

    async def run(self):
        """Follows the agent until cancelled."""
        watch = asyncio.ensure_future(self._watch())
        try:
            await self._poll()
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _watch(self):
        from agent.client import ClientError
        while True:
            try:
                async for event in self.client.watch():
                    self.update(event, time.monotonic())
            except (ClientError, OSError) as exc:
                self.lost(str(exc))
            await asyncio.sleep(POLL_INTERVAL_S / 2)

    async def _poll(self):
        from agent.client import ClientError
        warned_at = None
        while True:
            now = time.monotonic()
            try:
                self.update(await self.client.leader(), now)
                warned_at = None
            except (ClientError, OSError) as exc:
                if self.last_answer is None or now - self.last_answer >= LOST_AFTER_S:
                    self.lost(str(exc))
                if self.last_answer is None and (warned_at is None or now - warned_at >= 10):
                    warned_at = now
                    self.log("waiting for the agent: %s" % exc)
            await asyncio.sleep(POLL_INTERVAL_S)


class leadership:
    """``async with leadership(socket=None) as lease``: waits until this node leads, runs the body
    while it does, and cancels the body when it stops leading or its agent is lost (then raises
    LeadershipLost). lease.term is the term it leads in: the fencing token.

    socket: the agent's API socket (default: as agent.client.Client); client:
    an AsyncClient to use instead. A term change while leading (the node
    claimed again above another leader, after a partition heals) does not
    end the lease: ask `leader()` for the current term when it matters.
    """

    def __init__(self, socket=None, client=None):
        if client is None:
            from agent.client import AsyncClient
            client = AsyncClient(socket, timeout=POLL_INTERVAL_S)
        self.monitor = Monitor(client)
        self.lease = None
        self._tasks = []
        self._body = None
        self._lost = None

    async def __aenter__(self):
        monitor = self.monitor
        self._tasks = [asyncio.ensure_future(monitor.run())]
        try:
            while not monitor.leading:
                await monitor.changed.wait()
                monitor.changed.clear()
        except BaseException:
            await self._stop_tasks()
            raise
        self.lease = Lease(monitor.term, monitor.self_name)
        self._body = asyncio.current_task()
        self._tasks.append(asyncio.ensure_future(self._guard()))
        return self.lease

    async def _guard(self):
        monitor = self.monitor
        while monitor.leading:
            await monitor.changed.wait()
            monitor.changed.clear()
        self._lost = monitor.reason
        self._body.cancel()

    async def _stop_tasks(self):
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def __aexit__(self, kind, exc, tb):
        await self._stop_tasks()
        if self._lost is not None and kind is not None and issubclass(kind, asyncio.CancelledError):
            uncancel = getattr(self._body, "uncancel", None)  # Python 3.11+: our cancel, taken back
            if uncancel is not None:
                uncancel()
            raise LeadershipLost(self._lost, self.lease.term) from None
        return False
