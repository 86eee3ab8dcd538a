"""The hub process's own Prometheus metrics: what only the hop knows (per route, node and verdict).

The console's /metrics shows what the broker and the store say; this exporter, served by
`hub run` when `metrics_port` is set, adds the hop's own counts and its latency. Counting is
per committed batch (one `inc` per label set, not per message) so it stays off the hot path.
One registry per HopWorker: tests run several hubs in one process.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("hub.metrics")

#: Arrival to commit-ok, in seconds: the hop's own share of the end-to-end latency.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HopMetrics:
    def __init__(self, health: Callable[[], dict], backlog: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter("hub_messages", "Messages the hop committed, by type, sender, route and verdict "
                                "(delivered, retrying, dead_lettered, duplicate)",
                                ["type", "source", "route", "verdict"], registry=r)
        self.deliveries = Counter("hub_deliveries", "Copies published to a destination queue (node.<code>, "
                                  "adapter.<name>)", ["destination"], registry=r)
        self.failures = Counter("hub_failures", "Refusals, retries and dead letters by reason code",
                                ["reason_code", "verdict"], registry=r)
        self.latency = Histogram("hub_hop_seconds", "Arrival at the hub to commit-ok of its batch",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.commit = Histogram("hub_commit_seconds", "tx.commit sent to commit-ok handled, per broker transaction",
                                buckets=LATENCY_BUCKETS, registry=r)
        self.loop_lag = Histogram("hub_loop_lag_seconds", "How late the hop's event loop ran a timer (sampled "
                                  "every 100 ms)", buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("hub_batch_messages", "Messages per broker transaction",
                               buckets=(1, 5, 20, 50, 100, 200, 500, 1000), registry=r)
        self.commits = Counter("hub_commits", "Broker transactions committed", registry=r)
        self.reconnects = Counter("hub_reconnects", "Broker connections re-established", registry=r)
        connected = Gauge("hub_connected", "1 while the hop consumes from the broker", registry=r)
        connected.set_function(lambda: 1.0 if health().get("connected") else 0.0)
        blocked = Gauge("hub_broker_blocked", "1 while the broker blocks publishing (memory or disk alarm)",
                        registry=r)
        blocked.set_function(lambda: 1.0 if health().get("blocked") else 0.0)
        backlog_g = Gauge("hub_journal_backlog", "Journal entries committed to the broker, not yet written",
                          registry=r)
        backlog_g.set_function(lambda: float(backlog()))

    def observe(self, batch: Iterable, now_perf: float | None = None) -> None:
        """Count one committed batch of pipeline Outcomes (each with `.arrived`, a perf_counter time)."""
        now_perf = time.perf_counter() if now_perf is None else now_perf
        msgs: Tally = Tally()
        dests: Tally = Tally()
        fails: Tally = Tally()
        n = 0
        for o in batch:
            n += 1
            verdict = o.verdict.value
            msgs[(o.type or "", o.source or "", o.route_id or "", verdict)] += 1
            for d in o.destinations:
                dests[d] += 1
            if o.error is not None:
                fails[(str(o.error.reason), verdict)] += 1
            arrived = getattr(o, "arrived", 0.0)
            if arrived:
                self.latency.observe(max(0.0, now_perf - arrived))
        for labels, k in msgs.items():
            self.messages.labels(*labels).inc(k)
        for d, k in dests.items():
            self.deliveries.labels(d).inc(k)
        for labels, k in fails.items():
            self.failures.labels(*labels).inc(k)
        self.batch.observe(n)
        self.commits.inc()

    def serve(self, port: int, host: str = "127.0.0.1"):
        return serve_registry(self.registry, port, host)


def serve_registry(registry: CollectorRegistry, port: int, host: str = "127.0.0.1"):
    """Serve `registry` at /metrics in a daemon thread (prometheus_client's own HTTP server).

    Returns the server: `shutdown()` stops it (tests; a process simply exits)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics served", extra={"url": f"http://{host}:{port}/metrics"})
    return server


def serve_collector(collector, port: int, host: str = "127.0.0.1"):
    """Serve one custom collector (an adapter's figures read from its health() at each scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return serve_registry(registry, port, host)
