"""Random helpers over an injected rng that offers only getrandbits(n), n <= 32.

The core never imports ``random``: MicroPython's has no shuffle or choice and
some builds lack randrange. Every helper here consumes randomness only through
``rng.getrandbits(n)`` with 1 <= n <= 32, so a seeded ``random.Random`` on
CPython, ``random`` on a board, or a test's fake all drive the same code.
"""

# Largest bound randbelow accepts: getrandbits is called with at most 32 bits.
MAX_BOUND = 1 << 32


def _bit_length(value):
    # int.bit_length is missing on MicroPython.
    bits = 0
    while value:
        value >>= 1
        bits += 1
    return bits


def randbelow(rng, n):
    """A uniformly random int in [0, n), by rejection sampling of getrandbits."""
    if n <= 0:
        raise ValueError("randbelow: n must be positive, got %r" % (n,))
    if n > MAX_BOUND:
        raise ValueError("randbelow: n must be at most 2**32, got %r" % (n,))
    if n == 1:
        return 0
    # The smallest k with 2**k >= n: each draw is accepted with probability
    # above one half, so the expected number of draws is below two.
    bits = _bit_length(n - 1)
    value = rng.getrandbits(bits)
    while value >= n:
        value = rng.getrandbits(bits)
    return value


def shuffle(rng, items):
    """Shuffles the list `items` in place (Fisher-Yates); returns None."""
    i = len(items) - 1
    while i > 0:
        j = randbelow(rng, i + 1)
        items[i], items[j] = items[j], items[i]
        i -= 1


def sample(rng, items, k):
    """A list of min(k, len(items)) distinct elements of `items`, in random order.

    Distinct means distinct positions: equal values at two positions may both
    be drawn. Expected O(k) when k is small against len(items), O(len(items))
    otherwise.
    """
    if k < 0:
        raise ValueError("sample: k must not be negative, got %r" % (k,))
    n = len(items)
    if k > n:
        k = n
    if k == 0:
        return []
    if k * 4 < n:
        # Few out of many: draw positions and reject repeats. With k < n / 4
        # a draw repeats with probability below 1/4, so no copy of `items`.
        chosen = {}
        out = []
        while len(out) < k:
            index = randbelow(rng, n)
            if index not in chosen:
                chosen[index] = True
                out.append(items[index])
        return out
    # Partial Fisher-Yates on a copy: the first k slots end up a uniform sample.
    pool = list(items)
    for i in range(k):
        j = i + randbelow(rng, n - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]
