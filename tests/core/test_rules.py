"""Tests for agent.core.rules, the one set of config rules (CPython and MicroPython).

Tables of values and the verdict each must get, on both runtimes: names,
integer limits, choices, durations (exact decimals), addresses (Python's
ipaddress rules, written out), tags, base64 and keys. tests/test_config_parity.py
then holds the daemon's and the board's config checkers to the same
verdicts. Plain functions and plain asserts only: see tests/mp_runner.py.
"""

import binascii
import json

from agent.core import rules, wire


def _raises(call, *words):
    """Call call(); assert it raises ValueError whose message has every word; return the message."""
    try:
        call()
    except ValueError as exc:
        message = str(exc)
        for word in words:
            assert word in message, "%r not in %r" % (word, message)
        return message
    raise AssertionError("no ValueError raised")


# --- Names -----------------------------------------------------------------------

# wire.name_error's refusals, and what a config name refuses beyond them.
BAD_NAMES = (
    "", "n" * 65, "\u00e9" * 33, "*", "\x00", "a\x1b[2J", "tab\there", "new\nline", "del\x7f", "c1\u009b2J",
    "\u0085", ".x", ".", "..", "a/b", "/", "a b", " a", "a ", "nbsp\u00a0x", "em\u2003x", "ideo\u3000x",
    "ogham\u1680x", "ls\u2028x", "nnbsp\u202fx", "mmsp\u205fx", "hair\u200ax", "fs\x1cx",
    None, 5, True, b"bytes", ["a"],
)
GOOD_NAMES = (
    "a", "pi-kitchen", "board_1", "x.y", "a.", "**", "a*", "*a", "~", "sensor-\u00e9", "\u00e9" * 32, "n" * 64,
    "\U0001f6f0" * 16, "zwsp\u200bx", "a\u00a1", "a.b.c",
)


def test_name_problem_refuses_the_wires_refusals_and_more():
    for name in BAD_NAMES:
        problem = rules.name_problem(name)
        assert problem is not None, name
        assert "1..64 UTF-8 bytes" in problem and "'*'" in problem and "'.'" in problem, problem
    for name in GOOD_NAMES:
        assert rules.name_problem(name) is None, name
        assert wire.name_error(name) is None, name  # a config name is always a wire name


def test_name_problem_refuses_text_that_is_not_utf8():
    # A lone surrogate: CPython cannot encode it, MicroPython's JSON makes
    # one; either way not a name (nor a tag, nor a path).
    lone = json.loads('"a\\ud800"')
    assert rules.name_problem(lone) is not None
    assert rules.tag_problems({"k": lone}) != []
    assert rules.path_problem(lone) is not None


# --- Integers and choices ---------------------------------------------------------


def test_integer_limits_by_field():
    table = (
        ("priority", 0, 255, "(0 = never leads)"),
        ("mtu_bytes", 512, 65000, "(bytes per datagram)"),
        ("rise", 1, 100, "(passing checks in a row)"),
        ("fall", 1, 100, "(failing checks in a row)"),
        ("gossip_nodes", 1, 1000, ""),
        ("suspicion_mult", 1, 1000, ""),
    )
    for field, low, high, meaning in table:
        assert rules.integer(low, field) == low and rules.integer(high, field) == high
        for bad in (low - 1, high + 1, True, False, float(low), str(low), None):
            message = _raises(lambda: rules.integer(bad, field), "expected an integer %d..%d" % (low, high))
            assert message.endswith(meaning), message
    assert _raises(lambda: rules.integer(0, "gossip_nodes")) == "expected an integer 1..1000"


def test_choice_is_case_blind_in_ascii_only():
    names = ("lan", "wan", "local")
    assert rules.choice("lan", names) == "lan"
    assert rules.choice("LAN", names) == "lan" and rules.choice("Local", names) == "local"
    for bad in ("fast", "la", "lan ", ["lan"], None, True, 5, "\u212aan", "l\u0130an"):
        _raises(lambda: rules.choice(bad, names), "expected one of: lan, wan, local")


def test_path_problem():
    assert rules.path_problem("/flash/term") is None and rules.path_problem("term") is None
    for bad in ("", "a\x00b", None, 5, b"/x"):
        assert rules.path_problem(bad) == "expected a file path", bad


# --- Durations -----------------------------------------------------------------------

DURATIONS = (
    ("250ms", 250), ("2s", 2000), ("10m", 600000), ("1h", 3600000), ("1.5s", 1500), (".5s", 500),
    ("5.s", 5000), ("0.25m", 15000), ("1m30s", 90000), ("1h30m", 5400000), ("2s500ms", 2500),
    ("0.5ms0.5ms", 1), ("1.0005s0.5ms", 1001), ("5", 5000), ("0.5", 500), ("0", 0), (" 3s ", 3000),
    ("\u00a03s\u2003", 3000), ("0.001", 1), ("99999999999999999999h", 99999999999999999999 * 3600000),
    (5, 5000), (0, 0), (0.25, 250), (1.5, 1500), (0.001, 1), (-0.0, 0), (1e16, 10 ** 19),
    (72057594037929.0, 72057594037929000),
)
BAD_DURATIONS = (
    ("", "expected a number with a unit"), ("abc", "expected a number with a unit"),
    ("2x", "expected a number with a unit"), ("s", "expected a number with a unit"),
    ("ms5", "expected a number with a unit"), ("2 s", "expected a number with a unit"),
    ("2s3", "expected a number with a unit"), ("1m30", "expected a number with a unit"),
    ("1e3", "expected a number with a unit"), ("2S", "expected a number with a unit"),
    ("1.2.3s", "expected a number with a unit"), (".", "expected a number with a unit"),
    ("+2s", "expected a number with a unit"), ("2sm", "expected a number with a unit"),
    ("\u00b2s", "expected a number with a unit"), ("\u0665s", "expected a number with a unit"),
    ("-2s", "must not be negative"), (-1, "must not be negative"), (-0.5, "must not be negative"),
    ("1.5ms", "finer than a millisecond"), ("0.0001", "finer than a millisecond"),
    ("1.0000000001s", "finer than a millisecond"), (0.0001, "finer than a millisecond"),
    (1e-05, "finer than a millisecond"), (5e-324, "finer than a millisecond"),
    (True, "expected a number with a unit"), (None, "expected a number with a unit"),
    ([1], "expected a number with a unit"), (float("nan"), "finite"), (float("inf"), "finite"),
    (float("-inf"), "finite"),
)


def test_durations_read_exactly():
    for value, ms in DURATIONS:
        got = rules.duration_ms(value)
        assert got == ms and isinstance(got, int), (value, got, ms)


def test_bad_durations_say_what_is_wrong():
    for value, words in BAD_DURATIONS:
        _raises(lambda: rules.duration_ms(value), words)


def test_duration_minimum_and_bare_milliseconds():
    assert rules.duration_ms("0", 0) == 0
    _raises(lambda: rules.duration_ms("0ms", 1), "expected a duration of at least 1ms")
    assert rules.duration_ms(500, 1, True) == 500          # a "*_ms" field: an int is milliseconds
    assert rules.duration_ms("500", 1, True) == 500000     # ... a string is still a duration
    assert rules.duration_ms(1.5, 1, True) == 1500         # ... and so is a float: seconds
    _raises(lambda: rules.duration_ms(0, 1, True), "expected a positive number of milliseconds")
    _raises(lambda: rules.duration_ms(True, 1, True), "expected a number with a unit")


# --- Addresses ------------------------------------------------------------------------

IPV6_GOOD = ("::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "::ffff:1.2.3.4",
             "1:2:3:4:5:6:1.2.3.4", "fe80::1%eth0", "FD00::A", "::1.2.3.4", "1:2:3:4:5:6::8")
IPV6_BAD = ("", ":", ":::", "1:::2", "1:2:3:4:5:6:7:8::", "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%", "fe80::1%a%b",
            ":1::2", "1::2:", "12345::", "g::", "1:2", "1::2::3", "::1.2.3.04", "::1/64", "1:2:3:4:5:6:7:8:9",
            "::\u0661")
IPV4_GOOD = ("0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.5")
IPV4_BAD = ("", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "1..3.4", "1.2.3.4 ", "a.b.c.d", "0x1.2.3.4",
            "1.2.3.\u0664", "1234.1.1.1")


def test_ip_addresses_as_pythons_ipaddress_reads_them():
    for host in IPV6_GOOD:
        assert rules._ipv6(host.encode()), host
    for host in IPV6_BAD:
        assert not rules._ipv6(host.encode()), host
    for host in IPV4_GOOD:
        assert rules._ipv4(host.encode()), host
    for host in IPV4_BAD:
        assert not rules._ipv4(host.encode()), host


HOST_PORTS = (
    ("10.0.0.5:7946", False, ("10.0.0.5", 7946)), ("0.0.0.0:1", False, ("0.0.0.0", 1)),
    ("10.0.0.5:65535", False, ("10.0.0.5", 65535)), ("10.0.0.5:07946", False, ("10.0.0.5", 7946)),
    ("[fd00::1]:7946", False, ("fd00::1", 7946)), ("[fe80::1%eth0]:7946", True, ("fe80::1%eth0", 7946)),
    ("pi-garage.local:7946", True, ("pi-garage.local", 7946)), ("under_score:7946", True, ("under_score", 7946)),
    ("pi.local.:7946", True, ("pi.local.", 7946)), ("999.1.1.1:7946", True, ("999.1.1.1", 7946)),
    ("h" * 64 + ":1", True, ("h" * 64, 1)),
)
BAD_HOST_PORTS = (
    (7946, False, "(a quoted string)"), (None, True, "(a quoted string)"),
    ("10.0.0.5", False, "(the port is missing)"), ("fd00::1:7946", True, "(write an IPv6 address in brackets)"),
    ("[fd00::1]7946", True, "expected host:port"), ("[fd00::1:7946", True, "expected host:port"),
    ("[nope]:7946", True, "(brackets hold an IPv6 address)"),
    ("bad host!:7946", True, "(the host must be an IP address or a DNS name of at most 64 bytes)"),
    ("-bad:7946", True, "DNS name"), ("bad-:7946", True, "DNS name"), ("a..b:7946", True, "DNS name"),
    (".:7946", True, "DNS name"), (":7946", True, "DNS name"), ("h" * 65 + ":1", True, "at most 64 bytes"),
    ("caf\u00e9:7946", True, "DNS name"),
    ("10.0.0.5:0", False, "(the port must be 1..65535)"), ("10.0.0.5:65536", False, "1..65535"),
    ("10.0.0.5:", False, "1..65535"), ("10.0.0.5:+80", False, "1..65535"), ("10.0.0.5:\u00b2", False, "1..65535"),
    ("10.0.0.5:\u0667\u0669\u0664\u0666", False, "1..65535"), ("10.0.0.5:79 46", False, "1..65535"),
    ("myhost:7946", False, "names are allowed in cluster.seeds only"),
    ("01.0.0.5:7946", False, "names are allowed in cluster.seeds only"),
)


def test_host_port():
    for text, names, expected in HOST_PORTS:
        assert rules.host_port(text, names) == expected, text
    for text, names, words in BAD_HOST_PORTS:
        _raises(lambda: rules.host_port(text, names), words)


# --- Tags ------------------------------------------------------------------------------


def test_tag_problems():
    assert rules.tag_problems({}) == [] and rules.tag_problems({"room": "kitchen", "k": ""}) == []
    assert rules.tag_problems({"k" * 32: "v" * 32}) == []
    assert rules.tag_problems(["a"])[0][0] is None
    whole = rules.tag_problems(dict(("t%d" % i, "v") for i in range(9)))
    assert len(whole) == 1 and whole[0][0] is None and "at most 8 tags (got 9)" in whole[0][2]
    for tags, tag, item in (({"": "v"}, None, ""), ({"k" * 33: "v"}, None, "k" * 33), ({5: "v"}, None, 5),
                            ({"k": "v" * 33}, "k", "v" * 33), ({"k": 5}, "k", 5), ({"k": None}, "k", None),
                            ({"k": "\u00e9" * 17}, "k", "\u00e9" * 17)):
        problems = rules.tag_problems(tags)
        assert len(problems) == 1 and problems[0][0] == tag and problems[0][1] == item, (tags, problems)


# --- Keys ----------------------------------------------------------------------------

KEY = binascii.b2a_base64(bytes(range(32))).decode().strip()


def test_base64_is_read_strictly():
    assert rules.base64_bytes("AAAA") == b"\x00\x00\x00" and rules.base64_bytes("AA==") == b"\x00"
    assert rules.base64_bytes("AAA=") == b"\x00\x00" and rules.base64_bytes("  AAAA\r\n") == b"\x00\x00\x00"
    assert rules.base64_bytes("+/+/") == b"\xfb\xff\xbf" and rules.base64_bytes(KEY) == bytes(range(32))
    for bad in ("AAA", "A===", "====", "AA=A", "AAAA=", "AA AA", "AA\nAA", "AA@A", "AA-_", "AAAA" + "\u00e9",
                None, b"AAAA", 5):
        assert rules.base64_bytes(bad) is None, bad


def test_key_lines_skip_blanks_and_comments():
    assert rules.key_lines("# primary first\nAAAA\n\n  BBBB  \r\n#\n") == [(2, "AAAA"), (4, "BBBB")]
    assert rules.key_lines("") == [] and rules.key_lines("# only\n\n") == []


def test_cluster_keys():
    raw = bytes(range(16))
    text = binascii.b2a_base64(raw).decode().strip()
    assert rules.cluster_key(text, []) == raw
    _raises(lambda: rules.cluster_key(text, [raw]), "the same key appears twice")
    _raises(lambda: rules.cluster_key(binascii.b2a_base64(raw[:15]).decode(), []),
            "key decodes to 15 bytes, at least 16 needed")
    _raises(lambda: rules.cluster_key(text[:-1] + "@", []), "not valid base64")


def test_public_keys():
    assert rules.public_key(KEY, "pi") == bytes(range(32))
    _raises(lambda: rules.public_key("AAAA", "pi"), "expected the base64 of a 32-byte Ed25519 public key",
            "pi.pub")
    _raises(lambda: rules.public_key(KEY[:10] + "@" + KEY[10:], "pi"), "32-byte")  # a stray character
    identity = binascii.b2a_base64(b"\x01" + bytes(31)).decode()
    _raises(lambda: rules.public_key(identity, "pi"), "not a usable Ed25519 public key: a point of small order")


def _key_vectors_path():
    try:
        here = __file__
    except NameError:
        return "tests/vectors/ed25519_public_keys.json"
    index = here.rfind("/")
    return (here[:index] if index >= 0 else ".") + "/../vectors/ed25519_public_keys.json"


def test_public_key_problem_on_the_vectors():
    for path in (_key_vectors_path(), "tests/vectors/ed25519_public_keys.json"):
        try:
            with open(path, "rb") as f:
                vectors = json.loads(f.read().decode("utf-8"))
            break
        except OSError:
            continue
    assert len(vectors["refused"]) > 40 and vectors["accepted"]
    for vector in vectors["refused"]:
        problem = rules.public_key_problem(binascii.unhexlify(vector["key"]))
        assert problem is not None and vector["problem"] in problem, (vector["what"], problem)
    for vector in vectors["accepted"]:
        assert rules.public_key_problem(binascii.unhexlify(vector["key"])) is None, vector["key"]
