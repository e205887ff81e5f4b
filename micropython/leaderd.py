"""leaderd on a board: the MicroPython shell around agent.core.node.Node.

As thin as agent/daemon.py, and in the same shape (aioquic's transmit loop):
feed the core datagrams and timer expiries, send what it returns, drain its
events, re-arm one timer at get_timer(). What differs is the edge:

- asyncio is MicroPython's; the UDP socket is non-blocking and a task
  waits on it through asyncio's I/O queue (the way asyncio's own streams do).
- The clock is time.ticks_ms made monotonic: ticks_ms wraps, so the core's
  `now` is the running sum of ticks_diff between two readings (taken at
  least once a second, far more often than the wrap).
- Randomness is the port's random module (the core calls only
  getrandbits(n), n <= 32), seeded from os.urandom.
- Ed25519 is pure Python (ed25519.py). The core asks the verifier once per
  new claim, and for every other heartbeat of the leader it follows (a
  board checks no member records: member_checks=False; it follows the
  leader's verified heartbeats, and carries the members' signatures on
  unchecked). Here the verifier only queues the check and returns None (the
  core holds the claim), and a task runs it in slices of _VERIFY_BUDGET work
  units with an `await asyncio.sleep_ms(0)` between them, so the loop keeps
  answering pings; then node.verification_done(). A board signs its claims,
  heartbeats and its own Alive statements the same way (the signer queues
  the job and returns None; node.signing_done() uses the signature); only a
  resignation and a Left are signed at once: docs/BOARDS.md has the costs.
- Output is one JSON object per line on stdout (a board's USB serial):
  every core event (member_joined, leader_changed with "leader" and
  "term", claim_rejected, ...), {"log": ..., "level": ...} lines for
  warnings and errors (a dropped datagram says where from and why), and
  {"heap": ...} lines when log.heap_interval is set.

Code on the board asks the Agent who leads and is called back on changes
(the board's equivalent of the daemon's UNIX socket)::

    config = leaderd_config.load("leaderd.json")   # then drop it, agent.core.rules and .profile, as main.py does
    agent = Agent(config)
    agent.on_change(lambda event: print(event))   # the same dicts as the JSON lines
    asyncio.create_task(agent.run())
    ...
    agent.leader()      # (name, term) or None
    agent.is_leader()   # True while this board leads

The module is small on purpose: a board keeps its bytecode in the heap, and
every function, attribute name and short string costs heap for good. So the
constants are const() (folded away by the compiler: no global, no name),
and state that one task needs lives in that task's locals.
"""

import asyncio
import gc
import json
import socket
import sys
import time

from micropython import const

from agent import __version__

# Datagrams handled per wake-up before timers and checks get a turn.
_RECV_BATCH = const(16)
# Pieces of a datagram's size that recvfrom() holds at once: the unix port
# (ports/unix/modsocket.c) reads into a buffer of the size asked, then copies
# the datagram out while it still holds the buffer; the boards' sockets
# (lwIP) read into the bytes object itself. The receive loop's spare room is
# that many pieces in one, or giving it up would not be enough for a full
# sync page (the failure of a 128k run with 32 members, now and then).
_RECV_PIECES = 2 if sys.platform in ("linux", "darwin") else 1
# Work units per verification slice (ed25519.py: one unit ~ one point
# doubling; docs/BOARDS.md has the time of a slice).
_VERIFY_BUDGET = const(8)
# Housekeeping (join hints, heap lines, clock reading) runs this often.
_HOUSEKEEPING_MS = const(1000)
# Not joined this long after start: say why that may be; again every _JOIN_HINT_REPEAT_MS.
_JOIN_HINT_MS = const(3000)
_JOIN_HINT_REPEAT_MS = const(30000)
# One dropped-datagram line per (address, reason) at most this often.
_DROP_LOG_INTERVAL_MS = const(10000)
_DROP_LOG_KEYS = const(8)
# log.level values, least severe first.
_LEVELS = const(("debug", "info", "warning", "error"))
# Collect after this many bytes allocated, not only when the heap is full:
# garbage then never piles up between long-lived objects, so the heap keeps
# the contiguous room recvfrom() needs for every datagram (1.4 KB). At 128k
# with 32 members the .mpy agent has ~19 KB free; collecting every 4 KB
# still let it fragment now and then (largest free block ~1 KB, one lost
# datagram in some runs), every 2 KB it did not (docs/BOARDS.md). A
# collection takes ~25 us on the unix port, an estimated 1-2 ms on an
# ESP32.
_GC_THRESHOLD = const(2048)
# The same while Ed25519 runs (a verification slice, a signature): its
# big-int arithmetic leaves ~1.4 MB of garbage per check, nearly all of it
# dead at once, and nothing else allocates meanwhile. Every 2 KB a check
# took 36-56 ms on the unix port instead of ~6 (collections, not maths);
# with no threshold at all the check's few live numbers end up strewn over
# the whole free heap, and datagrams stopped fitting. Every 16 KB: ~14 ms,
# and the heap stays as whole as with 2 KB (docs/BOARDS.md).
_GC_THRESHOLD_CRYPTO = const(16384)
# Out-of-memory lines: at most one per this long.
_OOM_LOG_INTERVAL_MS = const(10000)
# A signature check interrupted by an out-of-memory error is retried after this long.
_RETRY_MS = const(1000)


class Agent:
    """One board agent: the node, its UDP socket, its tasks and its listeners.

    config is the dict leaderd_config.load() returns; out (default
    sys.stdout) gets the JSON lines.
    """

    def __init__(self, config, out=None):
        self.config = config
        self.out = out or sys.stdout
        self.node = None
        self.sock = None
        # Counters; the {"heap": ...} lines report memory_errors and verifications.
        self.stats = {"send_errors": 0, "recv_errors": 0, "memory_errors": 0, "verifications": 0, "peak": 0,
                      "spare_used": 0}
        self._listeners = []
        self._ticks = time.ticks_ms()
        self._now = 0
        # lwIP (boards) takes and gives (host, port) tuples; the unix port raw sockaddr bytes.
        # (The literal is interned, so on the unix port, where the tests and
        # bench/board_heap.py run every member at 127.0.0.1, _address()
        # returns this one string for every member instead of a copy each.)
        self._tuples = isinstance(socket.getaddrinfo("127.0.0.1", 1)[0][-1], tuple)
        self._timer_task = None
        self._timer_at = None
        self._tasks = []
        # Ed25519 jobs waiting: checks (public key, data, signature), signatures (None, data, None).
        self._jobs = []
        self._job_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._drop_logged = {}   # (address, reason) -> [last logged at, dropped since]
        self._oom_logged_at = None
        self._state = None       # leaderd_state.State when election.term_file is set

    # --- What code on the board asks ---------------------------------------

    def leader(self):
        """(leader name, term) as this board follows it, or None."""
        return None if self.node is None else self.node.leader()

    def is_leader(self):
        """Whether this board leads now."""
        return self.node is not None and self.node.is_leader()

    def members(self):
        """Every member this board knows (itself included), as dicts of the `members --json` shape."""
        return [] if self.node is None else [m.as_dict() for m in self.node.members()]

    def on_change(self, handler):
        """Calls handler(event) for every event: the dicts printed as JSON lines. Returns handler."""
        self._listeners.append(handler)
        return handler

    def set_eligible(self, eligible):
        """Makes this board (in)eligible to lead, e.g. from a local health check."""
        self.node.set_eligible(eligible, self.now())
        self._pump()

    # --- The edge: clock, addresses, output -----------------------------------

    def now(self):
        """The core's clock: int ms since start, monotonic (ticks_ms wraps; ticks_diff does not care)."""
        ticks = time.ticks_ms()
        self._now += time.ticks_diff(ticks, self._ticks)
        self._ticks = ticks
        return self._now

    def _address(self, raw):
        """(host, port) for an address as recvfrom() or getaddrinfo() give it."""
        if isinstance(raw, tuple):
            return raw
        ip = socket.sockaddr(raw)
        return ("%d.%d.%d.%d" % tuple(ip[1]), ip[2])

    def emit(self, record):
        """Writes one JSON object as a line on stdout."""
        try:
            self.out.write(json.dumps(record) + "\n")
        except Exception:
            pass

    def log(self, level, text):
        """A {"log": text, "level": level} line, when level is at or above log.level."""
        if _LEVELS.index(level) >= _LEVELS.index(self.config["log_level"]):
            self.emit({"log": text, "level": level})

    # --- Start and stop ------------------------------------------------------

    async def run(self):
        """Starts, runs until stop() (or cancellation), then leaves the cluster."""
        self.start()
        try:
            await self._stop.wait()
        finally:
            self.shutdown()

    def stop(self):
        """Asks run() to leave the cluster and return."""
        self._stop.set()

    def start(self):
        """Binds the socket, makes the node, joins through the seeds, starts the tasks.

        Raises OSError (bind) or ValueError (a signing key its trust list contradicts).
        A plain function, not part of run(): a coroutine's locals and stack
        would stay in the heap for as long as it runs. The work is
        leaderd_boot's, a module loaded for it and dropped after, as main.py
        drops the config checker: its bytecode is heap to win back.
        """
        import leaderd_boot
        try:
            self.sock, self.node, self._state, verifier = leaderd_boot.start(
                self.config, self._tuples, self.now(), self._sign, self._defer_verification, self._address,
                self.log, ((Agent, "__init__"), (Agent, "start")))
        finally:
            del leaderd_boot
            del sys.modules["leaderd_boot"]
        node = self.node
        cfg = self.config
        gc.collect()
        self.emit({"event": "started", "name": node.name, "address": "%s:%d" % cfg["advertise"],
                   "incarnation": node.incarnation, "term": node.term(),
                   "cluster": cfg["cluster"], "priority": cfg["priority"], "version": __version__,
                   "insecure": node.insecure, "authenticated": cfg["keyring"] is not None,
                   "heap_alloc": gc.mem_alloc(), "heap_free": gc.mem_free()})
        gc.threshold(_GC_THRESHOLD)
        # The receive loop's spare room (see there), taken now, while the heap
        # is at its most whole: by the time the task first runs, other tasks
        # and the first datagrams may have left no such piece.
        try:
            spare = bytearray((node.profile.mtu_bytes + 1) * _RECV_PIECES)
        except MemoryError:
            spare = None
        self._tasks = [asyncio.create_task(self._receive_loop(spare)), asyncio.create_task(self._housekeeping_loop())]
        if verifier is not None:
            self._tasks.append(asyncio.create_task(self._verify_loop()))
        self._pump()

    def shutdown(self):
        """Leaves gracefully (a leader resigns first), sends the goodbyes, closes the socket."""
        node = self.node
        if node is not None and not node.left and self.sock is not None:
            node.leave(self.now())
            self._send()
            self.emit({"event": "stopped", "name": node.name})
        if self._timer_task is not None:
            self._tasks.append(self._timer_task)
            self._timer_task = None
        for task in self._tasks:
            try:
                task.cancel()
            except RuntimeError:
                pass  # after Ctrl-C the interrupted task still counts as running ("can't cancel self")
        self._tasks = []
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # --- The pump --------------------------------------------------------------

    async def _receive_loop(self, spare):
        sock = self.sock
        node = self.node
        # One byte more than the core accepts (profile mtu_bytes): a longer
        # datagram is cut to this and then dropped as oversized. No more:
        # recvfrom() needs this much contiguous heap for every datagram.
        size = node.profile.mtu_bytes + 1
        # spare: room kept for one datagram (_RECV_PIECES). The heap has enough free bytes
        # but can be too fragmented for `size` of them in one piece (a 128k
        # board with 32 members, now and then): then this room is given up
        # for the datagram, and kept again as soon as the heap has such a
        # piece (None: not yet).
        while True:
            # Parks this task until sock is readable: asyncio's streams do exactly this.
            yield asyncio.core._io_queue.queue_read(sock)
            handled = 0
            while handled < _RECV_BATCH:
                try:
                    try:
                        data, raw = sock.recvfrom(size)
                    except MemoryError:
                        if spare is None:
                            raise
                        spare = None
                        gc.collect()
                        data, raw = sock.recvfrom(size)
                        self.stats["spare_used"] += 1
                    handled += 1
                    node.receive_datagram(data, self._address(raw), self.now())
                    data = None
                    # Its replies go now, not after the batch: a board behind
                    # on a join burst would otherwise hold up to a batch of
                    # them (state syncs of ~1.4 KB each) at once.
                    self._send()
                except OSError as exc:
                    if exc.args[0] not in (11, 35):  # EAGAIN / EWOULDBLOCK: drained
                        self.stats["recv_errors"] += 1
                    break
                except MemoryError:
                    # Left in the socket (or half handled): lost like a datagram
                    # the network dropped. Give the heap a moment.
                    self._out_of_memory("receiving a datagram")
                    handled = _RECV_BATCH
                data = None
            if spare is None:
                try:
                    spare = bytearray(size * _RECV_PIECES)
                except MemoryError:
                    pass  # not yet: after the next datagram
            if handled:
                self._pump()
            if handled >= _RECV_BATCH:
                await asyncio.sleep_ms(0 if not self.stats["memory_errors"] else 5)

    def _out_of_memory(self, what):
        # The protocol copes with a lost datagram or a late timer. Said loudly, not often.
        self.stats["memory_errors"] += 1
        gc.collect()
        now = self.now()
        if self._oom_logged_at is None or now - self._oom_logged_at >= _OOM_LOG_INTERVAL_MS:
            self._oom_logged_at = now
            try:
                self.log("error", "out of memory %s (%d B free; %d such errors so far)" % (
                    what, gc.mem_free(), self.stats["memory_errors"]))
            except MemoryError:
                pass

    def _send(self):
        for data, addr in self.node.datagrams_to_send(self.now()):
            try:
                # What sendto() takes for (host, port). Not cached: a cache of
                # 32 members' addresses costs a board ~5 KB of heap.
                if not self._tuples:
                    addr = socket.getaddrinfo(addr[0], addr[1])[0][-1]
                self.sock.sendto(data, addr)
            except OSError:
                self.stats["send_errors"] += 1

    def _pump(self):
        """Sends what the core wants sent, hands on its events, re-arms its timer.

        Events go out as JSON lines and to the on_change() handlers; a dropped
        datagram becomes a log line saying from where and why, rate-limited.
        """
        node = self.node
        try:
            self._send()
            while True:
                event = node.next_event()
                if event is None:
                    break
                if event.kind == "datagram_dropped":
                    # A line per (address, reason) at most every _DROP_LOG_INTERVAL_MS, with the count since.
                    addr = event.address
                    now = self.now()
                    key = (addr, event.reason)
                    entry = self._drop_logged.get(key)
                    if entry is not None and now - entry[0] < _DROP_LOG_INTERVAL_MS:
                        entry[1] += 1
                        continue
                    if len(self._drop_logged) >= _DROP_LOG_KEYS:
                        self._drop_logged = {}
                    self._drop_logged[key] = [now, 0]
                    self.log("warning", "dropped datagram from %s:%d: %s%s" % (
                        addr[0], addr[1], event.reason,
                        " (and %d more since)" % entry[1] if entry and entry[1] else ""))
                    continue
                record = event.as_dict()
                if event.kind == "leader_changed":
                    record["leader"] = event.new
                    record["is_leader"] = event.new == node.name
                self.emit(record)
                for listener in self._listeners:
                    try:
                        listener(record)
                    except Exception as exc:
                        self.log("error", "on_change callback failed: %s: %s" % (type(exc).__name__, exc))
            if self._state is not None:
                leader = node.leader()
                self._state.keep(leader[1] if leader else 0, node.incarnation)
        except MemoryError:
            # Datagrams or events lost; the timer below must still be armed.
            self._out_of_memory("handling output")
        at = node.get_timer()
        # Re-armed only for an earlier deadline: a later one is left to the
        # armed timer, which then wakes early, finds nothing due and re-arms.
        # Every re-arming is a new task, and tasks that live a few hundred ms
        # among long-lived objects are what fragments a board's heap.
        if at is not None and self._timer_at is not None and at >= self._timer_at:
            return
        if at != self._timer_at:
            if self._timer_task is not None:
                self._timer_task.cancel()
                self._timer_task = None
            self._timer_at = at
            if at is not None:
                try:
                    self._timer_task = asyncio.create_task(self._timer())
                except MemoryError:
                    self._out_of_memory("arming the timer")  # housekeeping arms it again

    async def _timer(self):
        # Armed for _timer_at; _pump() cancels it before arming another.
        at = self._timer_at
        delay = at - self.now()
        if delay > 0:
            await asyncio.sleep_ms(delay)
        self._timer_task = None
        self._timer_at = None
        now = self.now()
        try:
            self.node.handle_timer(at if at > now else now)
        except MemoryError:
            self._out_of_memory("handling a timer")
        self._pump()

    # --- Signatures --------------------------------------------------------------

    def _sign(self, data, may_defer):
        # Called by the core, which says what may wait: claims, heartbeats
        # and this board's own Alive statements are signed in slices, like a
        # check (the core goes on when signing_done() brings the signature);
        # a resignation or a Left at once, since the board may be leaving:
        # ~0.3-0.5 s on an ESP32 (docs/BOARDS.md) during which it answers nothing.
        if may_defer:
            self._jobs.append((None, data, None))
            self._job_ready.set()
            return None
        import ed25519
        started = time.ticks_ms()
        gc.threshold(_GC_THRESHOLD_CRYPTO)  # see _verify_loop
        try:
            signature = ed25519.sign(self.config["signing_seed"], data)
        finally:
            gc.threshold(_GC_THRESHOLD)
        self.log("debug", "signatures: %d ms" % time.ticks_diff(time.ticks_ms(), started))
        return signature

    def _defer_verification(self, public_key, data, signature):
        # Called by the core once per new claim (it caches answers and holds
        # at most 8 claims pending): queue the check, answer later.
        self._jobs.append((public_key, data, signature))
        self._job_ready.set()
        return None

    async def _verify_loop(self):
        # The Ed25519 jobs, one at a time, in slices: checks of claims
        # (public key, data, signature) and signatures of this board's own
        # claims (None, data, None).
        import ed25519
        jobs = self._jobs
        while True:
            if not jobs:
                self._job_ready.clear()
                await self._job_ready.wait()
                continue
            job = jobs.pop(0)
            public_key, data, signature = job
            started = self.now()
            work = None
            try:
                if public_key is None:
                    work = ed25519.Signer(self.config["signing_seed"], data)
                else:
                    work = ed25519.Verifier(public_key, data, signature)
                while True:
                    # Big-int arithmetic: ~20 KB of garbage a slice, ~1.4 MB a
                    # check, nearly all of it dead at once: see _GC_THRESHOLD_CRYPTO.
                    gc.threshold(_GC_THRESHOLD_CRYPTO)
                    try:
                        result = work.step(_VERIFY_BUDGET)
                    finally:
                        gc.threshold(_GC_THRESHOLD)
                    if result is not None:
                        break
                    await asyncio.sleep_ms(0)
            except MemoryError:
                # Not a verdict on the claim (the core would cache a False):
                # try it again once the heap had a moment.
                work = None
                self._out_of_memory("signing a claim" if public_key is None else "checking a signature")
                jobs.insert(0, job)
                await asyncio.sleep_ms(_RETRY_MS)
                continue
            work = None
            now = self.now()
            if public_key is None:
                self.log("debug", "signatures: %d ms" % (now - started))
            else:
                self.stats["verifications"] += 1
                self.log("debug", "verifications: %d ms" % (now - started))
            if not self.node.left:
                try:
                    if public_key is None:
                        self.node.signing_done(data, result, now)
                    else:
                        self.node.verification_done(data, signature, result, now)
                except MemoryError:
                    # Both are kept first (the verdict cached, the signature
                    # held): the next re-assertion is followed, the next
                    # evaluation makes the claim.
                    self._out_of_memory("handling a finished signature job")
                self._pump()

    # --- Housekeeping --------------------------------------------------------------

    async def _housekeeping_loop(self):
        # Join hints while no seed answered; {"heap": ...} lines every log.heap_interval.
        stats = self.stats
        interval = self.config["heap_interval_ms"]
        now = self.now()
        join_hint_at = now + _JOIN_HINT_MS if self.node.has_seeds() else None
        heap_at = now if interval else None
        while True:
            await asyncio.sleep_ms(_HOUSEKEEPING_MS)
            now = self.now()
            if join_hint_at is not None and now >= join_hint_at:
                if self.node.joined:
                    join_hint_at = None
                else:
                    join_hint_at = now + _JOIN_HINT_REPEAT_MS
                    self.log("warning", "not joined after %d s: no seed answered (%s); check cluster.seeds, "
                             "cluster.name and cluster.keyring: the others drop datagrams of another "
                             "cluster or key without a word" % (
                                 now // 1000, ", ".join("%s:%d" % s for s in self.config["seeds"])))
            if self._timer_task is None:
                # Its re-arming ran out of memory: arm it again now.
                self._timer_at = None
                self._pump()
            if heap_at is not None and now >= heap_at:
                heap_at = now + interval
                gc.collect()
                alloc = gc.mem_alloc()
                if alloc > stats["peak"]:
                    stats["peak"] = alloc
                self.emit({"heap": {"alloc": alloc, "free": gc.mem_free(), "peak": stats["peak"],
                                    "members": self.node.live_count(), "verifications": stats["verifications"],
                                    "memory_errors": stats["memory_errors"], "spare_used": stats["spare_used"]}})
