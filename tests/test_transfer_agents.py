"""`leaderd transfer [NODE]` on real agents: the leader hands over to a named member or the next in
rank, the successor leads at the next term and is not preempted, refusals say why, and a
`leaderd exec` job moves with the role."""

import json
import time

from daemon_harness import Cluster, wait_for
from test_exec import alive, running_jobs, start_exec, stop


def test_transfer_to_a_named_member_and_to_the_next_in_rank(tmp_path):
    with Cluster(tmp_path / "c", 4) as cluster:
        cluster.start_all()
        first = cluster.wait_leader(leader=0, timeout=20)

        out = cluster.cli(0, "transfer", "node-2", "--json")
        assert out.returncode == 0, out.stderr
        reply = json.loads(out.stdout)
        assert reply["confirmed"] is True and reply["to"] == "node-2" and reply["from"] == "node-0", reply
        assert reply["term"] == first["term"] + 1, (reply, first)
        cluster.wait_leader(leader=2, min_term=first["term"], timeout=10)
        # node-0 and node-1 rank above node-2 and preempt is on (its delay in the local profile is
        # short): still node-2 several heartbeats and preempt delays later, at the same term.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for i in range(4):
                leader = cluster.client(i).leader()
                assert leader["leader"] == "node-2" and leader["term"] == first["term"] + 1, (i, leader)
            time.sleep(0.2)

        # From node-2, with no name: the next in rank is node-0.
        out = cluster.cli(2, "transfer")
        assert out.returncode == 0, out.stderr
        assert "node-0 leads now (term %d)" % (first["term"] + 2) in out.stdout, out.stdout
        cluster.wait_leader(leader=0, min_term=first["term"] + 1, timeout=10)
        assert "transfer: handed the role to node-0" in cluster.log_text(2)


def test_refusals_name_the_reason_and_change_nothing(tmp_path):
    with Cluster(tmp_path / "c", 3, priorities=[200, 150, 0]) as cluster:
        cluster.start_all()
        first = cluster.wait_leader(leader=0, timeout=20)
        cases = [
            (1, ["node-2"], "this node does not lead; the leader is node-0: run transfer there"),
            (0, ["nobody"], "nobody is not a member this node knows"),
            (0, ["node-0"], "node-0 is this node, which leads already"),
            (0, ["node-2"], "node-2 is not eligible to lead"),
        ]
        for index, args, message in cases:
            out = cluster.cli(index, "transfer", *args)
            assert out.returncode == 1, (args, out.stdout, out.stderr)
            assert message in out.stderr, (args, out.stderr)
        cluster.kill(1)
        cluster.wait_member([0], "node-1", ("dead",), timeout=20)
        out = cluster.cli(0, "transfer", "node-1")
        assert out.returncode == 1 and "node-1 is dead, not alive" in out.stderr, out.stderr
        out = cluster.cli(0, "transfer")
        assert out.returncode == 1 and "no other member can lead now" in out.stderr, out.stderr
        leader = cluster.client(0).leader()
        assert leader["leader"] == "node-0" and leader["term"] == first["term"], leader


def test_the_exec_job_moves_with_a_transfer(tmp_path):
    with Cluster(tmp_path / "c", 3) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(leader=0, timeout=20)
        dirs = [tmp_path / ("jobs-%d" % i) for i in range(3)]
        execs = []
        try:
            for i in range(3):
                dirs[i].mkdir()
                execs.append(start_exec(cluster.socket_path(i), dirs[i]))
            wait_for(lambda: running_jobs(dirs[0]) and list(running_jobs(dirs[0]).values())[0][3], 20,
                     "the job and its grandchild on node-0")
            (pid, (_, _, _, grandchild)), = running_jobs(dirs[0]).items()
            out = cluster.cli(0, "transfer", "node-2")
            assert out.returncode == 0, out.stderr
            wait_for(lambda: not alive(pid) and not alive(grandchild), 15,
                     "node-0's job and grandchild stopped on transfer")
            wait_for(lambda: running_jobs(dirs[2]), 20, "the job on node-2")
            (_, (term, me, _, _)), = running_jobs(dirs[2]).items()
            assert me == "node-2" and term == info["term"] + 1, (me, term, info)
            assert not running_jobs(dirs[0]) and not running_jobs(dirs[1])
        finally:
            for proc in execs:
                stop(proc)
