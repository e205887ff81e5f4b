"""The Prometheus endpoint (metrics.listen) on a real agent, scraped over HTTP and parsed with
prometheus-client's own parser; the alert rules checked by promtool."""

import os
import shutil
import socket
import subprocess
import urllib.request

import pytest

from agent import config
from daemon_harness import Cluster

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "contrib", "prometheus", "alerts.yml")


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_every_node_exports_its_leadership_members_and_counters(tmp_path):
    ports = [free_tcp_port(), free_tcp_port()]
    extra = lambda i: {"metrics": {"listen": "127.0.0.1:%d" % ports[i]}}  # noqa: E731
    with Cluster(tmp_path / "c", 2, extra_config=extra) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(leader=0, timeout=20)
        cluster.wait_member([0, 1], "node-1", ("alive",))
        leader, follower = scrape(ports[0]), scrape(ports[1])
        assert leader[("leaderd_is_leader", ())] == 1 and follower[("leaderd_is_leader", ())] == 0
        for samples in (leader, follower):
            assert samples[("leaderd_term", ())] == info["term"]
            assert samples[("leaderd_leader", (("leader", "node-0"),))] == 1
            assert samples[("leaderd_members", (("state", "alive"),))] == 2
            assert samples[("leaderd_datagrams_total", (("direction", "in"),))] > 0
            assert samples[("leaderd_probes_total", ())] >= 0
            assert ("leaderd_local_health_score", ()) in samples
            assert ("leaderd_dropped_total", (("reason", "auth"),)) in samples
        # The same counters as status --json.
        status = cluster.client(1).status()
        assert follower[("leaderd_leader_changes_total", ())] <= status["stats"]["hook_events"]
        # A new leader: the follower's metrics say so at the next scrape.
        cluster.kill(0)
        cluster.wait_leader(observers=[1], leader=1, timeout=20)
        after = scrape(ports[1])
        assert after[("leaderd_is_leader", ())] == 1 and after[("leaderd_term", ())] > info["term"]
        assert after[("leaderd_leader_changes_total", ())] > follower[("leaderd_leader_changes_total", ())]


def test_metrics_listen_is_checked_and_a_busy_port_stops_the_start(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        config.parse_config({"metrics": {"listen": "nowhere"}})
    assert any(e.startswith("metrics.listen") for e in info.value.errors), info.value.errors
    assert config.parse_config({}).metrics.listen is None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with Cluster(tmp_path / "c", 1, extra_config={"metrics": {"listen": "127.0.0.1:%d" % port}}) as cluster:
            cluster.start(0, wait=False)
            code = cluster.wait_exit(0, timeout=20)
            assert code == 1, code
            assert "(metrics.listen)" in cluster.log_text(0)


def test_the_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package: prometheus); the rules are not checked")
    proc = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout, proc.stdout
