"""Secure by default (issue 11, item 5): a reachable agent needs keys, or says insecure: true.

The rule is agent.core.rules.exposed, used by the daemon's
load_runtime and by the board's config: a node bound to anything but a
loopback address (the wildcards included) with neither a cluster keyring nor
a trust list does not start unless its config says ``insecure: true``; the
refusal names node.bind and prints commands that make the keys, which
work as printed. An explicitly empty trust list (``trusted_keys: {}``, or a
trusted_keys_dir without NAME.pub) means that nobody may lead, never that
anybody may.

Real processes where the daemon or the board is involved: `leaderd run`
through ``python -m agent.cli``, the board under the MicroPython unix port.
"""

import base64
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys

import pytest
import yaml

from agent import config, keys
from agent.client import Client
from agent.core import rules
from agent.localcluster import Cluster, child_env, free_udp_port, wait_for

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_DIR = os.path.join(REPO_ROOT, "micropython")
sys.path.insert(0, BOARD_DIR)
import leaderd_config as board_config  # noqa: E402

from test_micropython import require_micropython  # noqa: E402

RUN_TIMEOUT = 30


def _run(config_path, env=None, timeout=RUN_TIMEOUT):
    """`leaderd run [--config FILE]` to completion (it must exit by itself): a CompletedProcess."""
    argv = [sys.executable, "-m", "agent.cli", "run"] + (["--config", str(config_path)] if config_path else [])
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=child_env(env))
    except subprocess.TimeoutExpired as exc:
        pytest.fail("leaderd run did not exit within %ds: it started where it must refuse to. Output:\n%s"
                    % (timeout, exc.stderr))


class _Agent:
    """A `leaderd run --config FILE` process, stopped with SIGTERM at the end."""

    def __init__(self, config_path, socket_path, log_path):
        self.socket_path = socket_path
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=child_env())

    def text(self):
        with open(self.log_path) as handle:
            return handle.read()

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("the agent exited (%d):\n%s" % (self.proc.returncode, self.text()))
            return Client(self.socket_path, timeout=1.0).status()
        return wait_for(ready, timeout, "the agent's socket to answer", describe=self.text)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _reachable(tmp_path, port, **extra):
    """A config bound to the wildcard (reachable from other machines), advertising loopback."""
    data = {"node": {"name": "exposed", "bind": "0.0.0.0:%d" % port, "advertise": "127.0.0.1:%d" % port},
            "cluster": {"name": "secure-%d" % port, "join_timeout": 0},
            "gossip": {"profile": "local"},
            "api": {"socket": str(tmp_path / "api.sock"), "mode": "0600"}}
    data.update(extra)
    return data


# --- The daemon, as a real process -------------------------------------------------------


def test_run_refuses_a_reachable_bind_without_keys_and_its_commands_make_keys_that_work(tmp_path):
    port = free_udp_port()
    path = _write(tmp_path / "leaderd.yaml", _reachable(tmp_path, port))
    proc = _run(path)
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"leaderd\.yaml: node\.bind: 0\.0\.0\.0:%d is reachable from other machines, with no "
                     r"cluster keyring and no trust list" % port, proc.stderr), proc.stderr
    assert "insecure: true" in proc.stderr and "127.0.0.1:%d" % port in proc.stderr, proc.stderr
    assert not (tmp_path / "api.sock").exists()

    # The commands it prints, run as printed (PATH: the leaderd of this interpreter's environment).
    commands = [line.strip() for line in proc.stderr.splitlines() if line.startswith("    ")]
    assert len(commands) == 4 and any("keygen --cluster-key" in c for c in commands) \
        and any("keygen --name exposed" in c for c in commands), proc.stderr
    env = child_env({"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")})
    for command in commands:
        done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    # ... and the settings it names, with the values it names.
    settings = dict(re.findall(r"(cluster\.keyring_file|election\.signing_key_file|election\.trusted_keys_dir): "
                               r"(\S+?)(?:,| and| in)", proc.stderr))
    assert sorted(settings) == ["cluster.keyring_file", "election.signing_key_file",
                                "election.trusted_keys_dir"], proc.stderr
    data = _reachable(tmp_path, port)
    data["cluster"]["keyring_file"] = shlex.split(settings["cluster.keyring_file"])[0]
    data["election"] = {"signing_key_file": shlex.split(settings["election.signing_key_file"])[0],
                        "trusted_keys_dir": shlex.split(settings["election.trusted_keys_dir"])[0]}
    _write(path, data)
    agent = _Agent(path, str(tmp_path / "api.sock"), str(tmp_path / "agent.log"))
    try:
        agent.wait_ready()
        status = wait_for(lambda: Client(agent.socket_path, timeout=1.0).leader()["is_leader"] and
                          Client(agent.socket_path, timeout=1.0).status(), 20, "the keyed agent to lead",
                          describe=agent.text)
        assert status["authenticated"] is True and status["leader"]["insecure"] is False, status
    finally:
        rc = agent.stop()
    assert rc == 0, agent.text()


def test_run_without_a_config_refuses_naming_node_bind(tmp_path):
    # The defaults bind 0.0.0.0:7946 with no keys: refused before anything is bound.
    proc = _run(None, env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert "<defaults>: node.bind: 0.0.0.0:7946 is reachable from other machines" in proc.stderr, proc.stderr
    assert "leaderd keygen --cluster-key" in proc.stderr and "leaderd run --config FILE" in proc.stderr


def test_insecure_true_lets_a_reachable_agent_start_and_it_says_so(tmp_path):
    port = free_udp_port()
    path = _write(tmp_path / "leaderd.yaml", _reachable(tmp_path, port, insecure=True))
    agent = _Agent(path, str(tmp_path / "api.sock"), str(tmp_path / "agent.log"))
    try:
        status = agent.wait_ready()
        assert status["authenticated"] is False, status
        wait_for(lambda: Client(agent.socket_path, timeout=1.0).leader()["is_leader"], 20,
                 "the insecure agent to lead", describe=agent.text)
        assert Client(agent.socket_path, timeout=1.0).leader()["insecure"] is True
    finally:
        rc = agent.stop()
    text = agent.text()
    assert rc == 0, text
    assert "INSECURE: packets are unauthenticated" in text and "INSECURE: claims are unsigned" in text, text


def test_insecure_must_be_true_or_false_and_is_named(tmp_path):
    path = _write(tmp_path / "leaderd.yaml", _reachable(tmp_path, free_udp_port(), insecure="yes"))
    proc = _run(path)
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"leaderd\.yaml: insecure: got 'yes'; expected true or false", proc.stderr), proc.stderr


# --- The rule, in the daemon's config ----------------------------------------------------


@pytest.mark.parametrize("host, reachable", [
    ("127.0.0.1", False), ("127.1.2.3", False), ("::1", False), ("0:0:0:0:0:0:0:1", False),
    ("0.0.0.0", True), ("::", True), ("10.0.0.5", True), ("192.168.1.20", True), ("fe80::1", True),
    ("::ffff:127.0.0.1", True), ("1::1", True),
])
def test_only_loopback_is_out_of_reach(host, reachable):
    assert rules.loopback(host) is not reachable
    assert rules.exposed(host, False, False, False) is reachable
    # Any one of keyring, trust list or insecure: true is enough.
    assert rules.exposed(host, True, False, False) is False
    assert rules.exposed(host, False, True, False) is False
    assert rules.exposed(host, False, False, True) is False


def _keyed(tmp_path):
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    keys.keygen("n1", str(tmp_path))
    os.replace(tmp_path / "n1.pub", trusted / "n1.pub")
    ring = tmp_path / "keyring"
    ring.write_text(keys.generate_cluster_key() + "\n")
    ring.chmod(0o600)
    return str(ring), str(trusted)


def test_a_keyring_or_a_trust_list_is_enough_for_a_reachable_bind(tmp_path):
    ring, trusted = _keyed(tmp_path)
    base = {"node": {"name": "n1", "bind": "0.0.0.0:7946", "advertise": "10.0.0.5:7946"}}
    for extra in ({"cluster": {"keyring_file": ring}},
                  {"election": {"trusted_keys_dir": trusted}},
                  {"election": {"trusted_keys": {}}}):
        config.load_runtime(config.parse_config(dict(base, **extra)))
    with pytest.raises(config.ConfigError) as info:
        config.load_runtime(config.parse_config(base))
    assert len(info.value.errors) == 1 and info.value.errors[0].startswith(
        "node.bind: 0.0.0.0:7946 is reachable from other machines"), info.value.errors
    # Loopback needs nothing (leaderd demo, the tests); IPv6 loopback too.
    for bind in ("127.0.0.1:7946", "[::1]:7946"):
        rt = config.load_runtime(config.parse_config({"node": {"name": "n1", "bind": bind}}))
        assert rt.insecure and not rt.authenticated


def test_an_explicitly_empty_trust_list_trusts_nobody_not_anybody(tmp_path):
    from agent.core.node import Node
    keys.keygen("n1", str(tmp_path))
    empty_dir = tmp_path / "trusted"
    empty_dir.mkdir()
    for election in ({"trusted_keys": {}}, {"trusted_keys_dir": str(empty_dir)}):
        for signing in ({}, {"signing_key_file": str(tmp_path / "n1.key")}):
            c = config.parse_config({"node": {"name": "n1", "bind": "127.0.0.1:7946"},
                                     "election": dict(election, **signing)})
            rt = config.load_runtime(c)
            assert rt.trusted_keys is not None and dict(rt.trusted_keys) == {}, (election, signing)
            assert not rt.insecure
            assert any("trust list" in w and "is empty: no node may lead here" in w for w in rt.warnings), rt.warnings
            node = Node(rng=random.Random(1), now=0, **config.node_arguments(c, rt))
            assert not node.insecure and not node.election.can_lead(), (election, signing)
    # Not set at all is another thing: no trust list (insecure, on loopback only).
    assert config.parse_config({}).election.trusted_keys is None


def test_an_empty_trust_list_refuses_a_real_leaders_claims(tmp_path):
    # node-0 runs without keys (insecure, on loopback) and leads; node-1 has
    # trusted_keys: {}. Before, {} meant "no trust list": node-1 followed
    # node-0's unsigned claim. Now it refuses it, and has no leader.
    extra = lambda i: {"election": {"trusted_keys": {}}, "cluster": {"join_timeout": 0}} if i == 1 \
        else {"cluster": {"join_timeout": 0}}
    with Cluster(tmp_path / "c", 2, keys=False, keyring=False, priorities=[200, 0], extra_config=extra) as c:
        c.start_all()
        c.wait_for(lambda: c.client(0).leader()["is_leader"], 20, "node-0 to lead")
        c.wait_for(lambda: re.search(r"claim_rejected .*node-0", c.log_text(1)), 20,
                   "node-1 to refuse node-0's claim")
        leader = c.client(1).leader()
        assert leader["leader"] is None and leader["insecure"] is False, leader
        members = {m["name"]: m["state"] for m in c.client(1).members()["members"]}
        assert members.get("node-0") == "alive", members  # a member, just not a leader


# --- The board: the same rule --------------------------------------------------------------

_BOARD_SCRIPT = r'''
import json
import sys
import leaderd_config
with open(sys.argv[-1]) as handle:
    cases = json.loads(handle.read())
for data in cases:
    try:
        cfg = leaderd_config.parse(data)
        print(json.dumps(["ok", [], cfg["trusted_keys"] is not None and len(cfg["trusted_keys"]) == 0,
                          cfg["signing_seed"] is None]))
    except leaderd_config.ConfigError as exc:
        print(json.dumps(["bad", exc.errors, None, None]))
print("done %d" % len(cases))
'''

KEY = base64.b64encode(keys.public_bytes(keys.Ed25519PrivateKey.generate())).decode()
CLUSTER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
SEED = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

# (bind, cluster, election, insecure) -> the verdict both shells give.
EXPOSURE_CASES = [
    ("0.0.0.0:7946", {}, {}, None, "bad"),
    ("10.0.0.5:7946", {}, {}, None, "bad"),
    ("10.0.0.5:7946", {}, {}, False, "bad"),
    ("10.0.0.5:7946", {}, {}, True, "ok"),
    ("127.0.0.1:7946", {}, {}, None, "ok"),
    ("127.9.9.9:7946", {}, {}, None, "ok"),
    ("10.0.0.5:7946", {"keyring": [CLUSTER_KEY]}, {}, None, "ok"),
    ("10.0.0.5:7946", {}, {"trusted_keys": {"pi": KEY}}, None, "ok"),
    ("10.0.0.5:7946", {}, {"trusted_keys": {}}, None, "ok"),
]


def _board_data(bind, cluster, election, insecure):
    data = {"node": {"name": "b1", "bind": bind, "advertise": "10.0.0.5:7946"},
            "cluster": dict(cluster), "election": dict(election)}
    if insecure is not None:
        data["insecure"] = insecure
    return data


def _daemon_verdict(bind, cluster, election, insecure, tmp_path):
    data = {"node": {"name": "b1", "bind": bind, "advertise": "10.0.0.5:7946"}, "election": dict(election)}
    if cluster.get("keyring"):
        ring = tmp_path / "keyring"
        ring.write_text("\n".join(cluster["keyring"]) + "\n")
        ring.chmod(0o600)
        data["cluster"] = {"keyring_file": str(ring)}
    if insecure is not None:
        data["insecure"] = insecure
    try:
        config.load_runtime(config.parse_config(data))
    except config.ConfigError as exc:
        return "bad", exc.errors
    return "ok", []


def _board_micropython(datas, tmp_path):
    interpreter = require_micropython()
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(datas))
    env = dict(os.environ, MICROPYPATH=":".join((".frozen", BOARD_DIR, REPO_ROOT)))
    result = subprocess.run([interpreter, "-X", "heapsize=4m", "-c", _BOARD_SCRIPT, str(cases)], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines and lines[-1] == "done %d" % len(datas), result.stdout + result.stderr
    return [json.loads(line) for line in lines[:-1]]


def test_the_board_and_the_daemon_apply_the_same_rule(tmp_path):
    datas = [_board_data(*case[:4]) for case in EXPOSURE_CASES]
    micropython = _board_micropython(datas, tmp_path)
    for case, data, board_mp in zip(EXPOSURE_CASES, datas, micropython):
        expected = case[4]
        daemon = _daemon_verdict(*case[:4], tmp_path=tmp_path)
        try:
            board_config.parse(data)
            board_cp = ("ok", [])
        except board_config.ConfigError as exc:
            board_cp = ("bad", exc.errors)
        assert (daemon[0], board_cp[0], board_mp[0]) == (expected,) * 3, (case, daemon, board_cp, board_mp)
        if expected == "bad":
            for errors in (daemon[1], board_cp[1], board_mp[1]):
                assert any(e.startswith("node.bind: ") and " is %s. " % config.EXPOSED in e for e in errors), \
                    (case, errors)
            assert any('"insecure": true' in e for e in board_cp[1]), board_cp


def test_an_empty_trust_list_on_the_board_trusts_nobody_not_anybody(tmp_path):
    data = {"node": {"name": "b1", "priority": 10, "bind": "127.0.0.1:7946"},
            "election": {"trusted_keys": {}, "signing_key": SEED}}
    for cfg in (board_config.parse(data),):
        assert cfg["trusted_keys"] == {} and cfg["signing_seed"] is None, cfg
        assert any("election.trusted_keys is empty: no node may lead here" in w for w in cfg["warnings"]), cfg
    [board_mp] = _board_micropython([data], tmp_path)
    assert board_mp == ["ok", [], True, True], board_mp
    # With no trusted_keys at all, the board stays insecure (loopback), as before.
    cfg = board_config.parse({"node": {"name": "b1", "bind": "127.0.0.1:7946"}})
    assert cfg["trusted_keys"] is None


def test_a_real_board_refuses_a_reachable_bind_without_keys(tmp_path):
    from test_board_harness import BoardProcess, board_runtime
    require_micropython()
    runtime = board_runtime()
    if runtime is None:
        pytest.skip("no micropython interpreter")
    port = free_udp_port()
    cfg = {"node": {"name": "exposed", "bind": "0.0.0.0:%d" % port, "advertise": "127.0.0.1:%d" % port},
           "cluster": {"name": "secure-board"}, "gossip": {"profile": "local"}}
    board = BoardProcess(runtime, cfg, str(tmp_path))
    board.start()
    try:
        assert board.wait_exit(60) == 2, board.describe()
        text = "\n".join(board.logs())
        assert 'node.bind: "0.0.0.0:%d" is reachable from other machines' % port in text, text
        assert not board.records(event="started"), board.describe()
        # insecure: true starts it.
        board.write_config(dict(cfg, insecure=True))
        board.start()
        board.wait(lambda: board.records(event="started"), 60, "the insecure board to start")
    finally:
        board.kill()
