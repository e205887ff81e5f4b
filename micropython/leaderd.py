"""leaderd on a board: the MicroPython shell around agent.core.node.Node.

As thin as agent/daemon.py, and in the same shape (aioquic's transmit loop):
feed the core datagrams and timer expiries, send what it returns, drain its
events, re-arm one timer at get_timer(). What differs is the edge:

- asyncio is MicroPython's; the UDP socket is non-blocking and a task
  waits on it through asyncio's I/O queue (the way asyncio's own streams do).
- The clock is time.ticks_ms made monotonic: ticks_ms wraps, so the core's
  `now` is the running sum of ticks_diff between two readings (taken at
  least once a second, far more often than the wrap).
- Randomness is the port's random.getrandbits (n <= 32), seeded from
  os.urandom; an xorshift where the port has no getrandbits.
- Ed25519 is pure Python (ed25519.py). The core asks the verifier once per
  new claim and caches the answer; here the verifier only queues the check
  and returns None (the core holds the claim), and a task runs it in slices
  of `verify_budget` work units with an `await asyncio.sleep_ms(0)` between
  them, so the loop keeps answering pings; then node.verification_done().
  Signing is synchronous (the core's signer is a plain call) and happens
  once per claim this board makes: docs/BOARDS.md has its cost.
- Output is one JSON object per line on stdout (a board's USB serial):
  every core event (member_joined, leader_changed with "leader" and
  "term", claim_rejected, ...), {"log": ..., "level": ...} lines for
  warnings and errors (a dropped datagram says where from and why), and
  {"heap": ...} lines when log.heap_interval is set.

Code on the board asks the Agent who leads and is called back on changes
(the board's equivalent of the daemon's UNIX socket)::

    agent = Agent(leaderd_config.load("leaderd.json"))
    agent.on_change(lambda event: print(event))   # the same dicts as the JSON lines
    asyncio.create_task(agent.run())
    ...
    agent.leader()      # (name, term) or None
    agent.is_leader()   # True while this board leads
"""

import asyncio
import gc
import json
import os
import socket
import sys
import time

from agent import __version__
from agent.core.node import Node

# Larger than any datagram the core accepts (boards keep the default
# mtu_bytes, 1400): a longer one is cut here and then dropped as bad.
RECV_BYTES = 1500
# Datagrams handled per wake-up before timers and checks get a turn.
RECV_BATCH = 16
# Work units per verification slice (ed25519.py: one unit ~ one point
# doubling; docs/BOARDS.md has the time of a slice).
VERIFY_BUDGET = 8
# Housekeeping (join hints, heap lines, clock reading) runs this often.
HOUSEKEEPING_MS = 1000
# Not joined this long after start: say why that may be; again every JOIN_HINT_REPEAT_MS.
JOIN_HINT_MS = 3000
JOIN_HINT_REPEAT_MS = 30000
# One dropped-datagram line per (address, reason) at most this often.
DROP_LOG_INTERVAL_MS = 10000
_DROP_LOG_KEYS = 8
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# The core's long-lived caches, bounded for a board's heap. They grow with
# time, not members; at the daemon's bounds (256 sync sessions, 1024 final
# probes, 64 signature checks) they would hold tens of KB after days.
MAX_SYNC_SESSIONS = 16
MAX_FINAL_PROBES = 32
CLAIM_CACHE_SIZE = 8
# Public keys whose Ed25519 comb tables are kept (~5 KB each on a 64-bit
# build, half on a board). The core caches every verdict, so a table only
# saves time when the same leader claims a new term; another key costs
# its first verification about twice the time.
KEY_TABLES = 1
# Collect after this many bytes allocated, not only when the heap is full:
# garbage then never piles up between long-lived objects, so the heap keeps
# the contiguous room a 1.5 KB receive buffer needs. Without it a board
# with 32 members fragments within seconds at 128k (max free block ~700 B
# with 40 KB free) and no datagram fits any more. ~1 collection per 2
# datagrams; see docs/BOARDS.md.
GC_THRESHOLD = 4096
# Out-of-memory lines: at most one per this long.
OOM_LOG_INTERVAL_MS = 10000
# A signature check interrupted by an out-of-memory error is retried after this long.
RETRY_MS = 1000


class Rng:
    """getrandbits(n) for 1 <= n <= 32 (all the core calls), seeded from os.urandom."""

    def __init__(self, seed=None):
        value = 0
        for b in (seed or os.urandom(4))[:4]:
            value = (value << 8) | b
        value &= 0x3FFFFFFF  # a small int on every port
        try:
            import random
            random.seed(value)
            self.getrandbits = random.getrandbits
        except (ImportError, AttributeError):
            self._state = value or 1
            self.getrandbits = self._xorshift

    def _xorshift(self, n):
        # Marsaglia's xorshift32 (13, 17, 5).
        x = self._state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._state = x
        return x >> (32 - n)


async def _readable(sock):
    # Parks this task until sock is readable: asyncio's streams do exactly this.
    yield asyncio.core._io_queue.queue_read(sock)


class Agent:
    """One board agent: the node, its UDP socket, its tasks and its listeners.

    config is the dict leaderd_config.load() returns.
    """

    def __init__(self, config, out=None, verify_budget=VERIFY_BUDGET):
        self.config = config
        self.out = out or sys.stdout
        self.verify_budget = verify_budget
        self.node = None
        self.sock = None
        self.stats = {"send_errors": 0, "recv_errors": 0, "memory_errors": 0, "verifications": 0,
                      "verify_ms_max": 0, "signatures": 0, "sign_ms_max": 0, "heap_peak": 0}
        self._level = _LEVELS[config["log_level"]]
        self._listeners = []
        self._ticks = time.ticks_ms()
        self._now = 0
        # lwIP (boards) takes and gives (host, port) tuples; the unix port raw sockaddr bytes.
        self._tuples = isinstance(socket.getaddrinfo("127.0.0.1", 1)[0][-1], tuple)
        self._timer_task = None
        self._timer_at = None
        self._tasks = []
        self._jobs = []
        self._job_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._drop_logged = {}
        self._join_hint_at = None
        self._oom_logged_at = None
        self._heap_at = None
        self._ed25519 = None

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

    def on_change(self, callback):
        """Calls callback(event) for every event: the dicts printed as JSON lines. Returns callback."""
        self._listeners.append(callback)
        return callback

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

    def _socket_address(self, addr):
        # What sendto() and bind() take for (host, port). Not cached: a
        # cache of 32 members' addresses costs a board ~5 KB of heap.
        if self._tuples:
            return addr
        return socket.getaddrinfo(addr[0], addr[1])[0][-1]

    def _address(self, raw):
        # (host, port) for an address as recvfrom() or getaddrinfo() give it.
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
        if _LEVELS[level] >= self._level:
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
        """
        cfg = self.config
        name = cfg["name"]
        trusted = cfg["trusted_keys"]
        seed = cfg["signing_seed"]
        signer = verifier = None
        if trusted is not None or seed is not None:
            import ed25519
            ed25519.KEY_CACHE_SIZE = KEY_TABLES
            self._ed25519 = ed25519
        if seed is not None:
            signer = self._sign
            public = self._ed25519.public_key(seed)
            if trusted is not None:
                if name not in trusted:
                    trusted = dict(trusted)
                    trusted[name] = public
                    self.log("warning", "node %s is not in its own election.trusted_keys; trusting its key "
                             "locally, but other nodes need its public key to accept its claims" % name)
                elif trusted[name] != public:
                    raise ValueError("election.signing_key does not match election.trusted_keys.%s" % name)
        if trusted is not None:
            verifier = self._defer_verification
        for warning in cfg["warnings"]:
            self.log("warning", warning)
        bind = cfg["bind"]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self._socket_address(bind))
        except OSError as exc:
            sock.close()
            raise OSError("cannot bind %s:%d: %s" % (bind[0], bind[1], exc))
        sock.setblocking(False)
        self.sock = sock
        now = self.now()
        self.node = Node(name=name, address=cfg["advertise"], profile=cfg["profile"], rng=Rng(), now=now,
                         cluster=cfg["cluster"], keyring=cfg["keyring"], priority=cfg["priority"],
                         tags=cfg["tags"], signer=signer, verifier=verifier, trusted_keys=trusted,
                         preempt=cfg["preempt"], preempt_delay_ms=cfg["preempt_delay_ms"],
                         max_sync_sessions=MAX_SYNC_SESSIONS, max_final_probes=MAX_FINAL_PROBES,
                         claim_cache_size=CLAIM_CACHE_SIZE)
        seeds = []
        for host, port in cfg["seeds"]:
            try:
                seeds.append(self._address(socket.getaddrinfo(host, port)[0][-1]))
            except OSError as exc:
                self.log("warning", "seed %s:%d: cannot resolve: %s" % (host, port, exc))
        self.node.join(seeds, now)
        if self.node.has_seeds():
            self._join_hint_at = now + JOIN_HINT_MS
        if cfg["heap_interval_ms"]:
            self._heap_at = now
        gc.collect()
        self.emit({"event": "started", "name": name, "address": "%s:%d" % cfg["advertise"],
                   "cluster": cfg["cluster"], "priority": cfg["priority"], "version": __version__,
                   "insecure": self.node.insecure, "authenticated": cfg["keyring"] is not None,
                   "heap_alloc": gc.mem_alloc(), "heap_free": gc.mem_free()})
        gc.threshold(GC_THRESHOLD)
        self._tasks.append(asyncio.create_task(self._receive_loop()))
        self._tasks.append(asyncio.create_task(self._housekeeping_loop()))
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

    async def _receive_loop(self):
        sock = self.sock
        node = self.node
        while True:
            await _readable(sock)
            handled = 0
            while handled < RECV_BATCH:
                try:
                    data, raw = sock.recvfrom(RECV_BYTES)
                    handled += 1
                    node.receive_datagram(data, self._address(raw), self.now())
                except OSError as exc:
                    if exc.args[0] not in (11, 35):  # EAGAIN / EWOULDBLOCK: drained
                        self.stats["recv_errors"] += 1
                    break
                except MemoryError:
                    # Left in the socket (or half handled): lost like a datagram
                    # the network dropped. Give the heap a moment.
                    self._out_of_memory("a datagram")
                    handled = RECV_BATCH
                data = None
            if handled:
                self._pump()
            if handled >= RECV_BATCH:
                await asyncio.sleep_ms(0 if not self.stats["memory_errors"] else 5)

    def _out_of_memory(self, what):
        # The protocol copes with a lost datagram or a late timer. Said loudly, not often.
        self.stats["memory_errors"] += 1
        gc.collect()
        now = self.now()
        if self._oom_logged_at is None or now - self._oom_logged_at >= OOM_LOG_INTERVAL_MS:
            self._oom_logged_at = now
            try:
                self.log("error", "out of memory handling %s (%d B free; %d such errors so far)" % (
                    what, gc.mem_free(), self.stats["memory_errors"]))
            except MemoryError:
                pass

    def _send(self):
        sock = self.sock
        for data, addr in self.node.datagrams_to_send(self.now()):
            try:
                sock.sendto(data, self._socket_address(addr))
            except OSError:
                self.stats["send_errors"] += 1

    def _pump(self):
        """Sends what the core wants sent, hands on its events, re-arms its timer."""
        node = self.node
        try:
            self._send()
            while True:
                event = node.next_event()
                if event is None:
                    break
                self._on_event(event)
        except MemoryError:
            # Datagrams or events lost; the timer below must still be armed.
            self._out_of_memory("output")
        at = node.get_timer()
        if at != self._timer_at:
            if self._timer_task is not None:
                self._timer_task.cancel()
                self._timer_task = None
            self._timer_at = at
            if at is not None:
                try:
                    self._timer_task = asyncio.create_task(self._timer(at))
                except MemoryError:
                    self._out_of_memory("the timer")  # housekeeping arms it again

    async def _timer(self, at):
        delay = at - self.now()
        if delay > 0:
            await asyncio.sleep_ms(delay)
        self._timer_task = None
        self._timer_at = None
        now = self.now()
        try:
            self.node.handle_timer(at if at > now else now)
        except MemoryError:
            self._out_of_memory("a timer")
        self._pump()

    # --- Events --------------------------------------------------------------

    def _on_event(self, event):
        if event.kind == "datagram_dropped":
            self._dropped(event.address, event.reason)
            return
        record = event.as_dict()
        if event.kind == "leader_changed":
            record["leader"] = event.new
            record["is_leader"] = event.new == self.node.name
        self.emit(record)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception as exc:
                self.log("error", "on_change callback failed: %s: %s" % (type(exc).__name__, exc))

    def _dropped(self, addr, reason):
        now = self.now()
        key = (addr, reason)
        entry = self._drop_logged.get(key)
        if entry is not None and now - entry[0] < DROP_LOG_INTERVAL_MS:
            entry[1] += 1
            return
        if len(self._drop_logged) >= _DROP_LOG_KEYS:
            self._drop_logged = {}
        self._drop_logged[key] = [now, 0]
        self.log("warning", "dropped datagram from %s:%d: %s%s" % (
            addr[0], addr[1], reason, " (and %d more since)" % entry[1] if entry and entry[1] else ""))

    # --- Signatures --------------------------------------------------------------

    def _sign(self, data):
        # Called by the core, synchronously, once per claim or resignation.
        started = time.ticks_ms()
        signature = self._ed25519.sign(self.config["signing_seed"], data)
        self._record("signatures", "sign_ms_max", time.ticks_diff(time.ticks_ms(), started))
        return signature

    def _record(self, count, longest, took):
        stats = self.stats
        stats[count] += 1
        if took > stats[longest]:
            stats[longest] = took
        self.log("debug", "%s: %d ms" % (count, took))

    def _defer_verification(self, public_key, data, signature):
        # Called by the core once per new claim (it caches answers and holds
        # at most 8 claims pending): queue the check, answer later.
        self._jobs.append((public_key, data, signature))
        self._job_ready.set()
        return None

    async def _verify_loop(self):
        while True:
            if not self._jobs:
                self._job_ready.clear()
                await self._job_ready.wait()
                continue
            job = self._jobs.pop(0)
            public_key, data, signature = job
            started = self.now()
            check = None
            try:
                check = self._ed25519.Verifier(public_key, data, signature)
                while True:
                    ok = check.step(self.verify_budget)
                    if ok is not None:
                        break
                    await asyncio.sleep_ms(0)
            except MemoryError:
                # Not a verdict on the claim (the core would cache a False):
                # try it again once the heap had a moment.
                check = None
                self._out_of_memory("a signature check")
                self._jobs.insert(0, job)
                await asyncio.sleep_ms(RETRY_MS)
                continue
            check = None
            now = self.now()
            self._record("verifications", "verify_ms_max", now - started)
            if not self.node.left:
                try:
                    self.node.verification_done(data, signature, ok, now)
                except MemoryError:
                    # The verdict is cached first: the leader's next re-assertion is followed.
                    self._out_of_memory("a verified claim")
                self._pump()

    # --- Housekeeping --------------------------------------------------------------

    async def _housekeeping_loop(self):
        while True:
            await asyncio.sleep_ms(HOUSEKEEPING_MS)
            now = self.now()
            if self._join_hint_at is not None and now >= self._join_hint_at:
                if self.node.joined:
                    self._join_hint_at = None
                else:
                    self._join_hint_at = now + JOIN_HINT_REPEAT_MS
                    self.log("warning", "not joined after %d s: no seed answered (%s); check cluster.seeds, "
                             "cluster.name and cluster.keyring: the others drop datagrams of another "
                             "cluster or key without a word" % (
                                 now // 1000, ", ".join("%s:%d" % s for s in self.config["seeds"])))
            if self._timer_task is None:
                # Its re-arming ran out of memory: arm it again now.
                self._timer_at = None
                self._pump()
            if self._heap_at is not None and now >= self._heap_at:
                self._heap_at = now + self.config["heap_interval_ms"]
                self.heap_report()

    def heap_report(self):
        """Collects, then writes a {"heap": {...}} line: bytes in use and free, the peak so far, members."""
        gc.collect()
        alloc = gc.mem_alloc()
        if alloc > self.stats["heap_peak"]:
            self.stats["heap_peak"] = alloc
        self.emit({"heap": {"alloc": alloc, "free": gc.mem_free(), "peak": self.stats["heap_peak"],
                            "members": self.node.live_count(), "verifications": self.stats["verifications"],
                            "memory_errors": self.stats["memory_errors"]}})
