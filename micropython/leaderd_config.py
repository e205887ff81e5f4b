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
election
  signing_key       base64 32-byte Ed25519 seed (NAME.key); with priority > 0 the board is a candidate
  signing_key_file  the same, from a file on the board
  trusted_keys      map of name -> base64 public key; without it claims are not verified (insecure)
  preempt           default: true
  preempt_delay     duration                             default: 5s
gossip
  profile       lan | wan | local                        default: lan
  <field>       any agent.core.profile field: "*_ms" takes int ms or a duration;
                without "_ms" (probe_interval) a duration, a bare number is seconds
log
  level         debug | info | warning | error           default: info
  heap_interval duration between {"heap": ...} lines; 0 = none   default: 0
"""

import binascii
import json

from agent.core import profile as profiles

DEFAULT_PORT = 7946
MAX_NAME_BYTES = 64
MAX_TAGS = 8
MAX_TAG_BYTES = 32
KEY_BYTES = 32
MIN_CLUSTER_KEY_BYTES = 16
LOG_LEVELS = ("debug", "info", "warning", "error")

_SECTIONS = {
    "node": ("name", "priority", "bind", "advertise", "tags"),
    "cluster": ("name", "seeds", "keyring", "keyring_file"),
    "election": ("signing_key", "signing_key_file", "trusted_keys", "preempt", "preempt_delay"),
    "gossip": None,  # profile + the profile fields, built below
    "log": ("level", "heap_interval"),
}
_UNITS = (("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000))


class ConfigError(ValueError):
    """A config that cannot be used; ``errors`` lists every problem, one per line of the message."""

    def __init__(self, errors, source="<config>"):
        self.errors = list(errors)
        self.source = source
        super().__init__("\n".join("%s: %s" % (source, line) for line in self.errors))


class _Bad(Exception):
    def __init__(self, requirement):
        super().__init__(requirement)
        self.requirement = requirement


def _show(value):
    try:
        text = json.dumps(value)
    except Exception:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_duration_ms(value):
    """Milliseconds from "250ms", "2s", "1m30s", "1h" or a bare number of seconds; _Bad otherwise."""
    if _is_int(value) or isinstance(value, float):
        if value < 0:
            raise _Bad("expected a duration such as \"500ms\" or \"2s\", not negative")
        return int(value * 1000)
    if not isinstance(value, str) or not value.strip():
        raise _Bad("expected a duration such as \"500ms\" or \"2s\" (a bare number is seconds)")
    text = value.strip()
    total = 0
    i = 0
    n = len(text)
    while i < n:
        j = i
        while j < n and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < n and text[k].isalpha():
            k += 1
        number = text[i:j]
        unit = text[j:k]
        scale = None
        for name, ms in _UNITS:
            if unit == name:
                scale = ms
        if not number or number.count(".") > 1 or (unit == "" and (i > 0 or k < n)) or (unit and scale is None):
            raise _Bad("expected a duration such as \"500ms\", \"2s\", \"1m30s\" (units ms, s, m, h)")
        scale = scale if scale is not None else 1000
        # Integers stay exact (boards have single-precision floats).
        total += int(float(number) * scale) if "." in number else int(number) * scale
        i = k
    return total


def _integer(low, high):
    def parse(value):
        if not _is_int(value) or value < low or value > high:
            raise _Bad("expected an integer %d..%d" % (low, high))
        return value
    return parse


def _boolean(value):
    if value is True or value is False:
        return value
    raise _Bad("expected true or false")


def _valid_name(value):
    if not isinstance(value, str) or not value:
        return False
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        return False
    for c in value:
        if c in " /\t\r\n":
            return False
    return True


def _name(value):
    if not _valid_name(value):
        raise _Bad("expected 1..%d UTF-8 bytes without spaces or '/'" % MAX_NAME_BYTES)
    return value


def _dotted_quad(host):
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit() or len(part) > 3 or int(part) > 255:
            return False
    return True


def _hostport(value, names_ok):
    if not isinstance(value, str) or ":" not in value:
        raise _Bad("expected \"host:port\"")
    cut = value.rfind(":")
    host = value[:cut]
    port = value[cut + 1:]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _Bad("expected \"host:port\" with a port 0..65535")
    if not host:
        raise _Bad("expected \"host:port\" with a host")
    if not _dotted_quad(host):
        if not names_ok:
            raise _Bad("expected an IPv4 address and port, such as \"0.0.0.0:7946\"")
        for c in host:
            if not (c.isalpha() or c.isdigit() or c in "-."):
                raise _Bad("expected an IPv4 address or hostname and a port")
    return (host, int(port))


def _ip_port(value):
    return _hostport(value, False)


def _seeds(value):
    if not isinstance(value, list):
        raise _Bad("expected a list of \"host:port\"")
    out = []
    for item in value:
        try:
            seed = _hostport(item, True)
        except _Bad as exc:
            raise _Bad("%s: %s" % (_show(item), exc.requirement))
        if seed[1] == 0:
            raise _Bad("%s: a seed needs a port 1..65535" % _show(item))
        out.append(seed)
    return out


def _tags(value):
    if not isinstance(value, dict):
        raise _Bad("expected a map of text -> text")
    if len(value) > MAX_TAGS:
        raise _Bad("expected at most %d tags" % MAX_TAGS)
    for key in value:
        item = value[key]
        if not isinstance(key, str) or not isinstance(item, str) or not key \
                or len(key.encode("utf-8")) > MAX_TAG_BYTES or len(item.encode("utf-8")) > MAX_TAG_BYTES:
            raise _Bad("expected text keys and values of 1..%d bytes" % MAX_TAG_BYTES)
    return dict(value) or None


def _b64(text, what, length=None, minimum=None):
    if not isinstance(text, str):
        raise _Bad("expected the base64 of %s" % what)
    try:
        raw = binascii.a2b_base64(text.strip())
    except Exception:
        raise _Bad("not valid base64 (expected %s)" % what)
    if length is not None and len(raw) != length:
        raise _Bad("expected the base64 of %s, got %d bytes" % (what, len(raw)))
    if minimum is not None and len(raw) < minimum:
        raise _Bad("expected the base64 of %s, got %d bytes" % (what, len(raw)))
    return raw


def _keyring(value):
    if not isinstance(value, list) or not value:
        raise _Bad("expected a non-empty list of base64 cluster keys (first = primary)")
    out = []
    for i in range(len(value)):
        try:
            out.append(_b64(value[i], "a cluster key of %d+ bytes" % MIN_CLUSTER_KEY_BYTES,
                            minimum=MIN_CLUSTER_KEY_BYTES))
        except _Bad as exc:
            raise _Bad("key %d: %s" % (i + 1, exc.requirement))
    return out


def _file_lines(value):
    if not isinstance(value, str) or not value:
        raise _Bad("expected a file path")
    try:
        with open(value) as handle:
            text = handle.read()
    except OSError as exc:
        raise _Bad("cannot read the file: %s" % (exc,))
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _keyring_file(value):
    return _keyring(_file_lines(value))


def _seed(value):
    return _b64(value, "a %d-byte Ed25519 seed (the NAME.key line)" % KEY_BYTES, KEY_BYTES)


def _seed_file(value):
    lines = _file_lines(value)
    if len(lines) != 1:
        raise _Bad("expected one line: the base64 of a 32-byte Ed25519 seed")
    return _seed(lines[0])


def _trusted(value):
    if not isinstance(value, dict):
        raise _Bad("expected a map of node name -> base64 public key")
    out = {}
    for name in value:
        if not _valid_name(name):
            raise _Bad("%s: expected node names as keys" % _show(name))
        try:
            out[name] = _b64(value[name], "a %d-byte Ed25519 public key" % KEY_BYTES, KEY_BYTES)
        except _Bad as exc:
            raise _Bad("%s: %s" % (name, exc.requirement))
    return out


def _level(value):
    if value not in LOG_LEVELS:
        raise _Bad("expected one of: " + ", ".join(LOG_LEVELS))
    return value


def _profile_name(value):
    if value not in profiles.PROFILES:
        raise _Bad("expected one of: lan, wan, local")
    return value


def _gossip_parser(key, field):
    if field.endswith("_ms"):
        def parse(value):
            # field_ms: 500 is milliseconds; everywhere else a bare number is seconds.
            if key == field and _is_int(value):
                if value < 1:
                    raise _Bad("expected a positive number of milliseconds or a duration such as \"500ms\"")
                return value
            ms = parse_duration_ms(value)
            if ms < 1:
                raise _Bad("expected a positive duration")
            return ms
        return parse
    if field == "mtu_bytes":
        return _integer(512, 65000)
    return _integer(1, 1000)


class _Checker:
    def __init__(self):
        self.errors = []

    def section(self, top, name):
        raw = top.get(name)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.errors.append("%s: %s: expected a map" % (name, _show(raw)))
            return {}
        known = _SECTIONS[name]
        if known is not None:
            for key in sorted(raw):
                if key not in known:
                    self.errors.append("%s.%s: unknown key; known keys: %s" % (name, key, ", ".join(known)))
        return raw

    def field(self, section, prefix, key, parse, default=None):
        if key not in section or section[key] is None:
            return default
        value = section[key]
        try:
            return parse(value)
        except _Bad as exc:
            self.errors.append("%s.%s: %s: %s" % (prefix, key, _show(value), exc.requirement))
            return default


def default_name():
    """"board-" and this chip's unique id in hex, or None where there is none (unix port)."""
    try:
        import machine
        return "board-" + binascii.hexlify(machine.unique_id()).decode()
    except Exception:
        return None


def parse(data, source="<config>", default_host=None):
    """The checked config, a dict, from a mapping (the parsed JSON); ConfigError lists every problem.

    default_host: the address to advertise when node.bind is 0.0.0.0 and
    node.advertise is not set (main.py passes the WiFi address).
    """
    c = _Checker()
    if not isinstance(data, dict):
        raise ConfigError(["expected a JSON object with the sections: " + ", ".join(sorted(_SECTIONS))], source)
    for key in sorted(data):
        if key not in _SECTIONS:
            c.errors.append("%s: unknown section; known sections: %s" % (key, ", ".join(sorted(_SECTIONS))))
    warnings = []

    s = c.section(data, "node")
    name = c.field(s, "node", "name", _name)
    if name is None and "name" not in s:
        name = default_name()
        if name is None:
            c.errors.append("node.name: required here (this port has no machine.unique_id)")
    priority = c.field(s, "node", "priority", _integer(0, 255), 0)
    bind = c.field(s, "node", "bind", _ip_port, ("0.0.0.0", DEFAULT_PORT))
    advertise = c.field(s, "node", "advertise", _ip_port)
    tags = c.field(s, "node", "tags", _tags)
    if advertise is not None and (advertise[0] == "0.0.0.0" or advertise[1] == 0):
        c.errors.append("node.advertise: %s: expected an address and port others can reach"
                        % _show(s["advertise"]))
        advertise = None
    if advertise is None and bind is not None:
        if bind[0] != "0.0.0.0":
            advertise = bind
        elif default_host is not None:
            advertise = (default_host, bind[1])
        elif "advertise" not in s:
            c.errors.append("node.advertise: not set, and bind %s:%d names no address (no WiFi "
                            "address either); set node.advertise: \"HOST:%d\"" % (bind[0], bind[1], bind[1]))
    if bind is not None and bind[1] == 0:
        c.errors.append("node.bind: %s: expected a fixed port (others must know it)" % _show(s["bind"]))

    s = c.section(data, "cluster")
    cluster = c.field(s, "cluster", "name", _name, "default")
    seeds = c.field(s, "cluster", "seeds", _seeds, [])
    keyring = c.field(s, "cluster", "keyring", _keyring)
    from_file = c.field(s, "cluster", "keyring_file", _keyring_file)
    if keyring is not None and from_file is not None:
        c.errors.append("cluster.keyring_file: set together with cluster.keyring; keep one")
    keyring = keyring or from_file
    if keyring is None:
        warnings.append("packets are unauthenticated: set cluster.keyring to authenticate them")

    s = c.section(data, "election")
    seed = c.field(s, "election", "signing_key", _seed)
    seed_from_file = c.field(s, "election", "signing_key_file", _seed_file)
    if seed is not None and seed_from_file is not None:
        c.errors.append("election.signing_key_file: set together with election.signing_key; keep one")
    seed = seed or seed_from_file
    trusted = c.field(s, "election", "trusted_keys", _trusted)
    if trusted is not None and not trusted:
        trusted = None
    preempt = c.field(s, "election", "preempt", _boolean, True)
    preempt_delay_ms = c.field(s, "election", "preempt_delay", _wrap_duration(0), 5000)
    if trusted is None:
        if seed is not None:
            warnings.append("claims are signed but not verified: set election.trusted_keys")
        else:
            warnings.append("claims are unsigned and unverified (insecure): set election.trusted_keys")
    elif seed is None and priority and priority > 0:
        warnings.append("no election.signing_key: this board cannot sign claims, so it never leads")

    s = c.section(data, "gossip")
    profile = _gossip(c, s)

    s = c.section(data, "log")
    level = c.field(s, "log", "level", _level, "info")
    heap_interval_ms = c.field(s, "log", "heap_interval", _wrap_duration(0), 0)

    if c.errors:
        raise ConfigError(c.errors, source)
    # A plain dict: nothing in it refers back to this module, so a board can
    # drop the module (its bytecode is ~15 KB of heap) once the config is read.
    return {"name": name, "priority": priority, "bind": bind, "advertise": advertise, "tags": tags,
            "cluster": cluster, "seeds": seeds, "keyring": keyring, "signing_seed": seed,
            "trusted_keys": trusted, "preempt": preempt, "preempt_delay_ms": preempt_delay_ms,
            "profile": profile, "log_level": level, "heap_interval_ms": heap_interval_ms,
            "warnings": warnings, "source": source}


def _wrap_duration(minimum_ms):
    def parse(value):
        ms = parse_duration_ms(value)
        if ms < minimum_ms:
            raise _Bad("expected at least %d ms" % minimum_ms)
        return ms
    return parse


def _gossip(c, s):
    known = ["profile"]
    aliases = {}
    for field in profiles.FIELDS:
        known.append(field)
        if field.endswith("_ms"):
            aliases[field[:-3]] = field
            known.append(field[:-3])
    for key in sorted(s):
        if key not in known:
            c.errors.append("gossip.%s: unknown key; known keys: profile and the profile fields (%s)"
                            % (key, ", ".join(profiles.FIELDS)))
    name = c.field(s, "gossip", "profile", _profile_name, "lan")
    overrides = {}
    written = {}
    for key in sorted(s):
        field = aliases.get(key, key)
        if key == "profile" or field not in profiles.FIELDS or s[key] is None:
            continue
        if field in written:
            c.errors.append("gossip.%s: %s: this field is set twice (also as gossip.%s); keep one"
                            % (key, _show(s[key]), written[field]))
            continue
        value = c.field(s, "gossip", key, _gossip_parser(key, field))
        if value is not None:
            overrides[field] = value
            written[field] = key
    try:
        return profiles.make(name, **overrides)
    except ValueError as exc:
        c.errors.append("gossip: %s" % (exc,))
        return profiles.make(name)


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
