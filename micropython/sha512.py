"""SHA-512 (FIPS 180-4) in pure Python, for boards whose firmware has none.

Runs unchanged on CPython and MicroPython. ``sha512(data)`` is the one-shot
hash: the interpreter's own ``hashlib.sha512`` where there is one (CPython,
firmware built with it; ``NATIVE`` says which), else the pure code.
``pure_sha512(data)`` is always the pure code, and so is
``sha512_work(data, slice_cost)``, the same hash as a work generator: it
yields ``slice_cost`` before each slice of 20 rounds (a quarter of a
128-byte block; a block is about 0.3 ms on the x86 unix port and tens of ms
on a board) and returns the digest, so the resumable Ed25519 verifier can
hash a message without holding its event loop. ``_run(work)`` runs a work
generator to the end and returns its value. There is no incremental
(update/digest) hasher: nothing on a board needs one.

Built for a small heap: the module is three functions and one bytes
constant (about 2 KB of MicroPython heap, names included, imported from
.mpy on the 64-bit unix port).
Theory of operation, for speed and heap on MicroPython, where every integer
above 2**62 (64-bit unix port) or 2**30 (boards) is a heap-allocated big
int:

- The 80 round constants and the initial hash value are one bytes object
  (704 bytes), not ints: a table of 80 big ints costs about 5 KB of heap.
  Each slice unpacks its own 20 constants (``struct.unpack_from``), which
  is as fast as indexing a table of ints and keeps at most 20 of them
  alive; a block's 16 message words are unpacked the same way.
- The message schedule is a ring of 16 words: word t (t >= 16) replaces
  word t - 16 as the round reaches it, so a block can stop between rounds
  and only 16 words are ever alive.
- Words are plain ints masked to 64 bits only where a value is stored (the
  schedule, the working variables a and e, the state); the sums in between
  are left to grow.
- A rotation right by n of a 64-bit x is the low 64 bits of ``xx >> n``
  where ``xx = x | (x << 64)``: each Sigma function (three rotations)
  costs one doubling, three shifts and two xors, and no mask of its own.
- ``Ch(e, f, g) = g ^ (e & (f ^ g))`` and
  ``Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c))`` with ``b ^ c`` carried over
  from the previous round: no complement (so no negative numbers), and Maj
  costs three operations.
- No list comprehensions or generator expressions: on MicroPython each is
  one more function object.
"""

# FIPS 180-4 section 4.2.3: the 80 round constants (the first 64 bits of the
# fractional parts of the cube roots of the first 80 primes), then from
# byte 640 section 5.3.5's initial hash value (8 words); big-endian words.
_K = (
    b"\x42\x8a\x2f\x98\xd7\x28\xae\x22\x71\x37\x44\x91\x23\xef\x65\xcd"
    b"\xb5\xc0\xfb\xcf\xec\x4d\x3b\x2f\xe9\xb5\xdb\xa5\x81\x89\xdb\xbc"
    b"\x39\x56\xc2\x5b\xf3\x48\xb5\x38\x59\xf1\x11\xf1\xb6\x05\xd0\x19"
    b"\x92\x3f\x82\xa4\xaf\x19\x4f\x9b\xab\x1c\x5e\xd5\xda\x6d\x81\x18"
    b"\xd8\x07\xaa\x98\xa3\x03\x02\x42\x12\x83\x5b\x01\x45\x70\x6f\xbe"
    b"\x24\x31\x85\xbe\x4e\xe4\xb2\x8c\x55\x0c\x7d\xc3\xd5\xff\xb4\xe2"
    b"\x72\xbe\x5d\x74\xf2\x7b\x89\x6f\x80\xde\xb1\xfe\x3b\x16\x96\xb1"
    b"\x9b\xdc\x06\xa7\x25\xc7\x12\x35\xc1\x9b\xf1\x74\xcf\x69\x26\x94"
    b"\xe4\x9b\x69\xc1\x9e\xf1\x4a\xd2\xef\xbe\x47\x86\x38\x4f\x25\xe3"
    b"\x0f\xc1\x9d\xc6\x8b\x8c\xd5\xb5\x24\x0c\xa1\xcc\x77\xac\x9c\x65"
    b"\x2d\xe9\x2c\x6f\x59\x2b\x02\x75\x4a\x74\x84\xaa\x6e\xa6\xe4\x83"
    b"\x5c\xb0\xa9\xdc\xbd\x41\xfb\xd4\x76\xf9\x88\xda\x83\x11\x53\xb5"
    b"\x98\x3e\x51\x52\xee\x66\xdf\xab\xa8\x31\xc6\x6d\x2d\xb4\x32\x10"
    b"\xb0\x03\x27\xc8\x98\xfb\x21\x3f\xbf\x59\x7f\xc7\xbe\xef\x0e\xe4"
    b"\xc6\xe0\x0b\xf3\x3d\xa8\x8f\xc2\xd5\xa7\x91\x47\x93\x0a\xa7\x25"
    b"\x06\xca\x63\x51\xe0\x03\x82\x6f\x14\x29\x29\x67\x0a\x0e\x6e\x70"
    b"\x27\xb7\x0a\x85\x46\xd2\x2f\xfc\x2e\x1b\x21\x38\x5c\x26\xc9\x26"
    b"\x4d\x2c\x6d\xfc\x5a\xc4\x2a\xed\x53\x38\x0d\x13\x9d\x95\xb3\xdf"
    b"\x65\x0a\x73\x54\x8b\xaf\x63\xde\x76\x6a\x0a\xbb\x3c\x77\xb2\xa8"
    b"\x81\xc2\xc9\x2e\x47\xed\xae\xe6\x92\x72\x2c\x85\x14\x82\x35\x3b"
    b"\xa2\xbf\xe8\xa1\x4c\xf1\x03\x64\xa8\x1a\x66\x4b\xbc\x42\x30\x01"
    b"\xc2\x4b\x8b\x70\xd0\xf8\x97\x91\xc7\x6c\x51\xa3\x06\x54\xbe\x30"
    b"\xd1\x92\xe8\x19\xd6\xef\x52\x18\xd6\x99\x06\x24\x55\x65\xa9\x10"
    b"\xf4\x0e\x35\x85\x57\x71\x20\x2a\x10\x6a\xa0\x70\x32\xbb\xd1\xb8"
    b"\x19\xa4\xc1\x16\xb8\xd2\xd0\xc8\x1e\x37\x6c\x08\x51\x41\xab\x53"
    b"\x27\x48\x77\x4c\xdf\x8e\xeb\x99\x34\xb0\xbc\xb5\xe1\x9b\x48\xa8"
    b"\x39\x1c\x0c\xb3\xc5\xc9\x5a\x63\x4e\xd8\xaa\x4a\xe3\x41\x8a\xcb"
    b"\x5b\x9c\xca\x4f\x77\x63\xe3\x73\x68\x2e\x6f\xf3\xd6\xb2\xb8\xa3"
    b"\x74\x8f\x82\xee\x5d\xef\xb2\xfc\x78\xa5\x63\x6f\x43\x17\x2f\x60"
    b"\x84\xc8\x78\x14\xa1\xf0\xab\x72\x8c\xc7\x02\x08\x1a\x64\x39\xec"
    b"\x90\xbe\xff\xfa\x23\x63\x1e\x28\xa4\x50\x6c\xeb\xde\x82\xbd\xe9"
    b"\xbe\xf9\xa3\xf7\xb2\xc6\x79\x15\xc6\x71\x78\xf2\xe3\x72\x53\x2b"
    b"\xca\x27\x3e\xce\xea\x26\x61\x9c\xd1\x86\xb8\xc7\x21\xc0\xc2\x07"
    b"\xea\xda\x7d\xd6\xcd\xe0\xeb\x1e\xf5\x7d\x4f\x7f\xee\x6e\xd1\x78"
    b"\x06\xf0\x67\xaa\x72\x17\x6f\xba\x0a\x63\x7d\xc5\xa2\xc8\x98\xa6"
    b"\x11\x3f\x98\x04\xbe\xf9\x0d\xae\x1b\x71\x0b\x35\x13\x1c\x47\x1b"
    b"\x28\xdb\x77\xf5\x23\x04\x7d\x84\x32\xca\xab\x7b\x40\xc7\x24\x93"
    b"\x3c\x9e\xbe\x0a\x15\xc9\xbe\xbc\x43\x1d\x67\xc4\x9c\x10\x0d\x4c"
    b"\x4c\xc5\xd4\xbe\xcb\x3e\x42\xb6\x59\x7f\x29\x9c\xfc\x65\x7e\x2a"
    b"\x5f\xcb\x6f\xab\x3a\xd6\xfa\xec\x6c\x44\x19\x8c\x4a\x47\x58\x17"
    b"\x6a\x09\xe6\x67\xf3\xbc\xc9\x08\xbb\x67\xae\x85\x84\xca\xa7\x3b"
    b"\x3c\x6e\xf3\x72\xfe\x94\xf8\x2b\xa5\x4f\xf5\x3a\x5f\x1d\x36\xf1"
    b"\x51\x0e\x52\x7f\xad\xe6\x82\xd1\x9b\x05\x68\x8c\x2b\x3e\x6c\x1f"
    b"\x1f\x83\xd9\xab\xfb\x41\xbd\x6b\x5b\xe0\xcd\x19\x13\x7e\x21\x79"
)

from struct import unpack_from as _unpack


def sha512_work(data, slice_cost=1):
    """Work generator: the pure SHA-512 of data (bytes-like) in slices of 20 rounds.

    Yields slice_cost before each slice and returns the 64-byte digest.
    """
    data = bytes(data)
    length = len(data)
    # Padding: 0x80, zeros to 112 mod 128, the bit length in 128 bits.
    data += b"\x80" + bytes((111 - length) % 128) + (length * 8).to_bytes(16, "big")
    mask = 0xFFFFFFFFFFFFFFFF
    k = _K
    state = list(_unpack(">8Q", k, 640))
    for offset in range(0, len(data), 128):
        w = list(_unpack(">16Q", data, offset))
        a, b, c, d, e, f, g, h = state
        # Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c)), and this round's b ^ c is
        # the previous round's a ^ b.
        bc = b ^ c
        for t in range(80):
            if t % 20 == 0:
                # A slice: 20 rounds, a quarter of the block.
                yield slice_cost
                ks = _unpack(">20Q", k, 8 * t)      # their round constants
            if t >= 16:
                # w[t & 15] holds word t - 16 until it is replaced by word t.
                # sigma0, sigma1 and the Sigmas below are left unmasked:
                # their bits above 64 only reach bits above 64 of the sums,
                # which the masks drop.
                x = w[(t - 15) & 15]
                xx = x | (x << 64)
                y = w[(t - 2) & 15]
                yy = y | (y << 64)
                w[t & 15] = (((yy >> 19) ^ (yy >> 61) ^ (y >> 6)) + w[(t - 7) & 15]
                             + ((xx >> 1) ^ (xx >> 8) ^ (x >> 7)) + w[t & 15]) & mask
            ee = e | (e << 64)
            t1 = (h + ((ee >> 14) ^ (ee >> 18) ^ (ee >> 41)) + (g ^ (e & (f ^ g)))
                  + ks[t % 20] + w[t & 15])
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
        state[0] = (state[0] + a) & mask
        state[1] = (state[1] + b) & mask
        state[2] = (state[2] + c) & mask
        state[3] = (state[3] + d) & mask
        state[4] = (state[4] + e) & mask
        state[5] = (state[5] + f) & mask
        state[6] = (state[6] + g) & mask
        state[7] = (state[7] + h) & mask
    digest = b""
    for word in state:
        digest += word.to_bytes(8, "big")
    return digest


def _run(work):
    """Runs a work generator to the end; returns its value."""
    try:
        while True:
            next(work)
    except StopIteration as stop:
        return stop.value


def pure_sha512(data):
    """The SHA-512 of data, always by the pure-Python code (for tests, benchmarks, boards)."""
    return _run(sha512_work(data))


try:
    from hashlib import sha512 as _native
except ImportError:
    _native = None

# True where the interpreter hashes natively (then sha512 below is that).
NATIVE = _native is not None

if NATIVE:
    def sha512(data):
        """The 64-byte SHA-512 of data (the interpreter's hashlib)."""
        return _native(data).digest()
else:
    sha512 = pure_sha512
