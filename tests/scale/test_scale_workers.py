"""Several hub workers on one broker sharing one PostgreSQL store (docs/scale-out.md).

Competing consumers on hub.in: one worker killed with SIGKILL mid-stream loses and
duplicates nothing, message ids sent twice reach the business once whichever worker takes
each copy, and durable timers claimed by three timer services fire exactly once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pika
import pytest
from running_hub import HubSubprocess, notice
from waiting import wait_until

from hub.envelope import Outgoing, Props
from hub.store import JournalStatus, open_store
from hub.timer_service import TimerService
from hub.topology import DELIVER


class Collector:
    """Consumes a node's queue (as the admin user) and remembers every message id, in arrival order."""

    def __init__(self, settings, queue: str) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=500)
        self.ids: list[str] = []
        self.ch.basic_consume(queue, self._on, auto_ack=True)

    def _on(self, ch, method, props, body) -> None:
        self.ids.append(props.message_id)

    def until(self, expect: set[str], timeout: float) -> list[str]:
        def done():
            self.conn.process_data_events(time_limit=0.1)
            return expect <= set(self.ids)
        wait_until(done, timeout, 0, f"{len(expect)} distinct ids arrive (have {len(set(self.ids))})")
        return self.ids

    def settle(self) -> None:
        """Keep consuming until the queue stays empty for a moment (late duplicates would show here)."""
        self.conn.process_data_events(time_limit=0.5)

    def close(self) -> None:
        self.conn.close()


def publish(settings, password: str, ids: list[str]) -> None:
    user = settings.broker_user("node-44")
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost(user, password)))
    ch = conn.channel()
    ch.confirm_delivery()
    for mid in ids:
        ch.basic_publish("hub.ingress", "notice.text", notice("44", "11", f"通知 {mid}"), pika.BasicProperties(
            message_id=mid, type="notice.text", user_id=user, delivery_mode=2, content_type="application/xml",
            content_encoding="utf-8"))
    conn.close()


def queue_depth(settings, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


@pytest.fixture
def pg_settings(settings, pg_schema_url):
    return settings.model_copy(update={"store_url": pg_schema_url})


@pytest.fixture
def workers(pg_settings, applied_topology, tmp_path):
    made: list[HubSubprocess] = []

    def start(n: int) -> list[HubSubprocess]:
        for _ in range(n):
            folder = tmp_path / f"w{len(made)}"
            folder.mkdir()
            made.append(HubSubprocess(pg_settings, folder, f"hub-w{len(made)}").start())
        return made[-n:]
    yield start
    for w in made:
        w.stop()


def consumers(settings, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.consumer_count
    finally:
        conn.close()


@pytest.mark.slow
def test_three_workers_one_killed_midstream_no_loss_no_duplicate(pg_settings, applied_topology, workers):
    """6,000 messages, 1,200 of them sent twice (a sender's re-send); one of three workers is
    killed with SIGKILL while they flow: node 11 gets each id exactly once."""
    _, passwords = applied_topology
    n = 6_000
    ids = [f"sc-{i}" for i in range(n)]
    resent = [f"sc-{i}" for i in range(0, n, 5)]
    three = workers(3)
    wait_until(lambda: consumers(pg_settings, "hub.in") >= 3 * pg_settings.hop.lanes, 60,
               description="three workers consume hub.in")
    bj = Collector(pg_settings, "node.11")
    try:
        # The re-sends interleave with the originals a few hundred messages later, so the two
        # copies of one id are often taken by different workers.
        stream = []
        for i in range(0, n, 300):
            stream += ids[i:i + 300] + [m for m in resent if int(m[3:]) in range(i - 300, i)]
        stream += [m for m in resent if int(m[3:]) >= n - 300]
        assert sorted(stream) == sorted(ids + resent)
        publish(pg_settings, passwords[pg_settings.broker_user("node-44")], stream)
        wait_until(lambda: (bj.conn.process_data_events(time_limit=0.05), len(bj.ids))[1] >= n // 4, 60,
                   0, "a quarter relayed")
        three[0].kill9()
        got = bj.until(set(ids), 90)
        wait_until(lambda: queue_depth(pg_settings, "hub.in") == 0, 30, description="hub.in drained")
        bj.settle()
        got = bj.ids
        dups = len(got) - len(set(got))
        assert dups == 0, f"{dups} duplicates delivered to node 11, e.g. {[m for m in got if got.count(m) > 1][:5]}"
        assert set(got) == set(ids)
        assert queue_depth(pg_settings, "hub.dlq") == 0
    finally:
        bj.close()
    store = open_store(pg_settings.store_url)
    try:
        wait_until(lambda: store.count_by_status().get(JournalStatus.delivered.value, 0) >= n, 30,
                   description="the survivors journaled every delivery")
        assert store.get("sc-0").status is JournalStatus.delivered
    finally:
        store.close()


class ProbeFlow:
    """A flow whose timers publish one alarm each to node 11, with the timer's key as message id."""

    name = "probe"

    def on_timer(self, timer, now):
        return [Outgoing(DELIVER, "node.11", Props(message_id=f"alarm-{timer.key}", type="hub.alarm",
                                                   content_type="text/plain"), timer.key.encode())]


def test_deadlines_fire_exactly_once_with_three_workers(pg_settings, applied_topology):
    """300 due timers, three timer services (as three hub workers run them) on one PostgreSQL
    store: each alarm published once; a worker that dies after claiming loses its timers to
    another worker only when its lease has expired."""
    store = open_store(pg_settings.store_url)
    now = datetime.now(UTC)
    keys = [f"deadline-{i}" for i in range(300)]
    for i, k in enumerate(keys):
        store.schedule(k, now - timedelta(seconds=1) + timedelta(milliseconds=i), {"flow": "probe"})
    # A worker that claims five timers and dies before publishing them (kill -9 between claim and fire).
    dead = store.claim_due(now, "hub-dead", limit=5, lease_s=60)
    assert len(dead) == 5
    services = [TimerService(pg_settings, open_store(pg_settings.store_url), [ProbeFlow()], owner=f"hub-{i}",
                             clock=lambda: now) for i in range(3)]
    bj = Collector(pg_settings, "node.11")
    try:
        fired = [0, 0, 0]
        go = threading.Barrier(3)

        def run(i):
            go.wait()
            fired[i] = services[i].tick(now)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(fired) == 295, f"fired per worker: {fired}"
        live = {f"alarm-{k}" for k in keys} - {f"alarm-{t.key}" for t in dead}
        bj.until(live, 20)
        assert all(s.tick(now + timedelta(seconds=30)) == 0 for s in services), "a leased timer was taken early"
        later = now + timedelta(seconds=61)                   # the dead worker's lease has run out
        assert sum(s.tick(later) for s in services) == 5
        assert all(s.tick(later + timedelta(hours=1)) == 0 for s in services)
        got = bj.until({f"alarm-{k}" for k in keys}, 20)
        bj.settle()
        got = bj.ids
        assert len(got) == len(set(got)) == 300, f"{len(got) - len(set(got))} alarms fired twice"
        assert all(store.get_timer(k).fired_at is not None for k in keys)
        assert store.mark_fired([t.key for t in dead], owner="hub-dead") == set(), \
            "the dead worker, back from the grave, must learn it lost its timers"
    finally:
        bj.close()
        for s in services:
            s.stop()
            s.run()   # closes its connection (the stop event is already set)
            s.store.close()
        store.close()
