"""Unit tests of agent.config: parsing, defaults, error reports, the runtime step."""

import base64
import dataclasses
import json
import os
import random
import re
from pathlib import Path

import pytest
import yaml

from agent import config, keys
from agent.core import profile

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO_ROOT / "configs").glob("*.yaml"))

# The complete example of the design document ("The daemon"), kept here:
# the tests depend on nothing outside the repository.
DESIGN_EXAMPLE = """\
node:
  name: pi-kitchen              # default: hostname
  priority: 150                 # 0..255, 0 = never leads; default 100
  bind: 0.0.0.0:7946
  advertise: 192.168.1.20:7946  # default: derived from bind
cluster:
  name: home                    # default "default"
  seeds: [192.168.1.10:7946, pi-garage.local:7946]
  keyring_file: /etc/leaderd/keyring   # optional: packet authentication
election:
  signing_key_file: /etc/leaderd/pi-kitchen.key
  trusted_keys_dir: /etc/leaderd/trusted   # NAME.pub files
  preempt: true
  preempt_delay: 5s
gossip:
  profile: lan                  # lan | wan | local; any field overridable
api:
  socket: /run/leaderd/leaderd.sock
  mode: "0660"
hooks:
  on_elected: [/usr/local/bin/start-job]
  on_demoted: [/usr/local/bin/stop-job]
health:
  command: [/usr/local/bin/check-disk]
  interval: 5s
log:
  level: info
"""


def parse(text):
    return config.parse_config(yaml.safe_load(text))


def errors_of(text_or_mapping):
    data = yaml.safe_load(text_or_mapping) if isinstance(text_or_mapping, str) else text_or_mapping
    with pytest.raises(config.ConfigError) as info:
        config.parse_config(data)
    assert isinstance(info.value, ValueError)
    return info.value.errors


def test_design_example_parses_to_the_expected_values():
    c = parse(DESIGN_EXAMPLE)
    assert c.node == config.NodeConfig(name="pi-kitchen", priority=150, bind=("0.0.0.0", 7946),
                                       advertise=("192.168.1.20", 7946), tags=c.node.tags)
    assert dict(c.node.tags) == {}
    assert c.cluster == config.ClusterConfig(
        name="home", seeds=(("192.168.1.10", 7946), ("pi-garage.local", 7946)),
        keyring_file="/etc/leaderd/keyring", join_timeout_ms=5000, max_members=4096)
    assert c.election.signing_key_file == "/etc/leaderd/pi-kitchen.key"
    assert c.election.trusted_keys_dir == "/etc/leaderd/trusted"
    assert c.election.trusted_keys is None  # not set; trusted_keys: {} would be a trust list of nobody
    assert c.election.preempt is True
    assert c.election.preempt_delay_ms == 5000
    assert c.gossip.profile == profile.lan() and dict(c.gossip.overrides) == {}
    assert c.api == config.ApiConfig(socket="/run/leaderd/leaderd.sock", mode=0o660, group=None)
    assert c.hooks == config.HooksConfig(on_elected=("/usr/local/bin/start-job",),
                                         on_demoted=("/usr/local/bin/stop-job",),
                                         on_leader_change=None, pre_demote=None, timeout_ms=30000,
                                         pre_demote_timeout_ms=10000)
    assert c.health == config.HealthConfig(command=("/usr/local/bin/check-disk",), interval_ms=5000,
                                           timeout_ms=2000, rise=2, fall=3)
    assert c.log == config.LogConfig(level="info", format="text")


def test_join_timeout_is_a_duration_passed_to_the_node():
    c = parse("cluster: {join_timeout: 1m30s}")
    assert c.cluster.join_timeout_ms == 90000
    assert parse("cluster: {join_timeout: 0}").cluster.join_timeout_ms == 0
    assert parse("cluster: {join_timeout: 2}").cluster.join_timeout_ms == 2000   # a bare number is seconds


def test_max_members_bounds_the_member_table_and_reaches_the_node():
    c = parse("cluster: {max_members: 300}")
    assert c.cluster.max_members == 300
    for bad, why in ((1, "2..65536"), (65537, "2..65536"), (True, "2..65536"), ("many", "2..65536")):
        errors = errors_of({"cluster": {"max_members": bad}})
        assert len(errors) == 1 and errors[0].startswith("cluster.max_members") and why in errors[0], errors


def test_config_objects_are_immutable():
    c = parse(DESIGN_EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.node.priority = 1
    with pytest.raises(TypeError):
        c.node.tags["x"] = "y"
    with pytest.raises(TypeError):
        c.election.trusted_keys["x"] = b"y"
    assert isinstance(c.cluster.seeds, tuple) and isinstance(c.hooks.on_elected, tuple)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_parses(path):
    c = config.load_config(path)
    assert c.source == str(path)
    assert isinstance(c.gossip.profile, profile.Profile)


def test_examples_exist():
    assert {p.name for p in EXAMPLES} >= {"lan-cluster.yaml", "raspberry-pi.yaml", "fleet-with-boards.yaml"}


def test_example_fleet_boards_overrides():
    c = config.load_config(REPO_ROOT / "configs" / "fleet-with-boards.yaml")
    assert dict(c.gossip.overrides) == {"probe_interval_ms": 1000, "probe_timeout_ms": 400,
                                        "suspicion_mult": 4, "mtu_bytes": 1200}
    assert c.node.advertise is None and c.node.bind == ("10.20.0.5", 7946)
    assert len(c.election.trusted_keys["srv-3"]) == 32


def test_defaults(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(config.socket, "gethostname", lambda: "pi-" + "x" * 80)
    c = config.default_config()
    assert c.node.name == ("pi-" + "x" * 80)[:64]
    assert c.node.priority == 100 and c.node.bind == ("0.0.0.0", 7946) and c.node.advertise is None
    assert c.cluster == config.ClusterConfig(name="default", seeds=(), keyring_file=None, join_timeout_ms=5000,
                                             max_members=4096)
    assert c.election.preempt is True and c.election.preempt_delay_ms == 5000
    assert c.api.socket == "/run/user/1000/leaderd/leaderd.sock" and c.api.mode == 0o660
    assert c.hooks.timeout_ms == 30000 and c.health.command is None
    assert (c.log.level, c.log.format, c.gossip.profile.name) == ("info", "text", "lan")
    assert config.parse_config(None, source="<defaults>") == c
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert config.default_config().api.socket == "/run/leaderd/leaderd.sock"


def test_default_node_name_never_cuts_a_character():
    name = config.default_node_name("é" * 40)  # 80 bytes
    assert name == "é" * 32 and len(name.encode()) == 64


def test_durations_and_gossip_overrides():
    c = parse("""
        election: {preempt_delay: 250ms}
        gossip: {profile: wan, probe_interval: 4s, probe_timeout_ms: 1500, gossip_interval_ms: "1s",
                 push_pull_interval: 2m, indirect_checks: 5}
        hooks: {timeout: 1h}
        health: {command: [check], interval: 10, timeout: 1.5}
    """)
    assert c.election.preempt_delay_ms == 250
    assert dict(c.gossip.overrides) == {"probe_interval_ms": 4000, "probe_timeout_ms": 1500,
                                        "gossip_interval_ms": 1000, "push_pull_interval_ms": 120000,
                                        "indirect_checks": 5}
    built = c.gossip.profile
    assert built.name == "wan" and built.probe_interval_ms == 4000 and built.suspicion_mult == 6
    assert c.hooks.timeout_ms == 3600000 and c.hooks.timeout_s == 3600.0
    assert (c.health.interval_ms, c.health.timeout_ms) == (10000, 1500)
    assert (c.health.interval_s, c.health.timeout_s) == (10.0, 1.5)


def test_addresses():
    c = parse("""
        node: {bind: "[::]:7000", advertise: "[fd00::5]:7000"}
        cluster: {seeds: ["[fd00::1]:7946", node-b.example.com:7946, 10.0.0.3:1]}
    """)
    assert c.node.bind == ("::", 7000) and c.node.advertise == ("fd00::5", 7000)
    assert c.cluster.seeds == (("fd00::1", 7946), ("node-b.example.com", 7946), ("10.0.0.3", 1))


def test_tags_mode_group_and_relative_paths(tmp_path):
    (tmp_path / "leaderd.yaml").write_text(
        "node: {tags: {rack: r1, role: db}}\n"
        "cluster: {keyring_file: keys/ring}\n"
        "election: {signing_key_file: /abs/a.key, trusted_keys_dir: trusted}\n"
        "api: {socket: run/l.sock, mode: '600', group: 999}\n")
    c = config.load_config(tmp_path / "leaderd.yaml")
    assert dict(c.node.tags) == {"rack": "r1", "role": "db"}
    assert c.cluster.keyring_file == str(tmp_path / "keys" / "ring")
    assert c.election.signing_key_file == "/abs/a.key"
    assert c.election.trusted_keys_dir == str(tmp_path / "trusted")
    assert c.api == config.ApiConfig(socket=str(tmp_path / "run" / "l.sock"), mode=0o600, group=999)


def test_null_means_default():
    c = parse("node: {advertise: null, priority: null}\nhooks:\nlog: {level: DEBUG}\n")
    assert c.node.advertise is None and c.node.priority == 100 and c.log.level == "debug"


# Each bad input: (YAML, the key path named, the bad value shown, words of what is allowed).
BAD_INPUTS = [
    ("node: {priority: 300}", "node.priority", "300", "0..255"),
    ("node: {priority: high}", "node.priority", "'high'", "0..255"),
    ("node: {priority: true}", "node.priority", "True", "integer"),
    ("node: {name: ''}", "node.name", "''", "1..64"),
    ("node: {name: 'a b'}", "node.name", "'a b'", "without spaces"),
    ("node: {name: no}", "node.name", "False", "quote"),
    ("election: {preempt_delay: 5 parsecs}", "election.preempt_delay", "'5 parsecs'", "ms, s, m or h"),
    ("election: {preempt_delay: -1s}", "election.preempt_delay", "'-1s'", "negative"),
    ("election: {preempt: maybe}", "election.preempt", "'maybe'", "true or false"),
    ("health: {command: [c], interval: 0}", "health.interval", "0", "at least 1ms"),
    ("node: {prority: 5}", "node.prority", "unknown key", "did you mean 'priority'"),
    ("nod: {name: a}", "nod", "unknown key", "did you mean 'node'"),
    ("node: {bind: host}", "node.bind", "'host'", "host:port"),
    ("node: {bind: 7946}", "node.bind", "7946", "host:port"),
    ("node: {bind: '10.0.0.1:70000'}", "node.bind", "'10.0.0.1:70000'", "1..65535"),
    ("node: {bind: 'fd00::1:7946'}", "node.bind", "'fd00::1:7946'", "brackets"),
    ("cluster: {seeds: ['bad host!:7946']}", "cluster.seeds[0]", "'bad host!:7946'", "DNS name"),
    ("node: {bind: 'myhost:7946'}", "node.bind", "'myhost:7946'", "names are allowed in cluster.seeds only"),
    ("node: {advertise: 'pi.local:7946'}", "node.advertise", "'pi.local:7946'", "IP address"),
    ("node: {advertise: '0.0.0.0:7946'}", "node.advertise", "'0.0.0.0:7946'", "not a wildcard"),
    ("node: {tags: [a]}", "node.tags", "['a']", "mapping of string"),
    ("node: {tags: {rack: 5}}", "node.tags.rack", "5", "string"),
    ("api: {mode: '999'}", "api.mode", "'999'", "octal"),
    ("api: {mode: 0660}", "api.mode", "432", 'quote it'),
    ("api: {socket: /%s/s.sock}" % ("x" * 120), "api.socket", "xxx", "107 bytes"),
    ("hooks: {on_elected: /usr/bin/start}", "hooks.on_elected", "'/usr/bin/start'", "list of strings"),
    ("hooks: {on_demoted: []}", "hooks.on_demoted", "[]", "non-empty list"),
    ("hooks: {on_leader_change: [notify, 5]}", "hooks.on_leader_change[1]", "5", "string"),
    ("hooks: {on_elect: [x]}", "hooks.on_elect", "unknown key", "did you mean 'on_elected'"),
    ("gossip: {profile: fast}", "gossip.profile", "'fast'", "lan, wan, local"),
    ("gossip: {probe_intervl: 1s}", "gossip.probe_intervl", "unknown key", "did you mean 'probe_interval'"),
    ("gossip: {fanout: 3}", "gossip.fanout", "unknown key", "probe_interval_ms"),
    ("gossip: {gossip_nodes: 0}", "gossip.gossip_nodes", "0", "1..1000"),
    ("gossip: {mtu_bytes: 100}", "gossip.mtu_bytes", "100", "512..65000"),
    ("gossip: {probe_interval_ms: 500ms/2}", "gossip.probe_interval_ms", "'500ms/2'", "unit"),
    ("gossip: {probe_timeout: 2s}", "gossip.probe_timeout", "'2s'", "below probe_interval"),
    ("gossip: {probe_interval: 1s, probe_interval_ms: 1000}", "gossip.probe_interval_ms", "1000",
     "set twice (also as gossip.probe_interval: '1s')"),
    ("cluster: {seeds: '10.0.0.1:7946'}", "cluster.seeds", "'10.0.0.1:7946'", "list of host:port"),
    ("cluster: {seeds: [10.0.0.1:7946, nowhere]}", "cluster.seeds[1]", "'nowhere'", "port is missing"),
    ("cluster: {name: [a]}", "cluster.name", "['a']", "name"),
    ("cluster: {join_timeout: soon}", "cluster.join_timeout", "'soon'", "a unit ms, s, m or h"),
    ("cluster: {join_timeout: -1s}", "cluster.join_timeout", "'-1s'", "must not be negative"),
    ("cluster: {join_timout: 5s}", "cluster.join_timout", "unknown key", "did you mean 'join_timeout'"),
    ("election: {trusted_keys: {a: notbase64!}}", "election.trusted_keys.a", "'notbase64!'", "32-byte"),
    ("election: {trusted_keys: {a: AAAA}}", "election.trusted_keys.a", "'AAAA'", "32-byte"),
    ("health: {command: [c], timeout: 10s}", "health.timeout", "'10s'", "at most health.interval"),
    ("health: {interval: 10s}", "health.command", "missing", "need a command"),
    ("health: {command: [c], rise: 0}", "health.rise", "0", "1..100"),
    ("log: {level: warn}", "log.level", "'warn'", "did you mean 'warning'"),
    ("log: {format: xml}", "log.format", "'xml'", "text, json"),
    ("node: [a, b]", "node", "['a', 'b']", "mapping"),
]


@pytest.mark.parametrize("text,path,shown,allowed", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_key_value_and_what_is_allowed(text, path, shown, allowed):
    errors = errors_of(text)
    assert len(errors) == 1, errors
    line = errors[0]
    assert line.startswith(path + ":"), line
    assert shown in line and allowed in line, line


def test_top_level_must_be_a_mapping():
    assert "mapping" in errors_of("[1, 2]")[0]


def test_every_error_is_reported_one_per_line():
    text = """
        node: {priority: 300, prority: 1, bind: host}
        cluster: {seeds: 10.0.0.1:7946}
        gossip: {profile: fast, probe_intervl: 1s}
        api: {mode: "999"}
        hooks: {on_elected: /bin/x}
        log: {level: loud}
    """
    with pytest.raises(config.ConfigError) as info:
        config.parse_config(yaml.safe_load(text), source="leaderd.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.errors)
    assert all(line.startswith("leaderd.yaml: ") for line in lines)
    keys_named = sorted(line.split(":", 1)[0] for line in info.value.errors)
    assert keys_named == sorted(["node.priority", "node.prority", "node.bind", "cluster.seeds",
                                 "gossip.profile", "gossip.probe_intervl", "api.mode",
                                 "hooks.on_elected", "log.level"])


def test_several_bad_seeds_are_each_reported():
    errors = errors_of("cluster: {seeds: [a, 'b:1', 'c:0']}")
    assert [line.split(":", 1)[0] for line in errors] == ["cluster.seeds[0]", "cluster.seeds[2]"]


def test_load_config_reports_yaml_errors_and_duplicates(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("node:\n  name: [a\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(broken)
    assert str(info.value).startswith(str(broken) + ": line ")
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text("node:\n  name: a\n  name: b\n")
    with pytest.raises(config.ConfigError, match=r"line 3, column 3: .*duplicate key 'name'"):
        config.load_config(duplicate)
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert config.load_config(empty).cluster.name == "default"


def test_as_dict_is_plain_data():
    data = parse(DESIGN_EXAMPLE).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["node"]["priority"] == 150 and data["api"]["mode"] == "0660"
    assert data["gossip"]["profile"]["probe_interval_ms"] == 500


# --- load_runtime -----------------------------------------------------------------

@pytest.fixture
def keydir(tmp_path):
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    for name in ("node-a", "node-b"):
        keys.keygen(name, str(tmp_path))
        os.replace(tmp_path / (name + ".pub"), trusted / (name + ".pub"))
    ring = tmp_path / "keyring"
    ring.write_text("# primary\n%s\n\n%s\n" % (keys.generate_cluster_key(), keys.generate_cluster_key()))
    ring.chmod(0o640)
    return tmp_path


def write_config(directory, body):
    path = directory / "leaderd.yaml"
    path.write_text(body)
    return config.load_config(path)


def test_load_runtime_reads_every_file(keydir):
    c = write_config(keydir, """
        node: {name: node-a, bind: 127.0.0.1:7946}
        cluster: {keyring_file: keyring}
        election: {signing_key_file: node-a.key, trusted_keys_dir: trusted}
    """.replace("\n        ", "\n"))
    rt = config.load_runtime(c)
    assert len(rt.keyring) == 2 and all(len(k) == 32 for k in rt.keyring)
    assert sorted(rt.trusted_keys) == ["node-a", "node-b"]
    assert rt.public_key == rt.trusted_keys["node-a"]
    assert not rt.insecure and rt.authenticated
    assert rt.advertise == ("127.0.0.1", 7946)
    assert rt.warnings == ()
    signature = rt.signer(b"claim")
    assert len(signature) == 64
    assert rt.verifier(rt.trusted_keys["node-a"], b"claim", signature) is True
    assert rt.verifier(rt.trusted_keys["node-b"], b"claim", signature) is False
    args = config.node_arguments(c, rt)
    assert args["address"] == ("127.0.0.1", 7946) and args["keyring"] == list(rt.keyring)
    assert args["trusted_keys"] == dict(rt.trusted_keys) and args["profile"] == profile.lan()


def test_runtime_drives_a_real_node(keydir):
    from agent.core.node import Node
    c = write_config(keydir, "node: {name: node-a, bind: 127.0.0.1:7946}\n"
                             "election: {signing_key_file: node-a.key, trusted_keys_dir: trusted}\n")
    rt = config.load_runtime(c)
    node = Node(rng=random.Random(1), now=0, **config.node_arguments(c, rt))
    assert node.election.can_lead()
    # cluster.max_members reaches the member table (this node is one of them).
    c = write_config(keydir, "node: {name: node-a, bind: 127.0.0.1:7946}\ncluster: {max_members: 9}\n"
                             "election: {signing_key_file: node-a.key, trusted_keys_dir: trusted}\n")
    node = Node(rng=random.Random(1), now=0, **config.node_arguments(c, config.load_runtime(c)))
    assert node.table.max_members == 8


def test_defaults_are_insecure_and_loud():
    c = config.parse_config({"node": {"name": "a", "bind": "127.0.0.1:7946"}})
    rt = config.load_runtime(c)
    assert rt.insecure and not rt.authenticated and rt.keyring is None and rt.signer is None
    assert any("unauthenticated" in w for w in rt.warnings)
    assert any("insecure" in w for w in rt.warnings)


def test_advertise_derivation():
    # insecure: true, or a wildcard bind without keys is refused (tests/test_secure_defaults.py).
    wildcard = config.parse_config({"node": {"name": "a", "bind": "0.0.0.0:7000"}, "insecure": True})
    assert config.load_runtime(wildcard, find_host=lambda host: "10.1.2.3").advertise == ("10.1.2.3", 7000)
    with pytest.raises(config.ConfigError, match=r"node\.advertise: .*set node\.advertise"):
        config.load_runtime(wildcard, find_host=lambda host: None)
    given = config.parse_config({"node": {"name": "a", "advertise": "10.9.9.9:7001"}, "insecure": True})
    assert config.load_runtime(given, find_host=None).advertise == ("10.9.9.9", 7001)


def test_find_advertise_host_skips_loopback(monkeypatch):
    def fake_getaddrinfo(host, port, family, kind):
        return [(family, kind, 17, "", ("127.0.1.1", 0)), (family, kind, 17, "", ("192.168.1.20", 0))]
    monkeypatch.setattr(config.socket, "getaddrinfo", fake_getaddrinfo)
    assert config.find_advertise_host("0.0.0.0", "pi") == "192.168.1.20"


def test_trusted_map_and_dir_merge(keydir):
    pub_b = (keydir / "trusted" / "node-b.pub").read_text().strip()
    extra = base64.b64encode(keys.public_bytes(
        keys.load_private_key(str(keydir / "node-a.key")))).decode()
    c = write_config(keydir, "node: {name: node-c, bind: 127.0.0.1:1}\n"
                             "election: {trusted_keys_dir: trusted, trusted_keys: {node-b: %s, node-x: %s}}\n"
                             % (pub_b, extra))
    rt = config.load_runtime(c)
    assert sorted(rt.trusted_keys) == ["node-a", "node-b", "node-x"]
    assert rt.signer is None
    assert any("never leads" in w for w in rt.warnings)
    conflicting = write_config(keydir, "node: {name: node-c, bind: 127.0.0.1:1}\n"
                                       "election: {trusted_keys_dir: trusted, trusted_keys: {node-b: %s}}\n"
                                       % extra)
    with pytest.raises(config.ConfigError, match=r"election\.trusted_keys\.node-b: differs from .*node-b\.pub"):
        config.load_runtime(conflicting)


def test_trusted_map_alone_is_enough():
    pub = base64.b64encode(bytes(range(32))).decode()
    c = config.parse_config({"node": {"name": "x", "bind": "127.0.0.1:1"},
                             "election": {"trusted_keys": {"a": pub}}})
    assert not config.load_runtime(c).insecure


def test_small_order_and_non_canonical_trusted_keys_are_refused_naming_the_key_and_file(keydir):
    small_order = bytes(32)                                    # all zeros: a point of order 4
    not_canonical = (2 ** 255 - 19).to_bytes(32, "little")     # y = p
    with pytest.raises(config.ConfigError) as info:
        config.parse_config({"node": {"name": "x", "bind": "127.0.0.1:1"},
                             "election": {"trusted_keys": {
                                 "zero": base64.b64encode(small_order).decode(),
                                 "big-y": base64.b64encode(not_canonical).decode()}}})
    errors = sorted(info.value.errors)
    assert len(errors) == 2, errors
    assert errors[0].startswith("election.trusted_keys.big-y: ") and "not canonical" in errors[0], errors
    assert errors[1].startswith("election.trusted_keys.zero: ") and "small order" in errors[1], errors
    (keydir / "trusted" / "evil.pub").write_text(base64.b64encode(small_order).decode() + "\n")
    c = write_config(keydir, "node: {name: node-a, bind: 127.0.0.1:1}\n"
                             "election: {signing_key_file: node-a.key, trusted_keys_dir: trusted}\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_runtime(c)
    assert re.match(r"election\.trusted_keys_dir: .*/trusted/evil\.pub: not a usable Ed25519 public key: "
                    r"a point of small order", info.value.errors[0]), info.value.errors


def test_own_key_missing_from_trust_list_is_added_with_a_warning(keydir):
    keys.keygen("node-z", str(keydir))
    c = write_config(keydir, "node: {name: node-z, bind: 127.0.0.1:1}\n"
                             "election: {signing_key_file: node-z.key, trusted_keys_dir: trusted}\n")
    rt = config.load_runtime(c)
    assert "node-z" in rt.trusted_keys
    assert any("node-z.pub" in w for w in rt.warnings)


def test_own_key_not_matching_trust_list_is_an_error(keydir):
    c = write_config(keydir, "node: {name: node-b, bind: 127.0.0.1:1}\n"
                             "election: {signing_key_file: node-a.key, trusted_keys_dir: trusted}\n")
    with pytest.raises(config.ConfigError, match="does not match the trusted public key of node node-b"):
        config.load_runtime(c)


def test_runtime_errors_name_key_and_file_and_are_all_reported(keydir):
    (keydir / "node-a.key").chmod(0o644)
    c = write_config(keydir, "node: {name: node-a, bind: 127.0.0.1:1}\n"
                             "cluster: {keyring_file: nokeyring}\n"
                             "election: {signing_key_file: node-a.key, trusted_keys_dir: nodir}\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_runtime(c)
    errors = info.value.errors
    assert len(errors) == 3, errors
    assert re.match(r"cluster\.keyring_file: .*nokeyring: no such file", errors[0])
    assert re.match(r"election\.signing_key_file: .*node-a\.key: .*chmod 600 ", errors[1])
    assert re.match(r"election\.trusted_keys_dir: .*nodir: no such directory", errors[2])
