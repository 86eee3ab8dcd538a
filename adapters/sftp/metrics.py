"""Prometheus metrics of the SFTP adapter, read from its health() at each scrape.

Same shape as adapters/smpp/metrics.py: the adapter already keeps these figures for its
health (`hub sftp status`); a scrape reads them, so the transfer loop pays nothing. The
transfer counts come from the store (one grouped query per scrape).
Served by `hub sftp run` when `metrics_port` is set in config/sftp.yaml (docs/sftp.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class SftpCollector:
    def __init__(self, health: Callable[[], dict]) -> None:
        self.health = health

    def collect(self) -> Iterator:
        h = self.health()
        jobs = CounterMetricFamily("sftp_jobs", "Transfer jobs finished, by verdict (done, retrying, "
                                   "dead_lettered, duplicates, ...)", labels=["verdict"])
        for verdict, n in sorted((h.get("jobs") or {}).items()):
            jobs.add_metric([verdict], float(n))
        yield jobs
        transfers = GaugeMetricFamily("sftp_transfers", "Transfers recorded in the store, by direction and state",
                                      labels=["direction", "state"])
        for key, n in sorted((h.get("transfers") or {}).items()):
            direction, _, state = key.partition(".")
            transfers.add_metric([direction, state], float(n))
        yield transfers
        endpoint_ok = GaugeMetricFamily("sftp_endpoint_ok", "1 when the endpoint's last operation succeeded, 0 "
                                        "after an error, absent before the first one", labels=["node"])
        for node, e in sorted((h.get("endpoints") or {}).items()):
            if e.get("ok") is not None:
                endpoint_ok.add_metric([node], 1.0 if e["ok"] else 0.0)
        yield endpoint_ok
        yield GaugeMetricFamily("sftp_broker_connected", "1 while the adapter's broker connection is open",
                                value=1.0 if (h.get("bus") or {}).get("connected") else 0.0)
        yield GaugeMetricFamily("sftp_store_ok", "1 while the state store answers", value=1.0 if h.get("store") else 0.0)
        yield GaugeMetricFamily("sftp_ok", "1 when the store and every endpoint are fine", value=1.0 if h.get("ok") else 0.0)

