"""SHA-512 (FIPS 180-4) in pure Python, for boards whose firmware has none.

Runs unchanged on CPython and MicroPython. ``sha512(data)`` is the one-shot
hash: the interpreter's own ``hashlib.sha512`` where there is one (CPython,
firmware built with it; ``NATIVE`` says which), else the pure code.
``Sha512`` (``update``, ``digest``, ``copy``) and ``pure_sha512`` are always
the pure code; ``sha512_work`` is too, as a work generator that hashes in
slices of a quarter block (for the resumable Ed25519 verifier: one block is
about 0.3 ms on the x86 unix port, and tens of ms on a board).

Theory of operation, for speed on MicroPython, where every integer above
2**62 (unix port) or 2**30 (boards) is a heap-allocated big int:

- Words are plain ints masked to 64 bits only where a value is stored (the
  schedule, the working variables a and e, the state); the sums in between
  are left to grow.
- A rotation right by n of a 64-bit x is the low 64 bits of ``xx >> n`` where
  ``xx = x | (x << 64)``: each Sigma function (three rotations) costs one
  doubling, three shifts and two xors, and no mask of its own.
- ``Ch(e, f, g) = g ^ (e & (f ^ g))`` and ``Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c))``
  with ``b ^ c`` carried over from the previous round: no complement (so no
  negative numbers), and Maj costs three operations.
- The 80 round constants are ints built once at import; the schedule words
  from 16 on are computed as the rounds reach them, so that a block can
  stop between two rounds.
"""

MASK = 0xFFFFFFFFFFFFFFFF
BLOCK_BYTES = 128
DIGEST_BYTES = 64

# FIPS 180-4 section 4.2.3: the first 64 bits of the fractional parts of the
# cube roots of the first 80 primes.
_K = (
    0x428A2F98D728AE22, 0x7137449123EF65CD, 0xB5C0FBCFEC4D3B2F, 0xE9B5DBA58189DBBC,
    0x3956C25BF348B538, 0x59F111F1B605D019, 0x923F82A4AF194F9B, 0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242, 0x12835B0145706FBE, 0x243185BE4EE4B28C, 0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F, 0x80DEB1FE3B1696B1, 0x9BDC06A725C71235, 0xC19BF174CF692694,
    0xE49B69C19EF14AD2, 0xEFBE4786384F25E3, 0x0FC19DC68B8CD5B5, 0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275, 0x4A7484AA6EA6E483, 0x5CB0A9DCBD41FBD4, 0x76F988DA831153B5,
    0x983E5152EE66DFAB, 0xA831C66D2DB43210, 0xB00327C898FB213F, 0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2, 0xD5A79147930AA725, 0x06CA6351E003826F, 0x142929670A0E6E70,
    0x27B70A8546D22FFC, 0x2E1B21385C26C926, 0x4D2C6DFC5AC42AED, 0x53380D139D95B3DF,
    0x650A73548BAF63DE, 0x766A0ABB3C77B2A8, 0x81C2C92E47EDAEE6, 0x92722C851482353B,
    0xA2BFE8A14CF10364, 0xA81A664BBC423001, 0xC24B8B70D0F89791, 0xC76C51A30654BE30,
    0xD192E819D6EF5218, 0xD69906245565A910, 0xF40E35855771202A, 0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8, 0x1E376C085141AB53, 0x2748774CDF8EEB99, 0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63, 0x4ED8AA4AE3418ACB, 0x5B9CCA4F7763E373, 0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC, 0x78A5636F43172F60, 0x84C87814A1F0AB72, 0x8CC702081A6439EC,
    0x90BEFFFA23631E28, 0xA4506CEBDE82BDE9, 0xBEF9A3F7B2C67915, 0xC67178F2E372532B,
    0xCA273ECEEA26619C, 0xD186B8C721C0C207, 0xEADA7DD6CDE0EB1E, 0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA, 0x0A637DC5A2C898A6, 0x113F9804BEF90DAE, 0x1B710B35131C471B,
    0x28DB77F523047D84, 0x32CAAB7B40C72493, 0x3C9EBE0A15C9BEBC, 0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6, 0x597F299CFC657E2A, 0x5FCB6FAB3AD6FAEC, 0x6C44198C4A475817,
)

# FIPS 180-4 section 5.3.5: the initial hash value.
_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)


def _words(block, offset):
    """The 16 big-endian 64-bit words of block[offset:offset + 128], in a list of 80 (the schedule)."""
    w = [0] * 80
    for t in range(16):
        start = offset + 8 * t
        w[t] = int.from_bytes(block[start:start + 8], "big")
    return w


def _rounds(v, w, start, stop):
    """Runs rounds start..stop - 1 on the working variables v (a list a..h) with the schedule w.

    Schedule words from 16 on are computed as the rounds reach them, so a
    block can be compressed in slices of rounds.
    """
    mask = MASK
    k = _K
    a, b, c, d, e, f, g, h = v
    # Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c)), and this round's b ^ c is the
    # previous round's a ^ b.
    bc = b ^ c
    for t in range(start, stop):
        if t >= 16:
            # sigma0, sigma1 and the Sigmas below are left unmasked: their
            # bits above 64 only reach bits above 64 of the sums, which the
            # masks drop.
            x = w[t - 15]
            xx = x | (x << 64)
            y = w[t - 2]
            yy = y | (y << 64)
            w[t] = (((yy >> 19) ^ (yy >> 61) ^ (y >> 6)) + w[t - 7]
                    + ((xx >> 1) ^ (xx >> 8) ^ (x >> 7)) + w[t - 16]) & mask
        ee = e | (e << 64)
        t1 = h + ((ee >> 14) ^ (ee >> 18) ^ (ee >> 41)) + (g ^ (e & (f ^ g))) + k[t] + w[t]
        aa = a | (a << 64)
        ab = a ^ b
        t2 = ((aa >> 28) ^ (aa >> 34) ^ (aa >> 39)) + (b ^ (ab & bc))
        bc = ab
        h = g
        g = f
        f = e
        e = (d + t1) & mask
        d = c
        c = b
        b = a
        a = (t1 + t2) & mask
    v[0] = a
    v[1] = b
    v[2] = c
    v[3] = d
    v[4] = e
    v[5] = f
    v[6] = g
    v[7] = h


def _add_into(state, v):
    """state += v, word by word (the end of a block)."""
    mask = MASK
    for i in range(8):
        state[i] = (state[i] + v[i]) & mask


def _compress(state, block, offset):
    """Runs the compression function on block[offset:offset + 128]; updates state (a list of 8 words)."""
    v = list(state)
    _rounds(v, _words(block, offset), 0, 80)
    _add_into(state, v)


def _padding(length):
    """The padding after a message of length bytes: 0x80, zeros to 112 mod 128, the bit length in 128 bits."""
    zeros = (BLOCK_BYTES - 17 - length) % BLOCK_BYTES
    return b"\x80" + bytes(zeros) + (length * 8).to_bytes(16, "big")


def _state_bytes(state):
    """The digest: the state words, big-endian."""
    out = b""
    for word in state:
        out += word.to_bytes(8, "big")
    return out


# Rounds per slice of sha512_work: a block is four slices.
SLICE_ROUNDS = 20


def sha512_work(data, slice_cost=1):
    """Work generator: the pure SHA-512 of data in slices of SLICE_ROUNDS rounds.

    Yields slice_cost before each slice (the resumable Ed25519 code yields
    these on as its own work units) and returns the 64-byte digest.
    """
    data = bytes(data)
    message = data + _padding(len(data))
    state = list(_IV)
    for offset in range(0, len(message), BLOCK_BYTES):
        v = list(state)
        w = None
        for start in range(0, 80, SLICE_ROUNDS):
            yield slice_cost
            if w is None:
                w = _words(message, offset)
            _rounds(v, w, start, start + SLICE_ROUNDS)
        _add_into(state, v)
    return _state_bytes(state)


class Sha512:
    """An incremental pure-Python SHA-512: update(data) any number of times, then digest()."""

    def __init__(self, data=b""):
        self._state = list(_IV)
        self._pending = b""
        self._length = 0
        if data:
            self.update(data)

    def update(self, data):
        """Adds data (bytes-like) to the message; compresses every full 128-byte block."""
        data = bytes(data)
        self._length += len(data)
        if self._pending:
            need = BLOCK_BYTES - len(self._pending)
            if len(data) < need:
                self._pending += data
                return
            _compress(self._state, self._pending + data[:need], 0)
            data = data[need:]
            self._pending = b""
        end = len(data) - len(data) % BLOCK_BYTES
        state = self._state
        for offset in range(0, end, BLOCK_BYTES):
            _compress(state, data, offset)
        self._pending = data[end:]

    def copy(self):
        """An independent hasher in the same state."""
        other = Sha512()
        other._state = list(self._state)
        other._pending = self._pending
        other._length = self._length
        return other

    def digest(self):
        """The 64-byte digest of everything added so far (the hasher stays usable)."""
        state = list(self._state)
        tail = self._pending + _padding(self._length)
        for offset in range(0, len(tail), BLOCK_BYTES):
            _compress(state, tail, offset)
        return _state_bytes(state)

    def hexdigest(self):
        """The digest as lowercase hex."""
        return "".join("%02x" % byte for byte in self.digest())


def pure_sha512(data):
    """The SHA-512 of data, always by the pure-Python code (for tests and benchmarks)."""
    return Sha512(data).digest()


try:
    import hashlib as _hashlib
    _native = _hashlib.sha512
except (ImportError, AttributeError):
    _native = None

# True where the interpreter hashes natively (then sha512 below is that).
NATIVE = _native is not None

if NATIVE:
    def sha512(data):
        """The 64-byte SHA-512 of data (the interpreter's hashlib)."""
        return _native(data).digest()
else:
    sha512 = pure_sha512
