"""Faults for real agents on 127.0.0.1: loopback partitions (nftables) and watch recorders.

Used by tests/test_integrity_agents.py and bench/integrity_agents.py, next to
agent/localcluster.py (which starts the agents).

- LoopbackPartition drops UDP between groups of ports on 127.0.0.1 with an
  nftables table of its own (a unique name; `heal()` and `close()` delete
  it). Rules sit on the input hook, so a sender sees no error: the datagram
  is lost as on a cut link (a drop on the output hook would make sendto fail
  with EPERM instead). Needs root and the `nft` command: see
  nft_unavailable_reason().
- WatchRecorder runs `leaderd watch --json` against one agent in a
  subprocess and keeps every event with the monotonic time it was read, so
  a test can count leader changes in a window afterwards.

Only processes and tables made here are ever stopped or deleted.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

from agent.localcluster import WaitTimeout, child_env, die_with_parent, wait_for

__all__ = ["LoopbackPartition", "WatchRecorder", "nft_unavailable_reason", "leader_changes"]

TABLE_PREFIX = "leaderd_part_"
# Seconds an nft command may take.
NFT_TIMEOUT_S = 10


def _nft(*args, stdin=None):
    """Runs `nft ARGS...`; a CompletedProcess (never raises on a non-zero exit)."""
    return subprocess.run(["nft"] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=NFT_TIMEOUT_S)


def nft_unavailable_reason():
    """Why loopback partitions cannot be made here (a skip reason), or None if they can.

    Checks root, the `nft` command, and that the kernel lets us add and
    delete a table (a container without CAP_NET_ADMIN does not).
    """
    if os.geteuid() != 0:
        return "needs root to add nftables rules (running as uid %d)" % os.geteuid()
    if shutil.which("nft") is None:
        return "needs the nft command (Debian/Ubuntu: apt-get install nftables)"
    name = "%sprobe_%d_%s" % (TABLE_PREFIX, os.getpid(), os.urandom(3).hex())
    made = _nft("add", "table", "inet", name)
    if made.returncode != 0:
        return "nft cannot add a table here: %s" % (made.stderr.strip() or made.returncode)
    _nft("delete", "table", "inet", name)
    return None


def remove_stale_tables():
    """Deletes tables this module made in processes that no longer exist (a killed run)."""
    listed = _nft("list", "tables")
    for line in listed.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] != "table" or not parts[2].startswith(TABLE_PREFIX):
            continue
        fields = parts[2][len(TABLE_PREFIX):].split("_")
        pid = fields[-2] if len(fields) >= 2 else ""
        if pid.isdigit() and not os.path.exists("/proc/%s" % pid):
            _nft("delete", "table", parts[1], parts[2])


class LoopbackPartition:
    """Drops UDP on 127.0.0.1 between groups of ports while cut; a context manager.

    groups: lists of UDP ports; datagrams between ports of different groups
    are dropped in both directions, those within a group pass. Nothing is
    changed until cut(); heal() deletes the table; close() (also on exit)
    heals if needed.
    """

    def __init__(self, groups):
        self.groups = [sorted(set(int(p) for p in group)) for group in groups]
        if len(self.groups) < 2 or any(not group for group in self.groups):
            raise ValueError("a partition needs at least two non-empty groups of ports, got %r" % (groups,))
        seen = set()
        for group in self.groups:
            if seen & set(group):
                raise ValueError("port in two groups: %r" % (groups,))
            seen |= set(group)
        self.table = "%s%d_%s" % (TABLE_PREFIX, os.getpid(), os.urandom(4).hex())
        self.cut_at = None
        self.healed_at = None

    @property
    def active(self):
        """Whether the table is in place (cut and not yet healed)."""
        return self.cut_at is not None and self.healed_at is None

    def ruleset(self):
        """The nft script cut() loads: one input chain, one drop rule per ordered pair of groups."""
        lines = ["table inet %s {" % self.table,
                 "  chain input {",
                 "    type filter hook input priority -10; policy accept;"]
        for a in self.groups:
            for b in self.groups:
                if a is b:
                    continue
                lines.append("    ip saddr 127.0.0.1 ip daddr 127.0.0.1 udp sport { %s } udp dport { %s } "
                             "counter drop" % (", ".join(map(str, a)), ", ".join(map(str, b))))
        lines += ["  }", "}", ""]
        return "\n".join(lines)

    def cut(self):
        """Installs the table: from now on the groups cannot reach each other."""
        if self.active:
            raise RuntimeError("partition %s is already cut" % self.table)
        remove_stale_tables()
        done = _nft("-f", "-", stdin=self.ruleset())
        if done.returncode != 0:
            raise RuntimeError("nft -f failed (%d): %s\n%s" % (done.returncode, done.stderr.strip(), self.ruleset()))
        self.cut_at = time.monotonic()
        self.healed_at = None

    def dropped_packets(self):
        """Packets the rules have dropped so far (0 when not cut)."""
        if not self.active:
            return 0
        listed = _nft("-j", "list", "table", "inet", self.table)
        total = 0
        try:
            for item in json.loads(listed.stdout).get("nftables", []):
                for expr in item.get("rule", {}).get("expr", []):
                    if "counter" in expr:
                        total += expr["counter"].get("packets", 0)
        except ValueError:
            return 0
        return total

    def heal(self):
        """Deletes the table: the groups reach each other again."""
        if not self.active:
            return
        done = _nft("delete", "table", "inet", self.table)
        if done.returncode != 0:
            raise RuntimeError("nft delete table inet %s failed: %s" % (self.table, done.stderr.strip()))
        self.healed_at = time.monotonic()

    def close(self):
        """Heals if cut; always leaves no table behind (also if heal() raised before)."""
        if self.cut_at is None:
            return
        if self.active:
            try:
                self.heal()
            except RuntimeError:
                pass
        if _nft("list", "table", "inet", self.table).returncode == 0:
            _nft("delete", "table", "inet", self.table)
        self.healed_at = self.healed_at or time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def leader_changes(events, since=None, until=None):
    """The leader_changed events (from a WatchRecorder) whose leader really changed (new != old).

    A change of term under the same leader (it claimed again above a rival)
    is not a change of leader. since/until: monotonic bounds on the time an
    event was read.
    """
    out = []
    for at, event in events:
        if event.get("event") != "leader_changed" or event.get("new") == event.get("old"):
            continue
        if (since is not None and at < since) or (until is not None and at > until):
            continue
        out.append(event)
    return out


class WatchRecorder:
    """`leaderd watch --json --socket PATH` in a subprocess; keeps (monotonic time, event) pairs.

    start() returns once the stream's first line (the agent's current
    leader) has arrived, so no later change can be missed; stop() ends the
    subprocess (SIGTERM, then SIGKILL). A context manager.
    """

    def __init__(self, socket_path, label=None):
        self.socket_path = socket_path
        self.label = label or socket_path
        self.proc = None
        self._events = []
        self._lock = threading.Lock()
        self._reader = None
        self.ended = False       # the stream closed (the agent exited, or stop())
        self.stderr = ""

    def start(self, timeout=10):
        """Starts the watch and waits for its first event; returns that event."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "watch", "--json", "--socket", self.socket_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(), preexec_fn=die_with_parent())
        self._reader = threading.Thread(target=self._read, name="watch " + self.label, daemon=True)
        self._reader.start()

        def first():
            if self.ended and not self.events():
                raise WaitTimeout("watch of %s ended before its first event: %s" % (self.label, self.stderr))
            events = self.events()
            return events[0][1] if events else None
        return wait_for(first, timeout, "the first watch event of %s" % self.label)

    def _read(self):
        for line in self.proc.stdout:
            at = time.monotonic()
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line}
            with self._lock:
                self._events.append((at, event))
        self.ended = True

    def events(self):
        """A copy of every (time, event) read so far."""
        with self._lock:
            return list(self._events)

    def leader_changes(self, since=None, until=None):
        """leader_changes() of this recorder's events."""
        return leader_changes(self.events(), since, until)

    def stop(self, timeout=5):
        """Ends the watch subprocess (only ours, by its pid) and its reader thread."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)
        try:
            self.stderr = proc.stderr.read() or ""
        except (OSError, ValueError):
            pass
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
