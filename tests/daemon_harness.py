"""A harness for real `leaderd run` processes on 127.0.0.1: clusters, signals, waits.

Used by tests/test_daemon.py and meant for later tests and bench scripts. A
Cluster owns a directory with each node's config, keys, API socket and log;
it starts nodes as real processes (`python -m agent.cli run --config FILE`,
stdout and stderr appended to the node's log), sends them signals, and waits
on conditions with deadlines. Every wait that times out raises
HarnessTimeout with the tail of every node's log, so a failure says what the
agents were doing. Nothing here sleeps as synchronisation: waits poll a
condition until it holds or the deadline passes.

    with Cluster(tmp_dir, 3) as cluster:       # node-0 has the highest priority
        cluster.start_all()
        info = cluster.wait_leader(timeout=10)  # all nodes agree
        cluster.kill(info["leader_index"])      # SIGKILL, waits for the exit

Only processes this harness started are ever signalled, by their PIDs.
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

__all__ = ["Cluster", "HarnessTimeout", "run_cli", "free_udp_port", "wait_for", "deep_merge", "write_keyring"]

# How often wait_for re-checks its condition (seconds). Polling a condition
# with a deadline, not sleeping as synchronisation.
POLL_S = 0.03
# Characters of each node's log shown when a wait fails.
LOG_TAIL_CHARS = 6000
# sockaddr_un.sun_path is 108 bytes with its NUL.
MAX_SOCKET_PATH = 107


class HarnessTimeout(AssertionError):
    """A condition did not hold before its deadline; the message carries the logs."""


def free_udp_port(host="127.0.0.1"):
    """A UDP port on host that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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


def wait_for(predicate, timeout, what, describe=None):
    """predicate()'s first truthy result, polled until timeout seconds pass.

    An exception from predicate (an agent not answering yet, say) counts as
    false and is remembered. On timeout raises HarnessTimeout naming `what`,
    the last result or exception, and describe() (e.g. the logs) if given.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = predicate()
        except (ClientError, OSError, KeyError, ValueError, TypeError) as exc:
            result, last = None, "%s: %s" % (type(exc).__name__, exc)
        else:
            if result:
                return result
            last = "last result: %r" % (result,)
        if time.monotonic() >= deadline:
            message = "timed out after %.1fs waiting for %s (%s)" % (timeout, what, last)
            if describe is not None:
                message += "\n" + describe()
            raise HarnessTimeout(message)
        time.sleep(POLL_S)


def run_cli(*args, timeout=20, env=None, cwd=None):
    """Runs `leaderd ARGS...` (as `python -m agent.cli`) to completion; a CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "agent.cli"] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=_child_env(env), cwd=cwd)


def _child_env(extra=None):
    """os.environ without systemd's variables (a test sets them on purpose), plus extra."""
    env = dict(os.environ)
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LEADERD_SOCKET"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _find_prctl():
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()  # looked up here: preexec_fn must not import or allocate much
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the thread that started it dies (Linux), so no
    agent outlives an interrupted test run. Start nodes from a thread that lives as long."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


class Node:
    """One node of a Cluster: its files, address and (while running) its process."""

    def __init__(self, index, name, port, directory, socket_path):
        self.index = index
        self.name = name
        self.port = port
        self.address = "127.0.0.1:%d" % port
        self.dir = directory
        self.config_path = os.path.join(directory, "leaderd.yaml")
        self.log_path = os.path.join(directory, "leaderd.log")
        self.socket_path = socket_path
        self.key_path = None
        self.pub_path = None
        self.config = None          # the dict last written to config_path
        self.proc = None            # subprocess.Popen while started
        self.starts = 0
        self.env = None             # extra environment for the process


class Cluster:
    """n `leaderd run` processes on 127.0.0.1 that seed each other; see the module docstring.

    tmp_dir       a directory this cluster may fill (one sub-directory per node)
    n             number of nodes, named name_prefix-0 .. name_prefix-(n-1)
    profile       gossip profile (default "local": fastest detection)
    keys          give each node an Ed25519 key and everyone a trusted_keys_dir
                  holding every node's public key (signed claims)
    keyring       authenticate packets with a shared cluster key
    priorities    list of n priorities; default 200, 190, 180, ... so node 0 leads
    extra_config  a dict merged into every node's config, or a function
                  index -> dict (None values delete keys)
    preempt_delay election.preempt_delay (short, so tests do not wait)
    cluster_name  cluster.name (unique by default, so concurrent clusters ignore each other)
    """

    def __init__(self, tmp_dir, n, profile="local", keys=True, keyring=True, priorities=None,
                 extra_config=None, preempt_delay="300ms", cluster_name=None, name_prefix="node",
                 log_level="info"):
        if priorities is not None and len(priorities) != n:
            raise ValueError("priorities: expected %d values, got %d" % (n, len(priorities)))
        self.root = os.path.abspath(os.fspath(tmp_dir))
        os.makedirs(self.root, exist_ok=True)
        self.n = n
        self.profile = profile
        self.priorities = list(priorities) if priorities is not None else [max(1, 200 - 10 * i) for i in range(n)]
        self.extra_config = extra_config
        self.preempt_delay = preempt_delay
        self.cluster_name = cluster_name or "test-" + os.urandom(4).hex()
        self.log_level = log_level
        self._short_dir = None
        self._ever_started = []     # every Popen this harness made, for stop_all
        self.nodes = []
        for i in range(n):
            name = "%s-%d" % (name_prefix, i)
            directory = os.path.join(self.root, name)
            os.makedirs(directory, exist_ok=True)
            self.nodes.append(Node(i, name, free_udp_port(), directory, self._socket_path(directory, name)))
        self.trusted_dir = None
        self.keyring_path = None
        if keys:
            key_dir = os.path.join(self.root, "keys")
            self.trusted_dir = os.path.join(self.root, "trusted")
            os.makedirs(key_dir, exist_ok=True)
            os.makedirs(self.trusted_dir, exist_ok=True)
            for node in self.nodes:
                node.key_path, node.pub_path = keyfiles.keygen(node.name, key_dir)
                shutil.copyfile(node.pub_path, os.path.join(self.trusted_dir, node.name + ".pub"))
        if keyring:
            self.keyring_path = os.path.join(self.root, "keyring")
            write_keyring(self.keyring_path, [keyfiles.generate_cluster_key()])
        for node in self.nodes:
            self.write_config(node.index, self.base_config(node.index))

    # --- Files ------------------------------------------------------------

    def _socket_path(self, directory, name):
        path = os.path.join(directory, "api.sock")
        if len(path.encode()) <= MAX_SOCKET_PATH:
            return path
        if self._short_dir is None:  # a deep tmp dir: sockets go to a short one beside /tmp
            self._short_dir = tempfile.mkdtemp(prefix="leaderd-")
        return os.path.join(self._short_dir, name + ".sock")

    def base_config(self, i):
        """The config dict node i is started with (before write_config changes)."""
        node = self.nodes[i]
        cfg = {
            "node": {"name": node.name, "priority": self.priorities[i], "bind": node.address},
            "cluster": {"name": self.cluster_name,
                        "seeds": [other.address for other in self.nodes if other is not node]},
            "election": {"preempt": True, "preempt_delay": self.preempt_delay},
            "gossip": {"profile": self.profile},
            "api": {"socket": node.socket_path, "mode": "0600"},
            "log": {"level": self.log_level},
        }
        if node.key_path:
            cfg["election"]["signing_key_file"] = node.key_path
            cfg["election"]["trusted_keys_dir"] = self.trusted_dir
        if self.keyring_path:
            cfg["cluster"]["keyring_file"] = self.keyring_path
        extra = self.extra_config(i) if callable(self.extra_config) else self.extra_config
        return deep_merge(cfg, extra)

    def write_config(self, i, cfg):
        """Writes cfg (a dict) as node i's YAML config; takes effect at the next start or SIGHUP."""
        node = self.nodes[i]
        text = yaml.safe_dump(cfg, sort_keys=False)
        tmp = node.config_path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, node.config_path)  # a reload never reads half a file
        node.config = copy.deepcopy(cfg)

    def write_raw_config(self, i, text):
        """Writes text as node i's config file verbatim (e.g. a broken one)."""
        node = self.nodes[i]
        tmp = node.config_path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, node.config_path)

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

    def start(self, i, wait=True, env=None, timeout=15):
        """Starts node i's agent; with wait, returns once its API socket answers.

        env: extra environment variables for this node, kept for its later
        starts (NOTIFY_SOCKET, say). Returns the Popen.
        """
        node = self.nodes[i]
        if self.running(i):
            raise RuntimeError("%s is already running (pid %d)" % (node.name, node.proc.pid))
        if env is not None:
            node.env = dict(env)
        node.starts += 1
        with open(node.log_path, "a") as log:
            log.write("=== harness: start #%d of %s at %.3f ===\n" % (node.starts, node.name, time.time()))
            log.flush()
            node.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", "--config", node.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_child_env(node.env), cwd=node.dir, preexec_fn=_die_with_parent)
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
            if node.proc is None or node.proc.poll() is not None:
                raise HarnessTimeout("%s exited with %s before answering on %s\n%s" % (
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
        """Sends sig to node i's process (only a process this harness started)."""
        node = self.nodes[i]
        if not self.running(i):
            raise RuntimeError("%s is not running" % node.name)
        node.proc.send_signal(sig)

    def kill(self, i, sig=signal.SIGKILL, wait=True, timeout=10):
        """Sends sig (default SIGKILL) to node i; with wait, returns its exit code once it exits."""
        self.send_signal(i, sig)
        if wait:
            return self.wait_exit(i, timeout)
        return None

    def wait_exit(self, i, timeout=10):
        """Node i's exit code, waiting up to timeout seconds for it to exit."""
        node = self.nodes[i]
        try:
            return node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessTimeout("%s (pid %d) still running %.1fs after being told to stop\n%s"
                                 % (node.name, node.proc.pid, timeout, self.logs())) from None

    def restart(self, i, sig=signal.SIGKILL, wait=True, timeout=15):
        """Stops node i with sig if running, then starts it again."""
        if self.running(i):
            self.kill(i, sig)
        return self.start(i, wait=wait, timeout=timeout)

    def stop_all(self, timeout=5):
        """Stops every process this harness started: SIGTERM, then SIGKILL after timeout."""
        alive = [p for p in self._ever_started if p.poll() is None]
        for proc in alive:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for proc in alive:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()

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
        """Waits until every running node sees every running node alive and the others dead or left."""
        live = self.live()
        names = {self.nodes[i].name for i in live}

        def converged():
            for i in live:
                members = self.members(i)
                for name in names:
                    if members.get(name, {}).get("state") != "alive":
                        return None
            return True
        return self.wait_for(converged, timeout, "every running node to see %s alive" % ", ".join(sorted(names)))

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

    def log_text(self, i):
        """Node i's whole log."""
        try:
            with open(self.nodes[i].log_path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def logs(self, tail=LOG_TAIL_CHARS):
        """The tail of every node's log, with each process's state: for failure messages."""
        parts = []
        for node in self.nodes:
            proc = node.proc
            state = "never started" if proc is None else (
                "running, pid %d" % proc.pid if proc.poll() is None else "exited %s" % proc.returncode)
            text = self.log_text(node.index)
            if len(text) > tail:
                text = "...\n" + text[-tail:]
            parts.append("----- %s (%s, %s) %s -----\n%s" % (node.name, node.address, state, node.log_path, text))
        return "\n".join(parts)


def write_keyring(path, keys):
    """Writes a keyring file (one base64 key per line, first = primary) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(key + "\n" for key in keys))
    os.chmod(path, 0o600)
