"""Tests for agent.core.membership (run under CPython pytest and MicroPython).

Table-driven: every cell of the merge table in membership.py's module doc
(current state x update state x same / newer / older incarnation), news
about strangers, live_count bookkeeping, remove() and supersedes().
Plain functions and plain asserts only: see tests/mp_runner.py.
"""

from agent.core import membership
from agent.core.membership import (
    CONFIRMED, DIED, IGNORED, JOINED, LEFT, RECORDED, RECOVERED, SUSPECTED, UPDATED,
    MemberTable, supersedes,
)
from agent.core.wire import STATE_ALIVE, STATE_DEAD, STATE_LEFT, STATE_NAMES, STATE_SUSPECT

A, S, D, L = STATE_ALIVE, STATE_SUSPECT, STATE_DEAD, STATE_LEFT

RESULT_NAMES = {
    IGNORED: "IGNORED", JOINED: "JOINED", UPDATED: "UPDATED", RECOVERED: "RECOVERED",
    SUSPECTED: "SUSPECTED", CONFIRMED: "CONFIRMED", DIED: "DIED", LEFT: "LEFT",
    RECORDED: "RECORDED",
}

# The table of membership.py's docstring, cell by cell:
# (current state, "same" | "newer" | "older", update state, expected result).
# "update meta" is UPDATED, "RECOVER" RECOVERED, "JOIN again" JOINED,
# "confirm" CONFIRMED, "restart timer" SUSPECTED (a new suspicion).
MERGE_TABLE = [
    (A, "same", A, IGNORED), (A, "same", S, SUSPECTED), (A, "same", D, DIED), (A, "same", L, LEFT),
    (A, "newer", A, UPDATED), (A, "newer", S, SUSPECTED), (A, "newer", D, DIED), (A, "newer", L, LEFT),
    (S, "same", A, IGNORED), (S, "same", S, CONFIRMED), (S, "same", D, DIED), (S, "same", L, LEFT),
    (S, "newer", A, RECOVERED), (S, "newer", S, SUSPECTED), (S, "newer", D, DIED), (S, "newer", L, LEFT),
    (D, "same", A, IGNORED), (D, "same", S, IGNORED), (D, "same", D, IGNORED), (D, "same", L, LEFT),
    (D, "newer", A, JOINED), (D, "newer", S, SUSPECTED), (D, "newer", D, DIED), (D, "newer", L, LEFT),
    (L, "same", A, IGNORED), (L, "same", S, IGNORED), (L, "same", D, IGNORED), (L, "same", L, IGNORED),
    (L, "newer", A, JOINED), (L, "newer", S, SUSPECTED), (L, "newer", D, DIED), (L, "newer", L, LEFT),
    # "older updates are always ignored"
    (A, "older", A, IGNORED), (A, "older", S, IGNORED), (A, "older", D, IGNORED), (A, "older", L, IGNORED),
    (S, "older", A, IGNORED), (S, "older", S, IGNORED), (S, "older", D, IGNORED), (S, "older", L, IGNORED),
    (D, "older", A, IGNORED), (D, "older", S, IGNORED), (D, "older", D, IGNORED), (D, "older", L, IGNORED),
    (L, "older", A, IGNORED), (L, "older", S, IGNORED), (L, "older", D, IGNORED), (L, "older", L, IGNORED),
]

BASE_INCARNATION = 5
DELTA = {"same": 0, "newer": 1, "older": -1}
OLD_ADDRESS = ("10.0.0.1", 7946)
NEW_ADDRESS = ("10.0.0.2", 7000)
OLD_TAGS = {"zone": "a"}
NEW_TAGS = {"zone": "b"}


def _name(result):
    return RESULT_NAMES.get(result, repr(result))


def _counted_live(table):
    """live_count recomputed from the members themselves."""
    n = 0
    for name in table.members:
        if table.members[name].state <= STATE_SUSPECT:
            n += 1
    return n


def _table_with(state, incarnation=BASE_INCARNATION, name="m"):
    """A table holding one member `name` in `state`, created as a full record at t=100."""
    table = MemberTable()
    table.apply(name, incarnation, state, 100, OLD_ADDRESS, 10, True, OLD_TAGS)
    member = table.get(name)
    assert member is not None, "setup: member not created in state %s" % STATE_NAMES[state]
    assert member.state == state and member.incarnation == incarnation, "setup: %r" % (member,)
    return table


def _cell_label(current, when, update, full):
    return "%s + %s %s (%s)" % (STATE_NAMES[current], when, STATE_NAMES[update],
                                "full record" if full else "bare")


def _check_cell(current, when, update, expected, full):
    label = _cell_label(current, when, update, full)
    table = _table_with(current)
    incarnation = BASE_INCARNATION + DELTA[when]
    if full:
        got = table.apply("m", incarnation, update, 200, NEW_ADDRESS, 77, False, NEW_TAGS)
    else:
        got = table.apply("m", incarnation, update, 200)
    assert got == expected, "%s: got %s, want %s" % (label, _name(got), _name(expected))
    member = table.get("m")
    assert member is not None, "%s: member vanished" % label
    assert len(table) == 1, "%s: table size %d" % (label, len(table))
    if expected in (IGNORED, CONFIRMED):
        # Nothing changes at all.
        assert member.state == current, "%s: state changed to %s" % (label, member.state_name)
        assert member.incarnation == BASE_INCARNATION, "%s: incarnation %d" % (label, member.incarnation)
        assert member.since_ms == 100, "%s: since_ms moved to %d" % (label, member.since_ms)
        assert member.address == OLD_ADDRESS and member.priority == 10, "%s: metadata changed" % label
        assert member.eligible is True and member.tags == OLD_TAGS, "%s: metadata changed" % label
    else:
        assert member.state == update, "%s: state %s, want %s" % (
            label, member.state_name, STATE_NAMES[update])
        assert member.incarnation == incarnation, "%s: incarnation %d, want %d" % (
            label, member.incarnation, incarnation)
        want_since = 200 if update != current else 100
        assert member.since_ms == want_since, "%s: since_ms %d, want %d" % (
            label, member.since_ms, want_since)
        # Metadata comes only with a full record at a newer incarnation.
        if full and when == "newer":
            assert member.address == NEW_ADDRESS, "%s: address not updated" % label
            assert member.priority == 77 and member.eligible is False, "%s: metadata not updated" % label
            assert member.tags == NEW_TAGS, "%s: tags not updated" % label
        else:
            assert member.address == OLD_ADDRESS, "%s: address changed" % label
            assert member.priority == 10 and member.eligible is True, "%s: metadata changed" % label
            assert member.tags == OLD_TAGS, "%s: tags changed" % label
    assert table.live_count == _counted_live(table), "%s: live_count %d, members say %d" % (
        label, table.live_count, _counted_live(table))


def test_merge_table_is_complete():
    seen = {}
    for current, when, update, _ in MERGE_TABLE:
        key = (current, when, update)
        assert key not in seen, "duplicate cell %r" % (key,)
        seen[key] = True
    assert len(seen) == 4 * 3 * 4, "table has %d cells, want 48" % len(seen)


def test_merge_table_full_records():
    for current, when, update, expected in MERGE_TABLE:
        _check_cell(current, when, update, expected, True)


def test_merge_table_bare_news():
    # Suspect / dead / left messages carry no address: same transitions,
    # but metadata is never touched.
    for current, when, update, expected in MERGE_TABLE:
        _check_cell(current, when, update, expected, False)


def test_merge_table_at_incarnation_zero():
    # The same cells hold at the bottom of the range (no "older" there).
    for current, when, update, expected in MERGE_TABLE:
        if when == "older":
            continue
        table = _table_with(current, incarnation=0)
        got = table.apply("m", DELTA[when], update, 200, NEW_ADDRESS, 1, True, None)
        assert got == expected, "%s at inc 0: got %s, want %s" % (
            _cell_label(current, when, update, True), _name(got), _name(expected))


def test_much_newer_and_much_older_behave_like_newer_and_older():
    for current, when, update, expected in MERGE_TABLE:
        if when == "same":
            continue
        table = _table_with(current, incarnation=1000)
        incarnation = 1000 + (1000 if when == "newer" else -999)
        got = table.apply("m", incarnation, update, 200)
        assert got == expected, "%s by 1000: got %s, want %s" % (
            _cell_label(current, when, update, False), _name(got), _name(expected))


def test_reaching_states_through_transitions_gives_the_same_table():
    # The cells above start from a member created in its state; here the
    # current state is reached the way gossip reaches it (alive first).
    paths = {
        A: [(5, A)],
        S: [(5, A), (5, S)],
        D: [(5, A), (5, S), (5, D)],
        L: [(5, A), (5, L)],
    }
    for current, when, update, expected in MERGE_TABLE:
        table = MemberTable()
        for incarnation, state in paths[current]:
            table.apply("m", incarnation, state, 100, OLD_ADDRESS, 10, True, None)
        assert table.get("m").state == current, "path to %s" % STATE_NAMES[current]
        got = table.apply("m", 5 + DELTA[when], update, 200)
        assert got == expected, "%s via path: got %s, want %s" % (
            _cell_label(current, when, update, False), _name(got), _name(expected))


def test_suspect_confirmations_repeat():
    table = _table_with(S)
    for i in range(3):
        got = table.apply("m", BASE_INCARNATION, S, 300 + i)
        assert got == CONFIRMED, "confirmation %d: got %s" % (i, _name(got))
    assert table.get("m").since_ms == 100, "a confirmation must not restart since_ms"


def test_local_suspicion_timeout_is_dead_at_same_incarnation():
    # node.py's suspect -> dead on timeout is "dead at the same incarnation".
    table = _table_with(A)
    assert table.apply("m", BASE_INCARNATION, S, 150) == SUSPECTED, "suspect"
    assert table.apply("m", BASE_INCARNATION, D, 250) == DIED, "timeout"
    assert table.get("m").since_ms == 250, "since_ms is the time of death"
    assert table.live_count == 0, "a dead member is not live"


# --- Strangers ----------------------------------------------------------


def test_stranger_alive_creates():
    table = MemberTable()
    got = table.apply("x", 3, A, 42, OLD_ADDRESS, 9, False, OLD_TAGS)
    assert got == JOINED, "got %s" % _name(got)
    m = table.get("x")
    assert m is not None, "not created"
    assert (m.name, m.incarnation, m.state, m.address) == ("x", 3, A, OLD_ADDRESS), "%r" % (m,)
    assert (m.priority, m.eligible, m.tags, m.since_ms) == (9, False, OLD_TAGS, 42), "metadata %r" % (m,)
    assert table.live_count == 1 and len(table) == 1, "counts %d %d" % (table.live_count, len(table))


def test_stranger_suspect_full_record_creates_live():
    # A state sync can carry a stranger already suspect: it is live.
    table = MemberTable()
    got = table.apply("x", 0, S, 1, OLD_ADDRESS, 1, True, None)
    assert got == SUSPECTED, "got %s" % _name(got)
    assert table.live_count == 1, "live_count %d" % table.live_count


def test_bare_news_about_strangers_is_ignored():
    for state in (A, S, D, L):
        for incarnation in (0, 1, 7):
            table = MemberTable()
            got = table.apply("x", incarnation, state, 5)
            assert got == IGNORED, "bare %s inc %d: got %s" % (STATE_NAMES[state], incarnation, _name(got))
            assert table.get("x") is None and len(table) == 0, "bare %s created a member" % STATE_NAMES[state]
            assert table.live_count == 0, "live_count %d" % table.live_count


def test_stranger_dead_or_left_record_is_recorded():
    for state in (D, L):
        table = MemberTable()
        got = table.apply("x", 4, state, 9, OLD_ADDRESS, 3, True, None)
        assert got == RECORDED, "%s record: got %s" % (STATE_NAMES[state], _name(got))
        m = table.get("x")
        assert m is not None and m.state == state and m.incarnation == 4, "%r" % (m,)
        assert m.address == OLD_ADDRESS, "address kept"
        assert table.live_count == 0, "%s stranger counted live" % STATE_NAMES[state]
        # It then behaves as any known member in that state.
        assert table.apply("x", 4, A, 10, NEW_ADDRESS) == IGNORED, "same-incarnation alive after %s" % STATE_NAMES[state]
        assert table.apply("x", 5, A, 10, NEW_ADDRESS, 3, True, None) == JOINED, "newer alive after %s" % STATE_NAMES[state]
        assert table.get("x").address == NEW_ADDRESS, "address from the newer record"
        assert table.live_count == 1, "live again"


# --- live_count, remove -------------------------------------------------


def test_live_count_follows_every_transition():
    # A deterministic walk over many transitions of a few members; live_count
    # must always equal the count recomputed from the members.
    table = MemberTable()
    names = ("a", "b", "c", "d")
    x = 12345
    for step in range(600):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        name = names[(x >> 4) % 4]
        incarnation = (x >> 8) % 4
        state = (x >> 12) % 4
        full = (x >> 16) % 2 == 0
        if (x >> 17) % 17 == 0:
            table.remove(name)
        elif full:
            table.apply(name, incarnation, state, step, OLD_ADDRESS, 1, True, None)
        else:
            table.apply(name, incarnation, state, step)
        assert table.live_count == _counted_live(table), "step %d: live_count %d, members say %d" % (
            step, table.live_count, _counted_live(table))
        assert 0 <= table.live_count <= len(table), "step %d: live_count out of range" % step


def test_live_count_by_hand():
    table = MemberTable()
    table.apply("a", 0, A, 0, OLD_ADDRESS)
    table.apply("b", 0, A, 0, OLD_ADDRESS)
    table.apply("c", 0, D, 0, OLD_ADDRESS)
    assert table.live_count == 2, "two alive, one dead: %d" % table.live_count
    table.apply("a", 0, S, 1)
    assert table.live_count == 2, "suspect is still live: %d" % table.live_count
    table.apply("a", 0, D, 2)
    assert table.live_count == 1, "a died: %d" % table.live_count
    table.apply("a", 0, L, 3)
    assert table.live_count == 1, "dead -> left stays not live: %d" % table.live_count
    table.apply("a", 1, A, 4, OLD_ADDRESS)
    assert table.live_count == 2, "a joined again: %d" % table.live_count
    table.apply("c", 1, S, 5)
    assert table.live_count == 3, "c suspect at a newer incarnation is live: %d" % table.live_count


def test_remove():
    table = MemberTable()
    table.apply("a", 0, A, 0, OLD_ADDRESS)
    table.apply("s", 0, S, 0, OLD_ADDRESS)
    table.apply("d", 0, D, 0, OLD_ADDRESS)
    table.apply("l", 0, L, 0, OLD_ADDRESS)
    assert table.live_count == 2 and len(table) == 4, "setup"
    table.remove("d")
    assert table.live_count == 2 and len(table) == 3, "removing dead: %d %d" % (table.live_count, len(table))
    table.remove("l")
    assert table.live_count == 2 and len(table) == 2, "removing left"
    table.remove("s")
    assert table.live_count == 1 and len(table) == 1, "removing suspect"
    table.remove("a")
    assert table.live_count == 0 and len(table) == 0, "removing alive"
    table.remove("a")
    table.remove("never")
    assert table.live_count == 0 and len(table) == 0, "removing unknown names is a no-op"
    assert table.get("a") is None, "gone"
    # A removed member is a stranger again: bare news is ignored.
    assert table.apply("a", 9, D, 1) == IGNORED, "bare dead about a removed member"
    assert table.apply("a", 0, A, 1, OLD_ADDRESS) == JOINED, "full alive recreates even at an old incarnation"


# --- supersedes ---------------------------------------------------------


def test_supersedes_table():
    # (new_incarnation, new_state, incarnation, state, expected)
    table = [
        (1, A, 0, L, True),    # a higher incarnation wins whatever the states
        (1, A, 0, A, True),
        (0, L, 1, A, False),   # a lower one never does
        (0, A, 1, A, False),
        (4, S, 4, A, True),    # same incarnation: rank decides
        (4, D, 4, S, True),
        (4, L, 4, D, True),
        (4, L, 4, A, True),
        (4, A, 4, S, False),
        (4, S, 4, D, False),
        (4, D, 4, L, False),
        (4, A, 4, A, False),   # equal news does not supersede
        (4, S, 4, S, False),
        (4, D, 4, D, False),
        (4, L, 4, L, False),
        (0xFFFFFFFF, A, 0xFFFFFFFE, L, True),
    ]
    for new_inc, new_state, inc, state, expected in table:
        got = supersedes(new_inc, new_state, inc, state)
        assert got is expected, "supersedes(%d, %s, %d, %s) = %r" % (
            new_inc, STATE_NAMES[new_state], inc, STATE_NAMES[state], got)


def test_supersedes_is_a_strict_total_order():
    keys = []
    for inc in range(3):
        for state in (A, S, D, L):
            keys.append((inc, state))
    for x in keys:
        assert not supersedes(x[0], x[1], x[0], x[1]), "irreflexive at %r" % (x,)
        for y in keys:
            if x != y:
                assert supersedes(x[0], x[1], y[0], y[1]) != supersedes(y[0], y[1], x[0], x[1]), \
                    "exactly one of %r, %r supersedes the other" % (x, y)
            assert supersedes(x[0], x[1], y[0], y[1]) == (x > y), "order is lexicographic at %r %r" % (x, y)


# --- Member helpers -----------------------------------------------------


def test_member_helpers():
    table = MemberTable()
    table.apply("m", 2, S, 7, OLD_ADDRESS, 50, True, OLD_TAGS)
    m = table.get("m")
    assert m.state_name == "suspect", m.state_name
    assert m.is_live(), "suspect is live"
    copy = m.snapshot()
    table.apply("m", 2, D, 8)
    assert copy.state == S and copy.since_ms == 7, "a snapshot does not follow the table"
    assert not table.get("m").is_live(), "dead is not live"
    d = copy.as_dict()
    assert d == {"name": "m", "address": "10.0.0.1:7946", "state": "suspect", "priority": 50,
                 "eligible": True, "incarnation": 2, "tags": {"zone": "a"}}, "as_dict %r" % (d,)
    assert "suspect" in repr(copy) and "inc=2" in repr(copy), repr(copy)
    assert membership.MemberTable().get("nobody") is None, "get of an unknown name"
