"""Figures for the board crypto: Ed25519 verify and sign, SHA-512, HMAC-SHA256.

Runs under CPython and MicroPython, from the repository root:

    python bench/board_crypto.py [RUNS]
    micropython -X heapsize=4m bench/board_crypto.py [RUNS]

MicroPython finds ed25519 and sha512 in micropython/ (as source) unless
MICROPYPATH names a build first: to time the .mpy files a board runs,

    python micropython/build.py --out /tmp/mpy
    MICROPYPATH=/tmp/mpy:.frozen micropython -X heapsize=4m bench/board_crypto.py

On a board, copy micropython/sha512.py and micropython/ed25519.py to its
root and agent/__init__.py, agent/core/__init__.py and agent/core/auth.py
under /agent, then `mpremote run bench/board_crypto.py`. Times are the mean and the minimum over RUNS runs (default 5; the
minimum is the one to compare across machines, the mean shows the noise).
"Heap" is MicroPython's gc.mem_alloc: what importing the two modules keeps,
the bytes one operation allocates with the collector off (the garbage a
board must collect), and the most a Verifier keeps alive between two slices
(from a new key: the decoded key is cached too); on CPython, tracemalloc's
peak.
"""

import gc
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

# Paths: the repository root (for agent.core.auth) and micropython/ (the
# board modules), found from this script's own path; "." on a board. On
# MicroPython they go after MICROPYPATH's entries, so that a build there wins.
_script = sys.argv[0] if sys.argv and sys.argv[0] else ""
_cut = _script.rfind("/")
_root = _script[:_cut] if _cut >= 0 else "."
_cut = _root.rfind("/")
_root = _root[:_cut] if _cut >= 0 else ("." if _root in ("", ".", "bench") else _root)
for _path in (_root + "/micropython", _root):
    if _path not in sys.path:
        if MICROPYTHON:
            sys.path.append(_path)
        else:
            sys.path.insert(0, _path)

# What the imports keep (MicroPython): sha512 alone, then ed25519 on top.
_IMPORT_HEAP = []
if hasattr(gc, "mem_alloc"):
    gc.collect()
    _IMPORT_HEAP.append(gc.mem_alloc())
import sha512  # noqa: E402
if hasattr(gc, "mem_alloc"):
    gc.collect()
    _IMPORT_HEAP.append(gc.mem_alloc())
import ed25519  # noqa: E402
if hasattr(gc, "mem_alloc"):
    gc.collect()
    _IMPORT_HEAP.append(gc.mem_alloc())
from agent.core.auth import HmacKey  # noqa: E402
DATAGRAM_BYTES = 1400
# An 18-byte name: the bytes a claim signature covers are about 50 bytes.
CLAIM = b"leaderd/claim/v1" + bytes(8) + b"\x12board-kitchen-0001" + b"\x05" + bytes(4)

if hasattr(time, "ticks_us"):
    def _now_us():
        return time.ticks_us()

    def _elapsed_us(start):
        return time.ticks_diff(time.ticks_us(), start)
else:
    def _now_us():
        return time.perf_counter()

    def _elapsed_us(start):
        return (time.perf_counter() - start) * 1e6


def _time(function, runs):
    """(mean, min) in microseconds of function() over runs calls."""
    total = 0
    best = None
    for _ in range(runs):
        gc.collect()
        start = _now_us()
        function()
        took = _elapsed_us(start)
        total += took
        if best is None or took < best:
            best = took
    return total / runs, best


def _ms(us):
    return "%9.3f ms" % (us / 1000)


def _line(label, figures, note=""):
    mean, best = figures
    print("%-38s mean %s  min %s  %s" % (label, _ms(mean), _ms(best), note))


def _allocated(function):
    """Bytes function() allocates with the collector off (MicroPython), or None."""
    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    before = gc.mem_alloc()
    gc.disable()
    try:
        function()
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def _tracemalloc_peak(function):
    """tracemalloc's peak of function() in bytes (CPython), or None."""
    try:
        import tracemalloc
    except ImportError:
        return None
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _slices(public_key, message, signature, budget):
    """(steps, longest slice in us, most bytes kept alive between slices or None) of a Verifier."""
    ed25519._keys.clear()
    gc.collect()
    base = gc.mem_alloc() if hasattr(gc, "mem_alloc") else None
    verifier = ed25519.Verifier(public_key, message, signature)
    steps = 0
    longest = 0
    kept = 0
    while True:
        start = _now_us()
        result = verifier.step(budget)
        took = _elapsed_us(start)
        steps += 1
        if took > longest:
            longest = took
        if base is not None:
            gc.collect()
            kept = max(kept, gc.mem_alloc() - base)
        if result is not None:
            break
    assert result is True, "Verifier rejected a good signature"
    return steps, longest, (kept if base is not None else None)


def _primitives(runs):
    """Per-operation costs in microseconds of the big-int work the crypto is made of."""
    p = ed25519.P
    m = (1 << 255) - 1
    a = ed25519.BASE_X
    b = ed25519.BASE_Y
    w = 0xFEDCBA9876543210
    v = 0x0123456789ABCDEF
    mask = 0xFFFFFFFFFFFFFFFF
    n = 2000
    figures = {}

    def loop():
        for _ in range(n):
            pass

    def mul():
        for _ in range(n):
            a * b

    def mul_fold():
        for _ in range(n):
            x = a * b
            x = (x & m) + 19 * (x >> 255)
            x = (x & m) + 19 * (x >> 255)

    def mul_mod():
        for _ in range(n):
            a * b % p

    def add64():
        for _ in range(n):
            (w + v) & mask

    for name, function in (("empty loop iteration", loop), ("256x256-bit multiply", mul),
                           ("multiply + fold mod P", mul_fold), ("multiply + % P", mul_mod),
                           ("64-bit add + mask", add64)):
        figures[name] = _time(function, runs)[1] / n
    return figures


def main(argv):
    """Prints the figures; argv[1] is the number of runs."""
    runs = int(argv[1]) if len(argv) > 1 else 5
    if MICROPYTHON:
        build = "%s %s" % (sys.implementation.name, ".".join(str(x) for x in sys.implementation.version[:3]))
    else:
        build = "%s %s" % (sys.implementation.name, sys.version.split()[0])
    print("interpreter: %s on %s, %d-bit small ints; hashlib.sha512: %s; runs: %d" % (
        build, sys.platform, 64 if sys.maxsize > 2 ** 32 else 32,
        "yes" if sha512.NATIVE else "no (pure Python)", runs))

    seed = bytes(range(32))
    public = ed25519.public_key(seed)
    signature = ed25519.sign(seed, CLAIM)
    assert ed25519.verify(public, CLAIM, signature)

    def verify_fresh():
        ed25519._keys.clear()
        assert ed25519.verify(public, CLAIM, signature)

    def verify_cached():
        assert ed25519.verify(public, CLAIM, signature)

    def sign_cached():
        ed25519.sign(seed, CLAIM)

    def sign_fresh():
        ed25519._secret_cache.clear()
        ed25519.sign(seed, CLAIM)

    datagram = bytes(i & 0xFF for i in range(DATAGRAM_BYTES))
    key = HmacKey(b"leaderd-bench-cluster-key-000001")

    _line("ed25519 verify (%d-byte claim)" % len(CLAIM), _time(verify_fresh, runs), "new key: decoded first")
    _line("ed25519 verify, key decoded (cached)", _time(verify_cached, runs))
    _line("ed25519 sign, seed expanded", _time(sign_cached, runs))
    _line("ed25519 sign, first with a seed", _time(sign_fresh, runs), "= public key + sign")
    _line("sha512 %d B, pure Python" % DATAGRAM_BYTES, _time(lambda: sha512.pure_sha512(datagram), runs),
          "(%d blocks)" % ((DATAGRAM_BYTES + 17 + 127) // 128))
    if sha512.NATIVE:
        _line("sha512 %d B, hashlib" % DATAGRAM_BYTES, _time(lambda: sha512.sha512(datagram), runs))
    _line("hmac-sha256 %d B (HmacKey.tag)" % DATAGRAM_BYTES, _time(lambda: key.tag(datagram), runs))

    for budget in (4, 8):
        steps, longest, kept = _slices(public, CLAIM, signature, budget)
        print("Verifier.step(%d): %d slices, longest %s%s" % (
            budget, steps, _ms(longest).strip(),
            "" if kept is None else ", at most %d B kept between slices" % kept))

    if hasattr(gc, "mem_alloc"):
        heap = _IMPORT_HEAP
        print("heap: import sha512 %d B, ed25519 %d B more: %d B (from %s)" % (
            heap[1] - heap[0], heap[2] - heap[1], heap[2] - heap[0], getattr(ed25519, "__file__", "?")))
        gc.collect()
        print("heap: %d B in use after import, %d B free" % (gc.mem_alloc(), gc.mem_free()))
        for label, function in (("verify", verify_fresh), ("verify, key cached", verify_cached),
                                ("sign", sign_cached),
                                ("sha512 %d B" % DATAGRAM_BYTES, lambda: sha512.pure_sha512(datagram)),
                                ("hmac-sha256 %d B" % DATAGRAM_BYTES, lambda: key.tag(datagram))):
            print("heap: %-28s allocates %8d B (collector off)" % (label, _allocated(function)))
    else:
        for label, function in (("verify", verify_fresh), ("sign", sign_cached)):
            peak = _tracemalloc_peak(function)
            if peak is not None:
                print("heap: %-28s tracemalloc peak %8d B" % (label, peak))

    for name, us in sorted(_primitives(runs).items()):
        print("primitive: %-28s %8.3f us" % (name, us))


if __name__ == "__main__":
    main(sys.argv)
