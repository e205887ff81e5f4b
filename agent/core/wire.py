"""Wire format v2: encode and decode every datagram (docs/PROTOCOL.md).

A datagram is a header, then one or more messages, then (when a keyring is
set) a 16-byte HMAC-SHA256 tag over everything before it::

    u8  version (2)
    u8  flags        bit 0: authenticated (key id here, tag at the end)
    u32 cluster tag  first 4 bytes of SHA-256("leaderd-cluster:" + name)
    u32 key id       only when authenticated
    str sender       u8 length (1..64) + UTF-8 name
    messages         repeated: u8 type, u16 body length, body
    16 bytes tag     only when authenticated

All integers are big-endian. A message type this version does not know is
skipped by its length (so later versions can append types); anything else
that is wrong makes the whole datagram invalid: decoding raises WireError,
never anything else.
"""

import hashlib
import struct

from agent.core.auth import TAG_BYTES, equal_tags

VERSION = 2
FLAG_AUTH = 0x01

MAX_NAME_BYTES = 64
MAX_HOST_BYTES = 64
MAX_TAG_TEXT_BYTES = 32
MAX_TAGS = 8

STATE_ALIVE = 0
STATE_SUSPECT = 1
STATE_DEAD = 2
STATE_LEFT = 3
STATE_NAMES = ("alive", "suspect", "dead", "left")

# --- Message types. ONLY APPEND: these numbers are the protocol. ---------
T_PING = 1
T_ACK = 2
T_NACK = 3
T_PING_REQ = 4
T_ALIVE = 5
T_SUSPECT = 6
T_DEAD = 7
T_LEFT = 8
T_SYNC = 9
T_CLAIM = 10
T_RESIGN = 11
T_HANDOVER = 12
# --------------------------------------------------------------------------

# A ping to this target is answered by whoever receives it (`leaderd ping`).
ANY_TARGET = "*"

SYNC_REPLY_WANTED = 0x01
SYNC_JOIN = 0x02

MESSAGE_HEADER_BYTES = 3


class WireError(Exception):
    """A datagram that cannot be accepted; ``reason`` is a short counter name.

    The decoder raises it with the reason only (what exactly was wrong is a
    comment at each raise): each message string would cost a board ~100
    bytes of heap, and nodes count and report only the reason.
    """

    def __init__(self, reason, detail=""):
        # super(), not Exception.__init__(self, ...): MicroPython has no
        # Exception.__init__ attribute (AttributeError on every raise).
        super().__init__(reason if not detail else reason + ": " + detail)
        self.reason = reason


def cluster_tag(name):
    """The 32-bit tag that keeps clusters sharing a network apart."""
    digest = hashlib.sha256(b"leaderd-cluster:" + name.encode("utf-8")).digest()
    return struct.unpack(">I", digest[:4])[0]


# --- Messages (value objects) ---------------------------------------------
#
# One class, Message, whose type_code says which fields it has (FIELDS), and a
# constructor function per type (Ping(seq=..., target=...), ...). Not a class
# per type: on a board every class loaded from a .mpy costs ~500 bytes of
# heap (64-bit unix port) where a function costs ~120, and the board's heap
# budget is what limits it (docs/BOARDS.md).

# The field names of each type, by type code; 0 is a state-sync Record (not a message).
FIELDS = (
    ("name", "incarnation", "address", "priority", "eligible", "tags", "state", "signature"),
    ("seq", "target"),
    ("seq",),
    ("seq",),
    ("seq", "target", "address"),
    ("name", "incarnation", "address", "priority", "eligible", "tags", "signature"),
    ("name", "incarnation", "by"),
    ("name", "incarnation", "by"),
    ("name", "incarnation", "signature"),
    ("session", "reply_wanted", "join", "page", "pages", "records"),
    ("term", "name", "priority", "incarnation", "counter", "signature"),
    ("term", "name", "signature"),
    ("term", "name", "successor", "signature"),
)
TYPE_NAMES = ("Record", "Ping", "Ack", "Nack", "PingReq", "Alive", "Suspect", "Dead", "Left", "Sync",
              "Claim", "Resign", "Handover")


class Message:
    """A wire message (or a state-sync record): type_code, then the fields FIELDS[type_code] names.

    values: the field values, in FIELDS[type_code] order. Equal by type and
    field values; repr() shows the constructor call.
    """

    def __init__(self, type_code, values):
        self.type_code = type_code
        fields = FIELDS[type_code]
        for i in range(len(fields)):
            setattr(self, fields[i], values[i])

    @property
    def fields(self):
        """The names of this message's fields."""
        return FIELDS[self.type_code]

    def __eq__(self, other):
        if not isinstance(other, Message) or other.type_code != self.type_code:
            return False
        for name in FIELDS[self.type_code]:
            if getattr(self, name) != getattr(other, name):
                return False
        return True

    def __repr__(self):
        parts = []
        for name in FIELDS[self.type_code]:
            parts.append("%s=%r" % (name, getattr(self, name)))
        return "%s(%s)" % (TYPE_NAMES[self.type_code], ", ".join(parts))


def Ping(seq=None, target=None):
    """A direct probe of `target` (the name the prober expects there)."""
    return Message(T_PING, (seq, target))


def Ack(seq=None):
    """The answer to a ping with the same seq."""
    return Message(T_ACK, (seq,))


def Nack(seq=None):
    """A relay's word that its indirect ping got no ack in time (Lifeguard)."""
    return Message(T_NACK, (seq,))


def PingReq(seq=None, target=None, address=None):
    """A request to probe `target` at `address` and relay the ack (seq)."""
    return Message(T_PING_REQ, (seq, target, address))


def Alive(name=None, incarnation=None, address=None, priority=None, eligible=None, tags=None,
          signature=b""):
    """A member is alive at an incarnation, with its address and metadata, signed by it (or b"")."""
    return Message(T_ALIVE, (name, incarnation, address, priority, eligible, tags, signature))


def Suspect(name=None, incarnation=None, by=None):
    """Member `name` at `incarnation` is suspected by member `by`."""
    return Message(T_SUSPECT, (name, incarnation, by))


def Dead(name=None, incarnation=None, by=None):
    """Member `name` at `incarnation` is declared dead by member `by`."""
    return Message(T_DEAD, (name, incarnation, by))


def Left(name=None, incarnation=None, signature=b""):
    """Member `name` left the cluster gracefully at `incarnation`, signed by it (or b"")."""
    return Message(T_LEFT, (name, incarnation, signature))


def Record(name=None, incarnation=None, address=None, priority=None, eligible=None, tags=None, state=None,
           signature=b""):
    """One member's full state in a state sync: its signed Alive statement and a state (type_code 0)."""
    return Message(0, (name, incarnation, address, priority, eligible, tags, state, signature))


def Sync(session=None, reply_wanted=None, join=None, page=None, pages=None, records=None):
    """One page of a push-pull state sync: a list of Records."""
    return Message(T_SYNC, (session, reply_wanted, join, page, pages, records))


def Claim(term=None, name=None, priority=None, incarnation=None, counter=0, signature=None):
    """A leadership claim for `term` by `name`, signed (or unsigned: b"").

    The leader re-asserts it as a heartbeat: the same term with a counter
    one higher each time, signed afresh, so a recorded claim cannot pass
    for a live leader.
    """
    return Message(T_CLAIM, (term, name, priority, incarnation, counter, signature))


def Resign(term=None, name=None, signature=None):
    """The leader of `term` gives the role up, signed (or unsigned: b"")."""
    return Message(T_RESIGN, (term, name, signature))


def Handover(term=None, name=None, successor=None, signature=None):
    """The leader of `term` gives the role to member `successor` (`leaderd transfer`), signed (or b"")."""
    return Message(T_HANDOVER, (term, name, successor, signature))


SIGNATURE_BYTES = 64


# The first bytes of what each signature covers: one domain per statement,
# so no signature can be taken for another kind of statement.
CLAIM_DOMAIN = b"leaderd/claim/v2"
ALIVE_DOMAIN = b"leaderd/alive/v2"


def claim_signed_bytes(cluster_tag_value, term, name, priority, incarnation, counter=0):
    """The bytes a claim's Ed25519 signature covers (domain-separated)."""
    _check_uint(term, 32, "term")
    _check_uint(priority, 8, "priority")
    _check_uint(incarnation, 32, "incarnation")
    _check_uint(counter, 32, "counter")
    return (CLAIM_DOMAIN + struct.pack(">II", cluster_tag_value, term)
            + _str8(name, MAX_NAME_BYTES, "name") + bytes([priority]) + struct.pack(">II", incarnation, counter))


def alive_signed_bytes(cluster_tag_value, name, incarnation, address, priority, eligible, tags):
    """The bytes a member's signature over its own Alive statement covers.

    The statement is the member body without its signature (PROTOCOL.md
    3.4): name, incarnation, address, priority, eligible, tags.
    """
    return (ALIVE_DOMAIN + struct.pack(">I", cluster_tag_value)
            + _member_statement(name, incarnation, address, priority, eligible, tags))


def left_signed_bytes(cluster_tag_value, name, incarnation):
    """The bytes a member's signature over its own Left covers."""
    _check_uint(incarnation, 32, "incarnation")
    return (b"leaderd/left/v2" + struct.pack(">I", cluster_tag_value) + _str8(name, MAX_NAME_BYTES, "name")
            + struct.pack(">I", incarnation))


def resign_signed_bytes(cluster_tag_value, term, name, successor=None):
    """The bytes a resignation's Ed25519 signature covers (domain-separated); with a successor,
    a hand-over's (its own domain)."""
    _check_uint(term, 32, "term")
    if successor is None:
        return (b"leaderd/resign/v1" + struct.pack(">II", cluster_tag_value, term)
                + _str8(name, MAX_NAME_BYTES, "name"))
    return (b"leaderd/handover/v1" + struct.pack(">II", cluster_tag_value, term)
            + _str8(name, MAX_NAME_BYTES, "name") + _str8(successor, MAX_NAME_BYTES, "name"))


def _signature(sig):
    sig = sig or b""
    if len(sig) not in (0, SIGNATURE_BYTES):
        raise ValueError("signature must be 0 or 64 bytes")
    return bytes([len(sig)]) + sig


# --- Encoding -------------------------------------------------------------


def _check_uint(value, bits, what):
    # struct.pack silently truncates on MicroPython: range-check every field.
    if not isinstance(value, int) or value < 0 or value >= (1 << bits):
        raise ValueError("%s out of range for u%d: %r" % (what, bits, value))


def name_error(name):
    """Why `name` cannot be a member name (a str), or None if it can.

    The one rule for names, used by the codec and by both shells' configs:
    1..64 bytes of UTF-8, no control characters (C0, DEL, C1: no terminal
    escapes in logs and tables), and not "*" (a ping's any-target).
    """
    if not isinstance(name, str):
        return "must be a string"
    try:
        data = name.encode("utf-8")
    except UnicodeError:
        return "must be valid UTF-8"
    if not data or len(data) > MAX_NAME_BYTES:
        return "must be 1..%d bytes of UTF-8" % MAX_NAME_BYTES
    if _bad_name_bytes(data):
        return "must not be \"*\" or hold control characters"
    return None


def _bad_name_bytes(raw):
    # raw: the non-empty UTF-8 bytes of a name. Refused: C0 controls, DEL,
    # C1 controls (U+0080..U+009F are C2 80..C2 9F; CSI among them), "*",
    # and the byte patterns of invalid UTF-8 that MicroPython decodes
    # anyway (overlong forms of those characters, surrogates): CPython's
    # decoder refuses them, so both runtimes agree.
    if raw == b"*":
        return True
    prev = 0
    for b in raw:
        if b < 0x20 or b == 0x7F or b == 0xC0 or b == 0xC1 or b >= 0xF5:
            return True
        if (prev == 0xC2 and b <= 0x9F) or (prev == 0xE0 and b < 0xA0) or (prev == 0xF0 and b < 0x90) \
                or (prev == 0xED and b >= 0xA0):
            return True
        prev = b
    return False


def _str8(text, limit, what):
    data = text.encode("utf-8")
    if what == "name" and (not data or len(data) > limit or _bad_name_bytes(data)):
        raise ValueError("name must be 1..%d bytes of UTF-8, not \"*\", without control characters: %r"
                         % (limit, text))
    if len(data) > limit:
        raise ValueError("%s must be 0..%d bytes of UTF-8: %r" % (what, limit, text))
    return bytes([len(data)]) + data


def _address(address):
    host, port = address
    _check_uint(port, 16, "port")
    return _str8(host, MAX_HOST_BYTES, "host") + struct.pack(">H", port)


def encode_tags(tags):
    """Tags as bytes: u8 count, then count x (str8 key, str8 value), keys sorted."""
    if not tags:
        return b"\x00"
    keys = sorted(tags)
    if len(keys) > MAX_TAGS:
        raise ValueError("at most %d tags" % MAX_TAGS)
    out = [bytes([len(keys)])]
    for key in keys:
        out.append(_str8(key, MAX_TAG_TEXT_BYTES, "tag key"))
        out.append(_str8(tags[key], MAX_TAG_TEXT_BYTES, "tag value"))
    return b"".join(out)


def _member_statement(name, incarnation, address, priority, eligible, tags):
    _check_uint(incarnation, 32, "incarnation")
    _check_uint(priority, 8, "priority")
    return b"".join((
        _str8(name, MAX_NAME_BYTES, "name"),
        struct.pack(">I", incarnation),
        _address(address),
        bytes([priority, 1 if eligible else 0]),
        encode_tags(tags),
    ))


def _member_body(name, incarnation, address, priority, eligible, tags, signature):
    return _member_statement(name, incarnation, address, priority, eligible, tags) + _signature(signature)


def _frame(type_code, body):
    if len(body) > 0xFFFF:
        raise ValueError("message body too long")
    return struct.pack(">BH", type_code, len(body)) + body


def encode_message(msg):
    """One message as bytes: u8 type, u16 length, body."""
    t = msg.type_code
    if t == T_PING:
        _check_uint(msg.seq, 32, "seq")
        target = "target" if msg.target == ANY_TARGET else "name"
        body = struct.pack(">I", msg.seq) + _str8(msg.target, MAX_NAME_BYTES, target)
    elif t == T_ACK or t == T_NACK:
        _check_uint(msg.seq, 32, "seq")
        body = struct.pack(">I", msg.seq)
    elif t == T_PING_REQ:
        _check_uint(msg.seq, 32, "seq")
        body = struct.pack(">I", msg.seq) + _str8(msg.target, MAX_NAME_BYTES, "name") + _address(msg.address)
    elif t == T_ALIVE:
        body = _member_body(msg.name, msg.incarnation, msg.address, msg.priority, msg.eligible, msg.tags,
                            msg.signature)
    elif t == T_SUSPECT or t == T_DEAD:
        _check_uint(msg.incarnation, 32, "incarnation")
        body = (_str8(msg.name, MAX_NAME_BYTES, "name") + struct.pack(">I", msg.incarnation)
                + _str8(msg.by, MAX_NAME_BYTES, "name"))
    elif t == T_LEFT:
        _check_uint(msg.incarnation, 32, "incarnation")
        body = (_str8(msg.name, MAX_NAME_BYTES, "name") + struct.pack(">I", msg.incarnation)
                + _signature(msg.signature))
    elif t == T_CLAIM:
        _check_uint(msg.term, 32, "term")
        _check_uint(msg.priority, 8, "priority")
        _check_uint(msg.incarnation, 32, "incarnation")
        _check_uint(msg.counter, 32, "counter")
        body = (struct.pack(">I", msg.term) + _str8(msg.name, MAX_NAME_BYTES, "name")
                + bytes([msg.priority]) + struct.pack(">II", msg.incarnation, msg.counter)
                + _signature(msg.signature))
    elif t == T_RESIGN or t == T_HANDOVER:
        _check_uint(msg.term, 32, "term")
        body = struct.pack(">I", msg.term) + _str8(msg.name, MAX_NAME_BYTES, "name")
        if t == T_HANDOVER:
            body += _str8(msg.successor, MAX_NAME_BYTES, "name")
        body += _signature(msg.signature)
    elif t == T_SYNC:
        body = _sync_head(msg.session, msg.reply_wanted, msg.join, msg.page, msg.pages)
        body += b"".join([encode_record(r) for r in msg.records])
    else:
        raise ValueError("cannot encode %r" % (msg,))
    return _frame(t, body)


def _sync_head(session, reply_wanted, join, page, pages):
    _check_uint(session, 32, "session")
    _check_uint(page, 8, "page")
    _check_uint(pages, 8, "pages")
    if pages < 1 or page >= pages:
        raise ValueError("sync page %r of %r" % (page, pages))
    flags = (SYNC_REPLY_WANTED if reply_wanted else 0) | (SYNC_JOIN if join else 0)
    return struct.pack(">IBBB", session, flags, page, pages)


SYNC_HEAD_BYTES = 7


def encode_record(record):
    """One member record of a state sync: u8 state, then the Alive body (signature included)."""
    _check_uint(record.state, 2, "state")
    return bytes([record.state]) + _member_body(
        record.name, record.incarnation, record.address, record.priority, record.eligible, record.tags,
        record.signature)


def encode_sync_pages(session, reply_wanted, join, records, budget):
    """Encoded Sync messages (each <= budget bytes) that together carry records."""
    return encode_sync_pages_raw(session, reply_wanted, join, [encode_record(r) for r in records], budget)


def encode_sync_pages_raw(session, reply_wanted, join, encoded_records, budget):
    """Like encode_sync_pages, from records already encoded with encode_record."""
    return [b"".join(parts) for parts in sync_page_parts(session, reply_wanted, join, encoded_records, budget)]


def sync_page_parts(session, reply_wanted, join, encoded_records, budget):
    """encode_sync_pages_raw's pages unjoined: per page, a list of bytes (the message head, then the
    page's records) whose concatenation is the page. Codec.seal joins them, and whatever follows
    them in the datagram, at once: one datagram-sized allocation, where a joined page would
    be a second one (a board's heap is fragmented: big blocks are the ones that fail)."""
    room = budget - MESSAGE_HEADER_BYTES - SYNC_HEAD_BYTES
    pages = []
    current = []
    size = 0
    for data in encoded_records:
        if len(data) > room:
            raise ValueError("member record larger than a page")
        if size + len(data) > room:
            pages.append(current)
            current = []
            size = 0
        current.append(data)
        size += len(data)
    pages.append(current)
    if len(pages) > 255:
        raise ValueError("state too large for one sync (%d pages)" % len(pages))
    for i in range(len(pages)):
        head = _sync_head(session, reply_wanted, join, i, len(pages))
        size = len(head)
        for data in pages[i]:
            size += len(data)
        pages[i].insert(0, struct.pack(">BH", T_SYNC, size) + head)
    return pages


class Codec:
    """Seals and opens datagrams for one node: its cluster tag, name and keyring."""

    def __init__(self, cluster, sender, keyring=None):
        self.cluster_tag = cluster_tag(cluster)
        self.sender = sender
        self.keyring = keyring
        self._sender_field = _str8(sender, MAX_NAME_BYTES, "name")
        self._set_header()

    def _set_header(self):
        if self.keyring is None:
            self._header = struct.pack(">BBI", VERSION, 0, self.cluster_tag) + self._sender_field
        else:
            self._header = (struct.pack(">BBII", VERSION, FLAG_AUTH, self.cluster_tag,
                                        self.keyring.primary.key_id) + self._sender_field)

    def set_keyring(self, keyring):
        """Swaps the keyring (None: unauthenticated)."""
        self.keyring = keyring
        self._set_header()

    def overhead(self):
        """Bytes a datagram spends on header and tag."""
        return len(self._header) + (TAG_BYTES if self.keyring is not None else 0)

    def seal(self, messages):
        """A datagram carrying the given encoded messages."""
        # One datagram-sized allocation, not three (a board's heap is
        # fragmented: big blocks are the ones that fail).
        parts = [self._header]
        parts.extend(messages)
        if self.keyring is not None:
            parts.append(self.keyring.primary.tag_parts(parts))
        return b"".join(parts)

    def open(self, data):
        """(sender, [messages]) from a datagram; raises WireError only."""
        try:
            return self._open(data)
        except WireError:
            raise
        except Exception as exc:  # struct, index, unicode errors from bad bytes
            raise WireError("malformed", str(exc))

    def _open(self, data):
        n = len(data)
        if n < 7:
            raise WireError("truncated")
        version = data[0]
        if version != VERSION:
            raise WireError("version", str(version))
        flags = data[1]
        if flags & ~FLAG_AUTH:
            raise WireError("malformed")  # unknown flags
        tag = struct.unpack_from(">I", data, 2)[0]
        if tag != self.cluster_tag:
            raise WireError("cluster")
        pos = 6
        end = n
        if flags & FLAG_AUTH:
            if self.keyring is None:
                raise WireError("auth")  # authenticated datagram but no keyring
            if n < 11 + TAG_BYTES:
                raise WireError("truncated")
            key = self.keyring.find(struct.unpack_from(">I", data, 6)[0])
            if key is None:
                raise WireError("auth")  # unknown key id
            end = n - TAG_BYTES
            # A view, not a copy of the datagram.
            if not equal_tags(key.tag(memoryview(data)[:end]), data[end:]):
                raise WireError("auth")  # bad tag
            pos = 10
        elif self.keyring is not None:
            raise WireError("auth")  # unauthenticated datagram
        sender, pos = _read_name(data, pos, end)
        messages = []
        while pos < end:
            if pos + 3 > end:
                raise WireError("truncated")
            t = data[pos]
            length = (data[pos + 1] << 8) | data[pos + 2]
            pos += 3
            stop = pos + length
            if stop > end:
                raise WireError("truncated")
            msg = _decode_body(t, data, pos, stop)
            if msg is not None:
                messages.append(msg)
            pos = stop
        if not messages:
            raise WireError("malformed")  # no messages
        return sender, messages


# --- Decoding -------------------------------------------------------------


def _read_str(data, pos, end, limit):
    if pos >= end:
        raise WireError("truncated")
    length = data[pos]
    pos += 1
    if length > limit or pos + length > end:
        raise WireError("malformed")  # string length
    return bytes(data[pos:pos + length]).decode("utf-8"), pos + length


def _read_name(data, pos, end, target=False):
    # A member name: 1..64 bytes, no control characters, not "*" (name_error).
    if pos >= end:
        raise WireError("truncated")
    n = data[pos]
    pos += 1
    if n > MAX_NAME_BYTES or pos + n > end:
        raise WireError("malformed")  # string length
    raw = bytes(data[pos:pos + n])
    name = raw.decode("utf-8")
    if not n:
        raise WireError("malformed")  # empty name
    if _bad_name_bytes(raw) and not (target and raw == b"*"):
        raise WireError("malformed")  # control characters, or "*"
    return name, pos + n


def _read_u32(data, pos, end):
    if pos + 4 > end:
        raise WireError("truncated")
    return struct.unpack_from(">I", data, pos)[0], pos + 4


def _read_address(data, pos, end):
    host, pos = _read_str(data, pos, end, MAX_HOST_BYTES)
    if pos + 2 > end:
        raise WireError("truncated")
    return (host, (data[pos] << 8) | data[pos + 1]), pos + 2


def _read_member(data, pos, end):
    # The decoder's hot path (a sync carries a record per member): the
    # string reads of _read_name / _read_address are written out here, with
    # the same checks and the same error reasons.
    if pos >= end:
        raise WireError("truncated")
    n = data[pos]
    pos += 1
    if n > MAX_NAME_BYTES or pos + n > end:
        raise WireError("malformed")  # string length
    raw = bytes(data[pos:pos + n])
    name = raw.decode("utf-8")
    pos += n
    if not name:
        raise WireError("malformed")  # empty name
    if _bad_name_bytes(raw):
        raise WireError("malformed")  # control characters, or "*"
    if pos + 4 > end:
        raise WireError("truncated")
    incarnation = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    if pos >= end:
        raise WireError("truncated")
    n = data[pos]
    pos += 1
    if n > MAX_HOST_BYTES or pos + n > end:
        raise WireError("malformed")  # string length
    host = bytes(data[pos:pos + n]).decode("utf-8")
    pos += n
    if pos + 2 > end:
        raise WireError("truncated")
    address = (host, (data[pos] << 8) | data[pos + 1])
    pos += 2
    if pos + 3 > end:
        raise WireError("truncated")
    priority = data[pos]
    eligible_byte = data[pos + 1]
    if eligible_byte > 1:
        raise WireError("malformed")  # eligible flag
    count = data[pos + 2]
    pos += 3
    if count > MAX_TAGS:
        raise WireError("malformed")  # too many tags
    tags = None
    if count:
        tags = {}
        for _ in range(count):
            key, pos = _read_str(data, pos, end, MAX_TAG_TEXT_BYTES)
            value, pos = _read_str(data, pos, end, MAX_TAG_TEXT_BYTES)
            if key in tags:
                raise WireError("malformed")  # repeated tag key
            tags[key] = value
    signature, pos = _read_signature(data, pos, end)
    return (name, incarnation, address, priority, eligible_byte == 1, tags, signature), pos


class Records:
    """The member records of a decoded state-sync page, decoded each time they are iterated.

    Not a list: a node merges them one at a time, so a board never holds a
    whole page of decoded records (31 of them take ~12 KB of its heap). The
    decoder has checked them all (_skip_member) before a Records is made.
    Iterating gives Record messages; entries() gives ((name, incarnation,
    address, priority, eligible, tags, signature), state) pairs, the node's
    fast path.
    Equal to any iterable of the same Records (a list, say).
    """

    def __init__(self, data, start, stop):
        self._data = data
        self._start = start
        self._stop = stop

    def entries(self, known=None):
        """The records as ((name, incarnation, address, priority, eligible, tags, signature), state).

        known(name, incarnation, state), when given, is asked first: a record
        it says the caller knows already is skipped, the rest of it
        undecoded (in a steady cluster nearly every record of a sync).
        """
        data = self._data
        pos = self._start
        stop = self._stop
        while pos < stop:
            state = data[pos]
            if known is not None:
                # Checked already (_skip_member): lengths can be trusted.
                n = data[pos + 1]
                end = pos + 2 + n
                if known(bytes(data[pos + 2:end]).decode("utf-8"), struct.unpack_from(">I", data, end)[0], state):
                    end += 4
                    end += 3 + data[end]      # host and port
                    count = data[end + 2]     # priority, eligible, tag count
                    end += 3
                    for _ in range(2 * count):
                        end += 1 + data[end]  # tag keys and values
                    pos = end + 1 + data[end]  # signature
                    continue
            member, pos = _read_member(data, pos + 1, stop)
            yield member, state

    def __iter__(self):
        for m, state in self.entries():
            yield Record(m[0], m[1], m[2], m[3], m[4], m[5], state, m[6])

    def __eq__(self, other):
        return list(self) == list(other)


def _skip_member(data, pos, end):
    # _read_member's checks, in its order and with its reasons, keeping
    # nothing (tests/test_wire_properties.py holds the two to the same
    # verdicts): how a sync page is checked whole before it is merged.
    if pos >= end:
        raise WireError("truncated")
    n = data[pos]
    pos += 1
    if n > MAX_NAME_BYTES or pos + n > end:
        raise WireError("malformed")  # string length
    raw = bytes(data[pos:pos + n])
    raw.decode("utf-8")
    if not n:
        raise WireError("malformed")  # empty name
    if _bad_name_bytes(raw):
        raise WireError("malformed")  # control characters, or "*"
    pos += n + 4
    if pos > end:
        raise WireError("truncated")  # incarnation
    if pos >= end:
        raise WireError("truncated")
    n = data[pos]
    pos += 1
    if n > MAX_HOST_BYTES or pos + n > end:
        raise WireError("malformed")  # string length
    bytes(data[pos:pos + n]).decode("utf-8")
    pos += n + 2
    if pos > end:
        raise WireError("truncated")  # port
    if pos + 3 > end:
        raise WireError("truncated")
    if data[pos + 1] > 1:
        raise WireError("malformed")  # eligible flag
    count = data[pos + 2]
    pos += 3
    if count > MAX_TAGS:
        raise WireError("malformed")  # too many tags
    keys = []
    for _ in range(count):
        key, pos = _read_str(data, pos, end, MAX_TAG_TEXT_BYTES)
        pos = _read_str(data, pos, end, MAX_TAG_TEXT_BYTES)[1]
        if key in keys:
            raise WireError("malformed")  # repeated tag key
        keys.append(key)
    return _read_signature(data, pos, end)[1]


def _read_signature(data, pos, stop):
    if pos >= stop:
        raise WireError("truncated")
    length = data[pos]
    if length not in (0, SIGNATURE_BYTES) or pos + 1 + length > stop:
        raise WireError("malformed")  # signature length
    return bytes(data[pos + 1:pos + 1 + length]), pos + 1 + length


def _expect_end(pos, stop):
    if pos != stop:
        raise WireError("malformed")  # trailing bytes in message


def _decode_body(t, data, pos, stop):
    if t == T_PING:
        seq, pos = _read_u32(data, pos, stop)
        target, pos = _read_name(data, pos, stop, True)
        _expect_end(pos, stop)
        return Ping(seq=seq, target=target)
    if t == T_ACK or t == T_NACK:
        seq, pos = _read_u32(data, pos, stop)
        _expect_end(pos, stop)
        return Ack(seq=seq) if t == T_ACK else Nack(seq=seq)
    if t == T_PING_REQ:
        seq, pos = _read_u32(data, pos, stop)
        target, pos = _read_name(data, pos, stop)
        address, pos = _read_address(data, pos, stop)
        _expect_end(pos, stop)
        return PingReq(seq=seq, target=target, address=address)
    if t == T_ALIVE:
        m, pos = _read_member(data, pos, stop)
        _expect_end(pos, stop)
        return Alive(name=m[0], incarnation=m[1], address=m[2], priority=m[3], eligible=m[4], tags=m[5],
                     signature=m[6])
    if t == T_SUSPECT or t == T_DEAD:
        name, pos = _read_name(data, pos, stop)
        incarnation, pos = _read_u32(data, pos, stop)
        by, pos = _read_name(data, pos, stop)
        _expect_end(pos, stop)
        if t == T_SUSPECT:
            return Suspect(name=name, incarnation=incarnation, by=by)
        return Dead(name=name, incarnation=incarnation, by=by)
    if t == T_LEFT:
        name, pos = _read_name(data, pos, stop)
        incarnation, pos = _read_u32(data, pos, stop)
        signature, pos = _read_signature(data, pos, stop)
        _expect_end(pos, stop)
        return Left(name=name, incarnation=incarnation, signature=signature)
    if t == T_SYNC:
        if pos + SYNC_HEAD_BYTES > stop:
            raise WireError("truncated")
        session, flags, page, pages = struct.unpack_from(">IBBB", data, pos)
        if flags & ~(SYNC_REPLY_WANTED | SYNC_JOIN) or pages < 1 or page >= pages:
            raise WireError("malformed")  # sync header
        pos += SYNC_HEAD_BYTES
        # Every record checked now (a bad one invalidates the datagram), but
        # none kept: the node decodes them again one at a time as it merges.
        check = pos
        while check < stop:
            if data[check] > STATE_LEFT:
                raise WireError("malformed")  # member state
            check = _skip_member(data, check + 1, stop)
        return Sync(session=session, reply_wanted=bool(flags & SYNC_REPLY_WANTED),
                    join=bool(flags & SYNC_JOIN), page=page, pages=pages, records=Records(data, pos, stop))
    if t == T_CLAIM or t == T_RESIGN or t == T_HANDOVER:
        term, pos = _read_u32(data, pos, stop)
        name, pos = _read_name(data, pos, stop)
        if t == T_HANDOVER:
            successor, pos = _read_name(data, pos, stop)
        elif t == T_CLAIM:
            if pos + 9 > stop:
                raise WireError("truncated")
            priority = data[pos]
            incarnation, counter = struct.unpack_from(">II", data, pos + 1)
            pos += 9
        signature, pos = _read_signature(data, pos, stop)
        _expect_end(pos, stop)
        if t == T_CLAIM:
            return Claim(term=term, name=name, priority=priority, incarnation=incarnation, counter=counter,
                         signature=signature)
        if t == T_HANDOVER:
            return Handover(term=term, name=name, successor=successor, signature=signature)
        return Resign(term=term, name=name, signature=signature)
    # An unknown type from a later version: skipped by its length.
    return None
