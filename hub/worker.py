"""The reliable hop: consume hub.in, process, publish and ack atomically, journal.

Why transactions and not publisher confirms: a batch of outputs and the acks of the
inputs that caused them go to the broker in one AMQP transaction (tx.select / tx.commit)
on the consuming channel. If the hub dies (kill -9) before tx.commit-ok, the broker
discards both, so the inputs come back and nothing was published; after commit-ok both
have happened. That is what "kill the hub mid-stream: every message delivered, none
twice" needs, which confirms cannot give (a crash between confirm and ack duplicates).
RabbitMQ sends tx.commit-ok only when the queues have confirmed the messages, quorum
queues included. RabbitMQ refuses any other command on the channel while a commit is in
progress, so the next batch is processed while the current one commits and is sent after
commit-ok: the window (prefetch) keeps the pipeline full.

Single-threaded on pika's SelectConnection: no re-entrant publishing from callbacks (the
kombu confirm_publish trap), heartbeats served between batches.
Owns: connection lifecycle, batching, dedupe look-ups, journaling after commit, reload
swap, graceful stop. Must not: decide anything about a message (hub/pipeline.py does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pika
from pika.adapters.select_connection import SelectConnection

from hub import amqp_io
from hub.envelope import H_REPLAY, HUB_QUEUE, Incoming, Props
from hub.journal_writer import JournalWriter
from hub.metrics import HopMetrics
from hub.pipeline import Outcome, Pipeline, Verdict
from hub.settings import Settings
from hub.store import Hop, JournalEntry, JournalStatus, Store
from protocols.errors import HubError

log = logging.getLogger("hub.worker")

_STATUS = {
    Verdict.delivered: JournalStatus.delivered,
    Verdict.retrying: JournalStatus.retrying,
    Verdict.dead_lettered: JournalStatus.dead_lettered,
    Verdict.duplicate: JournalStatus.duplicate,
}


def _is_normal_close(reason) -> bool:
    """A channel or connection closed by us (200), as opposed to an error from the broker."""
    return getattr(reason, "reply_code", 200) in (0, 200)


def to_props(p: pika.BasicProperties) -> Props:
    return Props(message_id=p.message_id, type=p.type, user_id=p.user_id, correlation_id=p.correlation_id,
                 reply_to=p.reply_to, content_type=p.content_type, content_encoding=p.content_encoding,
                 timestamp=p.timestamp, app_id=p.app_id, delivery_mode=p.delivery_mode,
                 headers=dict(p.headers or {}))


def to_pika(p: Props) -> pika.BasicProperties:
    return pika.BasicProperties(message_id=p.message_id, type=p.type, correlation_id=p.correlation_id,
                                reply_to=p.reply_to, content_type=p.content_type,
                                content_encoding=p.content_encoding, timestamp=p.timestamp, app_id=p.app_id,
                                delivery_mode=p.delivery_mode or 2, headers=p.headers or None)


class _Lane:
    """One consuming channel in transaction mode; lanes commit independently, so one
    publishes while another waits for its commit-ok (RabbitMQ allows one tx per channel)."""

    def __init__(self, index: int, ch) -> None:
        self.index = index
        self.ch = ch
        self.pending: list[Outcome] = []
        self.committing: list[Outcome] | None = None
        self.timer = None
        self.consumer_tag: str | None = None
        self.commit_sent = 0.0  # perf_counter() of the outstanding tx.commit


class HopWorker:
    """Runs the hop until stop(); reconnects on broker loss."""

    def __init__(self, settings: Settings, pipeline: Pipeline, store: Store, *,
                 queue: str = HUB_QUEUE, clock: Callable[[], datetime] | None = None,
                 worker_id: str = "hub", flows: list | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self.queue = queue
        self.clock = clock or (lambda: datetime.now(UTC))
        self.worker_id = worker_id
        self.flows = list(flows or [])
        self.journal = JournalWriter(store)
        self._lookups = store.hot_path()  # the event loop's dedupe look-ups
        amqp_io.coalesce_writes()
        self.params = pika.URLParameters(settings.amqp_url_for_vhost())
        self.params.heartbeat = settings.hop.heartbeat_s
        self.params.client_properties = {"connection_name": f"cs-hub {worker_id}"}
        self.stats: dict[str, int] = {"in": 0, "delivered": 0, "retrying": 0, "dead_lettered": 0,
                                      "duplicate": 0, "commits": 0, "reconnects": 0}
        self.health = {"connected": False, "blocked": False, "last_commit": None}
        self.metrics = HopMetrics(lambda: self.health, self.journal.backlog)
        self._stopping = False
        self._conn: SelectConnection | None = None
        self._ready = threading.Event()
        self._reset()

    # --- public, thread-safe -------------------------------------------------------
    def run(self) -> None:
        """Blocks: connect, consume, reconnect with backoff, until stop() finishes."""
        backoff = 0.5
        while not self._stopping:
            self._reset()
            self._conn = SelectConnection(self.params, on_open_callback=self._on_open,
                                          on_open_error_callback=self._on_open_error,
                                          on_close_callback=self._on_closed)
            self._conn.ioloop.start()
            if self._stopping:
                break
            self.stats["reconnects"] += 1
            self.metrics.reconnects.inc()
            log.warning("broker connection lost; reconnecting", extra={"backoff_s": backoff})
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0) if not self.health["connected"] else 0.5
        if not self.journal.flush(30):
            log.error("journal still has %d unwritten entries at stop", self.journal.backlog())
        self.journal.close()
        self._lookups.close()
        log.info("hop stopped", extra=self.stats)

    def stop(self) -> None:
        self._stopping = True
        conn = self._conn
        if conn is not None:
            try:
                conn.ioloop.add_callback_threadsafe(self._begin_stop)
            except Exception:  # the loop is already gone
                pass

    def reload(self, pipeline: Pipeline) -> None:
        """Swap the configuration between two messages; in-flight ones keep their version."""
        def swap():
            self.pipeline = pipeline
            log.info("configuration reloaded", extra={"config_version": pipeline.table.version})
        if self._conn is not None and self.health["connected"]:
            self._conn.ioloop.add_callback_threadsafe(swap)
        else:
            self.pipeline = pipeline

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    # --- connection lifecycle ----------------------------------------------------------
    def _reset(self) -> None:
        self._draining = False
        self._lanes: list[_Lane] = []
        self._inflight_ids: set[str] = set()  # in a transaction that is being committed

    def _on_open(self, conn) -> None:
        conn.add_on_connection_blocked_callback(lambda *_: self._set_blocked(True))
        conn.add_on_connection_unblocked_callback(lambda *_: self._set_blocked(False))
        for i in range(self.settings.hop.lanes):
            conn.channel(on_open_callback=lambda ch, i=i: self._on_channel(ch, i))
        self._tick(conn, time.perf_counter())

    def _tick(self, conn, due: float) -> None:
        """Every 100 ms: how late the loop ran a timer (a busy or GIL-starved loop delays every message)."""
        if conn is not self._conn or not conn.is_open:
            return
        now = time.perf_counter()
        self.metrics.loop_lag.observe(max(0.0, now - due))
        conn.ioloop.call_later(0.1, lambda: self._tick(conn, now + 0.1))

    def _set_blocked(self, value: bool) -> None:
        self.health["blocked"] = value
        (log.warning if value else log.info)("broker %s publishing", "blocked" if value else "unblocked")

    def _on_open_error(self, conn, err) -> None:
        log.warning("cannot connect to the broker: %s", err)
        conn.ioloop.stop()

    def _on_closed(self, conn, reason) -> None:
        self.health["connected"] = False
        self._ready.clear()
        if not self._stopping:
            log.warning("connection closed: %s", reason)
        conn.ioloop.stop()

    def _on_channel(self, ch, index: int) -> None:
        lane = _Lane(index, ch)
        self._lanes.append(lane)
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_cancel_callback(lambda *_: self._begin_drain())  # e.g. the queue was deleted
        prefetch = max(1, self.settings.hop.prefetch // self.settings.hop.lanes)
        ch.basic_qos(prefetch_count=prefetch,
                     callback=lambda _f: ch.tx_select(callback=lambda _f: self._start_consuming(lane)))

    def _on_channel_closed(self, ch, reason) -> None:
        log.log(logging.DEBUG if self._stopping and _is_normal_close(reason) else logging.ERROR,
                "channel closed: %s", reason)
        for lane in self._lanes:
            if lane.ch is ch:
                # The broker returns this channel's unacked messages; an outstanding commit's
                # fate is unknown (the journal does not claim it), so forget both.
                lane.pending, lane.committing, lane.consumer_tag = [], None, None
        self._begin_drain()

    def _start_consuming(self, lane: _Lane) -> None:
        if self._draining:
            return
        lane.consumer_tag = lane.ch.basic_consume(self.queue, lambda ch, m, p, b: self._on_message(lane, m, p, b))
        if all(ln.consumer_tag for ln in self._lanes) and len(self._lanes) == self.settings.hop.lanes:
            self.health["connected"] = True
            self._ready.set()
            log.info("consuming", extra={"queue": self.queue, "lanes": len(self._lanes),
                                         "config_version": self.pipeline.table.version})

    def _begin_stop(self) -> None:
        self._begin_drain()

    def _begin_drain(self) -> None:
        """Commit what is pending, then close the connection (stop, or a lane failed).

        No basic.cancel: pika answers deliveries that race a cancel with basic.reject on the
        channel, and RabbitMQ treats any command during a tx.commit as a channel error and then
        applies the commit only in part (acks without their publishes: lost messages). Instead
        deliveries arriving now are left unacked, and the connection closes only when no lane
        has a commit outstanding; the broker then returns everything unacked to the queue.
        """
        if self._draining:
            return
        self._draining = True
        self._drain()

    def _drain(self) -> None:
        if self._conn is None or not self._conn.is_open:
            return
        busy = False
        for lane in self._lanes:
            if not lane.ch.is_open:
                continue
            if lane.committing is None and lane.pending:
                self._flush(lane)
            busy = busy or lane.committing is not None or bool(lane.pending)
        if not busy:
            self._conn.close()
        else:
            self._conn.ioloop.call_later(0.01, self._drain)

    # --- the data path -----------------------------------------------------------------
    def _on_message(self, lane: _Lane, method, props, body) -> None:
        if self._draining:
            return  # left unacked: the broker returns it when the connection closes (see _begin_drain)
        msg = Incoming(body, to_props(props), method.exchange, method.routing_key, method.redelivered,
                       method.delivery_tag)
        arrived = time.perf_counter()
        outcome = self.pipeline.process(msg, self.clock())
        outcome.arrived = arrived
        lane.pending.append(outcome)
        self.stats["in"] += 1
        if lane.committing is None:
            if len(lane.pending) >= self.settings.hop.batch_max:
                self._flush(lane)
            elif lane.timer is None:
                lane.timer = self._conn.ioloop.call_later(self.settings.hop.batch_linger_ms / 1000,
                                                          lambda: self._flush(lane))

    def _flush(self, lane: _Lane) -> None:
        if lane.timer is not None:
            self._conn.ioloop.remove_timeout(lane.timer)
            lane.timer = None
        if lane.committing is not None or not lane.pending or not lane.ch.is_open:
            return
        n = self.settings.hop.batch_max
        batch, lane.pending = lane.pending[:n], lane.pending[n:]
        # A message id being committed in another lane (a sender's quick re-send) waits for
        # that commit: only then does the dedupe look-up know whether it was delivered. The
        # batch is cut before it, so acking the batch's last tag (multiple) acks no held one.
        cut = next((i for i, o in enumerate(batch) if o.message_id in self._inflight_ids), None)
        if cut is not None:
            lane.pending[:0] = batch[cut:]
            batch = batch[:cut]
            if not batch:
                lane.timer = self._conn.ioloop.call_later(0.005, lambda: self._flush(lane))
                return
        try:
            self._prepare(batch)
        except HubError as exc:  # the store is down: hold the batch, try again shortly
            log.error("dedupe look-up failed; holding %d messages: %s", len(batch), exc)
            lane.pending[:0] = batch
            lane.timer = self._conn.ioloop.call_later(1.0, lambda: self._flush(lane))
            return
        ch = lane.ch
        for o in batch:
            for out in o.outputs:
                ch.basic_publish(out.exchange, out.routing_key, out.body, to_pika(out.props))
        ch.basic_ack(batch[-1].incoming.delivery_tag, multiple=True)
        lane.committing = batch
        self._inflight_ids.update(o.message_id for o in batch)
        lane.commit_sent = time.perf_counter()
        ch.tx_commit(callback=lambda _f: self._on_commit(lane))

    def _prepare(self, batch: list[Outcome]) -> None:
        """Everything decided before publishing: dedupe, then the flows' judgement.

        Raises HubError when the store is unavailable (the caller holds the batch).
        """
        claimed = self._mark_duplicates(batch)
        now = self.clock()
        for flow in self.flows:
            flow.before_publish(batch, now)
        # A flow refused some of them (e.g. a reply in the wrong state): they were never
        # delivered, so their business keys must not make the corrected message a duplicate.
        released = [(o.business_key, o.message_id) for o in claimed if o.verdict != Verdict.delivered]
        if released:
            self.store.release_business_keys(released)

    def _mark_duplicates(self, batch: list[Outcome]) -> list[Outcome]:
        """Idempotent receiver: a message id (or business key) already delivered is not delivered again.

        Returns the outcomes that own their business key after the claim.
        """
        fresh = [o for o in batch if o.verdict == Verdict.delivered
                 and not (not o.incoming.from_node_publish and o.incoming.props.headers.get(H_REPLAY))]
        if not fresh:
            return []
        ids = {o.message_id for o in fresh}
        # The journal's record wins over the writer's pending one (which may be a refused reuse).
        known = self.journal.pending_types(ids) | self._lookups.known_message_types(list(ids))
        seen: dict[str, str | None] = {}
        keyed = []
        now = None
        for o in fresh:
            first = known.get(o.message_id, seen.get(o.message_id))
            if o.message_id in known or o.message_id in seen:
                if first and o.type and first != o.type:
                    now = now or self.clock()
                    self.pipeline.refuse_reused_id(o, first, now)
                else:
                    self._duplicate(o)
                continue
            seen[o.message_id] = o.type
            if o.business_key:
                keyed.append(o)
        if not keyed:
            return []
        # Owners, not just "already claimed": two ids with one key in the same batch (an
        # originator's quick re-send) must leave one owner and one duplicate.
        owners = self.store.claim_business_key_owners([(o.business_key, o.message_id) for o in keyed])
        owning = []
        for o in keyed:
            if owners.get(o.business_key) != o.message_id:
                self._duplicate(o)
            else:
                owning.append(o)
        return owning

    @staticmethod
    def _duplicate(o: Outcome) -> None:
        o.verdict = Verdict.duplicate
        o.outputs = []
        o.destinations = []

    def _on_commit(self, lane: _Lane) -> None:
        batch, lane.committing = lane.committing or [], None
        now = self.clock()
        self.health["last_commit"] = now
        self.stats["commits"] += 1
        self.metrics.commit.observe(time.perf_counter() - lane.commit_sent)
        self.metrics.observe(batch)
        # The journal learns of the batch before its ids leave _inflight_ids: the dedupe of the
        # next batch (this lane's, flushed just below) must find them, in the store or pending.
        self.journal.submit([self._entry(o, now) for o in batch])
        self._inflight_ids.difference_update(o.message_id for o in batch)
        # Start the lane's next transaction now, so the broker works on it while we log this one.
        if lane.pending:
            self._flush(lane)
        for o in batch:
            self.stats[o.verdict.value] += 1
            if o.verdict == Verdict.dead_lettered:
                log.warning("dead-lettered", extra={"message_id": o.message_id, "type": o.type, "source": o.source,
                                                    "reason_code": str(o.error.reason) if o.error else None,
                                                    "error": o.error.detail if o.error else None})
            elif o.verdict == Verdict.duplicate and o.error is not None:
                log.warning("refused: message id reused for another type",
                            extra={"message_id": o.message_id, "type": o.type, "source": o.source,
                                   "reason_code": str(o.error.reason), "error": o.error.detail})
            elif o.verdict == Verdict.retrying:
                log.info("retrying", extra={"message_id": o.message_id, "attempt": o.attempts,
                                            "reason_code": str(o.error.reason) if o.error else None})
        for flow in self.flows:
            try:
                flow.after_commit(batch, now)
            except Exception:  # delivered already; the flow's state is behind, say so loudly
                log.exception("flow %s failed to record a committed batch", flow.name,
                              extra={"message_ids": [o.message_id for o in batch][:20]})

    def _entry(self, o: Outcome, now: datetime) -> JournalEntry:
        status = _STATUS[o.verdict]
        hop_status = {"delivered": "published", "retrying": "retry", "dead_lettered": "dead_lettered",
                      "duplicate": "duplicate"}[o.verdict.value]
        detail = str(o.error) if o.error else None
        return JournalEntry(
            message_id=o.message_id, type=o.type or "", source=o.source or "", business_key=o.business_key,
            correlation_id=o.correlation_id, status=status, destinations=list(o.destinations),
            route_id=o.route_id, config_version=o.config_version, attempts=o.attempts,
            reason_code=str(o.error.reason) if o.error else None, error=o.error.detail if o.error else None,
            at=now, hops=[Hop(destination=d, status=hop_status, at=now, detail=detail) for d in o.destinations]
            or [Hop(destination=self.queue, status=hop_status, at=now, detail=detail)],
        )
