"""Config: the daemon's YAML file, validated into immutable objects.

Two steps, so that ``leaderd check-config`` and a SIGHUP reload can validate
before anything changes:

1. ``load_config(path)`` / ``parse_config(mapping)`` check every key and build
   a ``Config``; no file other than the YAML itself is read and no name is
   resolved. ``default_config()`` is the config of a daemon run without a file.
2. ``load_runtime(config)`` reads the files the config names (keyring, signing
   key, trusted keys) and picks the advertised address: a ``Runtime`` holding
   what ``agent.core.node.Node`` needs (see ``node_arguments``).

Both raise ConfigError (a ValueError) listing every problem found, one per
line, each naming the full key (``node.priority``), the bad value and what is
allowed; an unknown key comes with the closest known one.

The keys (DESIGN.md "The daemon"; configs/ has commented examples). A key set
to null (``advertise:`` with nothing after it) means "use the default".

node
  name          1..64 UTF-8 bytes without spaces, '/', control characters or a leading '.',
                and not "*"                               default: hostname (cut to 64 bytes)
  priority      0..255; 0 = never leads                    default: 100
  bind          ip:port to listen on (UDP)                 default: 0.0.0.0:7946
  advertise     ip:port other nodes reach this one at      default: see below
                (IPv6 as [addr]:port; names only in cluster.seeds, as in memberlist)
  tags          map of str -> str (<= 8, each <= 32 bytes)  default: none
cluster
  name          the cluster (nodes of other clusters are ignored)  default: "default"
  seeds         list of host:port to join through; hostnames are resolved
                by the daemon, not here                     default: []
  keyring_file  cluster keys authenticating every packet    default: none (unauthenticated)
  join_timeout  duration: how long to wait for a seed to answer before
                taking part in the election with the members at hand
                (alone if need be); the seeds are still tried after it,
                and the two sides merge when one answers; 0 = no wait   default: 5s
  max_members   members this node keeps, itself included (2..65536); news of
                one more stranger is refused and counted (refused_member_cap),
                so forged members cannot fill the memory   default: 4096
election
  signing_key_file  this node's NAME.key: root:leaderd 0640, or the agent's
                    own user's 0600 (agent/keys.py)        default: none (cannot sign)
  trusted_keys_dir  directory of NAME.pub files             default: none
  trusted_keys      map of name -> base64 public key; merged with the
                    directory, a name with two different keys is an error
                    With neither, claims are not verified ("insecure"). A
                    trust list that is empty (trusted_keys: {}, or a
                    directory without NAME.pub) means that nobody may lead
                    here, this node included; it never means "anybody may".
  preempt           a higher-priority node takes over       default: true
  preempt_delay     ... after being up this long            default: 5s
gossip
  profile       lan | wan | local (agent/core/profile.py)   default: lan
  <field>       any profile field overrides the profile: the names of
                agent.core.profile.FIELDS. A ``*_ms`` field takes an int of
                milliseconds or a duration string (probe_interval_ms: 500 or
                "500ms"); it may also be written without ``_ms``, and then takes
                a duration, where a bare number means seconds like every
                duration (probe_interval: 500ms). Other fields take a positive int.
api
  socket        UNIX socket path     default: $XDG_RUNTIME_DIR/leaderd/leaderd.sock, else
                                     /run/leaderd/leaderd.sock
  mode          octal string          default: "0660" (quote it: YAML reads 0660 as a number)
  group         group name or gid owning the socket   default: none (the daemon's)
hooks
  on_elected, on_demoted, on_leader_change   argv lists (run without a shell)
  pre_demote    argv list run, and waited for, before this node gives the
                role up on purpose (maintenance on, a stop, a failed health
                check): the job finishes before the next leader starts
  pre_demote_timeout  duration: how long pre_demote may take   default: 10s
  timeout       duration                    default: 30s
health
  command       argv list; without it the node is always healthy. With it
                the node starts ineligible, until the check passes rise times
  interval 5s, timeout 2s (<= interval), rise 2, fall 3 (consecutive results, 1..100)
log
  level         debug | info | warning | error   default: info
  format        text | json                      default: text
metrics
  listen        ip:port of a Prometheus endpoint (GET /metrics), e.g.
                127.0.0.1:9464; needs the prometheus-client package
                (pip install 'leaderd[metrics]')   default: none (off)
insecure        true: run reachable from other machines with neither a
                cluster keyring nor a trust list (see below)  default: false

Secure by default (agent.core.rules.exposed, the board's rule too):
a node bound to anything but a loopback address (127.0.0.0/8, ::1), the
wildcards 0.0.0.0 and :: included, needs cluster.keyring_file or a trust list
(election.trusted_keys_dir or trusted_keys) unless the top-level key
``insecure: true`` says otherwise; load_runtime refuses it naming node.bind,
with the commands that make the keys. Loopback-only agents (leaderd demo,
the tests) need neither.

Durations are "250ms", "2s", "10m", "1h" (or "1m30s"); a bare number is
seconds; nothing finer than a millisecond ("1.5ms" is refused). These rules
(names, limits, durations, addresses, keys) are agent/core/rules.py, which
the board's config follows too. Relative paths in a file loaded with
load_config are relative to that file's directory.

The advertised address: node.advertise when given. Else, when node.bind
names a host, that host and port. Else (bind 0.0.0.0 or [::]) the first
address of this machine's hostname that is not loopback or link-local, then
the source address of the default route (found with a UDP connect; nothing is
sent), with the bind port; load_runtime fails naming node.advertise when
neither exists. Multi-homed machines should set node.advertise.
"""

import base64
import dataclasses
import difflib
import ipaddress
import os
import re
import shlex
import shutil
import socket
import types

import yaml

from agent import keys as keyfiles
from agent.core import profile as profiles
from agent.core import rules, wire
from agent.durations import format_duration

__all__ = [
    "ConfigError", "Config", "NodeConfig", "ClusterConfig", "ElectionConfig", "GossipConfig",
    "ApiConfig", "HooksConfig", "HealthConfig", "LogConfig", "Runtime",
    "load_config", "parse_config", "default_config", "default_socket_path", "default_node_name",
    "load_runtime", "check_installation", "node_arguments", "find_advertise_host", "DEFAULT_PORT",
]

DEFAULT_PORT = 7946          # Serf's LAN port: people recognise it
MAX_NAME_BYTES = wire.MAX_NAME_BYTES
MAX_SOCKET_PATH_BYTES = 107  # sockaddr_un.sun_path is 108 bytes with its NUL
WILDCARD_HOSTS = ("0.0.0.0", "::")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
HOOK_EVENTS = ("on_elected", "on_demoted", "on_leader_change", "pre_demote")
# Why rules.exposed() refuses a node; the board's config says it in the same words.
EXPOSED = ("reachable from other machines, with no cluster keyring and no trust list: anyone who can send it a "
           "datagram could join the cluster and lead it")


class ConfigError(ValueError):
    """A config that cannot be used; ``errors`` lists every problem, one per line of the message."""

    def __init__(self, errors, source="<config>"):
        self.errors = list(errors)
        self.source = source
        super().__init__("\n".join("%s: %s" % (source, line) for line in self.errors))


def _frozen_map(mapping):
    return types.MappingProxyType(dict(mapping))


# --- The immutable config objects ------------------------------------------

_frozen = dataclasses.dataclass(frozen=True, slots=True)


@_frozen
class NodeConfig:
    """The node section: this node's identity and addresses."""
    name: str
    priority: int
    bind: tuple             # (host, port)
    advertise: tuple        # (host, port), or None: derived by load_runtime
    tags: types.MappingProxyType


@_frozen
class ClusterConfig:
    """The cluster section: which cluster, how to join it, how packets are authenticated."""
    name: str
    seeds: tuple            # ((host, port), ...); hosts may be names
    keyring_file: str       # or None
    join_timeout_ms: int    # no seed answering by then: lone start (Node join_timeout_ms)
    max_members: int        # members kept, this node included (Node max_members)


@_frozen
class ElectionConfig:
    """The election section: signing, trust, preemption."""
    signing_key_file: str   # or None
    trusted_keys_dir: str   # or None
    trusted_keys: types.MappingProxyType   # name -> raw 32-byte public key, from the config itself; or None
    preempt: bool
    preempt_delay_ms: int
    term_file: str          # or None: where the highest term is kept across restarts


@_frozen
class GossipConfig:
    """The gossip section: the timing profile built from a named one and the fields overridden."""
    profile: profiles.Profile              # complete; profile.name is lan, wan or local
    overrides: types.MappingProxyType      # profile field -> int, as set in the config


@_frozen
class ApiConfig:
    """The api section: the local UNIX socket."""
    socket: str
    mode: int               # e.g. 0o660
    group: object           # group name (str), gid (int), or None


@_frozen
class HooksConfig:
    """The hooks section: argv tuples (or None) run on leadership events."""
    on_elected: tuple
    on_demoted: tuple
    on_leader_change: tuple
    pre_demote: tuple
    timeout_ms: int
    pre_demote_timeout_ms: int

    @property
    def timeout_s(self):
        """timeout_ms in (float) seconds, for asyncio."""
        return self.timeout_ms / 1000

    @property
    def pre_demote_timeout_s(self):
        return self.pre_demote_timeout_ms / 1000


@_frozen
class HealthConfig:
    """The health section: a check command making the node (in)eligible."""
    command: tuple          # argv, or None: always healthy
    interval_ms: int
    timeout_ms: int
    rise: int
    fall: int

    @property
    def interval_s(self):
        """interval_ms in (float) seconds, for asyncio."""
        return self.interval_ms / 1000

    @property
    def timeout_s(self):
        """timeout_ms in (float) seconds, for asyncio."""
        return self.timeout_ms / 1000


@_frozen
class LogConfig:
    """The log section."""
    level: str
    format: str


@_frozen
class MetricsConfig:
    """The metrics section: where the Prometheus endpoint listens (None: off)."""
    listen: tuple           # (host, port) or None


@_frozen
class Config:
    """A whole, validated daemon config; ``source`` names where it came from."""
    node: NodeConfig
    cluster: ClusterConfig
    election: ElectionConfig
    gossip: GossipConfig
    api: ApiConfig
    hooks: HooksConfig
    health: HealthConfig
    log: LogConfig
    metrics: MetricsConfig = None
    source: str = "<config>"
    insecure: bool = False  # the top-level insecure: true (see rules.exposed in agent/core/rules.py)

    def as_dict(self):
        """Plain, JSON-ready data (durations in ms, keys base64, api.mode as "0660") for check-config and tests."""
        data = _plain(self)
        data["api"]["mode"] = "%04o" % self.api.mode
        return data


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dict, types.MappingProxyType)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, profiles.Profile):
        return value.as_dict()
    return value


# --- Checking values ---------------------------------------------------------

_WHOLE = object()  # a problem with the whole value, not one of its items


class _Bad(Exception):
    """Raised by a value parser: problems = [(path suffix, bad item or _WHOLE, requirement)]."""

    def __init__(self, requirement, problems=None):
        super().__init__(requirement)
        self.problems = problems or [("", _WHOLE, requirement)]


def _show(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Checker:
    """Collects every problem of one config, then raises them together."""

    def __init__(self, source, base_dir):
        self.source = source
        self.base_dir = base_dir
        self.errors = []

    def bad(self, path, value, requirement):
        self.errors.append("%s: got %s; %s" % (path, _show(value), requirement))

    def unknown_keys(self, mapping, prefix, known):
        for key in mapping:
            path = "%s.%s" % (prefix, key) if prefix else str(key)
            if not isinstance(key, str):
                self.errors.append("%s: unknown key %s; known keys: %s" % (path, _show(key), ", ".join(known)))
                continue
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = "did you mean %r? " % close[0] if close else ""
            self.errors.append("%s: unknown key; %sknown keys%s: %s"
                               % (path, hint, " of " + prefix if prefix else "", ", ".join(known)))

    def section(self, top, name, known):
        raw = top.get(name)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.bad(name, raw, "expected a mapping with the keys: " + ", ".join(known))
            return {}
        self.unknown_keys(raw, name, known)
        return raw

    def field(self, section, prefix, key, parse, default=None):
        """section[key] parsed, or default when absent or null (the problem recorded)."""
        value = section.get(key)
        if value is None:
            return default
        try:
            return parse(value)
        except _Bad as bad:
            for suffix, item, requirement in bad.problems:
                self.bad("%s.%s%s" % (prefix, key, suffix), value if item is _WHOLE else item, requirement)
            return default


# The rules themselves (names, limits, durations, addresses, keys) are
# agent.core.rules, the board's config uses them too: here they only get
# the form of this file's errors (and YAML's hints).


def _rule(check, *args):
    """A value parser calling check(value, *args), a rule of agent.core.rules that raises ValueError."""
    def parse(value):
        try:
            return check(value, *args)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    return parse


def _integer(field):
    return _rule(rules.integer, field)


def _duration(minimum_ms=0, bare_ms=False):
    return _rule(rules.duration_ms, minimum_ms, bare_ms)


def _boolean(value):
    if not isinstance(value, bool):
        raise _Bad("expected true or false")
    return value


def _choice(options):
    def parse(value):
        try:
            return rules.choice(value, options)
        except ValueError as exc:
            close = difflib.get_close_matches(str(value).lower(), options, n=1, cutoff=0.6)
            hint = " (did you mean %r?)" % close[0] if close else ""
            raise _Bad(str(exc) + hint) from None
    return parse


def _name(value):
    if isinstance(value, bool):
        raise _Bad(rules.name_problem(value) + " (YAML reads yes/no/on/off as booleans: quote the name)")
    problem = rules.name_problem(value)
    if problem is not None:
        raise _Bad(problem)
    return value


def _hostport(names):
    """(host, port): an IP address, or also a DNS name when names (cluster.seeds)."""
    return _rule(rules.host_port, names)


def _seed_list(value):
    if not isinstance(value, list):
        raise _Bad("expected a list of host:port strings, e.g. [192.168.1.10:7946, pi-garage.local:7946]")
    seeds, problems = [], []
    for index, item in enumerate(value):
        try:
            seeds.append(rules.host_port(item, True))
        except ValueError as bad:
            problems.append(("[%d]" % index, item, str(bad)))
    if problems:
        raise _Bad("", problems=problems)
    return tuple(seeds)


def _argv(value):
    if not isinstance(value, list) or not value:
        raise _Bad("expected a non-empty list of strings (the program, then its arguments; no shell), "
                   "e.g. [/usr/local/bin/start-job, --now]")
    problems = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or "\0" in item:
            problems.append(("[%d]" % index, item, "expected a non-empty string (quote numbers and yes/no)"))
    if problems:
        raise _Bad("", problems=problems)
    return tuple(value)


def _mode(value):
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Bad('expected an octal string such as "0660" (quote it: YAML reads 0660 as the number 432)')
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value):
        raise _Bad('expected an octal permission string "0000".."0777", e.g. "0660"')
    return int(value, 8)


def _group(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return value
    raise _Bad("expected a group name or a numeric gid")


def _tags(value):
    problems = rules.tag_problems(value)
    if problems:
        raise _Bad("", problems=[("" if tag is None else "." + tag, _WHOLE if item is value else item, requirement)
                                 for tag, item, requirement in problems])
    return _frozen_map(value)


def _trusted_map(value):
    if not isinstance(value, dict):
        raise _Bad("expected a mapping of node name -> base64 Ed25519 public key (the line of its NAME.pub)")
    problems, result = [], {}
    for name, text in value.items():
        problem = rules.name_problem(name)
        if problem is not None:
            problems.append(("", name, "expected node names as keys; " + problem))
            continue
        try:
            result[name] = rules.public_key(text, name)
        except ValueError as exc:
            problems.append(("." + name, text, str(exc)))
    if problems:
        raise _Bad("", problems=problems)
    return _frozen_map(result)


# --- Sections ------------------------------------------------------------------

_SECTIONS = ("node", "cluster", "election", "gossip", "api", "hooks", "health", "log", "metrics")
_TOP_KEYS = _SECTIONS + ("insecure",)
_MS_ALIASES = {field[:-3]: field for field in profiles.FIELDS if field.endswith("_ms")}
_GOSSIP_KEYS = ("profile",) + profiles.FIELDS + tuple(_MS_ALIASES)


def default_node_name(hostname=None):
    """This machine's hostname cut to 64 UTF-8 bytes (never mid-character), the default node name."""
    hostname = hostname if hostname is not None else socket.gethostname()
    name = hostname.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore").strip()
    return name if rules.name_problem(name) is None else "leaderd"


def default_socket_path(environ=None):
    """$XDG_RUNTIME_DIR/leaderd/leaderd.sock when XDG_RUNTIME_DIR is set, else /run/leaderd/leaderd.sock."""
    environ = os.environ if environ is None else environ
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime_dir or "/run", "leaderd", "leaderd.sock")


def _path(checker):
    def parse(value):
        problem = rules.path_problem(value)
        if problem is not None:
            raise _Bad(problem)
        value = os.path.expanduser(value)
        if checker.base_dir and not os.path.isabs(value):
            value = os.path.normpath(os.path.join(checker.base_dir, value))
        return value
    return parse


def _node(c, top):
    s = c.section(top, "node", ("name", "priority", "bind", "advertise", "tags"))
    bind = c.field(s, "node", "bind", _hostport(False), ("0.0.0.0", DEFAULT_PORT))
    advertise = c.field(s, "node", "advertise", _hostport(False))
    if advertise is not None and advertise[0] in WILDCARD_HOSTS:
        c.bad("node.advertise", s["advertise"], "expected an address other nodes can reach, not a wildcard")
        advertise = None
    return NodeConfig(
        name=c.field(s, "node", "name", _name) or default_node_name(),
        priority=c.field(s, "node", "priority", _integer("priority"), 100),
        bind=bind, advertise=advertise,
        tags=c.field(s, "node", "tags", _tags, _frozen_map({})))


def _cluster(c, top):
    s = c.section(top, "cluster", ("name", "seeds", "keyring_file", "join_timeout", "max_members"))
    return ClusterConfig(
        name=c.field(s, "cluster", "name", _name, "default"),
        seeds=c.field(s, "cluster", "seeds", _seed_list, ()),
        keyring_file=c.field(s, "cluster", "keyring_file", _path(c)),
        join_timeout_ms=c.field(s, "cluster", "join_timeout", _duration(0), 5000),
        max_members=c.field(s, "cluster", "max_members", _integer("max_members"), 4096))


def _election(c, top):
    s = c.section(top, "election", ("signing_key_file", "trusted_keys_dir", "trusted_keys",
                                    "preempt", "preempt_delay", "term_file"))
    return ElectionConfig(
        signing_key_file=c.field(s, "election", "signing_key_file", _path(c)),
        trusted_keys_dir=c.field(s, "election", "trusted_keys_dir", _path(c)),
        # None when not set: an empty map is a trust list too, one that trusts nobody.
        trusted_keys=c.field(s, "election", "trusted_keys", _trusted_map),
        preempt=c.field(s, "election", "preempt", _boolean, True),
        preempt_delay_ms=c.field(s, "election", "preempt_delay", _duration(0), 5000),
        term_file=c.field(s, "election", "term_file", _path(c)))


def _gossip_value(key, field):
    if field.endswith("_ms"):
        # field_ms: 500 is milliseconds; everywhere else a bare number is seconds.
        return _duration(1, key == field)
    return _integer(field)


def _gossip(c, top):
    s = c.section(top, "gossip", _GOSSIP_KEYS)
    name = c.field(s, "gossip", "profile", _choice(tuple(profiles.PROFILES)), "lan")
    overrides, written = {}, {}
    for key in s:
        field = _MS_ALIASES.get(key, key)
        if key == "profile" or field not in profiles.FIELDS or s[key] is None:
            continue
        if field in written:
            c.bad("gossip." + key, s[key], "but this field is set twice (also as gossip.%s: %s); keep one"
                  % (written[field], _show(s[written[field]])))
            continue
        value = c.field(s, "gossip", key, _gossip_value(key, field))
        if value is not None:
            overrides[field], written[field] = value, key
    base = profiles.make(name)
    timeout = overrides.get("probe_timeout_ms", base.probe_timeout_ms)
    interval = overrides.get("probe_interval_ms", base.probe_interval_ms)
    if timeout >= interval and ("probe_timeout_ms" in written or "probe_interval_ms" in written):
        key = written.get("probe_timeout_ms") or written["probe_interval_ms"]
        c.bad("gossip." + key, s[key], "expected probe_timeout (%s) below probe_interval (%s); profile %s"
              % (format_duration(timeout), format_duration(interval), name))
        overrides.pop("probe_timeout_ms", None)
        overrides.pop("probe_interval_ms", None)
    try:
        built = profiles.make(name, **overrides)
    except ValueError as exc:  # a rule of Profile this module does not repeat
        c.errors.append("gossip: %s" % (exc,))
        built = base
    return GossipConfig(profile=built, overrides=_frozen_map(overrides))


def _api(c, top):
    s = c.section(top, "api", ("socket", "mode", "group"))
    socket_path = c.field(s, "api", "socket", _path(c)) or default_socket_path()
    if len(socket_path.encode("utf-8")) > MAX_SOCKET_PATH_BYTES:
        c.bad("api.socket", socket_path, "expected a path of at most %d bytes (a UNIX socket limit)"
              % MAX_SOCKET_PATH_BYTES)
    return ApiConfig(socket=socket_path, mode=c.field(s, "api", "mode", _mode, 0o660),
                     group=c.field(s, "api", "group", _group))


def _hooks(c, top):
    s = c.section(top, "hooks", HOOK_EVENTS + ("timeout", "pre_demote_timeout"))
    argv = {event: c.field(s, "hooks", event, _argv) for event in HOOK_EVENTS}
    return HooksConfig(timeout_ms=c.field(s, "hooks", "timeout", _duration(1), 30000),
                       pre_demote_timeout_ms=c.field(s, "hooks", "pre_demote_timeout", _duration(1), 10000), **argv)


def _health(c, top):
    s = c.section(top, "health", ("command", "interval", "timeout", "rise", "fall"))
    health = HealthConfig(
        command=c.field(s, "health", "command", _argv),
        interval_ms=c.field(s, "health", "interval", _duration(1), 5000),
        timeout_ms=c.field(s, "health", "timeout", _duration(1), 2000),
        rise=c.field(s, "health", "rise", _integer("rise"), 2),
        fall=c.field(s, "health", "fall", _integer("fall"), 3))
    if health.timeout_ms > health.interval_ms and s.get("timeout") is not None:
        c.bad("health.timeout", s["timeout"], "expected at most health.interval (%s)"
              % format_duration(health.interval_ms))
    if s.get("command") is None and any(s.get(k) is not None for k in ("interval", "timeout", "rise", "fall")):
        c.errors.append("health.command: missing; health.interval, timeout, rise and fall need a command "
                        "(an argv list, e.g. [/usr/local/bin/check-disk])")
    return health


def _log(c, top):
    s = c.section(top, "log", ("level", "format"))
    return LogConfig(level=c.field(s, "log", "level", _choice(LOG_LEVELS), "info"),
                     format=c.field(s, "log", "format", _choice(LOG_FORMATS), "text"))


def _metrics(c, top):
    s = c.section(top, "metrics", ("listen",))
    return MetricsConfig(listen=c.field(s, "metrics", "listen", _hostport(False)))


def parse_config(mapping, source="<config>", base_dir=None):
    """A Config from parsed YAML data (a dict, or None for all defaults).

    Relative paths are joined to base_dir when given. Raises ConfigError
    listing every problem.
    """
    checker = _Checker(source, base_dir)
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(["got %s at the top level; expected a mapping with the sections: %s"
                           % (_show(mapping), ", ".join(_TOP_KEYS))], source)
    checker.unknown_keys(mapping, "", _TOP_KEYS)
    insecure = False
    if mapping.get("insecure") is not None:
        try:
            insecure = _boolean(mapping["insecure"])
        except _Bad as bad:
            checker.bad("insecure", mapping["insecure"], str(bad))
    config = Config(node=_node(checker, mapping), cluster=_cluster(checker, mapping),
                    election=_election(checker, mapping), gossip=_gossip(checker, mapping),
                    api=_api(checker, mapping), hooks=_hooks(checker, mapping),
                    health=_health(checker, mapping), log=_log(checker, mapping),
                    metrics=_metrics(checker, mapping), source=source,
                    insecure=insecure)
    if checker.errors:
        raise ConfigError(checker.errors, source)
    return config


def default_config():
    """The config of a daemon run without a file: hostname, 0.0.0.0:7946, cluster "default"."""
    return parse_config({}, source="<defaults>")


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing duplicate keys (safe_load keeps the last silently)."""


def _construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable: SafeConstructor reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config(path):
    """The Config in the YAML file at path (relative paths inside are relative to its directory)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(["cannot read the config file: %s" % (exc.strerror or exc,)], path) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = "line %d, column %d: " % (mark.line + 1, mark.column + 1) if mark else ""
        raise ConfigError(["%snot valid YAML: %s" % (where, exc.problem or exc.context)], path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(["not valid YAML: %s" % (exc,)], path) from None
    return parse_config(data, source=str(path), base_dir=os.path.dirname(os.path.abspath(path)))


# --- Step two: the files a config names -----------------------------------------

@_frozen
class Runtime:
    """What a Config's files hold, ready for Node: keys, signer and verifier, trust list, address."""
    keyring: tuple          # cluster keys (bytes), primary first; None = packets unauthenticated
    signer: object          # signer(data) -> 64-byte signature, or None: this node cannot lead
    verifier: object        # verifier(pub32, data, sig64) -> bool, never raising
    public_key: bytes       # this node's raw public key, or None
    trusted_keys: types.MappingProxyType  # name -> raw public key; None = insecure (no trust list)
    advertise: tuple        # (host, port) announced to the cluster
    warnings: tuple         # sentences the daemon logs loudly at startup

    @property
    def insecure(self):
        """True when no trusted keys are configured: claims are accepted unverified."""
        return self.trusted_keys is None

    @property
    def authenticated(self):
        """True when a keyring authenticates every packet."""
        return self.keyring is not None


def _is_public(address):
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def find_advertise_host(bind_host, hostname=None):
    """An address of this machine for others to reach, for a wildcard bind_host; or None.

    The hostname's first address that is not loopback or link-local, else the
    source address of the default route (a UDP connect sends nothing).
    """
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(hostname or socket.gethostname(), None, family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        infos = []
    for info in infos:
        if _is_public(info[4][0]):
            return info[4][0].split("%")[0]
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"  # documentation ranges
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            address = sock.getsockname()[0]
    except OSError:
        return None
    return address if _is_public(address) else None


def load_runtime(config, find_host=find_advertise_host):
    """Reads the files config names; a Runtime, or ConfigError naming each key, file and problem."""
    errors, warnings = [], []

    def attempt(key, load):
        try:
            return load()
        except keyfiles.KeyFileError as exc:
            errors.append("%s: %s" % (key, exc))
            return None

    cluster, election, node = config.cluster, config.election, config.node
    keyring = None
    if cluster.keyring_file:
        loaded = attempt("cluster.keyring_file", lambda: keyfiles.load_keyring(cluster.keyring_file))
        keyring = tuple(loaded) if loaded else None
    else:
        warnings.append("packets are unauthenticated: set cluster.keyring_file to authenticate them")
    signer = public_key = None
    if election.signing_key_file:
        private = attempt("election.signing_key_file", lambda: keyfiles.load_private_key(election.signing_key_file))
        if private is not None:
            signer, public_key = keyfiles.make_signer(private), keyfiles.public_bytes(private)
    trusted = None
    trust_list = election.trusted_keys_dir is not None or election.trusted_keys is not None
    if trust_list:
        trusted = dict(election.trusted_keys or {})
        if election.trusted_keys_dir:
            from_dir = attempt("election.trusted_keys_dir",
                               lambda: keyfiles.load_trusted_dir(election.trusted_keys_dir)) or {}
            for name, key in sorted(from_dir.items()):
                if name in trusted and trusted[name] != key:
                    errors.append("election.trusted_keys.%s: differs from %s; one node, one key: remove one"
                                  % (name, os.path.join(election.trusted_keys_dir, name + ".pub")))
                trusted[name] = key
        if not trusted:
            # Explicitly empty: nobody may lead here (this node is not added to it either).
            warnings.append("the trust list (election.trusted_keys_dir / trusted_keys) is empty: no node may "
                            "lead here, this one included; every claim is refused until NAME.pub files or "
                            "trusted_keys are added")
        elif public_key is not None:
            if node.name not in trusted:
                trusted[node.name] = public_key
                warnings.append("node %s is not in its own trust list; trusting its key locally, but other "
                                "nodes need its %s.pub to accept its claims" % (node.name, node.name))
            elif trusted[node.name] != public_key:
                errors.append("election.signing_key_file: %s does not match the trusted public key of node %s"
                              % (election.signing_key_file, node.name))
        elif node.name in trusted:
            warnings.append("no election.signing_key_file, but %s is in the trust list: nodes that trust "
                            "the name drop this node's unsigned membership news (it will not appear among "
                            "their members); set the key, or remove %s.pub from the trust lists" % (node.name, node.name))
        elif node.priority > 0:
            warnings.append("no election.signing_key_file: this node cannot sign claims, so it never leads")
    elif signer is not None:
        warnings.append("claims are signed but not verified: set election.trusted_keys_dir or trusted_keys")
    else:
        warnings.append("claims are unsigned and unverified (insecure): set election.signing_key_file "
                        "and trusted_keys_dir")
    if rules.exposed(node.bind[0], cluster.keyring_file is not None, trust_list, config.insecure):
        errors.append("node.bind: %s is %s. %s" % (format_hostport(node.bind), EXPOSED, _key_commands(config)))
    advertise = node.advertise
    if advertise is None and node.bind[0] not in WILDCARD_HOSTS:
        advertise = node.bind
    elif advertise is None:
        host = find_host(node.bind[0])
        if host is None:
            errors.append("node.advertise: not set, and bind %s has no address to derive it from "
                          "(no non-loopback address found); set node.advertise: HOST:%d"
                          % (format_hostport(node.bind), node.bind[1]))
        else:
            advertise = (host, node.bind[1])
    if errors:
        raise ConfigError(errors, config.source)
    return Runtime(keyring=keyring, signer=signer, verifier=keyfiles.verify, public_key=public_key,
                   trusted_keys=None if trusted is None else _frozen_map(trusted),
                   advertise=advertise, warnings=tuple(warnings))


def _key_commands(config):
    """How to make the keys a node reachable from other machines needs: commands that work as printed."""
    from_file = config.source not in ("<config>", "<defaults>") and os.path.isfile(config.source)
    directory = os.path.dirname(os.path.abspath(config.source)) if from_file else "/etc/leaderd"
    name = config.node.name
    q = shlex.quote
    return ("Make keys (as root for /etc/leaderd):\n"
            "    mkdir -p -m 755 {trusted}\n"
            "    (umask 027 && leaderd keygen --cluster-key > {keyring})\n"
            "    leaderd keygen --name {name} --out {dir}\n"
            "    install -m 644 {pub} {trusted}/\n"
            "  then set cluster.keyring_file: {keyring}, election.signing_key_file: {key} and "
            "election.trusted_keys_dir: {trusted} in {config} (the same keyring, and the NAME.pub of "
            "every node that may lead, go to every node; under the systemd unit, run "
            "`systemd-tmpfiles --create leaderd.conf` after); or bind a loopback address "
            "(node.bind: 127.0.0.1:{port}) for agents on this machine only; or set insecure: true at the "
            "top of the config to run unauthenticated anyway"
            ).format(keyring=q(os.path.join(directory, "keyring")), name=q(name), dir=q(directory),
                     trusted=q(os.path.join(directory, "trusted")), pub=q(os.path.join(directory, name + ".pub")),
                     key=q(os.path.join(directory, name + ".key")), port=config.node.bind[1],
                     config=config.source if from_file else "a config file (leaderd run --config FILE)")


def _program_problem(program, which):
    """Why argv[0] = program cannot be started (a sentence), or None when it can."""
    if os.sep not in program:
        if which(program) is None:
            return "%r is not found in PATH (%s); give its full path" % (program, os.environ.get("PATH", ""))
        return None
    if not os.path.exists(program):
        return "%s does not exist" % program
    if os.path.isdir(program):
        return "%s is a directory, not a program" % program
    if not os.access(program, os.X_OK):
        return "%s is not executable (by this user): chmod +x it" % program
    return None


def check_installation(config, resolve=socket.getaddrinfo, which=shutil.which):
    """What check-config adds to load_runtime: (errors, warnings) about the machine a config will run on.

    Errors: a hook's or the health check's program (argv[0]) that does not
    exist, is not executable by this user, or is not in PATH; the agent
    would start, and the hook or check would fail each time. Warnings: a
    seed host name that does not resolve (IPv4, as the agent resolves it
    when it starts): DNS may come up later, but an agent that starts
    without it goes on without that seed.
    """
    errors, warnings = [], []
    programs = [("hooks." + event, getattr(config.hooks, event)) for event in HOOK_EVENTS]
    programs.append(("health.command", config.health.command))
    for key, argv in programs:
        if argv:
            problem = _program_problem(argv[0], which)
            if problem is not None:
                errors.append("%s[0]: %s" % (key, problem))
    for index, (host, port) in enumerate(config.cluster.seeds):
        try:
            ipaddress.ip_address(host)
            continue  # an address: nothing to resolve
        except ValueError:
            pass
        try:
            resolve(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            warnings.append("cluster.seeds[%d]: %s does not resolve now (%s); an agent started before "
                            "it does goes on without this seed" % (index, host, getattr(exc, "strerror", None) or exc))
    return errors, warnings


def format_hostport(address):
    """(host, port) as host:port, an IPv6 host in brackets ([fd00::1]:7946)."""
    host, port = address
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def node_arguments(config, runtime):
    """The keyword arguments for agent.core.node.Node, all but rng and now."""
    return {
        "name": config.node.name,
        "address": runtime.advertise,
        "profile": config.gossip.profile,
        "cluster": config.cluster.name,
        "keyring": list(runtime.keyring) if runtime.keyring else None,
        "priority": config.node.priority,
        # With a health check, not eligible until it has passed health.rise times (the daemon's checker).
        "eligible": not config.health.command,
        "tags": dict(config.node.tags) or None,
        "signer": runtime.signer,
        "verifier": runtime.verifier,
        "trusted_keys": None if runtime.trusted_keys is None else dict(runtime.trusted_keys),
        "preempt": config.election.preempt,
        "preempt_delay_ms": config.election.preempt_delay_ms,
        "join_timeout_ms": config.cluster.join_timeout_ms,
        "max_members": config.cluster.max_members,
    }
