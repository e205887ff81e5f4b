"""Property tests of agent.core.wire (CPython only, hypothesis).

Round trips of arbitrary valid messages through Codec.seal / Codec.open, with
and without a keyring; the decoder fuzzed with arbitrary and mutated
datagrams, where WireError is the only exception allowed; key rotation; the
name rule (wire.name_error) held on both sides: what the encoder accepts
decodes, and no decoded name holds a control character or is "*".
The byte-exact reference is tests/vectors/wire_v2.json (tests/core/test_wire.py).
"""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.core import wire
from agent.core.auth import TAG_BYTES, Keyring
from agent.core.wire import WireError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def text_of_bytes(min_bytes, max_bytes):
    """Unicode text (no surrogates) whose UTF-8 form is min_bytes..max_bytes long."""
    return st.text(min_size=min_bytes, max_size=max_bytes).filter(
        lambda s: min_bytes <= len(s.encode("utf-8")) <= max_bytes)


# Characters the name rule refuses: C0, DEL, C1.
CONTROLS = [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)]


def is_control(ch):
    """True for a C0 control, DEL or a C1 control (U+0000..U+001F, U+007F..U+009F)."""
    return ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


# Any text, with the characters around the rule's edges drawn often.
any_text = st.text(alphabet=st.sampled_from(CONTROLS + ["*", " ", "~", "\u00a0", "\u00a1", "\u00e9", "a"])
                   | st.characters(), max_size=70)
names = text_of_bytes(1, wire.MAX_NAME_BYTES).filter(lambda s: wire.name_error(s) is None)
hosts = text_of_bytes(0, wire.MAX_HOST_BYTES)
u32s = st.integers(0, (1 << 32) - 1)
addresses = st.tuples(hosts, st.integers(0, 0xFFFF))
tag_texts = text_of_bytes(0, wire.MAX_TAG_TEXT_BYTES)
# No tags is None on the wire's way back (count 0), so {} is not generated.
tag_maps = st.none() | st.dictionaries(tag_texts, tag_texts, min_size=1, max_size=wire.MAX_TAGS)
keys = st.binary(min_size=16, max_size=80)
# Unsigned (b"") or one Ed25519 signature; the wire does not verify it.
signatures = st.just(b"") | st.binary(min_size=wire.SIGNATURE_BYTES, max_size=wire.SIGNATURE_BYTES)


def member_fields():
    return dict(name=names, incarnation=u32s, address=addresses, priority=st.integers(0, 255),
                eligible=st.booleans(), tags=tag_maps, signature=signatures)


records = st.builds(wire.Record, state=st.integers(0, 3), **member_fields())


@st.composite
def syncs(draw):
    pages = draw(st.integers(1, 255))
    return wire.Sync(session=draw(u32s), reply_wanted=draw(st.booleans()), join=draw(st.booleans()),
                     page=draw(st.integers(0, pages - 1)), pages=pages,
                     records=draw(st.lists(records, max_size=4)))


messages = st.one_of(
    st.builds(wire.Ping, seq=u32s, target=names | st.just(wire.ANY_TARGET)),
    st.builds(wire.Ack, seq=u32s),
    st.builds(wire.Nack, seq=u32s),
    st.builds(wire.PingReq, seq=u32s, target=names, address=addresses),
    st.builds(wire.Alive, **member_fields()),
    st.builds(wire.Suspect, name=names, incarnation=u32s, by=names),
    st.builds(wire.Dead, name=names, incarnation=u32s, by=names),
    st.builds(wire.Left, name=names, incarnation=u32s, signature=signatures),
    syncs(),
    st.builds(wire.Claim, term=u32s, name=names, priority=st.integers(0, 255), incarnation=u32s,
              counter=u32s, signature=signatures),
    st.builds(wire.Resign, term=u32s, name=names, signature=signatures),
    st.builds(wire.Handover, term=u32s, name=names, successor=names, signature=signatures),
)
message_lists = st.lists(messages, min_size=1, max_size=5)
keyrings = st.none() | st.lists(keys, min_size=1, max_size=3, unique=True)
clusters = st.text(max_size=20)


def make_keyring(raw_keys):
    return None if raw_keys is None else Keyring(raw_keys)


def seal(cluster, sender, raw_keys, msgs):
    codec = wire.Codec(cluster, sender, make_keyring(raw_keys))
    return codec.seal([wire.encode_message(m) for m in msgs])


def decoded_names(sender, msgs):
    """Every member name in a decoded datagram, as (field, name)."""
    yield "sender", sender
    for m in msgs:
        if m.type_code == wire.T_SYNC:
            for r in m.records:
                yield "record", r.name
            continue
        for field in ("name", "by", "target"):
            if field in m.fields:
                yield wire.TYPE_NAMES[m.type_code] + "." + field, getattr(m, field)


def assert_names_valid(result):
    """No decoded name holds a control character or is "*" (bar a Ping's any-target)."""
    if result is None:
        return
    for field, name in decoded_names(*result):
        if field == "Ping.target" and name == wire.ANY_TARGET:
            continue
        assert wire.name_error(name) is None, (field, name)
        assert name != "*" and not any(is_control(c) for c in name), (field, name)


def open_or_wire_error(codec, data):
    """codec.open(data), or None when it raised WireError (anything else fails the test).

    What it does accept holds only valid names.
    """
    try:
        result = codec.open(data)
    except WireError as exc:
        assert exc.reason in ("truncated", "version", "cluster", "auth", "malformed"), exc.reason
        return None
    assert_names_valid(result)
    return result


def assert_stable(result):
    """What the decoder accepted re-encodes, and decodes again to the same messages."""
    if result is None:
        return
    sender, msgs = result
    codec = wire.Codec("x", sender)
    assert codec.open(codec.seal([wire.encode_message(m) for m in msgs])) == (sender, msgs)


# --- Round trips -------------------------------------------------------------


@SETTINGS
@given(cluster=clusters, sender=names, raw_keys=keyrings, msgs=message_lists)
def test_round_trip(cluster, sender, raw_keys, msgs):
    data = seal(cluster, sender, raw_keys, msgs)
    receiver = wire.Codec(cluster, "receiver", make_keyring(raw_keys))
    assert receiver.open(data) == (sender, msgs)
    # Deterministic: the same messages seal to the same bytes.
    assert seal(cluster, sender, raw_keys, msgs) == data


@SETTINGS
@given(session=u32s, reply_wanted=st.booleans(), join=st.booleans(),
       recs=st.lists(records, max_size=40), budget=st.integers(200, 1400))
def test_sync_pages_round_trip(session, reply_wanted, join, recs, budget):
    room = budget - wire.MESSAGE_HEADER_BYTES - wire.SYNC_HEAD_BYTES
    if any(len(wire.encode_record(r)) > room for r in recs):
        # A record larger than a page is the caller's error, never a split record.
        try:
            wire.encode_sync_pages(session, reply_wanted, join, recs, budget)
        except ValueError:
            return
        raise AssertionError("a record larger than the budget was paged")
    pages = wire.encode_sync_pages(session, reply_wanted, join, recs, budget)
    codec = wire.Codec("c", "a")
    got = []
    for index, page in enumerate(pages):
        assert len(page) <= budget
        _, (sync,) = codec.open(codec.seal([page]))
        assert (sync.session, sync.reply_wanted, sync.join) == (session, reply_wanted, join)
        assert (sync.page, sync.pages) == (index, len(pages))
        got.extend(sync.records)
    assert got == recs


# --- The decoder never raises anything but WireError ---------------------------


@FUZZ_SETTINGS
@given(data=st.binary(max_size=400), raw_keys=keyrings)
def test_arbitrary_bytes_only_raise_wire_error(data, raw_keys):
    assert_stable(open_or_wire_error(wire.Codec("default", "r", make_keyring(raw_keys)), data))


@FUZZ_SETTINGS
@given(tail=st.binary(max_size=400), raw_keys=keyrings)
def test_valid_header_then_arbitrary_bytes(tail, raw_keys):
    # A correct header (and, with a keyring, a correct tag), so that the
    # message decoder, not the header check, meets the arbitrary bytes.
    codec = wire.Codec("default", "a", make_keyring(raw_keys))
    data = codec._header + tail
    if raw_keys is not None:
        data += codec.keyring.primary.tag(data)
    assert_stable(open_or_wire_error(codec, data))


mutations = st.lists(
    st.tuples(st.sampled_from(("flip", "truncate", "insert", "delete")),
              st.integers(0, 1 << 16), st.integers(0, 255), st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=4)


def mutate(data, ops):
    data = bytearray(data)
    for kind, where, bit, extra in ops:
        if not data:
            data.extend(extra)
            continue
        i = where % len(data)
        if kind == "flip":
            data[i] ^= 1 << (bit % 8)
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = extra
        else:
            del data[i:i + 1 + bit % 8]
    return bytes(data)


@FUZZ_SETTINGS
@given(msgs=message_lists, raw_keys=keyrings, ops=mutations)
def test_mutated_datagrams_only_raise_wire_error(msgs, raw_keys, ops):
    data = seal("default", "a", raw_keys, msgs)
    mutated = mutate(data, ops)
    assume(mutated != data)
    result = open_or_wire_error(wire.Codec("default", "r", make_keyring(raw_keys)), mutated)
    if raw_keys is not None:
        # Any change to an authenticated datagram is refused.
        assert result is None
    assert_stable(result)


@FUZZ_SETTINGS
@given(msgs=message_lists, raw_keys=st.lists(keys, min_size=1, max_size=2, unique=True), ops=mutations)
def test_mutated_then_resigned_only_raise_wire_error(msgs, raw_keys, ops):
    # A peer holding the key sends garbage: the tag verifies, the body must not crash us.
    codec = wire.Codec("default", "a", make_keyring(raw_keys))
    data = seal("default", "a", raw_keys, msgs)
    head = len(codec._header)
    body = mutate(data[head:-TAG_BYTES], ops)
    resigned = codec._header + body
    resigned += codec.keyring.primary.tag(resigned)
    assert_stable(open_or_wire_error(wire.Codec("default", "r", make_keyring(raw_keys)), resigned))


# --- Key rotation ----------------------------------------------------------------


@SETTINGS
@given(msgs=message_lists, ring=st.lists(keys, min_size=2, max_size=4, unique=True),
       index=st.integers(1, 3))
def test_rotation_accepts_non_primary_and_refuses_missing_key(msgs, ring, index):
    sealing_key = ring[index % len(ring)]          # never the primary ring[0]
    data = seal("default", "a", [sealing_key], msgs)
    # Installed but not primary: accepted.
    assert wire.Codec("default", "r", Keyring(ring)).open(data) == ("a", msgs)
    # Removed: refused, as authentication failure.
    without = [k for k in ring if k != sealing_key]
    try:
        wire.Codec("default", "r", Keyring(without)).open(data)
    except WireError as exc:
        assert exc.reason == "auth"
    else:
        raise AssertionError("opened without the key")


# --- The sync page check and the decoder agree ------------------------------------


def _verdict(read, data):
    try:
        return ("ok", read(data, 0, len(data))[1] if read is wire._read_member else read(data, 0, len(data)))
    except WireError as exc:
        return ("error", exc.reason)
    except UnicodeError:
        return ("error", "utf-8")


@FUZZ_SETTINGS
@given(record=records, cut=st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                                               max_size=3))
def test_skip_member_gives_read_members_verdict(record, cut, flips):
    # A sync page is checked whole with _skip_member, then decoded record by
    # record with _read_member as the node merges: the two must agree on
    # every input, or a page that passed the check could fail mid-merge.
    data = bytearray(wire.encode_record(record)[1:])
    for index, value in flips:
        if index < len(data):
            data[index] = value
    data = bytes(data[:cut] if cut < len(data) else data)
    assert _verdict(wire._skip_member, data) == _verdict(wire._read_member, data)


@SETTINGS
@given(recs=st.lists(records, min_size=1, max_size=12), skip=st.lists(st.booleans(), min_size=12, max_size=12))
def test_entries_skips_known_records_and_keeps_the_rest_intact(recs, skip):
    # Records.entries(known) jumps over the records the caller knows without
    # decoding them: what it yields must be exactly the others, decoded whole.
    page = wire.encode_sync_pages(1, False, False, recs, 1400)
    assume(len(page) == 1)
    _, (sync,) = wire.Codec("c", "a").open(wire.Codec("c", "a").seal(page))
    asked = []

    def known(name, incarnation, state):
        asked.append((name, incarnation, state))
        return skip[len(asked) - 1]

    got = list(sync.records.entries(known))
    assert asked == [(r.name, r.incarnation, r.state) for r in recs]
    expected = [((r.name, r.incarnation, r.address, r.priority, r.eligible, r.tags, r.signature), r.state)
                for r, skipped in zip(recs, skip) if not skipped]
    assert got == expected


# --- The name rule on both sides ---------------------------------------------------


def name_slots(name):
    """(slot, sender, messages) with `name` in each member-name field of the protocol in turn."""
    addr = ("10.0.0.2", 7946)
    alive = dict(incarnation=1, address=addr, priority=1, eligible=True, tags=None)
    return [
        ("sender", name, [wire.Ack(seq=1)]),
        ("PingReq.target", "a", [wire.PingReq(seq=1, target=name, address=addr)]),
        ("Alive.name", "a", [wire.Alive(name=name, **alive)]),
        ("Suspect.name", "a", [wire.Suspect(name=name, incarnation=1, by="a")]),
        ("Suspect.by", "a", [wire.Suspect(name="a", incarnation=1, by=name)]),
        ("Dead.by", "a", [wire.Dead(name="a", incarnation=1, by=name)]),
        ("Left.name", "a", [wire.Left(name=name, incarnation=1)]),
        ("Claim.name", "a", [wire.Claim(term=1, name=name, priority=1, incarnation=1, signature=b"")]),
        ("Resign.name", "a", [wire.Resign(term=1, name=name, signature=b"")]),
        ("Handover.successor", "a", [wire.Handover(term=1, name="a", successor=name, signature=b"")]),
        ("Sync.record", "a", [wire.Sync(session=1, reply_wanted=False, join=False, page=0, pages=1,
                                        records=[wire.Record(name=name, state=0, **alive)])]),
    ]


@FUZZ_SETTINGS
@given(name=any_text)
def test_encoder_accepts_exactly_the_names_name_error_accepts_and_they_decode(name):
    # One rule: the encoder refuses what name_error refuses, in every name
    # field; whatever it accepts decodes to the same name.
    try:
        name.encode("utf-8")
    except UnicodeError:
        assume(False)  # a lone surrogate: not text (name_error raises on it too)
    valid = wire.name_error(name) is None
    for slot, sender, msgs in name_slots(name):
        try:
            data = seal("c", sender, None, msgs)
        except ValueError:
            assert not valid, (slot, name)
            continue
        assert valid, (slot, name)
        assert wire.Codec("c", "r").open(data) == (sender, msgs), slot


@FUZZ_SETTINGS
@given(prefix=any_text, bad=st.sampled_from(CONTROLS) | st.just(None), suffix=any_text)
def test_decoder_refuses_control_characters_and_star_in_every_name_field(prefix, bad, suffix):
    # Written byte by byte (the encoder would refuse them): a name holding a
    # control character, or "*", is malformed wherever a member name goes.
    name = "*" if bad is None else prefix + bad + suffix
    raw = name.encode("utf-8", "surrogatepass")
    assume(1 <= len(raw) <= wire.MAX_NAME_BYTES)
    placeholder = "Q" * len(raw)
    for slot, sender, msgs in name_slots(placeholder):
        data = seal("c", sender, None, msgs)
        assert data.count(placeholder.encode()) == 1, slot
        try:
            wire.Codec("c", "r").open(data.replace(placeholder.encode(), raw))
        except WireError as exc:
            assert exc.reason == "malformed", (slot, name, exc.reason)
        else:
            raise AssertionError("decoded a name holding a control character or \"*\": %s %r" % (slot, name))


@SETTINGS
@given(seq=u32s)
def test_any_target_decodes_only_as_a_ping_target(seq):
    data = seal("c", "a", None, [wire.Ping(seq=seq, target=wire.ANY_TARGET)])
    assert wire.Codec("c", "r").open(data) == ("a", [wire.Ping(seq=seq, target="*")])
