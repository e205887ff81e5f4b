"""Writes tests/vectors/wire_v2.json, the reference vectors of wire format v2.

Run from the repository root with CPython:

    .venv/bin/python tests/vectors/make_wire_vectors.py

The datagrams are built by a second, independent encoder below, written from
docs/PROTOCOL.md with struct, hashlib and the standard hmac module (not from
agent.core); before writing, every vector is checked against agent.core.wire
(positive vectors decode to their meaning and re-encode to their bytes;
negative vectors fail with their reason; the signed-bytes vectors equal what
agent.core.wire's *_signed_bytes functions return), so the two
implementations agree.

The JSON file is the reference, and it is committed: tests/core/test_wire.py
checks the codec against the JSON, never against this script. Changing a
vector is changing the protocol: append new vectors, do not edit old ones.
"""

import hashlib
import hmac
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
OUTPUT = os.path.join(HERE, "wire_v2.json")
VERSION = 2

# Test keys only: never use these anywhere else.
KEY_A = bytes(range(0x00, 0x20))          # 32 bytes
KEY_B = bytes(range(0x20, 0x40))          # 32 bytes
KEY_SHORT = b"\xa5" * 16                  # the shortest key allowed
KEY_LONG = bytes(range(0x40, 0x90))       # 80 bytes: longer than the HMAC block, so hashed first

STATES = ("alive", "suspect", "dead", "left")
TYPES = {"ping": 1, "ack": 2, "nack": 3, "ping_req": 4, "alive": 5,
         "suspect": 6, "dead": 7, "left": 8, "sync": 9, "claim": 10, "resign": 11,
         "handover": 12}


# --- The independent encoder (from docs/PROTOCOL.md) -----------------------


def u8(value):
    return struct.pack(">B", value)


def u16(value):
    return struct.pack(">H", value)


def u32(value):
    return struct.pack(">I", value)


def str8(text):
    data = text.encode("utf-8")
    return u8(len(data)) + data


def cluster_tag(cluster):
    return hashlib.sha256(b"leaderd-cluster:" + cluster.encode("utf-8")).digest()[:4]


def key_id(key):
    return hashlib.sha256(b"leaderd-key-id" + key).digest()[:4]


def address(addr):
    return str8(addr[0]) + u16(addr[1])


def tags(mapping):
    if not mapping:
        return u8(0)
    keys = sorted(mapping, key=lambda k: k.encode("utf-8"))
    return u8(len(keys)) + b"".join(str8(k) + str8(mapping[k]) for k in keys)


def statement(m):
    """A member's statement: the member body without its signature (what the signature covers)."""
    return (str8(m["name"]) + u32(m["incarnation"]) + address(m["address"])
            + u8(m["priority"]) + u8(1 if m["eligible"] else 0) + tags(m["tags"]))


def member(m):
    return statement(m) + signature(m["signature"])


def body(m):
    t = m["type"]
    if t == "ping":
        return u32(m["seq"]) + str8(m["target"])
    if t in ("ack", "nack"):
        return u32(m["seq"])
    if t == "ping_req":
        return u32(m["seq"]) + str8(m["target"]) + address(m["address"])
    if t == "alive":
        return member(m)
    if t in ("suspect", "dead"):
        return str8(m["name"]) + u32(m["incarnation"]) + str8(m["by"])
    if t == "left":
        return str8(m["name"]) + u32(m["incarnation"]) + signature(m["signature"])
    if t == "sync":
        flags = (1 if m["reply_wanted"] else 0) | (2 if m["join"] else 0)
        head = u32(m["session"]) + u8(flags) + u8(m["page"]) + u8(m["pages"])
        return head + b"".join(u8(STATES.index(r["state"])) + member(r) for r in m["records"])
    if t == "claim":
        return (u32(m["term"]) + str8(m["name"]) + u8(m["priority"]) + u32(m["incarnation"])
                + u32(m["counter"]) + signature(m["signature"]))
    if t == "resign":
        return u32(m["term"]) + str8(m["name"]) + signature(m["signature"])
    if t == "handover":
        return u32(m["term"]) + str8(m["name"]) + str8(m["successor"]) + signature(m["signature"])
    raise ValueError(t)


def signature(hex_text):
    data = bytes.fromhex(hex_text)
    return u8(len(data)) + data


def frame(type_code, data):
    return u8(type_code) + u16(len(data)) + data


def message(m):
    return frame(TYPES[m["type"]], body(m))


def header(cluster, sender, key=None, version=VERSION):
    if key is None:
        return u8(version) + u8(0) + cluster_tag(cluster) + str8(sender)
    return u8(version) + u8(1) + cluster_tag(cluster) + key_id(key) + str8(sender)


def signed_bytes(cluster, m):
    """What the Ed25519 signature of statement m covers: a domain, the cluster tag, the fields."""
    t = m["type"]
    if t == "alive":
        return b"leaderd/alive/v2" + cluster_tag(cluster) + statement(m)
    if t == "left":
        return b"leaderd/left/v2" + cluster_tag(cluster) + str8(m["name"]) + u32(m["incarnation"])
    if t == "claim":
        return (b"leaderd/claim/v2" + cluster_tag(cluster) + u32(m["term"]) + str8(m["name"])
                + u8(m["priority"]) + u32(m["incarnation"]) + u32(m["counter"]))
    if t == "resign":
        return b"leaderd/resign/v1" + cluster_tag(cluster) + u32(m["term"]) + str8(m["name"])
    if t == "handover":
        return (b"leaderd/handover/v1" + cluster_tag(cluster) + u32(m["term"]) + str8(m["name"])
                + str8(m["successor"]))
    raise ValueError(t)


def datagram(cluster, sender, parts, key=None):
    """Header + parts (already framed bytes) + the HMAC tag when key is given."""
    data = header(cluster, sender, key) + b"".join(parts)
    if key is not None:
        data += hmac.new(key, data, hashlib.sha256).digest()[:16]
    return data


# --- Meanings --------------------------------------------------------------


def alive(name, incarnation, host, port, priority=100, eligible=True, tag_map=None, sig=""):
    return {"type": "alive", "name": name, "incarnation": incarnation, "address": [host, port],
            "priority": priority, "eligible": eligible, "tags": tag_map, "signature": sig}


def record(state, name, incarnation, host, port, priority=100, eligible=True, tag_map=None, sig=""):
    return {"name": name, "incarnation": incarnation, "address": [host, port], "priority": priority,
            "eligible": eligible, "tags": tag_map, "state": state, "signature": sig}


def left(name, incarnation, sig=""):
    return {"type": "left", "name": name, "incarnation": incarnation, "signature": sig}


def claim(term, name, priority, incarnation, counter, sig):
    return {"type": "claim", "term": term, "name": name, "priority": priority, "incarnation": incarnation,
            "counter": counter, "signature": sig}


PING = {"type": "ping", "seq": 1, "target": "b"}
ACK = {"type": "ack", "seq": 1}
SYNC_RECORDS = [
    record("alive", "a", 3, "10.0.0.1", 7946, 200, True, {"rack": "r1", "zone": "eu-1"}),
    record("suspect", "b", 7, "10.0.0.2", 7946, 100, True, None),
    record("dead", "c", 1, "10.0.0.3", 7946, 0, False, None),
    record("left", "d", 12, "fd00::4", 17946, 50, True, {"role": "sensor"}),
]
# The wire only carries signatures (0 or 64 bytes); these are not real ones.
SIGNATURE = bytes(range(0xC0, 0x100)).hex()
ALIVE_SIGNED = alive("b", 2, "10.0.0.2", 7946, sig=SIGNATURE)
LEFT_SIGNED = left("d", 12, SIGNATURE)
CLAIM_HEARTBEAT = claim(42, "b", 150, 3, 7, SIGNATURE)
HANDOVER = {"type": "handover", "term": 42, "name": "b", "successor": "c", "signature": SIGNATURE}
MAX_NAME = "\U0001f6f0" * 16                           # 16 x 4 bytes = 64 bytes
MAX_HOST = "h" * 60 + ".lan"                           # 64 bytes
MAX_TAGS = dict(("k%d" % i + "x" * 30, "v" * 32) for i in range(8))   # 8 x (32, 32)


def positive():
    """(name, note, cluster, keyring, sign_with, sender, parts, reencode)."""
    out = []

    def add(name, note, messages, cluster="default", keyring=None, sign_with=None, sender="a",
            extra_parts=None):
        parts = [message(m) for m in messages]
        reencode = True
        if extra_parts:
            # (index, raw framed bytes): inserted before messages[index].
            for index, raw in sorted(extra_parts, reverse=True):
                parts.insert(index, raw)
            reencode = False
        out.append({"name": name, "note": note, "cluster": cluster, "keyring": keyring,
                    "sign_with": sign_with, "sender": sender, "parts": parts,
                    "messages": messages, "reencode": reencode})

    # The vectors of v1, in v2 form (unsigned statements, claim counter 0).
    add("ping", "a probes b", [PING])
    add("ack", "the answer to ping seq 1", [ACK])
    add("nack", "a relay's negative answer (Lifeguard)", [{"type": "nack", "seq": 77}])
    add("ping_req", "probe c at 10.0.0.3:7946 for me, relay the ack as seq 5",
        [{"type": "ping_req", "seq": 5, "target": "c", "address": ["10.0.0.3", 7946]}])
    add("alive", "no tags: count 0, decoded as null; unsigned: signature length 0",
        [alive("b", 2, "10.0.0.2", 7946)])
    add("alive_tags", "tags are written in ascending key order",
        [alive("sensor-\u00e9", 9, "192.168.1.20", 7946, 7, False,
               {"zone": "eu-1", "role": "gateway", "fw": "1.4.2"})])
    add("suspect", "b suspects c at incarnation 4", [{"type": "suspect", "name": "c", "incarnation": 4, "by": "b"}])
    add("dead", "b declares c dead at incarnation 4", [{"type": "dead", "name": "c", "incarnation": 4, "by": "b"}])
    add("left", "d left gracefully at incarnation 12, unsigned", [left("d", 12)])
    add("sync_page", "one page of four records, one per state; reply_wanted and join set",
        [{"type": "sync", "session": 0x01020304, "reply_wanted": True, "join": True, "page": 0,
          "pages": 1, "records": SYNC_RECORDS}])
    add("sync_middle_page", "page 1 of 3 of a reply (no flags)",
        [{"type": "sync", "session": 0xDEADBEEF, "reply_wanted": False, "join": False, "page": 1,
          "pages": 3, "records": SYNC_RECORDS[1:3]}])
    add("sync_empty", "a node that knows no one yet: one page, no records",
        [{"type": "sync", "session": 9, "reply_wanted": True, "join": False, "page": 0, "pages": 1,
          "records": []}])
    add("piggyback", "a ping with gossip piggybacked: alive, suspect, left",
        [{"type": "ping", "seq": 4000000000, "target": "c"},
         alive("e", 1, "10.0.0.5", 7946, 100, True, {"zone": "eu-2"}),
         {"type": "suspect", "name": "f", "incarnation": 3, "by": "a"},
         left("g", 0)])
    add("limits", "every field at its maximum: 64-byte names and host, 8 tags of 32 + 32 bytes, a signature",
        [{"type": "ping_req", "seq": 0xFFFFFFFF, "target": MAX_NAME, "address": [MAX_HOST, 65535]},
         alive(MAX_NAME, 0xFFFFFFFF, MAX_HOST, 65535, 255, True, MAX_TAGS, SIGNATURE)],
        sender=MAX_NAME)
    add("unicode", "UTF-8 names: sender, target and cluster name",
        [{"type": "ping", "seq": 0, "target": "n\u00f6de-\u03b2"}],
        cluster="f\u00e4brik-\u6771", sender="\u00f1ode-\U0001f6f0")
    add("auth", "authenticated: key id of KEY_A after the cluster tag, 16-byte tag at the end",
        [PING, alive("a", 5, "10.0.0.1", 7946)], keyring=[KEY_A.hex()])
    add("auth_rotation", "keyring [KEY_B, KEY_A] (KEY_B primary), sealed by a peer still on KEY_A",
        [ACK], keyring=[KEY_B.hex(), KEY_A.hex()], sign_with=KEY_A.hex())
    add("auth_short_key", "a 16-byte key (the minimum)", [ACK], keyring=[KEY_SHORT.hex()])
    add("auth_long_key", "an 80-byte key (longer than the HMAC block: hashed first)", [ACK],
        keyring=[KEY_LONG.hex()])
    add("claim", "b claims term 42 (priority 150, incarnation 3), signed; counter 0: the first claim of the term",
        [claim(42, "b", 150, 3, 0, SIGNATURE)])
    add("claim_unsigned", "an unsigned claim: signature length 0",
        [claim(1, "a", 100, 0, 0, "")])
    add("resign", "b gives up term 42, signed",
        [{"type": "resign", "term": 42, "name": "b", "signature": SIGNATURE}])
    add("resign_unsigned", "an unsigned resignation",
        [{"type": "resign", "term": 7, "name": "a", "signature": ""}])
    add("unknown_type_skipped", "types 200 and 250 (unknown to v2) are skipped by their length",
        [PING, ACK], extra_parts=[(1, frame(200, b"\x01\x02\x03\x04\x05")), (2, frame(250, b""))])
    # New in v2.
    add("alive_signed", "b's Alive at incarnation 2 with its own signature (64 bytes; not a real one)",
        [ALIVE_SIGNED], sender="b")
    add("left_signed", "d left at incarnation 12, signed by d", [LEFT_SIGNED], sender="d")
    add("claim_heartbeat", "b re-asserts term 42: the same claim with counter 7, signed afresh",
        [CLAIM_HEARTBEAT], sender="b")
    add("sync_signed_record", "a sync record carrying its member's signed Alive statement",
        [{"type": "sync", "session": 77, "reply_wanted": False, "join": False, "page": 0, "pages": 1,
          "records": [record("alive", "a", 3, "10.0.0.1", 7946, 200, True, {"rack": "r1"}, SIGNATURE),
                      SYNC_RECORDS[1]]}])
    # New with `leaderd transfer`.
    add("handover", "b hands term 42 to successor c, signed",
        [HANDOVER], sender="b")
    add("handover_unsigned", "an unsigned hand-over of term 7 from a to b",
        [{"type": "handover", "term": 7, "name": "a", "successor": "b", "signature": ""}])
    add("ping_any_target", "a ping to \"*\" (leaderd ping): the one place a name may be \"*\"",
        [{"type": "ping", "seq": 3, "target": "*"}], sender="leaderd-ping")
    add("name_above_c1", "U+00A0, U+00A1, U+00BF (c2 a0..c2 bf), just above the C1 controls: a valid name",
        [{"type": "suspect", "name": "\u00a0\u00a1\u00bf", "incarnation": 1, "by": "b~"}])
    return out


def negative():
    """(name, note, cluster, keyring, bytes, error)."""
    out = []

    def add(name, note, data, error, cluster="default", keyring=None):
        out.append({"name": name, "note": note, "cluster": cluster, "keyring": keyring,
                    "data": data, "error": error})

    good = datagram("default", "a", [message(PING)])
    sealed_a = datagram("default", "a", [message(PING)], KEY_A)
    sealed_b = datagram("default", "a", [message(PING)], KEY_B)
    ping_head = header("default", "a")

    # The vectors of v1, in v2 form.
    add("empty", "zero bytes", b"", "truncated")
    add("truncated_header", "the first 6 bytes of the ping vector", good[:6], "truncated")
    add("version_0", "version byte 0", b"\x00" + good[1:], "version")
    add("version_3", "version byte 3 (a later version): dropped, never guessed at", b"\x03" + good[1:], "version")
    add("unknown_flags", "flags 0x02: no such flag in v2", good[:1] + b"\x02" + good[2:], "malformed")
    add("wrong_cluster", "sealed for cluster 'other', opened by 'default'",
        datagram("other", "a", [message(PING)]), "cluster")
    add("bad_tag", "the last byte of the HMAC tag flipped", sealed_a[:-1] + bytes([sealed_a[-1] ^ 1]),
        "auth", keyring=[KEY_A.hex()])
    add("bad_tag_body", "a body byte changed after sealing (seq 1 -> 2)",
        sealed_a.replace(b"\x00\x00\x00\x01\x01b", b"\x00\x00\x00\x02\x01b"), "auth", keyring=[KEY_A.hex()])
    add("unknown_key_id", "sealed with KEY_B, keyring holds only KEY_A", sealed_b, "auth", keyring=[KEY_A.hex()])
    add("removed_key", "after rotation KEY_A was removed: its datagrams are refused",
        sealed_a, "auth", keyring=[KEY_B.hex()])
    add("unauthenticated_with_keyring", "a plain datagram when the receiver has a keyring",
        good, "auth", keyring=[KEY_A.hex()])
    add("authenticated_without_keyring", "a sealed datagram when the receiver has no keyring",
        sealed_a, "auth")
    add("auth_truncated", "auth flag set but shorter than header + tag", sealed_a[:20], "truncated",
        keyring=[KEY_A.hex()])
    add("empty_sender", "sender length 0", header("default", "a")[:6] + b"\x00" + message(PING), "malformed")
    add("sender_too_long", "sender length 65 (limit 64)",
        ping_head[:6] + b"\x41" + b"s" * 65 + message(PING), "malformed")
    add("no_messages", "a header and nothing else", ping_head, "malformed")
    add("only_unknown_types", "every message skipped leaves none", ping_head + frame(200, b"x"), "malformed")
    add("message_header_cut", "two bytes of a message header", ping_head + b"\x01\x00", "truncated")
    add("message_past_end", "a ping whose length (9) runs past the datagram",
        ping_head + b"\x01\x00\x09" + u32(1) + str8("b")[:1], "truncated")
    add("string_past_end", "ping target length 9, but the message body ends after 1 byte of it",
        ping_head + frame(1, u32(1) + b"\x09b"), "malformed")
    add("name_too_long", "ping target of 65 bytes (limit 64)",
        ping_head + frame(1, u32(1) + b"\x41" + b"t" * 65), "malformed")
    add("empty_target", "ping target of 0 bytes (names are 1..64)",
        ping_head + frame(1, u32(1) + b"\x00"), "malformed")
    add("u32_past_end", "an ack body of 3 bytes", ping_head + frame(2, b"\x00\x00\x01"), "truncated")
    add("trailing_bytes", "an ack body of 5 bytes: one byte after the seq",
        ping_head + frame(2, u32(1) + b"\x00"), "malformed")
    add("invalid_utf8", "ping target byte 0xff: not UTF-8",
        ping_head + frame(1, u32(1) + b"\x01\xff"), "malformed")
    alive_head = str8("b") + u32(1) + address(("10.0.0.2", 7946)) + u8(100) + u8(1)
    add("too_many_tags", "tag count 9 (limit 8)",
        ping_head + frame(5, alive_head + u8(9) + b"".join(str8("k%d" % i) + str8("v") for i in range(9))
                          + u8(0)),
        "malformed")
    add("tag_too_long", "tag value of 33 bytes (limit 32)",
        ping_head + frame(5, alive_head + u8(1) + str8("k") + str8("v" * 33) + u8(0)), "malformed")
    add("repeated_tag_key", "the same tag key twice",
        ping_head + frame(5, alive_head + u8(2) + str8("k") + str8("1") + str8("k") + str8("2") + u8(0)),
        "malformed")
    add("eligible_2", "eligible byte 2 (only 0 and 1)",
        ping_head + frame(5, str8("b") + u32(1) + address(("10.0.0.2", 7946)) + u8(100) + u8(2) + u8(0) + u8(0)),
        "malformed")
    add("host_too_long", "ping_req host of 65 bytes (limit 64)",
        ping_head + frame(4, u32(1) + str8("c") + b"\x41" + b"h" * 65 + u16(7946)), "malformed")
    add("claim_signature_length", "claim signature length 10 (only 0 or 64)",
        ping_head + frame(10, u32(1) + str8("b") + u8(1) + u32(1) + u32(0) + u8(10) + b"s" * 10), "malformed")
    add("claim_cut", "claim body ends inside priority + incarnation + counter",
        ping_head + frame(10, u32(1) + str8("b") + u8(1) + b"\x00\x00"), "truncated")
    add("resign_empty_name", "resign name of 0 bytes",
        ping_head + frame(11, u32(1) + b"\x00" + u8(0)), "malformed")
    add("handover_empty_successor", "hand-over successor of 0 bytes",
        ping_head + frame(12, u32(1) + str8("b") + b"\x00" + u8(0)), "malformed")
    add("handover_any_successor", "hand-over successor \"*\" (the any-target is no member's name)",
        ping_head + frame(12, u32(1) + str8("b") + str8("*") + u8(0)), "malformed")
    add("handover_cut", "hand-over body ends inside the successor",
        ping_head + frame(12, u32(1) + str8("b") + b"\x05ab"), "malformed")
    sync_rec = u8(0) + member(SYNC_RECORDS[1])
    add("sync_page_out_of_range", "sync page 1 of 1",
        ping_head + frame(9, u32(1) + u8(0) + u8(1) + u8(1) + sync_rec), "malformed")
    add("sync_zero_pages", "sync page 0 of 0",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(0) + sync_rec), "malformed")
    add("sync_unknown_flags", "sync flags 0x04",
        ping_head + frame(9, u32(1) + u8(4) + u8(0) + u8(1) + sync_rec), "malformed")
    add("sync_bad_state", "record state 4 (states are 0..3)",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(1) + u8(4) + member(SYNC_RECORDS[1])), "malformed")
    add("sync_record_cut", "the last record of a sync page cut short (no tag count, no signature length)",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(1) + sync_rec[:-2]), "truncated")
    # New in v2.
    v1_ping = header("default", "a", version=1) + message(PING)
    assert v1_ping.hex() == "010025adfe820161010006000000010162", "the ping vector of wire_v1.json"
    add("v1_datagram", "the ping vector of wire v1 (version byte 1): v2 nodes drop it", v1_ping, "version")
    add("name_control_char", "sender \"a\\x1b[2J\" (ESC, a C0 control: a terminal escape in logs)",
        header("default", "a\x1b[2J") + message(PING), "malformed")
    add("name_star", "an Alive named \"*\" (\"*\" is a ping's any-target, never a member)",
        ping_head + message(alive("*", 1, "10.0.0.9", 7946)), "malformed")
    add("c1_control", "a claim by \"b\\u009b2J\" (U+009B, CSI, is c2 9b in UTF-8: a C1 control)",
        ping_head + message(claim(1, "b\u009b2J", 100, 0, 0, "")), "malformed")
    add("name_del", "a suspect by \"b\\x7f\" (DEL)",
        ping_head + message({"type": "suspect", "name": "c", "incarnation": 4, "by": "b\x7f"}), "malformed")
    add("ping_req_star", "a ping_req whose target is \"*\": only a Ping may name the any-target",
        ping_head + message({"type": "ping_req", "seq": 5, "target": "*", "address": ["10.0.0.3", 7946]}),
        "malformed")
    add("record_name_control", "a sync record whose name holds NUL",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(1) + u8(0) + member(record("alive", "x\x00", 1, "h", 1))),
        "malformed")
    add("signature_length_bad", "an Alive whose signature length is 63 (only 0 or 64)",
        ping_head + frame(5, statement(ALIVE_SIGNED) + u8(63) + bytes.fromhex(SIGNATURE)[:63]), "malformed")
    add("alive_v1_body", "a v1 Alive body (no signature length) in a v2 datagram",
        ping_head + frame(5, statement(alive("b", 2, "10.0.0.2", 7946))), "truncated")
    add("claim_v1_body", "a v1 Claim body (no counter) in a v2 datagram: the counter runs past the end",
        ping_head + frame(10, u32(42) + str8("b") + u8(150) + u32(3) + u8(0)), "truncated")
    add("left_signature_cut", "a signed Left whose body ends 1 byte short of its 64-byte signature",
        ping_head + frame(8, body(LEFT_SIGNED)[:-1]), "malformed")
    return out


def signed():
    """The *_signed_bytes vectors: what each kind of signature covers, for a statement of a vector."""
    def one(name, note, statement_meaning):
        fields = dict((k, v) for k, v in statement_meaning.items() if k != "signature")
        return {"name": name, "note": note, "cluster": "default", "signed": fields,
                "hex": signed_bytes("default", fields).hex()}

    return [
        one("alive_signed_bytes", "what the signature of vector alive_signed covers", ALIVE_SIGNED),
        one("alive_tags_signed_bytes", "a statement with tags (in key order) and eligible 0",
            alive("sensor-\u00e9", 9, "192.168.1.20", 7946, 7, False,
                  {"zone": "eu-1", "role": "gateway", "fw": "1.4.2"})),
        one("left_signed_bytes", "what the signature of vector left_signed covers", LEFT_SIGNED),
        one("claim_signed_bytes", "what the signature of vector claim_heartbeat covers", CLAIM_HEARTBEAT),
        one("claim_first_signed_bytes", "what the signature of vector claim covers (counter 0)",
            claim(42, "b", 150, 3, 0, SIGNATURE)),
        one("resign_signed_bytes", "what the signature of vector resign covers (domain unchanged from v1)",
            {"type": "resign", "term": 42, "name": "b"}),
        one("handover_signed_bytes", "what the signature of vector handover covers", HANDOVER),
    ]


# --- Cross-check with agent.core.wire, then write ---------------------------


def _codec_modules():
    sys.path.insert(0, REPO_ROOT)
    from agent.core import auth, wire
    return auth, wire


def _to_meaning(wire, msg):
    """A decoded Message as its JSON meaning (the same shape the vectors use)."""
    def member_fields(m):
        return {"name": m.name, "incarnation": m.incarnation, "address": list(m.address),
                "priority": m.priority, "eligible": m.eligible, "tags": m.tags,
                "signature": m.signature.hex()}
    if msg.type_code == wire.T_SYNC:
        records = []
        for r in msg.records:
            fields = member_fields(r)
            fields["state"] = STATES[r.state]
            records.append(fields)
        return {"type": "sync", "session": msg.session, "reply_wanted": msg.reply_wanted,
                "join": msg.join, "page": msg.page, "pages": msg.pages, "records": records}
    name = [k for k, v in TYPES.items() if v == msg.type_code][0]
    out = {"type": name}
    if msg.type_code == wire.T_ALIVE:
        out.update(member_fields(msg))
        return out
    for field in msg.fields:
        value = getattr(msg, field)
        if field == "address":
            value = list(value)
        elif field == "signature":
            value = value.hex()
        out[field] = value
    return out


def _from_meaning(wire, m):
    t = m["type"]
    if t == "sync":
        records = [wire.Record(name=r["name"], incarnation=r["incarnation"], address=tuple(r["address"]),
                               priority=r["priority"], eligible=r["eligible"], tags=r["tags"],
                               state=STATES.index(r["state"]), signature=bytes.fromhex(r["signature"]))
                   for r in m["records"]]
        return wire.Sync(session=m["session"], reply_wanted=m["reply_wanted"], join=m["join"],
                         page=m["page"], pages=m["pages"], records=records)
    classes = {"ping": wire.Ping, "ack": wire.Ack, "nack": wire.Nack, "ping_req": wire.PingReq,
               "alive": wire.Alive, "suspect": wire.Suspect, "dead": wire.Dead, "left": wire.Left,
               "claim": wire.Claim, "resign": wire.Resign, "handover": wire.Handover}
    values = dict((k, v) for k, v in m.items() if k != "type")
    if "signature" in values:
        values["signature"] = bytes.fromhex(values["signature"])
    if "address" in values:
        values["address"] = tuple(values["address"])
    return classes[t](**values)


def _keyring(auth, keyring):
    return None if keyring is None else auth.Keyring([bytes.fromhex(k) for k in keyring])


def _signed_by_codec(wire, cluster, m):
    tag = wire.cluster_tag(cluster)
    t = m["type"]
    if t == "alive":
        return wire.alive_signed_bytes(tag, m["name"], m["incarnation"], tuple(m["address"]), m["priority"],
                                       m["eligible"], m["tags"])
    if t == "left":
        return wire.left_signed_bytes(tag, m["name"], m["incarnation"])
    if t == "claim":
        return wire.claim_signed_bytes(tag, m["term"], m["name"], m["priority"], m["incarnation"], m["counter"])
    return wire.resign_signed_bytes(tag, m["term"], m["name"], m.get("successor"))


def check_and_render(pos, neg, sig):
    auth, wire = _codec_modules()
    vectors = []
    for v in pos:
        data = datagram(v["cluster"], v["sender"], v["parts"],
                        bytes.fromhex(v["sign_with"] or v["keyring"][0]) if v["keyring"] else None)
        codec = wire.Codec(v["cluster"], "receiver", _keyring(auth, v["keyring"]))
        sender, messages = codec.open(data)
        assert sender == v["sender"], (v["name"], sender)
        got = [_to_meaning(wire, m) for m in messages]
        assert got == v["messages"], (v["name"], got, v["messages"])
        if v["reencode"]:
            signer = [v["sign_with"]] if v["sign_with"] else v["keyring"]
            again = wire.Codec(v["cluster"], v["sender"], _keyring(auth, signer)).seal(
                [wire.encode_message(_from_meaning(wire, m)) for m in v["messages"]])
            assert again == data, (v["name"], again.hex(), data.hex())
        out = {"name": v["name"], "note": v["note"], "cluster": v["cluster"], "keyring": v["keyring"],
               "hex": data.hex(), "sender": v["sender"], "messages": v["messages"]}
        if not v["reencode"]:
            out["reencode"] = False
        vectors.append(out)
    for v in neg:
        codec = wire.Codec(v["cluster"], "receiver", _keyring(auth, v["keyring"]))
        try:
            codec.open(v["data"])
        except wire.WireError as exc:
            assert exc.reason == v["error"], (v["name"], exc.reason, v["error"], str(exc))
        else:
            raise AssertionError("negative vector %s decoded" % v["name"])
        vectors.append({"name": v["name"], "note": v["note"], "cluster": v["cluster"],
                        "keyring": v["keyring"], "hex": v["data"].hex(), "error": v["error"]})
    for v in sig:
        got = _signed_by_codec(wire, v["cluster"], v["signed"]).hex()
        assert got == v["hex"], (v["name"], got, v["hex"])
        vectors.append(v)
    names = [v["name"] for v in vectors]
    assert len(set(names)) == len(names), "vector names must be unique"
    covered = set(m["type"] for v in pos for m in v["messages"])
    assert covered == set(TYPES), sorted(set(TYPES) - covered)
    return vectors


def main():
    vectors = check_and_render(positive(), negative(), signed())
    text = json.dumps(vectors, indent=1, ensure_ascii=False) + "\n"
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %d vectors to %s" % (len(vectors), os.path.relpath(OUTPUT, REPO_ROOT)))


if __name__ == "__main__":
    main()
