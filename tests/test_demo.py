"""Tests of `leaderd demo` (agent/demo.py).

The real-process tests run the demo as a subprocess (`--no-tui`, and the
hidden `--fast`, which shortens only the pauses between steps), read its
output line by line in a thread, and wait on lines with deadlines. Afterwards
none of the agents it printed as started may be alive and its temporary
directory must be gone.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from agent import demo
from agent.cli import EXIT_USAGE, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STARTED = re.compile(r"started (node-\d+) pid (\d+)")
FILES = re.compile(r"files in (\S+)")


class DemoProcess:
    """`leaderd demo ARGS` as a subprocess whose stdout is read line by line in a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "demo", "--no-tui", *args],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1)
        self.lines = []
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr = []
        self._err_reader = threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True)
        self._err_reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, pattern, timeout):
        """The first match of pattern in a new line within timeout seconds; fails with the output so far."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(0.0, left))
            except queue.Empty:
                line = None
                left = 0
            if line is None:
                pytest.fail("no line matching %r within %.0f s (exit code %s); output:\n%s\nstderr:\n%s"
                            % (pattern, timeout, self.proc.poll(), "\n".join(self.lines), self.stderr))
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match

    def finish(self, timeout):
        """Waits for the exit and the end of output; returns (exit code, all stdout)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the demo did not exit within %.0f s; output:\n%s" % (timeout, "\n".join(self.lines)))
        self._reader.join(5)
        self._err_reader.join(5)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return code, "\n".join(self.lines)

    @property
    def stderr(self):
        return "".join(self._stderr)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def run_demo():
    started = []

    def start(*args):
        process = DemoProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def agent_alive(pid, workdir):
    """True if pid is still one of the demo's agents (a reused pid running something else is not)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to "the pid exists"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return "agent.cli" in cmdline and workdir in cmdline


def started_agents(output):
    """{pid: node name} of every "started node-K pid P" line."""
    return {int(pid): name for name, pid in STARTED.findall(output)}


def assert_cleaned_up(output):
    workdir = FILES.search(output).group(1)
    pids = started_agents(output)
    assert pids, output
    alive = [pid for pid in pids if agent_alive(pid, workdir)]
    assert not alive, "agents still running after the demo: %s" % alive
    assert not os.path.exists(workdir), "the demo left %s behind" % workdir


# -- real processes ---------------------------------------------------------------

@pytest.mark.slow
def test_demo_measures_failover_and_handover_and_cleans_up(run_demo):
    process = run_demo("--nodes", "3", "--fast")
    code, output = process.finish(timeout=120)
    assert code == 0, output + "\n" + process.stderr

    # Three agents started, then the leader (node-3) restarted twice.
    names = sorted(started_agents(output).values())
    assert names == ["node-1", "node-2", "node-3", "node-3", "node-3"], output
    assert "cluster up" in output
    assert re.search(r"leader changed: node-3 -> node-2 \(term \d+ -> \d+\)", output), output
    assert re.search(r"leader changed: node-2 -> node-3", output), output  # preempt

    summary = output[output.index("measured on this machine"):]
    times = {label: float(value) for label, value in
             re.findall(r"^  (crash failover|rejoin|preempt|planned handover)\s+(\d+\.\d+) s", summary, re.M)}
    assert set(times) == {"crash failover", "rejoin", "preempt", "planned handover"}, summary
    assert all(value > 0 for value in times.values()), times
    # Preempt waits preempt_delay (2s) after the restart: a fact of the config, not a timing claim.
    assert times["preempt"] >= demo.PREEMPT_DELAY_S, times
    assert "leaderd simulate --nodes 100 --scenario crash-leader" in output
    assert_cleaned_up(output)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_demo_promptly_and_cleans_up(run_demo, signum):
    process = run_demo("--nodes", "3")
    process.wait_line(r"cluster up", timeout=60)
    process.proc.send_signal(signum)
    sent_at = time.monotonic()
    # SIGTERM to the agents, SIGKILL after demo.STOP_TIMEOUT_S: well within this.
    code, output = process.finish(timeout=demo.STOP_TIMEOUT_S + 10)
    stopped_in = time.monotonic() - sent_at
    assert code == 128 + signum, output + "\n" + process.stderr
    assert "interrupted: stopped 3 agent(s)" in output, output
    assert stopped_in < demo.STOP_TIMEOUT_S + 5, stopped_in
    assert_cleaned_up(output)


@pytest.mark.slow
def test_an_agent_dying_fails_the_demo_with_its_log_and_cleans_up(run_demo):
    process = run_demo("--nodes", "3", "--fast", "--keep")
    match = process.wait_line(r"files in (\S+)", timeout=30)
    workdir = match.group(1)
    pid = int(process.wait_line(r"started node-1 pid (\d+)", timeout=30).group(1))
    process.wait_line(r"cluster up", timeout=60)
    os.kill(pid, signal.SIGKILL)  # the observer: the demo never stops it itself
    code, output = process.finish(timeout=30)
    assert code == 1, output
    assert "node-1 (pid %d) exited unexpectedly" % pid in process.stderr
    assert "--- last lines of %s" % os.path.join(workdir, "node-1.log") in process.stderr
    assert "kept %s" % workdir in output
    try:
        assert os.path.isdir(workdir)  # --keep
        pids = started_agents(output)
        assert not [p for p in pids if agent_alive(p, workdir)]
        assert os.path.exists(os.path.join(workdir, "node-2.yaml"))
        assert not os.path.exists(os.path.join(workdir, "node-2.sock"))  # the agents left
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- pieces, without processes -------------------------------------------------------

def test_help_describes_the_schedule(capsys):
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("SIGKILL", "SIGTERM", "preempt", "rejoin", "--nodes", "--no-tui", "--keep",
                 "leaderd simulate --nodes 100 --scenario crash-leader"):
        assert text in out, text
    assert "--fast" not in out


@pytest.mark.parametrize("value", ["1", "21", "five"])
def test_bad_node_counts_are_usage_errors(value, capsys):
    assert main(["demo", "--nodes", value]) == EXIT_USAGE
    assert "--nodes" in capsys.readouterr().err


def test_snapshot_agreement():
    snap = demo.Snapshot(0.0, {"a": ("c", 3), "b": ("c", 3), "c": ("c", 3), "d": (None, 3)},
                         {"a": {"a": "alive", "c": "dead"}, "b": {"c": "dead"}})
    assert snap.agreed(["a", "b", "c"]) == ("c", 3)
    assert snap.agreed(["a", "d"]) is None       # no leader at d
    assert snap.agreed(["a", "e"]) is None       # e did not answer
    assert demo.Snapshot(0.0, {"a": ("c", 3), "b": ("c", 4)}, {}).agreed(["a", "b"]) is None  # terms differ
    assert snap.everyone_sees(["a", "b"], "c", ("dead",))
    assert not snap.everyone_sees(["a", "b", "c"], "c", ("dead",))  # c did not list members


def test_config_written_for_a_node_is_valid(tmp_path):
    from agent import config
    cluster = demo.make_cluster(2, root=tmp_path)  # files only: nothing starts
    node = cluster.nodes[1]
    cfg = config.load_config(node.config_path)
    config.load_runtime(cfg)
    assert cfg.node.name == "node-2" and cfg.node.priority == 110
    assert list(cfg.cluster.seeds) == [("127.0.0.1", cluster.port(0))]  # every other node
    assert cfg.election.preempt and cfg.election.preempt_delay_ms == 2000
    assert cfg.gossip.profile.name == "local"
    assert cfg.api.socket == node.socket_path == str(tmp_path / "node-2.sock")
    text = open(node.config_path).read()
    assert text.startswith("# leaderd demo: node-2 of a 2-node cluster on loopback.\n"), text
    assert "priority: 110  # the highest live priority leads\n" in text, text


def test_clip_keeps_colour_codes_and_cuts_visible_text():
    line = "\x1b[1mbold\x1b[0m and more"
    assert demo._clip(line, 6) == "\x1b[1mbold\x1b[0m a"
    assert demo._clip("short", 80) == "short"
