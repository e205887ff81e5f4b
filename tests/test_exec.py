"""`leaderd exec`: the job runs on the leader only, with real agents and real processes.

Each exec runs `sh` with a job that records itself in a directory (its pid,
the term, the node) and starts a grandchild that ignores SIGTERM, so
stopping the job must stop the whole process group, with SIGKILL after the
grace period. Only processes the test started are signalled, by PID.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from agent import cli
from agent.localcluster import child_env, die_with_parent
from daemon_harness import Cluster, wait_for

# The job: a line "pid term self leader" in started.PID, a grandchild that
# ignores SIGTERM (its pid in grandchild.PID), then wait for it.
JOB = ('echo "$$ $LEADERD_TERM $LEADERD_SELF $LEADERD_LEADER" > "$DIR/started.$$"; '
       'sh -c \'trap "" TERM; while :; do sleep 0.2; done\' & echo $! > "$DIR/grandchild.$$"; wait')


def start_exec(socket_path, job_dir, *options, script=JOB):
    env = child_env({"DIR": str(job_dir)})
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "exec", "--socket", str(socket_path), "--grace", "1s"]
        + list(options) + ["--", "sh", "-c", script],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=die_with_parent())


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def jobs(job_dir):
    """{job pid: (term, self, leader, grandchild pid or None)} of every job that started."""
    out = {}
    for name in os.listdir(job_dir):
        if name.startswith("started."):
            pid = int(name.split(".")[1])
            with open(os.path.join(job_dir, name)) as handle:
                fields = handle.read().split()
            if len(fields) < 4:
                continue  # being written
            grandchild = None
            path = os.path.join(job_dir, "grandchild.%d" % pid)
            if os.path.exists(path):
                with open(path) as handle:
                    text = handle.read().strip()
                grandchild = int(text) if text else None
            out[pid] = (int(fields[1]), fields[2], fields[3], grandchild)
    return out


def running_jobs(job_dir):
    return dict((pid, info) for pid, info in jobs(job_dir).items()
                if alive(pid) or (info[3] is not None and alive(info[3])))


def stop(proc, timeout=15):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    return proc.returncode


def test_the_job_runs_on_the_leader_only_and_moves_with_a_failover(tmp_path):
    with Cluster(tmp_path / "c", 3) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(timeout=20)
        leader = info["leader_index"]
        dirs = [tmp_path / ("jobs-%d" % i) for i in range(3)]
        execs = []
        try:
            for i in range(3):
                dirs[i].mkdir()
                execs.append(start_exec(cluster.socket_path(i), dirs[i]))
            # Only the leader's exec starts the job, with the leader's term and names.
            wait_for(lambda: jobs(dirs[leader]) and jobs(dirs[leader]).popitem()[1][3] is not None, 20,
                     "the job started on the leader, with its grandchild")
            (pid, (term, me, named, grandchild)), = jobs(dirs[leader]).items()
            assert me == named == cluster.name(leader) and term == info["term"], (me, named, term, info)
            assert alive(pid) and alive(grandchild)
            for i in range(3):
                if i != leader:
                    assert not jobs(dirs[i]), (i, jobs(dirs[i]))
            # kill -9 the leader's agent: its exec loses the agent and stops the whole group
            # (the grandchild ignores SIGTERM: SIGKILL after the 1 s grace); the next node runs it.
            cluster.kill(leader)
            wait_for(lambda: not alive(pid) and not alive(grandchild), 15,
                     "the old leader's job and grandchild stopped once its agent was gone")
            new = cluster.wait_leader(observers=[i for i in range(3) if i != leader], timeout=20)
            wait_for(lambda: running_jobs(dirs[new["leader_index"]]), 20, "the job started on the new leader")
            (_, (new_term, new_me, _, _)), = running_jobs(dirs[new["leader_index"]]).items()
            assert new_me == cluster.name(new["leader_index"]) and new_term > term, (new_me, new_term, term)
            for i in range(3):
                if i not in (leader, new["leader_index"]):
                    assert not jobs(dirs[i]), (i, jobs(dirs[i]))
            # SIGTERM to exec: the job goes first, then exec exits with its status (sh killed by SIGTERM).
            status = stop(execs[new["leader_index"]])
            assert status == 128 + signal.SIGTERM, (status, execs[new["leader_index"]].stderr.read())
            assert not running_jobs(dirs[new["leader_index"]])
        finally:
            for proc in execs:
                stop(proc)


def test_restart_policies_and_an_agent_that_is_not_there(tmp_path):
    with Cluster(tmp_path / "c", 1) as cluster:
        cluster.start_all()
        cluster.wait_leader(timeout=20)
        failing, done, nowhere = tmp_path / "failing", tmp_path / "done", tmp_path / "nowhere"
        for d in (failing, done, nowhere):
            d.mkdir()
        record = 'echo "$$ $LEADERD_TERM $LEADERD_SELF $LEADERD_LEADER" > "$DIR/started.$$"; '
        procs = [start_exec(cluster.socket_path(0), failing, script=record + "exit 3"),
                 start_exec(cluster.socket_path(0), done, "--restart", "on-failure", script=record + "exit 0"),
                 start_exec(tmp_path / "no-agent.sock", nowhere, script=record + "exit 0")]
        try:
            # on-failure (the default): a job that fails is started again, one second apart.
            wait_for(lambda: len(jobs(failing)) >= 3, 20, "the failing job started three times")
            # A job that succeeds is not started again in this term.
            wait_for(lambda: jobs(done), 20, "the succeeding job started")
            assert all(p.poll() is None for p in procs)
            mark = len(jobs(failing))
            wait_for(lambda: len(jobs(failing)) > mark, 10, "one more restart of the failing job")
            assert len(jobs(done)) == 1, jobs(done)
            # With no agent to ask, nothing is started, and exec keeps waiting.
            assert not jobs(nowhere) and procs[2].poll() is None
        finally:
            statuses = [stop(p) for p in procs]
        assert statuses[0] == 3 and statuses[1] == 0 and statuses[2] == 0, statuses
        assert "waiting for the agent" in procs[2].stderr.read()


def test_a_hung_agent_stops_the_job_and_its_return_starts_it_again(tmp_path):
    # SIGSTOP: the agent's socket stays open but nothing answers. exec cannot
    # know it still leads, so it stops the job (LOST_AFTER_S without an
    # answer, then the grace period); SIGCONT: it leads again, the job restarts.
    with Cluster(tmp_path / "c", 1) as cluster:
        cluster.start_all()
        cluster.wait_leader(timeout=20)
        job_dir = tmp_path / "jobs"
        job_dir.mkdir()
        proc = start_exec(cluster.socket_path(0), job_dir)
        try:
            wait_for(lambda: running_jobs(job_dir), 20, "the job started")
            (first, _), = running_jobs(job_dir).items()
            cluster.send_signal(0, signal.SIGSTOP)
            try:
                wait_for(lambda: not running_jobs(job_dir), 15, "the job stopped while the agent hung")
            finally:
                cluster.send_signal(0, signal.SIGCONT)
            wait_for(lambda: running_jobs(job_dir), 20, "the job started again once the agent answered")
            assert first not in running_jobs(job_dir)
        finally:
            stop(proc)
        assert "lost the agent" in proc.stderr.read()


EXAMPLE_UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "systemd",
                            "leaderd-exec-example.service")


def test_the_example_singleton_unit_runs_leaderd_exec_and_systemd_accepts_it(tmp_path):
    # The recipe in docs/OPERATIONS.md: ExecStart= is a `leaderd exec` this CLI
    # parses (the job after "--"), KillMode=mixed leaves the job's group to
    # exec, and the stop timeout outlasts the grace period.
    text = open(EXAMPLE_UNIT, encoding="utf-8").read()
    keys = dict(re.findall(r"(?m)^(\w+)=(.*)$", text))
    argv = shlex.split(keys["ExecStart"])
    assert argv[0].endswith("/leaderd") and argv[1] == "exec", argv
    args = cli.build_parser().parse_args(argv[1:])
    assert args.func.__name__ == "cmd_exec" and args.command[args.command.index("--") + 1:][0] == \
        "/usr/local/bin/my-job", args.command
    assert keys["KillMode"] == "mixed" and keys["Restart"] == "always" and keys["Type"] == "exec"
    grace = int(args.grace.rstrip("s"))
    assert int(keys["TimeoutStopSec"].rstrip("s")) > grace
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd); the unit is not checked by "
                    "systemd itself")
    stubs = {}
    for name in ("leaderd", "my-job"):
        stub = tmp_path / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        stubs[name] = str(stub)
    copy = tmp_path / "my-job.service"
    copy.write_text(text.replace("/usr/local/bin/leaderd", stubs["leaderd"])
                    .replace("/usr/local/bin/my-job", stubs["my-job"]))
    proc = subprocess.run([exe, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=120)
    complaints = [line for line in (proc.stderr + proc.stdout).splitlines()
                  if str(copy) in line or "my-job.service" in line]
    if proc.returncode != 0 and not complaints:
        pytest.skip("systemd-analyze verify does not work in this environment (exit %d): %s"
                    % (proc.returncode, proc.stderr.strip()[:300]))
    assert not complaints, complaints


def test_maintenance_on_the_leader_stops_its_job_and_the_next_node_runs_it(tmp_path):
    with Cluster(tmp_path / "c", 2) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(leader=0, timeout=20)
        dirs = [tmp_path / "jobs-0", tmp_path / "jobs-1"]
        execs = []
        try:
            for i in range(2):
                dirs[i].mkdir()
                execs.append(start_exec(cluster.socket_path(i), dirs[i]))
            wait_for(lambda: running_jobs(dirs[0]) and list(running_jobs(dirs[0]).values())[0][3], 20,
                     "the job and its grandchild on node-0")
            (pid, (_, _, _, grandchild)), = running_jobs(dirs[0]).items()
            assert cluster.cli(0, "maintenance", "on").returncode == 0
            wait_for(lambda: not alive(pid) and not alive(grandchild), 15,
                     "node-0's job and grandchild stopped on maintenance")
            wait_for(lambda: running_jobs(dirs[1]), 20, "the job on node-1")
            (_, (term, me, _, _)), = running_jobs(dirs[1]).items()
            assert me == "node-1" and term > info["term"], (me, term, info)
            assert not running_jobs(dirs[0])
        finally:
            for proc in execs:
                stop(proc)
