"""The daemon for real: `leaderd run` processes on 127.0.0.1, driven through their sockets and CLI.

Layer (d) of STYLE.md habit 10: real UDP sockets, real processes, real key
files, real UNIX sockets. Every wait polls a condition until a deadline
(tests/daemon_harness.py), and a failed wait shows the log of every agent.
No sleep is used as synchronisation.

Clusters (profile `local`, signed claims, an authenticated keyring):
- `cluster`: 3 nodes with fast failure detection, shared by the tests of
  agreement, the CLI, the API, reload, ping and crash failover;
- `graceful`: 3 nodes whose failure detection is made slow on purpose
  (suspicion_mult 10: no death within 2 s), so that a handover measured
  well inside that time cannot have come from failure detection; each node
  has a health check on a file;
- single-purpose agents for hooks and systemd notify.
Each test states its preconditions with `steady()`, which (re)starts what is
down and waits until every node follows the expected leader.
"""

import json
import os
import queue
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest
import yaml

from agent import config as config_mod
from agent import keys as keyfiles
from agent import state as state_file
from agent.core import profile as profiles
from daemon_harness import Cluster, deep_merge, free_udp_port, run_cli, write_keyring

# Seconds any single condition may take before a test fails. Generous: the
# expected times are a fraction of this (the local profile probes every 200 ms).
SETTLE_S = 15
LOCAL = profiles.local()
SLOW_SUSPICION_MULT = 10


def steady(c, leader=0):
    """Precondition: every node runs, all see each other alive and follow node `leader`."""
    c.start_all()
    c.wait_converged(SETTLE_S)
    return c.wait_leader(leader=leader, timeout=SETTLE_S)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("main"), 3)
    try:
        steady(c)  # a cold start that elects no one fails every test of this cluster at once
        yield c
    finally:
        c.stop_all()


def unhealthy_flag(c, i):
    """The file whose existence makes node i of the `graceful` cluster fail its health check."""
    return os.path.join(c.root, "node-%d.unhealthy" % i)


def _graceful_config(root):
    def extra(i):
        flag = os.path.join(root, "node-%d.unhealthy" % i)
        return {
            "gossip": {"suspicion_mult": SLOW_SUSPICION_MULT},
            "health": {"command": ["/bin/sh", "-c", "test ! -e %s" % shlex.quote(flag)],
                       "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1},
        }
    return extra


@pytest.fixture(scope="module")
def graceful(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("graceful"))
    c = Cluster(root, 3, extra_config=_graceful_config(root))
    try:
        steady(c)
        yield c
    finally:
        c.stop_all()


class LineReader:
    """Lines of a child's stdout, read by a thread, handed out with deadlines."""

    def __init__(self, stream):
        self._lines = queue.Queue()
        self.seen = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def next_json(self, deadline, what):
        """The next line parsed as JSON; fails at the deadline or at end of stream."""
        left = deadline - time.monotonic()
        try:
            line = self._lines.get(timeout=max(0.0, left))
        except queue.Empty:
            raise AssertionError("timed out waiting for %s; lines so far: %s" % (what, self.seen)) from None
        if line is None:
            raise AssertionError("stream ended while waiting for %s; lines so far: %s" % (what, self.seen))
        self.seen.append(line.rstrip("\n"))
        return json.loads(line)


# --- 1. agreement -------------------------------------------------------------


def test_three_signed_agents_agree_on_the_highest_priority_leader(cluster):
    steady(cluster)
    # The CLI, as a user runs it: `leaderd leader --json`, on all three at once.
    procs = [subprocess.Popen([sys.executable, "-m", "agent.cli", "leader", "--json",
                               "--socket", cluster.socket_path(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    replies = []
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, "leader --json on %s: exit %s\n%s" % (cluster.name(i), proc.returncode, err)
        replies.append(json.loads(out))
    terms = {r["term"] for r in replies}
    assert len(terms) == 1 and terms.pop() >= 1, replies
    for i, reply in enumerate(replies):
        assert reply["leader"] == "node-0", reply
        assert reply["address"] == cluster.address(0), reply
        assert reply["self"] == cluster.name(i), reply
        assert reply["is_leader"] is (i == 0), reply
        assert reply["insecure"] is False, "claims must be signed and verified: %r" % reply
    # The same through agent.client, plus the security state in status.
    for i in range(3):
        assert cluster.client(i).leader()["leader"] == "node-0"
        status = cluster.client(i).status()
        assert status["authenticated"] is True, status
        assert status["members"] == {"alive": 3}, status
        assert status["stats"]["signature_checks"] >= (0 if i == 0 else 1), status


# --- 5. is-leader exit codes -------------------------------------------------------


def test_is_leader_exit_codes(cluster, tmp_path):
    steady(cluster)
    assert cluster.cli(0, "is-leader").returncode == 0
    assert cluster.cli(1, "is-leader").returncode == 1
    assert cluster.cli(2, "is-leader").returncode == 1
    missing = run_cli("is-leader", "--socket", tmp_path / "nothing-here.sock")
    assert missing.returncode == 2, missing
    assert "nothing-here.sock" in missing.stderr, missing.stderr
    # A stale socket file: bound once, nobody listening any more.
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    assert stat.S_ISSOCK(os.stat(stale).st_mode)
    refused = run_cli("is-leader", "--socket", stale)
    assert refused.returncode == 2, refused
    assert "nothing listens" in refused.stderr, refused.stderr


def test_a_second_agent_on_a_socket_in_use_exits_1_with_a_message(cluster, tmp_path):
    steady(cluster)
    # Another cluster (so the running one ignores it), the socket of node-0.
    intruder = {"node": {"name": "intruder", "bind": "127.0.0.1:%d" % free_udp_port()},
                "cluster": {"name": "elsewhere"}, "gossip": {"profile": "local"},
                "api": {"socket": cluster.socket_path(0)}}
    path = tmp_path / "intruder.yaml"
    path.write_text(yaml.safe_dump(intruder))
    ran = run_cli("run", "--config", path, timeout=20)
    assert ran.returncode == 1, ran
    assert "another agent is already serving on %s" % cluster.socket_path(0) in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    assert cluster.client(0).leader()["self"] == "node-0"


# --- 7. bad requests on the API socket and bad datagrams ---------------------------


def _raw_exchange(path, data, deadline_s=5.0):
    """Sends data on a fresh connection, half-closes, returns every reply line (as dicts)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(deadline_s)
        sock.connect(path)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent may close first (oversized): its reply is still readable
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return [json.loads(line) for line in b"".join(chunks).splitlines() if line.strip()]


def test_garbage_and_oversized_requests_get_errors_and_the_daemon_keeps_answering(cluster):
    steady(cluster)
    path = cluster.socket_path(1)
    garbage = [
        b"hello\n",
        b"{not json\n",
        b"[1, 2, 3]\n",
        b'{"nocmd": true}\n',
        b'{"cmd": 42}\n',
        b'{"cmd": "launch-missiles"}\n',
        b"\xff\xfe\x00\x01\n",
        b'"just a string"\n',
    ]
    # One connection, every bad line answered in order, then a good request
    # on the same connection still works.
    replies = _raw_exchange(path, b"".join(garbage) + b'{"cmd": "leader"}\n')
    assert len(replies) == len(garbage) + 1, replies
    for line, reply in zip(garbage, replies):
        assert reply["ok"] is False and reply["error"], (line, reply)
    assert replies[-1]["ok"] is True and replies[-1]["leader"] == "node-0", replies[-1]
    # An oversized request (no newline within the limit): an error, then the connection closes.
    replies = _raw_exchange(path, b'{"cmd": "leader", "pad": "' + b"x" * 100000 + b'"}\n')
    assert len(replies) == 1 and replies[0]["ok"] is False, replies
    assert "longer than" in replies[0]["error"], replies
    # A connection that sends nothing, and one that stops mid-line.
    assert _raw_exchange(path, b"") == []
    partial = _raw_exchange(path, b'{"cmd": "lea')
    assert len(partial) == 1 and partial[0]["ok"] is False, partial
    # Garbage and oversized datagrams on the gossip port are dropped and counted.
    before = cluster.client(1).status()["stats"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"\x00garbage", ("127.0.0.1", cluster.port(1)))
        udp.sendto(os.urandom(3000), ("127.0.0.1", cluster.port(1)))
        udp.sendto(b"", ("127.0.0.1", cluster.port(1)))

    def dropped():
        stats = cluster.client(1).status()["stats"]
        total = sum(v for k, v in stats.items() if k.startswith("dropped_"))
        return total >= sum(v for k, v in before.items() if k.startswith("dropped_")) + 3
    cluster.wait_for(dropped, SETTLE_S, "node-1 to count 3 more dropped datagrams")
    # Still answering, still a member, and the leader unchanged.
    assert cluster.running(1)
    assert cluster.client(1).leader()["leader"] == "node-0"
    assert cluster.members(0)["node-1"]["state"] == "alive"


# --- 12. SIGHUP reload --------------------------------------------------------------


def test_sighup_reloads_priority_and_survives_a_broken_config(cluster):
    steady(cluster)
    original = cluster.config(2)
    assert original["node"]["priority"] == 180
    try:
        changed = cluster.config(2)
        changed["node"]["priority"] = 185  # still below node-0 and node-1: no election
        cluster.write_config(2, changed)
        cluster.send_signal(2, signal.SIGHUP)
        cluster.wait_member([0, 1], "node-2", "alive", SETTLE_S, check=lambda m: m["priority"] == 185)
        assert cluster.client(2).status()["priority"] == 185

        mark = cluster.log_size(2)
        broken = cluster.config(2)
        broken["node"]["priority"] = 300
        cluster.write_config(2, broken)
        cluster.send_signal(2, signal.SIGHUP)
        cluster.wait_log(2, "config not reloaded", SETTLE_S, after=mark)
        cluster.wait_log(2, "node.priority", SETTLE_S, after=mark)
        assert cluster.running(2), "a broken config on SIGHUP must not stop the agent"
        status = cluster.client(2).status()
        assert status["priority"] == 185, "the running config must be kept: %r" % status["priority"]
        assert status["stats"]["reload_errors"] >= 1, status["stats"]
        assert cluster.members(0)["node-2"]["priority"] == 185
    finally:
        cluster.write_config(2, original)
        if cluster.running(2):
            cluster.send_signal(2, signal.SIGHUP)
            cluster.wait_member([0, 1], "node-2", "alive", SETTLE_S, check=lambda m: m["priority"] == 180)


# --- 13. leaderd ping -------------------------------------------------------------


def test_ping_answers_with_the_node_name_and_times_out_with_a_wrong_keyring(cluster, tmp_path):
    steady(cluster)
    ok = run_cli("ping", cluster.address(1), "--config", cluster.config_path(0), "--timeout", "5s")
    assert ok.returncode == 0, ok
    assert "answer from node-1 at %s" % cluster.address(1) in ok.stdout, ok.stdout

    wrong = tmp_path / "wrong-keyring"
    write_keyring(str(wrong), [keyfiles.generate_cluster_key()])
    drops_before = cluster.client(1).status()["stats"]["dropped_auth"]
    started = time.monotonic()
    bad = run_cli("ping", cluster.address(1), "--config", cluster.config_path(0),
                  "--keyring", wrong, "--timeout", "1s")
    elapsed = time.monotonic() - started
    assert bad.returncode == 1, bad
    assert "no answer from" in bad.stderr, bad.stderr
    # The whole command, interpreter start included, ends soon after its timeout.
    assert 1.0 <= elapsed < 6.0, "ping with --timeout 1s took %.2fs" % elapsed
    cluster.wait_for(lambda: cluster.client(1).status()["stats"]["dropped_auth"] > drops_before,
                     SETTLE_S, "node-1 to count the unauthenticated ping as dropped_auth")


# --- 2. crash failover ----------------------------------------------------------------


def test_kill_9_of_the_leader_elects_the_next_with_a_higher_term(cluster):
    before = steady(cluster)
    cluster.kill(0, signal.SIGKILL)
    after = cluster.wait_leader([1, 2], leader="node-1", min_term=before["term"], timeout=SETTLE_S)
    assert after["term"] > before["term"]
    assert after["replies"]["node-1"]["is_leader"] is True
    assert after["replies"]["node-2"]["is_leader"] is False
    assert after["replies"]["node-2"]["address"] == cluster.address(1)
    cluster.wait_member([1, 2], "node-0", "dead", SETTLE_S)


# --- 4. rejoin and preemption ---------------------------------------------------------


def test_restarted_node_rejoins_with_a_higher_incarnation_and_takes_the_lead_back(cluster):
    # Precondition: node-0 is down and known dead by the others, node-1 leads
    # (as test_kill_9_of_the_leader... leaves it; made so when run alone).
    if cluster.running(0) or not (cluster.running(1) and cluster.running(2)):
        steady(cluster)
        cluster.kill(0, signal.SIGKILL)
    dead = cluster.wait_member([1, 2], "node-0", "dead", SETTLE_S)
    dead_incarnation = max(m["incarnation"] for m in dead.values())
    interim = cluster.wait_leader([1, 2], leader="node-1", timeout=SETTLE_S)

    cluster.start(0)
    rejoined = cluster.wait_member([1, 2], "node-0", "alive", SETTLE_S,
                                   check=lambda m: m["incarnation"] > dead_incarnation)
    assert cluster.members(0)["node-0"]["state"] == "alive"
    assert cluster.client(0).status()["incarnation"] > dead_incarnation, rejoined
    # preempt: true with a short preempt_delay: node-0, the highest priority, leads again.
    back = cluster.wait_leader(leader="node-0", min_term=interim["term"], timeout=SETTLE_S)
    assert back["replies"]["node-0"]["is_leader"] is True


# --- 6. leaderd watch ----------------------------------------------------------------


def test_watch_json_reports_leader_changed_when_the_leader_is_killed(cluster):
    before = steady(cluster)
    watch = subprocess.Popen([sys.executable, "-m", "agent.cli", "watch", "--json",
                              "--socket", cluster.socket_path(1)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = LineReader(watch.stdout)
        deadline = time.monotonic() + SETTLE_S
        first = lines.next_json(deadline, "the watch's first line (the current leader)")
        assert first["event"] == "leader" and first["leader"] == "node-0", first
        cluster.kill(0, signal.SIGKILL)
        deadline = time.monotonic() + SETTLE_S
        changes = []
        while not any(e.get("new") == "node-1" for e in changes):
            event = lines.next_json(deadline, "a leader_changed event naming node-1")
            if event.get("event") == "leader_changed":
                changes.append(event)
        assert changes[0]["old"] == "node-0", changes
        assert changes[-1]["term"] > before["term"], changes
        assert changes[-1]["leader"] == "node-1" and changes[-1]["self"] == "node-1", changes
        # Each event says what it saw, not the state when it was sent.
        assert all(e["leader"] == e["new"] and e["is_leader"] == (e["new"] == "node-1") for e in changes), changes
        assert watch.poll() is None, "watch must keep streaming"
    finally:
        watch.terminate()
        watch.wait(10)
        watch.stdout.close()
        watch.stderr.close()


# --- 11. health check ------------------------------------------------------------------


def test_failing_health_check_makes_the_leader_step_down_and_recovery_takes_it_back(graceful):
    c = graceful
    flag = unhealthy_flag(c, 0)
    if os.path.exists(flag):
        os.unlink(flag)
    before = steady(c)
    try:
        with open(flag, "w"):
            pass
        during = c.wait_leader(leader="node-1", min_term=before["term"], timeout=SETTLE_S)
        status = c.client(0).status()
        assert status["healthy"] is False and status["eligible"] is False, status
        c.wait_member([1, 2], "node-0", "alive", SETTLE_S, check=lambda m: m["eligible"] is False)
    finally:
        os.unlink(flag)
    after = c.wait_leader(leader="node-0", min_term=during["term"], timeout=SETTLE_S)
    assert c.client(0).status()["healthy"] is True
    assert after["term"] > during["term"] > before["term"]


def test_reloading_a_fixed_health_check_makes_an_unhealthy_node_eligible_again(graceful):
    c = graceful
    flag = unhealthy_flag(c, 0)
    if os.path.exists(flag):
        os.unlink(flag)
    before = steady(c)
    original = c.config(0)
    try:
        with open(flag, "w"):
            pass
        during = c.wait_leader(leader="node-1", min_term=before["term"], timeout=SETTLE_S)
        # The operator points the check at something that passes, and reloads.
        fixed = c.config(0)
        fixed["health"]["command"] = ["/bin/true"]
        c.write_config(0, fixed)
        c.send_signal(0, signal.SIGHUP)
        after = c.wait_leader(leader="node-0", min_term=during["term"], timeout=SETTLE_S)
        assert c.client(0).status()["healthy"] is True
        assert after["term"] > during["term"]
    finally:
        os.unlink(flag)
        c.write_config(0, original)
        if c.running(0):
            mark = c.log_size(0)
            c.send_signal(0, signal.SIGHUP)
            c.wait_log(0, "configuration reloaded", SETTLE_S, after=mark)


# --- 3. graceful handover on SIGTERM ------------------------------------------------------


def test_sigterm_hands_over_before_failure_detection_could_have(graceful):
    c = graceful
    before = steady(c)
    marks = {i: c.log_size(i) for i in (1, 2)}
    # No node can be declared dead sooner than a probe timeout plus the
    # minimum suspicion timeout (suspicion_mult * probe_interval at n <= 10).
    earliest_death_s = (LOCAL.probe_timeout_ms + SLOW_SUSPICION_MULT * LOCAL.probe_interval_ms) / 1000
    started = time.monotonic()
    c.send_signal(0, signal.SIGTERM)
    after = c.wait_leader([1, 2], leader="node-1", min_term=before["term"], timeout=SETTLE_S)
    handover_s = time.monotonic() - started
    views = c.wait_member([1, 2], "node-0", "left", SETTLE_S)
    assert after["term"] > before["term"]
    assert handover_s < earliest_death_s, (
        "handover took %.2fs: not faster than failure detection (>= %.2fs)" % (handover_s, earliest_death_s))
    assert c.wait_exit(0, SETTLE_S) == 0, c.logs()
    for i in (1, 2):
        with open(c.log_path(i), "rb") as handle:
            handle.seek(marks[i])
            text = handle.read().decode(errors="replace")
        assert "member_died" not in text, "%s declared a node dead:\n%s" % (c.name(i), text)
    assert all(m["state"] == "left" for m in views.values()), views


# --- 10. hooks -----------------------------------------------------------------------------

RECORD_HOOK = """#!/bin/sh
printf '%s %s %s %s\\n' "$LEADERD_EVENT" "${LEADERD_LEADER:--}" "$LEADERD_TERM" "$LEADERD_SELF" >> "$1"
"""

HANGING_HOOK = """#!/bin/sh
printf '%s %s %s %s\\n' "$LEADERD_EVENT" "${LEADERD_LEADER:--}" "$LEADERD_TERM" "$LEADERD_SELF" >> "$1"
echo $$ > "$2"
exec sleep 100
"""


def _script(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o755)
    return str(path)


def _records(path):
    try:
        with open(path) as handle:
            return [tuple(line.split()) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def _pid_gone(pid):
    """Whether process pid has ended (a zombie awaiting its reaper counts as ended)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_hooks_run_with_their_environment_and_a_hanging_hook_is_killed(tmp_path):
    record = _script(tmp_path / "record.sh", RECORD_HOOK)
    hang = _script(tmp_path / "hang.sh", HANGING_HOOK)
    events = [str(tmp_path / "node-0.events"), str(tmp_path / "node-1.events")]
    hang_pid = str(tmp_path / "hang.pid")

    def hooks(i):
        elected = [record, events[0]] if i == 0 else [hang, events[1], hang_pid]
        return {"hooks": {"on_elected": elected, "on_leader_change": [record, events[i]], "timeout": "1s"}}

    with Cluster(tmp_path / "cluster", 2, extra_config=hooks) as c:
        first = steady(c)
        term = str(first["term"])
        c.wait_for(lambda: {("on_elected", "node-0", term, "node-0"),
                            ("on_leader_change", "node-0", term, "node-0")} <= set(_records(events[0])),
                   SETTLE_S, "node-0's on_elected and on_leader_change hooks")
        c.wait_for(lambda: ("on_leader_change", "node-0", term, "node-1") in _records(events[1]),
                   SETTLE_S, "node-1's on_leader_change hook naming node-0")

        c.send_signal(0, signal.SIGTERM)
        second = c.wait_leader([1], leader="node-1", min_term=first["term"], timeout=SETTLE_S)
        term2 = str(second["term"])
        # node-1's on_elected hook hangs: it ran with the right environment...
        c.wait_for(lambda: ("on_elected", "node-1", term2, "node-1") in _records(events[1]),
                   SETTLE_S, "node-1's (hanging) on_elected hook")
        pid = c.wait_for(lambda: int(open(hang_pid).read()), SETTLE_S, "the hanging hook's pid file")
        # ...the agent answers while it hangs...
        assert c.client(1).leader()["is_leader"] is True
        # ...it is killed after its 1 s timeout, and the queue moves on.
        c.wait_for(lambda: _pid_gone(pid), SETTLE_S, "the hanging hook (pid %d) to be killed" % pid)
        c.wait_log(1, "still running after 1.0s: killed", SETTLE_S)
        c.wait_for(lambda: ("on_leader_change", "node-1", term2, "node-1") in _records(events[1]),
                   SETTLE_S, "node-1's on_leader_change hook after the hanging one")
        assert c.client(1).leader()["leader"] == "node-1"
        assert c.wait_exit(0) == 0


def test_a_hook_still_running_at_shutdown_is_killed_with_the_agent(tmp_path):
    events = str(tmp_path / "events")
    hang_pid = str(tmp_path / "hang.pid")
    hang = _script(tmp_path / "hang.sh", HANGING_HOOK)
    extra = {"hooks": {"on_demoted": [hang, events, hang_pid], "timeout": "1s"}}
    with Cluster(tmp_path / "cluster", 1, extra_config=extra) as c:
        steady(c)
        # SIGTERM makes the leader resign: on_demoted starts while the agent
        # shuts down, and hangs past the agent's wait for its hooks.
        c.send_signal(0, signal.SIGTERM)
        pid = c.wait_for(lambda: int(open(hang_pid).read()), SETTLE_S, "the on_demoted hook's pid file")
        assert c.wait_exit(0, SETTLE_S) == 0
        assert ("on_demoted", "-", "1", "node-0") in _records(events), _records(events)
        c.wait_for(lambda: _pid_gone(pid), SETTLE_S,
                   "the hook (pid %d) to be killed with the agent, not left behind" % pid)



def test_on_leader_change_runs_once_per_settled_change_never_for_a_transient_no_leader(tmp_path):
    record = _script(tmp_path / "record.sh", RECORD_HOOK)
    events = [str(tmp_path / ("node-%d.events" % i)) for i in range(3)]

    def hooks(i):
        return {"hooks": {"on_leader_change": [record, events[i]]}}

    with Cluster(tmp_path / "cluster", 3, extra_config=hooks) as c:
        first = steady(c)
        for i in range(3):
            c.wait_for(lambda i=i: len(_records(events[i])) == 1, SETTLE_S, "node-%d's first hook run" % i)
        # A graceful handover: each follower sees "no leader" (the
        # resignation), then node-1's claim, within the settle window.
        c.send_signal(0, signal.SIGTERM)
        second = c.wait_leader([1, 2], leader="node-1", min_term=first["term"], timeout=SETTLE_S)
        for i in (1, 2):
            expected = [("on_leader_change", "node-0", str(first["term"]), "node-%d" % i),
                        ("on_leader_change", "node-1", str(second["term"]), "node-%d" % i)]
            c.wait_for(lambda i=i: expected[1] in _records(events[i]), SETTLE_S, "node-%d's run for node-1" % i)
            assert _records(events[i]) == expected
            # Idle, with no settle window pending: no other run can come.
            c.wait_for(lambda i=i: c.client(i).status()["stats"]["hooks_pending"] == 0, SETTLE_S,
                       "node-%d's hooks to be done" % i)
            assert _records(events[i]) == expected
        assert c.wait_exit(0, SETTLE_S) == 0


def test_stopping_an_agent_with_watch_clients_logs_no_error(tmp_path):
    with Cluster(tmp_path / "cluster", 1) as c:
        steady(c)
        watches = [subprocess.Popen([sys.executable, "-m", "agent.cli", "watch", "--json",
                                     "--socket", c.socket_path(0)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                   for _ in range(2)]
        try:
            # The snapshot comes once the agent has counted the client among its watchers.
            for watch in watches:
                first = LineReader(watch.stdout).next_json(time.monotonic() + SETTLE_S, "the watch snapshot")
                assert first["event"] == "leader", first
            c.send_signal(0, signal.SIGTERM)
            assert c.wait_exit(0, SETTLE_S) == 0
        finally:
            for watch in watches:
                watch.wait(SETTLE_S)
                watch.stdout.close()
        with open(c.log_path(0)) as handle:
            text = handle.read()
        assert " ERROR " not in text and "Traceback" not in text, text


def test_ping_to_a_refused_port_says_so_at_once_without_a_traceback():
    port = free_udp_port()
    started = time.monotonic()
    result = run_cli("ping", "127.0.0.1:%d" % port, "--timeout", "20s")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result
    assert "refused" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert elapsed < 10, "ping to a refused port took %.1fs (its timeout is 20s)" % elapsed


def test_terms_keep_growing_across_a_restart_of_the_whole_cluster(tmp_path):
    term_file = str(tmp_path / "term")
    with Cluster(tmp_path / "cluster", 1, extra_config={"election": {"term_file": term_file}}) as c:
        c.start_all()
        first = c.wait_leader(leader=0)["term"]
        c.wait_for(lambda: state_file.read(term_file)[0] == first, SETTLE_S,
                   "term %d saved in %s" % (first, term_file))
        c.send_signal(0, signal.SIGTERM)
        assert c.wait_exit(0, SETTLE_S) == 0
        c.start(0)
        # A fencing token never goes back, even when every agent restarted.
        second = c.wait_leader(leader=0, min_term=first)["term"]
        assert second > first, (first, second)


def _life(c, i, start_number):
    """The part of node i's log written by its start number start_number (the harness marks each start)."""
    text = c.log_text(i)
    at = text.find("=== start #%d of " % start_number)
    assert at >= 0, text[-2000:]
    return text[at:]


def test_restarts_keep_the_incarnation_growing_through_the_state_file(tmp_path):
    def extra(i):
        return {"election": {"term_file": str(tmp_path / ("state-%d" % i))}}
    path = str(tmp_path / "state-1")
    with Cluster(tmp_path / "cluster", 2, extra_config=extra) as c:
        steady(c)
        first = c.client(1).status()["incarnation"]
        c.wait_for(lambda: state_file.read(path)[1] == first, SETTLE_S, "incarnation %d saved in %s" % (first, path))

        # A graceful stop: node-0 records node-1 as left at that incarnation.
        # The next life starts above it, so that record does not touch it:
        # no refutation, and node-0 takes the new life's first announcement.
        c.kill(1, signal.SIGTERM)
        c.wait_member([0], "node-1", "left", SETTLE_S, check=lambda m: m["incarnation"] == first)
        c.start(1)
        second = c.client(1).status()["incarnation"]
        assert second > first, (first, second)
        c.wait_member([0], "node-1", "alive", SETTLE_S, check=lambda m: m["incarnation"] == second)
        assert "self_refuted" not in _life(c, 1, 2), _life(c, 1, 2)
        c.wait_for(lambda: state_file.read(path)[1] == second, SETTLE_S, "incarnation %d saved" % second)

        # The state file lost in a crash: the wall clock alone still moves the incarnation on.
        c.kill(1)
        os.unlink(path)
        c.wait_for(lambda: state_file.wall_incarnation() > second, SETTLE_S,
                   "the wall clock to pass incarnation %d (seconds since 2026)" % second)
        c.start(1)
        third = c.client(1).status()["incarnation"]
        assert third > second, (second, third)
        c.wait_member([0], "node-1", "alive", SETTLE_S, check=lambda m: m["incarnation"] == third)

        # A saved incarnation ahead of the clock (bumps, or a clock set back): one above it.
        c.kill(1)
        ahead = state_file.wall_incarnation() + 100000
        state_file.save(path, state_file.read(path)[0], ahead)
        c.start(1)
        assert c.client(1).status()["incarnation"] == ahead + 1
        c.wait_member([0], "node-1", "alive", SETTLE_S, check=lambda m: m["incarnation"] == ahead + 1)
        assert "starting at incarnation %d" % (ahead + 1) in _life(c, 1, 4)
        c.wait_leader(leader=0, timeout=SETTLE_S)


# --- 9. systemd notify ------------------------------------------------------------------------


def test_systemd_notify_ready_status_and_watchdog(tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    if len(notify_path) > 100:
        pytest.skip("tmp path too long for an AF_UNIX socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, \
            Cluster(tmp_path / "cluster", 1) as c:
        notify.bind(notify_path)
        # WATCHDOG_PID unset: the daemon pings for itself (WatchdogSec = 200 ms: every 100 ms).
        c.start(0, wait=False, env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "200000"})
        messages = []
        deadline = time.monotonic() + SETTLE_S

        def done():
            return ("READY=1" in messages and any(m.startswith("STATUS=leader") for m in messages)
                    and messages.count("WATCHDOG=1") >= 2)
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("sd_notify messages so far: %r\n%s" % (messages, c.logs()))
            notify.settimeout(left)
            try:
                data = notify.recv(4096)
            except socket.timeout:
                continue
            messages.extend(data.decode().split("\n"))
        assert any(m.startswith("STATUS=") for m in messages[:messages.index("READY=1") + 2]), messages
        # READY=1 promises an answering socket.
        assert c.client(0).leader()["self"] == "node-0"
        c.kill(0, signal.SIGTERM)
        notify.settimeout(SETTLE_S)
        while "STOPPING=1" not in messages:
            messages.extend(notify.recv(4096).decode().split("\n"))


# --- 8. bad config ------------------------------------------------------------------------------


@pytest.mark.parametrize("mutation, key", [
    ({"node": {"priority": 300}}, "node.priority"),
    ({"election": {"premept": True}}, "election.premept"),
], ids=["priority-300", "unknown-key"])
def test_bad_config_is_refused_naming_the_key(tmp_path, mutation, key):
    sock = tmp_path / "api.sock"
    good = {"node": {"name": "bad", "priority": 100, "bind": "127.0.0.1:%d" % free_udp_port()},
            "gossip": {"profile": "local"}, "api": {"socket": str(sock)}}
    config_mod.parse_config(good)  # the one mistake below is the only one
    bad = deep_merge(good, mutation)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))

    checked = run_cli("check-config", path)
    assert checked.returncode == 2, checked
    assert key in checked.stderr, checked.stderr
    ran = run_cli("run", "--config", path, timeout=20)
    assert ran.returncode == 2, ran
    assert key in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    assert not sock.exists(), "a refused config must not open the API socket"


def test_a_small_order_trusted_key_stops_startup_naming_the_file(tmp_path):
    sock = tmp_path / "api.sock"
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    keyfiles.keygen("good", str(tmp_path))
    os.replace(tmp_path / "good.pub", trusted / "good.pub")
    # The identity point: any signature (R = [S]B, S) verifies under it.
    (trusted / "mallory.pub").write_text("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    cfg = {"node": {"name": "good", "priority": 100, "bind": "127.0.0.1:%d" % free_udp_port()},
           "election": {"signing_key_file": str(tmp_path / "good.key"), "trusted_keys_dir": str(trusted)},
           "gossip": {"profile": "local"}, "api": {"socket": str(sock)}}
    path = tmp_path / "leaderd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ran = run_cli("run", "--config", path, timeout=20)
    assert ran.returncode == 2, ran
    assert "%s: not a usable Ed25519 public key: a point of small order" % (trusted / "mallory.pub") in ran.stderr, \
        ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    assert not sock.exists()
    (trusted / "mallory.pub").unlink()
    checked = run_cli("check-config", path)
    assert checked.returncode == 0, checked
