"""Two real agents started under one name (issue 9, item 10): each logs a
WARNING naming the other's address, counts it, and `status` says so."""

import json

from daemon_harness import Cluster


def test_two_agents_with_one_name_warn_and_say_so_in_status(tmp_path):
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        cluster.wait_leader(timeout=20)
        # node-2's config copied from node-1's: same name, same key, its own port.
        cfg = cluster.config(2)
        cfg["node"]["name"] = "node-1"
        cfg["election"]["signing_key_file"] = cluster.config(1)["election"]["signing_key_file"]
        cluster.kill(2)
        cluster.write_config(2, cfg)
        cluster.start(2, wait=False)
        first, twin = cluster.address(1), cluster.address(2)

        def warned(i, other):
            with open(cluster.log_path(i)) as handle:
                return any("announces this node's name" in line and other in line and "WARNING" in line
                           for line in handle)

        cluster.wait_for(lambda: warned(1, twin) and warned(2, first), 20,
                         "a duplicate-name WARNING from both agents, each naming the other")
        status = json.loads(cluster.cli(1, "status", "--json").stdout)
        assert status["stats"]["duplicate_name"] > 0, status["stats"]
        assert status["duplicate_name"]["address"] == twin, status["duplicate_name"]
        text = cluster.cli(1, "status").stdout
        assert "ALSO ANNOUNCED by the agent at %s" % twin in text, text
