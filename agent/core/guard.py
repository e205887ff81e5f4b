"""Guards against reflection and amplification: proof of address, reply caps, rate limits.

Theory of operation
-------------------
UDP source addresses are not checked by anyone, and the cluster key sits in
every board's flash: an attacker may forge or replay datagrams from any
address. A reply larger than its request, sent to the request's source, is
then an amplifier aimed at whoever owns that address. The rules here make
every reply to an address that has not shown it wants our datagrams no
larger than the datagram that caused it:

- Proof of address. An address is proven when an Ack comes back from it
  carrying the seq of a Ping we sent to that very address: our probes of
  members, final probes, relayed pings, and the challenges below. Proofs
  sit in a bounded set of two generations (the older is dropped when the
  newer fills), so memory stays flat and live members, probed again and
  again, stay in it.
- Challenges. A request that wants a large answer (a state sync asking for
  a reply, a PingReq) from an unproven address gets a Ping instead (target:
  the sender's name, seq: fresh random bits, not the probe counter), and
  the answer is owed, in a bounded table, until the matching Ack comes back
  from that address. A joiner costs its seed one more round trip.
- Reply credit. Every datagram opened gives a credit of its own size; what
  is sent to unproven addresses because of it (an Ack and its piggybacked
  gossip, a challenge, a relayed Ping, a Dead) is taken from that credit,
  and a reply that does not fit is not sent.
- Rate limits. Sync replies, even to proven addresses, go at most once per
  probe interval to one address (replayed pages of other sessions get
  nothing more) and at most `sync_replies_per_s` a second in all (GCRA:
  a burst of that many, then one every 1000 / rate ms).
- Address rules. An address learned from the network (Alive, state-sync
  records, PingReq targets) must be an IP literal, IPv4 dotted quad or
  IPv6, never a host name (resolving one is a lookup an attacker picks),
  with a port. Loopback and unspecified addresses are accepted only when
  this node's own address is loopback (a test cluster on one machine);
  broadcast and multicast never.

Every refusal is counted in the node's stats under a `refused_*` key.
"""

from agent.core import wire

# Address classes (address_class).
ORDINARY = 0
LOOPBACK = 1
UNSPECIFIED = 2
BROADCAST = 3
MULTICAST = 4

# What a challenge's Ack releases (Guard.owe).
OWED_SYNC = 1     # a state-sync reply
OWED_RELAY = 2    # a PingReq relay: payload [PingReq, sender name, reply credit left]
OWED_PUSH = 3     # a state sync of our own (push-pull, dead reprobe) to an unproven address
OWED_PROOF = 4    # nothing: the proof itself (gossip waits for it)

# What a gossip round does with an unproven address (Guard.gossip_to).
GOSSIP_FIRST = 0        # send it, and a challenge
GOSSIP_DROP = 1         # drop it: the challenge is unanswered
GOSSIP_RECHALLENGE = 2  # drop it, challenge again
_RECHALLENGE_EVERY = 8

_HEX = "0123456789abcdefABCDEF"
_ZONE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

# The stats keys the guard (and the node, for relays, members and syncs) counts.
STATS_KEYS = (
    "challenges_sent", "addresses_proven", "sync_truncated",
    "refused_reply_size", "refused_sync_rate_address", "refused_sync_rate_global",
    "refused_owed_evicted", "refused_relay_address", "refused_relay_duplicate", "refused_relay_busy",
    "refused_gossip_unproven",
    "refused_member_address", "refused_member_cap",
)


# --- IP literals ------------------------------------------------------------


def ipv4_value(text):
    """The 32-bit value of a dotted quad ("10.0.0.1"), or None if text is not exactly one.

    Four decimal parts 0..255, no signs, no leading zeros (some resolvers
    read "010" as octal), no shorthand forms such as "10.1".
    """
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return None
        for c in part:
            if c < "0" or c > "9":
                return None
        n = int(part)
        if n > 255:
            return None
        value = (value << 8) | n
    return value


def _hex_groups(part):
    # "1:ab:ff" -> [1, 171, 255]; None when a group is not 1..4 hex digits.
    if not part:
        return []
    out = []
    for item in part.split(":"):
        if not item or len(item) > 4:
            return None
        for c in item:
            if c not in _HEX:
                return None
        out.append(int(item, 16))
    return out


def ipv6_groups(text):
    """The eight 16-bit groups of an IPv6 literal ("fd00::1", "::ffff:10.0.0.1", "fe80::1%eth0"), or None."""
    cut = text.find("%")
    if cut >= 0:
        zone = text[cut + 1:]
        if not zone or len(zone) > 32:
            return None
        for c in zone:
            if c not in _ZONE:
                return None
        text = text[:cut]
    if len(text) < 2 or len(text) > 45 or ":" not in text:
        return None
    tail = []
    if "." in text:
        # An IPv4 tail: the last 32 bits written as a dotted quad.
        cut = text.rfind(":")
        v4 = ipv4_value(text[cut + 1:])
        if v4 is None:
            return None
        tail = [v4 >> 16, v4 & 0xFFFF]
        text = text[:cut + 1]
        if not text.endswith("::"):
            text = text[:-1]
    halves = text.split("::")
    if len(halves) > 2:
        return None
    head = _hex_groups(halves[0])
    back = _hex_groups(halves[1]) if len(halves) == 2 else []
    if head is None or back is None:
        return None
    given = len(head) + len(back) + len(tail)
    if len(halves) == 2:
        if given > 7:
            return None
        return head + [0] * (8 - given) + back + tail
    if given != 8:
        return None
    return head + tail


def _ipv4_class(value):
    first = value >> 24
    if first == 127:
        return LOOPBACK
    if first == 0:
        return UNSPECIFIED  # 0.0.0.0/8, "this network"
    if value == 0xFFFFFFFF:
        return BROADCAST
    if 224 <= first <= 239:
        return MULTICAST
    return ORDINARY


def address_class(host):
    """ORDINARY, LOOPBACK, UNSPECIFIED, BROADCAST or MULTICAST for an IP literal; None for anything else."""
    if not isinstance(host, str):
        return None
    value = ipv4_value(host)
    if value is not None:
        return _ipv4_class(value)
    g = ipv6_groups(host)
    if g is None:
        return None
    if g[0] & 0xFF00 == 0xFF00:
        return MULTICAST
    if g[0] or g[1] or g[2] or g[3] or g[4]:
        return ORDINARY
    if g[5] == 0:
        if not g[6] and g[7] <= 1:
            return UNSPECIFIED if g[7] == 0 else LOOPBACK
        return _ipv4_class((g[6] << 16) | g[7])  # IPv4-compatible (deprecated)
    if g[5] == 0xFFFF:
        return _ipv4_class((g[6] << 16) | g[7])  # IPv4-mapped
    return ORDINARY


def is_loopback(host):
    """Whether host is a loopback IP literal (127.0.0.0/8, ::1, ::ffff:127.x.y.z)."""
    return address_class(host) == LOOPBACK


def address_allowed(address, own_loopback):
    """Whether (host, port) may be sent to when learned from the network (see the module doc)."""
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return False
    if not isinstance(port, int) or port <= 0 or port > 65535:
        return False
    cls = address_class(host)
    if cls == ORDINARY:
        return True
    if cls == LOOPBACK or cls == UNSPECIFIED:
        return own_loopback
    return False  # a host name, broadcast or multicast


# --- State sync sizing --------------------------------------------------------


def sync_records_that_fit(encoded_records, budget, max_pages=255):
    """How many of encoded_records, in order, fit one state sync of max_pages pages of budget bytes.

    The paging of wire.encode_sync_pages_raw (greedy, in order); counting
    stops at a record larger than a page, which no sync can carry.
    """
    room = budget - wire.MESSAGE_HEADER_BYTES - wire.SYNC_HEAD_BYTES
    pages = 1
    size = 0
    for i in range(len(encoded_records)):
        n = len(encoded_records[i])
        if n > room:
            return i  # wire.encode_sync_pages_raw would refuse it
        if size + n > room:
            pages += 1
            if pages > max_pages:
                return i
            size = 0
        size += n
    return len(encoded_records)


def truncate_sync_records(encoded_records, budget, max_pages=255):
    """encoded_records cut, in place, to what one sync carries; records larger than a page left out."""
    room = budget - wire.MESSAGE_HEADER_BYTES - wire.SYNC_HEAD_BYTES
    for i in range(len(encoded_records) - 1, -1, -1):
        if len(encoded_records[i]) > room:
            del encoded_records[i]
    del encoded_records[sync_records_that_fit(encoded_records, budget, max_pages):]
    return encoded_records


# --- The guard ---------------------------------------------------------------


class MeteredCodec(wire.Codec):
    """A wire.Codec that tells `on_open` the size of every datagram it opens (the reply credit)."""

    def __init__(self, cluster, sender, keyring, on_open):
        wire.Codec.__init__(self, cluster, sender, keyring)
        self._on_open = on_open

    def open(self, data):
        """(sender, [messages]) from a datagram; raises WireError only."""
        self._on_open(len(data))
        return wire.Codec.open(self, data)


class Guard:
    """Proof of address, reply credit and rate limits for one node (see the module doc).

    Takes the narrow things it needs: the node's own address, its profile,
    its rng (getrandbits only) and its stats dict, which it counts into.
    """

    def __init__(self, own_address, profile, rng, stats, max_proven=4096, max_owed=32,
                 sync_replies_per_s=16, sync_reply_burst=None):
        if sync_replies_per_s < 1:
            raise ValueError("sync_replies_per_s must be at least 1, got %r" % (sync_replies_per_s,))
        self.own_loopback = is_loopback(own_address[0])
        self.profile = profile
        self.rng = rng
        self.stats = stats
        for key in STATS_KEYS:
            stats[key] = 0
        # Bytes still allowed to unproven addresses for the datagram being handled.
        self.credit = 0
        self._max_proven = max_proven if max_proven > 1 else 2
        self._proven = {}        # address -> True: this generation
        self._proven_old = {}    # the previous generation
        self._unanswered = {}    # address -> gossip datagrams dropped since its challenge
        self._unanswered_old = {}
        self._max_owed = max_owed if max_owed > 0 else 1
        self._owed = {}          # challenge seq -> [address, order, kind, payload]
        self._owed_order = 0
        self._replied = {}       # address -> when we last sent it a sync reply
        self._replied_old = {}
        self._interval_ms = 1000 // sync_replies_per_s
        if sync_reply_burst is None:
            sync_reply_burst = sync_replies_per_s
        self._burst_ms = (sync_reply_burst - 1) * self._interval_ms
        self._replies_tat = None  # GCRA: when the next reply is due at the steady rate
        # The most sync replies the global cap lets through in one probe
        # interval, burst included: past that many, older entries of
        # _replied are stale (see sync_reply_allowed).
        self._max_replied = sync_reply_burst + profile.probe_interval_ms // self._interval_ms + 1

    # --- Reply credit ----------------------------------------------------

    def datagram_opened(self, size):
        """A datagram of size bytes is being handled: replies to it may take that much."""
        self.credit = size

    def spend(self, size):
        """size bytes were sent to an unproven address because of the current datagram."""
        self.credit -= size

    # --- Proof of address ------------------------------------------------

    def is_proven(self, address):
        """Whether address has acked a Ping we sent to it (and is still remembered)."""
        if address in self._proven:
            return True
        if address in self._proven_old:
            self._remember(address)  # still in use: keep it in the newer generation
            return True
        return False

    def prove(self, address):
        """Records that address answered a Ping we sent to it."""
        if self._unanswered or self._unanswered_old:
            self._unanswered.pop(address, None)
            self._unanswered_old.pop(address, None)
        if address not in self._proven:
            if address not in self._proven_old:
                self.stats["addresses_proven"] += 1
            self._remember(address)

    def _remember(self, address):
        if len(self._proven) >= self._max_proven // 2:
            self._proven_old = self._proven
            self._proven = {}
        self._proven[address] = True

    def gossip_to(self, address):
        """GOSSIP_FIRST, GOSSIP_DROP or GOSSIP_RECHALLENGE for a gossip datagram to an unproven address.

        The first one goes, with a challenge; while that is unanswered the
        next ones are dropped, every _RECHALLENGE_EVERY-th replaced by a new
        challenge (a lost Ping or Ack must not silence a member for long).
        """
        drops = self._unanswered.get(address)
        if drops is None:
            drops = self._unanswered_old.pop(address, None)
        if drops is None:
            verdict = GOSSIP_FIRST
            drops = 0
        else:
            drops += 1
            verdict = GOSSIP_RECHALLENGE if drops % _RECHALLENGE_EVERY == 0 else GOSSIP_DROP
        if address not in self._unanswered and len(self._unanswered) >= self._max_proven // 2:
            self._unanswered_old = self._unanswered
            self._unanswered = {}
        self._unanswered[address] = drops
        return verdict

    def allowed(self, address):
        """Whether an address learned from the network may be used (address_allowed, for this node)."""
        return address_allowed(address, self.own_loopback)

    def relay_allowed(self, relays, requester, ping_req, max_per_requester, max_relays):
        """Whether a PingReq from requester may be relayed now; counts the refusal when not.

        relays: the node's relays in flight, seq -> (requester, its seq, ...).
        The target must be an allowed IP literal; one (requester, seq) is
        relayed once at a time, a requester has at most max_per_requester in
        flight, the node max_relays.
        """
        if not self.allowed(ping_req.address):
            self.stats["refused_relay_address"] += 1
            return False
        mine = 0
        for seq in relays:
            relay = relays[seq]
            if relay[0] == requester:
                if relay[1] == ping_req.seq:
                    self.stats["refused_relay_duplicate"] += 1
                    return False
                mine += 1
        if mine >= max_per_requester or len(relays) >= max_relays:
            self.stats["refused_relay_busy"] += 1
            return False
        return True

    # --- Challenges --------------------------------------------------------

    def owe(self, address, kind, payload):
        """Remembers what a challenge to address releases; returns the challenge Ping's seq.

        The seq is fresh random bits: the probe counter is predictable to
        anyone who saw one of our probes, and a guessed seq would prove an
        address that never answered. The table keeps the latest max_owed
        challenges; an Ack that comes back late still proves its address.
        """
        owed = self._owed
        if len(owed) >= self._max_owed:
            oldest = None
            for seq in owed:
                if oldest is None or owed[seq][1] < owed[oldest][1]:
                    oldest = seq
            del owed[oldest]
            self.stats["refused_owed_evicted"] += 1
        seq = self.rng.getrandbits(30)
        while seq in owed:
            seq = self.rng.getrandbits(30)
        self._owed_order += 1
        owed[seq] = [address, self._owed_order, kind, payload]
        self.stats["challenges_sent"] += 1
        return seq

    def owes(self, address, kind=None):
        """Whether a challenge to address (for kind; None: any) is still unanswered (then send no other)."""
        owed = self._owed
        for seq in owed:
            entry = owed[seq]
            if entry[0] == address and (kind is None or entry[2] == kind):
                return True
        return False

    def forget(self, seq):
        """Drops an owed entry whose challenge could not be sent."""
        if self._owed.pop(seq, None) is not None:
            self.stats["challenges_sent"] -= 1

    def answered(self, seq, address):
        """(kind, payload) owed for the challenge seq when its Ack came from its address, else None.

        The address is proven by it.
        """
        entry = self._owed.get(seq)
        if entry is None or entry[0] != address:
            return None
        del self._owed[seq]
        self.prove(address)
        return entry[2], entry[3]

    # --- Rate limits -------------------------------------------------------

    def sync_reply_allowed(self, address, now):
        """Whether a sync reply may go to address now; records it when so, counts the refusal when not."""
        last = self._replied.get(address)
        if last is None:
            last = self._replied_old.get(address)
        if last is not None and now - last < self.profile.probe_interval_ms:
            self.stats["refused_sync_rate_address"] += 1
            return False
        tat = self._replies_tat
        if tat is not None and now < tat - self._burst_ms:
            self.stats["refused_sync_rate_global"] += 1
            return False
        self._replies_tat = (tat if tat is not None and tat > now else now) + self._interval_ms
        # Two generations, swapped when the newer holds more than the global
        # cap lets through in a probe interval: the older is then all stale.
        if len(self._replied) >= self._max_replied:
            self._replied_old = self._replied
            self._replied = {}
        self._replied[address] = now
        return True
