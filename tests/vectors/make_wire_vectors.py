"""Writes tests/vectors/wire_v1.json, the reference vectors of wire format v1.

Run from the repository root with CPython:

    .venv/bin/python tests/vectors/make_wire_vectors.py

The datagrams are built by a second, independent encoder below, written from
docs/PROTOCOL.md with struct, hashlib and the standard hmac module (not from
agent.core); before writing, every vector is checked against agent.core.wire
(positive vectors decode to their meaning and re-encode to their bytes;
negative vectors fail with their reason), so the two implementations agree.

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
OUTPUT = os.path.join(HERE, "wire_v1.json")

# Test keys only: never use these anywhere else.
KEY_A = bytes(range(0x00, 0x20))          # 32 bytes
KEY_B = bytes(range(0x20, 0x40))          # 32 bytes
KEY_SHORT = b"\xa5" * 16                  # the shortest key allowed
KEY_LONG = bytes(range(0x40, 0x90))       # 80 bytes: longer than the HMAC block, so hashed first

STATES = ("alive", "suspect", "dead", "left")
TYPES = {"ping": 1, "ack": 2, "nack": 3, "ping_req": 4, "alive": 5,
         "suspect": 6, "dead": 7, "left": 8, "sync": 9, "claim": 10, "resign": 11}


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


def member(m):
    return (str8(m["name"]) + u32(m["incarnation"]) + address(m["address"])
            + u8(m["priority"]) + u8(1 if m["eligible"] else 0) + tags(m["tags"]))


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
        return str8(m["name"]) + u32(m["incarnation"])
    if t == "sync":
        flags = (1 if m["reply_wanted"] else 0) | (2 if m["join"] else 0)
        head = u32(m["session"]) + u8(flags) + u8(m["page"]) + u8(m["pages"])
        return head + b"".join(u8(STATES.index(r["state"])) + member(r) for r in m["records"])
    if t == "claim":
        return (u32(m["term"]) + str8(m["name"]) + u8(m["priority"]) + u32(m["incarnation"])
                + signature(m["signature"]))
    if t == "resign":
        return u32(m["term"]) + str8(m["name"]) + signature(m["signature"])
    raise ValueError(t)


def signature(hex_text):
    data = bytes.fromhex(hex_text)
    return u8(len(data)) + data


def frame(type_code, data):
    return u8(type_code) + u16(len(data)) + data


def message(m):
    return frame(TYPES[m["type"]], body(m))


def header(cluster, sender, key=None):
    if key is None:
        return u8(1) + u8(0) + cluster_tag(cluster) + str8(sender)
    return u8(1) + u8(1) + cluster_tag(cluster) + key_id(key) + str8(sender)


def datagram(cluster, sender, parts, key=None):
    """Header + parts (already framed bytes) + the HMAC tag when key is given."""
    data = header(cluster, sender, key) + b"".join(parts)
    if key is not None:
        data += hmac.new(key, data, hashlib.sha256).digest()[:16]
    return data


# --- Meanings --------------------------------------------------------------


def alive(name, incarnation, host, port, priority=100, eligible=True, tag_map=None):
    return {"type": "alive", "name": name, "incarnation": incarnation, "address": [host, port],
            "priority": priority, "eligible": eligible, "tags": tag_map}


def record(state, name, incarnation, host, port, priority=100, eligible=True, tag_map=None):
    return {"name": name, "incarnation": incarnation, "address": [host, port], "priority": priority,
            "eligible": eligible, "tags": tag_map, "state": state}


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

    add("ping", "a probes b", [PING])
    add("ack", "the answer to ping seq 1", [ACK])
    add("nack", "a relay's negative answer (Lifeguard)", [{"type": "nack", "seq": 77}])
    add("ping_req", "probe c at 10.0.0.3:7946 for me, relay the ack as seq 5",
        [{"type": "ping_req", "seq": 5, "target": "c", "address": ["10.0.0.3", 7946]}])
    add("alive", "no tags: count 0, decoded as null", [alive("b", 2, "10.0.0.2", 7946)])
    add("alive_tags", "tags are written in ascending key order",
        [alive("sensor-\u00e9", 9, "192.168.1.20", 7946, 7, False,
               {"zone": "eu-1", "role": "gateway", "fw": "1.4.2"})])
    add("suspect", "b suspects c at incarnation 4", [{"type": "suspect", "name": "c", "incarnation": 4, "by": "b"}])
    add("dead", "b declares c dead at incarnation 4", [{"type": "dead", "name": "c", "incarnation": 4, "by": "b"}])
    add("left", "d left gracefully at incarnation 12", [{"type": "left", "name": "d", "incarnation": 12}])
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
         {"type": "left", "name": "g", "incarnation": 0}])
    add("limits", "every field at its maximum: 64-byte names and host, 8 tags of 32 + 32 bytes",
        [{"type": "ping_req", "seq": 0xFFFFFFFF, "target": MAX_NAME, "address": [MAX_HOST, 65535]},
         alive(MAX_NAME, 0xFFFFFFFF, MAX_HOST, 65535, 255, True, MAX_TAGS)],
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
    add("claim", "b claims term 42 (priority 150, incarnation 3), signed",
        [{"type": "claim", "term": 42, "name": "b", "priority": 150, "incarnation": 3,
          "signature": SIGNATURE}])
    add("claim_unsigned", "an unsigned claim: signature length 0",
        [{"type": "claim", "term": 1, "name": "a", "priority": 100, "incarnation": 0, "signature": ""}])
    add("resign", "b gives up term 42, signed",
        [{"type": "resign", "term": 42, "name": "b", "signature": SIGNATURE}])
    add("resign_unsigned", "an unsigned resignation",
        [{"type": "resign", "term": 7, "name": "a", "signature": ""}])
    add("unknown_type_skipped", "types 200 and 250 (unknown to v1) are skipped by their length",
        [PING, ACK], extra_parts=[(1, frame(200, b"\x01\x02\x03\x04\x05")), (2, frame(250, b""))])
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

    add("empty", "zero bytes", b"", "truncated")
    add("truncated_header", "the first 6 bytes of the ping vector", good[:6], "truncated")
    add("version_0", "version byte 0", b"\x00" + good[1:], "version")
    add("version_2", "version byte 2 (a later version): dropped, never guessed at", b"\x02" + good[1:], "version")
    add("unknown_flags", "flags 0x02: no such flag in v1", good[:1] + b"\x02" + good[2:], "malformed")
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
        ping_head + frame(5, alive_head + u8(9) + b"".join(str8("k%d" % i) + str8("v") for i in range(9))),
        "malformed")
    add("tag_too_long", "tag value of 33 bytes (limit 32)",
        ping_head + frame(5, alive_head + u8(1) + str8("k") + str8("v" * 33)), "malformed")
    add("repeated_tag_key", "the same tag key twice",
        ping_head + frame(5, alive_head + u8(2) + str8("k") + str8("1") + str8("k") + str8("2")), "malformed")
    add("eligible_2", "eligible byte 2 (only 0 and 1)",
        ping_head + frame(5, str8("b") + u32(1) + address(("10.0.0.2", 7946)) + u8(100) + u8(2) + u8(0)),
        "malformed")
    add("host_too_long", "ping_req host of 65 bytes (limit 64)",
        ping_head + frame(4, u32(1) + str8("c") + b"\x41" + b"h" * 65 + u16(7946)), "malformed")
    add("claim_signature_length", "claim signature length 10 (only 0 or 64)",
        ping_head + frame(10, u32(1) + str8("b") + u8(1) + u32(1) + u8(10) + b"s" * 10), "malformed")
    add("claim_cut", "claim body ends inside priority + incarnation",
        ping_head + frame(10, u32(1) + str8("b") + u8(1) + b"\x00\x00"), "truncated")
    add("resign_empty_name", "resign name of 0 bytes",
        ping_head + frame(11, u32(1) + b"\x00" + u8(0)), "malformed")
    sync_rec = u8(0) + member(SYNC_RECORDS[1])
    add("sync_page_out_of_range", "sync page 1 of 1",
        ping_head + frame(9, u32(1) + u8(0) + u8(1) + u8(1) + sync_rec), "malformed")
    add("sync_zero_pages", "sync page 0 of 0",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(0) + sync_rec), "malformed")
    add("sync_unknown_flags", "sync flags 0x04",
        ping_head + frame(9, u32(1) + u8(4) + u8(0) + u8(1) + sync_rec), "malformed")
    add("sync_bad_state", "record state 4 (states are 0..3)",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(1) + u8(4) + member(SYNC_RECORDS[1])), "malformed")
    add("sync_record_cut", "the last record of a sync page cut short",
        ping_head + frame(9, u32(1) + u8(0) + u8(0) + u8(1) + sync_rec[:-2]), "truncated")
    return out


# --- Cross-check with agent.core.wire, then write ---------------------------


def _codec_modules():
    sys.path.insert(0, REPO_ROOT)
    from agent.core import auth, wire
    return auth, wire


def _to_meaning(wire, msg):
    """A decoded Message as its JSON meaning (the same shape the vectors use)."""
    def member_fields(m):
        return {"name": m.name, "incarnation": m.incarnation, "address": list(m.address),
                "priority": m.priority, "eligible": m.eligible, "tags": m.tags}
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
    if msg.type_code in (wire.T_CLAIM, wire.T_RESIGN):
        for field in msg.fields:
            out[field] = getattr(msg, field)
        out["signature"] = msg.signature.hex()
        return out
    if msg.type_code == wire.T_ALIVE:
        out.update(member_fields(msg))
        return out
    for field in msg.fields:
        value = getattr(msg, field)
        out[field] = list(value) if field == "address" else value
    return out


def _from_meaning(wire, m):
    t = m["type"]
    if t == "sync":
        records = [wire.Record(name=r["name"], incarnation=r["incarnation"], address=tuple(r["address"]),
                               priority=r["priority"], eligible=r["eligible"], tags=r["tags"],
                               state=STATES.index(r["state"])) for r in m["records"]]
        return wire.Sync(session=m["session"], reply_wanted=m["reply_wanted"], join=m["join"],
                         page=m["page"], pages=m["pages"], records=records)
    classes = {"ping": wire.Ping, "ack": wire.Ack, "nack": wire.Nack, "ping_req": wire.PingReq,
               "alive": wire.Alive, "suspect": wire.Suspect, "dead": wire.Dead, "left": wire.Left,
               "claim": wire.Claim, "resign": wire.Resign}
    values = dict((k, v) for k, v in m.items() if k != "type")
    if "signature" in values:
        values["signature"] = bytes.fromhex(values["signature"])
    if "address" in values:
        values["address"] = tuple(values["address"])
    return classes[t](**values)


def _keyring(auth, keyring):
    return None if keyring is None else auth.Keyring([bytes.fromhex(k) for k in keyring])


def check_and_render(pos, neg):
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
    names = [v["name"] for v in vectors]
    assert len(set(names)) == len(names), "vector names must be unique"
    covered = set(m["type"] for v in pos for m in v["messages"])
    assert covered == set(TYPES), sorted(set(TYPES) - covered)
    return vectors


def main():
    vectors = check_and_render(positive(), negative())
    text = json.dumps(vectors, indent=1, ensure_ascii=False) + "\n"
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %d vectors to %s" % (len(vectors), os.path.relpath(OUTPUT, REPO_ROOT)))


if __name__ == "__main__":
    main()
