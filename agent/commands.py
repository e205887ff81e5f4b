"""The agent's subcommands: run, leader, members, status, watch, is-leader,
exec, maintenance, transfer, keygen, check-config, ping. Each is a pair add_<name>(subparsers) /
cmd_<name>(args) -> exit code, registered in agent.cli.COMMANDS.
"""

import argparse
import asyncio
import json
import os
import sys
import time

from agent.demo import add_demo
from agent.exitcodes import EXIT_FAILURE, EXIT_NOT_LEADER, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from agent.paths import SYSTEM_SOCKET_PATH, USER_SOCKET_PATH_TEXT


DEFAULT_CLIENT_TIMEOUT = "5s"


def _add_socket(parser, timeout=True, default_timeout=DEFAULT_CLIENT_TIMEOUT):
    """--socket / --config (which socket) and --timeout (how long to wait) of a client subcommand."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", default=None,
                       help="the agent's API socket (default: $LEADERD_SOCKET, %s, %s)"
                            % (USER_SOCKET_PATH_TEXT, SYSTEM_SOCKET_PATH))
    where.add_argument("--config", metavar="FILE", default=None,
                       help="the agent's config file: talk to the api.socket it names (as `run "
                            "--config FILE` listens on)")
    if not timeout:
        return
    parser.add_argument("--timeout", metavar="D", default=default_timeout,
                        help='how long to wait for the agent to answer, e.g. "500ms", "10s"; a bare '
                             "number is seconds (default: %s)" % default_timeout)


def _add_json(parser):
    parser.add_argument("--json", action="store_true", help="print JSON (a stable, documented shape)")


class _UsageError(Exception):
    """A bad --config or --timeout: printed, and the command exits EXIT_USAGE."""


def _client(args, factory=None, timeout_s=None):
    """The Client (or factory's) for --socket / --config and --timeout (or timeout_s); _UsageError
    when they are unusable."""
    from agent.client import Client
    from agent.durations import parse_duration
    if timeout_s is None:
        try:
            timeout_ms = parse_duration(args.timeout)
        except ValueError as exc:
            raise _UsageError("--timeout: %s" % exc) from None
        if timeout_ms <= 0:
            raise _UsageError("--timeout: must be longer than 0, got %r" % (args.timeout,))
        timeout_s = timeout_ms / 1000.0
    path = args.socket
    if args.config is not None:
        from agent import config
        try:
            path = config.load_config(args.config).api.socket
        except ValueError as exc:
            raise _UsageError("--config: the socket is not known, the config is not usable:\n%s" % exc) from None
    return (factory or Client)(path, timeout=timeout_s)


def _unreachable_message(exc, args):
    """The line printed when the agent cannot be reached; a timeout names --timeout."""
    from agent.client import AgentTimeout
    if isinstance(exc, AgentTimeout):
        return "leaderd: %s (waited --timeout %s)" % (exc, args.timeout)
    return "leaderd: %s" % exc


def _call(args, method):
    """Runs one client call; returns (reply, exit code) and prints errors."""
    from agent.client import ApiError, AgentUnreachable
    try:
        client = _client(args)
    except _UsageError as exc:
        print("leaderd %s: %s" % (args.command, exc), file=sys.stderr)
        return None, EXIT_USAGE
    try:
        return getattr(client, method)(), EXIT_OK
    except AgentUnreachable as exc:
        print(_unreachable_message(exc, args), file=sys.stderr)
    except ApiError as exc:
        print("leaderd: the agent answered with an error: %s" % exc, file=sys.stderr)
    return None, EXIT_UNREACHABLE


def _table(headers, rows):
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


# --- run ------------------------------------------------------------------

def add_run(sub):
    p = sub.add_parser("run", help="run the agent in the foreground",
                       description="Run the agent in the foreground, logging to stderr. Under "
                                   "systemd (Type=notify) it reports READY=1 once its socket answers, "
                                   "STATUS= with the leader, and WATCHDOG=1 when WatchdogSec is set. "
                                   "SIGHUP reloads keys, keyring, priority, hooks and health check "
                                   "and logs what changed; "
                                   "SIGTERM leaves gracefully (a leader resigns first). Secure by "
                                   "default: bound to anything but loopback (the default bind is "
                                   "0.0.0.0:7946), it refuses to start without a cluster keyring or a "
                                   "trust list, printing the commands that make them, unless the config "
                                   "says insecure: true.")
    p.add_argument("--config", metavar="FILE", help="YAML config file (see configs/)")
    p.set_defaults(func=cmd_run)


def cmd_run(args):
    from agent import daemon
    return daemon.run(args.config)


# --- leader / is-leader ----------------------------------------------------

def add_leader(sub):
    p = sub.add_parser("leader", help="print the current leader, its term and address",
                       description="Print the leader this agent follows, its term (the fencing "
                                   "token: it only grows) and its address. JSON shape: {leader, term, "
                                   "address, self, is_leader, insecure}.")
    _add_socket(p)
    _add_json(p)
    p.set_defaults(func=cmd_leader)


def cmd_leader(args):
    reply, code = _call(args, "leader")
    if reply is None:
        return code
    if args.json:
        print(json.dumps(reply, sort_keys=True))
        return EXIT_OK
    if reply["leader"] is None:
        print("no leader (term %d)" % reply["term"])
    else:
        me = " (this node)" if reply["is_leader"] else ""
        print("%s%s  term %d  %s" % (reply["leader"], me, reply["term"], reply["address"] or "-"))
    if reply.get("insecure"):
        print("warning: claims are unsigned (insecure: no trusted keys configured)", file=sys.stderr)
    return EXIT_OK


def add_is_leader(sub):
    p = sub.add_parser("is-leader", help="exit 0 if this node leads, 1 if not, 2 if unknown",
                       description="Exit 0 if this node is the leader, 1 if it is not, 2 if the agent "
                                   "cannot be reached or answers with an error. For shell use: "
                                   "`leaderd is-leader && run-the-job`.")
    _add_socket(p)
    p.set_defaults(func=cmd_is_leader)


def cmd_is_leader(args):
    reply, code = _call(args, "leader")
    if reply is None:
        return EXIT_UNREACHABLE
    return EXIT_OK if reply.get("is_leader") else EXIT_NOT_LEADER


# --- members / status ----------------------------------------------------------

def add_members(sub):
    p = sub.add_parser("members", help="list the members this agent knows",
                       description="List every member: name, address, state (alive, suspect, dead, "
                                   "left), priority, eligibility, incarnation and how long it has been "
                                   "in that state. JSON shape: {members: [{name, address, state, "
                                   "priority, eligible, incarnation, ...}]}.")
    _add_socket(p)
    _add_json(p)
    p.set_defaults(func=cmd_members)


def cmd_members(args):
    reply, code = _call(args, "members")
    if reply is None:
        return code
    if args.json:
        print(json.dumps(reply, sort_keys=True))
        return EXIT_OK
    rows = []
    for m in reply["members"]:
        since = m.get("since_s")
        rows.append([m["name"] + (" *" if m.get("self") else ""), m["address"], m["state"],
                     str(m["priority"]), "yes" if m["eligible"] else "no", str(m["incarnation"]),
                     "-" if since is None else _ago(since)])
    print(_table(["NAME", "ADDRESS", "STATE", "PRIORITY", "ELIGIBLE", "INCARNATION", "SINCE"], rows))
    return EXIT_OK


def _ago(seconds):
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    return "%dh" % (seconds // 3600)


def add_status(sub):
    p = sub.add_parser("status", help="show this agent's state and counters",
                       description="Show this agent's identity, leadership, member counts, security "
                                   "state and protocol counters (datagrams, drops by reason, probes).")
    _add_socket(p)
    _add_json(p)
    p.set_defaults(func=cmd_status)


def cmd_status(args):
    reply, code = _call(args, "status")
    if reply is None:
        return code
    if args.json:
        print(json.dumps(reply, sort_keys=True))
        return EXIT_OK
    leader = reply["leader"]
    rows = [
        ("node", "%s at %s (cluster %s)" % (reply["self"], reply["address"], reply["cluster"])),
        ("leader", "%s, term %d" % (leader["leader"] or "none", leader["term"])
         + ("  (this node)" if leader["is_leader"] else "")),
        ("members", ", ".join("%d %s" % (n, s) for s, n in sorted(reply["members"].items()))),
        ("joined", _join_state(reply)),
        ("priority", "%d, %s" % (reply["priority"], "eligible" if reply["eligible"] else "not eligible")
         + (" (MAINTENANCE: `leaderd maintenance off` ends it)" if reply.get("maintenance") else "")),
        ("security", "packets %s, claims %s" % (
            "authenticated" if reply["authenticated"] else "UNAUTHENTICATED",
            "UNSIGNED" if leader["insecure"] else "signed")),
        ("profile", "%s (local health %d)" % (reply["profile"], reply["awareness"])),
        ("uptime", "%ss, pid %d, version %s" % (reply["uptime_s"], reply["pid"], reply["version"])),
    ]
    duplicate = reply.get("duplicate_name")
    if duplicate:
        rows.insert(1, ("name", "ALSO ANNOUNCED by the agent at %s (last heard %ss ago): two agents share "
                                "this name, or a forger holds the cluster key" % (
                                    duplicate["address"], duplicate["seen_s_ago"])))
    health = reply.get("health")
    if health:
        rows.insert(6 if duplicate else 5, ("health", "%s: %s, %d check%s run, %d passed in a row (rise %d)" % (
            health["command"], "passing" if health["healthy"] else "NOT PASSING (not eligible)", health["checks"],
            "" if health["checks"] == 1 else "s", health["passes"], health["rise"])))
    stats = reply["stats"]
    drops = sum(v for k, v in stats.items() if k.startswith("dropped_"))
    rows.append(("traffic", "%d datagrams sent, %d received, %d dropped" % (
        stats["sent_datagrams"], stats["received_datagrams"], drops)))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print("%-*s  %s" % (width, key, value))
    return EXIT_OK


def _join_state(reply):
    """The "joined" line of `status`: joined, or which seeds have not answered and what the node does meanwhile."""
    if reply.get("joined", True):
        return "yes"
    seeds = ", ".join(reply.get("seeds") or []) or "none resolved"
    if reply.get("waiting_for_seeds"):
        return "not joined: no seed has answered yet (%s); not electing until one does or the join times out" % seeds
    return ("not joined: no seed has answered (%s); taking part in the election with the members it has, "
            "still trying the seeds" % seeds)


# --- watch ----------------------------------------------------------------

def add_watch(sub):
    p = sub.add_parser("watch", help="stream leadership and membership changes",
                       description="Print one line per leadership or membership change until "
                                   "interrupted. The first line is the current leader. With --json, "
                                   "one JSON object per line with an \"event\" field. --timeout bounds "
                                   "the wait for the agent's first answer; the stream itself has none.")
    _add_socket(p)
    _add_json(p)
    p.set_defaults(func=cmd_watch)


def cmd_watch(args):
    from agent.client import ApiError, AgentUnreachable
    try:
        client = _client(args)
    except _UsageError as exc:
        print("leaderd watch: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        for event in client.watch():
            if args.json:
                print(json.dumps(event, sort_keys=True), flush=True)
            else:
                print(_describe(event), flush=True)
    except AgentUnreachable as exc:
        print(_unreachable_message(exc, args), file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        print("leaderd: %s" % exc, file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _describe(event):
    kind = event.get("event")
    stamp = time.strftime("%H:%M:%S")
    if kind in ("leader", "leader_changed"):
        who = event.get("leader") if kind == "leader" else event.get("new")
        return "%s leader %s (term %s)" % (stamp, who or "none", event.get("term"))
    if kind == "elected":
        return "%s this node was elected (term %s)" % (stamp, event.get("term"))
    if kind == "demoted":
        return "%s this node stepped down (term %s, %s)" % (stamp, event.get("term"), event.get("reason"))
    if kind and kind.startswith("member_"):
        return "%s %s %s" % (stamp, event.get("name"), kind[len("member_"):])
    rest = " ".join("%s=%s" % (k, event[k]) for k in sorted(event) if k != "event")
    return "%s %s %s" % (stamp, kind, rest)


# --- transfer ----------------------------------------------------------------

def add_transfer(sub):
    p = sub.add_parser(
        "transfer", help="on the leader: hand the role to NODE (or the next in rank) now",
        description="Run on the leader: after hooks.pre_demote, it hands the role to NODE (default: "
                    "the next in rank) with a signed hand-over, and the successor claims the next term at "
                    "once. No node that ranks above the successor preempts it while it leads; when it "
                    "fails, rank decides again. Refused, with the reason, when this node does not lead "
                    "(the message names the leader) or NODE is unknown, not alive, not in the trust list "
                    "or not eligible. Exit status 0 once the successor's claim is back, 1 if refused or "
                    "unconfirmed, 2 if the agent is unreachable.")
    p.add_argument("node", nargs="?", default=None, help="the member to hand the role to (default: the next in rank)")
    # The leader waits for hooks.pre_demote (10 s by default) before it hands over.
    _add_socket(p, default_timeout="30s")
    _add_json(p)
    p.set_defaults(func=cmd_transfer)


def cmd_transfer(args):
    from agent.client import AgentUnreachable, ApiError
    try:
        client = _client(args)
    except _UsageError as exc:
        print("leaderd transfer: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        reply = client.transfer(args.node)
    except AgentUnreachable as exc:
        print(_unreachable_message(exc, args), file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        print("leaderd transfer: %s" % exc, file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(reply, sort_keys=True))
    elif reply["confirmed"]:
        print("%s leads now (term %s), handed over by %s in %.1f ms"
              % (reply["to"], reply["term"], reply["from"], reply["elapsed_ms"]))
    else:
        print("handed the role to %s, but its claim did not come back within %.1f ms; leader now: %s"
              % (reply["to"], reply["elapsed_ms"], reply["leader"] or "none"), file=sys.stderr)
    return EXIT_OK if reply["confirmed"] else EXIT_FAILURE


# --- maintenance -------------------------------------------------------------

def add_maintenance(sub):
    p = sub.add_parser(
        "maintenance", help="on: this node stops leading and does not lead again until off",
        description="`leaderd maintenance on` makes this node ineligible to lead: a leader hands over at "
                    "once (a signed resignation; the next in rank takes over, and `leaderd exec` jobs and "
                    "on_demoted hooks stop here), and the node stays a follower, across restarts of the "
                    "agent, until `leaderd maintenance off`. The flag is kept beside the state file "
                    "(/var/lib/leaderd/maintenance under the systemd unit); an agent without a state file "
                    "forgets it at restart, and says so. `status` shows it.")
    p.add_argument("state", choices=("on", "off"), help="on or off")
    # "on" on a leader waits for hooks.pre_demote (10 s by default) before it answers.
    _add_socket(p, default_timeout="30s")
    _add_json(p)
    p.set_defaults(func=cmd_maintenance)


def cmd_maintenance(args):
    from agent.client import AgentUnreachable, ApiError
    try:
        client = _client(args)
    except _UsageError as exc:
        print("leaderd maintenance: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        reply = client.maintenance(args.state == "on")
        leader = client.leader()
        if reply["was_leader"] and args.state == "on":
            # The hand-over: wait (within --timeout) until another node leads, to name it.
            deadline = time.monotonic() + client.timeout
            while leader.get("is_leader") or (not leader.get("leader") and time.monotonic() < deadline):
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
                leader = client.leader()
    except AgentUnreachable as exc:
        print(_unreachable_message(exc, args), file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        print("leaderd: the agent answered with an error: %s" % exc, file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(dict(reply, leader=leader), sort_keys=True))
        return EXIT_OK
    print("maintenance %s%s" % (args.state, "" if reply["persisted"] else
                                " (this agent has no state file: a restart ends it)"))
    if leader.get("is_leader"):
        print("this node still leads (term %s): no other eligible node took over yet" % leader.get("term"))
    else:
        print("leader: %s (term %s)" % (leader.get("leader") or "none yet", leader.get("term")))
    return EXIT_OK


# --- exec ------------------------------------------------------------------

def add_exec(sub):
    from agent.execcmd import LOST_AFTER_S, RESTART_POLICIES
    p = sub.add_parser(
        "exec", help="run a command while this node leads, and only then",
        usage="leaderd exec [--grace D] [--restart POLICY] [--socket PATH | --config FILE] -- CMD [ARGS...]",
        description="Run CMD while the local agent says this node leads: start it when the node is "
                    "elected, stop it when the node stops leading, and start it again on re-election. "
                    "CMD runs in a process group of its own; stopping sends SIGTERM to the whole group "
                    "and SIGKILL after --grace, so grandchildren do not linger. CMD gets LEADERD_TERM "
                    "(the term it was started under: the fencing token), LEADERD_SELF and "
                    "LEADERD_LEADER in its environment; its output passes through. If the agent "
                    "cannot be reached (gone, or no answer for %g s) CMD is stopped: this node cannot "
                    "know it still leads. SIGINT or SIGTERM stops CMD first, then leaderd exec exits "
                    "with CMD's exit status (128 + N if a signal N ended it; 0 if it never ran)."
                    % LOST_AFTER_S)
    _add_socket(p, timeout=False)
    p.add_argument("--grace", metavar="D", default="5s",
                   help="time from SIGTERM to SIGKILL when stopping CMD, e.g. 10s (default: 5s)")
    p.add_argument("--restart", choices=RESTART_POLICIES, default="on-failure",
                   help="when CMD exits by itself while this node leads: start it again after 1 s if it "
                        "failed (on-failure, the default), whatever its status (always), or not until "
                        "the node is elected again (never)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]",
                   help="the command to run on the leader")
    p.set_defaults(func=cmd_exec)


def cmd_exec(args):
    from agent.client import AsyncClient
    from agent.durations import parse_duration
    from agent.execcmd import POLL_INTERVAL_S, run_exec
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("leaderd exec: no command given: leaderd exec [options] -- CMD [ARGS...]", file=sys.stderr)
        return EXIT_USAGE
    try:
        grace_ms = parse_duration(args.grace)
    except ValueError as exc:
        print("leaderd exec: --grace: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        client = _client(args, AsyncClient, POLL_INTERVAL_S)
    except _UsageError as exc:
        print("leaderd exec: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    return run_exec(client, command, grace_ms / 1000.0, args.restart)


# --- keygen / check-config -------------------------------------------------

def add_keygen(sub):
    p = sub.add_parser("keygen", help="create a node's Ed25519 key pair, or a cluster key",
                       description="Write NAME.key (mode 0600: the base64 raw Ed25519 seed) and "
                                   "NAME.pub (the base64 raw public key) into DIR; copy NAME.pub into "
                                   "every node's trusted_keys_dir. With --cluster-key, print a new "
                                   "random cluster key for a keyring file instead.")
    p.add_argument("--name", help="the node's name (as in node.name)")
    p.add_argument("--out", metavar="DIR", default=".", help="where to write the files (default: .)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--cluster-key", action="store_true", help="print a new cluster (HMAC) key line")
    p.set_defaults(func=cmd_keygen)


def cmd_keygen(args):
    from agent import keys
    from agent.core import rules
    if args.cluster_key:
        print(keys.generate_cluster_key())
        return EXIT_OK
    if args.name is None:
        print("leaderd keygen: --name NODE is required (or --cluster-key)", file=sys.stderr)
        return EXIT_USAGE
    # node.name's rule (the key files are NAME.key and NAME.pub): a bad name is a
    # bad argument, exit 2 as in the exit-code table; 1 is for files that cannot be written.
    problem = rules.name_problem(args.name)
    if problem is not None:
        print("leaderd keygen: --name %r is not a valid node.name: %s" % (args.name, problem), file=sys.stderr)
        return EXIT_USAGE
    try:
        key_path, pub_path = keys.keygen(args.name, args.out, force=args.force)
    except (OSError, ValueError) as exc:
        print("leaderd keygen: %s" % exc, file=sys.stderr)
        return EXIT_FAILURE
    print("wrote %s (private, 0600) and %s (public)" % (key_path, pub_path))
    return EXIT_OK


def add_check_config(sub):
    p = sub.add_parser("check-config", help="validate a config file without starting",
                       description="Validate a config file, the files it names (keys, keyring) and "
                                   "the programs it runs (hooks, health check: they must exist and be "
                                   "executable by this user), without starting; seed host names that "
                                   "do not resolve are warnings. Exit 0 if valid, 2 with one message "
                                   "per problem (naming the key, the bad value and what is allowed) "
                                   "if not. With --json, print the verdict as one object on stdout: "
                                   "{file, valid, errors, warnings, config} (config is null when the "
                                   "file does not parse; api.mode is written \"0660\").")
    p.add_argument("file", metavar="FILE")
    _add_json(p)
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args):
    from agent import config
    cfg, errors, warnings = None, [], []
    try:
        cfg = config.load_config(args.file)
    except config.ConfigError as exc:
        errors.extend(exc.errors)
    if cfg is not None:
        try:
            warnings.extend(config.load_runtime(cfg).warnings)
        except config.ConfigError as exc:
            errors.extend(exc.errors)
        more_errors, more_warnings = config.check_installation(cfg)
        errors.extend(more_errors)
        warnings.extend(more_warnings)
    if args.json:
        print(json.dumps({"file": args.file, "valid": not errors, "errors": errors, "warnings": warnings,
                          "config": None if cfg is None else cfg.as_dict()}, sort_keys=True))
    else:
        for error in errors:
            print("%s: %s" % (args.file, error), file=sys.stderr)
        for warning in warnings:
            print("warning: %s" % warning, file=sys.stderr)
        if not errors:
            print("%s: valid (node %s, cluster %s, profile %s)" % (
                args.file, cfg.node.name, cfg.cluster.name, cfg.gossip.profile.name))
    return EXIT_USAGE if errors else EXIT_OK


# --- ping -----------------------------------------------------------------

def add_ping(sub):
    p = sub.add_parser("ping", help="send one probe to a remote agent and print the round trip",
                       description="Send one SWIM ping (authenticated when a keyring is given) to the "
                                   "agent at HOST:PORT and print who answered and the round-trip "
                                   "time, or a clear timeout. Uses the cluster name and keyring of "
                                   "--config, or --cluster / --keyring.")
    p.add_argument("target", metavar="HOST:PORT")
    p.add_argument("--config", metavar="FILE", help="take cluster name and keyring from this config")
    p.add_argument("--cluster", help="cluster name (default: from --config, else \"default\")")
    p.add_argument("--keyring", metavar="FILE", help="keyring file (default: from --config)")
    p.add_argument("--timeout", default="2s", help="how long to wait (default 2s)")
    p.set_defaults(func=cmd_ping)


def cmd_ping(args):
    from agent import ping
    from agent.durations import parse_duration
    try:
        host, port = ping.parse_target(args.target)
        timeout_s = parse_duration(args.timeout) / 1000.0
        cluster, keyring = ping.cluster_and_keyring(args.config, args.cluster, args.keyring)
    except (OSError, ValueError) as exc:
        print("leaderd ping: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(ping.ping(host, port, cluster, keyring, timeout_s))
    except ConnectionRefusedError:
        print("leaderd ping: %s:%d: connection refused: nothing listens on that UDP port (the agent "
              "is down, or its node.bind port is another)" % (host, port), file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print("leaderd ping: %s:%d: %s" % (host, port, exc), file=sys.stderr)
        return EXIT_FAILURE
    if result is None:
        print("no answer from %s:%d within %.1fs (wrong address or port, firewall, other cluster "
              "name, or other keyring: a peer drops what it cannot authenticate)"
              % (host, port, timeout_s), file=sys.stderr)
        return EXIT_FAILURE
    name, rtt_ms = result
    print("answer from %s at %s:%d: %.2f ms" % (name, host, port, rtt_ms))
    return EXIT_OK


COMMANDS = (
    ("run", add_run),
    ("leader", add_leader),
    ("members", add_members),
    ("status", add_status),
    ("watch", add_watch),
    ("is-leader", add_is_leader),
    ("exec", add_exec),
    ("maintenance", add_maintenance),
    ("transfer", add_transfer),
    ("keygen", add_keygen),
    ("check-config", add_check_config),
    ("ping", add_ping),
    ("demo", add_demo),
)
