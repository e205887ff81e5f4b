"""agent/paths.py: the one definition of the default API socket, and the
modules that must agree with it."""

from agent import client, config, paths
from agent.cli import main


def test_the_documented_default_socket():
    assert paths.SYSTEM_SOCKET_PATH == "/run/leaderd/leaderd.sock"
    assert paths.socket_in("/run/user/1000") == "/run/user/1000/leaderd/leaderd.sock"
    assert paths.USER_SOCKET_PATH_TEXT == "$XDG_RUNTIME_DIR/leaderd/leaderd.sock"


def test_the_daemons_default_socket_is_the_clients():
    # agent/config.py still spells the path out (it is being reworked
    # elsewhere); until it imports agent.paths, this keeps the two in step.
    assert config.default_socket_path({}) == paths.SYSTEM_SOCKET_PATH
    assert config.default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == paths.socket_in("/run/user/7")
    assert client.SYSTEM_SOCKET_PATH is paths.SYSTEM_SOCKET_PATH


def test_help_names_both_defaults(capsys):
    assert main(["leader", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert paths.USER_SOCKET_PATH_TEXT in text and paths.SYSTEM_SOCKET_PATH in text
