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
