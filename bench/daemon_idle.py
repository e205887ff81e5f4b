#!/usr/bin/env python3
"""What an idle agent costs: CPU, memory and traffic of real `leaderd run` processes on 127.0.0.1.

From the repository root, with the venv's Python:

    python bench/daemon_idle.py                     # N = 20, profile lan, 60 s
    python bench/daemon_idle.py --nodes 20 --profile lan --seconds 60 --settle 10

Starts N agents (agent/localcluster.py: signed claims, an authenticated
keyring), waits until every node sees every node alive and all follow
node-0, lets them run --settle seconds more (the joins' gossip drains),
then measures each agent over --seconds:

- CPU seconds per minute: utime + stime of /proc/PID/stat (the agent's own
  process; it starts no children without hooks or a health check), delta
  over the window, scaled to 60 s;
  ("schedstat": the same from /proc/PID/task/*/schedstat, in ns, a check
  on the tick-granular stat figure);
- RSS MiB: VmRSS of /proc/PID/status at the end of the window, split into
  anonymous memory (RssAnon: the Python heap, private to the agent) and
  file-backed pages (RssFile: libpython, OpenSSL, cryptography's Rust
  extension - shared between agents on one host, each agent's own when it
  is alone on its machine);
- datagrams/s and bytes/s sent: the deltas of stats.sent_datagrams and
  stats.sent_bytes of each agent's status (`leaderd status --json` asks
  the same API call); bytes are UDP payload bytes, and "wire" adds the 28
  bytes of IPv4 and UDP headers per datagram.

--bytecode-cache gives the agents a bytecode cache first (this sandbox sets
PYTHONDONTWRITEBYTECODE=1 and the tree has no __pycache__, so each agent
otherwise compiles its modules from source, which costs some memory).
Prints the mean and the max across agents (and node-0, the leader, which
also re-asserts its claim). Asserts on nothing.
"""

import argparse
import os
import signal
import socket
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent.localcluster import Cluster  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
IPV4_UDP_HEADER_BYTES = 28


def cpu_seconds(pid):
    """utime + stime of process pid, in seconds."""
    with open("/proc/%d/stat" % pid) as handle:
        text = handle.read()
    fields = text[text.rindex(")") + 2:].split()   # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def run_ns(pid):
    """Nanoseconds process pid's threads have run (/proc/PID/task/*/schedstat), or None.

    A cross-check of cpu_seconds: schedstat counts exactly, stat in clock ticks.
    """
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as handle:
                total += int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def memory(pid):
    """{"rss_mib", "anon_mib", "file_mib", "threads"} of process pid (/proc/PID/status)."""
    keys = {"VmRSS:": "rss_mib", "RssAnon:": "anon_mib", "RssFile:": "file_mib"}
    out = {"rss_mib": None, "anon_mib": None, "file_mib": None, "threads": None}
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            key = line.split(None, 1)[0]
            if key in keys:
                out[keys[key]] = int(line.split()[1]) / 1024.0
            elif key == "Threads:":
                out["threads"] = int(line.split()[1])
    return out


def snapshot(cluster):
    """{index: (monotonic time, cpu s, run ns, stats dict)} for every node."""
    out = {}
    for i in range(cluster.n):
        stats = cluster.client(i).status()["stats"]
        pid = cluster.pid(i)
        out[i] = (time.monotonic(), cpu_seconds(pid), run_ns(pid), stats)
    return out


def loadavg():
    """The 1, 5 and 15 minute load averages, as text (other work on the machine shows here)."""
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def measure(cluster, seconds):
    """Per-node figures over a window of `seconds`: a list of dicts, node order."""
    before = snapshot(cluster)
    time.sleep(seconds)   # the measurement window itself, not synchronisation
    after = snapshot(cluster)
    rows = []
    for i in range(cluster.n):
        t0, cpu0, ns0, s0 = before[i]
        t1, cpu1, ns1, s1 = after[i]
        span = t1 - t0
        datagrams = s1["sent_datagrams"] - s0["sent_datagrams"]
        payload = s1["sent_bytes"] - s0["sent_bytes"]
        row = {
            "name": cluster.name(i),
            "cpu_s_per_min": (cpu1 - cpu0) * 60.0 / span,
            "sched_s_per_min": (ns1 - ns0) * 60.0 / 1e9 / span if None not in (ns0, ns1) else float("nan"),
            "datagrams_per_s": datagrams / span,
            "bytes_per_s": payload / span,
            "wire_bytes_per_s": (payload + IPV4_UDP_HEADER_BYTES * datagrams) / span,
            "recv_datagrams_per_s": (s1["received_datagrams"] - s0["received_datagrams"]) / span,
            "probes_per_s": (s1["probes"] - s0["probes"]) / span,
            "max_sent_bytes": s1["max_sent_bytes"],
        }
        row.update(memory(cluster.pid(i)))
        rows.append(row)
    return rows


COLUMNS = (
    ("cpu_s_per_min", "CPU s/min", "%.3f"),
    ("sched_s_per_min", "CPU s/min (schedstat)", "%.3f"),
    ("rss_mib", "RSS MiB", "%.1f"),
    ("anon_mib", "anon MiB", "%.1f"),
    ("file_mib", "file MiB", "%.1f"),
    ("datagrams_per_s", "sent dgrams/s", "%.2f"),
    ("bytes_per_s", "sent bytes/s", "%.0f"),
    ("wire_bytes_per_s", "wire bytes/s", "%.0f"),
    ("recv_datagrams_per_s", "recv dgrams/s", "%.2f"),
)


def print_report(rows, verbose):
    if verbose:
        print()
        print("%-10s" % "node" + "".join("%23s" % title for _, title, _ in COLUMNS) + "  threads")
        for row in rows:
            print("%-10s" % row["name"] + "".join("%23s" % (fmt % row[key]) for key, _, fmt in COLUMNS)
                  + "  %7s" % row["threads"])
    print()
    print("| per agent | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for label, pick in (("mean", lambda values: sum(values) / len(values)), ("max", max),
                        ("node-0 (leader)", lambda values: values[0])):
        print("| %s | " % label + " | ".join(fmt % pick([row[key] for row in rows])
                                             for key, _, fmt in COLUMNS) + " |")


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=20, help="cluster size (default 20)")
    parser.add_argument("--profile", default="lan", choices=["lan", "wan", "local"], help="default lan")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window (default 60)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds between convergence and the window (default 10)")
    parser.add_argument("--bytecode-cache", action="store_true",
                        help="give the agents a bytecode cache (PYTHONPYCACHEPREFIX in a temporary "
                             "directory, filled by one agent's start first), as an installed package has")
    parser.add_argument("--verbose", action="store_true", help="print every agent's row")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's directory and logs")
    parser.add_argument("--metrics", action="store_true",
                        help="turn each agent's Prometheus endpoint on (metrics.listen on a free 127.0.0.1 "
                             "port) and scrape each once before the window")
    args = parser.parse_args(argv)
    print("leaderd idle cost: N = %d, profile %s, window %.0f s; %s, %d CPUs, Python %s; load average %s" % (
        args.nodes, args.profile, args.seconds, os.uname().release, os.cpu_count(),
        sys.version.split()[0], loadavg()), flush=True)
    metrics_ports = [free_tcp_port() for _ in range(args.nodes)] if args.metrics else None
    extra = (lambda i: {"metrics": {"listen": "127.0.0.1:%d" % metrics_ports[i]}}) if args.metrics else None
    cluster = Cluster(None, args.nodes, profile=args.profile, cluster_name="idle-" + os.urandom(3).hex(),
                      prefix="leaderd-idle-", keep=args.keep, extra_config=extra)
    print("metrics: %s" % ("on (metrics.listen), each scraped once" if args.metrics else "off"), flush=True)
    pycache = os.path.join(cluster.root, "pycache")
    if args.bytecode_cache:
        cache_env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": pycache}
        for node in cluster.nodes:
            node.env = dict(cache_env)
    print("bytecode: %s" % ("a cache in %s" % pycache if args.bytecode_cache else
                            "as inherited (PYTHONDONTWRITEBYTECODE=%s)"
                            % (os.environ.get("PYTHONDONTWRITEBYTECODE") or "unset")), flush=True)
    try:
        if args.bytecode_cache:
            cluster.start(0, timeout=60)    # fills the cache: every module the agent imports
            cluster.kill(0, signal.SIGTERM)
        started = time.monotonic()
        cluster.settle(timeout=60)
        print("converged in %.1f s; settling %.0f s, then measuring %.0f s" % (
            time.monotonic() - started, args.settle, args.seconds), flush=True)
        time.sleep(args.settle)
        for port in metrics_ports or ():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as reply:
                reply.read()
        rows = measure(cluster, args.seconds)
        print_report(rows, args.verbose)
        print()
        print("load average at the end: %s" % loadavg())
    finally:
        cluster.close()
        if args.keep:
            print("logs kept in %s" % cluster.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
