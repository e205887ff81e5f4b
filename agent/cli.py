"""The `leaderd` command line: one function per subcommand, named exit codes.

Each subcommand is a pair registered in COMMANDS: `add_<name>(subparsers)`
builds its parser and sets `func=cmd_<name>`; `cmd_<name>(args)` runs it and
returns an exit code. The agent's subcommands (run, leader, members, ...) are
in agent/commands.py; `simulate` is here.
`main(argv=None)` is the console-script entry point; it returns the exit code
instead of raising SystemExit, so tests can call it directly.
"""

import argparse
import json
import sys
import textwrap
import traceback

from agent import __version__, commands
from agent.durations import format_duration, parse_duration
from agent.exitcodes import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

PROG = "leaderd"


# -- argument types (each raises ArgumentTypeError with a clear message) ----

def _node_count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of nodes, got %r" % (text,))
    if value < 2:
        raise argparse.ArgumentTypeError("must be at least 2 (a cluster needs two nodes), got %d" % value)
    return value


def _loss(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a probability like 0.1, got %r" % (text,))
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be in [0, 1) (0.1 = 10 %% of datagrams lost), got %s" % (text,))
    return value


def _duration(text):
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))
    if value <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0, got %r" % (text,))
    return value


def _preempt_delay(text):
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _seed(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer, got %r" % (text,))


# -- leaderd simulate ---------------------------------------------------------

SIMULATE_DESCRIPTION = """\
Run N copies of the real protocol core (agent/core) over a deterministic
virtual network in virtual time: the same seed and arguments give the same
result. Nodes start at random times in the first second and join through the
first three nodes. Each node has a real Ed25519 key (derived from the seed
and its name) and trusts every node's key, so claims are signed and verified
as in production; --insecure runs without keys (unsigned claims). A
scenario's fault happens once the cluster has converged and settled; its
timings follow from the profile and the cluster size.

All times are virtual seconds, except wall_s (real seconds the run took)."""

SIMULATE_FIELDS = """\
--json prints one object; among its keys:
  convergence_s      start until every live node sees every live node alive
  detect_first_s     crash until the first live node marks the node dead
  detect_all_s       crash until every live node has marked it dead
  failover_s         leader crashed, paused or left (resign: from the leave)
                     until every live node reports the same new leader
  false_suspicions   suspicions a node raised itself (its own probe failed)
                     about a node that was up and reachable from it, without
                     a break, for the whole probe (at its longest)
  false_deaths       deaths a node declared itself (its own suspicion timed
                     out) about a node up and reachable from it for the whole
                     suspicion (its maximum, plus the probe that began it);
                     news of a death from others is not a new death
  false_suspicions_seen, false_deaths_seen
                     every suspected / died event, at every node, about a
                     node up and reachable at that moment (the older count)
  leader_changes     changes of the agreed leader after first convergence
  leader_at_end      the leader every live node reports at the end, or null
  term_regressions   times a node followed a lower term than before (must be 0)
  max_leaders_at_once  most live nodes leading at one moment (2 in a partition)
  msgs_per_node_s    datagrams (bytes_per_node_s: bytes) sent per node per second
  rejoin_s, heal_s   pause/restart/preempt: until all see the node alive again;
                     partition-heal: from heal until all see all alive
  heal_leader_s      partition-heal: from heal until all follow one leader
  preempt_s          preempt: restart until all follow the returning node
                     (null with --no-preempt: the sitting leader stays)
  transfer_s         transfer: hand-over until all follow transfer_to
  forged_rejected    forged: claims refused by the nodes (sum of their
                     claims_rejected_* counters); forger_followed and
                     forged_term_adopted must stay 0
A time that does not apply (or was not reached) is null."""


def add_simulate(subparsers):
    """Register `leaderd simulate`."""
    from agent.sim.scenarios import SCENARIOS

    scenario_lines = "\n".join(
        textwrap.fill(SCENARIOS[name][1], width=79, initial_indent="  %-16s " % name,
                      subsequent_indent=" " * 19)
        for name in SCENARIOS)
    parser = subparsers.add_parser(
        "simulate",
        help="run the real core on a simulated network (deterministic, virtual time)",
        description=SIMULATE_DESCRIPTION,
        epilog="scenarios:\n%s\n\n%s\n\nexample:\n  leaderd simulate --nodes 100 --scenario crash-leader --json"
        % (scenario_lines, SIMULATE_FIELDS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=_node_count, required=True, metavar="N",
                        help="number of nodes, at least 2")
    parser.add_argument("--profile", choices=("lan", "wan", "local"), default="lan",
                        help="timing profile of every node (default: lan)")
    parser.add_argument("--loss", type=_loss, default=0.0, metavar="F",
                        help="probability in [0, 1) that any datagram is lost (default: 0)")
    parser.add_argument("--scenario", choices=tuple(SCENARIOS), default="steady", metavar="S",
                        help="what goes wrong, one of: %s (default: steady; see below)" % ", ".join(SCENARIOS))
    parser.add_argument("--duration", type=_duration, default=None, metavar="D",
                        help='virtual time to simulate, e.g. "90s", "5m"; a bare number is seconds '
                             "(default: enough for the scenario, at least 60s)")
    parser.add_argument("--seed", type=_seed, default=1, metavar="K",
                        help="random seed; same seed and arguments, same result (default: 1)")
    parser.add_argument("--insecure", action="store_true",
                        help="no keys: every node runs unsigned (insecure) claims, as a node "
                             "without a trust list does (default: real Ed25519 keys)")
    parser.add_argument("--no-preempt", dest="preempt", action="store_false",
                        help="build every node with preempt off: a better node that returns "
                             "does not take the role from the sitting leader")
    parser.add_argument("--preempt-delay", type=_preempt_delay, default=None, metavar="D",
                        help="how long a better node must be up before it takes the role over, "
                             'e.g. "5s" (default: 5s, as election.preempt_delay)')
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON object instead of a summary")
    parser.set_defaults(func=cmd_simulate)
    return parser


def cmd_simulate(args):
    """`leaderd simulate`: run one scenario and print its figures."""
    from agent.sim import simulate

    try:
        result = simulate(args.nodes, profile=args.profile, loss=args.loss, scenario=args.scenario,
                          duration_ms=args.duration, seed=args.seed, insecure=args.insecure,
                          preempt=args.preempt, preempt_delay_ms=args.preempt_delay)
    except ValueError as exc:
        print("%s simulate: error: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        traceback.print_exc()
        print("%s simulate: error: the simulation failed (seed %d); the traceback above says where"
              % (PROG, args.seed), file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(result))
    else:
        print(format_simulation(result))
    return EXIT_OK


def _seconds(value):
    return "-" if value is None else "%.3f s" % value


def format_simulation(result):
    """The short human summary of a simulation report (aligned label / value lines)."""
    head = "%d nodes, profile %s, scenario %s, loss %g, seed %d, %s of virtual time" % (
        result["nodes"], result["profile"], result["scenario"], result["loss"], result["seed"],
        format_duration(int(round(result["duration_s"] * 1000))))
    if result.get("insecure"):
        head += ", insecure (unsigned claims)"
    if result.get("preempt") is False:
        head += ", no preempt"
    rows = [("convergence", _seconds(result["convergence_s"]))]
    if result.get("fault_at_s") is not None:
        fault = "at %s" % _seconds(result["fault_at_s"])
        if result.get("fault_node"):
            fault += " on %s" % result["fault_node"]
        rows.append(("fault", fault))
    rows += [
        ("detect first", _seconds(result["detect_first_s"])),
        ("detect all", _seconds(result["detect_all_s"])),
        ("failover", _seconds(result["failover_s"])),
    ]
    if result.get("rejoin_s") is not None or result["scenario"] in ("pause", "restart"):
        rows.append(("rejoin", _seconds(result.get("rejoin_s"))))
    if result.get("heal_s") is not None or result["scenario"] == "partition-heal":
        rows.append(("heal", _seconds(result.get("heal_s"))))
        rows.append(("heal, one leader", _seconds(result.get("heal_leader_s"))))
    if result["scenario"] == "preempt":
        rows.append(("preempt", _seconds(result.get("preempt_s"))))
    if "flaps" in result:
        rows.append(("flaps", "%d pauses of %s" % (result["flaps"], _seconds(result.get("flap_pause_s")))))
    if "forged_rejected" in result:
        rows.append(("forged claims", "%d sent, %d rejected, followed %d times"
                     % (result["forged_sent"], result["forged_rejected"], result["forger_followed"])))
    rows += [
        ("false suspicions", str(result["false_suspicions"])),
        ("false deaths", str(result["false_deaths"])),
        ("leader changes", "-" if result["leader_changes"] is None else str(result["leader_changes"])),
    ]
    if result.get("term_regressions") is not None:
        rows.append(("term regressions", str(result["term_regressions"])))
        rows.append(("most leaders at once", str(result["max_leaders_at_once"])))
    if result.get("election"):
        rows.append(("leader at end", result.get("leader_at_end") or "(no agreement)"))
    rows += [
        ("traffic", "%.1f datagrams, %.0f bytes per node per second"
         % (result["msgs_per_node_s"], result["bytes_per_node_s"])),
        ("largest datagram", "%d bytes" % result["max_datagram_bytes"]),
        ("wall time", "%.3f s" % result["wall_s"]),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [head]
    for label, value in rows:
        lines.append("  %-*s  %s" % (width, label, value))
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------

# (name, add_<name>) in the order --help lists them; each add_ sets func=cmd_<name>.
# The agent's client and daemon subcommands live in agent/commands.py.
COMMANDS = tuple(commands.COMMANDS) + (
    ("simulate", add_simulate),
)


def build_parser():
    """The top-level `leaderd` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="leaderd: leader election for fleets of small machines "
                    "(SWIM + Lifeguard gossip, signed claims).",
    )
    parser.add_argument("--version", action="version", version="%s %s" % (PROG, __version__))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `leaderd` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse prints it)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
