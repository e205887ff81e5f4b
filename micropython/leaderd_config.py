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
  name          1..64 UTF-8 bytes, no spaces, '/', control characters or leading '.', not "*"
                                                         default: "board-" + machine.unique_id() in hex
  priority      0..255; 0 = never leads                  default: 0 (a follower)
  bind          ip:port to listen on (UDP)               default: 0.0.0.0:7946
  advertise     ip:port others reach this board at       default: the bind address, or when it
                                                         is 0.0.0.0 the WiFi address (main.py)
  tags          map of str -> str (<= 8, each <= 32 bytes)
cluster
  name          cluster name                             default: "default"
  seeds         list of "host:port" (IPv4 or DNS name)   default: []
  keyring       list of base64 cluster keys (>= 16 bytes each), first = primary
  keyring_file  the same, from a file on the board
  join_timeout  duration: no seed answering by then, the board takes part in the
                election with the members it has (alone if need be) and keeps
                trying the seeds; 0 = no wait            default: 5s
  max_members   members kept, this board included (2..65536); news of one
                more stranger is refused, so forged members cannot fill the
                heap (32 fit a 128k heap)                 default: 64
election
  signing_key       base64 32-byte Ed25519 seed (NAME.key); with priority > 0 the board is a candidate
  signing_key_file  the same, from a file on the board
  trusted_keys      map of name -> base64 public key; without it claims are not verified (insecure);
                    keys of small order, not canonical or not on the curve are refused.
                    An empty map ({}) means that nobody may lead, this board included
                    (its signing key is then not used), never "anybody may"
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
insecure        true: run on a non-loopback address with neither a keyring nor
                trusted_keys (the daemon's rule, rules.exposed)   default: false

What a name, a number, a duration, an address or a key may be is
agent/core/rules.py, the rules the daemon's config follows: a value is
taken or refused here as it is there, and with the daemon's words
(tests/test_config_parity.py). What differs is the board's: no IPv6 (its
socket is IPv4), keys inline, no api, hooks or health sections.

Why it is written this way: a board loads this module and agent.core.rules,
reads one file and drops both (main.py), but every identifier and short
string (<= 10 characters) they bring becomes an interned string that stays
in the heap for good. So the checks are one table and one function
(``_check``) rather than a function per key, the constants are ``const()``
(folded away by the compiler), and nothing iterates over the characters of
a string (on MicroPython that interns each character it meets).
"""

import binascii
import json

from agent.core import profile, rules

try:
    from micropython import const
except ImportError:  # CPython (the tests)
    def const(value):
        return value

_DEFAULT_PORT = const(7946)
_LOG_LEVELS = const(("debug", "info", "warning", "error"))
_PROFILES = const(("lan", "wan", "local"))  # agent.core.profile.PROFILES, in this order

# What a value must be: the kinds _check() knows. The first three are
# integers within the limits rules.integer() knows.
_PRIORITY = const(0)
_MTU = const(1)
_COUNT = const(2)
_NAME = const(3)            # a node or cluster name
_ADDRESS = const(4)         # "ip:port", IPv4 only (bind, advertise)
_SEEDS = const(5)           # a list of "host:port", IPv4 or a DNS name
_TAGS = const(6)
_KEYRING = const(7)         # a list of base64 cluster keys
_KEYRING_FILE = const(8)    # the path of a file of cluster key lines
_SEED_FILE = const(9)       # the path of a file holding one _SEED line
_TRUSTED = const(10)        # a map of _NAME -> base64 public key
_BOOLEAN = const(11)
_DURATION = const(12)       # rules.duration_ms(), 0 allowed
_TIMING = const(13)         # a gossip field without "_ms": a duration > 0
_TIMING_MS = const(14)      # a gossip "*_ms" field: an int of ms or a duration, > 0
_PROFILE = const(15)
_LEVEL = const(16)
_SEED = const(17)           # base64 of a 32-byte Ed25519 seed
_PATH = const(18)           # a file path on the board (it need not exist yet)
_MEMBERS = const(19)        # cluster.max_members: an integer rules.integer() knows

# The sections, their keys and each key's kind, in the order problems are
# listed. gossip also takes every profile field (the "*_ms" ones without
# "_ms" as well): parse() adds them.
_SECTIONS = const((
    ("node", (("name", _NAME), ("priority", _PRIORITY), ("bind", _ADDRESS), ("advertise", _ADDRESS),
              ("tags", _TAGS))),
    ("cluster", (("name", _NAME), ("seeds", _SEEDS), ("keyring", _KEYRING), ("keyring_file", _KEYRING_FILE),
                 ("join_timeout", _DURATION), ("max_members", _MEMBERS))),
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


def _ipv4(address):
    """address, a (host, port), unless its host is an IPv6 address: a board's socket is IPv4 only."""
    if ":" in address[0]:
        raise ValueError("expected an IPv4 address and port, e.g. 192.168.1.20:7946 (a board has no IPv6)")
    return address


def _check(kind, value):
    """value checked as one of the kinds above, in the form the agent takes; ValueError says what is allowed."""
    if kind <= _COUNT:
        # "priority" and "mtu_bytes" have limits of their own; any other profile field is a count.
        return rules.integer(value, ("priority", "mtu_bytes", "count")[kind])
    if kind == _MEMBERS:
        return rules.integer(value, "max_members")
    if kind == _NAME or kind == _PATH:
        problem = rules.name_problem(value) if kind == _NAME else rules.path_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value
    if kind == _ADDRESS:
        return _ipv4(rules.host_port(value))
    if kind == _SEEDS:
        if not isinstance(value, list):
            raise ValueError("expected a list of host:port strings, "
                             "e.g. [\"192.168.1.10:7946\", \"pi-garage.local:7946\"]")
        seeds = []
        for item in value:
            try:
                seeds.append(_ipv4(rules.host_port(item, True)))
            except ValueError as exc:
                raise ValueError("%s: %s" % (_show(item), exc.args[0]))
        return seeds
    if kind == _TAGS:
        for tag, item, problem in rules.tag_problems(value):
            raise ValueError(problem if item is value else "%s: %s" % (_show(item), problem))
        return dict(value) or None
    if kind == _KEYRING or kind == _KEYRING_FILE or kind == _SEED_FILE:
        where = "key %d: %s"
        if kind == _KEYRING:
            if not isinstance(value, list) or not value:
                raise ValueError("expected a non-empty list of base64 cluster keys (first = primary)")
            lines = []
            for item in value:
                lines.append((len(lines) + 1, item))
        else:
            where = "line %d: %s"
            # One base64 key a line, as `leaderd keygen` writes them; '#' starts a comment.
            if rules.path_problem(value) is not None:
                raise ValueError(rules.path_problem(value))
            try:
                with open(value) as handle:
                    text = handle.read()
            except OSError as exc:
                raise ValueError("cannot read the file: %s" % (exc,))
            lines = rules.key_lines(text)
            if kind == _SEED_FILE:
                if len(lines) != 1:
                    raise ValueError("expected exactly one line (the base64 of a 32-byte Ed25519 private key), "
                                     "found %d" % len(lines))
                return _check(_SEED, lines[0][1])
            if not lines:
                raise ValueError("no keys (one base64 key per line, the first being the primary)")
        keys = []
        for number, line in lines:
            try:
                keys.append(rules.cluster_key(line, keys))
            except ValueError as exc:
                raise ValueError(where % (number, exc.args[0]))
        return keys
    if kind == _TRUSTED:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of node name -> base64 Ed25519 public key (the line of its NAME.pub)")
        keys = {}
        for name in value:
            problem = rules.name_problem(name)
            if problem is not None:
                raise ValueError("%s: expected node names as keys; %s" % (_show(name), problem))
            try:
                keys[name] = rules.public_key(value[name], name)
            except ValueError as exc:
                raise ValueError("%s: %s" % (name, exc.args[0]))
        return keys
    if kind == _BOOLEAN:
        if value is True or value is False:
            return value
        raise ValueError("expected true or false")
    if kind == _DURATION or kind == _TIMING or kind == _TIMING_MS:
        # A "*_ms" field takes 500 as milliseconds; everywhere else a bare number is seconds.
        return rules.duration_ms(value, 0 if kind == _DURATION else 1, kind == _TIMING_MS)
    if kind == _PROFILE or kind == _LEVEL:
        return rules.choice(value, _PROFILES if kind == _PROFILE else _LOG_LEVELS)
    # _SEED: this board's signing key.
    raw = rules.base64_bytes(value)
    if raw is None or len(raw) != rules.KEY_BYTES:
        raise ValueError("expected the base64 of a 32-byte Ed25519 seed (the one line of NAME.key)")
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
        if section not in known_sections and section != "insecure":
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
                    errors.append("%s.%s: %s: but this field is set twice (also as %s.%s: %s); keep one"
                                  % (section, key, _show(value), section, key[:-3], _show(values[key[:-3]])))
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
    if advertise is not None and advertise[0] == "0.0.0.0":
        errors.append("node.advertise: %s: expected an address other nodes can reach, not a wildcard"
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
    trusted = election.get("trusted_keys")  # {}: nobody may lead
    insecure = data.get("insecure")
    if insecure is not None and insecure is not True and insecure is not False:
        errors.append("insecure: %s: expected true or false" % _show(insecure))
    if bind is not None and rules.exposed(
            bind[0], given["cluster"].get("keyring") is not None or given["cluster"].get("keyring_file") is not None,
            given["election"].get("trusted_keys") is not None, insecure):
        # agent/config.py's EXPOSED, word for word (tests/test_secure_defaults.py).
        errors.append("node.bind: %s is reachable from other machines, with no cluster keyring and no trust "
                      "list: anyone who can send it a datagram could join the cluster and lead it. Set "
                      "cluster.keyring (a line of the cluster's keyring: leaderd keygen --cluster-key) and "
                      "election.trusted_keys (NAME.pub lines: leaderd keygen --name NAME), or \"insecure\": true"
                      % _show(given["node"].get("bind", "0.0.0.0:7946")))
    if trusted is not None and not trusted:
        warnings.append("election.trusted_keys is empty: no node may lead here, this board included")
        seed = None
    elif trusted is None:
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
            "join_timeout_ms": cluster.get("join_timeout", 5000), "max_members": cluster.get("max_members", 64),
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
