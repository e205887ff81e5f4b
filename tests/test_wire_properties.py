"""Property tests of agent.core.wire (CPython only, hypothesis).

Round trips of arbitrary valid messages through Codec.seal / Codec.open, with
and without a keyring; the decoder fuzzed with arbitrary and mutated
datagrams, where WireError is the only exception allowed; key rotation.
The byte-exact reference is tests/vectors/wire_v1.json (tests/core/test_wire.py).
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


names = text_of_bytes(1, wire.MAX_NAME_BYTES)
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
                eligible=st.booleans(), tags=tag_maps)


records = st.builds(wire.Record, state=st.integers(0, 3), **member_fields())


@st.composite
def syncs(draw):
    pages = draw(st.integers(1, 255))
    return wire.Sync(session=draw(u32s), reply_wanted=draw(st.booleans()), join=draw(st.booleans()),
                     page=draw(st.integers(0, pages - 1)), pages=pages,
                     records=draw(st.lists(records, max_size=4)))


messages = st.one_of(
    st.builds(wire.Ping, seq=u32s, target=names),
    st.builds(wire.Ack, seq=u32s),
    st.builds(wire.Nack, seq=u32s),
    st.builds(wire.PingReq, seq=u32s, target=names, address=addresses),
    st.builds(wire.Alive, **member_fields()),
    st.builds(wire.Suspect, name=names, incarnation=u32s, by=names),
    st.builds(wire.Dead, name=names, incarnation=u32s, by=names),
    st.builds(wire.Left, name=names, incarnation=u32s),
    syncs(),
    st.builds(wire.Claim, term=u32s, name=names, priority=st.integers(0, 255), incarnation=u32s,
              signature=signatures),
    st.builds(wire.Resign, term=u32s, name=names, signature=signatures),
)
message_lists = st.lists(messages, min_size=1, max_size=5)
keyrings = st.none() | st.lists(keys, min_size=1, max_size=3, unique=True)
clusters = st.text(max_size=20)


def make_keyring(raw_keys):
    return None if raw_keys is None else Keyring(raw_keys)


def seal(cluster, sender, raw_keys, msgs):
    codec = wire.Codec(cluster, sender, make_keyring(raw_keys))
    return codec.seal([wire.encode_message(m) for m in msgs])


def open_or_wire_error(codec, data):
    """codec.open(data), or None when it raised WireError (anything else fails the test)."""
    try:
        return codec.open(data)
    except WireError as exc:
        assert exc.reason in ("truncated", "version", "cluster", "auth", "malformed"), exc.reason
        return None


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
    expected = [((r.name, r.incarnation, r.address, r.priority, r.eligible, r.tags), r.state)
                for r, skipped in zip(recs, skip) if not skipped]
    assert got == expected
