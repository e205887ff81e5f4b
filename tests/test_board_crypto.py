"""Tests for the board crypto: micropython/sha512.py and micropython/ed25519.py.

On CPython: the FIPS 180-4 and RFC 8032 vectors and constants, every
message length around the padding edges against hashlib, the scalar
multiplication (both recodings, edge scalars) against a plain affine
reference, 50 random keys and messages against `cryptography` both ways,
the rejections (tampered message or signature, S >= L, bad keys, wrong
lengths), and the resumable Verifier and Signer against the one-call
functions, their slice sizes, and inside an asyncio loop. Then the
vectors, a cross-check and the Verifier again under the MicroPython
interpreter (skipped where it is not installed; a failure on x86_64 Linux
CI), as `micropython -X heapsize=4m -c SCRIPT` with
MICROPYPATH=<repo>/micropython, and the benchmark once.

Random cases come from random.Random(SEED); a failure names the case.
"""

import asyncio
import binascii
import hashlib
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

REPO_ROOT = Path(__file__).resolve().parent.parent
BOARD_DIR = REPO_ROOT / "micropython"
if str(BOARD_DIR) not in sys.path:
    sys.path.insert(0, str(BOARD_DIR))

import ed25519  # noqa: E402
import sha512  # noqa: E402
from test_micropython import require_micropython  # noqa: E402  (skips, or fails on CI, without it)

SEED = 20260705
unhex = binascii.unhexlify

# FIPS 180-4 examples (NIST CSRC "SHA512.pdf"): message -> digest.
SHA512_VECTORS = (
    (b"abc",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    (b"",
     "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
     "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
    (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
     "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"),
)

# RFC 8032 section 7.1, TEST 1-3: (secret seed, public key, message, signature), hex.
RFC8032_VECTORS = (
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
)

L = 2 ** 252 + 27742317777372353535851937790883648493
P = 2 ** 255 - 19


def _rfc_vectors():
    return [(unhex(s), unhex(k), unhex(m), unhex(g)) for s, k, m, g in RFC8032_VECTORS]


def _with_s(signature, s):
    """signature with its S half replaced by the integer s (32 bytes, little-endian)."""
    return signature[:32] + s.to_bytes(32, "little")


def _flip(data, bit):
    """data with one bit flipped."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _run_steps(work, budget):
    """Steps a Verifier or Signer to the end; returns (result, number of steps)."""
    steps = 0
    while True:
        steps += 1
        result = work.step(budget)
        if result is not None:
            return result, steps
        assert steps < 100000, "resumable work never finished"


# --- SHA-512 ----------------------------------------------------------------


@pytest.mark.parametrize("message,digest", SHA512_VECTORS, ids=["abc", "empty", "896-bit"])
def test_sha512_fips_vectors(message, digest):
    assert sha512.pure_sha512(message).hex() == digest
    assert sha512.sha512(message).hex() == digest
    assert sha512._run(sha512.sha512_work(message)).hex() == digest


def test_sha512_every_length_around_the_padding_edges():
    # 111/112 bytes: the length field fits in the last block or spills over;
    # 127/128/129: one block exactly and either side; and so on to 3 blocks.
    for length in range(0, 400):
        message = bytes((i * 7 + length) & 0xFF for i in range(length))
        expected = hashlib.sha512(message).digest()
        assert sha512.pure_sha512(message) == expected, "length %d" % length
        assert sha512._run(sha512.sha512_work(message)) == expected, "work, length %d" % length


def test_sha512_random_messages_and_bytes_like_inputs():
    rng = random.Random(SEED)
    for case in range(30):
        message = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 1500)))
        expected = hashlib.sha512(message).digest()
        label = "case %d (seed %d)" % (case, SEED)
        assert sha512.pure_sha512(message) == expected, label
        assert sha512.pure_sha512(bytearray(message)) == expected, label
        assert sha512.pure_sha512(memoryview(message)) == expected, label


def _integer_cube_root(n):
    """The largest r with r**3 <= n (Newton's method on ints)."""
    r = 1 << ((n.bit_length() + 2) // 3)
    while True:
        s = (2 * r + n // (r * r)) // 3
        if s >= r:
            break
        r = s
    while r ** 3 > n:
        r -= 1
    while (r + 1) ** 3 <= n:
        r += 1
    return r


def test_sha512_constants_are_the_fips_ones():
    # _K is the 80 round constants (the first 64 bits of the fractional
    # parts of the cube roots of the first 80 primes), then the initial
    # hash value (the same of the square roots of the first 8 primes).
    primes = [n for n in range(2, 420) if all(n % d for d in range(2, int(n ** 0.5) + 1))][:80]
    words = [int.from_bytes(sha512._K[8 * i:8 * i + 8], "big") for i in range(88)]
    assert len(sha512._K) == 88 * 8
    for i, prime in enumerate(primes):
        assert words[i] == _integer_cube_root(prime << 192) & (2 ** 64 - 1), i
    for i, prime in enumerate(primes[:8]):
        assert words[80 + i] == math.isqrt(prime << 128) & (2 ** 64 - 1), i


def test_sha512_work_yields_four_slices_per_block():
    slices = 0
    work = sha512.sha512_work(b"x" * 200, slice_cost=3)   # 200 + 17 bytes: 2 blocks
    try:
        while True:
            assert next(work) == 3
            slices += 1
    except StopIteration as stop:
        assert stop.value == hashlib.sha512(b"x" * 200).digest()
    assert slices == 8


# --- Ed25519: vectors and constants --------------------------------------------


@pytest.mark.parametrize("vector", range(len(RFC8032_VECTORS)), ids=["test1", "test2", "test3"])
def test_rfc8032_vectors(vector):
    seed, public, message, signature = _rfc_vectors()[vector]
    assert ed25519.public_key(seed) == public
    assert ed25519.sign(seed, message) == signature
    assert ed25519.verify(public, message, signature) is True
    assert _run_steps(ed25519.Signer(seed, message), 8)[0] == signature
    assert _run_steps(ed25519.Verifier(public, message, signature), 8)[0] is True


def test_curve_constants():
    assert (ed25519.D * 121666 + 121665) % P == 0
    assert ed25519.SQRT_M1 ** 2 % P == P - 1
    x, y = ed25519.BASE_X, ed25519.BASE_Y
    assert y * 5 % P == 4
    assert x % 2 == 0
    assert (-x * x + y * y - 1 - ed25519.D * x * x * y * y) % P == 0, "base point not on the curve"


def test_power_chain_gives_the_inverse_and_the_square_root_candidate():
    rng = random.Random(SEED + 3)
    for z in [1, 2, P - 1, ed25519.BASE_X] + [rng.randrange(1, P) for _ in range(20)]:
        assert sha512._run(ed25519._power(z, 24)) == pow(z, P - 2, P), z
        assert sha512._run(ed25519._power(z, 22)) == pow(z, (P - 5) // 8, P), z


# A plain affine reference for the curve (x, y), independent of the module.
def _ref_add(p1, p2):
    (x1, y1), (x2, y2) = p1, p2
    d = ed25519.D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + d, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - d, P - 2, P) % P
    return x3, y3


def _ref_multiply(n, point):
    result = (0, 1)
    while n:
        if n & 1:
            result = _ref_add(result, point)
        point = _ref_add(point, point)
        n >>= 1
    return result


def _ref_encode(point):
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _ref_point(seed):
    """A point of the curve: [a]B for a scalar from seed (so in the group of B)."""
    return _ref_multiply(seed, (ed25519.BASE_X, ed25519.BASE_Y))


def test_scalar_multiplication_against_the_reference():
    # Signing's regular recoding (one scalar, B) and verification's NAFs
    # (two scalars, B and another point), at the edges and at random.
    base = (ed25519.BASE_X, ed25519.BASE_Y)
    rng = random.Random(SEED + 4)
    edges = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, L - 2, L - 1, L, L + 1, 2 ** 252, 2 ** 253 - 1,
             int("9" * 8, 16), int("7" * 63, 16), sum(1 << i for i in range(0, 253, 2))]
    scalars = edges + [rng.randrange(L) for _ in range(10)]
    for n in scalars:
        assert sha512._run(ed25519._multiply(n, 0, None)) == _ref_encode(_ref_multiply(n % L, base)), n
    other = _ref_point(123456789)
    for s, n in zip(scalars, reversed(scalars)):
        if s >= 2 ** 253 or n >= 2 ** 253:
            continue                    # verification's scalars are below L
        expected = _ref_add(_ref_multiply(s, base), _ref_multiply(n, other))
        assert sha512._run(ed25519._multiply(s, n, other)) == _ref_encode(expected), (s, n)


def test_signing_runs_the_same_operations_for_every_scalar():
    # The regular recoding: the work items (and their costs) of [r]B are
    # the same sequence whatever r is: 85 additions over 256 doublings.
    rng = random.Random(SEED + 5)
    sequences = set()
    for r in [0, 1, 2, L - 1, 2 ** 252] + [rng.randrange(L) for _ in range(10)]:
        work = ed25519._multiply(r, 0, None)
        costs = []
        try:
            while True:
                costs.append(next(work))
        except StopIteration:
            pass
        sequences.add(tuple(costs))
    assert len(sequences) == 1
    costs = sequences.pop()
    assert costs.count(2) == 85 and costs.count(3) == 0


def test_scalar_multiples_of_b_at_the_edges():
    # [0]B, [1]B, [L - 1]B, [L]B encode as RFC 8032 says: [L]B = [0]B = the
    # neutral point, [L - 1]B = -B.
    neutral = (1).to_bytes(32, "little")
    for scalar in (0, L, 2 * L):
        assert sha512._run(ed25519._multiply(scalar, 0, None)) == neutral, scalar
    one = sha512._run(ed25519._multiply(1, 0, None))
    minus_one = sha512._run(ed25519._multiply(L - 1, 0, None))
    assert one == (ed25519.BASE_Y | (ed25519.BASE_X & 1) << 255).to_bytes(32, "little")
    assert minus_one == (ed25519.BASE_Y | ((P - ed25519.BASE_X) & 1) << 255).to_bytes(32, "little")


# --- Ed25519: against cryptography -----------------------------------------------


def _random_cases(count):
    rng = random.Random(SEED)
    for case in range(count):
        seed = bytes(rng.getrandbits(8) for _ in range(32))
        message = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 31, 47, 48, 64, 111, 112, 200, 1400))))
        yield case, seed, message


def _reference_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_ours_and_cryptography_agree_both_ways_on_50_random_keys():
    for case, seed, message in _random_cases(50):
        label = "case %d (seed %d)" % (case, SEED)
        reference = Ed25519PrivateKey.from_private_bytes(seed)
        public = _reference_public(seed)
        assert ed25519.public_key(seed) == public, label
        ours = ed25519.sign(seed, message)
        # Ed25519 is deterministic: the same signature, and each side accepts the other's.
        theirs = reference.sign(message)
        assert ours == theirs, label
        Ed25519PublicKey.from_public_bytes(public).verify(ours, message)
        assert ed25519.verify(public, message, theirs) is True, label
        assert ed25519.verify(public, message + b"\x00", theirs) is False, label


def test_tampered_signatures_are_rejected_like_cryptography_does():
    rng = random.Random(SEED + 1)
    for case, seed, message in _random_cases(10):
        public = _reference_public(seed)
        signature = ed25519.sign(seed, message)
        for _ in range(8):
            bad = _flip(signature, rng.randrange(512))
            ours = ed25519.verify(public, message, bad)
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(bad, message)
                theirs = True
            except InvalidSignature:
                theirs = False
            assert ours is theirs is False, "case %d (seed %d), signature %s" % (case, SEED, bad.hex())


# --- Ed25519: rejections -----------------------------------------------------------


def test_rejects_tampered_message_and_signature():
    seed, public, _, _ = _rfc_vectors()[2]
    message = b"leaderd/claim/v1 term 7"
    signature = ed25519.sign(seed, message)
    assert ed25519.verify(public, message, signature)
    assert not ed25519.verify(public, message[:-1], signature)
    assert not ed25519.verify(public, message + b"!", signature)
    assert not ed25519.verify(public, _flip(message, 3), signature)
    assert not ed25519.verify(public, message, _flip(signature, 0))        # R
    assert not ed25519.verify(public, message, _flip(signature, 300))      # S
    assert not ed25519.verify(_flip(public, 9), message, signature)
    other = _rfc_vectors()[0][1]
    assert not ed25519.verify(other, message, signature)


def test_rejects_s_not_below_l():
    seed, public, message, signature = _rfc_vectors()[1]
    s = int.from_bytes(signature[32:], "little")
    # S + L is the same scalar mod L: accepted by a careless verifier.
    assert ed25519.verify(public, message, _with_s(signature, s + L)) is False
    assert ed25519.verify(public, message, _with_s(signature, L)) is False
    assert ed25519.verify(public, message, _with_s(signature, 2 ** 256 - 1)) is False
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(public).verify(_with_s(signature, s + L), message)


def test_rejects_wrong_lengths():
    seed, public, message, signature = _rfc_vectors()[1]
    for bad_public in (b"", public[:31], public + b"\x00"):
        assert ed25519.verify(bad_public, message, signature) is False
        assert _run_steps(ed25519.Verifier(bad_public, message, signature), 4)[0] is False
    for bad_signature in (b"", signature[:63], signature + b"\x00", signature[:32]):
        assert ed25519.verify(public, message, bad_signature) is False
        assert _run_steps(ed25519.Verifier(public, message, bad_signature), 4)[0] is False


def test_rejects_public_keys_that_do_not_decode():
    seed, public, message, signature = _rfc_vectors()[0]
    # y = P (non-canonical zero... of y), y = 2**255 - 1, and a y whose x**2 is not a square.
    non_square_y = next(y for y in range(2, 100)
                        if pow((y * y - 1) * pow(ed25519.D * y * y + 1, P - 2, P) % P, (P - 1) // 2, P) == P - 1)
    for y, sign in ((P, 0), (2 ** 255 - 1, 0), (non_square_y, 0), (1, 1)):   # (1, 1): x = 0 with the sign bit
        bad = (y | sign << 255).to_bytes(32, "little")
        assert ed25519.verify(bad, message, signature) is False, (y, sign)
    # y = 1 with sign 0 is the neutral point: it decodes, and the signature is wrong for it.
    assert ed25519.verify((1).to_bytes(32, "little"), message, signature) is False


def _signature_with_r(seed, public, message, r_encoding):
    # A signature whose R is the identity point (nonce 0), written as
    # r_encoding: S = h * a with h over that very encoding, so a verifier
    # that reduced R's y modulo p would accept it.
    digest = hashlib.sha512(seed).digest()
    clamped = bytearray(digest[:32])
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    a = int.from_bytes(clamped, "little")
    h = int.from_bytes(hashlib.sha512(r_encoding + public + message).digest(), "little") % ed25519.L
    return r_encoding + (h * a % ed25519.L).to_bytes(32, "little")


def test_rejects_non_canonical_r():
    # The identity point has y = 1, so y + p (< 2^255) encodes it again,
    # non-canonically: RFC 8032 5.1.7 says reject. The same construction
    # with the canonical encoding verifies, so the rejection is about the
    # encoding and nothing else.
    seed, public, message, _ = _rfc_vectors()[0]
    canonical = (1).to_bytes(32, "little")
    non_canonical = (1 + ed25519.P).to_bytes(32, "little")
    assert 1 + ed25519.P < 2 ** 255
    assert ed25519.verify(public, message, _signature_with_r(seed, public, message, canonical)) is True
    assert ed25519.verify(public, message, _signature_with_r(seed, public, message, non_canonical)) is False


def test_arguments_that_are_not_bytes_raise_type_error():
    seed, public, message, signature = _rfc_vectors()[0]
    with pytest.raises(TypeError):
        ed25519.verify(public.hex(), message, signature)
    with pytest.raises(TypeError):
        ed25519.verify(public, "text", signature)
    with pytest.raises(ValueError):
        ed25519.sign(seed[:31], message)
    # bytearray and memoryview are bytes-like.
    assert ed25519.verify(bytearray(public), memoryview(message), bytearray(signature))


# --- Resumable work ------------------------------------------------------------------


def test_verifier_gives_the_same_answers_as_verify_and_really_yields():
    rng = random.Random(SEED + 2)
    ed25519._keys.clear()
    for case, seed, message in _random_cases(12):
        public = ed25519.public_key(seed)
        signature = ed25519.sign(seed, message)
        candidates = [(public, message, signature, True),
                      (public, message + b"x", signature, False),
                      (public, message, _flip(signature, rng.randrange(512)), False),
                      (public, message, _with_s(signature, int.from_bytes(signature[32:], "little") + L), False)]
        for public_, message_, signature_, expected in candidates:
            assert ed25519.verify(public_, message_, signature_) is expected
            ed25519._keys.clear()
            verifier = ed25519.Verifier(public_, message_, signature_)
            result, steps = _run_steps(verifier, 4)
            assert result is expected, "case %d (seed %d)" % (case, SEED)
            assert verifier.done
            assert verifier.step(4) is expected, "a finished Verifier keeps its answer"
            if expected:
                # New key: decode, hash, tables, ~253 doublings, ~100
                # additions, inversion: well over 100 slices of 4 units.
                assert steps > 100, steps


def test_verifier_budget_bounds_each_slice():
    seed, public, message, signature = _rfc_vectors()[2]
    ed25519._keys.clear()
    verifier = ed25519.Verifier(public, message, signature)
    steps_by_budget = {}
    for budget in (1, 4, 16, 10 ** 9):
        ed25519._keys.clear()
        steps_by_budget[budget] = _run_steps(ed25519.Verifier(public, message, signature), budget)[1]
    assert steps_by_budget[1] > steps_by_budget[4] > steps_by_budget[16] > steps_by_budget[10 ** 9] == 1
    with pytest.raises(ValueError):
        verifier.step(0)


def test_verifier_with_cached_key_takes_fewer_steps():
    seed, public, message, signature = _rfc_vectors()[2]
    ed25519._keys.clear()
    fresh = _run_steps(ed25519.Verifier(public, message, signature), 4)[1]
    cached = _run_steps(ed25519.Verifier(public, message, signature), 4)[1]
    assert cached < fresh


def test_key_cache_evicts_and_stays_correct():
    ed25519._keys.clear()
    for case, seed, message in _random_cases(ed25519.KEY_CACHE_SIZE * 2 + 1):
        public = ed25519.public_key(seed)
        signature = ed25519.sign(seed, message)
        assert ed25519.verify(public, message, signature)
        assert len(ed25519._keys) <= ed25519.KEY_CACHE_SIZE


def test_signer_gives_the_same_signature_as_sign():
    for case, seed, message in _random_cases(5):
        ed25519._secret_cache.clear()
        signature, steps = _run_steps(ed25519.Signer(seed, message), 4)
        assert signature == ed25519.sign(seed, message)
        assert steps > 10


def test_work_items_are_small_and_hashing_is_sliced():
    # Even where hashlib has SHA-512 (CPython), verification and signing
    # hash with the pure code in quarter blocks of 12 units, as on a board;
    # no other item costs more than 5 units (a table of odd multiples).
    for seed, public, message, signature in _rfc_vectors():
        for work in (ed25519._verify(public, message, signature), ed25519._sign(seed, message)):
            costs = []
            try:
                while True:
                    costs.append(next(work))
            except StopIteration as stop:
                result = stop.value
            assert result in (True, signature)
            assert max(costs) == 12
            assert max(c for c in costs if c != 12) <= 5
            # 64 + len(message) bytes to hash for k: 1 block (+ the nonce hash when signing).
            assert costs.count(12) % 4 == 0 and costs.count(12) >= 4


async def test_verifier_lets_an_event_loop_run_between_slices():
    # The board's use: verify in slices while another task keeps answering.
    seed, public, message, signature = _rfc_vectors()[0]
    ed25519._keys.clear()
    answered = []

    async def answer_pings():
        while True:
            answered.append(1)
            await asyncio.sleep(0)

    async def check_claim():
        verifier = ed25519.Verifier(public, message, signature)
        while (result := verifier.step(8)) is None:
            await asyncio.sleep(0)
        return result

    pinger = asyncio.ensure_future(answer_pings())
    try:
        assert await check_claim() is True
    finally:
        pinger.cancel()
    assert len(answered) > 20, "the other task ran only %d times" % len(answered)


# --- Under MicroPython -----------------------------------------------------------------

# The script run by micropython: every check prints "ok NAME"; the last line
# counts them. CASES is filled in with signatures made by `cryptography`.
MICROPYTHON_SCRIPT = r'''
import sys
import binascii
import ed25519
import sha512
unhex = binascii.unhexlify
passed = 0


def check(name, condition):
    global passed
    if not condition:
        print("FAIL " + name)
        sys.exit(1)
    print("ok " + name)
    passed += 1


check("sha512.sha512 agrees with the pure code", sha512.sha512(b"abc") == sha512.pure_sha512(b"abc"))
for message, digest in SHA512_VECTORS:
    check("sha512 %d bytes" % len(message), sha512.pure_sha512(message) == unhex(digest))
for length in (111, 112, 127, 128, 129, 239, 240, 255, 256):
    check("sha512 padding %d" % length, sha512.pure_sha512(b"a" * length) == unhex(PADDING_DIGESTS[length]))
number = 0
for seed, public, message, signature in RFC8032_VECTORS:
    number += 1
    seed, public, message, signature = unhex(seed), unhex(public), unhex(message), unhex(signature)
    check("rfc8032 test %d public key" % number, ed25519.public_key(seed) == public)
    check("rfc8032 test %d sign" % number, ed25519.sign(seed, message) == signature)
    check("rfc8032 test %d verify" % number, ed25519.verify(public, message, signature) is True)
    check("rfc8032 test %d tampered" % number, ed25519.verify(public, message + b"x", signature) is False)
    s = int.from_bytes(signature[32:], "little")
    check("rfc8032 test %d S + L" % number,
          ed25519.verify(public, message, signature[:32] + (s + ed25519.L).to_bytes(32, "little")) is False)
    check("rfc8032 test %d short signature" % number, ed25519.verify(public, message, signature[:63]) is False)
    verifier = ed25519.Verifier(public, message, signature)
    steps = 0
    result = None
    while result is None:
        result = verifier.step(4)
        steps += 1
    check("rfc8032 test %d Verifier (%d steps)" % (number, steps), result is True and steps > 10)
for public, message, signature, expected in CASES:
    check("cryptography case %s" % signature[:8],
          ed25519.verify(unhex(public), unhex(message), unhex(signature)) is expected)
print("board crypto checks: %d passed" % passed)
'''


def _micropython_cases():
    """(public, message, signature, expected) in hex: made by cryptography, some tampered."""
    cases = []
    for case, seed, message in _random_cases(4):
        reference = Ed25519PrivateKey.from_private_bytes(seed)
        signature = reference.sign(message)
        public = _reference_public(seed)
        cases.append((public.hex(), message.hex(), signature.hex(), True))
        cases.append((public.hex(), message.hex(), _flip(signature, 7 + case).hex(), False))
    return cases


def test_vectors_and_verifier_under_micropython():
    interpreter = require_micropython()
    padding = dict((n, hashlib.sha512(b"a" * n).hexdigest()) for n in (111, 112, 127, 128, 129, 239, 240, 255, 256))
    script = "\n".join((
        "SHA512_VECTORS = %r" % (SHA512_VECTORS,),
        "PADDING_DIGESTS = %r" % (padding,),
        "RFC8032_VECTORS = %r" % (RFC8032_VECTORS,),
        "CASES = %r" % (_micropython_cases(),),
    )) + MICROPYTHON_SCRIPT
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join((".frozen", str(BOARD_DIR)))
    result = subprocess.run(
        [interpreter, "-X", "heapsize=4m", "-c", script],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    assert result.returncode == 0, "micropython exited %d:\n%s" % (result.returncode, result.stdout)
    lines = result.stdout.strip().splitlines()
    assert "FAIL" not in result.stdout, result.stdout
    expected_checks = 1 + len(SHA512_VECTORS) + 9 + 7 * len(RFC8032_VECTORS) + len(_micropython_cases())
    assert lines[-1] == "board crypto checks: %d passed" % expected_checks, result.stdout
    assert "ok rfc8032 test 3 verify" in lines, result.stdout


def test_bench_runs_under_micropython():
    interpreter = require_micropython()
    result = subprocess.run(
        [interpreter, "-X", "heapsize=4m", "bench/board_crypto.py", "1"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout
    assert "ed25519 verify" in result.stdout and "hmac-sha256 1400 B" in result.stdout, result.stdout
    assert "heap: verify" in result.stdout, result.stdout
