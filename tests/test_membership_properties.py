"""Properties of the membership merge rule (CPython only: hypothesis).

The theory in agent/core/membership.py: the table keeps, per member, the news
with the greatest (incarnation, rank), so merging is taking a maximum and the
order of arrival does not matter. Checked here over any multiset of full
records, whose address and metadata are a function of (name, incarnation)
as they are in a real cluster (only the member itself publishes metadata, and
it bumps its incarnation when it does).
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.membership import CONFIRMED, IGNORED, MemberTable
from agent.core.wire import STATE_SUSPECT

NAMES = ("a", "b", "c", "d")


def metadata(name, incarnation):
    """(address, priority, eligible, tags): a deterministic function of (name, incarnation)."""
    index = NAMES.index(name)
    address = ("10.0.%d.%d" % (index, incarnation), 7000 + incarnation)
    priority = (index * 37 + incarnation * 11) % 256
    eligible = (index + incarnation) % 2 == 0
    tags = {"v": "%s%d" % (name, incarnation)} if incarnation % 3 else None
    return address, priority, eligible, tags


def record_strategy():
    return st.tuples(st.sampled_from(NAMES), st.integers(0, 5), st.integers(0, 3))


def apply_record(table, record, now):
    name, incarnation, state = record
    address, priority, eligible, tags = metadata(name, incarnation)
    return table.apply(name, incarnation, state, now, address, priority, eligible, tags)


def merge(records):
    table = MemberTable()
    for now, record in enumerate(records):
        apply_record(table, record, now)
    return table


def view(table):
    """The table without arrival times: name -> (incarnation, state, address, priority, eligible, tags)."""
    out = {}
    for name, m in table.members.items():
        out[name] = (m.incarnation, m.state, m.address, m.priority, m.eligible, m.tags)
    return out


def expected_view(records):
    """The model: per name, the record with the greatest (incarnation, state)."""
    best = {}
    for name, incarnation, state in records:
        if name not in best or (incarnation, state) > best[name]:
            best[name] = (incarnation, state)
    out = {}
    for name, (incarnation, state) in best.items():
        address, priority, eligible, tags = metadata(name, incarnation)
        out[name] = (incarnation, state, address, priority, eligible, tags)
    return out


def live_of(table):
    return sum(1 for m in table.members.values() if m.state <= STATE_SUSPECT)


@settings(max_examples=300, deadline=None)
@given(st.lists(record_strategy(), max_size=30), st.randoms(use_true_random=False))
def test_merge_is_order_independent(records, rnd):
    permuted = list(records)
    rnd.shuffle(permuted)
    in_sorted_order = merge(sorted(records))
    in_random_order = merge(permuted)
    assert view(in_random_order) == view(in_sorted_order), (permuted, sorted(records))
    assert view(in_sorted_order) == expected_view(records)
    assert in_random_order.live_count == in_sorted_order.live_count == live_of(in_sorted_order)


@settings(max_examples=300, deadline=None)
@given(st.lists(record_strategy(), max_size=20), record_strategy())
def test_applying_a_record_twice_is_idempotent(records, record):
    table = merge(records)
    apply_record(table, record, 1000)
    once = view(table)
    live_once = table.live_count
    since_once = {name: m.since_ms for name, m in table.members.items()}
    result = apply_record(table, record, 2000)
    assert result in (IGNORED, CONFIRMED), result
    assert view(table) == once
    assert table.live_count == live_once
    assert {name: m.since_ms for name, m in table.members.items()} == since_once
