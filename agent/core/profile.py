"""Timing profiles: named, complete sets of protocol timings (lan, wan, local).

Every field carries its unit in its name. ``lan()``, ``wan()`` and ``local()``
build complete objects that differ from the base only by the overrides on
their lines, each with the reason for its value. ``make(name, **overrides)``
is what the shells call: a named profile with any field replaced.

The formulas that use these fields (see suspicion.py and broadcast.py):

- suspicion_min_ms = suspicion_mult * max(1, log10(n)) * probe_interval_ms
- suspicion_max_ms = suspicion_max_timeout_mult * suspicion_min_ms
- the suspicion timeout starts at max and falls towards min, logarithmically,
  as up to suspicion_confirmations other members confirm the suspicion
  (Lifeguard, "dynamic suspicion timeout")
- retransmit limit of an update = retransmit_mult * ceil(log10(n + 1))
- probe interval and probe timeout are multiplied by (awareness + 1), with
  awareness in 0 .. awareness_max_multiplier - 1 (Lifeguard "local health")
"""

FIELDS = (
    # Time between two probes of this node (one member each, round robin).
    "probe_interval_ms",
    # Time to wait for a direct ack before asking others to probe (ping-req).
    "probe_timeout_ms",
    # Members asked to probe indirectly when the direct ack is late.
    "indirect_checks",
    # Scales the minimum suspicion timeout (see formula above).
    "suspicion_mult",
    # Maximum suspicion timeout as a multiple of the minimum.
    "suspicion_max_timeout_mult",
    # Independent confirmations after which the timeout reaches its minimum.
    "suspicion_confirmations",
    # Lifeguard local health: the largest multiplier applied to probe timings.
    "awareness_max_multiplier",
    # Time between two gossip rounds (only when updates are pending).
    "gossip_interval_ms",
    # Members sent one datagram of updates per gossip round.
    "gossip_nodes",
    # Retransmissions of an update = retransmit_mult * ceil(log10(n + 1)).
    "retransmit_mult",
    # Time between two full-state syncs (anti-entropy) with a random member;
    # scaled up beyond 32 members like memberlist's pushPullScale.
    "push_pull_interval_ms",
    # Dead members still receive gossip for this long, so they learn of
    # their death and refute it (memberlist GossipToTheDeadTime).
    "gossip_to_the_dead_ms",
    # Time between two attempts to reach a random dead member with a state
    # sync, so healed partitions and paused nodes merge back.
    "dead_reprobe_interval_ms",
    # Dead and left members are forgotten after this long.
    "dead_reap_ms",
    # Time between join attempts while no seed has answered.
    "join_retry_ms",
    # Largest datagram this node sends, in bytes, all headers included.
    "mtu_bytes",
    # The leader re-asserts its claim this often, so late joiners and healed
    # partitions learn it even when no sync reaches them.
    "claim_interval_ms",
    # A starting node claims no leadership before this long after its start
    # (after joining), so a cluster that starts at once elects once.
    "startup_holddown_ms",
)


class Profile:
    """An immutable set of protocol timings; see FIELDS for each meaning."""

    def __init__(self, name, **values):
        for field in FIELDS:
            if field not in values:
                raise ValueError("profile %s: missing field %s" % (name, field))
        for key in values:
            if key not in FIELDS:
                raise ValueError("profile: unknown field %s" % key)
            value = values[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError("profile field %s: must be a positive integer, got %r" % (key, value))
        if values["probe_timeout_ms"] >= values["probe_interval_ms"]:
            raise ValueError("profile field probe_timeout_ms: must be below probe_interval_ms")
        if values["mtu_bytes"] < 512 or values["mtu_bytes"] > 65000:
            raise ValueError("profile field mtu_bytes: must be 512..65000, got %r" % values["mtu_bytes"])
        self.name = name
        for key in values:
            setattr(self, key, values[key])

    def as_dict(self):
        """All fields as a dict (for JSON output and tests)."""
        out = {"name": self.name}
        for field in FIELDS:
            out[field] = getattr(self, field)
        return out

    def replace(self, **overrides):
        """A copy with some fields replaced (validated again)."""
        values = {}
        for field in FIELDS:
            values[field] = getattr(self, field)
        for key in overrides:
            values[key] = overrides[key]
        return Profile(self.name, **values)

    def renamed(self, name):
        """A copy under another name."""
        copy = self.replace()
        copy.name = name
        return copy

    def __eq__(self, other):
        return isinstance(other, Profile) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "Profile(%r)" % (self.as_dict(),)


def lan():
    """The default: one LAN or switch, machines from servers down to Pis.

    Chosen to detect a crash everywhere within ~4 s at 100 members while a
    10 % loss on every link causes no false death (measured with
    `leaderd simulate`, see docs/BENCHMARKS.md).
    """
    return Profile(
        "lan",
        # memberlist LAN: 1 s. Half that halves detection; a probe round is
        # still only ~2 datagrams per second per node.
        probe_interval_ms=500,
        # memberlist LAN: 500 ms. LAN RTT is < 1 ms; 200 ms leaves room for
        # a busy Pi's scheduler and a Python event loop.
        probe_timeout_ms=200,
        # memberlist: 3 relays for the indirect probe.
        indirect_checks=3,
        # memberlist LAN: 4. 2 gives a 2 s minimum at n = 100; the dynamic
        # timeout starts at 6x that, so a lone false suspicion has time to be
        # refuted, while a real crash gathers confirmations fast.
        suspicion_mult=2,
        # memberlist: 6.
        suspicion_max_timeout_mult=6,
        # memberlist uses suspicion_mult - 2 = 2; 3 keeps lossy links safe.
        suspicion_confirmations=3,
        # memberlist: 8.
        awareness_max_multiplier=8,
        # memberlist LAN: 200 ms.
        gossip_interval_ms=200,
        # memberlist LAN: 3.
        gossip_nodes=3,
        # memberlist LAN: 4.
        retransmit_mult=4,
        # memberlist LAN: 30 s.
        push_pull_interval_ms=30000,
        # memberlist: 30 s.
        gossip_to_the_dead_ms=30000,
        # Serf reconnects to failed members every 30 s; a third of that
        # heals a partition within ~10 s.
        dead_reprobe_interval_ms=10000,
        # Serf reaps failed members after 24 h; an hour keeps tables small on boards.
        dead_reap_ms=3600000,
        # A seed that is not up yet is tried again every second.
        join_retry_ms=1000,
        # Fits an Ethernet MTU (1500) with IP, UDP and tunnel headers to spare.
        mtu_bytes=1400,
        # A claim is ~95 bytes; every 5 s keeps the leader's extra load tiny.
        claim_interval_ms=5000,
        # ~4 gossip rounds past a join: enough for a cold-started LAN cluster
        # of 100 to know its members before anyone claims.
        startup_holddown_ms=2000,
    )


def wan():
    """Links across sites: higher RTT and loss, slower detection."""
    return lan().replace(
        # memberlist WAN: 5 s / 3 s; a little faster since clusters are small.
        probe_interval_ms=3000,
        probe_timeout_ms=1500,
        # memberlist WAN: 6.
        suspicion_mult=6,
        # memberlist WAN: 500 ms and 4 nodes.
        gossip_interval_ms=500,
        gossip_nodes=4,
        # memberlist WAN: 60 s.
        push_pull_interval_ms=60000,
        dead_reprobe_interval_ms=30000,
        join_retry_ms=3000,
        claim_interval_ms=15000,
        startup_holddown_ms=6000,
    ).renamed("wan")


def local():
    """One host or one switch with tiny RTT: fastest detection (memberlist's
    Local profile has 1 s probes; we go further because RTT is ~0.1 ms)."""
    return lan().replace(
        # A probe every 150 ms detects a crash everywhere in ~1.1 s at 100
        # members (typical; see docs/BENCHMARKS.md) for ~7 datagrams/s.
        probe_interval_ms=150,
        # Loopback and one switch answer in well under a millisecond; 60 ms
        # still absorbs a busy Python event loop.
        probe_timeout_ms=60,
        suspicion_mult=2,
        gossip_interval_ms=100,
        push_pull_interval_ms=15000,
        dead_reprobe_interval_ms=5000,
        join_retry_ms=500,
        claim_interval_ms=2000,
        startup_holddown_ms=1500,
    ).renamed("local")


PROFILES = {"lan": lan, "wan": wan, "local": local}


def make(name="lan", **overrides):
    """The named profile with overrides applied; raises ValueError naming the bad field."""
    if name not in PROFILES:
        raise ValueError("profile: unknown profile %r (allowed: lan, wan, local)" % (name,))
    base = PROFILES[name]()
    if overrides:
        base = base.replace(**overrides)
    return base
