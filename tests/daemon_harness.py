"""The real-process tests' names for agent/localcluster.py: `leaderd run` clusters on 127.0.0.1.

The launcher itself (files, processes, signals, waits with deadlines) lives
in agent/localcluster.py, shared with `leaderd demo` and the benches; the
tests import it from here under the names they have always used.

    with Cluster(tmp_dir, 3) as cluster:       # node-0 has the highest priority
        cluster.start_all()
        info = cluster.wait_leader(timeout=10)  # all nodes agree
        cluster.kill(info["leader_index"])      # SIGKILL, waits for the exit

A wait that times out raises HarnessTimeout (an AssertionError) with the
tail of every node's log. Only processes the harness started are ever
signalled, by their PIDs.
"""

from agent.localcluster import (Cluster, WaitTimeout, deep_merge, free_udp_port, run_cli, wait_for,
                                write_keyring)

HarnessTimeout = WaitTimeout

__all__ = ["Cluster", "HarnessTimeout", "run_cli", "free_udp_port", "wait_for", "deep_merge", "write_keyring"]
