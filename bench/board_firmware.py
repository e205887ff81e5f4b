"""Builds a MicroPython unix interpreter with the board agent frozen in (micropython/manifest.py).

    python bench/board_firmware.py --micropython ~/src/micropython [--out build/micropython-unix]

The unix port stands in for a board's firmware: frozen bytecode runs from
the binary, not the heap, as it runs from flash on an ESP32 or a Pico W, so
`-X heapsize=128k` then measures what a board's heap holds: the agent's
state. tests/test_board_harness.py and the bench/board_*.py scripts use
build/micropython-unix/micropython when it exists.

Needs a MicroPython source tree (git clone https://github.com/micropython/micropython;
no submodules are needed), a C compiler and make. The build leaves out
what needs submodules (ffi, btree, ssl) and freezes asyncio and leaderd
only; it does not modify the source tree (objects go under --out).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "micropython", "manifest.py")
DEFAULT_OUT = os.path.join(ROOT, "build", "micropython-unix")
# Unix-port features that need git submodules; a board has none of them either.
MAKE_FLAGS = ("VARIANT=standard", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
              "MICROPY_SSL_AXTLS=0", "MICROPY_SSL_MBEDTLS=0")


def build(source, out, jobs=None, log=print):
    """Builds into out; returns the path of the interpreter. Raises RuntimeError on failure."""
    source = os.path.abspath(source)
    if not os.path.isfile(os.path.join(source, "ports", "unix", "Makefile")):
        raise RuntimeError("%s is not a MicroPython source tree (no ports/unix/Makefile)" % source)
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="leaderd-fw-")
    try:
        manifest = os.path.join(work, "manifest.py")
        with open(manifest, "w") as handle:
            handle.write('include("$(MPY_DIR)/extmod/asyncio")\ninclude(%r)\n' % MANIFEST)
        # The manifest tool insists on micropython-lib being checked out even
        # when nothing is required from it: point it at an empty stand-in.
        lib = os.path.join(work, "micropython-lib")
        os.makedirs(lib)
        open(os.path.join(lib, "README.md"), "w").close()
        jobs = str(jobs or os.cpu_count() or 1)
        build_dir = os.path.join(out, "build")
        steps = (
            ["make", "-j", jobs, "-C", os.path.join(source, "mpy-cross"),
             "BUILD=" + os.path.join(out, "build-mpy-cross")],
            ["make", "-j", jobs, "-C", os.path.join(source, "ports", "unix"), "BUILD=" + build_dir,
             "FROZEN_MANIFEST=" + manifest, "MPY_LIB_DIR=" + lib,
             "MICROPY_MPYCROSS=" + os.path.join(out, "build-mpy-cross", "mpy-cross"),
             "MPY_CROSS=" + os.path.join(out, "build-mpy-cross", "mpy-cross")] + list(MAKE_FLAGS),
        )
        for step in steps:
            log("$ " + " ".join(step))
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError("failed (exit %d):\n%s%s" % (
                    result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
        binary = os.path.join(build_dir, "micropython")
        target = os.path.join(out, "micropython")
        shutil.copyfile(binary, target)
        os.chmod(target, 0o755)
        log("built %s" % target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--micropython", required=True, metavar="DIR", help="a MicroPython source tree")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default %(default)s)")
    parser.add_argument("-j", "--jobs", type=int, help="parallel make jobs (default: CPU count)")
    args = parser.parse_args(argv)
    try:
        build(args.micropython, args.out, args.jobs)
    except RuntimeError as exc:
        print("board_firmware.py: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
