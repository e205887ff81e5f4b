"""The daemon's config and the board's take and refuse the same values, with the daemon's words.

One table of good and bad values for the keys both configs have, fed to the
daemon's checker (agent/config.py, parse_config; agent/keys.py for key
files) and to the board's (micropython/leaderd_config.py, parse) under the
real MicroPython interpreter and under CPython. Every runtime must give the
verdict the table says; for a bad value each names the key, and each
message holds the same phrase of the daemon's (agent/core/rules.py, where
the rules live once). The rows marked "drift" are values the board took and
the daemon refused, or the other way round, before the rules were shared.

The one difference left on purpose: a board's socket is IPv4 only, so it
refuses the IPv6 addresses the daemon takes (test_ipv6_is_the_boards_one_difference).
"""

import base64
import json
import os
import subprocess
import sys

import pytest

from agent import config as daemon_config
from agent import keys as daemon_keys
from test_micropython import require_micropython

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_DIR = os.path.join(REPO_ROOT, "micropython")
sys.path.insert(0, BOARD_DIR)
import leaderd_config as board_config  # noqa: E402

sys.path.remove(BOARD_DIR)

with open(os.path.join(REPO_ROOT, "tests", "vectors", "ed25519_public_keys.json")) as _handle:
    _KEY_VECTORS = json.load(_handle)
PUBLIC_KEY = base64.b64encode(bytes.fromhex(_KEY_VECTORS["accepted"][0]["key"])).decode()
SMALL_ORDER_KEY = base64.b64encode(bytes.fromhex(_KEY_VECTORS["refused"][0]["key"])).decode()
CLUSTER_KEY = base64.b64encode(b"k" * 32).decode()
OTHER_CLUSTER_KEY = base64.b64encode(b"j" * 32).decode()
SEED = base64.b64encode(bytes(range(32))).decode()

NAME_RULE = ("expected a name of 1..64 UTF-8 bytes without spaces, '/' or control characters, not starting "
             "with '.' (and not '*', which pings use)")
DURATION_RULE = "expected a number with a unit ms, s, m or h"
FINER = "finer than a millisecond (the smallest unit is 1ms)"
HOST_PORT = "expected host:port, e.g. 192.168.1.10:7946, pi-garage.local:7946 or [fd00::1]:7946"
IP_ONLY = "expected an IP address and port, e.g. 192.168.1.20:7946 or [fd00::1]:7946 (names are allowed in " \
          "cluster.seeds only)"
PORT = HOST_PORT + " (the port must be 1..65535)"
DNS = HOST_PORT + " (the host must be an IP address or a DNS name of at most 64 bytes)"

# (section, key, value, verdict, phrase): verdict "ok" or "bad"; phrase, for
# a bad value, is what both error messages must hold (the daemon's words).
# "drift" in the comment: the two checkers disagreed before agent/core/rules.py.
CASES = [
    # Names: node.name and cluster.name (the trust list's names further down).
    ("node", "name", "pi-kitchen", "ok", None),
    ("node", "name", "board_1", "ok", None),
    ("node", "name", "x.y", "ok", None),
    ("node", "name", "**", "ok", None),
    ("node", "name", "sensor-\u00e9", "ok", None),
    ("node", "name", "n" * 64, "ok", None),
    ("node", "name", "\u00e9" * 32, "ok", None),
    ("node", "name", "*", "bad", NAME_RULE),                 # drift: the wire's any-target
    ("node", "name", ".x", "bad", NAME_RULE),                # drift: a hidden NAME.pub
    ("node", "name", ".", "bad", NAME_RULE),                 # drift
    ("node", "name", "a\x1b[2J", "bad", NAME_RULE),          # drift: a terminal escape
    ("node", "name", "bell\x07", "bad", NAME_RULE),          # drift
    ("node", "name", "del\x7f", "bad", NAME_RULE),           # drift: the daemon took DEL and C1
    ("node", "name", "csi\u009b2J", "bad", NAME_RULE),       # drift
    ("node", "name", "nbsp\u00a0x", "bad", NAME_RULE),       # drift: white space beyond ASCII
    ("node", "name", "em\u2003space", "bad", NAME_RULE),     # drift
    ("node", "name", "lone\ud800", "bad", NAME_RULE),        # drift: not UTF-8 (MicroPython took it)
    ("node", "name", "tab\tin", "bad", NAME_RULE),
    ("node", "name", "a b", "bad", NAME_RULE),
    ("node", "name", "a/b", "bad", NAME_RULE),
    ("node", "name", "", "bad", NAME_RULE),
    ("node", "name", "n" * 65, "bad", NAME_RULE),
    ("node", "name", "\u00e9" * 33, "bad", NAME_RULE),
    ("node", "name", 5, "bad", NAME_RULE),
    ("node", "name", ["a"], "bad", NAME_RULE),
    ("cluster", "name", "home", "ok", None),
    ("cluster", "name", "*", "bad", NAME_RULE),              # drift
    ("cluster", "name", ".home", "bad", NAME_RULE),          # drift
    # Priority.
    ("node", "priority", 0, "ok", None),
    ("node", "priority", 255, "ok", None),
    ("node", "priority", 256, "bad", "expected an integer 0..255 (0 = never leads)"),
    ("node", "priority", -1, "bad", "expected an integer 0..255 (0 = never leads)"),
    ("node", "priority", True, "bad", "expected an integer 0..255 (0 = never leads)"),
    ("node", "priority", 1.0, "bad", "expected an integer 0..255 (0 = never leads)"),
    ("node", "priority", "5", "bad", "expected an integer 0..255 (0 = never leads)"),
    # Addresses.
    ("node", "bind", "0.0.0.0:7946", "ok", None),
    ("node", "bind", "10.0.0.5:1", "ok", None),
    ("node", "bind", "10.0.0.5:65535", "ok", None),
    ("node", "bind", "10.0.0.5:007946", "ok", None),         # drift: the board took 5 digits at most
    ("node", "bind", "10.0.0.5:0", "bad", PORT),
    ("node", "bind", "10.0.0.5:65536", "bad", PORT),
    ("node", "bind", "10.0.0.5:\u00b2", "bad", PORT),        # the daemon crashed on it (int("²"))
    ("node", "bind", "10.0.0.5:\u0667\u0669\u0664\u0666", "bad", PORT),  # drift: Arabic-Indic digits
    ("node", "bind", "10.0.0.5", "bad", HOST_PORT + " (the port is missing)"),
    ("node", "bind", "01.0.0.5:7946", "bad", IP_ONLY),        # drift: ipaddress refuses leading zeros
    ("node", "bind", "256.0.0.1:7946", "bad", IP_ONLY),
    ("node", "bind", "localhost:7946", "bad", IP_ONLY),
    ("node", "bind", "fd00::1:7946", "bad", HOST_PORT + " (write an IPv6 address in brackets)"),
    ("node", "bind", 7946, "bad", HOST_PORT + " (a quoted string)"),
    ("node", "advertise", "10.0.0.9:7000", "ok", None),
    ("node", "advertise", "0.0.0.0:7946", "bad", "expected an address other nodes can reach, not a wildcard"),
    ("cluster", "seeds", ["10.0.0.1:7946", "pi-garage.local:7946"], "ok", None),
    ("cluster", "seeds", ["under_score:7946"], "ok", None),   # drift: the board refused '_'
    ("cluster", "seeds", ["pi.local.:7946"], "ok", None),
    ("cluster", "seeds", [], "ok", None),
    ("cluster", "seeds", ["-bad:7946"], "bad", DNS),          # drift: the board took any letters, '-', '.'
    ("cluster", "seeds", ["a..b:7946"], "bad", DNS),          # drift
    ("cluster", "seeds", ["h" * 65 + ":7946"], "bad", DNS),   # drift: longer than the wire's 64 bytes
    ("cluster", "seeds", ["bad host!:7946"], "bad", DNS),
    ("cluster", "seeds", ["10.0.0.1:0"], "bad", PORT),
    ("cluster", "seeds", ["nowhere"], "bad", HOST_PORT + " (the port is missing)"),
    ("cluster", "seeds", "10.0.0.1:7946", "bad", "expected a list of host:port strings"),
    # Tags.
    ("node", "tags", {"room": "kitchen", "empty": ""}, "ok", None),
    ("node", "tags", {"k" * 32: "v" * 32}, "ok", None),
    ("node", "tags", {"k": "v" * 33}, "bad", "expected a string of at most 32 UTF-8 bytes"),
    ("node", "tags", {"k": 5}, "bad", "expected a string of at most 32 UTF-8 bytes"),
    ("node", "tags", {"k": "lone\ud800"}, "bad", "expected a string of at most 32 UTF-8 bytes"),  # drift
    ("node", "tags", {"": "v"}, "bad", "expected tag names of 1..32 UTF-8 bytes"),
    ("node", "tags", {"k" * 33: "v"}, "bad", "expected tag names of 1..32 UTF-8 bytes"),
    ("node", "tags", dict(("t%d" % i, "v") for i in range(9)), "bad", "expected at most 8 tags (got 9)"),
    ("node", "tags", ["a"], "bad", "expected a mapping of string -> string"),
    # Durations.
    ("election", "preempt_delay", "1.5s", "ok", None),
    ("election", "preempt_delay", "200ms", "ok", None),
    ("election", "preempt_delay", "5m", "ok", None),
    ("election", "preempt_delay", "1h30m", "ok", None),
    ("election", "preempt_delay", "0.5ms0.5ms", "ok", None),
    ("election", "preempt_delay", " 3s ", "ok", None),
    ("election", "preempt_delay", ".5s", "ok", None),
    ("election", "preempt_delay", 5, "ok", None),
    ("election", "preempt_delay", 0.25, "ok", None),
    ("election", "preempt_delay", 0, "ok", None),
    ("election", "preempt_delay", "1.5ms", "bad", FINER),          # drift: the board read 1 ms
    ("election", "preempt_delay", "0.0005s", "bad", FINER),        # drift: the board read 0
    ("election", "preempt_delay", 0.0001, "bad", FINER),           # drift
    ("election", "preempt_delay", "\u0665s", "bad", DURATION_RULE),  # drift: the daemon read 5 s
    ("election", "preempt_delay", "2S", "bad", DURATION_RULE),
    ("election", "preempt_delay", "1m30", "bad", DURATION_RULE),
    ("election", "preempt_delay", "1e3", "bad", DURATION_RULE),
    ("election", "preempt_delay", "", "bad", DURATION_RULE),
    ("election", "preempt_delay", True, "bad", DURATION_RULE),
    ("election", "preempt_delay", "-1s", "bad", "must not be negative"),
    ("election", "preempt_delay", -1, "bad", "must not be negative"),
    ("cluster", "join_timeout", "0", "ok", None),
    ("cluster", "join_timeout", "soon", "bad", DURATION_RULE),
    ("gossip", "probe_interval", "1s", "ok", None),
    ("gossip", "probe_interval", "0ms", "bad", "expected a duration of at least 1ms"),  # drift: wording
    ("gossip", "probe_interval", "1.5ms", "bad", FINER),
    ("gossip", "probe_interval_ms", 800, "ok", None),
    ("gossip", "probe_interval_ms", "800ms", "ok", None),
    ("gossip", "probe_interval_ms", 0, "bad", "expected a positive number of milliseconds"),
    ("gossip", "push_pull_interval", 45, "ok", None),
    # Gossip integers and the profile.
    ("gossip", "gossip_nodes", 1000, "ok", None),
    ("gossip", "gossip_nodes", 0, "bad", "expected an integer 1..1000"),
    ("gossip", "gossip_nodes", 1001, "bad", "expected an integer 1..1000"),
    ("gossip", "mtu_bytes", 512, "ok", None),
    ("gossip", "mtu_bytes", 511, "bad", "expected an integer 512..65000"),
    ("gossip", "profile", "wan", "ok", None),
    ("gossip", "profile", "LAN", "ok", None),                     # drift: the board refused
    ("gossip", "profile", "fast", "bad", "expected one of: lan, wan, local"),
    ("gossip", "profile", ["lan"], "bad", "expected one of: lan, wan, local"),
    ("log", "level", "debug", "ok", None),
    ("log", "level", "INFO", "ok", None),                         # drift: the board refused
    ("log", "level", "loud", "bad", "expected one of: debug, info, warning, error"),
    # Booleans and paths.
    ("election", "preempt", False, "ok", None),
    ("election", "preempt", "yes", "bad", "expected true or false"),
    ("election", "preempt", 1, "bad", "expected true or false"),
    ("election", "term_file", "/flash/leaderd.term", "ok", None),
    ("election", "term_file", "", "bad", "expected a file path"),
    ("election", "term_file", "a\x00b", "bad", "expected a file path"),  # drift: the board took NUL
    ("election", "term_file", 5, "bad", "expected a file path"),
    # The trust list: names and keys.
    ("election", "trusted_keys", {"pi": PUBLIC_KEY}, "ok", None),
    ("election", "trusted_keys", {"pi": " %s\n" % PUBLIC_KEY}, "ok", None),
    ("election", "trusted_keys", {"*": PUBLIC_KEY}, "bad", NAME_RULE),        # drift
    ("election", "trusted_keys", {".x": PUBLIC_KEY}, "bad", NAME_RULE),       # drift
    ("election", "trusted_keys", {"pi": "AAAA"}, "bad",
     "expected the base64 of a 32-byte Ed25519 public key (the one line of pi.pub)"),
    ("election", "trusted_keys", {"pi": PUBLIC_KEY[:8] + "@" + PUBLIC_KEY[8:]}, "bad",   # drift: lenient base64
     "expected the base64 of a 32-byte Ed25519 public key (the one line of pi.pub)"),
    ("election", "trusted_keys", {"pi": SMALL_ORDER_KEY}, "bad",
     "not a usable Ed25519 public key: a point of small order"),
    ("election", "trusted_keys", ["pi"], "bad", "expected a mapping of node name -> base64 Ed25519 public key"),
]

# Key files: (file text, verdict, phrase) through the daemon's keys.load_keyring
# and the board's cluster.keyring_file; then the same for a signing key file.
KEYRING_FILES = [
    ("%s\n" % CLUSTER_KEY, "ok", None),
    ("# primary first\n%s\n\n%s\n" % (CLUSTER_KEY, OTHER_CLUSTER_KEY), "ok", None),
    ("%s\n%s\n" % (CLUSTER_KEY, CLUSTER_KEY), "bad", "the same key appears twice"),          # drift
    ("%s\n" % (CLUSTER_KEY[:5] + "!" + CLUSTER_KEY[5:]), "bad", "not valid base64"),         # drift
    ("%s\n" % base64.b64encode(b"short").decode(), "bad", "key decodes to 5 bytes, at least 16 needed"),
    ("# nothing\n\n", "bad", "no keys (one base64 key per line, the first being the primary)"),
]
SEED_FILES = [
    ("%s\n" % SEED, "ok", None),
    ("# node-a\n%s\n" % SEED, "ok", None),                          # drift: the daemon refused the comment
    ("%s\n%s\n" % (SEED, SEED), "bad", "expected exactly one line"),
    ("", "bad", "expected exactly one line"),
]


def _daemon_data(section, key, value):
    # advertise: a board bound to 0.0.0.0 needs one (or a WiFi address) at parse time, the daemon later.
    # insecure: a reachable bind without keys is refused otherwise (tests/test_secure_defaults.py).
    data = {"node": {"name": "n1", "bind": "10.0.0.5:7946", "advertise": "10.0.0.5:7946"}, "insecure": True}
    data.setdefault(section, {})[key] = value
    return data


def _daemon_verdict(section, key, value):
    """("ok" | "bad", [error lines]) from the daemon's parse_config."""
    try:
        daemon_config.parse_config(_daemon_data(section, key, value))
    except daemon_config.ConfigError as exc:
        return "bad", exc.errors
    return "ok", []


def _board_data(section, key, value):
    return _daemon_data(section, key, value)


# The board's checker under MicroPython: the cases in, one verdict line out per case.
_BOARD_SCRIPT = r'''
import json
import sys
import leaderd_config
with open(sys.argv[-1]) as handle:
    cases = json.loads(handle.read())
for data in cases:
    try:
        leaderd_config.parse(data)
        print(json.dumps(["ok", []]))
    except leaderd_config.ConfigError as exc:
        print(json.dumps(["bad", exc.errors]))
print("done %d" % len(cases))
'''


def _board_verdicts_micropython(datas, tmp_path):
    interpreter = require_micropython()
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(datas))  # ASCII escapes: "\ud800" reaches MicroPython as a lone surrogate
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join((".frozen", BOARD_DIR, REPO_ROOT))
    result = subprocess.run([interpreter, "-X", "heapsize=4m", "-c", _BOARD_SCRIPT, str(cases)], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            timeout=300)  # errors: MicroPython prints a lone surrogate as its bytes
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines and lines[-1] == "done %d" % len(datas), result.stdout[-3000:]
    return [tuple(json.loads(line)) for line in lines[:-1]]


def _board_verdict_cpython(data):
    try:
        board_config.parse(data)
    except board_config.ConfigError as exc:
        return "bad", exc.errors
    return "ok", []


def _check_line(errors, path, phrase, who):
    """The error line of errors naming path must hold phrase."""
    lines = [line for line in errors if line.startswith(path + ":") or line.startswith(path + ".")
             or line.startswith(path + "[")]
    assert lines, "%s: no error names %s: %r" % (who, path, errors)
    assert any(phrase in line for line in lines), "%s: %r not in %r" % (who, phrase, lines)


def test_the_same_table_gets_the_same_verdicts_everywhere(tmp_path):
    datas = [_board_data(section, key, value) for section, key, value, _, _ in CASES]
    micropython = _board_verdicts_micropython(datas, tmp_path)
    assert len(micropython) == len(CASES)
    wrong = []
    for (section, key, value, verdict, phrase), data, board_mp in zip(CASES, datas, micropython):
        path = "%s.%s" % (section, key)
        daemon = _daemon_verdict(section, key, value)
        board_cp = _board_verdict_cpython(data)
        got = (daemon[0], board_cp[0], board_mp[0])
        if got != (verdict, verdict, verdict):
            wrong.append("%s = %r: expected %s, got daemon %s, board (CPython) %s, board (MicroPython) %s: %r %r %r"
                         % (path, value, verdict, got[0], got[1], got[2], daemon[1], board_cp[1], board_mp[1]))
            continue
        if verdict == "bad":
            try:
                _check_line(daemon[1], path, phrase, "daemon")
                _check_line(board_cp[1], path, phrase, "board (CPython)")
                _check_line(board_mp[1], path, phrase, "board (MicroPython)")
            except AssertionError as exc:
                wrong.append("%s = %r: %s" % (path, value, exc))
    assert wrong == [], "\n".join(wrong)


def test_the_table_covers_the_known_drift():
    values = [(section, key, value) for section, key, value, verdict, _ in CASES if verdict == "bad"]
    for needed in (("node", "name", "*"), ("node", "name", ".x"), ("node", "name", "a\x1b[2J"),
                   ("election", "preempt_delay", "1.5ms")):
        assert needed in values, needed
    assert ("cluster", "seeds", ["under_score:7946"]) in [(s, k, v) for s, k, v, verdict, _ in CASES
                                                           if verdict == "ok"]


def test_ipv6_is_the_boards_one_difference(tmp_path):
    # The daemon binds, advertises and joins over IPv6; a board's socket is
    # AF_INET, so its config refuses an IPv6 address, and says why.
    cases = [("node", "bind", "[::]:7946"), ("node", "advertise", "[fd00::20]:7946"),
             ("cluster", "seeds", ["[fd00::1]:7946"])]
    datas = [_board_data(*case) for case in cases]
    micropython = _board_verdicts_micropython(datas, tmp_path)
    for case, data, board_mp in zip(cases, datas, micropython):
        assert _daemon_verdict(*case) == ("ok", []), case
        for who, (verdict, errors) in (("CPython", _board_verdict_cpython(data)), ("MicroPython", board_mp)):
            assert verdict == "bad", (who, case)
            _check_line(errors, "%s.%s" % case[:2], "(a board has no IPv6)", "board (%s)" % who)


def _key_file_cases(tmp_path, rows, daemon_load, board_key, name):
    """Writes each row's text to a file; returns [(row, path, daemon verdict and message, board data)]."""
    out = []
    for index, (text, verdict, phrase) in enumerate(rows):
        path = tmp_path / ("%s-%d" % (name, index))
        path.write_text(text)
        os.chmod(path, 0o600)
        try:
            daemon_load(str(path))
            daemon = ("ok", "")
        except daemon_keys.KeyFileError as exc:
            daemon = ("bad", str(exc))
        section = "cluster" if board_key == "keyring_file" else "election"
        out.append(((text, verdict, phrase), daemon, _board_data(section, board_key, str(path))))
    return out


@pytest.mark.parametrize("rows, daemon_load, board_key", [
    (KEYRING_FILES, daemon_keys.load_keyring, "keyring_file"),
    (SEED_FILES, daemon_keys.load_private_key, "signing_key_file"),
], ids=["keyring", "signing key"])
def test_key_files_get_the_same_verdicts(tmp_path, rows, daemon_load, board_key):
    cases = _key_file_cases(tmp_path, rows, daemon_load, board_key, board_key)
    micropython = _board_verdicts_micropython([data for _, _, data in cases], tmp_path)
    for ((text, verdict, phrase), daemon, data), board_mp in zip(cases, micropython):
        board_cp = _board_verdict_cpython(data)
        assert (daemon[0], board_cp[0], board_mp[0]) == (verdict, verdict, verdict), (text, daemon, board_cp, board_mp)
        if verdict == "bad":
            assert phrase in daemon[1], (text, daemon)
            path = "cluster.keyring_file" if board_key == "keyring_file" else "election.signing_key_file"
            _check_line(board_cp[1], path, phrase, "board (CPython)")
            _check_line(board_mp[1], path, phrase, "board (MicroPython)")
