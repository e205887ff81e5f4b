"""The docs say what is true (issue 11, item 10): each check runs what a doc says.

- every counter docs/OPERATIONS.md names is in a real agent's `status --json`,
  zero included, and its counter table lists every counter there is;
- READY=1 comes when the API socket answers, without waiting for a seed;
- `leaderd keygen` follows node.name's rules and the exit-code table;
- the set-up commands in configs/lan-cluster.yaml and the README's keyring
  commands, run as written, make files an agent starts with;
- no doc tells a newcomer to install an unpublished package, and the
  README keeps its two set-up commands;
- every exchange in docs/API.md is what a real agent answers;
- micropython/README.md names no placeholder owner; figures name their bench.
"""

import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys

import pytest
import yaml

from agent.config import ConfigError, parse_config
from agent.core import rules
from agent.exitcodes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from daemon_harness import Cluster, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTLE_S = 20


def read(relpath):
    with open(os.path.join(ROOT, relpath), encoding="utf-8") as handle:
        return handle.read()


# --- A real agent, shared by the checks that only ask it ---------------------------------------


@pytest.fixture(scope="module")
def pair():
    """Two agents (signed claims, keyring); node-0 leads."""
    with Cluster(None, 2) as cluster:
        cluster.start_all()
        cluster.wait_leader(leader=0, timeout=SETTLE_S)
        yield cluster


# --- Counters -----------------------------------------------------------------------------------

# Backticked words of OPERATIONS that are counters (a wildcard like `dropped_*` is not a name).
COUNTER_WORD = re.compile(r"`(dropped_[a-z_]+|claims_rejected_[a-z_]+|claims_stale|hooks?_[a-z_]+|api_refused|"
                          r"internal_errors|reload_errors|sent_[a-z_]+|received_[a-z_]+|max_sent_bytes|"
                          r"probe_failures|signature_checks|send_errors|unexpected_ping|refutations)`")


def counter_table(text):
    """The counter names of OPERATIONS' "### Counters" table (first column, backticked)."""
    section = text.split("### Counters", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([a-z_]+)`", line.split("|")[1])
    return names


def test_every_counter_operations_names_is_in_status_json(pair):
    text = read("docs/OPERATIONS.md")
    table = counter_table(text)
    assert len(table) >= 30, table
    named = set(table) | {word for word in COUNTER_WORD.findall(text) if not word.endswith("_")}
    result = pair.cli(1, "status", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    stats = json.loads(result.stdout)["stats"]
    missing = sorted(name for name in named if name not in stats)
    assert not missing, "OPERATIONS names counters that `status --json` lacks: %s" % missing
    assert all(isinstance(stats[name], int) for name in named), stats
    # A fresh follower has rejected nothing: these exist at zero, as the doc says.
    assert stats["claims_rejected_untrusted"] == stats["dropped_busy"] == 0
    undocumented = sorted(set(stats) - set(table))
    assert not undocumented, "counters in `status --json` missing from OPERATIONS' table: %s" % undocumented


# --- READY=1 ------------------------------------------------------------------------------------


def test_ready_comes_with_an_answering_socket_before_any_seed_answers(tmp_path):
    """OPERATIONS §5: READY=1 once the API socket listens; no wait for a seed or a leader."""
    notify_path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, \
            Cluster(None, 2, extra_config={"cluster": {"join_timeout": "60s"}}) as cluster:
        notify.bind(notify_path)
        # node-1, node-0's only seed, is never started: no seed answers.
        cluster.start(0, wait=False, env={"NOTIFY_SOCKET": notify_path})
        notify.settimeout(SETTLE_S)
        messages = []
        while "READY=1" not in messages:
            messages += notify.recv(4096).decode().split("\n")
        status = cluster.client(0).status()  # answered at once, no retry
        assert status["joined"] is False and status["waiting_for_seeds"] is True
        assert status["leader"]["leader"] is None
        text = " ".join(read("docs/OPERATIONS.md").split())
        assert "does not wait for a seed to answer" in text
        assert "once it has bound its UDP port, joined" not in text


# --- keygen -------------------------------------------------------------------------------------

NAMES = ["node-a", "pi.kitchen", "n" * 64, "n" * 65, "", "bad name", "tab\tname", ".hidden", "a/b", "*",
         "nul\x01", "ünïcode", "x" * 30 + "é" * 17]


@pytest.mark.parametrize("name", NAMES)
def test_keygen_takes_exactly_the_names_node_name_takes(tmp_path, name):
    if "\x00" in name:
        pytest.skip("argv cannot carry NUL")
    try:
        parse_config({"node": {"name": name}})
        config_ok = True
    except ConfigError:
        config_ok = False
    assert config_ok == (rules.name_problem(name) is None)
    result = run_cli("keygen", "--name", name, "--out", str(tmp_path))
    if config_ok:
        assert result.returncode == EXIT_OK, result.stderr
        assert os.path.exists(tmp_path / (name + ".key"))
    else:
        # OPERATIONS §8: 2 for bad arguments; nothing written.
        assert result.returncode == EXIT_USAGE, (result.returncode, result.stderr)
        assert "node.name" in result.stderr
        assert os.listdir(tmp_path) == []


def test_keygen_exit_codes_are_the_documented_ones(tmp_path):
    row = [line for line in read("docs/OPERATIONS.md").splitlines() if line.startswith("| `leaderd keygen`")]
    assert len(row) == 1
    cells = [cell.strip() for cell in row[0].strip("|").split("|")]
    assert cells[1] == "written" and "exists" in cells[2] and "no such directory" in cells[2]
    assert "bad arguments" in cells[3] and "node.name" in cells[3]
    assert run_cli("keygen", "--name", "n1", "--out", str(tmp_path)).returncode == EXIT_OK
    again = run_cli("keygen", "--name", "n1", "--out", str(tmp_path))
    assert again.returncode == EXIT_FAILURE and "already exists" in again.stderr
    assert run_cli("keygen", "--name", "n1", "--out", str(tmp_path / "nope")).returncode == EXIT_FAILURE
    assert run_cli("keygen", "--out", str(tmp_path)).returncode == EXIT_USAGE
    assert run_cli("keygen", "n1").returncode == EXIT_USAGE  # argparse: --name is an option


# --- Commands of the docs, run as written -------------------------------------------------------


def shim_env(tmp_path):
    """PATH with a `leaderd` that runs this checkout, and a umask-022 shell's usual environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "leaderd"
    shim.write_text("#!/bin/sh\nexec %s -m agent.cli \"$@\"\n" % shlex.quote(sys.executable))
    shim.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ.get("PATH", "")))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return env


def run_doc_command(line, etc, env):
    """One shell command from a doc, `sudo` dropped, /etc/leaderd moved to etc, in a umask-022 shell."""
    command = line.replace("/etc/leaderd", str(etc))
    command = re.sub(r"(^|;\s*|&&\s*)sudo\s+", r"\1", command)
    result = subprocess.run(["sh", "-c", "umask 022; " + command], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result


def start_single(config_text, tmp_root, name):
    """A Cluster of one node running config_text (its bind and socket set here); returns it started."""
    cluster = Cluster(tmp_root, 1, names=[name], keys=False, keyring=False)
    try:
        cfg = yaml.safe_load(config_text)
        cfg["node"]["bind"] = cfg["node"]["advertise"] = cluster.address(0)
        cfg["cluster"]["seeds"] = []
        cfg["api"] = {"socket": cluster.socket_path(0), "mode": "0600"}
        cluster.write_config(0, cfg)
        check = run_cli("check-config", cluster.config_path(0))
        assert check.returncode == EXIT_OK, check.stdout + check.stderr
        cluster.start(0)
    except BaseException:
        cluster.close()
        raise
    return cluster


def lan_cluster_commands(text):
    """The commands of configs/lan-cluster.yaml's "Set up once" comment (not its comment lines)."""
    block = text.split("Set up once:", 1)[1].split("# Check it with", 1)[0]
    out = []
    for line in block.splitlines():
        body = line[1:].strip() if line.startswith("#   ") else ""
        if body and not body.startswith("#"):
            out.append(body.split("   #", 1)[0].strip())
    return out


def test_lan_cluster_setup_commands_work_as_written(tmp_path):
    text = read("configs/lan-cluster.yaml")
    commands = lan_cluster_commands(text)
    assert any("keygen --name node-a" in c for c in commands) and any("--cluster-key" in c for c in commands)
    etc = tmp_path / "etc"
    etc.mkdir()
    env = shim_env(tmp_path)
    for command in commands:
        run_doc_command(command, etc, env)
    assert stat.S_IMODE(os.stat(etc / "node-a.key").st_mode) == 0o600
    # The comment's manual step: every node's .pub into trusted/.
    (etc / "trusted").mkdir()
    (etc / "trusted" / "node-a.pub").write_bytes((etc / "node-a.pub").read_bytes())
    config = text.replace("/etc/leaderd", str(etc))
    cluster = start_single(config, tmp_path / "run", "node-a")
    with cluster:
        status = cluster.client(0).status()
        assert status["authenticated"] is True and status["self"] == "node-a"
        assert status["leader"]["insecure"] is False
        cluster.wait_leader(leader=0, timeout=SETTLE_S)  # a trusted, signed claim of its own


def test_readme_keyring_commands_make_a_keyring_the_agent_accepts(tmp_path):
    env = shim_env(tmp_path)
    lines = []
    for doc in ("README.md", "docs/OPERATIONS.md"):
        for block in re.findall(r"```sh\n(.*?)```", read(doc), re.S):
            for line in block.splitlines():
                if "keygen --cluster-key" in line and "/etc/leaderd/keyring" in line:
                    lines.append(line.split("   #", 1)[0].strip())
    assert len(lines) >= 2, lines
    template = read("configs/lan-cluster.yaml")
    for n, line in enumerate(lines):
        etc = tmp_path / ("etc%d" % n)
        etc.mkdir()
        run_doc_command(line, etc, env)
        mode = stat.S_IMODE(os.stat(etc / "keyring").st_mode)
        assert mode & 0o007 == 0, (line, oct(mode))
        run_doc_command("leaderd keygen --name node-a --out /etc/leaderd", etc, env)
        (etc / "trusted").mkdir()
        (etc / "trusted" / "node-a.pub").write_bytes((etc / "node-a.pub").read_bytes())
        config = template.replace("/etc/leaderd", str(etc))
        if n == 0:  # one real agent with it; check-config (the same loader) for the others
            with start_single(config, tmp_path / "run", "node-a") as cluster:
                assert cluster.client(0).status()["authenticated"] is True
        else:
            path = etc / "leaderd.yaml"
            cfg = yaml.safe_load(config)
            cfg.pop("api")
            path.write_text(yaml.safe_dump(cfg))
            check = run_cli("check-config", str(path))
            assert check.returncode == EXIT_OK, (line, check.stdout, check.stderr)


# --- Install instructions -----------------------------------------------------------------------

UNPUBLISHED = re.compile(r"\b(pip|pipx)\s+install\s+(--upgrade\s+|-U\s+|--global\s+)?leaderd\b")


@pytest.mark.parametrize("doc", ["README.md", "docs/OPERATIONS.md", "micropython/README.md", "docs/BOARDS.md"])
def test_no_doc_installs_the_unpublished_package_by_name(doc):
    assert not UNPUBLISHED.findall(read(doc)), "leaderd is not on PyPI: install from a checkout or a wheel"


def test_readme_keeps_two_setup_commands():
    quick = read("README.md").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick, re.S)
    assert len(blocks) == 2, blocks
    assert all(len(block.strip().splitlines()) == 1 for block in blocks), blocks
    assert "leaderd demo" in blocks[0] and "pytest" in blocks[1] and "[test]" in blocks[1]


# --- The socket API's format --------------------------------------------------------------------


def api_exchanges(text):
    """(request line, [documented reply objects]) for every `>` line of docs/API.md."""
    out = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("> "):
                out.append((line[2:], []))
            elif line.startswith("< ") and out:
                out[-1][1].append(json.loads(line[2:]))
    return out


def test_every_exchange_in_api_md_is_what_an_agent_answers(pair):
    exchanges = api_exchanges(read("docs/API.md"))
    cmds = {re.match(r'\{"cmd": "([a-z]+)"\}$', request).group(1) for request, _ in exchanges
            if re.match(r'\{"cmd": "([a-z]+)"\}$', request)}
    assert {"leader", "members", "status", "version", "watch"} <= cmds
    for request, documented in exchanges:
        assert documented, request
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(pair.socket_path(1))
            conn.sendall(request.encode() + b"\n")
            got = []
            reader = conn.makefile("rb")
            for _ in documented:
                got.append(json.loads(reader.readline()))
        for doc, real in zip(documented, got):
            assert set(doc) == set(real), (request, sorted(doc), sorted(real))
            assert doc.get("ok") == real.get("ok") and doc.get("api") == real.get("api"), (request, real)
            if "error" in doc:
                assert doc["error"] == real["error"], request
            for key in ("leader", "members", "stats"):  # objects shown empty stand for their content
                if isinstance(doc.get(key), (dict, list)) and doc[key]:
                    item_doc = doc[key][0] if isinstance(doc[key], list) else doc[key]
                    item_real = real[key][0] if isinstance(real[key], list) else real[key]
                    assert set(item_doc) == set(item_real), (request, key, sorted(item_real))


# --- The rest -----------------------------------------------------------------------------------


def test_micropython_readme_has_no_placeholder_owner():
    text = read("micropython/README.md")
    # A made-up account (github:OWNER/..., github:<you>/...) is not an address anyone can use.
    assert not re.search(r"github:[A-Z<{]|\bOWNER\b", text)


def test_failover_figures_name_their_bench_command():
    for doc in ("README.md", "docs/OPERATIONS.md"):
        text = " ".join(read(doc).split())
        assert "about a second" not in text, doc
        assert "bench/daemon_failover.py" in text, doc
    for doc in ("README.md", "docs/OPERATIONS.md", "docs/BENCHMARKS.md"):
        for script in set(re.findall(r"bench/[a-z_]+\.py", read(doc))):
            assert os.path.exists(os.path.join(ROOT, script)), (doc, script)
