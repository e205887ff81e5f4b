"""The simulated network and scheduler: many real cores, one virtual clock.

Theory of operation. Everything that happens is an entry on one heap,
ordered by (time_ms, seq): a node's timer firing, a datagram arriving, or a
scheduled action (a fault, a scenario step). `run(until_ms)` pops entries in
order and sets `now` to each entry's time, so the simulation is a pure
function of its seed and arguments; `seq` breaks ties in insertion order.

After every call into a node (start, receive, timer, command) the shell does
what the daemon does (aioquic's transmit loop): send everything
`datagrams_to_send()` returns, drain `next_event()`, and re-arm one timer at
`get_timer()`. A node has at most one live timer entry: the slot remembers
the time it armed and a token; a new entry (with a new token) is pushed only
when that time changes, and an entry whose token is not the slot's current
one is stale and skipped. That is lazy invalidation: O(log n) per re-arm, no
heap removals.

Faults, per link or global (TigerBeetle's packet simulator's list): loss,
latency base + uniform jitter (reordering follows), duplication; partitions
into groups (symmetric) and one-way blocks (asymmetric), both checked when a
datagram is sent; crash (the node object is dropped, datagrams to it are
lost), pause (a gray failure: no timer calls, no receives, arriving
datagrams queue up to a socket-buffer limit and are handed over on resume),
restart (a fresh Node, same name and address, incarnation 0, joining the
seeds, and the highest term its earlier cores reported, as the daemon keeps
it in its term file), and graceful leave.

For the metrics' false alarms the simulation remembers when each node last
came up (start, restart, resume) and every change of reachability (a list
of network configurations with the time each began), so it can answer "was
this node up and reachable from that one, without a break, since t?"
(`steady_since`). Leadership is read after every call into a core
(`node.leader()`): the metrics get each node's leader, the term it follows
and whether it leads itself.

Replays: a `Recorder` added to `sim.recorders` keeps a bounded, uniform
sample of the datagrams the cores send (before any fault), for a test to
re-inject later with `inject` (TigerBeetle's packet simulator replays too).
"""

import heapq
import itertools
import random

from agent.sim.metrics import Metrics

PORT = 7946

# Heap entry kinds: (time_ms, seq, kind, a, b, c)
TIMER = 0  # a = node index, b = timer token (stale unless it is the slot's current one)
DELIVER = 1  # a = destination index, b = data, c = source address
ACTION = 2  # a = callable taking no argument

# handle_timer calls at one instant for one node before we call it a core bug.
_SPIN_LIMIT = 10000


class LinkFaults:
    """The faults of one direction of a link (or of every link): loss, latency, duplication."""

    __slots__ = ("loss", "latency_ms", "jitter_ms", "duplicate")

    def __init__(self, loss=0.0, latency_ms=1, jitter_ms=0, duplicate=0.0):
        if not 0.0 <= loss <= 1.0:
            raise ValueError("loss must be in [0, 1], got %r" % (loss,))
        if not 0.0 <= duplicate <= 1.0:
            raise ValueError("duplicate must be in [0, 1], got %r" % (duplicate,))
        if int(latency_ms) != latency_ms or latency_ms < 0:
            raise ValueError("latency_ms must be a non-negative int, got %r" % (latency_ms,))
        if int(jitter_ms) != jitter_ms or jitter_ms < 0:
            raise ValueError("jitter_ms must be a non-negative int, got %r" % (jitter_ms,))
        self.loss = loss
        self.latency_ms = int(latency_ms)
        self.jitter_ms = int(jitter_ms)
        self.duplicate = duplicate

    def __repr__(self):
        return "LinkFaults(loss=%r, latency_ms=%r, jitter_ms=%r, duplicate=%r)" % (
            self.loss, self.latency_ms, self.jitter_ms, self.duplicate)


class Recorder:
    """A bounded uniform sample (reservoir) of the datagrams cores send: `kept`, a list of
    (time_ms, src index, data, address), at most `limit` long.

    keep(src index, data) -> bool, if given, says which datagrams count at
    all. Its own seeded rng: recording changes nothing else in a run.
    """

    def __init__(self, limit, seed=0, keep=None):
        if limit < 1:
            raise ValueError("limit must be at least 1, got %r" % (limit,))
        self.limit = limit
        self.keep = keep
        self.rng = random.Random("leaderd-sim/recorder/%d" % seed)
        self.seen = 0  # datagrams that counted, kept or not
        self.kept = []

    def add(self, now, src, data, address):
        """Offers one datagram sent by core src at now to the sample."""
        if self.keep is not None and not self.keep(src, data):
            return
        self.seen += 1
        entry = (now, src, data, address)
        if len(self.kept) < self.limit:
            self.kept.append(entry)
        else:
            # Algorithm R: the seen-th datagram replaces a kept one with
            # probability limit / seen.
            at = self.rng.randrange(self.seen)
            if at < self.limit:
                self.kept[at] = entry


class Slot:
    """One simulated machine: a name and address, and the core running there (if any)."""

    __slots__ = ("index", "name", "address", "priority", "eligible", "node", "generation", "timer_at",
                 "timer_token", "paused", "backlog", "leaving", "departed", "crashed", "spin_at", "spins",
                 "stats", "up_since", "saved_term")

    def __init__(self, index, name, address, priority):
        self.index = index
        self.name = name
        self.address = address
        self.priority = priority  # given to each core started here (set_priority changes it)
        self.eligible = True  # likewise (set_eligible changes it)
        self.up_since = None  # when the core here last started or resumed; None while down
        # The daemon's term file: the highest term in this slot's leader_changed /
        # elected events, handed to the next core started here.
        self.saved_term = 0
        self.node = None
        self.generation = 0  # cores started here so far (restarts count)
        self.timer_at = None
        self.timer_token = 0
        self.paused = False
        self.backlog = []
        self.leaving = False
        self.departed = False
        self.crashed = False
        self.spin_at = -1
        self.spins = 0
        self.stats = {}  # counters of the previous cores of this slot (before crash/restart)


def node_name(index, count):
    """The simulated node name of index among count nodes: node-007."""
    return "node-%0*d" % (len(str(max(count - 1, 0))), index)


def node_address(index):
    """The virtual address of node index: ("10.0.X.Y", 7946)."""
    return ("10.0.%d.%d" % (index // 250, index % 250 + 1), PORT)


def default_node_factory(name, address, profile, rng, now, priority, term=0):
    """A real, insecure agent.core.node.Node (imported late, so the scheduler can be tested alone).

    term: the highest term this name's earlier cores reported (passed on restarts only).
    """
    from agent.core.node import Node
    return Node(name=name, address=address, profile=profile, rng=rng, now=now, priority=priority, term=term)


class Simulation:
    """N cores on a virtual network with virtual time; see the module doc."""

    def __init__(self, count, profile, seed=1, loss=0.0, latency_ms=1, jitter_ms=2,
                 duplicate=0.0, node_factory=None, priorities=None, seed_count=3,
                 start_window_ms=1000, backlog_limit=1000, names=None):
        if count < 1:
            raise ValueError("count must be at least 1, got %r" % (count,))
        self.count = count
        self.profile = profile
        self.seed = seed
        self.rng = random.Random("leaderd-sim/network/%d" % seed)
        self.node_factory = node_factory or default_node_factory
        self.default_link = LinkFaults(loss, latency_ms, jitter_ms, duplicate)
        self.links = {}  # (src, dst) -> LinkFaults
        self.group = [0] * count  # partition group per node; datagrams cross no group line
        self.oneway = set()  # (src, dst) pairs whose datagrams are dropped
        self.backlog_limit = backlog_limit
        self.heap = []
        self._seq = itertools.count()
        self.now = 0
        self.election = None  # decided when the first node exists: hasattr(node, "leader")
        self.trace = None  # optional callable(now, observer_name, event) for debugging
        self.recorders = []  # Recorder objects offered every datagram a core sends
        # Reachability history: (since_ms, group, oneway), oldest first.
        self.net_history = [(0, self.group, self.oneway)]
        self.metrics = Metrics(count)
        self.metrics.is_up = self.is_up
        self.metrics.reachable = self.reachable
        self.metrics.steady_since = self.steady_since
        self._set_alarm_windows(profile, count)
        self.slots = []
        self.index_of = {}
        self.index_by_name = {}
        if names is not None and (len(names) != count or len(set(names)) != count):
            raise ValueError("names must be %d distinct names, got %r" % (count, names))
        for index in range(count):
            priority = priorities[index] if priorities else 100
            name = names[index] if names is not None else node_name(index, count)
            slot = Slot(index, name, node_address(index), priority)
            self.slots.append(slot)
            self.index_of[slot.address] = index
            self.index_by_name[slot.name] = index
        self.metrics.names = [slot.name for slot in self.slots]
        self.seeds = [self.slots[index].address for index in range(min(seed_count, count))]
        # Traffic, as sent by the cores (before any network fault).
        self.sent = 0
        self.sent_bytes = 0
        self.max_datagram_bytes = 0
        self.network = {"delivered": 0, "lost": 0, "blocked": 0, "duplicated": 0,
                        "to_down": 0, "backlog_overflow": 0, "unknown_address": 0}
        for index in range(count):
            self.schedule(self.rng.randrange(start_window_ms), self._starter(index))

    def _set_alarm_windows(self, profile, count):
        """How long a node must have been up and reachable for an alarm about it to be false."""
        interval = getattr(profile, "probe_interval_ms", None)
        if interval is None:
            return
        from agent.core.suspicion import suspicion_bounds_ms
        # The longest probe: the interval stretched by Lifeguard's worst local health.
        probe = interval * getattr(profile, "awareness_max_multiplier", 1)
        # The longest suspicion (its maximum at the largest cluster size), plus
        # the probe that started it.
        self.metrics.suspicion_window_ms = probe
        self.metrics.death_window_ms = suspicion_bounds_ms(profile, count)[1] + probe

    # -- scheduling -----------------------------------------------------

    def schedule(self, at_ms, action):
        """Run action() (no arguments; read sim.now) at virtual time at_ms (not before now)."""
        heapq.heappush(self.heap, (max(at_ms, self.now), next(self._seq), ACTION, action, None, None))

    def run(self, until_ms):
        """Process every entry due at or before until_ms; then now = until_ms."""
        heap = self.heap
        pop = heapq.heappop
        slots = self.slots
        while heap and heap[0][0] <= until_ms:
            now, _, kind, a, b, c = pop(heap)
            self.now = now
            if kind == DELIVER:
                self._deliver(a, b, c, now)
            elif kind == TIMER:
                slot = slots[a]
                if slot.timer_token != b or slot.paused:
                    continue  # stale, or paused (resume re-arms the overdue deadline)
                slot.timer_at = None
                slot.node.handle_timer(now)
                self._after_call(slot, now)
            else:
                a()
        if until_ms > self.now:
            self.now = until_ms

    # -- the shell loop around one core ---------------------------------

    def _after_call(self, slot, now):
        node = slot.node
        out = node.datagrams_to_send(now)
        if out:
            for data, address in out:
                for recorder in self.recorders:
                    recorder.add(now, slot.index, data, address)
                self._send(slot, data, address, now)
        event = node.next_event()
        while event is not None:
            if event.kind == "internal_error":
                # A bug in the core: the simulation stops on it (no figure
                # or test may go on past one), with the original traceback.
                raise node.last_error
            self._observe(slot, event, now)
            event = node.next_event()
        if self.election:
            leader = node.leader()
            metrics = self.metrics
            if leader is None:
                metrics.set_leader(slot.index, None, now)
            else:
                metrics.set_leader(slot.index, leader[0], now, leader[1], leader[0] == slot.name)
            if metrics.forged_floor is not None and node.term() >= metrics.forged_floor:
                metrics.forged_term_adopted += 1
        if slot.leaving and node.left:
            self._depart(slot, now)
        else:
            self._arm(slot, node.get_timer(), now)
        self.metrics.check(now)

    def _arm(self, slot, at, now):
        if at is None:
            slot.timer_at = None
            slot.timer_token += 1
            return
        if at <= now:
            # Due already: run it at now, but refuse a core that never moves its timer on.
            at = now
            if slot.spin_at == now:
                slot.spins += 1
                if slot.spins > _SPIN_LIMIT:
                    raise RuntimeError("%s: get_timer() stays at %d ms after handle_timer (seed %d)"
                                       % (slot.name, now, self.seed))
            else:
                slot.spin_at = now
                slot.spins = 0
        if at == slot.timer_at:
            return
        slot.timer_at = at
        slot.timer_token += 1
        heapq.heappush(self.heap, (at, next(self._seq), TIMER, slot.index, slot.timer_token, None))

    def _observe(self, slot, event, now):
        if event.kind in ("leader_changed", "elected") and event.term is not None and event.term > slot.saved_term:
            slot.saved_term = event.term
        name = getattr(event, "name", None)
        target = self.index_by_name.get(name) if name is not None else None
        if self.trace is not None:
            self.trace(now, slot.name, event)
        self.metrics.observe(slot.index, event, target, now)

    def _send(self, slot, data, address, now):
        size = len(data)
        self.sent += 1
        self.sent_bytes += size
        if size > self.max_datagram_bytes:
            self.max_datagram_bytes = size
        dst = self.index_of.get(address)
        if dst is None:
            self.network["unknown_address"] += 1
            return
        src = slot.index
        if self.group[src] != self.group[dst] or (self.oneway and (src, dst) in self.oneway):
            self.network["blocked"] += 1
            return
        link = self.links.get((src, dst), self.default_link) if self.links else self.default_link
        rng = self.rng
        if link.loss and rng.random() < link.loss:
            self.network["lost"] += 1
            return
        copies = 1
        if link.duplicate and rng.random() < link.duplicate:
            copies = 2
            self.network["duplicated"] += 1
        for _ in range(copies):
            delay = link.latency_ms
            if link.jitter_ms:
                delay += int(rng.random() * (link.jitter_ms + 1))
            heapq.heappush(self.heap, (now + delay, next(self._seq), DELIVER, dst, data, slot.address))

    def _deliver(self, dst, data, source, now):
        slot = self.slots[dst]
        node = slot.node
        if node is None:
            self.network["to_down"] += 1
            return
        if slot.paused:
            if len(slot.backlog) < self.backlog_limit:
                slot.backlog.append((data, source))
            else:
                self.network["backlog_overflow"] += 1
            return
        self.network["delivered"] += 1
        node.receive_datagram(data, source, now)
        self._after_call(slot, now)

    # -- node lifecycle -------------------------------------------------

    def _starter(self, index):
        return lambda: self.start(index)

    def start(self, index):
        """Start a fresh core on slot index (incarnation 0) and join the seeds."""
        slot = self.slots[index]
        if slot.node is not None:
            raise RuntimeError("%s is already running" % slot.name)
        now = self.now
        slot.generation += 1
        rng = random.Random("leaderd-sim/node/%d/%s/%d" % (self.seed, slot.name, slot.generation))
        if slot.saved_term:
            slot.node = self.node_factory(slot.name, slot.address, self.profile, rng, now, slot.priority,
                                          term=slot.saved_term)
        else:
            slot.node = self.node_factory(slot.name, slot.address, self.profile, rng, now, slot.priority)
        if self.election is None:
            self.election = callable(getattr(slot.node, "leader", None))
            self.metrics.election = self.election
        first_start = slot.generation == 1
        slot.crashed = slot.paused = slot.leaving = slot.departed = False
        slot.timer_at = None
        slot.backlog = []
        slot.up_since = now
        if not slot.eligible:
            slot.node.set_eligible(False, now)
        if first_start:
            self.metrics.started += 1
        self.metrics.new_core(index)
        self.metrics.make_live(index, now)
        seeds = [address for address in self.seeds if address != slot.address]
        slot.node.join(seeds, now)
        self._after_call(slot, now)

    def crash(self, index):
        """Crash node index now: its core is discarded, datagrams to it are lost."""
        slot = self.slots[index]
        if slot.node is None:
            return
        self._watch_failover(slot)
        self._retire(slot)
        slot.crashed = True
        self.metrics.make_down(index, self.now, forget=True)
        self.metrics.watch_crash(index, self.now)
        self.metrics.check(self.now)

    def restart(self, index):
        """Restart node index now: crash it if it runs, then start a fresh core."""
        if self.slots[index].node is not None:
            self.crash(index)
        self.start(index)

    def pause(self, index):
        """Pause node index now (gray failure): no timers, no receives, datagrams queue up."""
        slot = self.slots[index]
        if slot.node is None or slot.paused:
            return
        self._watch_failover(slot)
        slot.paused = True
        self.metrics.make_down(index, self.now)
        self.metrics.check(self.now)

    def resume(self, index):
        """Resume a paused node: it gets its backlog in order, then its overdue timer."""
        slot = self.slots[index]
        if slot.node is None or not slot.paused:
            return
        now = self.now
        slot.paused = False
        slot.up_since = now
        slot.timer_at = None  # its entry may have been consumed while paused: arm afresh
        if not slot.leaving:
            self.metrics.make_live(index, now)
        backlog = slot.backlog
        slot.backlog = []
        for data, source in backlog:
            if slot.node is None or slot.paused:
                break
            self.network["delivered"] += 1
            slot.node.receive_datagram(data, source, now)
            self._after_call(slot, now)
        # Commands given while it was paused (set_priority / set_eligible) act now.
        node = slot.node
        if node is not None and not slot.paused and not slot.leaving and hasattr(node, "set_priority"):
            if node.priority != slot.priority:
                node.set_priority(slot.priority, now)
                self._after_call(slot, now)
            if slot.node is node and node.eligible_by_operator() != slot.eligible:
                node.set_eligible(slot.eligible, now)
                self._after_call(slot, now)
        if slot.node is not None:
            self._arm(slot, slot.node.get_timer(), now)
        self.metrics.check(now)

    def leave(self, index):
        """Node index leaves gracefully now; its core runs until node.left, then exits."""
        slot = self.slots[index]
        if slot.node is None or slot.leaving:
            return
        self._watch_failover(slot)
        slot.leaving = True
        self.metrics.make_down(index, self.now)
        slot.node.leave(self.now)
        self._after_call(slot, self.now)

    def transfer(self, index, name):
        """Node index (the leader) hands the role to member `name` now (Node.transfer)."""
        slot = self.slots[index]
        slot.node.transfer(name, self.now)
        self._after_call(slot, self.now)

    def _depart(self, slot, now):
        self._retire(slot)
        slot.departed = True
        self.metrics.make_down(slot.index, now, forget=True)

    def _retire(self, slot):
        stats = getattr(slot.node, "stats", None)
        if isinstance(stats, dict):
            for key in stats:
                value = stats[key]
                if isinstance(value, int):
                    slot.stats[key] = slot.stats.get(key, 0) + value
        slot.node = None
        slot.up_since = None
        slot.timer_at = None
        slot.timer_token += 1
        slot.paused = False
        slot.backlog = []

    def _watch_failover(self, slot):
        if self.election and self.metrics.agreed == slot.name:
            self.metrics.watch_failover(slot.name, self.now)

    # -- the network's faults -------------------------------------------

    def set_link(self, src, dst, faults):
        """Give the link src -> dst (indexes) its own LinkFaults; None restores the default."""
        if faults is None:
            self.links.pop((src, dst), None)
        else:
            self.links[(src, dst)] = faults

    def partition(self, groups):
        """Split the network: nodes in different groups (lists of indexes) can't reach each other.

        Nodes in no listed group form one more group together.
        """
        group = [0] * self.count
        for number, members in enumerate(groups):
            for index in members:
                group[index] = number + 1
        self.group = group
        self._network_changed()

    def block(self, src, dst):
        """Drop every datagram from src to dst (one way; an asymmetric partition)."""
        self.oneway = self.oneway | {(src, dst)}
        self._network_changed()

    def unblock(self, src, dst):
        """Undo block(src, dst)."""
        self.oneway = self.oneway - {(src, dst)}
        self._network_changed()

    def heal(self):
        """Remove every partition and one-way block."""
        self.group = [0] * self.count
        self.oneway = set()
        self._network_changed()

    def _network_changed(self):
        # group and oneway are replaced, never changed in place, so the
        # history can hold them as they were.
        if self.net_history[-1][0] == self.now:
            self.net_history.pop()
        self.net_history.append((self.now, self.group, self.oneway))

    # -- commands to a running core (kept for its restarts too) ---------

    def set_priority(self, index, priority):
        """Node index's priority becomes priority now (and after a restart, like a config reload)."""
        slot = self.slots[index]
        slot.priority = priority
        if slot.node is not None and not slot.paused:
            slot.node.set_priority(priority, self.now)
            self._after_call(slot, self.now)

    def set_eligible(self, index, eligible):
        """Node index becomes (in)eligible to lead now (as its health check would say)."""
        slot = self.slots[index]
        slot.eligible = bool(eligible)
        if slot.node is not None and not slot.paused:
            slot.node.set_eligible(slot.eligible, self.now)
            self._after_call(slot, self.now)

    def inject(self, src, data, address):
        """Send a datagram crafted outside any core as if node src sent it (faults apply)."""
        self._send(self.slots[src], data, address, self.now)

    # -- queries --------------------------------------------------------

    def is_up(self, index):
        """True when node index runs and is not paused."""
        slot = self.slots[index]
        return slot.node is not None and not slot.paused

    def reachable(self, src, dst):
        """True when datagrams can pass both ways between src and dst (ignoring loss)."""
        if self.group[src] != self.group[dst]:
            return False
        return not self.oneway or ((src, dst) not in self.oneway and (dst, src) not in self.oneway)

    def steady_since(self, src, dst, since):
        """True when src and dst have both been up, and reachable both ways, without a break since `since`."""
        for index in (src, dst):
            up_since = self.slots[index].up_since
            if up_since is None or up_since > since or self.slots[index].paused:
                return False
        for at, group, oneway in reversed(self.net_history):
            if group[src] != group[dst] or (oneway and ((src, dst) in oneway or (dst, src) in oneway)):
                return False
            if at <= since:
                break
        return True

    def live_indexes(self):
        """Indexes of the nodes that run, are not paused and are not leaving."""
        live = self.metrics.live
        return [index for index in range(self.count) if live[index]]

    def node(self, index):
        """The core running on slot index, or None."""
        return self.slots[index].node

    def total_stats(self):
        """Every node's stats counters summed, including those of crashed cores."""
        total = {}
        for slot in self.slots:
            for key in slot.stats:
                total[key] = total.get(key, 0) + slot.stats[key]
            stats = getattr(slot.node, "stats", None) if slot.node is not None else None
            if isinstance(stats, dict):
                for key in stats:
                    value = stats[key]
                    if isinstance(value, int):
                        total[key] = total.get(key, 0) + value
        return total
