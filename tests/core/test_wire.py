"""Tests for agent.core.wire against tests/vectors/wire_v2.json (CPython and MicroPython).

The JSON is the reference of wire format v2: every positive vector must decode
to its meaning and re-encode to the same bytes; every negative vector must be
refused with WireError of its reason; every signed-bytes vector must be what
the *_signed_bytes function of its kind returns. Plain functions and plain
asserts only: see tests/mp_runner.py.
"""

import binascii
import json

from agent.core import wire
from agent.core.auth import Keyring
from agent.core.wire import WireError

STATES = ("alive", "suspect", "dead", "left")
CLASSES = (
    ("ping", wire.Ping), ("ack", wire.Ack), ("nack", wire.Nack), ("ping_req", wire.PingReq),
    ("alive", wire.Alive), ("suspect", wire.Suspect), ("dead", wire.Dead), ("left", wire.Left),
    ("sync", wire.Sync), ("claim", wire.Claim), ("resign", wire.Resign), ("handover", wire.Handover),
)

_vectors = []


def _vectors_path():
    # __file__ is set for imported modules on both runtimes (relative to the
    # MICROPYPATH entry on MicroPython); the runner's cwd is the repo root.
    try:
        here = __file__
    except NameError:
        return "tests/vectors/wire_v2.json"
    index = here.rfind("/")
    directory = here[:index] if index >= 0 else "."
    return directory + "/../vectors/wire_v2.json"


def vectors():
    """The list of vectors from wire_v2.json (read once)."""
    if not _vectors:
        for path in (_vectors_path(), "tests/vectors/wire_v2.json"):
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8")
            except OSError:
                continue
            _vectors.extend(json.loads(text))
            break
        assert _vectors, "tests/vectors/wire_v2.json not found"
    return _vectors


def datagram_vectors():
    """The positive and negative datagram vectors (those without "signed")."""
    return [v for v in vectors() if "signed" not in v]


def signed_vectors():
    """The signed-bytes vectors: a statement ("signed") and the bytes its signature covers ("hex")."""
    return [v for v in vectors() if "signed" in v]


def _unhex(text):
    return binascii.unhexlify(text)


def _keyring(hex_keys):
    if hex_keys is None:
        return None
    return Keyring([_unhex(k) for k in hex_keys])


def _type_name(msg):
    for name, cls in CLASSES:
        if isinstance(msg, wire.Message) and msg.type_code == cls().type_code:
            return name
    raise AssertionError("not a wire message: %r" % (msg,))


def _member_meaning(m, out):
    out["name"] = m.name
    out["incarnation"] = m.incarnation
    out["address"] = [m.address[0], m.address[1]]
    out["priority"] = m.priority
    out["eligible"] = m.eligible
    out["tags"] = m.tags
    out["signature"] = binascii.hexlify(m.signature).decode()
    return out


def to_meaning(msg):
    """A decoded message as the JSON meaning the vectors hold."""
    name = _type_name(msg)
    if name == "alive":
        return _member_meaning(msg, {"type": name})
    if name == "sync":
        records = []
        for r in msg.records:
            fields = _member_meaning(r, {})
            fields["state"] = STATES[r.state]
            records.append(fields)
        return {"type": name, "session": msg.session, "reply_wanted": msg.reply_wanted,
                "join": msg.join, "page": msg.page, "pages": msg.pages, "records": records}
    out = {"type": name}
    for field in msg.fields:
        value = getattr(msg, field)
        if field == "address":
            value = [value[0], value[1]]
        elif field == "signature":
            value = binascii.hexlify(value).decode()
        out[field] = value
    return out


def _member_values(m):
    return {"name": m["name"], "incarnation": m["incarnation"],
            "address": (m["address"][0], m["address"][1]), "priority": m["priority"],
            "eligible": m["eligible"], "tags": m["tags"], "signature": _unhex(m["signature"])}


def from_meaning(m):
    """The message a JSON meaning describes."""
    t = m["type"]
    if t == "sync":
        records = []
        for r in m["records"]:
            values = _member_values(r)
            values["state"] = STATES.index(r["state"])
            records.append(wire.Record(**values))
        return wire.Sync(session=m["session"], reply_wanted=m["reply_wanted"], join=m["join"],
                         page=m["page"], pages=m["pages"], records=records)
    for name, cls in CLASSES:
        if name == t:
            break
    else:
        raise AssertionError("unknown type in vector: %r" % t)
    if t == "alive":
        return cls(**_member_values(m))
    values = {}
    for field in cls().fields:
        values[field] = m[field]
    if "address" in values:
        values["address"] = (values["address"][0], values["address"][1])
    if "signature" in values:
        values["signature"] = _unhex(values["signature"])
    return cls(**values)


def _raises(call, exc_type, *words):
    """Call call(); assert it raises exc_type whose message has every word; return it."""
    try:
        call()
    except exc_type as exc:
        message = str(exc)
        for word in words:
            assert word in message, "%r not in %r" % (word, message)
        return exc
    raise AssertionError("no %s raised" % exc_type.__name__)


def _key_for(data, hex_keys):
    """The hex key whose id the authenticated datagram's header names."""
    key_id = (data[6] << 24) | (data[7] << 16) | (data[8] << 8) | data[9]
    key = Keyring([_unhex(k) for k in hex_keys]).find(key_id)
    assert key is not None
    return key.key


# --- The vectors ------------------------------------------------------------


def test_vectors_cover_the_protocol():
    positive = [v for v in datagram_vectors() if "error" not in v]
    negative = [v for v in datagram_vectors() if "error" in v]
    types = {}
    for v in positive:
        for m in v["messages"]:
            types[m["type"]] = True
    for name, _ in CLASSES:
        assert name in types, name
    reasons = {}
    for v in negative:
        reasons[v["error"]] = True
    for reason in ("truncated", "version", "cluster", "auth", "malformed"):
        assert reason in reasons, reason
    assert [v for v in positive if v["keyring"]], "no authenticated vector"
    assert [v for v in positive if v.get("reencode") is False], "no unknown-type vector"
    kinds = {}
    for v in signed_vectors():
        kinds[v["signed"]["type"]] = True
    for kind in ("alive", "left", "claim", "resign", "handover"):
        assert kind in kinds, kind
    names = {}
    for v in vectors():
        assert v["name"] not in names, "repeated vector name " + v["name"]
        names[v["name"]] = True
    # The ones PROTOCOL.md cites for what v2 added.
    for name in ("alive_signed", "left_signed", "claim_heartbeat", "sync_signed_record", "ping_any_target",
                 "name_control_char", "name_star", "c1_control", "signature_length_bad", "v1_datagram"):
        assert name in names, name


def test_positive_vectors_decode_to_their_meaning():
    for v in datagram_vectors():
        if "error" in v:
            continue
        codec = wire.Codec(v["cluster"], "receiver", _keyring(v["keyring"]))
        sender, messages = codec.open(_unhex(v["hex"]))
        assert sender == v["sender"], (v["name"], sender)
        got = [to_meaning(m) for m in messages]
        assert got == v["messages"], (v["name"], got)


def test_positive_vectors_reencode_to_their_bytes():
    for v in datagram_vectors():
        if "error" in v or v.get("reencode") is False:
            continue
        data = _unhex(v["hex"])
        keyring = None
        if v["keyring"] is not None:
            # Seal with the key the vector was sealed with (not always the primary).
            keyring = Keyring([_key_for(data, v["keyring"])])
        codec = wire.Codec(v["cluster"], v["sender"], keyring)
        encoded = [wire.encode_message(from_meaning(m)) for m in v["messages"]]
        again = codec.seal(encoded)
        assert again == data, (v["name"], binascii.hexlify(again))
        assert len(again) == codec.overhead() + sum([len(e) for e in encoded])


def test_negative_vectors_fail_with_their_reason():
    for v in datagram_vectors():
        if "error" not in v:
            continue
        codec = wire.Codec(v["cluster"], "receiver", _keyring(v["keyring"]))
        exc = _raises(lambda: codec.open(_unhex(v["hex"])), WireError)
        assert exc.reason == v["error"], (v["name"], exc.reason, str(exc))


def test_vector_header_carries_the_cluster_tag():
    for v in datagram_vectors():
        data = _unhex(v["hex"])
        if len(data) < 6 or data[0] != wire.VERSION or v["name"] == "wrong_cluster":
            continue
        tag = (data[2] << 24) | (data[3] << 16) | (data[4] << 8) | data[5]
        assert tag == wire.cluster_tag(v["cluster"]), v["name"]


def test_unknown_type_vector_skips_only_the_unknown():
    for v in datagram_vectors():
        if v["name"] == "unknown_type_skipped":
            sender, messages = wire.Codec(v["cluster"], "r").open(_unhex(v["hex"]))
            assert messages == [wire.Ping(seq=1, target="b"), wire.Ack(seq=1)]
            return
    raise AssertionError("vector unknown_type_skipped missing")


def _signed_bytes(cluster, m):
    """What agent.core.wire says the signature of statement m (a vector's "signed") covers."""
    tag = wire.cluster_tag(cluster)
    t = m["type"]
    if t == "alive":
        return wire.alive_signed_bytes(tag, m["name"], m["incarnation"], (m["address"][0], m["address"][1]),
                                       m["priority"], m["eligible"], m["tags"])
    if t == "left":
        return wire.left_signed_bytes(tag, m["name"], m["incarnation"])
    if t == "claim":
        return wire.claim_signed_bytes(tag, m["term"], m["name"], m["priority"], m["incarnation"], m["counter"])
    if t == "resign":
        return wire.resign_signed_bytes(tag, m["term"], m["name"])
    if t == "handover":
        return wire.resign_signed_bytes(tag, m["term"], m["name"], m["successor"])
    raise AssertionError("unknown signed type in vector: %r" % t)


def test_signed_bytes_vectors():
    for v in signed_vectors():
        got = _signed_bytes(v["cluster"], v["signed"])
        assert got == _unhex(v["hex"]), (v["name"], binascii.hexlify(got))


def test_signed_bytes_start_with_their_domain_and_cluster_tag():
    # One domain per kind of statement: no signature passes for another kind.
    domains = {"alive": b"leaderd/alive/v2", "left": b"leaderd/left/v2", "claim": b"leaderd/claim/v2",
               "resign": b"leaderd/resign/v1", "handover": b"leaderd/handover/v1"}
    for v in signed_vectors():
        data = _unhex(v["hex"])
        domain = domains[v["signed"]["type"]]
        assert data[:len(domain)] == domain, v["name"]
        tag = data[len(domain):len(domain) + 4]
        assert (tag[0] << 24) | (tag[1] << 16) | (tag[2] << 8) | tag[3] == wire.cluster_tag(v["cluster"])


def test_alive_signature_covers_the_body_without_its_signature():
    # PROTOCOL.md 3.4: the statement is the Alive body up to its signature field.
    for v in datagram_vectors():
        if v["name"] != "alive_signed":
            continue
        _, (alive,) = wire.Codec(v["cluster"], "r").open(_unhex(v["hex"]))
        body = wire.encode_message(alive)[wire.MESSAGE_HEADER_BYTES:]
        signed = wire.alive_signed_bytes(wire.cluster_tag(v["cluster"]), alive.name, alive.incarnation,
                                         alive.address, alive.priority, alive.eligible, alive.tags)
        assert body == signed[len(wire.ALIVE_DOMAIN) + 4:] + bytes([64]) + alive.signature
        return
    raise AssertionError("vector alive_signed missing")


# --- Cluster tag and codec --------------------------------------------------


def test_cluster_tag_is_stable():
    # First 4 bytes of SHA-256(b"leaderd-cluster:" + name): these are the protocol.
    assert wire.cluster_tag("default") == 0x25ADFE82
    assert wire.cluster_tag("other") != wire.cluster_tag("default")
    assert wire.cluster_tag("default") == wire.cluster_tag("default")
    for name in ("", "default", "f\u00e4brik"):
        tag = wire.cluster_tag(name)
        assert 0 <= tag < (1 << 32)


def test_codec_overhead():
    plain = wire.Codec("default", "node-1")
    assert plain.overhead() == 1 + 1 + 4 + 1 + 6
    sealed = wire.Codec("default", "node-1", Keyring([b"k" * 32]))
    assert sealed.overhead() == 1 + 1 + 4 + 4 + 1 + 6 + 16


def test_rotation_keyring_opens_old_and_new():
    old_key = b"\x01" * 32
    new_key = b"\x02" * 32
    msgs = [wire.encode_message(wire.Ack(seq=3))]
    from_old = wire.Codec("c", "a", Keyring([old_key])).seal(msgs)
    from_new = wire.Codec("c", "b", Keyring([new_key, old_key])).seal(msgs)
    both = wire.Codec("c", "r", Keyring([new_key, old_key]))
    assert both.open(from_old) == ("a", [wire.Ack(seq=3)])
    assert both.open(from_new) == ("b", [wire.Ack(seq=3)])
    only_new = wire.Codec("c", "r", Keyring([new_key]))
    assert _raises(lambda: only_new.open(from_old), WireError).reason == "auth"
    codec = wire.Codec("c", "a", Keyring([old_key]))
    codec.set_keyring(Keyring([new_key]))
    assert only_new.open(codec.seal(msgs)) == ("a", [wire.Ack(seq=3)])
    codec.set_keyring(None)
    assert wire.Codec("c", "r").open(codec.seal(msgs)) == ("a", [wire.Ack(seq=3)])


def test_empty_tags_decode_as_none():
    codec = wire.Codec("c", "a")
    alive = wire.Alive(name="b", incarnation=1, address=("h", 1), priority=1, eligible=True, tags={})
    _, messages = codec.open(codec.seal([wire.encode_message(alive)]))
    assert messages[0].tags is None
    assert wire.encode_tags({}) == wire.encode_tags(None) == b"\x00"


def test_tags_are_encoded_in_key_order():
    # Never in dict order: MicroPython dicts are not insertion-ordered.
    one = wire.encode_tags({"b": "2", "a": "1", "c": "3"})
    two = wire.encode_tags({"c": "3", "b": "2", "a": "1"})
    assert one == two == b"\x03\x01a\x011\x01b\x012\x01c\x013"


# --- Range checks on encode ---------------------------------------------------


def _alive(**over):
    values = {"name": "b", "incarnation": 1, "address": ("10.0.0.2", 7946), "priority": 100,
              "eligible": True, "tags": None}
    for key in over:
        values[key] = over[key]
    return wire.Alive(**values)


def test_encode_rejects_out_of_range_integers():
    cases = [
        (wire.Ping(seq=-1, target="b"), "seq"),
        (wire.Ping(seq=1 << 32, target="b"), "seq"),
        (wire.Ack(seq=1 << 32), "seq"),
        (wire.Nack(seq=-1), "seq"),
        (wire.PingReq(seq=1 << 32, target="b", address=("h", 1)), "seq"),
        (wire.PingReq(seq=1, target="b", address=("h", 65536)), "port"),
        (wire.PingReq(seq=1, target="b", address=("h", -1)), "port"),
        (_alive(incarnation=1 << 32), "incarnation"),
        (_alive(incarnation=-1), "incarnation"),
        (_alive(priority=256), "priority"),
        (_alive(priority=-1), "priority"),
        (_alive(address=("h", 70000)), "port"),
        (wire.Suspect(name="b", incarnation=1 << 32, by="a"), "incarnation"),
        (wire.Dead(name="b", incarnation=-1, by="a"), "incarnation"),
        (wire.Left(name="b", incarnation=1 << 32), "incarnation"),
        (wire.Ping(seq=1.0, target="b"), "seq"),
        (wire.Sync(session=1 << 32, reply_wanted=False, join=False, page=0, pages=1, records=[]), "session"),
        (wire.Sync(session=1, reply_wanted=False, join=False, page=1, pages=1, records=[]), "page"),
        (wire.Sync(session=1, reply_wanted=False, join=False, page=0, pages=0, records=[]), "page"),
        (wire.Sync(session=1, reply_wanted=False, join=False, page=0, pages=256, records=[]), "pages"),
        (wire.Claim(term=1 << 32, name="b", priority=1, incarnation=1, signature=b""), "term"),
        (wire.Claim(term=1, name="b", priority=256, incarnation=1, signature=b""), "priority"),
        (wire.Claim(term=1, name="b", priority=1, incarnation=-1, signature=b""), "incarnation"),
        (wire.Claim(term=1, name="b", priority=1, incarnation=1, counter=1 << 32, signature=b""), "counter"),
        (wire.Claim(term=1, name="b", priority=1, incarnation=1, counter=-1, signature=b""), "counter"),
        (wire.Claim(term=1, name="b", priority=1, incarnation=1, signature=b"s" * 63), "signature"),
        (wire.Resign(term=-1, name="b", signature=b""), "term"),
        (wire.Resign(term=1, name="b", signature=b"s" * 65), "signature"),
        (_alive(signature=b"s" * 63), "signature"),
        (_alive(signature=b"s" * 65), "signature"),
        (wire.Left(name="b", incarnation=1, signature=b"s"), "signature"),
    ]
    for msg, word in cases:
        _raises(lambda: wire.encode_message(msg), ValueError, word)
    record = wire.Record(name="b", incarnation=1, address=("h", 1), priority=1, eligible=True, tags=None,
                         state=0, signature=b"s" * 32)
    _raises(lambda: wire.encode_record(record), ValueError, "signature")


def test_signed_bytes_range_check_their_fields():
    tag = wire.cluster_tag("default")
    _raises(lambda: wire.claim_signed_bytes(tag, 1, "b", 1, 1, 1 << 32), ValueError, "counter")
    _raises(lambda: wire.claim_signed_bytes(tag, 1 << 32, "b", 1, 1, 0), ValueError, "term")
    _raises(lambda: wire.claim_signed_bytes(tag, 1, "*", 1, 1, 0), ValueError, "name")
    _raises(lambda: wire.left_signed_bytes(tag, "b", -1), ValueError, "incarnation")
    _raises(lambda: wire.left_signed_bytes(tag, "b\x1b", 1), ValueError, "name")
    _raises(lambda: wire.alive_signed_bytes(tag, "b", 1, ("h", 1), 256, True, None), ValueError, "priority")
    _raises(lambda: wire.alive_signed_bytes(tag, "", 1, ("h", 1), 1, True, None), ValueError, "name")


def test_signed_bytes_differ_in_every_field():
    # A signature over one statement never covers another: each field counts.
    tag = wire.cluster_tag("default")
    base = wire.claim_signed_bytes(tag, 42, "b", 150, 3, 7)
    for other in (wire.claim_signed_bytes(tag, 42, "b", 150, 3, 8),
                  wire.claim_signed_bytes(tag, 43, "b", 150, 3, 7),
                  wire.claim_signed_bytes(tag, 42, "c", 150, 3, 7),
                  wire.claim_signed_bytes(tag, 42, "b", 151, 3, 7),
                  wire.claim_signed_bytes(tag, 42, "b", 150, 4, 7),
                  wire.claim_signed_bytes(wire.cluster_tag("other"), 42, "b", 150, 3, 7)):
        assert other != base
    alive = wire.alive_signed_bytes(tag, "b", 2, ("10.0.0.2", 7946), 100, True, None)
    assert alive != wire.alive_signed_bytes(tag, "b", 2, ("10.0.0.2", 7946), 100, False, None)
    assert alive != wire.alive_signed_bytes(tag, "b", 2, ("10.0.0.2", 7946), 100, True, {"k": "v"})
    assert alive != wire.alive_signed_bytes(tag, "b", 2, ("10.0.0.3", 7946), 100, True, None)
    assert wire.left_signed_bytes(tag, "b", 2) != wire.left_signed_bytes(tag, "b", 3)


def test_encode_rejects_bad_names_hosts_and_tags():
    name_65 = "n" * 65
    name_66_bytes = "\u00e9" * 33          # 33 characters, 66 bytes
    cases = [
        (wire.Ping(seq=1, target=name_65), "name"),
        (wire.Ping(seq=1, target=name_66_bytes), "name"),
        (wire.Ping(seq=1, target=""), "name"),
        (wire.Left(name="", incarnation=1), "name"),
        (wire.Suspect(name="b", incarnation=1, by=name_65), "name"),
        (_alive(name=name_66_bytes), "name"),
        (wire.Claim(term=1, name="", priority=1, incarnation=1, signature=b""), "name"),
        (wire.Resign(term=1, name=name_65, signature=b""), "name"),
        (_alive(address=("h" * 65, 1)), "host"),
        (_alive(tags={"k": "v" * 33}), "tag value"),
        (_alive(tags={"k" * 33: "v"}), "tag key"),
        (_alive(tags=dict([("k%d" % i, "v") for i in range(9)])), "tags"),
    ]
    for msg, word in cases:
        _raises(lambda: wire.encode_message(msg), ValueError, word)
    _raises(lambda: wire.Codec("c", name_65), ValueError, "name")
    _raises(lambda: wire.Codec("c", ""), ValueError, "name")
    _raises(lambda: wire.Codec("c", "*"), ValueError, "name")
    _raises(lambda: wire.Codec("c", "a\x1b[2J"), ValueError, "name")
    record = wire.Record(name="b", incarnation=1, address=("h", 1), priority=1, eligible=True,
                         tags=None, state=4)
    _raises(lambda: wire.encode_record(record), ValueError, "state")


# Names that break the one rule (wire.name_error), and names just inside it.
BAD_NAMES = ("", "n" * 65, "\u00e9" * 33, "*", "\x00", "a\x1b[2J", "\x1f", "tab\there", "new\nline", "del\x7f",
             "\u0080", "c1\u009b2J", "\u009f")
GOOD_NAMES = ("a", " ", "~", "**", "a*", "*a", "\u00a0", "\u00a1\u00bf", "sensor-\u00e9", "\u0100", "\u2028",
              "\U0001f6f0" * 16, "n" * 64)


def test_name_error_is_the_one_rule():
    for name in BAD_NAMES:
        assert wire.name_error(name) is not None, name
    for name in GOOD_NAMES:
        assert wire.name_error(name) is None, name
    assert wire.name_error(None) is not None
    assert wire.name_error(b"a") is not None


def test_encode_refuses_what_name_error_refuses_in_every_name_field():
    for bad in BAD_NAMES:
        for msg in (wire.Ping(seq=1, target=bad), wire.PingReq(seq=1, target=bad, address=("h", 1)),
                    _alive(name=bad), wire.Suspect(name=bad, incarnation=1, by="a"),
                    wire.Suspect(name="a", incarnation=1, by=bad), wire.Dead(name="a", incarnation=1, by=bad),
                    wire.Left(name=bad, incarnation=1),
                    wire.Claim(term=1, name=bad, priority=1, incarnation=1, signature=b""),
                    wire.Resign(term=1, name=bad, signature=b"")):
            if bad == "*" and msg.type_code == wire.T_PING:
                continue  # the any-target
            _raises(lambda: wire.encode_message(msg), ValueError)
        _raises(lambda: wire.Codec("c", bad), ValueError, "name")
        record = wire.Record(name=bad, incarnation=1, address=("h", 1), priority=1, eligible=True, tags=None,
                             state=0)
        _raises(lambda: wire.encode_record(record), ValueError, "name")


def test_good_names_round_trip_in_every_name_field():
    for good in GOOD_NAMES:
        codec = wire.Codec("c", good)
        msgs = [wire.Ping(seq=1, target=good), wire.PingReq(seq=1, target=good, address=("h", 1)),
                _alive(name=good), wire.Suspect(name=good, incarnation=1, by=good),
                wire.Dead(name=good, incarnation=1, by=good), wire.Left(name=good, incarnation=1),
                wire.Claim(term=1, name=good, priority=1, incarnation=1, signature=b""),
                wire.Resign(term=1, name=good, signature=b"")]
        assert codec.open(codec.seal([wire.encode_message(m) for m in msgs])) == (good, msgs), good


def test_any_target_is_only_a_ping_target():
    codec = wire.Codec("c", "leaderd-ping")
    ping = wire.Ping(seq=1, target=wire.ANY_TARGET)
    assert codec.open(codec.seal([wire.encode_message(ping)])) == ("leaderd-ping", [ping])
    _raises(lambda: wire.encode_message(wire.PingReq(seq=1, target="*", address=("h", 1))), ValueError, "name")
    _raises(lambda: wire.encode_message(_alive(name="*")), ValueError, "name")


def test_encode_accepts_the_limits():
    name_64 = "\u00e9" * 32                 # 64 bytes
    tags = {}
    for i in range(8):
        tags[("k%d" % i) + "x" * 30] = "v" * 32
    msg = _alive(name=name_64, incarnation=(1 << 32) - 1, address=("h" * 64, 65535), priority=255,
                 tags=tags, signature=b"\xff" * 64)
    codec = wire.Codec("c", name_64)
    sender, messages = codec.open(codec.seal([wire.encode_message(msg)]))
    assert sender == name_64
    assert messages == [msg]
    for seq in (0, (1 << 32) - 1):
        assert codec.open(codec.seal([wire.encode_message(wire.Ping(seq=seq, target="b"))]))[1][0].seq == seq
    claim = wire.Claim(term=(1 << 32) - 1, name=name_64, priority=255, incarnation=(1 << 32) - 1,
                       counter=(1 << 32) - 1, signature=b"\x00" * 64)
    assert codec.open(codec.seal([wire.encode_message(claim)]))[1] == [claim]
    left = wire.Left(name=name_64, incarnation=(1 << 32) - 1, signature=b"\x01" * 64)
    assert codec.open(codec.seal([wire.encode_message(left)]))[1] == [left]


def test_claim_counter_defaults_to_zero_and_unsigned_statements_to_empty():
    assert wire.Claim(term=1, name="b", priority=1, incarnation=1, signature=b"").counter == 0
    assert _alive().signature == b""
    assert wire.Left(name="b", incarnation=1).signature == b""
    assert wire.Record(name="b").signature == b""
    assert wire.FIELDS[wire.T_CLAIM] == ("term", "name", "priority", "incarnation", "counter", "signature")
    assert wire.FIELDS[wire.T_ALIVE][-1] == "signature"
    assert wire.FIELDS[wire.T_LEFT] == ("name", "incarnation", "signature")
    assert wire.FIELDS[0][-2:] == ("state", "signature")


def test_message_class_rejects_unknown_fields():
    _raises(lambda: wire.Ping(seq=1, target="b", port=3), TypeError, "port")


# --- Sync paging ---------------------------------------------------------------


def _records(count):
    out = []
    for i in range(count):
        tags = None
        if i % 3 == 0:
            tags = {"zone": "z%d" % (i % 5), "role": "r" * (i % 20)}
        signature = bytes([i % 256]) * 64 if i % 2 else b""
        out.append(wire.Record(name="member-%03d" % i, incarnation=i * 7, address=("10.0.%d.%d" % (i // 250, i % 250), 7946),
                               priority=i % 256, eligible=(i % 4 != 0), tags=tags, state=i % 4,
                               signature=signature))
    return out


def _open_pages(pages, session, reply_wanted, join):
    codec = wire.Codec("c", "a")
    records = []
    for index in range(len(pages)):
        _, messages = codec.open(codec.seal([pages[index]]))
        assert len(messages) == 1
        sync = messages[0]
        assert sync.session == session
        assert sync.reply_wanted == reply_wanted and sync.join == join
        assert sync.page == index and sync.pages == len(pages)
        records.extend(sync.records)
    return records


def test_sync_pages_fit_the_budget_and_keep_order():
    records = _records(60)
    for budget in (160, 300, 512, 1400 - wire.Codec("c", "a").overhead()):
        pages = wire.encode_sync_pages(0xABCDEF01, True, False, records, budget)
        for page in pages:
            assert len(page) <= budget, (budget, len(page))
        assert _open_pages(pages, 0xABCDEF01, True, False) == records
    # The smallest budget needs many pages; the MTU budget few.
    assert len(wire.encode_sync_pages(1, False, True, records, 160)) > 10
    assert len(wire.encode_sync_pages(1, False, True, records, 1400)) <= 4


def test_sync_pages_are_full_before_the_next_starts():
    records = _records(30)
    budget = 200
    pages = wire.encode_sync_pages(5, False, False, records, budget)
    sizes = [len(wire.encode_record(r)) for r in records]
    i = 0
    for page in pages[:-1]:
        used = len(page) - wire.MESSAGE_HEADER_BYTES - wire.SYNC_HEAD_BYTES
        count = 0
        total = 0
        while total + sizes[i + count] <= used:
            total += sizes[i + count]
            count += 1
        assert total == used
        # The next record would not have fitted.
        assert used + sizes[i + count] > budget - wire.MESSAGE_HEADER_BYTES - wire.SYNC_HEAD_BYTES
        i += count


def test_sync_pages_of_nothing_is_one_empty_page():
    pages = wire.encode_sync_pages(7, True, True, [], 100)
    assert len(pages) == 1
    assert _open_pages(pages, 7, True, True) == []


def test_sync_pages_refuses_what_cannot_fit():
    big = wire.Record(name="n" * 64, incarnation=1, address=("h" * 64, 1), priority=1, eligible=True,
                      tags=None, state=0)
    _raises(lambda: wire.encode_sync_pages(1, False, False, [big], 100), ValueError, "record")
    # 256 records of one size, one record per page: 256 pages.
    small = []
    for i in range(256):
        small.append(wire.Record(name="m%03d" % i, incarnation=i, address=("10.0.0.1", 7946), priority=1,
                                 eligible=True, tags=None, state=0))
    budget = wire.MESSAGE_HEADER_BYTES + wire.SYNC_HEAD_BYTES + len(wire.encode_record(small[0]))
    _raises(lambda: wire.encode_sync_pages(1, False, False, small, budget), ValueError, "pages")
    assert len(wire.encode_sync_pages(1, False, False, small[:255], budget)) == 255
