"""Guards against reflection and amplification: proof of address, reply budget, rate limits.

Theory of operation
-------------------
UDP source addresses are not checked by anyone, and the cluster key sits in
every board's flash: an attacker may forge or replay datagrams from any
address. A reply larger than its request, sent to the request's source, is
an amplifier aimed at whoever owns that address. The rules here keep every
datagram to an address that has not shown it wants ours no larger than the
datagram that caused it (docs/PROTOCOL.md, "Reflection and amplification"):

- Proof of address. An address is proven ("known") when an Ack comes back
  from it carrying the seq of a Ping we sent to that very address: our
  probes of members, final probes, relayed pings, and the challenges below.
  Proofs sit in a set bounded by the member cap (it starts over when full,
  as the node's sync-session table does; members, probed again and again,
  come back into it).
- Challenges. A request that wants a large answer (a state sync asking for
  a reply, a PingReq) from an unproven address gets a Ping instead (target:
  the sender's name; seq: fresh random bits, not the probe counter, which
  anyone who saw one probe can guess), and the answer waits in a bounded
  table until the Ack comes back from that address. A joiner costs its seed
  one more round trip. Our own push-pull and dead-reprobe syncs to an
  unproven address, and gossip rounds to one, go the same way: the first
  gets a challenge (a gossip round's datagram goes too), later ones are
  dropped while it is unanswered, every 8th challenged again.
- Reply budget. Every datagram opened gives a budget of its own size; what
  is sent to unproven addresses because of it (an Ack and its piggybacked
  gossip, a challenge, a relayed Ping, a Dead) is taken from it, and a
  reply that does not fit is not sent. Our own datagrams to an unproven
  address (probes, claims) carry no piggybacked gossip.
- Rate limits. Sync replies, even to proven addresses, go at most once per
  probe interval to one address (replayed pages of other sessions get
  nothing more) and at most 16 a second in all, after a burst of 16 more
  than the live members (GCRA: one every 62 ms; the burst lets a whole
  cluster that starts at once join through one seed).
- Address rules. An address learned from the network (Alive, state-sync
  records, PingReq targets) must be an IP literal, IPv4 dotted quad or
  IPv6, never a host name (resolving one is a lookup the attacker picks),
  with a port 1..65535. Loopback and unspecified addresses are accepted
  only when this node's own address is loopback (a test cluster on one
  machine); broadcast and multicast never.

Every refusal is counted in the node's stats under a `refused_*` key.

Boards load this module's bytecode into their heap, each function costs
~100 bytes there, and every new identifier is an interned string that
stays (docs/BOARDS.md): hence few functions, names the agent already has
(known, pop, send, busy, budget, own, _buckets, ...), constants in
const() and byte strings rather than short str constants.

A board runs a smaller guard (micropython/build.py BOARD_STRIP and
BOARD_REPLACE; docs/PROTOCOL.md, "Reflection and amplification", says what
it gives up): no challenges at all (`owe` is left out, `pop` and `send`
answer "nothing waits" and "do not send", Node._challenge only counts), so
a board answers a sync and relays a PingReq only for an address it has
proven by probing it, and sends its gossip and its own syncs only to
proven addresses; no IPv6 parser (a board speaks IPv4) and no sync
truncation (it holds at most 64 members); its counters under small-int
keys (nothing on a board reads them).
"""

from agent.core import wire

try:
    from micropython import const
except ImportError:
    def const(value):
        return value

# Address classes (address_allowed, _ipv6).
_ORDINARY = const(0)
_LOCAL = const(1)       # loopback or unspecified: fine on a one-machine cluster only
_FORBIDDEN = const(2)   # broadcast, multicast, or not an IP literal at all

# The maps in Guard._buckets, each bounded (it starts over when full, as the
# node's sync-session table does; the replies map keeps its recent entries).
_PROVEN = const(0)      # address -> True
_QUIET = const(1)       # address -> datagrams of ours it was denied since its challenge (gossip, push-pull)
_REPLIED = const(2)     # address -> when we last answered a sync request from it ...
_SESSION = const(3)     # ... and that request's session

_MAX_OWED = const(32)               # challenges waiting for their Ack (8 under a member cap of 128)
_REPLY_INTERVAL_MS = const(62)      # the global cap: 16 sync replies a second ...
_REPLY_BURST = const(16)            # ... after a burst of 16 more than the live members
_RECHALLENGE_EVERY = const(8)



# --- IP literals ------------------------------------------------------------


def _ipv4(text):
    # The 32-bit value of a dotted quad (bytes), or None: four decimal parts
    # 0..255, no signs, no leading zeros (some resolvers read "010" as
    # octal), no shorthand such as "10.1". One pass over the bytes, nothing
    # allocated: a board checks each new member's address, and garbage made
    # between long-lived members fragments its heap. (Bytes, not str, here:
    # a board interns every short str constant for good.)
    value = 0
    part = 0
    digits = 0
    dots = 0
    for c in text:
        if c == 46:  # "."
            if not digits or dots == 3 or part > 255:
                return None
            value = (value << 8) | part
            part = 0
            digits = 0
            dots += 1
        elif 48 <= c <= 57 and digits < 3 and not (digits and not part):  # a digit; no leading zero
            part = part * 10 + c - 48
            digits += 1
        else:
            return None
    if dots != 3 or not digits or part > 255:
        return None
    return (value << 8) | part


def _ipv6(host):
    # For an IPv6 literal (bytes): -1 - its class, or the IPv4 value of an
    # IPv4-mapped (::ffff:a.b.c.d) or -compatible (::a.b.c.d) address, whose
    # class the IPv4 rules give. Eight 16-bit groups, "::" once, an optional
    # dotted-quad tail and an optional zone ("fe80::1%eth0", letters, digits,
    # "-_."). Boards, IPv4 only, build this as "not an IP literal"
    # (micropython/build.py BOARD_STUB).
    cut = host.find(b"%")
    if cut >= 0:
        zone = host[cut + 1:]
        if not zone or len(zone) > 32:
            return -1 - _FORBIDDEN
        for c in zone:
            if not (97 <= c <= 122 or 65 <= c <= 90 or 48 <= c <= 57 or c in b"-_."):
                return -1 - _FORBIDDEN
        host = host[:cut]
    if len(host) < 2 or len(host) > 45 or b":" not in host:
        return -1 - _FORBIDDEN
    tail = []
    if b"." in host:
        cut = host.rfind(b":")
        value = _ipv4(host[cut + 1:])
        if value is None:
            return -1 - _FORBIDDEN
        tail = [value >> 16, value & 0xFFFF]
        host = host[:cut + 1] if host[:cut + 1].endswith(b"::") else host[:cut]
    halves = host.split(b"::")
    if len(halves) > 2:
        return -1 - _FORBIDDEN
    groups = []
    for k in range(len(halves)):
        if k:
            groups.append(None)  # where "::" stands
        if halves[k]:
            for item in halves[k].split(b":"):
                if not item or len(item) > 4:
                    return -1 - _FORBIDDEN
                for c in item:
                    if not (48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70):  # not a hex digit
                        return -1 - _FORBIDDEN
                groups.append(int(item, 16))
    groups += tail
    if len(halves) == 2:
        if len(groups) > 8:
            return -1 - _FORBIDDEN
        k = groups.index(None)
        groups[k:k + 1] = [0] * (9 - len(groups))
    elif len(groups) != 8:
        return -1 - _FORBIDDEN
    if groups[0] & 0xFF00 == 0xFF00:
        return -1 - _FORBIDDEN  # multicast
    for c in groups[:5]:
        if c:
            return -1 - _ORDINARY
    if groups[5] == 0 and groups[6] == 0 and groups[7] <= 1:
        return -1 - _LOCAL  # "::" (unspecified), "::1" (loopback)
    if groups[5] not in (0, 0xFFFF):
        return -1 - _ORDINARY
    return (groups[6] << 16) | groups[7]


def address_allowed(address, own):
    """Whether (host, port) learned from the network may be sent to; own: this node's address is loopback."""
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return False
    if not isinstance(host, str) or not isinstance(port, int) or port <= 0 or port > 65535:
        return False
    host = host.encode()
    value = _ipv4(host)
    if value is None:
        value = _ipv6(host)
        if value < 0:
            return value == -1 - _ORDINARY or (value == -1 - _LOCAL and own)
    c = value >> 24
    if c == 127 or c == 0:
        return own  # loopback; 0.0.0.0/8, "this network"
    return value != 0xFFFFFFFF and not 224 <= c <= 239  # broadcast, multicast


# --- The guard ---------------------------------------------------------------


def _proven():
    # The proven addresses' container (a list on a board: micropython/build.py).
    return {}


class Guard(wire.Codec):
    """The node's codec, with the rules of the module doc; the node sets its budget to the size of
    every datagram it opens.

    Takes the narrow things it needs besides the codec's (cluster, sender,
    keyring): the node's own address, its profile, its rng (getrandbits
    only), its stats (its keys are added when first counted: a board keeps
    no zeros) and the member cap.
    """

    def __init__(self, cluster, sender, keyring, address, profile, rng, stats, max_members):
        wire.Codec.__init__(self, cluster, sender, keyring)
        # On a one-machine cluster (loopback), loopback addresses are fine.
        self.own = not address_allowed(address, False) and address_allowed(address, True)
        self.profile = profile
        self.rng = rng
        self.stats = stats
        # Bytes still allowed to unproven addresses for the datagram being
        # handled (the node sets it to the datagram's size).
        self.budget = 0
        self._buckets = [_proven(), {}, {}, {}]
        self._cache_size = max_members
        self._pending = {}      # challenge seq -> (address, action, args)
        self._timer_at = None   # GCRA: when the next sync reply is due at the steady rate

    # --- Proof of address ------------------------------------------------

    def known(self, address, confirm=False):
        """Whether address has acked a Ping we sent to it (and is still remembered): it is proven.

        confirm: it just did; record it.
        """
        if not confirm:
            return address in self._buckets[_PROVEN]
        self._buckets[_QUIET].pop(address, None)
        proven = self._buckets[_PROVEN]
        if address not in proven:
            self.stats["addresses_proven"] = self.stats.get("addresses_proven", 0) + 1
            if len(proven) >= self._cache_size:
                proven = self._buckets[_PROVEN] = {}  # starts over, bounded by the member cap
            proven[address] = True
        return True

    # --- Challenges --------------------------------------------------------

    def owe(self, address, action, args):
        """Remembers action(*args) (or nothing: None) for when address acks; returns the challenge Ping's seq.

        At most 32 challenges wait (8 with a member cap under 128); past that the table starts
        over (counted), as the sync-session table does. An Ack that comes
        back later still proves its address, not what it would have released.
        """
        pending = self._pending
        if len(pending) >= (_MAX_OWED if self._cache_size >= 128 else 8):
            self.stats["refused_owed_evicted"] = self.stats.get("refused_owed_evicted", 0) + len(pending)
            pending = self._pending = {}
        seq = self.rng.getrandbits(30)
        while seq in pending:
            seq = self.rng.getrandbits(30)
        pending[seq] = (address, action, args)
        return seq

    def pop(self, seq, address):
        """(action, args) waiting for the challenge seq when its Ack came from its address (which is then
        proven), else None. address None: forgets the challenge (it could not be sent)."""
        entry = self._pending.get(seq)
        if entry is None or (address is not None and entry[0] != address):
            return None
        del self._pending[seq]
        if address is None:
            return None
        self.known(address, True)
        return entry[1], entry[2]

    def send(self, address, action, args):
        """For a datagram of our own accord to an unproven address: (whether it may go, the challenge
        datagram to send or None). The first goes, with a challenge; while that is unanswered the next
        ones are dropped, every 8th replaced by a challenge again. action(*args) waits for the Ack."""
        quiet = self._buckets[_QUIET]
        drops = quiet.get(address, -1) + 1
        if drops == 0 and len(quiet) >= self._cache_size:
            quiet = self._buckets[_QUIET] = {}  # starts over, bounded by the member cap
        quiet[address] = drops
        if drops % _RECHALLENGE_EVERY:
            return False, None
        self.stats["challenges_sent"] = self.stats.get("challenges_sent", 0) + 1
        return drops == 0, self.seal([wire.encode_message(wire.Ping(seq=self.owe(address, action, args),
                                                                     target=wire.ANY_TARGET))])

    # --- State sync sizing -------------------------------------------------

    def truncated(self, records, budget, again):
        """records (encoded sync records), or, when one sync of 255 pages cannot carry them, again(True)
        (this node's record, then the live members, then the rest) cut to what it can, counted.

        The paging of wire.encode_sync_pages_raw (greedy, in order); a record
        larger than a page, which no sync can carry, is left out.
        """
        room = budget - wire.MESSAGE_HEADER_BYTES - wire.SYNC_HEAD_BYTES
        for k in range(2):
            n = len(records)
            for i in range(n - 1, -1, -1):
                if len(records[i]) > room:
                    del records[i]
            pages = 1
            size = 0
            for i in range(len(records)):
                if size + len(records[i]) > room:
                    pages += 1
                    if pages > 255:
                        del records[i:]
                        break
                    size = 0
                size += len(records[i])
            if len(records) == n:
                return records
            if not k:
                self.stats["sync_truncated"] = self.stats.get("sync_truncated", 0) + 1
                records = None  # one list at a time on a board's heap
                records = again(True)
        return records

    # --- Rate limits -------------------------------------------------------

    def busy(self, address, session, now):
        """Whether a Sync asking for a reply (session) from address goes unanswered, else records it.

        Unanswered: a later page of the session last answered to address
        (silently: one reply a session), or a second session within a probe
        interval (counted). Answered means a reply or, to an unproven
        address, a challenge: then the reply waits for spent().
        """
        interval = self.profile.probe_interval_ms
        replied = self._buckets[_REPLIED]
        last = replied.get(address)
        if last is not None:
            if self._buckets[_SESSION][address] == session:
                return True
            if now - last < interval:
                self.stats["refused_sync_rate_address"] = self.stats.get("refused_sync_rate_address", 0) + 1
                return True
        elif len(replied) >= _REPLY_BURST:
            # Only the last probe interval's matter: keep those (and start
            # over when they are as many as a burst: a flood of spoofed
            # sources, which the global cap holds anyway).
            fresh = {}
            sessions = {}
            for a in replied:
                if now - replied[a] < interval:
                    fresh[a] = replied[a]
                    sessions[a] = self._buckets[_SESSION][a]
            if len(fresh) >= _REPLY_BURST:
                fresh = {}
                sessions = {}
            replied = self._buckets[_REPLIED] = fresh
            self._buckets[_SESSION] = sessions
        # Two maps of small ints, not one of (when, session) tuples: no
        # allocation per request (on a board, each would be a small
        # long-lived piece in the way of the next datagram's buffer).
        replied[address] = now
        self._buckets[_SESSION][address] = session
        return False

    def spent(self, now, members):
        """Whether a sync reply must wait for the global cap (counted), else takes its place in it.

        members: the live members, whose joins the burst must let through.
        """
        due = self._timer_at
        if due is not None and now < due - _REPLY_INTERVAL_MS * (_REPLY_BURST - 1 + members):
            self.stats["refused_sync_rate_global"] = self.stats.get("refused_sync_rate_global", 0) + 1
            return True
        self._timer_at = (due if due is not None and due > now else now) + _REPLY_INTERVAL_MS
        return False
