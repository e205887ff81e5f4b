"""Ed25519 (RFC 8032) signatures in pure Python, for CPython and MicroPython.

``verify(public_key, message, signature)`` and ``sign(seed, message)`` are
one call each; ``Verifier`` and ``Signer`` do the same work in slices, so a
board's event loop can keep answering pings while a claim is checked::

    v = Verifier(public_key, message, signature)
    while (ok := v.step(8)) is None:
        await asyncio.sleep(0)

A unit of work is about one point doubling (eight field multiplications):
one doubling or addition of a scalar multiplication, eight squarings of a
modular exponentiation, or a quarter of a SHA-512 block
(``SHA512_BLOCK_UNITS / 4``: hashing is slow in pure Python). ``step(budget)``
runs whole items until the next would exceed the budget, and always at
least one. Signing is resumable the same way (``Signer``).

Theory of operation:

- Field elements are ints mod P = 2**255 - 19. In the hot loops a product
  is reduced by folding twice (2**255 = 19 mod P), which is cheaper than
  ``%`` on MicroPython's 16-bit-digit big ints, and leaves a value under
  2**256 in magnitude; sums and differences are not reduced at all (they
  only feed the next product). Full reduction (``%``) happens where a value
  is compared or encoded. MicroPython's ``%``, ``>>`` and ``&`` on negative
  ints floor like CPython's.
- Points are extended twisted Edwards coordinates (X : Y : Z : T) with
  x = X/Z, y = Y/Z, xy = T/Z (Hisil, Wong, Carter, Dawson 2008); formulas for
  a = -1 in the "completed" shape of the ref10 code: a doubling is four
  squarings and three products, an addition of an affine point six or
  seven products, and T is only computed when an addition comes next.
- Scalar multiplication is a 4-tooth comb (see "Comb" below): 63 doublings
  instead of 252, at the price of a 16-point table per point. B's table is
  built at import; a public key's table is built on its first verification
  and kept (the last ``KEY_CACHE_SIZE`` keys): a board verifies claims from
  a short trust list, so the first verification with a key costs about
  twice the later ones.
- Verification is cofactorless, as in RFC 8032 section 5.1.7 and OpenSSL:
  it computes [S]B - [k]A with the two combs side by side (shared
  doublings), encodes the result (one inversion) and compares the bytes with
  R; comparing encodings also rejects an R whose y is not canonical. S >= L
  and a public key that does not decode (y >= P, x**2 with no root, x = 0
  with the sign bit set) give False. (OpenSSL accepts a public key whose y
  is P or P + 1, reducing it; RFC 8032 and this module do not.)
- Inversion and the square root use the ref10 addition chains for
  z**(P - 2) and z**((P - 5) / 8): about 254 squarings and 11 products, in
  slices, instead of ``pow`` (twice as many products, and one long call).
- Signing adds a table entry in every comb column, the neutral one too, so
  the sequence of point operations is the same for every secret scalar.
  That is not constant time -- Python's big ints are not -- so a board that
  signs leaks more timing than OpenSSL does. The last seed's expansion
  (secret scalar, prefix, public key) is kept: a board signs with one key.

Not for MicroPython's sake only: nothing here reads a clock or randomness.
"""

try:
    from sha512 import sha512, sha512_work, NATIVE as _NATIVE_SHA512
except ImportError:  # imported as part of a package (not the board layout)
    from .sha512 import sha512, sha512_work, NATIVE as _NATIVE_SHA512

P = 2 ** 255 - 19
# The order of the base point.
L = 2 ** 252 + 27742317777372353535851937790883648493
# d = -121665 / 121666 mod P, and 2d.
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161
# A square root of -1 mod P: 2 ** ((P - 1) / 4).
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
# The base point: y = 4/5, x the even root.
BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202
BASE_Y = 46316835694926478169428394003475163141307993866256225615783033603165251855960

PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64

# Work units (see the module doc). A SHA-512 block costs about as much as
# this many point doublings: 40 on the 64-bit MicroPython unix port, 55 on
# a 32-bit build (31-bit small ints, 16-bit big-int digits, as on boards).
# The pure hash runs in slices of a quarter block.
SHA512_BLOCK_UNITS = 1 if _NATIVE_SHA512 else 48
SQUARINGS_PER_UNIT = 8
# How many public keys' comb tables verification keeps (16 points each,
# about 4 KB on a 32-bit board); a module attribute a board may lower.
KEY_CACHE_SIZE = 4

_MASK255 = (1 << 255) - 1
_BYTES_TYPES = (bytes, bytearray, memoryview)


# --- Field ------------------------------------------------------------


def _pow_chain(z):
    """Work generator: returns (z ** (2**250 - 1), z ** 11) mod P, in slices.

    The common prefix of the ref10 chains for inversion and square root.
    """
    p = P
    yield 1
    z2 = z * z % p
    t = z2 * z2 % p
    t = t * t % p                       # z**8
    z9 = t * z % p
    z11 = z9 * z2 % p
    t = z11 * z11 % p                   # z**22
    r5 = t * z9 % p                     # z**(2**5 - 1)
    r = yield from _square_times(r5, 5)
    r10 = r * r5 % p                    # z**(2**10 - 1)
    r = yield from _square_times(r10, 10)
    r20 = r * r10 % p
    r = yield from _square_times(r20, 20)
    r40 = r * r20 % p
    r = yield from _square_times(r40, 10)
    r50 = r * r10 % p
    r = yield from _square_times(r50, 50)
    r100 = r * r50 % p
    r = yield from _square_times(r100, 100)
    r200 = r * r100 % p
    r = yield from _square_times(r200, 50)
    r250 = r * r50 % p                  # z**(2**250 - 1)
    return r250, z11


def _square_times(x, n):
    """Work generator: returns x ** (2 ** n) mod P, SQUARINGS_PER_UNIT squarings a unit."""
    m = _MASK255
    while n > 0:
        count = SQUARINGS_PER_UNIT if n > SQUARINGS_PER_UNIT else n
        yield 1
        for _ in range(count):
            x = x * x
            x = (x & m) + 19 * (x >> 255)
            x = (x & m) + 19 * (x >> 255)
        n -= count
    return x % P


def _invert(z):
    """Work generator: returns 1 / z mod P (z ** (P - 2)); 0 for 0."""
    r250, z11 = yield from _pow_chain(z)
    r = yield from _square_times(r250, 5)   # z**(2**255 - 32)
    return r * z11 % P                      # z**(2**255 - 21)


def _pow_p58(z):
    """Work generator: returns z ** ((P - 5) / 8) = z ** (2**252 - 3) mod P."""
    r250, _ = yield from _pow_chain(z)
    r = yield from _square_times(r250, 2)
    return r * z % P


def _run(work):
    """Runs a work generator to the end; returns its value."""
    try:
        while True:
            next(work)
    except StopIteration as stop:
        return stop.value


# --- Points -----------------------------------------------------------
# A point is (X, Y, Z, T). A cached point, ready to be added, is
# (Y + X, Y - X, 2d T, 2 Z); the comb tables hold affine cached points
# (y + x, y - x, 2d xy), with Z = 1 implied.


def _double(X, Y, Z):
    """2(X : Y : Z), as (X, Y, Z, T)."""
    p = P
    xx = X * X % p
    yy = Y * Y % p
    zz2 = 2 * Z * Z % p
    s = X + Y
    e = s * s % p
    y1 = yy + xx
    z1 = yy - xx
    x1 = e - y1
    t1 = zz2 - z1
    return x1 * t1 % p, y1 * z1 % p, z1 * t1 % p, x1 * y1 % p


def _add_cached(X, Y, Z, T, cached):
    """(X : Y : Z : T) plus a cached point, as (X, Y, Z, T)."""
    p = P
    ypx, ymx, t2d, z2 = cached
    a = (Y + X) * ypx % p
    b = (Y - X) * ymx % p
    c = T * t2d % p
    d = Z * z2 % p
    x1 = a - b
    y1 = a + b
    z1 = d + c
    t1 = d - c
    return x1 * t1 % p, y1 * z1 % p, z1 * t1 % p, x1 * y1 % p


def _to_cached(X, Y, Z, T):
    """The cached form of an extended point."""
    p = P
    return (Y + X) % p, (Y - X) % p, T * D2 % p, 2 * Z % p


# --- Comb ---------------------------------------------------------------
# A 4-tooth fixed-base comb (Lim and Lee, 1994): with the table entry
# Q_i = sum of 2**(64 j) Q over the bits j of i (16 points), and the index of
# column c built from bits c, c + 64, c + 128 and c + 192 of n,
#     [n]Q = sum over c of 2**c Q_index(c),
# which Horner's rule computes with 63 doublings and up to 64 additions,
# where a plain double-and-add needs 252 doublings. Verification runs the
# combs of B and -A side by side, sharing the doublings: 63 doublings and
# about 120 additions in all. The table costs 192 doublings to build, so it
# is built once for B (at import) and once per public key (kept).


def _comb_table(X, Y, Z, T):
    """Work generator: returns the comb table of the point (X : Y : Z : T), 16 affine cached points."""
    p = P
    teeth = [(X, Y, Z, T)]
    for _ in range(3):
        for _ in range(64):
            yield 1
            X, Y, Z, T = _double(X, Y, Z)
        teeth.append((X, Y, Z, T))
    points = [None] * 16
    for j in range(4):
        points[1 << j] = teeth[j]
    for i in range(3, 16):
        if points[i] is None:
            yield 1
            low = i & -i
            X, Y, Z, T = points[i - low]
            points[i] = _add_cached(X, Y, Z, T, _to_cached(*points[low]))
    # To affine with one inversion (Montgomery's trick): prefix products of
    # the Zs, the inverse of their product, then back down the list.
    yield 1
    prefix = [1] * 16
    for i in range(1, 16):
        prefix[i] = prefix[i - 1] * points[i][2] % p
    inverse = yield from _invert(prefix[15])
    table = [(1, 1, 0)] * 16            # entry 0: the neutral point
    for i in range(15, 0, -1):
        yield 1
        X, Y, Z, _ = points[i]
        z_inverse = inverse * prefix[i - 1] % p
        inverse = inverse * Z % p
        x = X * z_inverse % p
        y = Y * z_inverse % p
        table[i] = ((y + x) % p, (y - x) % p, x * y % p * D2 % p)
    return table


_BASE_COMB = _run(_comb_table(BASE_X, BASE_Y, 1, BASE_X * BASE_Y % P))
_NO_INDICES = [0] * 64


def _comb_indices(n):
    """The 64 comb column indices of 0 <= n < 2**256: bit j of index c is bit 64 j + c of n."""
    data = n.to_bytes(32, "little")
    indices = [0] * 64
    for c in range(64):
        i = c >> 3
        s = c & 7
        indices[c] = (((data[i] >> s) & 1) | (((data[i + 8] >> s) & 1) << 1)
                      | (((data[i + 16] >> s) & 1) << 2) | (((data[i + 24] >> s) & 1) << 3))
    return indices


def _comb(b_scalar, a_scalar, a_table):
    """Work generator: returns [b_scalar]B + [a_scalar]A as (X, Y, Z); A's comb table is a_table.

    With a_scalar None this is [b_scalar]B alone, and every column adds its
    table entry, the neutral one too, so that the sequence of operations is
    the same for every scalar (signing). Products are reduced by folding
    twice (2**255 = 19 mod P), which is cheaper than % on MicroPython's
    16-bit-digit big ints; values stay under 2**256 in magnitude (possibly a
    little negative, or above P).
    """
    regular = a_scalar is None
    b_index = _comb_indices(b_scalar)
    a_index = _NO_INDICES if regular else _comb_indices(a_scalar)
    base_table = _BASE_COMB
    m = _MASK255
    X, Y, Z, T = 0, 1, 1, 0
    for column in range(63, -1, -1):
        bi = b_index[column]
        ai = a_index[column]
        if column < 63:
            yield 1
            # Doubling (see _double); T only when an addition follows.
            xx = X * X
            xx = (xx & m) + 19 * (xx >> 255)
            xx = (xx & m) + 19 * (xx >> 255)
            yy = Y * Y
            yy = (yy & m) + 19 * (yy >> 255)
            yy = (yy & m) + 19 * (yy >> 255)
            zz2 = Z * Z
            zz2 = (zz2 & m) + 19 * (zz2 >> 255)
            zz2 = ((zz2 & m) + 19 * (zz2 >> 255)) << 1
            e = X + Y
            e = e * e
            e = (e & m) + 19 * (e >> 255)
            e = (e & m) + 19 * (e >> 255)
            y1 = yy + xx
            z1 = yy - xx
            x1 = e - y1
            t1 = zz2 - z1
            X = x1 * t1
            X = (X & m) + 19 * (X >> 255)
            X = (X & m) + 19 * (X >> 255)
            Y = y1 * z1
            Y = (Y & m) + 19 * (Y >> 255)
            Y = (Y & m) + 19 * (Y >> 255)
            Z = z1 * t1
            Z = (Z & m) + 19 * (Z >> 255)
            Z = (Z & m) + 19 * (Z >> 255)
            if bi or ai or regular:
                T = x1 * y1
                T = (T & m) + 19 * (T >> 255)
                T = (T & m) + 19 * (T >> 255)
        if bi or regular:
            yield 1
            # Mixed addition of an affine table entry (Z2 = 1).
            ypx, ymx, t2d = base_table[bi]
            a = (Y + X) * ypx
            a = (a & m) + 19 * (a >> 255)
            a = (a & m) + 19 * (a >> 255)
            b = (Y - X) * ymx
            b = (b & m) + 19 * (b >> 255)
            b = (b & m) + 19 * (b >> 255)
            c = T * t2d
            c = (c & m) + 19 * (c >> 255)
            c = (c & m) + 19 * (c >> 255)
            d = Z << 1
            x1 = a - b
            y1 = a + b
            z1 = d + c
            t1 = d - c
            X = x1 * t1
            X = (X & m) + 19 * (X >> 255)
            X = (X & m) + 19 * (X >> 255)
            Y = y1 * z1
            Y = (Y & m) + 19 * (Y >> 255)
            Y = (Y & m) + 19 * (Y >> 255)
            Z = z1 * t1
            Z = (Z & m) + 19 * (Z >> 255)
            Z = (Z & m) + 19 * (Z >> 255)
            if ai:
                T = x1 * y1
                T = (T & m) + 19 * (T >> 255)
                T = (T & m) + 19 * (T >> 255)
        if ai:
            yield 1
            # The same, with A's table; no T: a doubling comes next.
            ypx, ymx, t2d = a_table[ai]
            a = (Y + X) * ypx
            a = (a & m) + 19 * (a >> 255)
            a = (a & m) + 19 * (a >> 255)
            b = (Y - X) * ymx
            b = (b & m) + 19 * (b >> 255)
            b = (b & m) + 19 * (b >> 255)
            c = T * t2d
            c = (c & m) + 19 * (c >> 255)
            c = (c & m) + 19 * (c >> 255)
            d = Z << 1
            x1 = a - b
            y1 = a + b
            z1 = d + c
            t1 = d - c
            X = x1 * t1
            X = (X & m) + 19 * (X >> 255)
            X = (X & m) + 19 * (X >> 255)
            Y = y1 * z1
            Y = (Y & m) + 19 * (Y >> 255)
            Y = (Y & m) + 19 * (Y >> 255)
            Z = z1 * t1
            Z = (Z & m) + 19 * (Z >> 255)
            Z = (Z & m) + 19 * (Z >> 255)
    return X, Y, Z


def _decode_point(data):
    """Work generator: returns the extended point encoded by 32 bytes, or None when invalid."""
    p = P
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= _MASK255
    if y >= p:
        return None
    # x**2 = u / v with u = y**2 - 1, v = d y**2 + 1; the candidate root is
    # x = u v**3 (u v**7) ** ((P - 5) / 8) (RFC 8032 section 5.1.3).
    yy = y * y % p
    u = (yy - 1) % p
    v = (D * yy + 1) % p
    v3 = v * v % p * v % p
    uv7 = u * (v3 * v3 % p * v % p) % p
    root = yield from _pow_p58(uv7)
    x = u * v3 % p * root % p
    check = v * (x * x % p) % p
    if check == u:
        pass
    elif check == (p - u) % p:
        x = x * SQRT_M1 % p
    else:
        return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = p - x
    return x, y, 1, x * y % p


def _encode_point(X, Y, Z):
    """Work generator: returns the 32-byte encoding of (X : Y : Z)."""
    p = P
    z_inverse = yield from _invert(Z)
    x = X * z_inverse % p
    y = Y * z_inverse % p
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _sha512(data):
    """Work generator: returns the SHA-512 of data; one unit when native, else in slices of a block."""
    if _NATIVE_SHA512:
        yield 1
        return sha512(data)
    return (yield from sha512_work(data, SHA512_BLOCK_UNITS // 4))


def _hash_mod_l(parts):
    """Work generator: returns SHA-512 of the concatenated parts, as an int mod L."""
    digest = yield from _sha512(b"".join(parts))
    return int.from_bytes(digest, "little") % L


# --- Verification -----------------------------------------------------

_key_tables = {}


def _key_table(public_key):
    """Work generator: returns the comb table of -A for a public key A (kept), or None for a bad key."""
    table = _key_tables.get(public_key)
    if table is not None:
        return table
    point = yield from _decode_point(public_key)
    if point is None:
        return None
    x, y, z, t = point
    # -A: negate x, and so T.
    table = yield from _comb_table((P - x) % P, y, z, (P - t) % P)
    if len(_key_tables) >= KEY_CACHE_SIZE:
        # MicroPython dicts have no order to evict by: start afresh.
        _key_tables.clear()
    _key_tables[public_key] = table
    return table


def _verify_work(public_key, message, signature):
    """Work generator: returns whether signature is a valid Ed25519 signature of message by public_key."""
    yield 1
    r_bytes = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    key_table = yield from _key_table(public_key)
    if key_table is None:
        return False
    k = yield from _hash_mod_l((r_bytes, public_key, message))
    X, Y, Z = yield from _comb(s, k, key_table)     # [S]B - [k]A
    encoded = yield from _encode_point(X, Y, Z)
    return encoded == r_bytes


class _Work:
    """A computation run in slices of work units (see the module doc)."""

    def __init__(self, work):
        self._work = work
        self._result = None
        try:
            self._next_cost = next(work)
        except StopIteration as stop:
            self._result = stop.value

    @property
    def done(self):
        """Whether the computation has finished (step() then returns its result)."""
        return self._result is not None

    def step(self, budget=8):
        """Does at most budget units of work (at least one item); returns None until done, then the result."""
        if self._result is not None:
            return self._result
        if budget < 1:
            raise ValueError("budget must be at least 1 unit, got %r" % (budget,))
        work = self._work
        spent = 0
        while spent == 0 or spent + self._next_cost <= budget:
            spent += self._next_cost
            try:
                self._next_cost = next(work)
            except StopIteration as stop:
                self._result = stop.value
                self._work = None
                return self._result
        return None


def _check_bytes(value, length, what):
    """value as bytes if it is bytes-like of that length (any length when None), else None."""
    if not isinstance(value, _BYTES_TYPES):
        raise TypeError("%s must be bytes, got %s" % (what, type(value).__name__))
    value = bytes(value)
    if length is not None and len(value) != length:
        return None
    return value


def _verify_generator(public_key, message, signature):
    """The verification work generator for the given arguments (False at once for wrong lengths)."""
    public_key = _check_bytes(public_key, PUBLIC_KEY_BYTES, "public_key")
    message = _check_bytes(message, None, "message")
    signature = _check_bytes(signature, SIGNATURE_BYTES, "signature")
    if public_key is None or signature is None:
        return _constant(False)
    return _verify_work(public_key, message, signature)


def _constant(value):
    """Work generator: one unit, then value."""
    yield 1
    return value


class Verifier(_Work):
    """A resumable Ed25519 verification: step(budget) until it returns True or False."""

    def __init__(self, public_key, message, signature):
        _Work.__init__(self, _verify_generator(public_key, message, signature))


def verify(public_key, message, signature):
    """Whether signature (64 bytes) is a valid Ed25519 signature of message by public_key (32 bytes).

    Wrong lengths, S >= L, keys that do not decode and bad signatures give
    False; only arguments that are not bytes-like raise (TypeError).
    """
    return _run(_verify_generator(public_key, message, signature))


# --- Signing ----------------------------------------------------------


def _base_multiply(c):
    """Work generator: returns [c]B as (X, Y, Z) for an int c."""
    return (yield from _comb(c % L, None, None))


# The last seed's (secret scalar, prefix, public key): a board signs with one key.
_secret_cache = {}


def _expand_seed(seed):
    """Work generator: returns (scalar a, prefix, public key bytes) for a 32-byte seed."""
    cached = _secret_cache.get(seed)
    if cached is not None:
        return cached
    h = yield from _sha512(seed)
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    X, Y, Z = yield from _base_multiply(a)
    public = yield from _encode_point(X, Y, Z)
    cached = (a, h[32:], public)
    _secret_cache.clear()
    _secret_cache[seed] = cached
    return cached


def _sign_work(seed, message):
    """Work generator: returns the 64-byte Ed25519 signature of message under seed."""
    a, prefix, public = yield from _expand_seed(seed)
    r = yield from _hash_mod_l((prefix, message))
    X, Y, Z = yield from _base_multiply(r)
    r_bytes = yield from _encode_point(X, Y, Z)
    k = yield from _hash_mod_l((r_bytes, public, message))
    s = (r + k * a) % L
    return r_bytes + s.to_bytes(32, "little")


def _seed_bytes(seed):
    """seed as bytes; raises ValueError unless it is 32 bytes (our own key: local misuse)."""
    seed = _check_bytes(seed, SEED_BYTES, "seed")
    if seed is None:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return seed


class Signer(_Work):
    """A resumable Ed25519 signature: step(budget) until it returns the 64 bytes."""

    def __init__(self, seed, message):
        seed = _seed_bytes(seed)
        message = _check_bytes(message, None, "message")
        _Work.__init__(self, _sign_work(seed, message))


def sign(seed, message):
    """The 64-byte Ed25519 signature of message (bytes) with the 32-byte private seed."""
    seed = _seed_bytes(seed)
    message = _check_bytes(message, None, "message")
    return _run(_sign_work(seed, message))


def public_key(seed):
    """The 32-byte Ed25519 public key of a 32-byte private seed."""
    return _run(_expand_seed(_seed_bytes(seed)))[2]
