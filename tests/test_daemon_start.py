"""How an agent starts, for real: health gating, lone start, and callbacks that fail.

Layer (d) of STYLE.md habit 10, with tests/daemon_harness.py: real `leaderd
run` processes on 127.0.0.1, waits on conditions with deadlines, a failed
wait shows every agent's log. One in-process test at the end drives the
daemon's reload directly, with one core command made to raise.

- Health gating: a node with a health check is not eligible until the check
  has passed `rise` times in a row, so a node whose check never passes is
  never elected, and a higher-priority node takes over only after its
  check has passed.
- Lone start (cluster.join_timeout): an agent whose seeds never answer
  leads on its own after the timeout, says so in a WARNING, and merges with
  a cluster that reaches it later.
- A health callback or a reload that raises (the core's "incarnation
  exhausted") is logged and the agent, and its health task, go on.
"""

import os
import shlex
import shutil
import signal
import stat

import pytest
import yaml

from agent import config as config_mod
from agent import daemon
from agent import state as state_file
from agent.core.node import Node
from daemon_harness import Cluster, free_udp_port

pytestmark = pytest.mark.slow

# Seconds any single condition may take (the local profile probes every 200 ms).
SETTLE_S = 15
FALSE = shutil.which("false") or "/bin/false"
TRUE = shutil.which("true") or "/bin/true"


def leaders_seen(c, observers):
    """{name: leader name or None} as each observer reports it."""
    return {c.name(i): c.client(i).leader()["leader"] for i in observers}


# --- Health gating at start ---------------------------------------------------------------


def test_a_node_whose_check_never_passes_never_leads_while_another_does(tmp_path):
    # node-0 has the higher priority. Without gating it would start eligible
    # and lead once the start-up hold-down is over (1.5 s), long before its
    # check failed `fall` (100) times in a row (10 s).
    extra = lambda i: {"health": {"command": [FALSE], "interval": "100ms", "timeout": "100ms", "fall": 100}} \
        if i == 0 else {}
    with Cluster(tmp_path / "cluster", 2, extra_config=extra) as c:
        c.start_all()
        c.wait_converged(SETTLE_S)
        c.wait_leader(leader=1, timeout=SETTLE_S)

        def many_checks_and_never_node_0():
            seen = leaders_seen(c, [0, 1])
            assert "node-0" not in seen.values(), seen
            return c.client(0).status()["health"]["checks"] >= 40
        c.wait_for(many_checks_and_never_node_0, SETTLE_S, "node-0 to run its failing check 40 times")
        status = c.client(0).status()
        assert status["eligible"] is False and status["healthy"] is False, status
        assert c.members(1)["node-0"]["eligible"] is False
        assert "elected term=" not in c.log_text(0)
        text = c.cli(0, "status")
        assert text.returncode == 0 and "NOT PASSING (not eligible)" in text.stdout, text


def _gated_check(directory, rise):
    """A check script: runs 1..rise-1 pass at once; later runs pass once directory/go exists.

    Each run records its number in directory/runs first. A run waiting for
    go is still running (the streak stands at rise - 1 passes) until the
    test creates go, or the agent kills it at health.timeout (a failure,
    after which later runs wait for go the same way).
    """
    script = os.path.join(directory, "check.sh")
    runs, go = shlex.quote(os.path.join(directory, "runs")), shlex.quote(os.path.join(directory, "go"))
    with open(script, "w") as handle:
        handle.write("#!/bin/sh\n"
                     "n=$(( $(cat %s 2>/dev/null || echo 0) + 1 ))\n"
                     "echo $n > %s\n"
                     "[ $n -lt %d ] && exit 0\n"
                     "while [ ! -e %s ]; do sleep 0.02; done\n"
                     "exit 0\n" % (runs, runs, rise, go))
    os.chmod(script, stat.S_IRWXU)
    return script


def _runs(directory):
    try:
        with open(os.path.join(directory, "runs")) as handle:
            return int(handle.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def test_the_higher_priority_node_leads_only_after_its_check_passed_rise_times(tmp_path):
    rise = 3
    check_dir = str(tmp_path / "check")
    os.makedirs(check_dir)
    script = _gated_check(check_dir, rise)
    # A blocked run is killed at the timeout: interval and timeout long enough for the checks below.
    extra = lambda i: {"health": {"command": [script], "interval": "2s", "timeout": "2s", "rise": rise}} \
        if i == 0 else {}
    with Cluster(tmp_path / "cluster", 2, extra_config=extra) as c:
        c.start_all()
        interim = c.wait_leader(leader=1, timeout=SETTLE_S)
        # Run number `rise` has started: rise - 1 passes are in, the next one is held back.
        c.wait_for(lambda: _runs(check_dir) >= rise, SETTLE_S, "health check run %d to start" % rise)
        status = c.client(0).status()
        assert status["eligible"] is False, status
        assert status["health"]["passes"] <= rise - 1, status["health"]
        assert leaders_seen(c, [0, 1]) == {"node-0": "node-1", "node-1": "node-1"}
        assert c.members(1)["node-0"]["eligible"] is False
        with open(os.path.join(check_dir, "go"), "w"):
            pass
        after = c.wait_leader(leader=0, min_term=interim["term"], timeout=SETTLE_S)
        assert after["term"] > interim["term"]
        health = c.client(0).status()["health"]
        assert health["healthy"] is True and health["passes"] >= rise, health
        log = c.log_text(0)
        healthy_at = log.find("node is now healthy (eligible)")
        elected_at = log.find("elected term=")
        assert 0 <= healthy_at < elected_at, log[-3000:]


# --- Lone start -------------------------------------------------------------------------------


def test_an_agent_whose_seed_never_answers_leads_alone_then_merges_with_a_later_one(tmp_path):
    ghost = "127.0.0.1:%d" % free_udp_port()   # nobody listens there
    extra = lambda i: {"cluster": {"seeds": [ghost], "join_timeout": "1500ms"}} if i == 0 else {}
    with Cluster(tmp_path / "cluster", 2, extra_config=extra) as c:
        c.start(0)
        alone = c.wait_leader(observers=[0], leader=0, timeout=SETTLE_S)
        log = c.log_text(0)
        warning = "WARNING leaderd: no seed answered within 1.5s: cannot reach %s" % ghost
        assert warning in log, log
        assert log.find(warning) < log.find("elected term="), "led before the join timeout:\n" + log
        assert "taking part in the election with no other member (alone)" in log
        status = c.client(0).status()
        assert status["joined"] is False and status["waiting_for_seeds"] is False, status
        text = c.cli(0, "status")
        assert text.returncode == 0, text
        assert "not joined: no seed has answered (%s)" % ghost in text.stdout, text.stdout

        # A second agent, with the first as its seed: one cluster, one leader.
        c.start(1)
        c.wait_converged(SETTLE_S)
        merged = c.wait_leader(timeout=SETTLE_S)
        assert merged["leader"] == "node-0" and merged["term"] >= alone["term"]
        assert [r["is_leader"] for r in merged["replies"].values()].count(True) == 1, merged["replies"]
        assert c.client(0).status()["joined"] is True
        assert "WARNING leaderd: no seed answered" not in c.log_text(1)


def test_without_a_lone_start_an_agent_waits_for_its_seeds(tmp_path):
    # The same agent with a join timeout far away: it elects no one meanwhile.
    ghost = "127.0.0.1:%d" % free_udp_port()
    extra = {"cluster": {"seeds": [ghost], "join_timeout": "1h"}, "gossip": {"join_retry": "100ms"}}
    with Cluster(tmp_path / "cluster", 1, extra_config=extra) as c:
        c.start(0)
        # Many join rounds (every 100 ms), far past the start-up hold-down (1.5 s): still no leader.
        c.wait_for(lambda: c.client(0).status()["stats"]["sent_datagrams"] >= 40, SETTLE_S,
                   "40 join datagrams sent to the seed")
        status = c.client(0).status()
        assert status["leader"]["leader"] is None and status["waiting_for_seeds"] is True, status
        text = c.cli(0, "status").stdout
        assert "not joined: no seed has answered yet (%s)" % ghost in text, text


# --- Callbacks that fail --------------------------------------------------------------------


def test_a_failing_health_callback_and_reload_do_not_stop_the_agent_or_its_checks(tmp_path):
    # An incarnation saved at the very top: the node starts at 2**32 - 1, so
    # set_eligible() and set_priority() cannot announce a change, and raise
    # ("incarnation exhausted") in a core that does.
    path = str(tmp_path / "state")
    state_file.save(path, 0, state_file.MAX_VALUE - 1)
    extra = {"election": {"term_file": path},
             "health": {"command": [TRUE], "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 1}}
    with Cluster(tmp_path / "cluster", 1, extra_config=extra) as c:
        c.start(0)
        assert c.client(0).status()["incarnation"] == state_file.MAX_VALUE
        # The check passes: the callback runs (and may fail); checking goes on.
        c.wait_for(lambda: c.client(0).status()["health"]["checks"] >= 10, SETTLE_S, "10 health checks")
        assert c.running(0)
        # A reload changing the priority: the agent keeps running and answering.
        changed = c.config(0)
        changed["node"]["priority"] = 150
        changed["hooks"] = {"on_elected": [TRUE]}
        c.write_config(0, changed)
        mark = c.log_size(0)
        c.send_signal(0, signal.SIGHUP)
        c.wait_log(0, "SIGHUP: configuration reloaded", SETTLE_S, after=mark)
        before = c.client(0).status()["health"]["checks"]
        c.wait_for(lambda: c.client(0).status()["health"]["checks"] >= before + 5, SETTLE_S,
                   "5 more health checks after the reload")
        assert c.running(0)
        c.kill(0, signal.SIGTERM)
        assert c.wait_exit(0) == 0
        log = c.log_text(0)
        if "incarnation exhausted" in log:
            # This core raises: each failure was logged with its traceback, and survived.
            assert "Traceback" in log and "cannot make the node eligible" in log, log[-3000:]
            assert "configuration reloaded except node.priority" in log, log[-3000:]


async def test_a_reload_part_that_raises_leaves_the_rest_applied(tmp_path, monkeypatch, caplog):
    # In process: the daemon's reload with the core's set_priority made to raise.
    sock = str(tmp_path / "api.sock")
    base = {"node": {"name": "solo", "priority": 100, "bind": "127.0.0.1:%d" % free_udp_port()},
            "gossip": {"profile": "local"}, "api": {"socket": sock, "mode": "0600"}}
    path = tmp_path / "leaderd.yaml"
    path.write_text(yaml.safe_dump(base))
    cfg = config_mod.load_config(str(path))
    agent = daemon.Agent(cfg, config_mod.load_runtime(cfg), str(path))
    await agent.start()
    try:
        def exhausted(self, priority, now):
            raise ValueError("incarnation exhausted")
        monkeypatch.setattr(Node, "set_priority", exhausted)
        changed = dict(base, node=dict(base["node"], priority=150), hooks={"on_elected": [TRUE]},
                       election={"preempt_delay": "7s"})
        path.write_text(yaml.safe_dump(changed))
        await agent.reload()
        assert agent.stats["reload_errors"] == 1 and agent.stats["reloads"] == 0
        assert "cannot apply node.priority" in caplog.text and "Traceback" in caplog.text
        assert "configuration reloaded except node.priority" in caplog.text
        assert agent.node.priority == 100                         # the part that failed kept its value
        assert agent.node.election.preempt_delay_ms == 7000       # the others were applied
        assert agent.hooks.hooks["on_elected"] == (TRUE,)
        assert agent.status()["self"] == "solo"
    finally:
        await agent.shutdown()
    assert not os.path.exists(sock)
