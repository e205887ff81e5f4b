#!/usr/bin/env python3
"""`leaderd exec` on real agents: how two jobs overlap at a failover, and how fast a demoted job stops.

From the repository root, with the venv's Python:

    python bench/exec_failover.py [--nodes 3] [--trials 10] [--profile local] [--grace 5s] [--fault kill|stop]

Every node runs `leaderd run` and `leaderd exec -- sh -c JOB` (agents from
agent/localcluster.py: signed claims, a keyring, preempt after 300 ms).
JOB writes the wall-clock time it started, and on SIGTERM the time it
ended, to files, then exits: so a stop is exec's reaction, not the grace
period.

One trial:
- crash: SIGKILL to the leader's agent (--fault kill, the default), or
  SIGSTOP (--fault stop: the agent hangs, its socket stays open). Its exec
  and job keep running and must stop the job themselves, having lost the
  agent. Figures: fault to the old job's end; fault to the new leader's job
  start; their overlap (the old job's end minus the new job's start;
  negative: a gap, no overlap).
- demotion: the agent is started again (SIGCONT for stop), takes the role
  back (preempt), and the interim leader is demoted. Figures: the interim
  leader's demotion, as its agent's `watch` stream reports it, to its job's
  end; and the overlap of the interim job with the returning leader's job.

Prints one line per trial, then min / p50 / max. Figures, not pass/fail.
Times are this machine's wall clock (every process runs here).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_failover import percentile  # noqa: E402  (linear between the nearest trials)
from agent.client import Client  # noqa: E402
from agent.localcluster import Cluster, child_env, die_with_parent, wait_for  # noqa: E402

JOB = ('trap \'date +%s.%N > "$DIR/end.$$"; exit 0\' TERM; '
       'date +%s.%N > "$DIR/start.$$"; echo "$LEADERD_TERM" > "$DIR/term.$$"; '
       'while :; do sleep 0.05; done')


def read_times(job_dir, kind):
    """{pid: wall time} of the jobs' start or end files."""
    out = {}
    for name in os.listdir(job_dir):
        if name.startswith(kind + "."):
            with open(os.path.join(job_dir, name)) as handle:
                text = handle.read().strip()
            if text:
                out[int(name.split(".")[1])] = float(text)
    return out


def job_started_after(job_dir, since):
    starts = [t for t in read_times(job_dir, "start").values() if t >= since]
    return min(starts) if starts else None


def job_ended_after(job_dir, since):
    ends = [t for t in read_times(job_dir, "end").values() if t >= since]
    return min(ends) if ends else None


class DemotionWatch:
    """A thread on one agent's watch stream: the wall time of the first event saying it does not lead."""

    def __init__(self, socket_path):
        self.at = None
        self.ready = threading.Event()  # the stream's snapshot arrived: no later event is missed
        self.client = Client(socket_path, timeout=5)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("no watch snapshot from %s within 10 s" % socket_path)

    def _run(self):
        try:
            for event in self.client.watch():
                self.ready.set()
                if "is_leader" in event and not event["is_leader"] and event.get("event") != "leader":
                    self.at = time.time()
                    return
        except Exception:  # the agent went away: no figure from this trial
            return


def summary(name, values):
    values = [v for v in values if v is not None]
    if not values:
        return "%-44s no data" % name
    return "%-44s %8.3f / %8.3f / %8.3f s  (%d trials)" % (
        name, min(values), percentile(values, 50), max(values), len(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--profile", default="local", choices=("local", "lan", "wan"))
    parser.add_argument("--grace", default="5s", help="leaderd exec --grace (default 5s)")
    parser.add_argument("--fault", default="kill", choices=("kill", "stop"),
                        help="SIGKILL the leader's agent (default) or SIGSTOP it (a hung agent)")
    args = parser.parse_args(argv)
    print("exec failover: %d agents, profile %s, fault %s, %d trials, load average %s" % (
        args.nodes, args.profile, args.fault, args.trials, " ".join("%.2f" % x for x in os.getloadavg())), flush=True)
    work = tempfile.mkdtemp(prefix="leaderd-exec-bench-")
    print("work directory (exec logs; removed after a complete run): %s" % work)
    figures = {"kill_to_old_end": [], "kill_to_new_start": [], "crash_overlap": [],
               "demotion_to_end": [], "handover_overlap": []}
    execs = []
    with Cluster(os.path.join(work, "c"), args.nodes, profile=args.profile) as cluster:
        try:
            cluster.start_all()
            cluster.wait_leader(leader=0, timeout=30)
            dirs = []
            for i in range(args.nodes):
                d = os.path.join(work, "jobs-%d" % i)
                os.mkdir(d)
                dirs.append(d)
                execs.append(subprocess.Popen(
                    [sys.executable, "-m", "agent.cli", "exec", "--socket", cluster.socket_path(i),
                     "--grace", args.grace, "--", "sh", "-c", JOB],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "exec-%d.log" % i), "w"),
                    env=child_env({"DIR": d}), preexec_fn=die_with_parent()))
            wait_for(lambda: job_started_after(dirs[0], 0), 30, "the first job on node-0")
            for trial in range(1, args.trials + 1):
                # crash: kill -9 node-0's agent.
                before = cluster.wait_leader(leader=0, timeout=30)
                killed_at = time.time()
                if args.fault == "kill":
                    cluster.kill(0)
                else:
                    cluster.send_signal(0, signal.SIGSTOP)
                info = cluster.wait_leader(observers=list(range(1, args.nodes)), min_term=before["term"],
                                           timeout=30)
                interim = info["leader_index"]
                new_start = wait_for(lambda: job_started_after(dirs[interim], killed_at), 30,
                                     "the job on the new leader")
                old_end = wait_for(lambda: job_ended_after(dirs[0], killed_at), 30, "the old job's end")
                figures["kill_to_old_end"].append(old_end - killed_at)
                figures["kill_to_new_start"].append(new_start - killed_at)
                figures["crash_overlap"].append(old_end - new_start)
                # demotion: node-0 returns and takes the role back from the interim leader.
                demotion = DemotionWatch(cluster.socket_path(interim))
                back_at = time.time()
                if args.fault == "kill":
                    cluster.start(0)
                else:
                    cluster.send_signal(0, signal.SIGCONT)
                cluster.wait_leader(leader=0, timeout=30)
                back_start = wait_for(lambda: job_started_after(dirs[0], back_at), 30, "the job back on node-0")
                interim_end = wait_for(lambda: job_ended_after(dirs[interim], back_at), 30,
                                       "the interim job's end")
                wait_for(lambda: demotion.at is not None, 10, "the interim leader's demotion event")
                figures["demotion_to_end"].append(interim_end - demotion.at)
                figures["handover_overlap"].append(interim_end - back_start)
                print("trial %2d: crash: fault->old job end %.3f s, fault->new job start %.3f s, overlap %+.3f s; "
                      "preempt: demotion->job end %.3f s, overlap %+.3f s" % (
                          trial, figures["kill_to_old_end"][-1], figures["kill_to_new_start"][-1],
                          figures["crash_overlap"][-1], figures["demotion_to_end"][-1],
                          figures["handover_overlap"][-1]), flush=True)
                time.sleep(1)  # let the handover's gossip drain before the next kill
        finally:
            for proc in execs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in execs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
    shutil.rmtree(work, ignore_errors=True)
    print("min / p50 / max:")
    print(summary("crash: fault -> the old leader's job ended", figures["kill_to_old_end"]))
    print(summary("crash: fault -> new leader's job started", figures["kill_to_new_start"]))
    print(summary("crash: overlap (negative: a gap)", figures["crash_overlap"]))
    print(summary("preempt: demotion event -> job ended", figures["demotion_to_end"]))
    print(summary("preempt: overlap (negative: a gap)", figures["handover_overlap"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
