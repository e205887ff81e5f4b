"""Ed25519 (RFC 8032) signatures in pure Python, for CPython and MicroPython.

``verify(public_key, message, signature)`` and ``sign(seed, message)`` are
one call each; ``Verifier`` and ``Signer`` do the same work in slices, so a
board's event loop can keep answering pings while a claim is checked::

    v = Verifier(public_key, message, signature)
    while (ok := v.step(8)) is None:
        await asyncio.sleep(0)

``step(budget)`` returns None until the work is done, then the result (and
the ``done`` attribute is True). The work is a generator that yields the
cost, in units, of its next item before running it; a slice runs whole
items until the next would exceed the budget, and always at least one. A
unit is about one point doubling (seven or eight field products: about
10 us on the x86 unix port, most of a millisecond on a board):

- one bit position of the scalar multiplication: 1 unit for its doubling
  plus 1 for each point addition there (at most 3);
- eight squarings of an exponentiation: 1 unit;
- a table of odd multiples, or the recoding of a scalar: 5 units;
- a quarter of a SHA-512 block (20 rounds): 12 units, as a block costs
  about 48 doublings in pure Python on a 32-bit board.

A verification of a short message is about 550 units (65 slices of 8),
signing about 540 (and as much again to expand a new seed).

Built for a small heap (boards with tens of KB free): no tables at import,
few functions and names (on MicroPython, loaded from .mpy, each function
costs 100 bytes or more and each new name about 30), and a verification
keeps a few KB alive between slices. Theory of operation:

- Field elements are ints mod P = 2**255 - 19, reduced with ``%`` after
  every product; sums and differences are not reduced (they only feed the
  next product, and ``%`` of a negative int is positive in MicroPython as
  in CPython). Folding (2**255 = 19 mod P) instead of ``%`` is a few
  percent faster here but twice the bytecode, and makes more garbage.
  A remainder kept in a table is copied (``| 0``) into an int of its own
  size: MicroPython's ``%`` leaves it in a buffer as long as the dividend.
- SHA-512 is always the pure, sliced code of sha512.py (``sha512_work``),
  even where hashlib has it, so that hashing never blocks for long.
- Points are extended twisted Edwards coordinates [X, Y, Z, T] (a list,
  updated in place) with x = X/Z, y = Y/Z, xy = T/Z (Hisil, Wong, Carter,
  Dawson 2008), a = -1, in the shape of the ref10 code: a doubling is four
  squarings and three products, an addition of a "cached" point
  (Y + X, Y - X, 2d T, 2Z) eight products (``_point``), and T is only
  computed when an addition comes next.
- Scalar multiplication (``_multiply``) runs left to right over signed
  digits, one bit position at a time: double, then add each scalar's digit
  there times its point, from a table of the point's odd multiples 1, 3, 5
  and 7 (4 cached points, built per call with 4 additions: the addition
  law is complete, so Q + Q gives 2Q; a negative digit adds the negated
  entry, which is free). Verification recodes S and k as width-4 NAFs (a
  nonzero digit, odd and in -7..7, at about one position in five) and
  runs both over the same doublings (Straus): [S]B + [k](-A) costs about
  253 doublings and 100 additions. There are no precomputed tables: each
  call builds B's 4 points again, and the two tables are most of what a
  verification keeps alive between slices.
- Signing multiplies B only, with a regular recoding: an odd scalar (r or
  r + L) is 85 odd digits in -7..7, one at every third position, so the
  sequence of point operations is the same for every secret scalar. That
  is not constant time -- Python's big ints are not -- so a board that
  signs leaks more timing than OpenSSL does. The last seed's expansion
  (secret scalar, prefix, public key) is kept: a board signs with one key.
- Verification is cofactorless, as in RFC 8032 section 5.1.7 and OpenSSL:
  it computes [S]B - [k]A, encodes the result (one inversion) and compares
  the bytes with R; comparing encodings also rejects an R whose y is not
  canonical. S >= L and a public key that does not decode (y >= P, x**2
  with no root, x = 0 with the sign bit set) give False. (OpenSSL accepts a
  public key whose y is P or P + 1, reducing it; RFC 8032 and this module
  do not.) The decoded point -A of the last ``KEY_CACHE_SIZE`` public keys
  is kept (two ints: about 200 bytes a key on the 64-bit unix port): a
  repeated key skips the square root, an exponentiation (about 35 units).
- Inversion and the square root use the ref10 addition chain (about 254
  squarings and 12 products; ``_POW``), in slices, instead of ``pow``
  (one long call).

Not for MicroPython's sake only: nothing here reads a clock or randomness.
"""

try:
    from sha512 import sha512_work, _run
except ImportError:  # imported as part of a package (not the board layout)
    from .sha512 import sha512_work, _run

P = 2 ** 255 - 19
# The order of the base point.
L = 2 ** 252 + 27742317777372353535851937790883648493
# d = -121665 / 121666 mod P.
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
# A square root of -1 mod P: 2 ** ((P - 1) / 4).
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
# The base point: y = 4/5, x the even root.
BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202
BASE_Y = 46316835694926478169428394003475163141307993866256225615783033603165251855960

PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64

# How many public keys' decoded points verification keeps (a module
# attribute a board may lower; 0 keeps none).
KEY_CACHE_SIZE = 4

# The exponentiation program of _power: pairs (n, i) meaning "square n
# times, then multiply by saved value i" (value 0 is z, value j the result
# of pair j). Pairs 1-10 are the ref10 chain to z**(2**250 - 1) through
# z**(2**k - 1) for k = 2, 4, 5, 10, 20, 40, 50, 100, 200, 250; the first
# 11 pairs (22 bytes) make z**(2**252 - 3) = z**((P - 5) / 8), the
# square-root candidate of RFC 8032 section 5.1.3; all 12 (24 bytes)
# z**(2**255 - 21) = z**(P - 2) = 1/z.
_POW = b"\x01\x00\x02\x01\x01\x00\x05\x03\x0a\x04\x14\x05\x0a\x04\x32\x07\x64\x08\x32\x07\x02\x00\x03\x01"


def _power(value, stop):
    """Work generator: returns value ** e mod P, e given by the first stop bytes of _POW.

    Eight squarings are a unit.
    """
    p = P
    saved = [value]
    r = value
    for i in range(0, stop, 2):
        n = _POW[i]
        while n > 0:
            yield 1
            for _ in range(n if n < 8 else 8):
                r = r * r % p
            n -= 8
        r = r * saved[_POW[i + 1]] % p
        saved.append(r | 0)             # | 0: see _multiply
    return r


def _point(v, s, n, t):
    """Adds to the point v = [X, Y, Z, T] (updated in place) an entry of the table s.

    s holds cached points, 4 ints each (the odd multiples 1, 3, 5, 7 of a
    point), and n is a digit d in -7..7, odd, as d & 15: n > 8 adds the
    negation of the entry for -d. T is only computed when t is true (else
    it is 0).
    """
    p = P
    X, Y, Z, T = v
    i = (16 - n if n > 8 else n) >> 1 << 2
    a = s[i]
    b = s[i + 1]
    c = s[i + 2]
    d = s[i + 3]
    if n > 8:
        # -(x, y) = (-x, y): y + x and y - x swap, 2d xy changes sign.
        a, b = b, a
    a = (Y + X) * a % p
    b = (Y - X) * b % p
    c = T * c % p
    d = Z * d % p
    x1 = a - b
    y1 = a + b
    if n > 8:
        z1 = d - c
        t1 = d + c
    else:
        z1 = d + c
        t1 = d - c
    v[0] = x1 * t1 % p
    v[1] = y1 * z1 % p
    v[2] = z1 * t1 % p
    v[3] = x1 * y1 % p if t else 0


def _multiply(s, n, v):
    """Work generator: returns the 32-byte encoding of [s]B + [n]V, V = v = (x, y) affine.

    With v None it is [s]B alone (signing), by the regular recoding. Each
    scalar (0 <= scalar < 2**254) is recoded into signed digits d[i] (odd,
    in -7..7, stored as d & 15; 0 for none) with scalar = sum d[i] 2**i.
    NAF: at the lowest set bit of n, d = n mod 16 (in -7..7), which makes
    n - d 0 mod 16, so the next three digits are 0. Regular (n odd): d =
    (n - 8) mod 16 (in -7..7), which makes n - d 8 mod 16, so n is odd again
    three bits up: one digit at each of 0, 3, ..., 249, and what is left at
    252 is odd and below 8 (as n < 2**254).
    """
    p = P
    if v is None:
        s %= L
        if not s & 1:
            s += L
        terms = ((s, BASE_X, BASE_Y),)
    else:
        terms = ((s, BASE_X, BASE_Y), (n, v[0], v[1]))
    tables = []
    digits = bytearray(256)
    for n, x, y in terms:
        yield 5
        # The cached points Q, 3Q, 5Q, 7Q (the addition law is complete:
        # Q + Q is 2Q), then the digits, in the low nibbles of digits for
        # the first term and in the high ones for the second.
        q = [x, y, 1, x * y % p]
        e = list(q)
        table = []
        for j in range(5):
            # "| 0" copies a remainder into an int of its own size: on
            # MicroPython, % leaves it in a buffer as long as the dividend
            # (twice the size, for a product), and the tables stay alive.
            c = [(q[1] + q[0]) % p | 0, (q[1] - q[0]) % p | 0, 2 * D * q[3] % p | 0, 2 * q[2] % p | 0]
            if j == 1:
                two = c                     # q is 2Q; e is Q
                q = e
            else:
                table += c                  # Q, 3Q, 5Q, 7Q
            if j == 0:
                _point(q, table, 1, 1)      # 2Q
            elif j < 4:
                _point(q, two, 1, 1)        # 3Q, 5Q, 7Q
        tables.append(table)
        table = two = e = c = None
        yield 5
        shift = 4 * len(tables) - 4
        bias = 7 if v else 15
        skip = 4 if v else 3
        i = 0
        while n and (v or i < 252):
            if n & 1:
                d = ((n + bias) & 15) - 7
                n = (n - d) >> skip
                digits[i] |= (d & 15) << shift
                i += skip
            else:
                n >>= 1
                i += 1
        if n:
            digits[i] = n                   # regular: the top digit, at 252
    q = [0, 1, 1, 0]
    for i in range(255, -1, -1):
        w = digits[i]
        yield 1 + (w & 15 > 0) + (w > 15)
        # Doubling: 2(X : Y : Z), T only if an addition follows.
        X, Y, Z, T = q
        a = X * X % p
        b = Y * Y % p
        c = Z * Z % p * 2
        e = X + Y
        e = e * e % p
        y1 = b + a
        z1 = b - a
        x1 = e - y1
        t1 = c - z1
        q[0] = x1 * t1 % p
        q[1] = y1 * z1 % p
        q[2] = z1 * t1 % p
        if w:
            q[3] = x1 * y1 % p
            if w & 15:
                _point(q, tables[0], w & 15, w > 15)
            if w > 15:
                _point(q, tables[1], w >> 4, 0)
    tables = None
    z = yield from _power(q[2], 24)         # 1/Z
    x = q[0] * z % p
    return (q[1] * z % p | (x & 1) << 255).to_bytes(32, "little")


def _bytes(value, length, name):
    """value as bytes if it is bytes-like of that length (any length when None), else None.

    TypeError if it is not bytes-like (name says which argument).
    """
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("%s must be bytes, got %s" % (name, type(value).__name__))
    value = bytes(value)
    if length is not None and len(value) != length:
        return None
    return value


# --- Verification -----------------------------------------------------

# public key -> its decoded point, negated: (-x, y).
_keys = {}


def _verify(public_key, message, signature):
    """Work generator: returns whether signature is a valid Ed25519 signature of message by public_key."""
    public_key = _bytes(public_key, PUBLIC_KEY_BYTES, "public_key")
    message = _bytes(message, None, "message")
    signature = _bytes(signature, SIGNATURE_BYTES, "signature")
    if public_key is None or signature is None:
        return False
    yield 1
    p = P
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    minus_a = _keys.get(public_key)
    if minus_a is None:
        # Decode A (RFC 8032 section 5.1.3): x**2 = u / v with u = y**2 - 1,
        # v = d y**2 + 1; the candidate root is x = u v**3 (u v**7) ** ((P - 5) / 8).
        y = int.from_bytes(public_key, "little")
        odd = y >> 255
        y &= p + 18
        if y >= p:
            return False
        x = y * y % p
        u = (x - 1) % p
        v = (D * x + 1) % p
        v3 = v * v % p * v % p
        x = yield from _power(u * (v3 * v3 % p * v % p) % p, 22)
        x = u * v3 % p * x % p
        check = v * (x * x % p) % p
        if check != u:
            if check != p - u:
                return False
            x = x * SQRT_M1 % p
        if x == 0 and odd:
            return False
        if (x & 1) == odd:
            # x is A's: -A has the other root.
            x = (p - x) % p
        minus_a = (x | 0, y)
        x = u = v = v3 = check = None
        if len(_keys) >= KEY_CACHE_SIZE:
            # MicroPython dicts have no order to evict by: start afresh.
            _keys.clear()
        if KEY_CACHE_SIZE > 0:
            _keys[public_key] = minus_a
    digest = yield from sha512_work(signature[:32] + public_key + message, 12)
    k = int.from_bytes(digest, "little") % L
    encoded = yield from _multiply(s, k, minus_a)      # [S]B - [k]A
    return encoded == signature[:32]


class _Work:
    """A computation run in slices (see the module doc): what Verifier and Signer return.

    done: whether it has finished; value: then its result (else None).
    """

    def __init__(self, work):
        self.work = work
        self.next = 0                   # the cost of the next item
        self.value = None
        self.done = False
        self.step(0)                    # to the first item: the argument checks run here

    def step(self, budget=8):
        """Does at most budget units of work (at least one item); returns None until done, then the result."""
        if self.done:
            return self.value
        if budget < 1 and self.next:
            raise ValueError("budget must be at least 1 unit, got %r" % (budget,))
        spent = 0
        while True:
            spent += self.next
            try:
                self.next = next(self.work)
            except StopIteration as stop:
                self.value = stop.value
                self.done = True
                self.work = None
                return self.value
            if spent + self.next > budget:
                return None


def Verifier(public_key, message, signature):
    """A resumable Ed25519 verification: step(budget) until it returns True or False (done is then True).

    Arguments that are not bytes-like raise TypeError here.
    """
    return _Work(_verify(public_key, message, signature))


def verify(public_key, message, signature):
    """Whether signature (64 bytes) is a valid Ed25519 signature of message by public_key (32 bytes).

    Wrong lengths, S >= L, keys that do not decode and bad signatures give
    False; only arguments that are not bytes-like raise (TypeError).
    """
    return _run(_verify(public_key, message, signature))


# --- Signing ----------------------------------------------------------

# The last seed's (secret scalar, prefix, public key): a board signs with one key.
_secret_cache = {}


def _sign(seed, message):
    """Work generator: returns the signature of message (bytes) under seed.

    With message None it returns the seed's public key. A seed that is not
    32 bytes raises ValueError (our own key: local misuse, not a verdict).
    """
    seed = _bytes(seed, SEED_BYTES, "seed")
    if seed is None:
        raise ValueError("an Ed25519 seed is 32 bytes")
    expanded = _secret_cache.get(seed)
    if expanded is None:
        digest = yield from sha512_work(seed, 12)
        clamped = bytearray(digest[:32])
        clamped[0] &= 248
        clamped[31] = (clamped[31] & 127) | 64
        a = int.from_bytes(clamped, "little")
        public = yield from _multiply(a, 0, None)
        expanded = (a, digest[32:], public)
        _secret_cache.clear()
        _secret_cache[seed] = expanded
    a, prefix, public = expanded
    if message is None:
        return public
    digest = yield from sha512_work(prefix + message, 12)
    r = int.from_bytes(digest, "little") % L
    r_bytes = yield from _multiply(r, 0, None)
    digest = yield from sha512_work(r_bytes + public + message, 12)
    s = (r + int.from_bytes(digest, "little") % L * a) % L
    return r_bytes + s.to_bytes(32, "little")


def Signer(seed, message):
    """A resumable Ed25519 signature: step(budget) until it returns the 64 bytes.

    A seed that is not 32 bytes raises ValueError here, arguments that are
    not bytes-like TypeError.
    """
    return _Work(_sign(seed, _bytes(message, None, "message")))


def sign(seed, message):
    """The 64-byte Ed25519 signature of message (bytes) with the 32-byte private seed."""
    return _run(_sign(seed, _bytes(message, None, "message")))


def public_key(seed):
    """The 32-byte Ed25519 public key of a 32-byte private seed."""
    return _run(_sign(seed, None))


def drop_signing():
    """Frees the signing code (a board with no key of its own only verifies): its bytecode is heap.

    Afterwards Signer, sign and public_key are None. (Each is replaced, not
    deleted: MicroPython's del leaves the value in the module's table,
    where the collector still sees it.)
    """
    global _sign, _secret_cache, Signer, sign, public_key, drop_signing
    _sign = _secret_cache = Signer = sign = public_key = drop_signing = None
