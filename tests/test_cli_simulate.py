"""Tests of `leaderd simulate` and the CLI's top level (agent/cli.py)."""

import json
import os
import subprocess
import sys

import pytest

from agent.cli import EXIT_OK, EXIT_USAGE, main
from agent.sim.scenarios import SCENARIOS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KEYS = (
    "nodes", "profile", "scenario", "seed", "loss", "duration_s", "convergence_s",
    "detect_first_s", "detect_all_s", "failover_s", "false_suspicions", "false_deaths",
    "leader_changes", "msgs_per_node_s", "bytes_per_node_s", "max_datagram_bytes", "wall_s",
    "rejoin_s", "heal_s", "dropped", "events",
    "heal_leader_s", "preempt_s", "false_suspicions_seen", "false_deaths_seen", "insecure", "preempt",
    "leader_at_end", "term_regressions", "max_leaders_at_once", "signature_checks", "claims_rejected",
)

SMALL = ["simulate", "--nodes", "6", "--profile", "local", "--duration", "15s"]


def run_main(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_every_key(capsys):
    code, out, err = run_main(SMALL + ["--scenario", "crash-random", "--seed", "5", "--json"], capsys)
    assert code == EXIT_OK, err
    result = json.loads(out)
    for key in KEYS:
        assert key in result, key
    assert result["nodes"] == 6 and result["profile"] == "local"
    assert result["scenario"] == "crash-random" and result["seed"] == 5
    assert result["duration_s"] == 15.0
    assert result["loss"] == 0.0
    assert isinstance(result["wall_s"], float)
    assert result["convergence_s"] is not None
    assert result["detect_all_s"] is not None, "seed 5: " + out


def test_summary_is_short_and_aligned(capsys):
    code, out, err = run_main(SMALL + ["--scenario", "pause"], capsys)
    assert code == EXIT_OK, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("6 nodes, profile local, scenario pause")
    assert len(lines) < 25
    labels = [line for line in lines[1:]]
    columns = {line.index(line.split("  ", 2)[-1].lstrip()) for line in labels if line.strip()}
    assert len(columns) == 1, out  # values start in one column
    assert "convergence" in out and "rejoin" in out and "false deaths" in out


def test_duration_defaults_to_enough_for_the_scenario(capsys):
    code, out, _ = run_main(["simulate", "--nodes", "4", "--profile", "local", "--json"], capsys)
    assert code == EXIT_OK
    assert json.loads(out)["duration_s"] >= 60.0


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--nodes", "1"], "at least 2"),
    (["simulate", "--nodes", "0"], "at least 2"),
    (["simulate", "--nodes", "ten"], "whole number"),
    (["simulate"], "--nodes"),
    (["simulate", "--nodes", "5", "--loss", "1"], "[0, 1)"),
    (["simulate", "--nodes", "5", "--loss", "-0.1"], "[0, 1)"),
    (["simulate", "--nodes", "5", "--loss", "lots"], "probability"),
    (["simulate", "--nodes", "5", "--scenario", "meteor"], "invalid choice: 'meteor'"),
    (["simulate", "--nodes", "5", "--profile", "moon"], "invalid choice: 'moon'"),
    (["simulate", "--nodes", "5", "--duration", "soon"], "invalid duration 'soon'"),
    (["simulate", "--nodes", "5", "--duration", "0s"], "longer than 0"),
    (["simulate", "--nodes", "5", "--seed", "x"], "integer"),
    (["simulate", "--nodes", "5", "--preempt-delay", "soon"], "invalid duration 'soon'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    code, out, err = run_main(argv, capsys)
    assert code == EXIT_USAGE
    assert out == ""
    assert message in err
    assert "usage:" in err


def test_no_subcommand_prints_help_and_exits_2(capsys):
    code, out, err = run_main([], capsys)
    assert code == EXIT_USAGE
    assert "simulate" in err


def test_help_describes_every_option_and_scenario(capsys):
    code, out, _ = run_main(["simulate", "--help"], capsys)
    assert code == EXIT_OK
    for option in ("--nodes", "--profile", "--loss", "--scenario", "--duration", "--seed", "--json",
                   "--insecure", "--no-preempt", "--preempt-delay"):
        assert option in out
    for name in SCENARIOS:
        assert name in out
    assert "virtual" in out and "wall_s" in out
    # The false alarm definitions and the new figures are documented.
    for key in ("false_deaths", "false_suspicions_seen", "term_regressions", "max_leaders_at_once",
                "heal_leader_s", "preempt_s", "forged_rejected", "leader_at_end"):
        assert key in out, key
    assert "declared itself" in out


def test_insecure_and_no_preempt_flags(capsys):
    code, out, err = run_main(SMALL + ["--scenario", "crash-leader", "--json"], capsys)
    assert code == EXIT_OK, err
    signed = json.loads(out)
    assert signed["insecure"] is False and signed["signature_checks"] > 0 and signed["preempt"] is True
    code, out, err = run_main(SMALL + ["--scenario", "crash-leader", "--insecure", "--no-preempt", "--json"],
                              capsys)
    assert code == EXIT_OK, err
    unsigned = json.loads(out)
    assert unsigned["insecure"] is True and unsigned["signature_checks"] == 0
    assert unsigned["preempt"] is False
    code, out, err = run_main(SMALL + ["--scenario", "steady", "--insecure"], capsys)
    assert code == EXIT_OK and "insecure (unsigned claims)" in out.splitlines()[0]


def test_preempt_delay_flag(capsys):
    code, out, err = run_main(["simulate", "--nodes", "6", "--profile", "local", "--scenario", "preempt",
                               "--preempt-delay", "2s", "--json"], capsys)
    assert code == EXIT_OK, err
    result = json.loads(out)
    assert result["preempt_delay_s"] == 2.0
    assert result["preempt_s"] is not None and 2.0 <= result["preempt_s"] < 5.0, out


def test_forged_with_insecure_is_a_usage_error(capsys):
    code, out, err = run_main(SMALL + ["--scenario", "forged", "--insecure"], capsys)
    assert code == EXIT_USAGE
    assert "without --insecure" in err


def test_summary_of_the_new_scenarios(capsys):
    for scenario, label in (("forged", "forged claims"), ("flap", "flaps"), ("preempt", "preempt"),
                            ("partition-heal", "heal, one leader")):
        code, out, err = run_main(["simulate", "--nodes", "6", "--profile", "local", "--scenario", scenario],
                                  capsys)
        assert code == EXIT_OK, err
        assert label in out and "term regressions" in out and "leader at end" in out, out


def test_top_level_help_and_version(capsys):
    code, out, _ = run_main(["--help"], capsys)
    assert code == EXIT_OK and "simulate" in out
    code, out, _ = run_main(["--version"], capsys)
    assert code == EXIT_OK and out.startswith("leaderd ")


def cli_json(args, hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    proc = subprocess.run([sys.executable, "-m", "agent.cli"] + args, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    result.pop("wall_s")
    return result


def test_same_seed_same_json_across_processes_and_hash_seeds():
    # Set and dict iteration over str must not leak into the result: run the
    # same simulation in two processes with different string hashing.
    args = ["simulate", "--nodes", "8", "--profile", "local", "--scenario", "partition-heal",
            "--loss", "0.05", "--seed", "11", "--duration", "40s", "--json"]
    first = cli_json(args, 1)
    second = cli_json(args, 2)
    assert first == second, "seed 11 differs between processes"
