"""The optional Prometheus endpoint (`metrics: {listen: 127.0.0.1:9464}`): GET /metrics.

Off by default. prometheus-client is imported only when the endpoint is on,
so an agent without it pays nothing in memory. The endpoint's HTTP server
runs in prometheus-client's own thread; each scrape asks the agent's event
loop for its `status` (the same counters as `leaderd status --json`), so the
figures are read where they are written, never half-updated.

Metrics (every node exports them; a cluster's alerts compare the nodes'):
leaderd_is_leader, leaderd_term, leaderd_leader{leader}, leaderd_eligible,
leaderd_maintenance, leaderd_leader_changes_total, leaderd_members{state},
leaderd_probes_total, leaderd_probe_failures_total, leaderd_suspicions_total,
leaderd_refutations_total, leaderd_datagrams_total{direction},
leaderd_bytes_total{direction}, leaderd_dropped_total{reason},
leaderd_local_health_score, leaderd_hook_runs_total,
leaderd_hook_failures_total, leaderd_hook_seconds_total.
contrib/prometheus/alerts.yml holds rules for them.
"""

import asyncio

# How long a scrape waits for the agent's loop.
SCRAPE_TIMEOUT_S = 2.0

_COUNTERS = (
    # (metric, stats key, help)
    ("leaderd_leader_changes_total", "hook_events", "Leader changes this node saw."),
    ("leaderd_probes_total", "probes", "Probes sent."),
    ("leaderd_probe_failures_total", "probe_failures", "Probes that got no ack, direct or indirect."),
    ("leaderd_suspicions_total", "suspicions", "Members this node saw become suspect."),
    ("leaderd_refutations_total", "refutations", "Suspicions or deaths of this node that it refuted."),
    ("leaderd_hook_runs_total", "hook_runs", "Hooks run."),
    ("leaderd_hook_failures_total", "hook_failures", "Hooks that failed (non-zero exit, timeout, no start)."),
)


def _families(status):
    """The metric families for one `status` reply."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    leader = status["leader"]
    stats = status["stats"]
    yield GaugeMetricFamily("leaderd_is_leader", "1 if this node leads, else 0.",
                            value=1 if leader["is_leader"] else 0)
    yield GaugeMetricFamily("leaderd_term", "The term of the leader this node follows (the fencing token).",
                            value=leader["term"] or 0)
    who = GaugeMetricFamily("leaderd_leader", "1, labelled with the leader this node follows (none: no leader).",
                            labels=["leader"])
    who.add_metric([leader["leader"] or ""], 1)
    yield who
    yield GaugeMetricFamily("leaderd_eligible", "1 if this node may lead (healthy, not in maintenance).",
                            value=1 if status["eligible"] else 0)
    yield GaugeMetricFamily("leaderd_maintenance", "1 if this node is in maintenance.",
                            value=1 if status.get("maintenance") else 0)
    members = GaugeMetricFamily("leaderd_members", "Members this node knows, by state (itself included).",
                                labels=["state"])
    for state in ("alive", "suspect", "dead", "left"):
        members.add_metric([state], status["members"].get(state, 0))
    yield members
    for name, key, text in _COUNTERS:
        yield CounterMetricFamily(name, text, value=stats.get(key, 0))
    yield CounterMetricFamily("leaderd_hook_seconds_total", "Seconds spent running hooks.",
                              value=stats.get("hook_ms", 0) / 1000.0)
    datagrams = CounterMetricFamily("leaderd_datagrams_total", "UDP datagrams, by direction.", labels=["direction"])
    datagrams.add_metric(["in"], stats["received_datagrams"])
    datagrams.add_metric(["out"], stats["sent_datagrams"])
    yield datagrams
    size = CounterMetricFamily("leaderd_bytes_total", "UDP payload bytes, by direction.", labels=["direction"])
    size.add_metric(["in"], stats["received_bytes"])
    size.add_metric(["out"], stats["sent_bytes"])
    yield size
    dropped = CounterMetricFamily("leaderd_dropped_total", "Datagrams and news dropped, by reason.",
                                  labels=["reason"])
    for key in sorted(stats):
        if key.startswith("dropped_"):
            dropped.add_metric([key[len("dropped_"):]], stats[key])
    yield dropped
    yield GaugeMetricFamily("leaderd_local_health_score",
                            "Lifeguard's local health: 0 is healthy; higher means this node is slow to answer.",
                            value=status["awareness"])


class _Collector:
    def __init__(self, status, loop):
        self.status = status
        self.loop = loop

    def collect(self):
        async def ask():
            return self.status()
        status = asyncio.run_coroutine_threadsafe(ask(), self.loop).result(SCRAPE_TIMEOUT_S)
        return list(_families(status))

    def describe(self):
        return []  # collected on demand; no registration-time scrape


def start(listen, status, loop):
    """Serves GET /metrics at listen ((host, port)) from status() (run in loop); returns a stop() function.

    ImportError when prometheus-client is not installed; OSError when the address cannot be bound.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(status, loop))
    server, thread = start_http_server(listen[1], addr=listen[0], registry=registry)

    def stop():
        server.shutdown()
        server.server_close()
        thread.join(5)
    return stop
