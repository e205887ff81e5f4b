"""The board's config: a small JSON file with the sections and key names of the daemon's YAML.

Runs on MicroPython and CPython (the tests check it on both). ``load(path)``
reads the file, ``parse(mapping)`` checks every key and returns a plain
dict (the keys are listed at the end of ``parse``); both raise ConfigError listing every problem, one per line,
each naming the full key (``node.priority``), the bad value and what is
allowed, as agent/config.py does for the daemon. Unknown keys are errors.

Where the daemon names a file, the board takes the value inline (a board
has no /etc): ``cluster.keyring`` is a list of base64 cluster keys (first =
primary), ``election.signing_key`` the base64 of this node's 32-byte Ed25519
seed, ``election.trusted_keys`` a map of node name -> base64 public key.
The ``*_file`` forms are accepted too (one base64 key per line, as
`leaderd keygen` writes them). WiFi credentials never go here: wifi.json.

    {
      "node": {"name": "board-1", "priority": 0, "bind": "0.0.0.0:7946"},
      "cluster": {"name": "home", "seeds": ["192.168.1.10:7946"],
                  "keyring": ["BASE64 CLUSTER KEY"]},
      "election": {"trusted_keys": {"pi-kitchen": "BASE64 PUBLIC KEY"}},
      "gossip": {"profile": "lan"},
      "log": {"level": "info", "heap_interval": "10s"}
    }

node
  name          1..64 UTF-8 bytes, no spaces or '/'     default: "board-" + machine.unique_id() in hex
  priority      0..255; 0 = never leads                  default: 0 (a follower)
  bind          ip:port to listen on (UDP)               default: 0.0.0.0:7946
  advertise     ip:port others reach this board at       default: the bind address, or when it
                                                         is 0.0.0.0 the WiFi address (main.py)
  tags          map of str -> str (<= 8, each <= 32 bytes)
cluster
  name          cluster name                             default: "default"
  seeds         list of "host:port" (IPv4 or hostname)   default: []
  keyring       list of base64 cluster keys (>= 16 bytes each), first = primary
  keyring_file  the same, from a file on the board
  join_timeout  duration: no seed answering by then, the board takes part in the
                election with the members it has (alone if need be) and keeps
                trying the seeds; 0 = no wait            default: 5s
election
  signing_key       base64 32-byte Ed25519 seed (NAME.key); with priority > 0 the board is a candidate
  signing_key_file  the same, from a file on the board
  trusted_keys      map of name -> base64 public key; without it claims are not verified (insecure);
                    keys of small order, not canonical or not on the curve are refused
  preempt           default: true
  preempt_delay     duration                             default: 5s
  term_file         a file in flash keeping the highest term and the incarnation across
                    restarts (two lines of digits, as the daemon's)  default: none
gossip
  profile       lan | wan | local                        default: lan
  <field>       any agent.core.profile field: "*_ms" takes int ms or a duration;
                without "_ms" (probe_interval) a duration, a bare number is seconds
log
  level         debug | info | warning | error           default: info
  heap_interval duration between {"heap": ...} lines; 0 = none   default: 0

Why it is written this way: a board loads this module, reads one file and
drops it (main.py), but every identifier and short string (<= 10
characters) it brings becomes an interned string that stays in the heap
for good. So the checks are one table and one function (``_check``) rather
than a function per key, the constants are ``const()`` (folded away by the
compiler), and nothing iterates over the characters of a string (on
MicroPython that interns each character it meets).
"""

import binascii
import json

from agent.core import profile

try:
    from micropython import const
except ImportError:  # CPython (the tests)
    def const(value):
        return value

_DEFAULT_PORT = const(7946)
_MAX_NAME_BYTES = const(64)
_MAX_TAGS = const(8)
_MAX_TAG_BYTES = const(32)
_KEY_BYTES = const(32)
_MIN_CLUSTER_KEY_BYTES = const(16)
_LOG_LEVELS = const(("debug", "info", "warning", "error"))
# Ed25519's field prime, curve constant d, and the y of its points of order 8
# (RFC 8032; the daemon's agent/keys.py has the same checks).
_P = const(57896044618658097711785492504343953926634992332820282019728792003956564819949)
_D = const(37095705934669439343138083508754565189542113879843219016388785533085940283555)
_Y8 = const(2707385501144840649318225287225658788936804267575313519463743609750303402022)
# Duration units and their milliseconds.
_UNITS = const((("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000)))

# What a value must be: the kinds _check() knows. The first three are
# integers, in the range _RANGES gives.
_PRIORITY = const(0)
_MTU = const(1)
_COUNT = const(2)
_RANGES = const(((0, 255), (512, 65000), (1, 1000)))
_NAME = const(3)            # a node or cluster name
_ADDRESS = const(4)         # "ip:port", IPv4 only (bind, advertise)
_HOST_PORT = const(5)       # "host:port", a hostname allowed (one seed)
_SEEDS = const(6)           # a list of _HOST_PORT with a port > 0
_TAGS = const(7)
_KEYRING = const(8)         # a list of _CLUSTER_KEY
_KEYRING_FILE = const(9)    # the path of a file of _CLUSTER_KEY lines
_SEED_FILE = const(10)      # the path of a file holding one _SEED line
_TRUSTED = const(11)        # a map of _NAME -> _PUBLIC_KEY
_BOOLEAN = const(12)
_DURATION = const(13)       # parse_duration_ms(), 0 allowed
_TIMING = const(14)         # a gossip field without "_ms": a duration > 0
_TIMING_MS = const(15)      # a gossip "*_ms" field: an int of ms or a duration, > 0
_PROFILE = const(16)
_LEVEL = const(17)
_CLUSTER_KEY = const(18)    # base64 of 16+ bytes
_SEED = const(19)           # base64 of a 32-byte Ed25519 seed
_PUBLIC_KEY = const(20)     # base64 of a 32-byte Ed25519 public key
_PATH = const(21)           # a file path on the board (it need not exist yet)

# The sections, their keys and each key's kind, in the order problems are
# listed. gossip also takes every profile field (the "*_ms" ones without
# "_ms" as well): parse() adds them.
_SECTIONS = const((
    ("node", (("name", _NAME), ("priority", _PRIORITY), ("bind", _ADDRESS), ("advertise", _ADDRESS),
              ("tags", _TAGS))),
    ("cluster", (("name", _NAME), ("seeds", _SEEDS), ("keyring", _KEYRING), ("keyring_file", _KEYRING_FILE),
                 ("join_timeout", _DURATION))),
    ("election", (("signing_key", _SEED), ("signing_key_file", _SEED_FILE), ("trusted_keys", _TRUSTED),
                  ("preempt", _BOOLEAN), ("preempt_delay", _DURATION), ("term_file", _PATH))),
    ("gossip", (("profile", _PROFILE),)),
    ("log", (("level", _LEVEL), ("heap_interval", _DURATION))),
))


class ConfigError(ValueError):
    """A config that cannot be used; ``errors`` lists every problem, one per line of the message."""

    def __init__(self, errors, source="<config>"):
        self.errors = list(errors)
        self.source = source
        super().__init__("\n".join("%s: %s" % (source, line) for line in self.errors))


def _show(value):
    """value as it reads in the JSON file, shortened past 60 characters."""
    try:
        text = json.dumps(value)
    except Exception:
        text = repr(value)
    return text if len(text) <= 60 else "%s... (%d characters)" % (text[:40], len(text))


def parse_duration_ms(value):
    """Milliseconds from "250ms", "2s", "1m30s", "1h" or a bare number of seconds; ValueError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("expected a duration such as \"500ms\" or \"2s\", not negative")
        return int(value * 1000)
    text = value.strip() if isinstance(value, str) else ""
    # Byte codes, not characters: indexing a str interns the character on MicroPython.
    codes = text.encode()
    if not text or len(codes) != len(text):
        raise ValueError("expected a duration such as \"500ms\", \"2s\", \"1m30s\" (units ms, s, m, h; "
                         "a bare number is seconds)")
    total = 0
    start = 0
    while start < len(codes):
        digits_end = start
        while digits_end < len(codes) and (48 <= codes[digits_end] <= 57 or codes[digits_end] == 46):  # 0-9 .
            digits_end += 1
        unit_end = digits_end
        while unit_end < len(codes) and 97 <= codes[unit_end] | 32 <= 122:  # a letter (| 32: lower case)
            unit_end += 1
        number = text[start:digits_end]
        unit = text[digits_end:unit_end]
        scale = 1000 if not unit and start == 0 and unit_end == len(codes) else None  # a bare number
        for name, ms in _UNITS:
            if unit == name:
                scale = ms
        if not number.strip(".") or number.count(".") > 1 or scale is None:
            raise ValueError("expected a duration such as \"500ms\", \"2s\", \"1m30s\" (units ms, s, m, h)")
        # Integers stay exact (boards have single-precision floats).
        total += int(float(number) * scale) if "." in number else int(number) * scale
        start = unit_end
    return total


def _check(kind, value):
    """value checked as one of the kinds above, in the form the agent takes; ValueError says what is allowed."""
    if kind <= _COUNT:
        low, high = _RANGES[kind]
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise ValueError("expected an integer %d..%d" % (low, high))
    if kind == _NAME:
        # split() finds any whitespace, and [] for "".
        if isinstance(value, str) and value.split() == [value] and "/" not in value \
                and len(value.encode()) <= _MAX_NAME_BYTES:
            return value
        raise ValueError("expected 1..%d UTF-8 bytes without spaces or '/'" % _MAX_NAME_BYTES)
    if kind == _ADDRESS or kind == _HOST_PORT:
        cut = value.rfind(":") if isinstance(value, str) else -1
        if cut < 0:
            raise ValueError("expected \"host:port\"")
        host = value[:cut]
        port = value[cut + 1:]
        if not port.isdigit() or len(port) > 5 or int(port) > 65535:
            raise ValueError("expected \"host:port\" with a port 0..65535")
        if not host:
            raise ValueError("expected \"host:port\" with a host")
        parts = host.split(".")
        dotted_quad = len(parts) == 4
        for part in parts:
            if not part.isdigit() or len(part) > 3 or int(part) > 255:
                dotted_quad = False
        if not dotted_quad:
            if kind == _ADDRESS:
                raise ValueError("expected an IPv4 address and port, such as \"0.0.0.0:7946\"")
            for code in host.encode():
                # ASCII letters (| 32: lower case), digits, '-' (45) and '.' (46).
                if not (97 <= code | 32 <= 122 or 48 <= code <= 57 or code == 45 or code == 46):
                    raise ValueError("expected an IPv4 address or hostname and a port")
        return (host, int(port))
    if kind == _SEEDS:
        if not isinstance(value, list):
            raise ValueError("expected a list of \"host:port\"")
        seeds = []
        for item in value:
            try:
                seed = _check(_HOST_PORT, item)
            except ValueError as exc:
                raise ValueError("%s: %s" % (_show(item), exc.args[0]))
            if seed[1] == 0:
                raise ValueError("%s: a seed needs a port 1..65535" % _show(item))
            seeds.append(seed)
        return seeds
    if kind == _TAGS:
        if not isinstance(value, dict) or len(value) > _MAX_TAGS:
            raise ValueError("expected a map of at most %d tags, text -> text" % _MAX_TAGS)
        for key in value:
            item = value[key]
            if not isinstance(key, str) or not isinstance(item, str) or not key \
                    or len(key.encode()) > _MAX_TAG_BYTES or len(item.encode()) > _MAX_TAG_BYTES:
                raise ValueError("expected text keys and values of 1..%d bytes" % _MAX_TAG_BYTES)
        return dict(value) or None
    if kind == _KEYRING:
        if not isinstance(value, list) or not value:
            raise ValueError("expected a non-empty list of base64 cluster keys (first = primary)")
        keys = []
        for item in value:
            try:
                keys.append(_check(_CLUSTER_KEY, item))
            except ValueError as exc:
                raise ValueError("key %d: %s" % (len(keys) + 1, exc.args[0]))
        return keys
    if kind == _PATH:
        if isinstance(value, str) and value:
            return value
        raise ValueError("expected a file path")
    if kind == _KEYRING_FILE or kind == _SEED_FILE:
        # One base64 key a line, as `leaderd keygen` writes them; '#' starts a comment.
        if not isinstance(value, str) or not value:
            raise ValueError("expected a file path")
        try:
            with open(value) as handle:
                text = handle.read()
        except OSError as exc:
            raise ValueError("cannot read the file: %s" % (exc,))
        lines = []
        for line in text.split("\n"):
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
        if kind == _KEYRING_FILE:
            return _check(_KEYRING, lines)
        if len(lines) != 1:
            raise ValueError("expected one line: the base64 of a 32-byte Ed25519 seed")
        return _check(_SEED, lines[0])
    if kind == _TRUSTED:
        if not isinstance(value, dict):
            raise ValueError("expected a map of node name -> base64 public key")
        keys = {}
        for name in value:
            try:
                _check(_NAME, name)
            except ValueError:
                raise ValueError("%s: expected node names as keys" % _show(name))
            try:
                keys[name] = _check(_PUBLIC_KEY, value[name])
            except ValueError as exc:
                raise ValueError("%s: %s" % (name, exc.args[0]))
        return keys
    if kind == _BOOLEAN:
        if value is True or value is False:
            return value
        raise ValueError("expected true or false")
    if kind == _TIMING_MS and isinstance(value, int) and not isinstance(value, bool):
        # field_ms: 500 is milliseconds; everywhere else a bare number is seconds.
        if value < 1:
            raise ValueError("expected a positive number of milliseconds or a duration such as \"500ms\"")
        return value
    if kind == _DURATION or kind == _TIMING or kind == _TIMING_MS:
        ms = parse_duration_ms(value)
        if ms < 1 and kind != _DURATION:
            raise ValueError("expected a positive duration")
        return ms
    if kind == _PROFILE:
        if isinstance(value, str) and value in profile.PROFILES:
            return value
        raise ValueError("expected one of: lan, wan, local")
    if kind == _LEVEL:
        if isinstance(value, str) and value in _LOG_LEVELS:
            return value
        raise ValueError("expected one of: " + ", ".join(_LOG_LEVELS))
    # The base64 keys: _CLUSTER_KEY, _SEED, _PUBLIC_KEY.
    if kind == _CLUSTER_KEY:
        what = "a cluster key of %d+ bytes" % _MIN_CLUSTER_KEY_BYTES
    elif kind == _SEED:
        what = "a %d-byte Ed25519 seed (the NAME.key line)" % _KEY_BYTES
    else:
        what = "a %d-byte Ed25519 public key" % _KEY_BYTES
    if not isinstance(value, str):
        raise ValueError("expected the base64 of " + what)
    try:
        raw = binascii.a2b_base64(value.strip())
    except Exception:
        raise ValueError("not valid base64 (expected %s)" % what)
    if len(raw) < _MIN_CLUSTER_KEY_BYTES if kind == _CLUSTER_KEY else len(raw) != _KEY_BYTES:
        raise ValueError("expected the base64 of %s, got %d bytes" % (what, len(raw)))
    if kind == _PUBLIC_KEY:
        # Keys under which a signature verifies without any private key, or
        # that are not canonical: the daemon's agent/keys.py public_key_problem,
        # by the y coordinate (here rather than in ed25519.py, so that a
        # board loads no Ed25519 code before the agent starts: the heap
        # this module gives back must stay in one piece). The eight points
        # of small order (order 1, 2, 4, 8) have y = 1, -1, 0 or +-_Y8.
        p = _P
        y = int.from_bytes(raw, "little")
        odd = y >> 255
        y &= p + 18
        if y >= p or (odd and (y == 1 or y == p - 1)):
            raise ValueError("not a usable Ed25519 public key: not canonical (y >= p, or x = 0 with the sign bit set)")
        if y < 2 or y == p - 1 or y == _Y8 or y == p - _Y8:
            raise ValueError("not a usable Ed25519 public key: small order (order 1, 2, 4 or 8)")
        # On the curve when x**2 = (y**2 - 1) / (d y**2 + 1) has a root (Euler's criterion).
        x2 = (y * y - 1) * pow((_D * y * y + 1) % p, p - 2, p) % p
        if pow(x2, (p - 1) // 2, p) != 1:
            raise ValueError("not a usable Ed25519 public key: not on the curve")
    return raw


def parse(data, source="<config>", default_host=None):
    """The checked config, a dict, from a mapping (the parsed JSON); ConfigError lists every problem.

    default_host: the address to advertise when node.bind is 0.0.0.0 and
    node.advertise is not set (main.py passes the WiFi address).
    """
    known_sections = [section for section, keys in _SECTIONS]
    section_names = ", ".join(sorted(known_sections))
    if not isinstance(data, dict):
        raise ConfigError(["expected a JSON object with the sections: " + section_names], source)
    errors = []
    for section in sorted(data):
        if section not in known_sections:
            errors.append("%s: unknown section; known sections: %s" % (section, section_names))
    given = {}    # section -> its mapping as written
    checked = {}  # section -> {key: checked value} for the keys set and valid (gossip: by profile field)
    for section, keys in _SECTIONS:
        values = given[section] = data.get(section)
        checked[section] = {}
        if values is None:
            values = given[section] = {}
        if not isinstance(values, dict):
            errors.append("%s: %s: expected a map" % (section, _show(values)))
            values = given[section] = {}
        for key in sorted(values):
            value = values[key]
            field = key
            kind = None
            for known, known_kind in keys:
                if key == known:
                    kind = known_kind
            if kind is None and section == "gossip":
                if key in profile.FIELDS:
                    if key.endswith("_ms"):
                        kind = _TIMING_MS
                    elif key == "mtu_bytes":
                        kind = _MTU
                    else:
                        kind = _COUNT
                elif key + "_ms" in profile.FIELDS:
                    field = key + "_ms"  # probe_interval: probe_interval_ms as a duration
                    kind = _TIMING
            if kind is None:
                if section == "gossip":
                    known_keys = "profile and the profile fields (%s)" % ", ".join(profile.FIELDS)
                else:
                    known_keys = ", ".join(known for known, known_kind in keys)
                errors.append("%s.%s: unknown key; known keys: %s" % (section, key, known_keys))
            elif value is not None:
                if kind == _TIMING_MS and values.get(key[:-3]) is not None:
                    errors.append("%s.%s: %s: this field is set twice (also as %s.%s); keep one"
                                  % (section, key, _show(value), section, key[:-3]))
                    continue
                try:
                    checked[section][field] = _check(kind, value)
                except ValueError as exc:
                    errors.append("%s.%s: %s: %s" % (section, key, _show(value), exc.args[0]))
    warnings = []

    node = checked["node"]
    name = node.get("name")
    if given["node"].get("name") is None:
        try:
            import machine
            name = "board-" + binascii.hexlify(machine.unique_id()).decode()
        except Exception:
            errors.append("node.name: required here (this port has no machine.unique_id)")
    priority = node.get("priority", 0)
    bind = node.get("bind")
    if bind is None and given["node"].get("bind") is None:
        bind = ("0.0.0.0", _DEFAULT_PORT)
    advertise = node.get("advertise")
    if advertise is not None and (advertise[0] == "0.0.0.0" or advertise[1] == 0):
        errors.append("node.advertise: %s: expected an address and port others can reach"
                      % _show(given["node"]["advertise"]))
        advertise = None
    if advertise is None and bind is not None:
        if bind[0] != "0.0.0.0":
            advertise = bind
        elif default_host is not None:
            advertise = (default_host, bind[1])
        elif given["node"].get("advertise") is None:
            errors.append("node.advertise: not set, and bind %s:%d names no address (no WiFi "
                          "address either); set node.advertise: \"HOST:%d\"" % (bind[0], bind[1], bind[1]))
    if bind is not None and bind[1] == 0:
        errors.append("node.bind: %s: expected a fixed port (others must know it)" % _show(given["node"]["bind"]))

    cluster = checked["cluster"]
    election = checked["election"]
    # One of each pair: the value inline or from a file.
    for section, key, file_key in (("cluster", "keyring", "keyring_file"),
                                   ("election", "signing_key", "signing_key_file")):
        if checked[section].get(key) is not None and checked[section].get(file_key) is not None:
            errors.append("%s.%s: set together with %s.%s; keep one" % (section, file_key, section, key))
    keyring = cluster.get("keyring") or cluster.get("keyring_file")
    if keyring is None:
        warnings.append("packets are unauthenticated: set cluster.keyring to authenticate them")
    seed = election.get("signing_key") or election.get("signing_key_file")
    trusted = election.get("trusted_keys") or None
    if trusted is None:
        if seed is not None:
            warnings.append("claims are signed but not verified: set election.trusted_keys")
        else:
            warnings.append("claims are unsigned and unverified (insecure): set election.trusted_keys")
    elif seed is None and priority > 0:
        warnings.append("no election.signing_key: this board cannot sign claims, so it never leads")

    gossip = checked["gossip"]
    profile_name = gossip.pop("profile", "lan")
    try:
        timings = profile.make(profile_name, **gossip)
    except ValueError as exc:
        errors.append("gossip: timings that contradict each other: %s" % (exc,))

    log = checked["log"]
    if errors:
        raise ConfigError(errors, source)
    # The timings as a plain object: a Profile would keep agent.core.profile
    # (its methods' module) alive, ~3 KB of heap the board never uses again.
    plain = Timings()
    for field in profile.FIELDS:
        setattr(plain, field, getattr(timings, field))
    plain.name = timings.name
    # A plain dict: nothing in it refers back to this module, so a board can
    # drop the module (~14 KB of heap on a 64-bit build) once the config is read.
    return {"name": name, "priority": priority, "bind": bind, "advertise": advertise, "tags": node.get("tags"),
            "cluster": cluster.get("name", "default"), "seeds": cluster.get("seeds", []), "keyring": keyring,
            "join_timeout_ms": cluster.get("join_timeout", 5000),
            "signing_seed": seed, "trusted_keys": trusted, "preempt": election.get("preempt", True),
            "preempt_delay_ms": election.get("preempt_delay", 5000), "term_file": election.get("term_file"),
            "profile": plain,
            "log_level": log.get("level", "info"), "heap_interval_ms": log.get("heap_interval", 0),
            "warnings": warnings, "source": source}


class Timings:
    """A profile's fields as plain attributes (all the core reads), for a board to keep."""


def load(path, default_host=None):
    """Reads and checks the JSON config file at path; ConfigError names every problem."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(["cannot read the config file: %s" % (exc,)], path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(["not valid JSON: %s" % (exc,)], path)
    return parse(data, source=path, default_host=default_host)
