"""Fixtures of the order flow tests: a hub on the real broker, province CRMs, a timer ticker,
the pipeline and the flow without a broker, and the state store on SQLite or PostgreSQL.

Owns: wiring only. PostgreSQL must be running: a test that asks for it fails loudly, never
skips (a database is created for the run and dropped after it, a schema per test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from province import ProvinceCRM

from hub.envelope import HUB_QUEUE, RETRY_EXCHANGE, Incoming, Props
from hub.flows.order_settings import OrderSettings, load_order_settings
from hub.flows.orders import OrderFlow
from hub.pipeline import Outcome, Verdict
from hub.runtime import build_pipeline
from hub.settings import Settings, load_settings
from hub.store import Store, open_store
from hub.timer_service import TimerService
from hub.worker import HopWorker

REPO = Path(__file__).resolve().parents[2]
ENCODING = {"44": "gbk", "11": "utf-8", "00": "utf-8", "31": "utf-8", "37": "gb18030"}


# ----------------------------------------------------------------------------- PostgreSQL


# ----------------------------------------------------------------------------- without a broker


class FlowBench:
    """The real pipeline and OrderFlow on a real store, driven like the hop drives them."""

    def __init__(self, settings: Settings, store: Store, order_settings: OrderSettings | None = None) -> None:
        self.settings = settings
        self.pipeline = build_pipeline(settings)
        self.store = store
        self.flow = OrderFlow(settings, store, lambda: self.pipeline, order_settings=order_settings)
        self.pipeline.lookups = self.flow.lookups
        self.now = datetime.now(UTC)
        # The hop's own pre-publish step (dedupe, flows, key release), without its connection.
        self.worker = HopWorker(settings, self.pipeline, store, flows=[self.flow], clock=lambda: self.now)

    def send(self, sender: str, type_: str, body: bytes | str, *, now: datetime, message_id: str | None = None,
             encoding: str = "utf-8") -> Outcome:
        """One message through process -> business-key dedupe -> before_publish -> after_commit."""
        data = body.encode(encoding) if isinstance(body, str) else body
        msg = Incoming(data, Props(message_id=message_id or f"m-{uuid.uuid4().hex[:10]}", type=type_,
                                   user_id=self.settings.broker_user(f"node-{sender}"),
                                   content_type="application/xml", content_encoding=encoding))
        self.now = now
        while True:
            o = self.pipeline.process(msg, now)
            self.worker._prepare([o])
            self.flow.after_commit([o], now)
            if o.verdict is not Verdict.retrying:
                return o
            retry = o.outputs[0]   # what the retry tier would bring back to hub.in
            msg = Incoming(retry.body, retry.props, exchange=RETRY_EXCHANGE, routing_key=HUB_QUEUE)

    def tick(self, now: datetime, owner: str = "bench") -> list:
        """What TimerService.tick does, without publishing: [(timer, outputs)] for each due timer."""
        fired = []
        while timers := self.store.claim_due(now, owner, limit=100, lease_s=60):
            for t in timers:
                fired.append((t, self.flow.on_timer(t, now)))
            self.store.mark_fired([t.key for t in timers], owner=owner)
        return fired


@pytest.fixture
def bench_settings(tmp_path, store_url) -> Settings:
    return load_settings(REPO / "config" / "hub.yaml", config_dir=REPO / "config", routes_dir=REPO / "routes",
                         store_url=store_url, data_dir=tmp_path / "var")


@pytest.fixture
def flow_bench(bench_settings) -> Callable[..., FlowBench]:
    """flow_bench(order_settings=None) -> a FlowBench on this test's store (reopened on each call,
    as a restarted hub would)."""
    stores: list[Store] = []

    def make(order_settings: OrderSettings | None = None) -> FlowBench:
        store = open_store(bench_settings.store_url)
        stores.append(store)
        return FlowBench(bench_settings, store, order_settings)

    yield make
    for s in stores:
        s.close()


@pytest.fixture
def shipped_order_settings() -> OrderSettings:
    return load_order_settings(REPO / "config")


# ----------------------------------------------------------------------------- with the broker


@pytest.fixture
def crm(settings, applied_topology) -> Iterator[Callable[..., ProvinceCRM]]:
    """crm(code) -> a node's CRM as a plain pika client with its own user and configured encoding."""
    _, passwords = applied_topology
    made: list[ProvinceCRM] = []

    def make(code: str) -> ProvinceCRM:
        user = settings.broker_user(f"node-{code}")
        c = ProvinceCRM(settings.amqp_url_for_vhost(user, passwords[user]), code, user, ENCODING.get(code, "utf-8"))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


class Ticker:
    """The timer service of a running hub, ticked by the test at chosen times (no sleeping)."""

    def __init__(self, settings: Settings, hub) -> None:
        self.service = TimerService(settings, hub.proc.store, hub.proc.flows, owner=f"ticker-{uuid.uuid4().hex[:6]}",
                                    clock=lambda: datetime.now(UTC))

    def tick(self, now: datetime) -> int:
        return self.service.tick(now)

    def close(self) -> None:
        self.service.close()


@pytest.fixture
def ticker(settings) -> Iterator[Callable]:
    made: list[Ticker] = []

    def make(hub) -> Ticker:
        t = Ticker(settings, hub)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()
