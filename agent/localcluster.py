"""A local cluster: real `leaderd run` processes on 127.0.0.1, their files, signals and waits.

The one launcher behind `leaderd demo` (agent/demo.py), the real-process
tests (tests/daemon_harness.py) and the benches (bench/daemon_*.py,
bench/integrity_agents.py, bench/board_*.py). A Cluster owns a directory:

    NAME.yaml  NAME.log  NAME.sock    each node's config, log and API socket
    keys/NAME.key  keys/NAME.pub      each node's Ed25519 key pair (signed claims)
    trusted/NAME.pub                  every node's public key (the trust list)
    keyring                           the cluster key (authenticated packets)

It starts nodes as real processes (`python -m agent.cli run --config
NAME.yaml`, stdout and stderr appended to NAME.log, marked at each start)
that Linux stops when the thread that started them dies, signals them by
PID, and waits on conditions with deadlines: every wait polls until its
condition holds or raises WaitTimeout with the tail of every node's log.
Nothing here sleeps as synchronisation.

    with Cluster(None, 3) as cluster:            # a fresh temporary directory; node-0 leads
        cluster.start_all()
        info = cluster.wait_leader(timeout=10)   # all nodes agree
        cluster.kill(info["leader_index"])       # SIGKILL, waits for the exit

Only processes this module started are ever signalled, by their PIDs.
"""

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

from agent import keys as keyfiles
from agent.client import Client, ClientError

__all__ = ["Cluster", "Node", "WaitTimeout", "wait_for", "run_cli", "child_env", "die_with_parent",
           "free_udp_port", "free_udp_ports", "deep_merge", "write_keyring", "config_text", "START_MARK"]

# How often wait_for re-checks its condition (seconds): polling with a deadline.
POLL_S = 0.03
# Bytes of each node's log shown when a wait fails.
LOG_TAIL_BYTES = 6000
# sockaddr_un.sun_path is 108 bytes with its NUL.
MAX_SOCKET_PATH = 107
# stop_all: SIGTERM (the agent leaves), then SIGKILL after this many seconds.
STOP_TIMEOUT_S = 5.0
# What a predicate of wait_for may raise while the agents are not there yet.
NOT_YET = (ClientError, OSError, KeyError, ValueError, TypeError)
# The parent's own service variables: the agents are not that service.
PARENT_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LEADERD_SOCKET")
# Written into a node's log at each start: START_MARK % (start number, name, time).
START_MARK = "=== start #%d of %s at %s ==="
# The directory holding the `agent` package: children import this very copy.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline; the message says what, and carries the logs."""


# --- Pieces ---------------------------------------------------------------------

def free_udp_ports(count, host="127.0.0.1"):
    """count distinct UDP ports on host that were free a moment ago (bound to port 0 together)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_udp_port(host="127.0.0.1"):
    """One UDP port on host that was free a moment ago."""
    return free_udp_ports(1, host)[0]


def deep_merge(base, extra):
    """A copy of the dict base with extra merged in, recursively; a None value in extra deletes the key."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_keyring(path, keys):
    """Writes a keyring file (one base64 key per line, first = primary) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(key + "\n" for key in keys))
    os.chmod(path, 0o600)


def config_text(cfg, comments=None, header=None):
    """cfg (sections of keys) as YAML, with "# comment" after each "section.key" named in comments."""
    lines = ["# " + line for line in header.splitlines()] if header else []
    section = None
    for line in yaml.safe_dump(cfg, sort_keys=False, width=1000).splitlines():
        key = None
        if line[:1].strip():
            section = key = line.split(":", 1)[0]
        elif line.startswith("  ") and line[2:3] not in (" ", "-"):
            key = "%s.%s" % (section, line[2:].split(":", 1)[0])
        comment = (comments or {}).get(key)
        lines.append("%s  # %s" % (line, comment) if comment else line)
    return "\n".join(lines) + "\n"


def child_env(extra=None):
    """os.environ for a child agent or CLI: no PARENT_ONLY_ENV, unbuffered, this package first, plus extra."""
    env = dict(os.environ)
    for key in PARENT_ONLY_ENV:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def _find_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()  # looked up once here: a preexec_fn must not import or allocate much
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig=signal.SIGKILL):
    """A preexec_fn: Linux sends the child sig when the thread that started it dies, even by SIGKILL.

    Start children from a thread that lives as long as they should. A child
    whose parent died before prctl took effect exits at once. None where
    there is no prctl (not Linux).
    """
    if _PRCTL is None:
        return None
    parent, signum = os.getpid(), int(sig)

    def preexec():
        _PRCTL(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def wait_for(predicate, timeout, what, describe=None, interval=POLL_S, pause=time.sleep, errors=NOT_YET):
    """predicate()'s first truthy result, checked every `interval` seconds until `timeout` seconds pass.

    An exception in `errors` from predicate (an agent not answering yet,
    say) counts as false and is remembered; others propagate. On timeout
    raises WaitTimeout naming `what`, the last result or exception, and
    describe() (e.g. the logs) if given. pause(seconds) waits between checks.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except errors as exc:
            result, last = None, "%s: %s" % (type(exc).__name__, exc)
        else:
            if result:
                return result
            last = "last result: %r" % (result,)
        if time.monotonic() >= deadline:
            message = "timed out after %.1fs waiting for %s (%s)" % (timeout, what, last)
            if describe is not None:
                message += "\n" + describe()
            raise WaitTimeout(message)
        pause(interval)


def run_cli(*args, timeout=20, env=None, cwd=None):
    """Runs `leaderd ARGS...` (as `python -m agent.cli`) to completion; a CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "agent.cli"] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=child_env(env), cwd=cwd)


def _short_tmp_dir(prefix):
    """A new private directory, under /tmp when the default one is too deep for socket paths."""
    path = tempfile.mkdtemp(prefix=prefix)
    if len(os.path.join(path, "x" * 24 + ".sock").encode()) > MAX_SOCKET_PATH and os.path.isdir("/tmp"):
        os.rmdir(path)
        path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    return path


# --- The cluster ------------------------------------------------------------------

class Node:
    """One node of a Cluster: its name, priority, files, address and (while started) its process."""

    def __init__(self, index, name, priority, port, root, socket_path):
        self.index = index
        self.name = name
        self.priority = priority
        self.port = port
        self.address = "127.0.0.1:%d" % port
        self.config_path = os.path.join(root, name + ".yaml")
        self.log_path = os.path.join(root, name + ".log")
        self.socket_path = socket_path
        self.key_path = None
        self.pub_path = None
        self.config = None          # the dict last written to config_path
        self.proc = None            # the subprocess.Popen of its latest start
        self.starts = 0
        self.env = None             # extra environment for its process, kept across starts
        self.argv = None            # a command line instead of `leaderd run`, kept across starts


class Cluster:
    """n `leaderd run` processes on 127.0.0.1 that seed each other; see the module docstring.

    root          the directory to fill, or None for a new temporary one that
                  close() removes (unless keep); `prefix` names it
    n             number of nodes, named name_prefix-0 .. name_prefix-(n-1), or `names`
    profile       gossip profile (default "local": fastest detection)
    keys          give each node an Ed25519 key and everyone a trusted_keys_dir
                  holding every node's public key (signed claims)
    keyring       authenticate packets with a shared cluster key
    priorities    list of n priorities; default 200, 190, 180, ... so node 0 leads
    extra_config  a dict merged into every node's config, or a function
                  index -> dict (None values delete keys)
    preempt_delay election.preempt_delay (short, so tests do not wait)
    cluster_name  cluster.name (unique by default, so concurrent clusters ignore each other)
    comments      {"section.key": comment} written beside those keys; header: a
                  comment opening each config, formatted with {name} and {n}
    parent_death_signal  what Linux sends the agents if their starter dies
    """

    def __init__(self, root, n, profile="local", keys=True, keyring=True, priorities=None,
                 extra_config=None, preempt_delay="300ms", cluster_name=None, name_prefix="node",
                 log_level="info", names=None, comments=None, header=None, prefix="leaderd-",
                 keep=False, parent_death_signal=signal.SIGKILL):
        names = list(names) if names is not None else ["%s-%d" % (name_prefix, i) for i in range(n)]
        if len(names) != n or (priorities is not None and len(priorities) != n):
            raise ValueError("names and priorities: expected %d of each" % n)
        self.n = n
        self.profile = profile
        self.priorities = list(priorities) if priorities is not None else [max(1, 200 - 10 * i) for i in range(n)]
        self.extra_config = extra_config
        self.preempt_delay = preempt_delay
        self.cluster_name = cluster_name or "local-" + os.urandom(4).hex()
        self.log_level = log_level
        self.comments = comments
        self.header = header
        self.parent_death_signal = parent_death_signal
        self.keep = keep
        self.owns_root = root is None
        self.root = _short_tmp_dir(prefix) if root is None else os.path.abspath(os.fspath(root))
        self._short_dir = None
        self._ever_started = []     # every Popen this cluster made, for stop_all
        self.nodes = []
        self.key_dir = self.trusted_dir = self.keyring_path = None
        try:
            self._write_files(names, keys, keyring)
        except BaseException:
            self.close()  # no half-made directory of ours stays behind
            raise

    def _write_files(self, names, keys, keyring):
        os.makedirs(self.root, exist_ok=True)
        ports = free_udp_ports(self.n)
        self.nodes = [Node(i, name, self.priorities[i], ports[i], self.root, self._socket_path(name))
                      for i, name in enumerate(names)]
        if keys:
            self.key_dir = os.path.join(self.root, "keys")
            self.trusted_dir = os.path.join(self.root, "trusted")
            os.makedirs(self.key_dir, 0o700, exist_ok=True)
            os.makedirs(self.trusted_dir, 0o755, exist_ok=True)
            for node in self.nodes:
                node.key_path, node.pub_path = self.add_key(node.name)
        if keyring:
            self.keyring_path = os.path.join(self.root, "keyring")
            write_keyring(self.keyring_path, [keyfiles.generate_cluster_key()])
        for node in self.nodes:
            self.write_config(node.index, self.base_config(node.index))

    # --- Files ------------------------------------------------------------

    def _socket_path(self, name):
        path = os.path.join(self.root, name + ".sock")
        if len(path.encode()) <= MAX_SOCKET_PATH:
            return path
        if self._short_dir is None:  # a deep root: sockets go to a short directory of their own
            self._short_dir = _short_tmp_dir("leaderd-")
        return os.path.join(self._short_dir, name + ".sock")

    def add_key(self, name):
        """An Ed25519 key pair for name in keys/, its public key trusted by every node: (key_path, pub_path).

        Nodes started before the call learn the new key at a SIGHUP.
        """
        key_path, pub_path = keyfiles.keygen(name, self.key_dir)
        shutil.copyfile(pub_path, os.path.join(self.trusted_dir, name + ".pub"))
        return key_path, pub_path

    def base_config(self, i):
        """The config dict node i is started with (before write_config changes)."""
        node = self.nodes[i]
        cfg = {
            "node": {"name": node.name, "priority": node.priority, "bind": node.address},
            "cluster": {"name": self.cluster_name,
                        "seeds": [other.address for other in self.nodes if other is not node]},
            "election": {"preempt": True, "preempt_delay": self.preempt_delay},
            "gossip": {"profile": self.profile},
            "api": {"socket": node.socket_path, "mode": "0600"},
            "log": {"level": self.log_level},
        }
        if self.keyring_path:
            cfg["cluster"]["keyring_file"] = self.keyring_path
        if node.key_path:
            cfg["election"]["signing_key_file"] = node.key_path
            cfg["election"]["trusted_keys_dir"] = self.trusted_dir
        extra = self.extra_config(i) if callable(self.extra_config) else self.extra_config
        return deep_merge(cfg, extra)

    def write_config(self, i, cfg):
        """Writes cfg (a dict) as node i's YAML config; takes effect at the next start or SIGHUP."""
        node = self.nodes[i]
        header = self.header.format(name=node.name, n=self.n) if self.header else None
        self.write_raw_config(i, config_text(cfg, self.comments, header))
        node.config = copy.deepcopy(cfg)

    def write_raw_config(self, i, text):
        """Writes text as node i's config file verbatim (e.g. a broken one); a reload never reads half of it."""
        path = self.nodes[i].config_path
        with open(path + ".tmp", "w") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)

    def config(self, i):
        """A copy of the config dict last written for node i."""
        return copy.deepcopy(self.nodes[i].config)

    def index(self, name):
        """The index of the node called name."""
        for node in self.nodes:
            if node.name == name:
                return node.index
        raise KeyError(name)

    def name(self, i):
        return self.nodes[i].name

    def port(self, i):
        return self.nodes[i].port

    def address(self, i):
        """"127.0.0.1:PORT" of node i."""
        return self.nodes[i].address

    def socket_path(self, i):
        return self.nodes[i].socket_path

    def config_path(self, i):
        return self.nodes[i].config_path

    def log_path(self, i):
        return self.nodes[i].log_path

    # --- Processes ----------------------------------------------------------

    def start(self, i, wait=True, env=None, timeout=15, argv=None):
        """Starts node i's agent; with wait, returns once its API socket answers. Returns the Popen.

        env: extra environment variables (NOTIFY_SOCKET, say); argv: a command
        line to run instead of `leaderd run --config FILE`. Both are kept for
        the node's later starts.
        """
        node = self.nodes[i]
        if self.running(i):
            raise RuntimeError("%s is already running (pid %d)" % (node.name, node.proc.pid))
        if env is not None:
            node.env = dict(env)
        if argv is not None:
            node.argv = list(argv)
        node.starts += 1
        os.makedirs(os.path.dirname(node.socket_path), 0o700, exist_ok=True)  # stop_all removes a short one
        command = node.argv or [sys.executable, "-m", "agent.cli", "run", "--config", node.config_path]
        with open(node.log_path, "a") as log:
            now = time.time()
            stamp = "%s.%03d" % (time.strftime("%H:%M:%S", time.localtime(now)), int(now * 1000) % 1000)
            log.write(START_MARK % (node.starts, node.name, stamp) + "\n")
            log.flush()
            node.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=child_env(node.env), cwd=self.root,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the starter only
                preexec_fn=die_with_parent(self.parent_death_signal))
        self._ever_started.append(node.proc)
        if wait:
            self.wait_ready(i, timeout)
        return node.proc

    def start_all(self, wait=True, timeout=20):
        """Starts every node that is not running, all at once; with wait, until every socket answers."""
        started = [i for i in range(self.n) if not self.running(i)]
        for i in started:
            self.start(i, wait=False)
        if wait:
            for i in started:
                self.wait_ready(i, timeout)

    def wait_ready(self, i, timeout=15):
        """Waits until node i answers on its API socket (raising at once if it exited)."""
        node = self.nodes[i]

        def ready():
            if not self.running(i):
                raise WaitTimeout("%s exited with %s before answering on %s\n%s" % (
                    node.name, None if node.proc is None else node.proc.returncode,
                    node.socket_path, self.logs()))
            return self.client(i, timeout=1.0).status()
        return self.wait_for(ready, timeout, "%s to answer on %s" % (node.name, node.socket_path))

    def running(self, i):
        """Whether node i's process was started and has not exited."""
        proc = self.nodes[i].proc
        return proc is not None and proc.poll() is None

    def pid(self, i):
        proc = self.nodes[i].proc
        return None if proc is None else proc.pid

    def send_signal(self, i, sig):
        """Sends sig to node i's process (only a process this cluster started)."""
        node = self.nodes[i]
        if not self.running(i):
            raise RuntimeError("%s is not running" % node.name)
        node.proc.send_signal(sig)

    def kill(self, i, sig=signal.SIGKILL, wait=True, timeout=10):
        """Sends sig (default SIGKILL) to node i; with wait, returns its exit code once it exits."""
        self.send_signal(i, sig)
        return self.wait_exit(i, timeout) if wait else None

    def wait_exit(self, i, timeout=10):
        """Node i's exit code, waiting up to timeout seconds for it to exit."""
        node = self.nodes[i]
        try:
            return node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout("%s (pid %d) still running %.1fs after being told to stop\n%s"
                              % (node.name, node.proc.pid, timeout, self.logs())) from None

    def restart(self, i, sig=signal.SIGKILL, wait=True, timeout=15):
        """Stops node i with sig if running, then starts it again."""
        if self.running(i):
            self.kill(i, sig)
        return self.start(i, wait=wait, timeout=timeout)

    def stop_all(self, timeout=STOP_TIMEOUT_S, interrupted=None):
        """Stops every process this cluster started: SIGTERM, then SIGKILL; returns how many ran.

        SIGKILL follows after timeout seconds, or as soon as interrupted()
        (if given) is true. Removes the short socket directory, if any.
        """
        alive = [proc for proc in self._ever_started if proc.poll() is None]
        for proc in alive:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for proc in alive:
            while proc.poll() is None and time.monotonic() < deadline and not (interrupted and interrupted()):
                try:
                    proc.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    pass
        for proc in alive:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
        return len(alive)

    def close(self):
        """stop_all(), then removes the directory if this cluster made it (unless keep)."""
        self.stop_all()
        if self.owns_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- Asking the agents ----------------------------------------------------

    def client(self, i, timeout=2.0):
        """An agent.client.Client for node i's socket."""
        return Client(self.nodes[i].socket_path, timeout=timeout)

    def cli(self, i, *args, timeout=20):
        """Runs `leaderd ARGS... --socket <node i's socket>`; a CompletedProcess."""
        return run_cli(*(list(args) + ["--socket", self.nodes[i].socket_path]), timeout=timeout)

    def members(self, i):
        """{name: member dict} as node i sees the cluster."""
        return {m["name"]: m for m in self.client(i).members()["members"]}

    def live(self):
        """Indices of the nodes whose processes are running."""
        return [i for i in range(self.n) if self.running(i)]

    # --- Waiting ----------------------------------------------------------------

    def wait_for(self, predicate, timeout, what):
        """wait_for() with every node's log in the failure message."""
        return wait_for(predicate, timeout, what, describe=self.logs)

    def wait_leader(self, observers=None, leader=None, min_term=None, timeout=15):
        """The `leader` reply all observers (default: running nodes) agree on; waits for it.

        Agreement means the same non-null leader and term everywhere, that
        leader being `leader` (a name or index) when given and its term above
        min_term when given. The returned dict is one observer's reply plus
        "leader_index" and "replies" (every observer's).
        """
        observers = self.live() if observers is None else list(observers)
        if isinstance(leader, int):
            leader = self.nodes[leader].name

        def agreed():
            replies = {self.nodes[i].name: self.client(i).leader() for i in observers}
            seen = {(r["leader"], r["term"]) for r in replies.values()}
            if len(seen) != 1:
                return None
            name, term = seen.pop()
            if name is None or (leader is not None and name != leader):
                return None
            if min_term is not None and term <= min_term:
                return None
            result = dict(replies[self.nodes[observers[0]].name])
            result["leader_index"] = self.index(name)
            result["replies"] = replies
            return result
        what = "nodes %s to agree on leader %s%s" % (
            ", ".join(self.nodes[i].name for i in observers), leader or "(any)",
            "" if min_term is None else " with a term above %d" % min_term)
        return self.wait_for(agreed, timeout, what)

    def wait_member(self, observers, subject, states, timeout=15, check=None):
        """Waits until every observer sees node `subject` (name or index) in one of `states`.

        check, if given, is a function member_dict -> bool that must also
        hold. Returns {observer name: member dict}.
        """
        observers = list(observers)
        name = self.nodes[subject].name if isinstance(subject, int) else subject
        states = (states,) if isinstance(states, str) else tuple(states)

        def seen():
            views = {}
            for i in observers:
                member = self.members(i).get(name)
                if member is None or member["state"] not in states:
                    return None
                if check is not None and not check(member):
                    return None
                views[self.nodes[i].name] = member
            return views
        return self.wait_for(seen, timeout, "%s to see %s as %s" % (
            ", ".join(self.nodes[i].name for i in observers), name, "/".join(states)))

    def wait_converged(self, timeout=15):
        """Waits until every running node sees every running node alive."""
        live = self.live()
        names = {self.nodes[i].name for i in live}

        def converged():
            for i in live:
                members = self.members(i)
                if any(members.get(name, {}).get("state") != "alive" for name in names):
                    return None
            return True
        return self.wait_for(converged, timeout, "every running node to see %s alive" % ", ".join(sorted(names)))

    def settle(self, leader=0, timeout=15):
        """Starts every node that is down, waits until all see all alive and follow `leader`; its reply."""
        self.start_all(timeout=timeout)
        self.wait_converged(timeout)
        return self.wait_leader(leader=leader, timeout=timeout)

    def wait_log(self, i, text, timeout=10, after=0):
        """Waits until node i's log contains text after byte offset `after`; returns the offset past it."""
        def found():
            with open(self.nodes[i].log_path, "rb") as handle:
                handle.seek(after)
                data = handle.read()
            at = data.find(text.encode())
            return after + at + len(text) if at >= 0 else None
        return self.wait_for(found, timeout, "%r in the log of %s" % (text, self.nodes[i].name))

    def log_size(self, i):
        """The current length of node i's log (an offset for wait_log)."""
        try:
            return os.path.getsize(self.nodes[i].log_path)
        except FileNotFoundError:
            return 0

    def log_text(self, i, tail=None):
        """Node i's log, or its last `tail` bytes ("" before its first start)."""
        try:
            with open(self.nodes[i].log_path, "rb") as handle:
                if tail is not None:
                    handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail))
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def logs(self, tail=LOG_TAIL_BYTES):
        """The tail of every node's log, with each process's state: for failure messages."""
        parts = []
        for node in self.nodes:
            proc = node.proc
            state = "never started" if proc is None else (
                "running, pid %d" % proc.pid if proc.poll() is None else "exited %s" % proc.returncode)
            text = self.log_text(node.index, tail)
            if self.log_size(node.index) > tail:
                text = "...\n" + text
            parts.append("----- %s (%s, %s) %s -----\n%s" % (node.name, node.address, state, node.log_path, text))
        return "\n".join(parts)
