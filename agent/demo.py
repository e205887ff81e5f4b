"""`leaderd demo`: a real cluster on loopback that shows election and failover live.

What a newcomer runs first. A local cluster (agent/localcluster.py) writes
Ed25519 keys, a trust directory, a cluster keyring and one config per node
into a temporary directory and starts N real agents (`python -m agent.cli run
--config FILE`) on 127.0.0.1 with the `local` profile; the demo asks every
agent over its UNIX socket, many times a second, who leads. Nothing on screen
is simulated: the table is what the agents answer.

The schedule is in DESCRIPTION (`leaderd demo --help`).

Whatever ends it (the schedule, Ctrl-C, SIGTERM, an error), the agents it
started are stopped (SIGTERM, then SIGKILL) and the directory is removed
unless --keep. Signal handlers only record the signal; the polling loop acts.
"""

import argparse
import collections
import os
import shutil
import signal
import sys
import threading
import time

from agent.exitcodes import EXIT_FAILURE, EXIT_OK

MIN_NODES, MAX_NODES, DEFAULT_NODES = 2, 20, 5
BASE_PRIORITY, PRIORITY_STEP = 100, 10  # node-K: 100 + 10 (K - 1), so node-N leads
PREEMPT_DELAY = "2s"                    # long enough to see the returning node wait
PREEMPT_DELAY_S = 2.0

FAST_POLL_S = 0.02       # while timing a change: every agent, every 20 ms
SLOW_POLL_S = 0.1        # in between
REFRESH_S = 0.25         # redraw of the live table
CLIENT_TIMEOUT_S = 0.5   # one API call: a dead agent refuses at once, a hung one costs this
STOP_TIMEOUT_S = 3.0     # SIGTERM, then SIGKILL after this
UP_TIMEOUT_S = 20.0      # the cluster forms within this
CHANGE_TIMEOUT_S = 15.0  # a failover, rejoin or preempt completes within this
LOG_TAIL_LINES = 15      # of each agent's log, when the demo fails
LOG_TAIL_BYTES = 16384

# (steady state before the crash, pause between steps); --fast is for tests.
SCHEDULE = (5.0, 3.0)
FAST_SCHEDULE = (0.5, 0.3)

POINTER = "run `leaderd simulate --nodes 100 --scenario crash-leader` to see it at scale"

DESCRIPTION = """\
Start a local cluster of real agents on 127.0.0.1 and show, live, what each
one answers: the members and their states (as node-1 sees them), the leader
and the term (the fencing token) as each agent reports them over its socket.

With no arguments: 5 agents node-1..node-5 with priorities 100..140 (node-5
leads), profile local, signed claims (an Ed25519 key per node and a trust
directory) and authenticated packets (a cluster keyring), preempt after 2s;
every file is generated in a temporary directory. Then, in about 30 s:

  1. steady state: node-5 leads;
  2. SIGKILL node-5: crash failover, timed from the kill until every surviving
     agent's socket names the same new leader (all polled every 20 ms);
  3. restart node-5 (same name, same config): it rejoins (every agent sees it
     alive again) and, after preempt_delay, takes the lead back (preempt);
  4. SIGTERM node-5: planned handover (it resigns, then leaves), timed the
     same way; then it is restarted once more;
  5. a summary of the measured times.

On a terminal the table redraws in place; otherwise (or with --no-tui) it
prints one line per change. Ctrl-C stops it at any time. Either way every
agent it started is stopped and the temporary directory removed."""

EPILOG = """\
afterwards:
  %s

examples:
  leaderd demo
  leaderd demo --nodes 3 --no-tui
  leaderd demo --keep        # inspect the configs, keys and node-K.log files after""" % POINTER


class DemoError(Exception):
    """A step of the demo did not happen in time, or an agent died; the message says which."""


class Interrupted(Exception):
    """The demo received SIGINT or SIGTERM."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# -- arguments -----------------------------------------------------------------

def _node_count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of nodes, got %r" % (text,))
    if not MIN_NODES <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError("must be %d..%d, got %d" % (MIN_NODES, MAX_NODES, value))
    return value


def add_demo(subparsers):
    """Register `leaderd demo`."""
    parser = subparsers.add_parser(
        "demo", help="start a local cluster on loopback and show election and failover live",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=_node_count, default=DEFAULT_NODES, metavar="N",
                        help="number of agents, %d..%d (default: %d)" % (MIN_NODES, MAX_NODES, DEFAULT_NODES))
    parser.add_argument("--no-tui", action="store_true",
                        help="print one line per change instead of redrawing a table "
                             "(the default when stdout is not a terminal)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (configs, keys, logs) and print its path")
    # Shortens the pauses between steps (not the protocol's timings): for tests.
    parser.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(func=cmd_demo)
    return parser


def cmd_demo(args):
    """`leaderd demo`: run the schedule; returns 0, 1 on failure, 128 + signal when stopped."""
    tty = sys.stdout.isatty() and not args.no_tui and os.environ.get("TERM") != "dumb"
    demo = Demo(args.nodes, tty=tty, keep=args.keep, schedule=FAST_SCHEDULE if args.fast else SCHEDULE)
    return demo.main()


# -- the cluster ------------------------------------------------------------------

# Beside the keys of each node's config, for whoever reads it (--keep).
CONFIG_HEADER = "leaderd demo: {name} of a {n}-node cluster on loopback."
CONFIG_COMMENTS = {
    "node.priority": "the highest live priority leads",
    "cluster.keyring_file": "HMAC key authenticating every packet",
    "election.preempt_delay": "a returning higher-priority node takes over after this",
    "election.signing_key_file": "this node signs its claims",
    "election.trusted_keys_dir": "claims are accepted from these keys only",
    "gossip.profile": "probes every 200 ms: one host, tiny RTT",
}


def make_cluster(count, root=None, keep=False):
    """The demo's cluster, files written, nothing started (agent/localcluster.py).

    node-1..node-N with priorities 100, 110, ... (node-N leads), profile
    local, signed claims, an authenticated keyring, preempt after
    PREEMPT_DELAY; in a new temporary directory unless root is given. The
    agents get SIGTERM if the demo itself dies (even by SIGKILL).
    """
    from agent import localcluster  # not at import: `leaderd` loads this module for every subcommand
    return localcluster.Cluster(
        root, count, names=["node-%d" % (i + 1) for i in range(count)],
        priorities=[BASE_PRIORITY + PRIORITY_STEP * i for i in range(count)], cluster_name="demo",
        profile="local", preempt_delay=PREEMPT_DELAY, comments=CONFIG_COMMENTS, header=CONFIG_HEADER,
        prefix="leaderd-demo-", keep=keep, parent_death_signal=signal.SIGTERM)


# -- what the agents answer ------------------------------------------------------

class Snapshot:
    """What every running agent answered in one polling round."""

    def __init__(self, at, leaders, members):
        self.at = at              # time.monotonic() when the round ended
        self.leaders = leaders    # {agent: (leader or None, term)}, agents that answered
        self.members = members    # {agent: {member: state}}, agents that answered

    def agreed(self, names):
        """The (leader, term) every agent in names reports, or None (no answer, no leader, dissent)."""
        views = set()
        for name in names:
            view = self.leaders.get(name)
            if view is None or view[0] is None:
                return None
            views.add(view)
        return views.pop() if len(views) == 1 else None

    def everyone_sees(self, names, member, states):
        """True when every agent in names answered and reports member in one of states."""
        return all(name in self.members and self.members[name].get(member) in states for name in names)


# -- the demo -------------------------------------------------------------------

class Demo:
    """One run of the demo: files, processes, the polling loop, the display."""

    def __init__(self, count, tty=False, keep=False, schedule=SCHEDULE, out=None):
        self.count = count
        self.tty = tty
        self.keep = keep
        self.steady_s, self.settle_s = schedule
        self.out = out or sys.stdout
        self.color = tty and "NO_COLOR" not in os.environ
        self.cluster = None         # the agent/localcluster.py Cluster, once its files exist
        self.workdir = None
        self.nodes = []
        self.phase = {}             # name -> not started | starting | up | killed | stopping | stopped | exited N
        self.observer = None
        self.started_at = time.monotonic()
        self.snapshot = Snapshot(self.started_at, {}, {})
        self.status = "preparing"
        self.status_since = self.started_at
        self.finished = False
        self.events = collections.deque(maxlen=8)
        self.results = collections.OrderedDict()  # label -> (seconds, detail)
        self.agreed = None          # the last (leader, term) all serving agents agreed on
        self.last_view = None
        self.last_render = 0.0
        self.screen_lines = 0
        self.signals = []
        self._old_handlers = {}

    # --- the whole run -------------------------------------------------------

    def main(self):
        """Runs the schedule, always cleans up; returns the exit code."""
        from agent.localcluster import WaitTimeout
        code, failure, stopped = EXIT_OK, None, 0
        self._install_signal_handlers()
        try:
            try:
                self.run()
            except Interrupted as exc:
                code = 128 + exc.signum
                self.set_status("interrupted (%s): stopping the agents" % exc)
            except (DemoError, WaitTimeout, OSError) as exc:  # OSError: files or processes could not be made
                code, failure = EXIT_FAILURE, exc
                self.set_status("failed: %s" % exc)
            finally:
                self.finished = True
                self.render(force=True)
                if self.tty:
                    self.screen_lines = 0  # the last frame stays; what follows goes below it
                    self.out.write("\x1b[?25h")  # show the cursor again
                    self.out.flush()
                if failure is not None:
                    self.report_failure(failure)  # before cleanup removes the logs
                stopped = self.cleanup()
        finally:
            self._restore_signal_handlers()
        self.print_summary(code, stopped)
        return code

    def run(self):
        """The schedule: start, steady, crash, restart, planned handover, restart."""
        self.setup()
        for node in self.nodes:
            self.start(node)
        names = [node.name for node in self.nodes]
        top = self.nodes[-1]

        def formed(snap):
            return (snap.agreed(names) is not None and snap.agreed(names)[0] == top.name
                    and all(snap.everyone_sees(names, name, ("alive",)) for name in names))

        self.set_status("starting %d agents: they join through each other, then %s claims the lead"
                        % (self.count, top.name))
        marks = self.wait_for({"up": formed}, UP_TIMEOUT_S, "the cluster to form", fast=False)
        self.event("cluster up after %.2f s: %s leads (term %d), every agent sees %d members alive"
                   % (marks["up"] - self.started_at, top.name, self.agreed[1], self.count))
        self.set_status("steady state: %s leads; each agent answers `who leads?` on its socket" % top.name)
        self.hold(self.steady_s)

        self.crash(top)
        self.restart(top, "crash")
        self.set_status("steady state: %s leads again" % top.name)
        self.hold(self.settle_s)
        self.handover(top)
        self.restart(top, "handover")
        self.set_status("finished: %s leads again; the summary follows" % top.name)
        self.hold(self.settle_s)

    def setup(self):
        """Writes keys, trust directory, keyring and configs into a new temporary directory."""
        self.cluster = make_cluster(self.count, keep=self.keep)
        self.workdir = self.cluster.root
        self.nodes = self.cluster.nodes
        self.phase = {node.name: "not started" for node in self.nodes}
        self.observer = self.nodes[0]  # the lowest priority: never the leader, never stopped
        self.event("files in %s%s" % (self.workdir, " (kept at exit)" if self.keep else " (removed at exit)"))

    def start(self, node):
        """Starts node's agent as a subprocess logging to its node-K.log."""
        proc = self.cluster.start(node.index, wait=False)
        self.phase[node.name] = "starting"
        self.event("started %s pid %d (priority %d, 127.0.0.1:%d)"
                   % (node.name, proc.pid, node.priority, node.port))

    def running(self, node):
        """Started and not known to have exited (it may be leaving)."""
        return self.phase[node.name] in ("starting", "up", "stopping")

    def serving(self, node):
        """Started and not being stopped: a member that should answer and agree."""
        return self.phase[node.name] in ("starting", "up")

    # --- the steps -----------------------------------------------------------

    def crash(self, leader):
        """SIGKILL the leader; time until the survivors agree on a new one and mark it dead."""
        survivors = [n.name for n in self.nodes if self.serving(n) and n is not leader]
        old_term = self.agreed[1]
        self.cluster.kill(leader.index, wait=False)
        killed_at = time.monotonic()
        self.phase[leader.name] = "killed"
        self.cluster.wait_exit(leader.index)
        self.event("killed %s (the leader, pid %d) with SIGKILL" % (leader.name, leader.proc.pid))
        self.set_status("%s was killed: waiting until %s agree on a new leader"
                        % (leader.name, _span(survivors)))

        def failover(snap):
            view = snap.agreed(survivors)
            return view is not None and view[0] != leader.name and view[1] > old_term

        marks = self.wait_for({"failover": failover,
                               "detected": lambda s: s.everyone_sees(survivors, leader.name, ("dead",))},
                              CHANGE_TIMEOUT_S, "the survivors to replace %s" % leader.name)
        new = self.agreed
        self.result("crash failover", marks["failover"] - killed_at,
                    "SIGKILL of %s until %s agreed on %s (term %d)" % (leader.name, _span(survivors), new[0], new[1]))
        self.event("every survivor marked %s dead %.3f s after the kill" % (leader.name, marks["detected"] - killed_at))
        self.set_status("%s leads; %s is down" % (new[0], leader.name))
        self.hold(self.settle_s)

    def restart(self, node, after):
        """Start node again (same name, config and port); time its rejoin and its preempt."""
        self.start(node)
        started_at = time.monotonic()
        others = [n.name for n in self.nodes if self.serving(n) and n is not node]
        everyone = others + [node.name]
        self.set_status("%s restarted: it rejoins, then takes the lead back after preempt_delay %s"
                        % (node.name, PREEMPT_DELAY))
        marks = self.wait_for(
            {"rejoin": lambda s: node.name in s.leaders and s.everyone_sees(others, node.name, ("alive",)),
             "preempt": lambda s: (s.agreed(everyone) or (None,))[0] == node.name},
            CHANGE_TIMEOUT_S + PREEMPT_DELAY_S, "%s to rejoin and take the lead back" % node.name)
        rejoin, preempt = marks["rejoin"] - started_at, marks["preempt"] - started_at
        self.event("%s rejoined %.3f s after its restart and took the lead back after %.3f s (term %d)"
                   % (node.name, rejoin, preempt, self.agreed[1]))
        if after == "crash":
            self.result("rejoin", rejoin, "restart of %s until every agent saw it alive again" % node.name)
            self.result("preempt", preempt, "restart of %s until all agreed on it again (preempt_delay %s)"
                        % (node.name, PREEMPT_DELAY))

    def handover(self, leader):
        """SIGTERM the leader: it resigns and leaves; time until the others agree on a new leader."""
        survivors = [n.name for n in self.nodes if self.serving(n) and n is not leader]
        old_term = self.agreed[1]
        self.cluster.send_signal(leader.index, signal.SIGTERM)
        signalled_at = time.monotonic()
        self.phase[leader.name] = "stopping"
        self.event("sent SIGTERM to %s (the leader, pid %d): it resigns, then leaves"
                   % (leader.name, leader.proc.pid))
        self.set_status("%s resigns and leaves: waiting until %s agree on a new leader"
                        % (leader.name, _span(survivors)))

        def handed_over(snap):
            view = snap.agreed(survivors)
            return view is not None and view[0] != leader.name and view[1] > old_term

        marks = self.wait_for({"handover": handed_over, "exited": lambda s: not self.cluster.running(leader.index)},
                              CHANGE_TIMEOUT_S, "the others to take over from %s" % leader.name)
        new = self.agreed
        self.result("planned handover", marks["handover"] - signalled_at,
                    "SIGTERM to %s until %s agreed on %s (term %d)" % (leader.name, _span(survivors), new[0], new[1]))
        self.event("%s exited with code %d, %.3f s after SIGTERM"
                   % (leader.name, leader.proc.returncode, marks["exited"] - signalled_at))
        self.phase[leader.name] = "stopped"
        self.set_status("%s leads; %s has left" % (new[0], leader.name))
        self.hold(self.settle_s)

    # --- the polling loop ----------------------------------------------------

    def wait_for(self, conditions, timeout_s, what, fast=True):
        """Polls until every condition (a predicate of a Snapshot) has held once.

        Returns {label: time.monotonic() of the first round where it held};
        raises DemoError naming `what` and the missing conditions on timeout.
        """
        from agent import localcluster
        marks = {}

        def all_seen():
            snap = self.step()
            for label, holds in conditions.items():
                if label not in marks and holds(snap):
                    marks[label] = snap.at
            return len(marks) == len(conditions)
        try:
            localcluster.wait_for(all_seen, timeout_s, what, interval=FAST_POLL_S if fast else SLOW_POLL_S,
                                  pause=self.pause, errors=())
        except localcluster.WaitTimeout:
            missing = ", ".join(label for label in conditions if label not in marks)
            raise DemoError("waited %.0f s for %s (not seen: %s); last seen: %s"
                            % (timeout_s, what, missing, self.view_line(self.snapshot))) from None
        return marks

    def hold(self, seconds):
        """Keeps polling and showing for `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            snap = self.step()
            if snap.at >= deadline:
                return
            self.pause(min(SLOW_POLL_S, deadline - snap.at))

    def pause(self, interval):
        """Sleeps interval seconds in slices, acting on a signal at once."""
        until = time.monotonic() + interval
        while True:
            self._check_signals()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def step(self):
        """One round: signals, unexpected exits, a poll, the display."""
        self._check_signals()
        for node in self.nodes:
            if self.serving(node) and not self.cluster.running(node.index):
                self.phase[node.name] = "exited %d" % node.proc.returncode
                raise DemoError("%s (pid %d) exited unexpectedly with code %d"
                                % (node.name, node.proc.pid, node.proc.returncode))
        snap = self.poll()
        self.snapshot = snap
        serving = [n.name for n in self.nodes if self.serving(n)]
        view = snap.agreed(serving)
        if view is not None and view != self.agreed:
            if self.agreed is None:
                self.event("all agents agree: %s leads (term %d)" % view)
            else:
                self.event("leader changed: %s -> %s (term %d -> %d)"
                           % (self.agreed[0], view[0], self.agreed[1], view[1]))
            self.agreed = view
        if self.tty:
            self.render()
        else:
            line = self.view_line(snap)
            if line != self.last_view:
                self.last_view = line
                self._print("view  " + line)
        return snap

    def poll(self):
        """One round: asks every running agent who leads and which members it sees."""
        from agent.client import ClientError
        leaders, members = {}, {}
        for node in self.nodes:
            if not self.running(node):
                continue
            client = self.cluster.client(node.index, timeout=CLIENT_TIMEOUT_S)
            try:
                reply = client.leader()
                leaders[node.name] = (reply.get("leader"), reply.get("term"))
                members[node.name] = {m["name"]: m["state"] for m in client.members()["members"]}
            except (ClientError, KeyError, TypeError):
                continue
            if self.phase[node.name] == "starting":
                self.phase[node.name] = "up"
        return Snapshot(time.monotonic(), leaders, members)

    # --- signals -------------------------------------------------------------

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self):
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers = {}

    def _on_signal(self, signum, frame):
        self.signals.append(signum)  # only record: the loop acts

    def _check_signals(self):
        if self.signals:
            raise Interrupted(self.signals[0])

    # --- cleanup -------------------------------------------------------------

    def cleanup(self):
        """Stops every agent still running (SIGTERM, then SIGKILL) and removes the files.

        A second Ctrl-C while it waits skips straight to SIGKILL. Returns how
        many agents it stopped.
        """
        if self.cluster is None:
            return 0
        seen = len(self.signals)
        stopped = self.cluster.stop_all(STOP_TIMEOUT_S, interrupted=lambda: len(self.signals) > seen)
        for node in self.nodes:
            if self.running(node):
                self.phase[node.name] = "stopped"
        self.cluster.close()  # removes the directory unless --keep
        return stopped

    # --- output --------------------------------------------------------------

    def elapsed(self):
        return time.monotonic() - self.started_at

    def event(self, text):
        """Something happened: into the table's event list, or one printed line."""
        self.events.append((self.elapsed(), text))
        if self.tty:
            self.render(force=True)
        else:
            self._print(text)

    def set_status(self, text):
        """What the demo is doing now."""
        if text == self.status:
            return
        self.status = text
        self.status_since = time.monotonic()
        if self.tty:
            self.render(force=True)
        else:
            self._print("== " + text)

    def result(self, label, seconds, detail):
        """A measured time: into the summary, and announced now."""
        self.results[label] = (seconds, detail)
        self.event("%s: %.3f s (%s)" % (label, seconds, detail))

    def _print(self, text):
        print("%7.2fs  %s" % (self.elapsed(), text), file=self.out, flush=True)

    def view_line(self, snap):
        """One compact line: the observer's member states and each agent's leader, grouped."""
        seen = snap.members.get(self.observer.name)
        states = "no answer" if seen is None else ", ".join(
            "%s %s" % (n.name, seen.get(n.name, "unknown")) for n in self.nodes)
        groups = collections.OrderedDict()
        for node in self.nodes:
            if not self.running(node):
                key = self.phase[node.name]
            elif node.name not in snap.leaders:
                key = "no answer"
            else:
                leader, term = snap.leaders[node.name]
                key = "say %s (term %s)" % (leader or "no leader", term)
            groups.setdefault(key, []).append(node.name)
        leaders = "; ".join("%s %s" % (",".join(names), key) for key, names in groups.items())
        return "%s sees: %s | %s" % (self.observer.name, states, leaders)

    def _c(self, code, text):
        return "\x1b[%sm%s\x1b[0m" % (code, text) if self.color else text

    def frame(self, max_lines=1000):
        """The live table as a list of lines; older events are left out to fit max_lines."""
        c = self._c
        snap = self.snapshot
        title = "leaderd demo: %d agents on 127.0.0.1, profile local, preempt after %s" % (self.count, PREEMPT_DELAY)
        lines = [c("1", title) + "   %5.1f s" % self.elapsed(), ""]
        seen = snap.members.get(self.observer.name, {}) if self.observer else {}
        rows = [("NODE", "PRIO", "PROCESS", "STATE*", "LEADER", "TERM")]
        for node in self.nodes:
            state = self.phase[node.name]
            process = "up, pid %d" % node.proc.pid if state == "up" else state
            if state == "killed":
                process = "killed (SIGKILL)"
            elif state == "stopping":
                process = "leaving (SIGTERM)"
            if node.name in snap.leaders:
                leader, term = snap.leaders[node.name]
                leader, term = leader or "none", str(term)
            else:
                leader, term = ("no answer" if self.running(node) else "-"), "-"
            rows.append((node.name, str(node.priority), process, seen.get(node.name, "-"), leader, term))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        state_colors = {"alive": "32", "suspect": "33", "dead": "31", "left": "90"}
        leading = self.agreed[0] if self.agreed else None
        for index, row in enumerate(rows):
            cells = [row[i].rjust(widths[i]) if i == 1 else row[i].ljust(widths[i]) for i in range(6)]
            if index == 0:
                lines.append("  " + c("1", "  ".join(cells).rstrip()))
                continue
            cells[3] = c(state_colors.get(row[3], "0"), cells[3])
            mark = "<- leads" if row[0] == leading and row[4] == leading else ""
            line = "  " + "  ".join(cells) + "  " + c("1;36", mark)
            lines.append(line.rstrip())
        lines.append(c("2", "  * as %s sees it.  LEADER, TERM: what each agent's socket answers."
                       % (self.observer.name if self.observer else "node-1")))
        since = "" if self.finished else c("2", "   (%.2f s)" % (time.monotonic() - self.status_since))
        lines += ["", c("1;33", "> ") + self.status + since, ""]
        labels = ("crash failover", "rejoin", "preempt", "planned handover")
        for label in labels:
            if label in self.results:
                seconds, detail = self.results[label]
                lines.append("  %-17s %s  %s" % (label, c("1", "%7.3f s" % seconds), c("2", detail)))
            else:
                lines.append("  %-17s %9s" % (label, "..."))
        footer = [] if self.finished else ["", c("2", "Ctrl-C stops the demo and cleans up")]
        events = ["  %6.2fs  %s" % (at, text) for at, text in self.events]
        room = max_lines - len(lines) - len(footer) - 2
        if room < len(events):  # a small terminal: the newest events that fit
            events = events[len(events) - room:] if room > 0 else []
        if events:
            lines += ["", c("1", "events")] + events
        return lines + footer

    def render(self, force=False):
        """Redraws the table in place (terminal only), at most every REFRESH_S unless forced."""
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last_render < REFRESH_S:
            return
        self.last_render = now
        size = shutil.get_terminal_size()
        lines = self.frame(size.lines - 1)[:max(1, size.lines - 1)]
        parts = ["\x1b[?25l"]  # hide the cursor while drawing
        if self.screen_lines:
            parts.append("\r\x1b[%dA" % self.screen_lines)  # back to the frame's first line
        for line in lines:
            parts.append(_clip(line, size.columns - 1) + "\x1b[K\n")
        parts.append("\x1b[J")  # clear what a longer previous frame left below
        self.screen_lines = len(lines)
        self.out.write("".join(parts))
        self.out.flush()

    def report_failure(self, exc):
        """Prints what failed and the tail of every agent's log (before the files go)."""
        print("leaderd demo: error: %s" % exc, file=sys.stderr)
        for node in self.nodes:
            tail = self.cluster.log_text(node.index, LOG_TAIL_BYTES).splitlines()[-LOG_TAIL_LINES:]
            if tail:
                print("--- last lines of %s (%s) ---" % (node.log_path, self.phase[node.name]), file=sys.stderr)
                for line in tail:
                    print("    " + line, file=sys.stderr)
        sys.stderr.flush()

    def print_summary(self, code, stopped):
        """The measured times, what was cleaned up, and where to go next."""
        out = self.out
        print("", file=out)
        if self.results:
            print("measured on this machine (%d agents, profile local):" % self.count, file=out)
            for label, (seconds, detail) in self.results.items():
                print("  %-17s %7.3f s   %s" % (label, seconds, detail), file=out)
        if code != EXIT_OK and code != EXIT_FAILURE:
            print("interrupted: stopped %d agent(s)" % stopped, file=out)
        else:
            print("stopped %d agent(s)" % stopped, file=out)
        if self.workdir is not None:
            if self.keep:
                print("kept %s: node-K.yaml (configs), node-K.log (agent logs), keys/, trusted/, keyring"
                      % self.workdir, file=out)
            else:
                print("removed %s" % self.workdir, file=out)
        if code == EXIT_OK:
            print(POINTER, file=out)
        out.flush()


def _span(names):
    """node-1..node-4 for a run of names, else a comma list."""
    if len(names) > 2:
        return "%s..%s" % (names[0], names[-1])
    return " and ".join(names)


def _clip(line, width):
    """line cut to `width` visible characters, ANSI colour codes kept intact."""
    out, visible, i = [], 0, 0
    while i < len(line):
        if line[i] == "\x1b":
            end = line.find("m", i)
            end = len(line) - 1 if end < 0 else end
            out.append(line[i:end + 1])
            i = end + 1
            continue
        if visible >= width:
            i += 1
            continue
        out.append(line[i])
        visible += 1
        i += 1
    return "".join(out)
