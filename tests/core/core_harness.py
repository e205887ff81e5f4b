"""Shared helpers of the core's tests (run under CPython and MicroPython).

One copy of each, imported by the tests in tests/core/ (the directory is on
the path under pytest and, through MICROPYPATH and tests/mp_runner.py, under
MicroPython):

- XorShift: the deterministic rng, only getrandbits(n) with 1 <= n <= 32,
  the one call the core makes (STYLE.md habit 1).
- Net: small clusters of Node objects moved by hand (layer (b) of STYLE.md
  habit 10: h11's ConnectionPair and aioquic's TICK tests in cluster form):
  a dict address -> Node, datagrams delivered instantly and in order, time
  advanced explicitly from one deadline (get_timer) to the next, events
  collected per node with the time they were seen. Faults are a set of
  blocked (source, destination) links and an optional drop filter. Nothing
  is random but the seeded XorShift given to each node, so every run of a
  test is the same run.
- key_of, fake_sign, fake_check: stand-in signatures (SHA-256 based, not
  Ed25519) for tests of the signing and verifying flow, not of the crypto.

Only what MicroPython has: plain classes and functions, hashlib.
"""

import hashlib

from agent.core import profile
from agent.core.node import Node

PROFILE = profile.local()


class XorShift:
    """A tiny deterministic rng (xorshift32) with only getrandbits(n), checking 1 <= n <= 32.

    `calls` counts the draws, for tests of how much randomness a helper uses.
    """

    def __init__(self, seed):
        self.state = (seed & 0xFFFFFFFF) or 1
        self.calls = 0

    def getrandbits(self, n):
        assert 1 <= n <= 32, "getrandbits(%r)" % n
        self.calls += 1
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x >> (32 - n)


def address_of(index):
    """The address Net gives to the index-th name it sees: 10.0.0.(index + 1), port 7946."""
    return ("10.0.0.%d" % (index + 1), 7946)


class Net:
    """A deterministic network of Nodes: instant, ordered delivery; time moved by hand."""

    def __init__(self, prof=PROFILE, seed=1):
        self.profile = prof
        self.seed = seed
        self.now = 0
        self.nodes = {}        # address -> running Node
        self.by_name = {}      # name -> running Node
        self.addresses = {}    # name -> address (kept across crash and restart)
        self.events = {}       # name -> [(now, event)], across restarts
        self.blocked = {}      # (source address, destination address) -> True: dropped
        self.drop = None       # optional callable(src, dst, data) -> True to drop
        self.max_datagram = 0
        self.delivered = 0
        self.starts = 0

    # --- Membership of the network --------------------------------------

    def address(self, name):
        """The address of `name`, given out on first use and kept across crash and restart."""
        if name not in self.addresses:
            self.addresses[name] = address_of(len(self.addresses))
        return self.addresses[name]

    def start(self, name, seeds=(), **kwargs):
        """Starts a Node named `name` (same address as before on restart) and joins it via seeds."""
        assert name not in self.by_name, "%s is already running" % name
        self.starts += 1
        node = Node(name=name, address=self.address(name), profile=self.profile,
                    rng=XorShift(self.seed * 7919 + self.starts * 104729), now=self.now, **kwargs)
        self.nodes[node.address] = node
        self.by_name[name] = node
        if name not in self.events:
            self.events[name] = []
        node.join([self.address(s) for s in seeds], self.now)
        return node

    def crash(self, name):
        """Stops a node dead: it sends nothing more and what is sent to it is lost."""
        node = self.by_name.pop(name)
        del self.nodes[node.address]
        return node

    def partition(self, side_a, side_b):
        """Blocks every link between the two lists of names, both ways."""
        for a in side_a:
            for b in side_b:
                self.blocked[(self.addresses[a], self.addresses[b])] = True
                self.blocked[(self.addresses[b], self.addresses[a])] = True

    def heal(self):
        self.blocked = {}
        self.drop = None

    # --- Moving time ----------------------------------------------------

    def _names(self):
        return sorted(self.by_name)

    def deliver(self):
        """Delivers datagrams until none are left (replies included), in order."""
        rounds = 0
        while True:
            batch = []
            for name in self._names():
                node = self.by_name[name]
                for data, dst in node.datagrams_to_send(self.now):
                    batch.append((node.address, dst, data))
            if not batch:
                break
            rounds += 1
            assert rounds < 200, "datagram storm at t=%d" % self.now
            for src, dst, data in batch:
                if len(data) > self.max_datagram:
                    self.max_datagram = len(data)
                node = self.nodes.get(dst)
                if node is None or (src, dst) in self.blocked:
                    continue
                if self.drop is not None and self.drop(src, dst, data):
                    continue
                self.delivered += 1
                node.receive_datagram(data, src, self.now)
        for name in self._names():
            node = self.by_name[name]
            log = self.events[name]
            event = node.next_event()
            while event is not None:
                log.append((self.now, event))
                event = node.next_event()

    def next_timer(self):
        best = None
        for name in self._names():
            t = self.by_name[name].get_timer()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def step(self, now):
        """Runs every node's due timers at `now`, then delivers everything."""
        assert now >= self.now, "time goes forward"
        self.now = now
        for name in self._names():
            node = self.by_name[name]
            t = node.get_timer()
            if t is not None and t <= now:
                node.handle_timer(now)
        self.deliver()

    def run(self, duration_ms, until=None):
        """Advances `duration_ms`, deadline by deadline; stops early once until() is true.

        Returns whether until() held (True when no condition was given).
        """
        return self.run_to(self.now + duration_ms, until)

    def run_to(self, end, until=None):
        self.deliver()
        same_now = 0
        while until is None or not until():
            t = self.next_timer()
            if t is None or t > end:
                self.now = end
                return until is None or until()
            if t <= self.now:
                same_now += 1
                assert same_now < 50, "a timer stays due at t=%d (get_timer()=%d)" % (self.now, t)
            else:
                same_now = 0
            self.step(t if t > self.now else self.now)
        return True

    # --- Looking ----------------------------------------------------------

    def state(self, observer, subject):
        """The state name `observer` holds for `subject`, or None."""
        m = self.by_name[observer].member(subject)
        return None if m is None else m.state_name

    def all_see(self, state, subjects=None, observers=None):
        """Whether every observer (default: all running) sees every subject in `state`."""
        observers = self._names() if observers is None else observers
        subjects = self._names() if subjects is None else subjects
        for o in observers:
            for s in subjects:
                if o != s and self.state(o, s) != state:
                    return False
        return True

    def mark(self):
        """A bookmark in every event log: pass it as `since` to look only at later events."""
        out = {}
        for name in self.events:
            out[name] = len(self.events[name])
        return out

    def _log(self, observer, since):
        log = self.events[observer]
        if since is None:
            return log
        return log[since.get(observer, 0):]

    def found(self, observer, kind, subject=None, since=None):
        """(time, event) of each event of `kind` (about `subject`) that `observer` saw since the mark."""
        out = []
        for t, e in self._log(observer, since):
            if e.kind == kind and (subject is None or getattr(e, "name", None) == subject):
                out.append((t, e))
        return out

    def about(self, observer, subject, since=None):
        """Kinds of the member_* events `observer` saw about `subject` since the mark."""
        out = []
        for t, e in self._log(observer, since):
            if getattr(e, "name", None) == subject and e.kind.startswith("member_"):
                out.append(e.kind)
        return out

    def describe(self):
        lines = ["t=%d seed=%d" % (self.now, self.seed)]
        for name in self._names():
            node = self.by_name[name]
            lines.append("%s inc=%d: %s" % (name, node.incarnation, " ".join(
                "%s=%s/%d" % (m.name, m.state_name, m.incarnation) for m in node.members() if m.name != name)))
        return "\n".join(lines)


# --- Stand-in signatures --------------------------------------------------

def key_of(name):
    """The stand-in public key of a node."""
    return hashlib.sha256(b"key:" + name.encode()).digest()


def fake_sign(name):
    """The stand-in signer of a node: what fake_check accepts under key_of(name)."""
    key = key_of(name)

    def signer(data, may_defer=False):
        return hashlib.sha256(key + data).digest() * 2
    return signer


def fake_check(key, data, signature):
    """What a real verifier would answer for the stand-in signatures."""
    return signature == hashlib.sha256(key + data).digest() * 2
