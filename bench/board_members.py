"""Helpers for the board benchmarks: N live members simulated in one CPython process.

``SimCluster`` runs N copies of agent.core.node.Node, each on its own real
UDP socket on 127.0.0.1, in one asyncio loop, each pumped the way
agent/daemon.py pumps its node (send, drain events, re-arm one timer). The
first ``candidates`` members have Ed25519 keys (cryptography) and
priorities 100, 90, ...; the rest are followers. A board joining through
member 0 sees N live members, a signed leader and real gossip.

Board processes come from tests/test_board_harness.py (BoardProcess and
board_runtime(): a frozen interpreter at 128k when built, else the stock one).
"""

import asyncio
import base64
import os
import random
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from agent import keys as keyfiles  # noqa: E402
from agent.core import profile as profiles  # noqa: E402
from agent.core.node import Node  # noqa: E402
from agent.localcluster import free_udp_ports  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from test_board_harness import BoardProcess, BoardRuntime, board_runtime  # noqa: E402,F401


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def parse_heapsize(text):
    """Bytes of "128k", "1m" or "131072"."""
    text = str(text).lower()
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    return int(text.rstrip("km")) * scale


def format_heapsize(size):
    return "%dk" % (size // 1024) if size % 1024 == 0 else str(size)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, member):
        self.member = member

    def datagram_received(self, data, addr):
        self.member.on_datagram(data, addr)

    def error_received(self, exc):
        pass


class SimMember:
    """One simulated member: a Node, its socket and its one timer."""

    def __init__(self, cluster, name, port, priority, private_key):
        self.cluster = cluster
        self.name = name
        self.port = port
        self.address = ("127.0.0.1", port)
        self.priority = priority
        self.private_key = private_key
        self.node = None
        self.transport = None
        self._timer = None
        self._timer_at = None
        self.events = []

    async def start(self, seeds):
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(self), local_addr=self.address)
        c = self.cluster
        self.node = Node(self.name, self.address, c.profile, random.Random(c.rng.getrandbits(32)), c.now_ms(),
                         cluster=c.name, keyring=c.keyring, priority=self.priority,
                         signer=keyfiles.make_signer(self.private_key) if self.private_key else None,
                         verifier=keyfiles.verify, trusted_keys=dict(c.trusted), preempt=True,
                         preempt_delay_ms=c.preempt_delay_ms)
        self.node.join([s for s in seeds if s != self.address], c.now_ms())
        self.pump()

    def stop(self):
        """Stops dead (a crash: no leave)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.node = None

    @property
    def running(self):
        return self.node is not None

    def on_datagram(self, data, addr):
        if self.node is None:
            return
        self.node.receive_datagram(data, (addr[0], addr[1]), self.cluster.now_ms())
        self.pump()

    def _on_timer(self):
        self._timer = None
        at, self._timer_at = self._timer_at, None
        if self.node is None:
            return
        now = self.cluster.now_ms()
        self.node.handle_timer(max(at, now))
        self.pump()

    def pump(self):
        node = self.node
        for data, addr in node.datagrams_to_send(self.cluster.now_ms()):
            try:
                self.transport.sendto(data, addr)
            except OSError:
                pass
        while True:
            event = node.next_event()
            if event is None:
                break
            self.events.append(event)
        at = node.get_timer()
        if at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            self._timer = None if at is None else asyncio.get_running_loop().call_at(at / 1000.0, self._on_timer)


class SimCluster:
    """n simulated members on 127.0.0.1 (see the module doc); use inside a running asyncio loop."""

    def __init__(self, n, name=None, profile="local", candidates=3, keyring=True, seed=1,
                 preempt_delay_ms=300, name_prefix="sim"):
        self.rng = random.Random(seed)
        self.name = name or "bench-%08x" % self.rng.getrandbits(32)
        self.profile = profiles.make(profile)
        self.preempt_delay_ms = preempt_delay_ms
        self.keyring = [os.urandom(32)] if keyring else None
        ports = free_udp_ports(n)
        self.trusted = {}
        self.members = []
        for i in range(n):
            name_i = "%s-%02d" % (name_prefix, i)
            private = None
            priority = 0
            if i < candidates:
                private = Ed25519PrivateKey.generate()
                self.trusted[name_i] = keyfiles.public_bytes(private)
                priority = 100 - 10 * i
            self.members.append(SimMember(self, name_i, ports[i], priority, private))
        self.loop = None

    def now_ms(self):
        return int(self.loop.time() * 1000)

    # --- In a thread of its own, so that the caller may block ------------------

    def start_thread(self, extra_seeds=()):
        """Runs the cluster's loop in a daemon thread and starts every member there."""
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            ready.set()
            loop.run_forever()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait()
        self.call(lambda: self.start(extra_seeds))
        return self

    def call(self, function):
        """Runs function() in the cluster's thread (awaiting it if it returns a coroutine); its result."""
        async def wrapper():
            result = function()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    def stop_thread(self):
        """Stops every member and the thread's loop."""
        self.call(self.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def crash(self, name):
        """Stops member name dead (thread-safe)."""
        self.call(lambda: self.member(name).stop())

    def restart(self, name):
        """Starts member name again (a fresh node, incarnation 0: it refutes its death)."""
        seeds = [m.address for m in self.members if m.running and m.name != name][:3]
        self.call(lambda: self.member(name).start(seeds))

    def agreed_leader(self):
        """leader() computed in the cluster's thread."""
        return self.call(self.leader)

    async def start(self, extra_seeds=()):
        """Starts every member, all seeding member 0 (and extra_seeds)."""
        self.loop = asyncio.get_running_loop()
        seeds = [self.members[0].address] + list(extra_seeds)
        for member in self.members:
            await member.start(seeds)

    def stop(self):
        for member in self.members:
            member.stop()

    def member(self, name):
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def leader(self):
        """(name, term) that every running member agrees on, or None."""
        seen = set(m.node.leader() for m in self.members if m.running)
        if len(seen) == 1:
            return seen.pop()
        return None

    def board_config(self, name, port, priority=0, profile=None, heap_interval="500ms", level="info",
                     seeds=None):
        """A board config dict joining this cluster through member 0."""
        cfg = {
            "node": {"name": name, "priority": priority, "bind": "127.0.0.1:%d" % port},
            "cluster": {"name": self.name,
                        "seeds": seeds or ["127.0.0.1:%d" % self.members[0].port]},
            "election": {"trusted_keys": dict((k, b64(v)) for k, v in self.trusted.items()),
                         "preempt_delay": "%dms" % self.preempt_delay_ms},
            "gossip": {"profile": profile or self.profile.name},
            "log": {"level": level, "heap_interval": heap_interval},
        }
        if self.keyring:
            cfg["cluster"]["keyring"] = [b64(k) for k in self.keyring]
        return cfg
