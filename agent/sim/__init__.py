"""The deterministic simulator: the real agent/core on a virtual network, in virtual time.

`simulate(...)` runs one scenario and returns the report that
`leaderd simulate --json` prints. Same seed and arguments, same report
(except wall_s, the real seconds it took). network.py holds the scheduler
and faults, metrics.py the measurements, scenarios.py the fault schedules,
nodes.py the cores (real Ed25519 keys, derived from the seed, unless
insecure).
"""

import time

from agent.core import profile as profiles
from agent.sim.metrics import seconds
from agent.sim.network import Simulation, node_name
from agent.sim.nodes import NodeFactory
from agent.sim.scenarios import (
    FORGER_NAME, FORGER_PRIORITY, FORGER_SCENARIOS, HEAL_SCENARIOS, PREEMPT, PREEMPT_DELAY_MS,
    REJOIN_SCENARIOS, SCENARIOS, TRANSFER, Plan,
)

__all__ = ["simulate", "Simulation", "SCENARIOS", "Plan", "build", "report"]

# Network defaults per profile: one-way latency base and uniform jitter, in ms.
LATENCY_MS = {"local": (0, 1), "lan": (1, 2), "wan": (30, 20)}


def build(nodes, profile="lan", loss=0.0, scenario="steady", seed=1, node_factory=None,
          insecure=False, preempt=True, preempt_delay_ms=None, shared_cache=True, **network):
    """A Simulation with the scenario scheduled onto it, and its Plan; ready to run.

    Each core gets a real Ed25519 key and the trust list of all nodes
    (insecure=True: no keys, unsigned claims); preempt and preempt_delay_ms
    go to every core; shared_cache shares signature verifications between
    cores (same results, less wall time; see nodes.py). The forged scenario
    adds one member, "forger", beyond `nodes`.
    """
    if scenario not in SCENARIOS:
        raise ValueError("unknown scenario %r (allowed: %s)" % (scenario, ", ".join(SCENARIOS)))
    if nodes < 2:
        raise ValueError("nodes must be at least 2, got %r" % (nodes,))
    if not 0.0 <= loss < 1.0:
        raise ValueError("loss must be in [0, 1), got %r" % (loss,))
    if preempt_delay_ms is not None and (not isinstance(preempt_delay_ms, int) or preempt_delay_ms < 0):
        raise ValueError("preempt_delay_ms must be a non-negative int, got %r" % (preempt_delay_ms,))
    if insecure and scenario in FORGER_SCENARIOS:
        raise ValueError("scenario %s needs signed claims: run it without --insecure" % scenario)
    prof = profile if isinstance(profile, profiles.Profile) else profiles.make(profile)
    latency, jitter = LATENCY_MS.get(prof.name, LATENCY_MS["lan"])
    network.setdefault("latency_ms", latency)
    network.setdefault("jitter_ms", jitter)
    count = nodes
    if scenario in FORGER_SCENARIOS:
        count = nodes + 1
        names = [node_name(index, nodes) for index in range(nodes)] + [FORGER_NAME]
        network.setdefault("names", names)
        network.setdefault("priorities", [100] * nodes + [FORGER_PRIORITY])
    names = network.get("names") or [node_name(index, count) for index in range(count)]
    if node_factory is None:
        untrusted = (FORGER_NAME,) if scenario in FORGER_SCENARIOS else ()
        node_factory = NodeFactory(seed, names, secure=not insecure, preempt=preempt,
                                   preempt_delay_ms=preempt_delay_ms, untrusted=untrusted,
                                   shared_cache=shared_cache)
    sim = Simulation(count, prof, seed=seed, loss=loss, node_factory=node_factory, **network)
    sim.preempt = preempt
    plan = Plan(scenario, prof, nodes, seed,
                preempt_delay_ms=PREEMPT_DELAY_MS if preempt_delay_ms is None else preempt_delay_ms)
    SCENARIOS[scenario][0](sim, plan)
    return sim, plan


def simulate(nodes, profile="lan", loss=0.0, scenario="steady", duration_ms=None, seed=1,
             node_factory=None, **options):
    """Run one scenario and return its report (a JSON-ready dict; see report()).

    options: build()'s (insecure, preempt, preempt_delay_ms, shared_cache) and
    the network's (latency_ms, jitter_ms, duplicate, ...).
    """
    sim, plan = build(nodes, profile, loss, scenario, seed, node_factory, **options)
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
    running = [slot.node for slot in sim.slots if slot.node is not None]
    extras = dict(plan.extras)
    extras.update(metrics.extras)
    rejected = {}
    for key in sorted(stats):
        if key.startswith("claims_rejected_"):
            rejected[key[len("claims_rejected_"):]] = stats[key]
    forged = plan.scenario in FORGER_SCENARIOS

    def extra_seconds(key):
        return seconds(extras.get(key))

    out = {
        "nodes": sim.count - (1 if forged else 0),
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
        "rejoin_s": extra_seconds("rejoin_s") if plan.scenario in REJOIN_SCENARIOS else None,
        "heal_s": extra_seconds("heal_s") if plan.scenario in HEAL_SCENARIOS else None,
        "heal_leader_s": extra_seconds("heal_leader_s") if plan.scenario in HEAL_SCENARIOS else None,
        "preempt_s": extra_seconds("preempt_s") if plan.scenario == PREEMPT else None,
        "false_suspicions_seen": metrics.false_suspicions_seen,
        "false_deaths_seen": metrics.false_deaths_seen,
        "election": bool(sim.election),
        "insecure": bool(running) and all(getattr(node, "insecure", True) for node in running),
        "preempt": getattr(sim, "preempt", True),
        "preempt_delay_s": seconds(plan.preempt_delay_ms),
        "leader": metrics.agreed if sim.election else None,
        "leader_at_end": metrics.agreed_now() if sim.election else None,
        "term_at_end": max((node.leader()[1] for node in running if node.leader() is not None), default=None)
        if sim.election else None,
        "term_regressions": metrics.term_regressions if sim.election else None,
        "max_leaders_at_once": metrics.max_leaders_at_once if sim.election else None,
        "signature_checks": stats.get("signature_checks"),
        "claims_rejected": rejected,
        "live_nodes": metrics.live_count,
        "converged_at_end": metrics.converged(),
        "dropped": dropped,
        "network": dict(sim.network),
        "events": dict(sorted(metrics.event_counts.items())),
        "wall_s": round(wall_s, 3),
    }
    if plan.scenario == PREEMPT:
        out["leader_before"] = extras.get("leader_before")
        out["interim_leader"] = extras.get("interim_leader")
        out["restart_at_s"] = extra_seconds("restart_at_s")
    if plan.scenario == TRANSFER:
        out["transfer_to"] = extras.get("transfer_to")
        out["transfer_s"] = extra_seconds("transfer_s")
    if "flaps" in extras:
        out["flaps"] = extras["flaps"]
        out["flap_pause_s"] = extra_seconds("flap_pause_s")
    if forged:
        out["forger"] = FORGER_NAME
        out["forged_sent"] = extras.get("forged_sent", 0)
        out["forged_rejected"] = sum(rejected.values())
        out["forger_followed"] = metrics.forger_followed
        out["forged_term_adopted"] = metrics.forged_term_adopted
        out["forged_term_min"] = metrics.forged_floor
    factory = sim.node_factory
    if isinstance(factory, NodeFactory) and factory.secure:
        out["ed25519_verifications"] = factory.verifications
    return out
