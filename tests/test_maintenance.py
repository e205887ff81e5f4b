"""`leaderd maintenance on|off` on real agents: the leader hands over, stays a follower across a
restart, and may lead again once off."""

import json
import os
import signal

from daemon_harness import Cluster


def _state_dirs(root, n):
    dirs = [os.path.join(str(root), "state-%d" % i) for i in range(n)]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    return dirs


def test_maintenance_hands_over_survives_a_restart_and_ends_with_off(tmp_path):
    dirs = _state_dirs(tmp_path, 3)
    extra = lambda i: {"election": {"term_file": os.path.join(dirs[i], "term")}}  # noqa: E731
    with Cluster(tmp_path / "c", 3, extra_config=extra) as cluster:
        cluster.start_all()
        first = cluster.wait_leader(leader=0, timeout=20)
        out = cluster.cli(0, "maintenance", "on")
        assert out.returncode == 0, out.stderr
        assert "maintenance on" in out.stdout and "leader: node-1" in out.stdout, out.stdout
        cluster.wait_leader(leader=1, min_term=first["term"], timeout=20)
        status = json.loads(cluster.cli(0, "status", "--json").stdout)
        assert status["maintenance"] is True and status["eligible"] is False, status
        assert "MAINTENANCE" in cluster.cli(0, "status").stdout
        assert os.path.exists(os.path.join(dirs[0], "maintenance"))
        # The others see node-0 as not eligible.
        cluster.wait_member([1, 2], "node-0", ("alive",), check=lambda m: m["eligible"] is False, timeout=20)

        # A restart keeps it: node-0 (the highest priority, preempt on) does not take the role back.
        cluster.kill(0)
        cluster.start(0)
        cluster.wait_member([1, 2], "node-0", ("alive",), check=lambda m: m["eligible"] is False, timeout=20)
        status = json.loads(cluster.cli(0, "status", "--json").stdout)
        assert status["maintenance"] is True and status["eligible"] is False, status
        assert status["leader"]["leader"] == "node-1", status["leader"]
        assert "in maintenance" in cluster.log_text(0)

        # Off: eligible again, and node-0 preempts back.
        out = cluster.cli(0, "maintenance", "off", "--json")
        assert out.returncode == 0, out.stderr
        reply = json.loads(out.stdout)
        assert reply["maintenance"] is False and reply["persisted"] is True, reply
        cluster.wait_leader(leader=0, timeout=20)
        assert not os.path.exists(os.path.join(dirs[0], "maintenance"))
        assert json.loads(cluster.cli(0, "status", "--json").stdout)["maintenance"] is False


def test_maintenance_without_a_state_file_says_a_restart_ends_it(tmp_path):
    with Cluster(tmp_path / "c", 2) as cluster:
        cluster.start_all()
        cluster.wait_leader(leader=0, timeout=20)
        out = cluster.cli(1, "maintenance", "on")
        assert out.returncode == 0 and "a restart ends it" in out.stdout, (out.stdout, out.stderr)
        assert json.loads(cluster.cli(1, "status", "--json").stdout)["maintenance"] is True
        bad = cluster.cli(1, "maintenance", "maybe")
        assert bad.returncode == 2 and "invalid choice" in bad.stderr, bad.stderr


def _hook(path, body):
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def test_pre_demote_runs_and_is_waited_for_before_the_leader_hands_over(tmp_path):
    # pre_demote records its reason and term, then takes 0.5 s; on_demoted
    # (after the resignation) records that pre_demote had finished by then.
    log = tmp_path / "hooks.log"
    pre = _hook(tmp_path / "pre.sh", 'echo "pre start $LEADERD_REASON $LEADERD_TERM $LEADERD_EVENT" >> %s\n'
                'sleep 0.5\necho "pre end" >> %s\n' % (log, log))
    demoted = _hook(tmp_path / "demoted.sh", 'echo "demoted $LEADERD_TERM" >> %s\n' % log)
    extra = {"hooks": {"pre_demote": [str(pre)], "on_demoted": [str(demoted)]}}
    with Cluster(tmp_path / "c", 2, extra_config=extra) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(leader=0, timeout=20)
        out = cluster.cli(0, "maintenance", "on")
        assert out.returncode == 0, out.stderr
        cluster.wait_leader(leader=1, min_term=info["term"], timeout=20)
        cluster.wait_for(lambda: log.exists() and "demoted" in log.read_text(), 20, "on_demoted on node-0")
        lines = log.read_text().splitlines()
        assert lines[0] == "pre start maintenance %d pre_demote" % info["term"], lines
        assert lines.index("pre end") < [i for i, line in enumerate(lines) if line.startswith("demoted")][0], lines
        # Off, then a stop of the leader (node-0 took the role back): pre_demote runs for it too.
        cluster.cli(0, "maintenance", "off")
        back = cluster.wait_leader(leader=0, timeout=20)
        log.write_text("")
        cluster.kill(0, signal.SIGTERM)
        assert log.read_text().splitlines()[:2] == ["pre start stopping %d pre_demote" % back["term"], "pre end"], \
            log.read_text()
        # A follower gives nothing up: no pre_demote on node-1's maintenance.
        log.write_text("")
        cluster.wait_leader(observers=[1], leader=1, timeout=20)
        cluster.start(0)
        cluster.wait_leader(leader=0, timeout=20)
        assert cluster.cli(1, "maintenance", "on").returncode == 0
        assert "pre start" not in log.read_text()


def test_pre_demote_runs_before_a_failed_health_check_hands_over(tmp_path):
    log = tmp_path / "hooks.log"
    ok = tmp_path / "healthy"
    ok.write_text("")
    pre = _hook(tmp_path / "pre.sh", 'echo "pre $LEADERD_REASON" >> %s\nsleep 0.3\necho "pre end" >> %s\n'
                % (log, log))
    demoted = _hook(tmp_path / "demoted.sh", 'echo "demoted" >> %s\n' % log)

    def extra(i):
        cfg = {"hooks": {"pre_demote": [str(pre)], "on_demoted": [str(demoted)]}}
        if i == 0:
            cfg["health"] = {"command": ["test", "-e", str(ok)], "interval": "200ms", "timeout": "200ms",
                             "rise": 1, "fall": 1}
        return cfg
    with Cluster(tmp_path / "c", 2, extra_config=extra) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(leader=0, timeout=20)
        ok.unlink()
        cluster.wait_leader(leader=1, min_term=info["term"], timeout=20)
        cluster.wait_for(lambda: log.exists() and "demoted" in log.read_text(), 20, "on_demoted on node-0")
        assert log.read_text().splitlines()[:3] == ["pre health", "pre end", "demoted"], log.read_text()


def test_a_reload_runs_the_hook_of_each_nodes_current_role_once(tmp_path):
    logs = [tmp_path / ("hooks-%d.log" % i) for i in range(2)]

    def extra(i):
        elected = _hook(tmp_path / ("elected-%d.sh" % i), 'echo "elected $LEADERD_TERM" >> %s\n' % logs[i])
        change = _hook(tmp_path / ("change-%d.sh" % i), 'echo "change $LEADERD_LEADER $LEADERD_TERM" >> %s\n'
                       % logs[i])
        return {"hooks": {"on_elected": [str(elected)], "on_leader_change": [str(change)]}}
    with Cluster(tmp_path / "c", 2, extra_config=extra) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(leader=0, timeout=20)
        cluster.wait_for(lambda: all(p.exists() and "change node-0" in p.read_text() for p in logs), 20,
                         "the start's hooks")
        before = [p.read_text().splitlines() for p in logs]
        for i in range(2):
            mark = cluster.log_size(i)
            cluster.send_signal(i, signal.SIGHUP)
            cluster.wait_log(i, "SIGHUP: configuration reloaded", after=mark)
        term = info["term"]
        cluster.wait_for(lambda: len(logs[0].read_text().splitlines()) == len(before[0]) + 1
                         and len(logs[1].read_text().splitlines()) == len(before[1]) + 1, 20,
                         "one hook run on each node after the reload")
        assert logs[0].read_text().splitlines()[-1] == "elected %d" % term
        assert logs[1].read_text().splitlines()[-1] == "change node-0 %d" % term
