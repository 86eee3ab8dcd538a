"""Prometheus metrics of the SMPP adapter, read from its health() at each scrape.

Why a collector over health() and not counters updated in the engine: the engine's round
already keeps these counts (they feed the health file and `hub smpp status`); reading them
when Prometheus asks costs the engine nothing and cannot disagree with the health file.
Served by `hub smpp run` when `metrics_port` is set in config/smpp.yaml (docs/sms.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

#: Engine counters (health() keys) -> what they count.
ENGINE_COUNTERS = {
    "received": "sms.send messages taken from adapter.smpp",
    "accepted_messages": "Messages whose every part the SMSC accepted",
    "statuses": "sms.status messages published (delivered, undeliverable, expired, refused)",
    "mo": "Customers' SMS (sms.mo) published",
    "retried": "sms.send sent back to the hub's retry tiers (retryable SMSC errors)",
    "dead_lettered": "sms.send given up (permanent SMSC errors, attempts exhausted)",
    "unknown_receipts": "Delivery receipts that matched no submit within the grace time",
    "resent_parts": "Parts submitted again after a failover or an unanswered submit",
}
ENGINE_GAUGES = {
    "jobs": "sms.send messages being worked on",
    "queued_parts": "Parts waiting for a window slot",
    "pending_receipts": "Accepted parts waiting for their receipt",
    "unknown_receipts_now": "Receipts held as unknown right now (hub smpp receipts --unknown)",
}
LINK_GAUGES = {
    "bound": "1 while the SMSC link is bound",
    "in_flight": "submit_sm sent, not yet answered",
    "window": "Configured send window",
    "congestion_window": "Send window in force after the SMSC's throttling answers",
}


class SmppCollector:
    def __init__(self, health: Callable[[], dict]) -> None:
        self.health = health

    def collect(self) -> Iterator:
        h = self.health()
        for key, text in ENGINE_COUNTERS.items():
            yield CounterMetricFamily(f"smpp_{key}", text, value=float(h.get(key, 0) or 0))
        for key, text in ENGINE_GAUGES.items():
            yield GaugeMetricFamily(f"smpp_{key}", text, value=float(h.get(key, 0) or 0))
        yield GaugeMetricFamily("smpp_broker_connected", "1 while the adapter's broker connection is open",
                                value=1.0 if (h.get("broker") or {}).get("connected") else 0.0)
        links = h.get("smscs") or []
        for key, text in LINK_GAUGES.items():
            g = GaugeMetricFamily(f"smpp_smsc_{key}", text, labels=["smsc"])
            for link in links:
                g.add_metric([link["name"]], float(link.get(key) or 0))
            yield g
        # Every numeric per-link counter (submits, receipts, mo, refused, throttled, binds, ...).
        events = CounterMetricFamily("smpp_smsc_events", "Per-SMSC events by kind", labels=["smsc", "kind"])
        for link in links:
            for key, value in link.items():
                if key not in LINK_GAUGES and key not in ("tps", "priority") and isinstance(value, int) \
                        and not isinstance(value, bool):
                    events.add_metric([link["name"], key], float(value))
        yield events

