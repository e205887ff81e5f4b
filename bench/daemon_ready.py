#!/usr/bin/env python3
"""Start-up time of `leaderd run`: from spawning the process to READY=1, and to its first API answer.

From the repository root, with the venv's Python:

    python bench/daemon_ready.py              # 10 runs (after 1 warm-up run)
    python bench/daemon_ready.py --runs 20 --warmup 0

Each run spawns one agent (agent/localcluster.py's config: Ed25519
signing key, trust list, authenticated keyring, profile lan, seeds that are
not running) with NOTIFY_SOCKET pointing at an AF_UNIX datagram socket this
bench binds. The clock starts just before the spawn; "READY=1" is when that
datagram arrives; "API" is when a thread polling the agent's socket every
--poll-ms with Client(path).leader() gets its first successful answer. The
agent then gets SIGTERM and the next run starts.

Two modes, each --runs runs after a warm-up run: the environment as
inherited, and with a bytecode cache (PYTHONPYCACHEPREFIX in a temporary
directory, PYTHONDONTWRITEBYTECODE cleared; the warm-up fills it), because
a tree without __pycache__ under PYTHONDONTWRITEBYTECODE=1 compiles every
agent module from source at each start, which an installed package does
not. For context the bench also times a bare interpreter (`python -c pass`)
and one that imports the daemon's modules, and prints the load average
(other work on the machine slows start-up). Asserts on nothing.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent.client import Client, ClientError  # noqa: E402
from agent.localcluster import Cluster  # noqa: E402

RUN_TIMEOUT_S = 30


def percentile(values, q):
    """The q-th percentile (0..100) of values, interpolating linearly between closest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def first_answer(path, poll_s, stop, out):
    """Polls path with leader() until it answers; stores the monotonic time in out[0]."""
    client = Client(path, timeout=2.0)
    while not stop.is_set():
        try:
            client.leader()
        except ClientError:
            stop.wait(poll_s)
            continue
        out.append(time.monotonic())
        return


def one_run(cluster, notify, poll_s):
    """(seconds to READY=1, seconds to the first API answer) for one start of node 0."""
    path = cluster.socket_path(0)
    if os.path.exists(path):
        os.unlink(path)  # the agent removes it on exit; a stale one would fool nobody, but be sure
    stop = threading.Event()
    answered = []
    poller = threading.Thread(target=first_answer, args=(path, poll_s, stop, answered), daemon=True)
    poller.start()
    t0 = time.monotonic()
    cluster.start(0, wait=False)
    ready_at = None
    deadline = t0 + RUN_TIMEOUT_S
    try:
        while ready_at is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no READY=1 within %d s\n%s" % (RUN_TIMEOUT_S, cluster.logs()))
            notify.settimeout(left)
            data = notify.recv(4096)
            if b"READY=1" in data.split(b"\n"):
                ready_at = time.monotonic()
        poller.join(max(0.0, deadline - time.monotonic()))
        api_at = answered[0] if answered else None
    finally:
        stop.set()
        poller.join()
        if cluster.running(0):
            cluster.kill(0, signal.SIGTERM, timeout=15)
    return ready_at - t0, (api_at - t0) if api_at is not None else None


def interpreter_time(args, runs, env_extra=None):
    """The median wall time of `python ARGS` over runs runs."""
    env = dict(os.environ)
    env.update(env_extra or {})
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable] + args, check=True, cwd=ROOT, env=env)
        times.append(time.monotonic() - t0)
    return percentile(times, 50)


def loadavg():
    """The 1, 5 and 15 minute load averages, as text (other work on the machine shows here)."""
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def bytecode_note():
    """How this environment treats bytecode (.pyc) for the agent's own modules."""
    cached = os.path.isdir(os.path.join(ROOT, "agent", "__pycache__"))
    return "PYTHONDONTWRITEBYTECODE=%s, PYTHONPYCACHEPREFIX=%s, agent/__pycache__ %s" % (
        os.environ.get("PYTHONDONTWRITEBYTECODE") or "(unset)",
        os.environ.get("PYTHONPYCACHEPREFIX") or "(unset)", "present" if cached else "absent")


def run_mode(label, env_extra, args, root):
    """Warm-up and measured runs with env_extra added to each agent's environment; (ready, api) lists."""
    notify_path = os.path.join(root, "notify.sock")
    # Three nodes' files (seeds, keys, trust list); only node-0 ever runs.
    cluster = Cluster(os.path.join(root, "cluster"), 3, profile=args.profile,
                      cluster_name="ready-" + os.urandom(3).hex())
    cluster.nodes[0].env = dict(env_extra, NOTIFY_SOCKET=notify_path)
    ready, api = [], []
    print("%s:" % label, flush=True)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            for run in range(args.warmup + args.runs):
                ready_s, api_s = one_run(cluster, notify, args.poll_ms / 1000.0)
                name = "warm-up" if run < args.warmup else "run %2d" % (run - args.warmup + 1)
                print("  %-8s READY=1 after %.3f s, first API answer after %s" % (
                    name, ready_s, "-" if api_s is None else "%.3f s" % api_s), flush=True)
                if run >= args.warmup:
                    ready.append(ready_s)
                    if api_s is not None:
                        api.append(api_s)
    finally:
        cluster.stop_all()
    return ready, api


IMPORTS = ("import agent.cli, agent.commands, agent.daemon, agent.config, agent.keys, yaml, "
           "cryptography.hazmat.primitives.asymmetric.ed25519")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per mode (default 10)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured runs first, at least 1 (they fill the bytecode cache; default 1)")
    parser.add_argument("--profile", default="lan", choices=["lan", "wan", "local"], help="default lan")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="API poll period (default 1)")
    args = parser.parse_args(argv)
    args.warmup = max(1, args.warmup)
    print("leaderd start-up: %d runs per mode; %s, %d CPUs, Python %s; load average %s" % (
        args.runs, os.uname().release, os.cpu_count(), sys.version.split()[0], loadavg()), flush=True)
    print("environment: %s" % bytecode_note(), flush=True)
    root = tempfile.mkdtemp(prefix="leaderd-ready-")
    cache_env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": os.path.join(root, "pycache")}
    modes = (("as inherited", {}),
             ("bytecode cache (PYTHONPYCACHEPREFIX, filled by the warm-up)", cache_env))
    rows = []
    try:
        for label, env_extra in modes:
            ready, api = run_mode(label, env_extra, args, os.path.join(root, str(len(rows))))
            imports = interpreter_time(["-c", IMPORTS], 5, env_extra)
            rows.append((label, ready, api, imports))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bare = interpreter_time(["-c", "pass"], 5)
    print()
    print("load average at the end: %s" % loadavg())
    print()
    print("| bytecode | READY=1 p50 (s) | READY=1 max (s) | first API answer p50 (s) | first API answer max (s) "
          "| runs | importing the daemon's modules (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, ready, api, imports in rows:
        print("| %s | %.3f | %.3f | %s | %s | %d | %.3f |" % (
            label, percentile(ready, 50), max(ready),
            "%.3f" % percentile(api, 50) if api else "-", "%.3f" % max(api) if api else "-",
            len(ready), imports))
    print()
    print("context: `python -c pass` %.3f s (median of 5); the import column is the median of 5 runs of "
          "`python -c \"%s\"`" % (bare, IMPORTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
