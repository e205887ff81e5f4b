"""Tests for agent.core.rand (run under CPython pytest and MicroPython)."""

from agent.core import rand
from core_harness import XorShift


class Scripted:
    """An rng returning scripted values, recording the bit counts asked for."""

    def __init__(self, values):
        self.values = list(values)
        self.bits = []

    def getrandbits(self, n):
        self.bits.append(n)
        value = self.values.pop(0)
        assert 0 <= value < (1 << n), (value, n)
        return value


def raises_value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


def test_randbelow_rejection_table():
    # (n, scripted draws, expected result, expected bits per draw)
    table = [
        (2, [1], 1, 1),
        (2, [0], 0, 1),
        (3, [3, 2], 2, 2),
        (4, [3], 3, 2),
        (5, [7, 6, 5, 4], 4, 3),
        (8, [7], 7, 3),
        (9, [15, 9, 0], 0, 4),
        (1 << 30, [(1 << 30) - 1], (1 << 30) - 1, 30),
        ((1 << 30) + 1, [(1 << 31) - 1, 1 << 30], 1 << 30, 31),
        (1 << 32, [(1 << 32) - 1], (1 << 32) - 1, 32),
    ]
    for n, draws, expected, bits in table:
        rng = Scripted(draws)
        assert rand.randbelow(rng, n) == expected, (n, draws)
        assert rng.values == [], (n, draws)
        assert rng.bits == [bits] * len(draws), (n, rng.bits)


def test_randbelow_one_uses_no_randomness():
    rng = Scripted([])
    assert rand.randbelow(rng, 1) == 0
    assert rng.bits == []


def test_randbelow_rejects_bad_bounds():
    rng = XorShift(1)
    for n in (0, -1, -100, (1 << 32) + 1):
        assert raises_value_error(rand.randbelow, rng, n), n


def test_randbelow_range_and_uniformity():
    rng = XorShift(12345)
    for n in (1, 2, 3, 5, 7, 10, 100, 1000, 1 << 20, (1 << 30) + 3):
        for _ in range(200):
            value = rand.randbelow(rng, n)
            assert 0 <= value < n, (n, value)
    counts = [0] * 6
    for _ in range(6000):
        counts[rand.randbelow(rng, 6)] += 1
    for count in counts:
        assert 850 < count < 1150, counts


def test_shuffle_scripted():
    # i = 3: randbelow(4) -> 0 swaps items[3] and items[0];
    # i = 2: randbelow(3) -> 2 keeps; i = 1: randbelow(2) -> 0 swaps 1 and 0.
    items = ["a", "b", "c", "d"]
    rng = Scripted([0, 2, 0])
    assert rand.shuffle(rng, items) is None
    assert items == ["b", "d", "c", "a"], items
    assert rng.bits == [2, 2, 1]


def test_shuffle_small_lists():
    rng = XorShift(7)
    for items in ([], [1]):
        copy = list(items)
        rand.shuffle(rng, copy)
        assert copy == items
    assert rng.calls == 0


def test_shuffle_is_a_permutation():
    rng = XorShift(99)
    items = list(range(50))
    rand.shuffle(rng, items)
    assert sorted(items) == list(range(50))
    assert items != list(range(50))


def test_shuffle_uniform_over_permutations():
    rng = XorShift(2024)
    counts = {}
    for _ in range(6000):
        items = [0, 1, 2]
        rand.shuffle(rng, items)
        key = tuple(items)
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6, counts
    for key in counts:
        assert 850 < counts[key] < 1150, counts


def test_sample_sizes_table():
    # (population size, k, expected length)
    table = [
        (0, 0, 0), (0, 3, 0), (5, 0, 0), (5, 1, 1), (5, 5, 5), (5, 9, 5),
        (10, 2, 2), (10, 3, 3), (100, 24, 24), (100, 25, 25), (100, 100, 100),
        (1000, 3, 3),
    ]
    rng = XorShift(5)
    for n, k, length in table:
        items = list(range(n))
        out = rand.sample(rng, items, k)
        assert len(out) == length, (n, k, out)
        assert len(set(out)) == length, (n, k, out)
        for value in out:
            assert 0 <= value < n
        assert items == list(range(n)), "sample must not modify its input"


def test_sample_whole_population_is_a_permutation():
    rng = XorShift(31)
    out = rand.sample(rng, list(range(20)), 20)
    assert sorted(out) == list(range(20))


def test_sample_rejects_negative_k():
    assert raises_value_error(rand.sample, XorShift(1), [1, 2, 3], -1)


class Indexable:
    """A sequence that counts element reads and refuses to be iterated (copied)."""

    def __init__(self, n):
        self.n = n
        self.reads = 0

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index < 0 or index >= self.n:
            raise IndexError(index)
        self.reads += 1
        return index

    def __iter__(self):
        raise AssertionError("sample copied a large population")


def test_sample_small_k_does_not_copy():
    rng = XorShift(77)
    population = Indexable(100000)
    out = rand.sample(rng, population, 5)
    assert len(out) == 5 and len(set(out)) == 5
    assert population.reads == 5
    assert rng.calls < 20, rng.calls


def test_sample_is_uniform():
    # Both paths: k * 4 < n (rejection) and k * 4 >= n (partial Fisher-Yates).
    for n, k in ((12, 2), (8, 4)):
        rng = XorShift(n * 1000 + k)
        counts = [0] * n
        firsts = [0] * n
        rounds = 4000
        for _ in range(rounds):
            out = rand.sample(rng, list(range(n)), k)
            firsts[out[0]] += 1
            for value in out:
                counts[value] += 1
        expected = rounds * k // n
        for count in counts:
            assert expected * 85 // 100 < count < expected * 115 // 100, (n, k, counts)
        expected_first = rounds // n
        for count in firsts:
            assert expected_first * 75 // 100 < count < expected_first * 125 // 100, (n, k, firsts)
