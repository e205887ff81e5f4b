"""The deterministic simulator: the real agent/core on a virtual network, in virtual time.

`simulate(...)` runs one scenario and returns the report that
`leaderd simulate --json` prints. Same seed and arguments, same report
(except wall_s, the real seconds it took). network.py holds the scheduler
and faults, metrics.py the measurements, scenarios.py the fault schedules.
"""

import time

from agent.core import profile as profiles
from agent.sim.metrics import seconds
from agent.sim.network import Simulation
from agent.sim.scenarios import HEAL_SCENARIOS, REJOIN_SCENARIOS, SCENARIOS, Plan

__all__ = ["simulate", "Simulation", "SCENARIOS", "Plan", "build", "report"]

# Network defaults per profile: one-way latency base and uniform jitter, in ms.
LATENCY_MS = {"local": (0, 1), "lan": (1, 2), "wan": (30, 20)}


def build(nodes, profile="lan", loss=0.0, scenario="steady", seed=1, node_factory=None, **network):
    """A Simulation with the scenario scheduled onto it, and its Plan; ready to run."""
    if scenario not in SCENARIOS:
        raise ValueError("unknown scenario %r (allowed: %s)" % (scenario, ", ".join(SCENARIOS)))
    if nodes < 2:
        raise ValueError("nodes must be at least 2, got %r" % (nodes,))
    if not 0.0 <= loss < 1.0:
        raise ValueError("loss must be in [0, 1), got %r" % (loss,))
    prof = profile if isinstance(profile, profiles.Profile) else profiles.make(profile)
    latency, jitter = LATENCY_MS.get(prof.name, LATENCY_MS["lan"])
    network.setdefault("latency_ms", latency)
    network.setdefault("jitter_ms", jitter)
    sim = Simulation(nodes, prof, seed=seed, loss=loss, node_factory=node_factory, **network)
    plan = Plan(scenario, prof, nodes, seed)
    SCENARIOS[scenario][0](sim, plan)
    return sim, plan


def simulate(nodes, profile="lan", loss=0.0, scenario="steady", duration_ms=None, seed=1,
             node_factory=None, **network):
    """Run one scenario and return its report (a JSON-ready dict; see report())."""
    sim, plan = build(nodes, profile, loss, scenario, seed, node_factory, **network)
    duration = duration_ms if duration_ms is not None else plan.default_duration_ms()
    if duration <= 0:
        raise ValueError("duration must be positive, got %r ms" % (duration,))
    started = time.perf_counter()
    sim.run(duration)
    wall = time.perf_counter() - started
    return report(sim, plan, loss, duration, wall)


def report(sim, plan, loss, duration_ms, wall_s):
    """The run's figures; times in virtual seconds (3 decimals) or None when not applicable."""
    metrics = sim.metrics
    crashed_at, first_at, all_at = metrics.detection()
    per_node_s = sim.count * duration_ms / 1000.0
    stats = sim.total_stats()
    dropped = None
    drop_keys = [key for key in stats if key.startswith("dropped")]
    if drop_keys:
        dropped = sum(stats[key] for key in drop_keys)
    out = {
        "nodes": sim.count,
        "profile": sim.profile.name,
        "scenario": plan.scenario,
        "seed": sim.seed,
        "loss": loss,
        "duration_s": seconds(duration_ms),
        "convergence_s": seconds(metrics.convergence_at),
        "detect_first_s": seconds(first_at - crashed_at) if first_at is not None else None,
        "detect_all_s": seconds(all_at - crashed_at) if all_at is not None else None,
        "failover_s": seconds(metrics.failover_ms) if sim.election else None,
        "false_suspicions": metrics.false_suspicions,
        "false_deaths": metrics.false_deaths,
        "leader_changes": metrics.leader_changes if sim.election else None,
        "msgs_per_node_s": round(sim.sent / per_node_s, 3),
        "bytes_per_node_s": round(sim.sent_bytes / per_node_s, 3),
        "max_datagram_bytes": sim.max_datagram_bytes,
        "fault_at_s": seconds(plan.fault_at),
        "fault_node": plan.fault_node,
        "rejoin_s": seconds(metrics.extras.get("rejoin_s")) if plan.scenario in REJOIN_SCENARIOS else None,
        "heal_s": seconds(metrics.extras.get("heal_s")) if plan.scenario in HEAL_SCENARIOS else None,
        "election": bool(sim.election),
        "leader": metrics.agreed if sim.election else None,
        "live_nodes": metrics.live_count,
        "converged_at_end": metrics.converged(),
        "dropped": dropped,
        "network": dict(sim.network),
        "events": dict(sorted(metrics.event_counts.items())),
        "wall_s": round(wall_s, 3),
    }
    return out
