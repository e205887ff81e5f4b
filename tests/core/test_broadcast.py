"""Tests for agent.core.broadcast (run under CPython pytest and MicroPython)."""

from agent.core.broadcast import BroadcastQueue, retransmit_limit
from core_harness import XorShift


def test_retransmit_limit_table():
    # (retransmit_mult, members, limit): mult * ceil(log10(n + 1)), n = 0 as 1
    table = [
        (4, 0, 4), (4, 1, 4), (4, 2, 4), (4, 9, 4),
        (4, 10, 8), (4, 11, 8), (4, 99, 8),
        (4, 100, 12), (4, 999, 12),
        (4, 1000, 16), (4, 9999, 16), (4, 10000, 20),
        (1, 0, 1), (1, 5, 1), (1, 50, 2), (3, 500, 9), (2, 123456, 12),
    ]
    for mult, n, limit in table:
        assert retransmit_limit(mult, n) == limit, (mult, n, retransmit_limit(mult, n))


def test_empty_queue():
    q = BroadcastQueue()
    assert len(q) == 0
    assert q.get_broadcasts(1400, 10, 4) == []
    assert q.pending_for("a") is None
    assert q.transmits_for("a") is None
    assert q.remove("a") is False


def test_enqueue_replaces_by_key():
    q = BroadcastQueue()
    q.enqueue("a", b"a-1")
    q.enqueue("b", b"b-1")
    assert len(q) == 2
    # Send "a" once, then replace it: the replacement starts at 0 transmits.
    assert q.get_broadcasts(3, 1, 4) == [b"b-1"]
    assert q.get_broadcasts(3, 1, 4) == [b"a-1"]
    assert q.transmits_for("a") == 1
    q.enqueue("a", b"a-2")
    assert len(q) == 2
    assert q.pending_for("a") == b"a-2"
    assert q.transmits_for("a") == 0
    out = q.get_broadcasts(1400, 1, 4)
    assert out == [b"a-2", b"b-1"], out
    # The old payload is never handed out again.
    for _ in range(10):
        assert b"a-1" not in q.get_broadcasts(1400, 1, 4)


def test_replace_untransmitted_entry():
    q = BroadcastQueue()
    q.enqueue("a", b"old")
    q.enqueue("b", b"b")
    q.enqueue("a", b"new")
    assert len(q) == 2
    # "a" is now the newest.
    assert q.get_broadcasts(1400, 1, 1) == [b"new", b"b"]
    assert len(q) == 0


def test_order_newest_first_among_equals():
    q = BroadcastQueue()
    for name in ("a", "b", "c", "d"):
        q.enqueue(name, name.encode())
    assert q.get_broadcasts(1400, 1, 4) == [b"d", b"c", b"b", b"a"]


def test_order_fewest_transmits_first():
    q = BroadcastQueue()
    q.enqueue("a", b"a")
    q.enqueue("b", b"b")
    q.enqueue("c", b"c")
    # One byte at a time: c, then b (c now has 1 transmit).
    assert q.get_broadcasts(1, 1, 4) == [b"c"]
    assert q.get_broadcasts(1, 1, 4) == [b"b"]
    q.enqueue("d", b"d")
    # (limit, expected): untransmitted first (d newer than a), then by
    # count, newest first among equals.
    steps = [
        (1, [b"d"]),
        (1, [b"a"]),
        (2, [b"d", b"c"]),
        (4, [b"b", b"a", b"d", b"c"]),
    ]
    for limit, expected in steps:
        got = q.get_broadcasts(limit, 1, 4)
        assert got == expected, (limit, got, expected)
    assert q.transmits_for("a") == 2
    assert q.transmits_for("b") == 2
    assert q.transmits_for("c") == 3
    assert q.transmits_for("d") == 3


def test_order_by_seq_after_mixed_moves():
    # Entries reach bucket 1 out of seq order; they must still come out newest first.
    q = BroadcastQueue()
    for i in range(6):
        q.enqueue("k%d" % i, bytes([65 + i]))  # b"A" .. b"F"
    assert q.get_broadcasts(2, 1, 4) == [b"F", b"E"]
    assert q.get_broadcasts(2, 1, 4) == [b"D", b"C"]
    q.enqueue("k6", b"G")
    assert q.get_broadcasts(2, 1, 4) == [b"G", b"B"]
    assert q.get_broadcasts(1, 1, 4) == [b"A"]
    # All now at one transmit.
    assert q.get_broadcasts(1400, 1, 4) == [b"G", b"F", b"E", b"D", b"C", b"B", b"A"]


def test_removed_after_exactly_retransmit_limit():
    # (retransmit_mult, members): the item must be handed out exactly limit times.
    for mult, n in ((1, 1), (2, 5), (4, 9), (4, 10), (3, 150), (1, 0)):
        limit = retransmit_limit(mult, n)
        q = BroadcastQueue()
        q.enqueue("x", b"payload")
        sent = 0
        for _ in range(limit + 5):
            out = q.get_broadcasts(1400, n, mult)
            if not out:
                break
            assert out == [b"payload"]
            sent += 1
        assert sent == limit, (mult, n, sent, limit)
        assert len(q) == 0
        assert q.pending_for("x") is None


def test_shrinking_limit_drops_over_sent_items():
    q = BroadcastQueue()
    q.enqueue("x", b"x")
    for _ in range(5):
        assert q.get_broadcasts(100, 1000, 4) == [b"x"]
    # The cluster shrank: limit 4 is already passed; one last send, then gone.
    assert q.get_broadcasts(100, 1, 4) == [b"x"]
    assert len(q) == 0


def test_size_limit_respected():
    q = BroadcastQueue()
    for i in range(100):
        q.enqueue("m%d" % i, b"x" * (30 + i % 31))
    for limit in (0, 1, 29, 30, 60, 61, 500, 1300):
        copy = BroadcastQueue()
        for i in range(100):
            copy.enqueue("m%d" % i, b"x" * (30 + i % 31))
        out = copy.get_broadcasts(limit, 100, 4)
        total = 0
        for payload in out:
            total += len(payload)
        assert total <= limit, (limit, total)
        if limit >= 60:
            assert total > limit - 60, (limit, total)
    # Overhead per item counts against the limit too.
    out = q.get_broadcasts(100, 100, 4, overhead_bytes=10)
    total = 0
    for payload in out:
        total += len(payload) + 10
    assert 0 < total <= 100, total


def test_skips_too_large_item_for_smaller_ones():
    q = BroadcastQueue()
    q.enqueue("small-old", b"s" * 10)
    q.enqueue("big", b"B" * 100)
    q.enqueue("small-new", b"t" * 20)
    out = q.get_broadcasts(50, 1, 4)
    assert out == [b"t" * 20, b"s" * 10], out
    assert q.transmits_for("big") == 0
    assert q.transmits_for("small-new") == 1
    # Once there is room the big one goes first (fewest transmits), then
    # the 20-byte one is skipped and the older 10-byte one still fits.
    out = q.get_broadcasts(110, 1, 4)
    assert out == [b"B" * 100, b"s" * 10], out


def test_item_larger_than_limit_is_never_sent():
    q = BroadcastQueue()
    q.enqueue("big", b"B" * 2000)
    for _ in range(3):
        assert q.get_broadcasts(1400, 1, 4) == []
    assert len(q) == 1


def test_skip_budget_bounds_the_scan():
    q = BroadcastQueue(max_skips=3)
    q.enqueue("tiny", b"t")
    for i in range(10):
        q.enqueue("big%d" % i, b"B" * 100)
    # Ten big ones newer than the tiny one: the budget runs out first.
    assert q.get_broadcasts(50, 1, 4) == []
    q = BroadcastQueue(max_skips=10)
    q.enqueue("tiny", b"t")
    for i in range(10):
        q.enqueue("big%d" % i, b"B" * 100)
    assert q.get_broadcasts(50, 1, 4) == [b"t"]


def test_remove_and_clear():
    q = BroadcastQueue()
    q.enqueue("a", b"a")
    q.enqueue("b", b"b")
    q.enqueue("c", b"c")
    assert q.get_broadcasts(1, 1, 4) == [b"c"]
    assert q.remove("c") is True
    assert q.remove("a") is True
    assert q.remove("a") is False
    assert len(q) == 1
    assert q.pending_for("a") is None
    assert q.get_broadcasts(1400, 1, 4) == [b"b"]
    q.clear()
    assert len(q) == 0
    assert q.get_broadcasts(1400, 1, 4) == []
    q.enqueue("a", b"again")
    assert q.get_broadcasts(1400, 1, 4) == [b"again"]


class ReferenceQueue:
    """A slow, obviously right model: sort everything on every call."""

    def __init__(self):
        self.items = {}
        self.seq = 0

    def enqueue(self, key, payload):
        self.seq += 1
        self.items[key] = [self.seq, payload, 0]

    def get_broadcasts(self, limit_bytes, limit):
        order = []
        for key in self.items:
            seq, payload, transmits = self.items[key]
            order.append((transmits, -seq, key))
        order.sort()
        out = []
        remaining = limit_bytes
        for transmits, negseq, key in order:
            item = self.items[key]
            if len(item[1]) <= remaining:
                remaining -= len(item[1])
                out.append(item[1])
                item[2] += 1
                if item[2] >= limit:
                    del self.items[key]
        return out


def test_matches_reference_model():
    rng = XorShift(4242)
    q = BroadcastQueue(max_skips=1000000)
    ref = ReferenceQueue()
    for step in range(600):
        action = rng.getrandbits(2)
        if action < 3:
            key = "k%d" % rng.getrandbits(5)
            payload = (key + ":%d:" % step).encode() + b"p" * rng.getrandbits(4)
            q.enqueue(key, payload)
            ref.enqueue(key, payload)
        else:
            limit_bytes = 20 + rng.getrandbits(6)
            got = q.get_broadcasts(limit_bytes, 5, 2)
            expected = ref.get_broadcasts(limit_bytes, retransmit_limit(2, 5))
            assert got == expected, (step, got, expected)
        assert len(q) == len(ref.items), step
