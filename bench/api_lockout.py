#!/usr/bin/env python3
"""Can the local API be locked out? `is-leader` latency while connections are held (issue 11, item 4).

From the repository root, with the venv's Python:

    python bench/api_lockout.py                       # 200 idle, 64 watchers, 200 requests each
    python bench/api_lockout.py --idle 200 --watchers 64 --requests 200 --cli-runs 20
    python bench/api_lockout.py --holder-uid 65534    # (as root) the holder is another user

Starts one real agent (agent/localcluster.py: `leaderd run`, signed claims,
profile local), waits until it leads, then for each scenario:

- baseline: nothing held;
- idle: a holder process opens --idle connections and sends nothing; the
  agent keeps as many as the holder's uid may have (64 for root and the
  agent's uid, 16 for another uid) and closes the others; from then on the
  holder opens a new connection for each one the agent closes (idleness, or
  room for another connection of the same uid), so that the agent always
  holds that many idle connections, without a flood of reconnections;
- watchers: a holder process opens --watchers `watch` connections and keeps
  reading them;

and measures, while the holder holds:

- --requests `leader` requests through agent.client.Client, one connection
  each, as `leaderd is-leader` sends them: p50, p99, max, and failures;
- --cli-runs runs of the real `leaderd is-leader` command (a new Python
  process each; with a bytecode cache, as an installed package has): p50,
  p99 of the wall time and the exit codes.

The holder runs this file as `python bench/api_lockout.py hold ...` (only the
standard library, so that another user's /usr/bin/python3 can run it); its
report lines are JSON. Prints the figures; asserts on nothing.
"""

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.abspath(__file__)

# --- The holder (standard library only) ------------------------------------------


def _kind(message):
    """What an error line from the agent says happened: idle, replaced, refused, or other."""
    if "no complete request" in message:
        return "idle"
    if "needed the slot" in message:
        return "replaced"
    if "too many" in message:
        return "refused"
    return "other"


def hold(path, mode, count, keep=0, out=sys.stdout):
    """Hold `count` connections to the API at path ("idle": send nothing; "watch": watch) until stdin closes.

    A connection the agent closes is opened again while fewer than `keep` are
    open. Prints a JSON line each time its figures change: "open"
    (connections open on this side), "watching", "reopened", and a count per
    way the agent closed one ("idle", "replaced", "refused", "other", "eof":
    no error line).
    """
    sel = selectors.DefaultSelector()
    figures = {"mode": mode, "open": 0, "watching": 0, "reopened": 0, "idle": 0, "replaced": 0, "refused": 0,
               "other": 0, "eof": 0, "messages": []}
    state = {}  # socket -> {"buffer": bytes, "lines": int, "message": str or None}

    def report():
        out.write(json.dumps(figures) + "\n")
        out.flush()

    def open_one():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Blocking: a UNIX socket's connect with a timeout fails at once (EAGAIN)
        # while the agent's listen backlog is full; a blocking one waits its turn.
        sock.connect(path)
        info = {"buffer": b"", "lines": 0, "message": None}
        if mode == "watch":
            # One watch at a time: its acknowledgement and snapshot (or its
            # refusal) before the next, as separate clients would come.
            sock.sendall(b'{"cmd": "watch"}\n')
            while info["lines"] < 2 and info["message"] is None:
                data = sock.recv(65536)
                if not data:
                    break
                info["buffer"] += data
                while b"\n" in info["buffer"] and info["lines"] < 2:
                    line, info["buffer"] = info["buffer"].split(b"\n", 1)
                    reply = json.loads(line)
                    if reply.get("ok") is False:
                        info["message"] = reply.get("error")
                        break
                    info["lines"] += 1
            if info["lines"] == 2:
                figures["watching"] += 1
        sock.setblocking(False)
        state[sock] = info
        sel.register(sock, selectors.EVENT_READ)
        figures["open"] += 1

    def closed(sock):
        info = state.pop(sock)
        sel.unregister(sock)
        sock.close()
        figures["open"] -= 1
        if info["lines"] >= 2 and mode == "watch":
            figures["watching"] -= 1
        message = info["message"]
        kind = "eof" if message is None else _kind(message)
        figures[kind] += 1
        if message is not None and message not in figures["messages"] and len(figures["messages"]) < 8:
            figures["messages"].append(message)
        return kind

    for _ in range(count):
        open_one()
    sel.register(sys.stdin, selectors.EVENT_READ)
    report()
    while True:
        changed = False
        for key, _ in sel.select(timeout=None):
            if key.fileobj is sys.stdin:
                if not os.read(sys.stdin.fileno(), 4096):
                    for sock in list(state):
                        sock.close()
                    return
                continue
            sock = key.fileobj
            info = state[sock]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                info["buffer"] += data
                while b"\n" in info["buffer"]:
                    line, info["buffer"] = info["buffer"].split(b"\n", 1)
                    reply = json.loads(line)
                    if reply.get("ok") is False and info["message"] is None:
                        info["message"] = reply.get("error")
                    elif mode == "watch" and info["message"] is None:
                        info["lines"] += 1
                        if info["lines"] == 2:  # the acknowledgement, then the leader snapshot
                            figures["watching"] += 1
                            changed = True
                    if mode == "watch":
                        info["buffer"] = info["buffer"][-65536:]
                continue
            changed = True
            closed(sock)
            if figures["open"] < keep:
                open_one()
                figures["reopened"] += 1
        if changed:
            report()


# --- The bench -----------------------------------------------------------------


class Holder:
    """`hold` in a child process (another uid if asked), its report lines read with deadlines."""

    def __init__(self, path, mode, count, keep=0, uid=None):
        python = sys.executable if uid is None else "/usr/bin/python3"
        self.proc = subprocess.Popen([python, HERE, "hold", "--socket", path, "--mode", mode,
                                      "--count", str(count), "--keep", str(keep)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     user=uid, group=uid)
        self.figures = None
        self._buffer = ""

    def wait(self, predicate, timeout, what):
        """The holder's figures once predicate(figures) holds; raises at the deadline."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while self.figures is None or not predicate(self.figures):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("timed out waiting for the holder: %s; last figures %s" % (what, self.figures))
            sel = selectors.DefaultSelector()
            sel.register(fd, selectors.EVENT_READ)
            ready = sel.select(timeout=left)
            sel.close()
            if not ready:
                continue
            chunk = os.read(fd, 65536).decode()
            if not chunk:
                raise RuntimeError("the holder exited (%s) waiting for %s" % (self.proc.wait(), what))
            self._buffer += chunk
            while "\n" in self._buffer:
                line, self._buffer = self._buffer.split("\n", 1)
                self.figures = json.loads(line)
        return self.figures

    def drain(self):
        """Read the reports already written (without waiting): figures as of now."""
        try:
            self.wait(lambda f: False, 0.05, "")
        except RuntimeError:
            pass
        return self.figures

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def measure_client(path, n):
    """n `leader` requests through agent.client.Client: (latencies in ms, failures)."""
    from agent.client import Client, ClientError

    client = Client(path, timeout=5.0)
    times, failures = [], []
    for _ in range(n):
        started = time.perf_counter()
        try:
            client.leader()
        except ClientError as exc:
            failures.append(str(exc))
            continue
        times.append((time.perf_counter() - started) * 1000.0)
    return times, failures


def measure_cli(path, n, env):
    """n runs of `leaderd is-leader --socket path`: (wall times in ms, exit codes)."""
    times, codes = [], []
    for _ in range(n):
        started = time.perf_counter()
        ran = subprocess.run([sys.executable, "-m", "agent.cli", "is-leader", "--socket", path],
                             stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=30)
        times.append((time.perf_counter() - started) * 1000.0)
        codes.append(ran.returncode)
    return times, codes


def summary(times):
    if not times:
        return "no answer"
    return "p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (percentile(times, 50), percentile(times, 99), max(times))


def run_scenario(name, path, args, env, holder=None):
    from agent.client import Client

    client_times, failures = measure_client(path, args.requests)
    cli_times, codes = measure_cli(path, args.cli_runs, env) if args.cli_runs else ([], [])
    stats = Client(path).status()["stats"]
    held = "" if holder is None else " (holder: %s)" % json.dumps(
        {k: v for k, v in holder.drain().items() if k != "messages"})
    print("%s%s" % (name, held))
    print("  agent.client leader x %d: %s; %d failed%s" % (
        args.requests, summary(client_times), len(failures), (": %s" % failures[0]) if failures else ""))
    if args.cli_runs:
        print("  leaderd is-leader x %d (process start included): %s; exit codes %s" % (
            args.cli_runs, summary(cli_times), sorted(set(codes))))
    print("  agent stats: %s" % ", ".join("%s=%s" % (k, v) for k, v in sorted(stats.items())
                                        if k.startswith("api_") or k == "watchers"))
    sys.stdout.flush()


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["hold"]:
        parser = argparse.ArgumentParser(prog="api_lockout.py hold")
        parser.add_argument("--socket", required=True)
        parser.add_argument("--mode", choices=["idle", "watch"], required=True)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--keep", type=int, default=0, help="re-open closed ones while fewer are open")
        args = parser.parse_args(argv[1:])
        hold(args.socket, args.mode, args.count, args.keep)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=200, help="idle connections held (default 200)")
    parser.add_argument("--watchers", type=int, default=64, help="watchers held (default 64)")
    parser.add_argument("--requests", type=int, default=200, help="client requests per scenario (default 200)")
    parser.add_argument("--cli-runs", type=int, default=20,
                        help="`leaderd is-leader` runs per scenario (default 20; 0: none)")
    parser.add_argument("--holder-uid", type=int, default=None,
                        help="run the holders as this uid (root only; e.g. 65534, nobody)")
    args = parser.parse_args(argv)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from agent.api import MAX_CLIENTS
    from agent.localcluster import Cluster, child_env

    print("leaderd API lockout: %d idle connections, %d watchers, %d requests, %d CLI runs; holder uid %s, "
          "bench uid %d; %s, %d CPUs, Python %s; load average %s" % (
              args.idle, args.watchers, args.requests, args.cli_runs,
              "same" if args.holder_uid is None else args.holder_uid, os.geteuid(), os.uname().release,
              os.cpu_count(), sys.version.split()[0], " ".join("%.2f" % x for x in os.getloadavg())), flush=True)
    root = tempfile.mkdtemp(prefix="leaderd-lockout-")
    os.chmod(root, 0o755)  # a holder of another uid reaches the socket (mode 0666 below)
    pycache = os.path.join(root, "pycache")
    cache_env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": pycache}
    cluster = Cluster(root, 1, keep=False, extra_config={"api": {"mode": "0666"}})
    cluster.owns_root = True  # close() removes the directory made here
    cluster.nodes[0].env = dict(cache_env)
    env = child_env(cache_env)
    holders = []
    try:
        cluster.start_all(timeout=60)
        cluster.wait_leader(leader=0, timeout=30)
        path = cluster.socket_path(0)
        if args.cli_runs:
            measure_cli(path, 1, env)  # fills the bytecode cache
        run_scenario("baseline: nothing held", path, args, env)

        # What the agent keeps of one uid's idle connections (agent/api.py's defaults).
        kept = min(args.idle, MAX_CLIENTS if args.holder_uid is None else MAX_CLIENTS // 4)
        holder = Holder(path, "idle", args.idle, kept, args.holder_uid)
        holders.append(holder)
        # Settled: every connection the agent does not keep has been closed.
        holder.wait(lambda f: f["open"] == kept and f["replaced"] + f["refused"] >= args.idle - kept,
                    30, "the agent to keep %d" % kept)
        run_scenario("%d idle connections held" % args.idle, path, args, env, holder)
        holder.stop()
        holders.remove(holder)

        holder = Holder(path, "watch", args.watchers, 0, args.holder_uid)
        holders.append(holder)
        holder.wait(lambda f: f["watching"] + f["refused"] + f["other"] >= args.watchers, 30, "its watches")
        run_scenario("%d watchers held" % args.watchers, path, args, env, holder)
    finally:
        for holder in holders:
            holder.stop()
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
