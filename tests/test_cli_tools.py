"""The client subcommands find the agent and say what is true (issue 11, items 8 and 9).

- leader, members, status, watch and is-leader take --config FILE (talk to
  the api.socket it names, as `run --config FILE` listens on) and --timeout
  (a clear error naming it when the agent does not answer in time);
- --socket naming a regular file or a directory says so, instead of blaming
  a stopped agent;
- check-config reports missing or non-executable hook and health programs
  (errors) and seed names that do not resolve (warnings), prints its whole
  verdict as JSON with --json, and writes modes as "0660".

The silent agent is a listening socket nobody accepts on: the client's
connect and send succeed (the kernel's backlog) and its read waits for the
timeout, with no sleep anywhere.
"""

import json
import os
import socket

import pytest
import yaml

from agent import cli
from agent.exitcodes import EXIT_UNREACHABLE, EXIT_USAGE
from tests.daemon_harness import Cluster, free_udp_port, run_cli

QUERY_COMMANDS = ("leader", "members", "status", "watch", "is-leader")


@pytest.fixture
def short_dir():
    """A directory with a short path (UNIX socket paths are limited to 107 bytes), removed afterwards."""
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="lt-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def silent_agent(short_dir):
    """The path of a socket that accepts connections (into the backlog) and never answers."""
    path = os.path.join(short_dir, "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(8)
        yield path


# --- 9a. --config, --timeout, --socket on a file ----------------------------------------------

def test_every_query_command_offers_config_and_timeout(capsys):
    for command in QUERY_COMMANDS:
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "--config FILE" in text and "--timeout D" in text and "--socket PATH" in text, (command, text)


@pytest.mark.parametrize("command", QUERY_COMMANDS)
def test_a_silent_agent_times_out_with_a_message_naming_the_timeout(silent_agent, capsys, command):
    code = cli.main([command, "--socket", silent_agent, "--timeout", "200ms"])
    assert code == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert silent_agent in err and "in time" in err and "--timeout 200ms" in err, err


@pytest.mark.parametrize("command", QUERY_COMMANDS)
def test_socket_naming_a_regular_file_says_it_is_not_a_socket(short_dir, capsys, command):
    path = os.path.join(short_dir, "leaderd.yaml")
    with open(path, "w") as handle:
        handle.write("node: {name: a}\n")
    code = cli.main([command, "--socket", path, "--timeout", "1s"])
    assert code == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "%s is a regular file, not a socket" % path in err, err
    assert "not running" not in err, err


def test_socket_naming_a_directory_says_so(short_dir, capsys):
    assert cli.main(["leader", "--socket", short_dir]) == EXIT_UNREACHABLE
    assert "%s is a directory, not a socket" % short_dir in capsys.readouterr().err


def test_config_names_the_socket_to_ask(silent_agent, short_dir, capsys):
    # The silent socket is found through the config: the error names it.
    path = os.path.join(short_dir, "agent.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump({"api": {"socket": silent_agent}}, handle)
    assert cli.main(["status", "--config", path, "--timeout", "100ms"]) == EXIT_UNREACHABLE
    assert "no reply from the agent at %s in time" % silent_agent in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--timeout", "soon"], "--timeout: "),
    (["--timeout", "0"], "--timeout: must be longer than 0"),
    (["--config", "/nonexistent/leaderd.yaml"], "cannot read the config file"),
], ids=["timeout-word", "timeout-zero", "config-missing"])
def test_unusable_timeout_or_config_is_a_usage_error(capsys, args, words):
    for command in QUERY_COMMANDS:
        assert cli.main([command] + args) == EXIT_USAGE, command
        assert words in capsys.readouterr().err, command


def test_a_bad_config_is_a_usage_error_naming_the_key(short_dir, capsys):
    path = os.path.join(short_dir, "bad.yaml")
    with open(path, "w") as handle:
        handle.write("api: {socket: 7, sokcet: x}\n")
    assert cli.main(["leader", "--config", path]) == EXIT_USAGE
    assert "api.sokcet" in capsys.readouterr().err


def test_socket_and_config_together_are_refused(short_dir, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["leader", "--socket", "x", "--config", "y"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_query_commands_reach_a_real_agent_through_its_config(tmp_path):
    with Cluster(str(tmp_path), 1) as c:
        c.start_all()
        c.wait_leader()
        config_path = c.config_path(0)
        env = {"LEADERD_SOCKET": os.path.join(str(tmp_path), "elsewhere.sock")}  # --config wins over it
        leader = run_cli("leader", "--config", config_path, "--json", "--timeout", "5s", env=env)
        assert leader.returncode == 0, leader
        assert json.loads(leader.stdout)["self"] == "node-0"
        assert run_cli("is-leader", "--config", config_path, env=env).returncode == 0
        members = run_cli("members", "--config", config_path, "--json", env=env)
        assert [m["name"] for m in json.loads(members.stdout)["members"]] == ["node-0"], members
        status = run_cli("status", "--config", config_path, env=env)
        assert status.returncode == 0 and "node-0" in status.stdout, status


# --- 8a. check-config: programs, seed names, the verdict as JSON --------------------------------

def _write_config(directory, data):
    path = os.path.join(directory, "leaderd.yaml")
    base = {"node": {"name": "n1", "bind": "127.0.0.1:%d" % free_udp_port()}}
    base.update(data)
    with open(path, "w") as handle:
        yaml.safe_dump(base, handle)
    return path


def _programs(directory):
    """(an executable script, a plain file, a missing path) under directory."""
    good = os.path.join(directory, "good-hook")
    with open(good, "w") as handle:
        handle.write("#!/bin/sh\nexit 0\n")
    os.chmod(good, 0o755)
    plain = os.path.join(directory, "plain-hook")
    with open(plain, "w") as handle:
        handle.write("#!/bin/sh\nexit 0\n")
    os.chmod(plain, 0o644)
    return good, plain, os.path.join(directory, "missing-hook")


def test_check_installation_names_each_unusable_program(short_dir):
    from agent import config
    good, plain, missing = _programs(short_dir)
    cfg = config.parse_config({
        "hooks": {"on_elected": [missing, "--now"], "on_demoted": [plain], "on_leader_change": [good]},
        "health": {"command": ["no-such-check-anywhere"]}})
    errors, warnings = config.check_installation(cfg, which=lambda name: None)
    assert errors == [
        "hooks.on_elected[0]: %s does not exist" % missing,
        "hooks.on_demoted[0]: %s is not executable (by this user): chmod +x it" % plain,
        "health.command[0]: 'no-such-check-anywhere' is not found in PATH (%s); give its full path"
        % os.environ.get("PATH", ""),
    ] and warnings == []
    cfg = config.parse_config({"hooks": {"on_elected": [short_dir]}, "health": {"command": ["sh", "-c", "true"]}})
    assert config.check_installation(cfg)[0] == ["hooks.on_elected[0]: %s is a directory, not a program" % short_dir]


def test_check_installation_warns_about_seed_names_that_do_not_resolve():
    from agent import config
    asked = []

    def resolve(host, port, family, kind):
        asked.append((host, port, family))
        if host == "pi-garage.local":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(family, kind, 0, "", ("192.168.1.11", port))]

    cfg = config.parse_config({"cluster": {"seeds": ["192.168.1.10:7946", "pi-garage.local:7946", "pi-shed:7947"]}})
    errors, warnings = config.check_installation(cfg, resolve=resolve)
    assert errors == []
    assert warnings == ["cluster.seeds[1]: pi-garage.local does not resolve now (Name or service not known); "
                        "an agent started before it does goes on without this seed"]
    assert asked == [("pi-garage.local", 7946, socket.AF_INET), ("pi-shed", 7947, socket.AF_INET)]


def test_check_config_refuses_a_missing_hook_and_warns_about_an_unresolvable_seed(short_dir):
    good, plain, missing = _programs(short_dir)
    path = _write_config(short_dir, {"hooks": {"on_elected": [missing]},
                                     "cluster": {"seeds": ["nowhere.invalid:7946"]}})
    checked = run_cli("check-config", path)
    assert checked.returncode == EXIT_USAGE, checked
    assert "%s: hooks.on_elected[0]: %s does not exist" % (path, missing) in checked.stderr, checked.stderr
    assert "warning: cluster.seeds[0]: nowhere.invalid does not resolve now" in checked.stderr, checked.stderr
    assert "valid (" not in checked.stdout, checked.stdout
    # The seed alone is only a warning.
    path = _write_config(short_dir, {"hooks": {"on_elected": [good]}, "cluster": {"seeds": ["nowhere.invalid:7946"]}})
    checked = run_cli("check-config", path)
    assert checked.returncode == 0, checked
    assert "valid (node n1" in checked.stdout and "nowhere.invalid does not resolve" in checked.stderr, checked


def test_check_config_json_prints_the_verdict_with_errors_and_warnings(short_dir):
    good, plain, missing = _programs(short_dir)
    path = _write_config(short_dir, {"health": {"command": [plain]}, "api": {"mode": "0640"}})
    checked = run_cli("check-config", "--json", path)
    assert checked.returncode == EXIT_USAGE, checked
    verdict = json.loads(checked.stdout)
    assert verdict["valid"] is False and verdict["file"] == path
    assert verdict["errors"] == ["health.command[0]: %s is not executable (by this user): chmod +x it" % plain]
    assert any("unauthenticated" in w for w in verdict["warnings"]), verdict
    assert verdict["config"]["api"]["mode"] == "0640" and verdict["config"]["node"]["name"] == "n1"
    path = _write_config(short_dir, {"health": {"command": [good]}})
    verdict = json.loads(run_cli("check-config", "--json", path).stdout)
    assert verdict["valid"] is True and verdict["errors"] == [] and verdict["config"]["api"]["mode"] == "0660"


def test_check_config_json_of_a_file_that_does_not_parse(short_dir, capsys):
    path = os.path.join(short_dir, "broken.yaml")
    with open(path, "w") as handle:
        handle.write("node: {priority: 300}\n")
    assert cli.main(["check-config", "--json", path]) == EXIT_USAGE
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["valid"] is False and verdict["config"] is None
    assert len(verdict["errors"]) == 1 and verdict["errors"][0].startswith("node.priority: got 300"), verdict


# --- 9b. a port clash names the address --------------------------------------------------------

def test_a_port_clash_names_the_address_and_the_key(short_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        sock = os.path.join(short_dir, "api.sock")
        path = os.path.join(short_dir, "clash.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump({"node": {"name": "clash", "bind": "127.0.0.1:%d" % port},
                            "gossip": {"profile": "local"}, "api": {"socket": sock}}, handle)
        ran = run_cli("run", "--config", path, timeout=20)
    assert ran.returncode == 1, ran
    assert "cannot bind UDP 127.0.0.1:%d (node.bind): address already in use" % port in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    assert not os.path.exists(sock)


# --- 9b. SIGHUP logs what changed --------------------------------------------------------------

def test_reload_changes_names_each_applied_change(short_dir):
    from agent import config, daemon, keys
    trusted = os.path.join(short_dir, "trusted")
    os.mkdir(trusted)
    for name in ("n1", "n2", "n3"):
        keys.keygen(name, short_dir)
        os.replace(os.path.join(short_dir, name + ".pub"), os.path.join(trusted, name + ".pub"))
    base = {"node": {"name": "n1", "bind": "127.0.0.1:7946"},
            "election": {"signing_key_file": os.path.join(short_dir, "n1.key"), "trusted_keys_dir": trusted}}

    def load(data):
        cfg = config.parse_config(data)
        return cfg, config.load_runtime(cfg)

    old = load(base)
    assert daemon.reload_changes(*old, *load(base)) == []
    os.unlink(os.path.join(trusted, "n3.pub"))
    new = load(dict(base, node={"name": "n1", "bind": "127.0.0.1:7946", "priority": 150},
                    hooks={"on_elected": ["/bin/true", "x"], "timeout": "10s"},
                    health={"command": ["/bin/true"], "rise": 1}))
    assert daemon.reload_changes(*old, *new) == [
        "node.priority 100 -> 150",
        "trusted keys: no longer trusted n3",
        "hooks.on_elected none -> /bin/true x",
        "hooks.timeout 30s -> 10s",
        "health.command none -> /bin/true",
        "health.rise 2 -> 1",
    ]


def test_sighup_logs_what_changed(tmp_path):
    import signal
    with Cluster(str(tmp_path), 1) as c:
        c.start_all()
        c.wait_leader()
        changed = c.config(0)
        changed["node"]["priority"] = changed["node"].get("priority", 100) + 7
        before = c.config(0)["node"].get("priority", 100)
        c.write_config(0, changed)
        mark = c.log_size(0)
        c.send_signal(0, signal.SIGHUP)
        c.wait_log(0, "SIGHUP: configuration reloaded: node.priority %d -> %d" % (before, before + 7),
                   15, after=mark)
        mark = c.log_size(0)
        c.send_signal(0, signal.SIGHUP)
        c.wait_log(0, "SIGHUP: configuration reloaded: nothing changed", 15, after=mark)
