"""Tests of agent/localcluster.py, the launcher of `leaderd demo`, the real-process tests and the benches.

Pieces without processes first, then a one-node cluster of a real agent:
its files, its stop, and that it dies with the process that started it.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

from agent import localcluster
from agent.localcluster import Cluster, WaitTimeout, config_text, deep_merge, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- pieces, without processes -------------------------------------------------------

def test_free_udp_ports_are_distinct():
    ports = localcluster.free_udp_ports(20)
    assert len(set(ports)) == 20 and all(0 < port < 65536 for port in ports)


def test_deep_merge_merges_sections_deletes_none_and_copies():
    base = {"node": {"name": "a", "priority": 1}, "log": {"level": "info"}}
    extra = {"node": {"priority": 2}, "log": None, "health": {"command": ["/bin/true"]}}
    out = deep_merge(base, extra)
    assert out == {"node": {"name": "a", "priority": 2}, "health": {"command": ["/bin/true"]}}
    out["health"]["command"].append("x")
    assert extra["health"]["command"] == ["/bin/true"] and base["log"] == {"level": "info"}


def test_config_text_puts_comments_beside_keys_and_reads_back_the_same():
    cfg = {"node": {"name": "n", "priority": 7}, "cluster": {"seeds": ["127.0.0.1:1", "127.0.0.1:2"]},
           "api": {"mode": "0600"}}
    text = config_text(cfg, {"node.priority": "who leads", "cluster.seeds": "the others", "api": "the socket"},
                       header="line one\nline two")
    assert yaml.safe_load(text) == cfg
    lines = text.splitlines()
    assert lines[:2] == ["# line one", "# line two"]
    assert "  priority: 7  # who leads" in lines
    assert "  seeds:  # the others" in lines and "- 127.0.0.1:1" in text
    assert "api:  # the socket" in lines


def test_wait_for_returns_the_first_truthy_result():
    results = iter([None, 0, "", {"leader": "x"}])
    assert wait_for(lambda: next(results), 5, "a leader", interval=0) == {"leader": "x"}


def test_wait_for_times_out_naming_the_last_error_and_the_description():
    def not_yet():
        raise ConnectionRefusedError("nobody listens")
    with pytest.raises(WaitTimeout) as caught:
        wait_for(not_yet, 0.05, "the agent", describe=lambda: "the logs", interval=0.01)
    message = str(caught.value)
    assert "waiting for the agent (ConnectionRefusedError: nobody listens)" in message
    assert message.endswith("\nthe logs")


def test_wait_for_lets_other_errors_through():
    def broken():
        raise ZeroDivisionError("a bug in the predicate")
    with pytest.raises(ZeroDivisionError):
        wait_for(broken, 5, "anything", errors=(OSError,))


def test_a_deep_root_puts_the_sockets_in_a_short_directory_that_stop_all_removes(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    cluster = Cluster(deep, 2, cluster_name="deep")
    paths = [cluster.socket_path(i) for i in range(2)]
    short = os.path.dirname(paths[0])
    assert short != str(deep) and os.path.isdir(short)
    assert all(len(path.encode()) <= localcluster.MAX_SOCKET_PATH for path in paths)
    assert cluster.config(1)["api"]["socket"] == paths[1]
    assert cluster.stop_all() == 0
    assert not os.path.exists(short) and os.path.isdir(deep)  # the root is the caller's


def test_a_cluster_of_its_own_directory_removes_it_unless_kept():
    with Cluster(None, 2, prefix="leaderd-test-") as gone:
        assert sorted(os.listdir(gone.root)) == ["keyring", "keys", "node-0.yaml", "node-1.yaml", "trusted"]
        assert sorted(os.listdir(os.path.join(gone.root, "trusted"))) == ["node-0.pub", "node-1.pub"]
    assert not os.path.exists(gone.root)
    kept = Cluster(None, 1, keep=True)
    try:
        kept.close()
        assert os.path.isdir(kept.root)
    finally:
        kept.keep = False
        kept.close()
    assert not os.path.exists(kept.root)


# -- a real agent --------------------------------------------------------------------

@pytest.mark.slow
def test_one_agent_leads_alone_and_stop_all_stops_it(tmp_path):
    with Cluster(tmp_path / "one", 1) as cluster:
        proc = cluster.start(0)
        assert cluster.wait_leader(leader=0, timeout=15)["is_leader"] is True
        assert cluster.log_text(0).startswith("=== start #1 of node-0 at ")
        assert cluster.stop_all() == 1
        assert proc.returncode == 0, cluster.logs()  # SIGTERM: it left and exited cleanly
        assert not cluster.running(0)


def _gone(pid):
    """True once pid has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_an_agent_dies_with_the_process_that_started_it(tmp_path):
    starter = textwrap.dedent("""\
        import sys
        from agent.localcluster import Cluster
        cluster = Cluster(sys.argv[1], 1)
        print(cluster.start(0).pid, flush=True)
        sys.stdin.read()   # until the test kills this process
        """)
    proc = subprocess.Popen([sys.executable, "-c", starter, str(tmp_path / "orphan")], cwd=REPO,
                            env=localcluster.child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    agent_pid = None
    try:
        agent_pid = int(proc.stdout.readline())
        assert not _gone(agent_pid)
        proc.kill()  # SIGKILL: the starter cannot clean up; Linux sends its agent SIGKILL too
        proc.wait()
        wait_for(lambda: _gone(agent_pid), 10, "agent %d to die with its starter" % agent_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if agent_pid is not None and not _gone(agent_pid):
            os.kill(agent_pid, signal.SIGKILL)  # the test failed: leave nothing behind
        proc.stdin.close()
        proc.stdout.close()
