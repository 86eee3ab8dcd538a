"""An adapter's streaming broker side (SMPP, WAP): consume its queue, publish with confirms, ack when told.

Owns: one pika SelectConnection in its own thread (like the hop, no re-entrant publishing
from callbacks), the consumer with manual acks and a prefetch of at least the send window,
publisher confirms, and the rule that ties them: a group of publications handed in with
delivery tags to ack is acked only when the broker has confirmed every publication of the
group. Outbox publications (sms.status, sms.mo) report their confirmation back to the
engine, which then deletes them from the ledger. After a reconnect, unconfirmed outbox
publications are published again; deliveries of the old connection are not acked (the
broker gives them back and the engine recognises them by business id).
Must not: decide anything about a message, or touch the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pika
from pika.adapters.select_connection import SelectConnection

from hub import amqp_io
from hub.envelope import Incoming, Outgoing
from hub.settings import Settings
from hub.worker import to_pika, to_props

log = logging.getLogger("hub.adapter_bus")


@dataclass
class _Group:
    """Publications that must all be confirmed before `tags` are acked and `keys` reported."""

    remaining: int
    tags: list
    keys: list[str] = field(default_factory=list)


class AckFloor:
    """Which acks to send for one channel's deliveries, finished in any order.

    One `multiple` ack for the contiguous run from the lowest unacked tag, single acks for
    those beyond a gap (a message still being submitted must not hold back the prefetch of
    those done after it). The `multiple` ack names the highest tag of the run that is still
    unacked: RabbitMQ looks for that exact tag among the unacked ones and closes the channel
    with PRECONDITION_FAILED "unknown delivery tag" when it was acked singly before (seen:
    the channel closed, its deliveries came back, and an SMS went out twice).
    """

    def __init__(self) -> None:
        self.floor = 0                  # every tag up to here is acked
        self._done: set[int] = set()    # done, above the floor (a gap below them)
        self._single: set[int] = set()  # among those, acked one by one already

    def done(self, tags: list[int]) -> list[tuple[int, bool]]:
        """Record these tags as finished; returns the acks to send, as (tag, multiple)."""
        new = [t for t in tags if t > self.floor]
        self._done.update(new)
        top = 0
        while self.floor + 1 in self._done:
            self.floor += 1
            self._done.discard(self.floor)
            if self.floor in self._single:
                self._single.discard(self.floor)
            else:
                top = self.floor
        acks = [(top, True)] if top else []
        for t in new:
            if t > self.floor and t not in self._single:
                acks.append((t, False))
                self._single.add(t)
        return acks


class Bus:
    """Thread-safe `ack` and `publish` for the engine; `run()` blocks in the bus thread."""

    def __init__(self, settings: Settings, *, queue: str, prefetch: int,
                 on_delivery: Callable[[Incoming, tuple[int, int]], None],
                 on_confirmed: Callable[[list[str]], None], name: str = "cs-hub smpp") -> None:
        self.queue = queue
        self.prefetch = prefetch
        self.on_delivery = on_delivery
        self.on_confirmed = on_confirmed
        self.params = pika.URLParameters(settings.amqp_url_for_vhost())
        self.params.heartbeat = settings.hop.heartbeat_s
        self.params.client_properties = {"connection_name": name}
        self.health = {"connected": False, "consuming": False}
        amqp_io.coalesce_writes()  # acks, statuses and MO messages go out a burst per send
        self._conn: SelectConnection | None = None
        self._ch = None
        self._generation = 0
        self._seq = 0
        self._unconfirmed: dict[int, tuple[str | None, Outgoing, _Group]] = {}
        self._held: list[tuple[list[tuple[str | None, Outgoing]], list]] = []   # handed in while down
        self._stopping = False
        self._ready = threading.Event()
        self._consumer_tag: str | None = None
        self._commands: deque[Callable[[], None]] = deque()

    # -- thread-safe API ------------------------------------------------------------------

    def ack(self, tags: list) -> None:
        self._call(lambda: self._ack(tags))

    def publish(self, items: list[tuple[str | None, Outgoing]], ack_after: list) -> None:
        self._call(lambda: self._publish(items, ack_after))

    def submit(self, acks: list, items: list[tuple[str | None, Outgoing]],
               groups: list[tuple[list[tuple[str | None, Outgoing]], list]]) -> None:
        """One round of the engine in one call: acks, publications, publication groups with acks."""
        def run() -> None:
            for group_items, tags in groups:
                self._publish(group_items, tags)
            if items:
                self._publish(items, [])
            if acks:
                self._ack(acks)
        self._call(run)

    def stop_consuming(self) -> None:
        self._call(self._cancel)

    def stop(self) -> None:
        self._stopping = True
        self._call(self._close)

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _call(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the bus thread. Commands wait in a deque of their own, not in pika's
        callback list: a connection's loop that stops drops its callbacks, and a command handed
        in meanwhile must run on the next connection instead (publications are held until a
        channel is open; acks of a closed channel are void anyway)."""
        self._commands.append(fn)
        conn = self._conn
        if conn is not None:
            try:
                conn.ioloop.add_callback_threadsafe(self._run_commands)
            except Exception:  # the loop is gone; run() drains the commands on the next one
                pass

    def _run_commands(self) -> None:
        while self._commands:
            self._commands.popleft()()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            self._conn = SelectConnection(self.params, on_open_callback=self._on_open,
                                          on_open_error_callback=self._on_open_error,
                                          on_close_callback=self._on_closed)
            self._conn.ioloop.add_callback_threadsafe(self._run_commands)
            self._conn.ioloop.start()
            if self._stopping:
                break
            log.warning("broker connection lost; reconnecting in %.1f s", backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0) if not self.health["connected"] else 0.5

    def _on_open(self, conn) -> None:
        self.health["connected"] = True
        conn.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, conn, err) -> None:
        log.warning("cannot connect to the broker: %s", err)
        conn.ioloop.stop()

    def _on_closed(self, conn, reason) -> None:
        self.health.update(connected=False, consuming=False)
        self._ready.clear()
        self._ch = None
        if not self._stopping:
            log.warning("broker connection closed: %s", reason)
        # Outbox publications are published again on the next connection; groups that ack
        # deliveries are dropped: the broker returns those deliveries, and the engine sees them again.
        again = [(key, out) for key, out, _g in self._unconfirmed.values() if key is not None and not _g.tags]
        self._unconfirmed.clear()
        if again:
            self._held.append((again, []))
        conn.ioloop.stop()

    def _on_channel(self, ch) -> None:
        self._ch = ch
        self._generation += 1
        self._seq = 0
        self._acks = AckFloor()
        ch.add_on_close_callback(lambda _ch, reason: self._conn.close() if self._conn.is_open else None)
        ch.confirm_delivery(self._on_confirm)
        ch.basic_qos(prefetch_count=self.prefetch, callback=lambda _f: self._consume())

    def _consume(self) -> None:
        ch = self._ch
        self._consumer_tag = ch.basic_consume(self.queue, self._on_message)
        self.health["consuming"] = True
        self._ready.set()
        held, self._held = self._held, []
        for items, tags in held:
            self._publish(items, tags)
        self._run_commands()
        log.info("consuming %s (prefetch %d)", self.queue, self.prefetch)

    def _on_message(self, ch, method, props, body) -> None:
        msg = Incoming(body, to_props(props), method.exchange, method.routing_key, method.redelivered,
                       method.delivery_tag)
        self.on_delivery(msg, (self._generation, method.delivery_tag))

    def _cancel(self) -> None:
        if self._ch is not None and self._consumer_tag:
            self._ch.basic_cancel(self._consumer_tag)
            self._consumer_tag = None
            self.health["consuming"] = False

    def _close(self) -> None:
        if self._conn is not None and self._conn.is_open:
            self._conn.close()
        elif self._conn is not None:
            self._conn.ioloop.stop()

    # -- acks and publications ------------------------------------------------------------------

    def _ack(self, tags: list) -> None:
        """Ack deliveries of this channel (tags of an older channel are void)."""
        ch = self._ch
        if ch is None or not ch.is_open:
            return
        mine = [tag for generation, tag in tags if generation == self._generation]
        for tag, multiple in self._acks.done(mine):
            ch.basic_ack(tag, multiple=multiple)

    def _publish(self, items: list[tuple[str | None, Outgoing]], ack_after: list) -> None:
        ch = self._ch
        if ch is None or not ch.is_open:
            self._held.append((items, ack_after))
            return
        if not items:
            self._ack(ack_after)
            return
        group = _Group(remaining=len(items), tags=list(ack_after))
        for key, out in items:
            self._send(key, out, group)

    def _send(self, key: str | None, out: Outgoing, group: _Group) -> None:
        self._ch.basic_publish(out.exchange, out.routing_key, out.body, to_pika(out.props))
        self._seq += 1
        self._unconfirmed[self._seq] = (key, out, group)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        nacked = isinstance(method, pika.spec.Basic.Nack)
        done = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        confirmed_keys: list[str] = []
        again: list[tuple[str | None, Outgoing, _Group]] = []
        for t in done:
            entry = self._unconfirmed.pop(t, None)
            if entry is None:
                continue
            key, out, group = entry
            if nacked:
                # The broker could not take it: publish it again (nothing is acked meanwhile).
                log.error("the broker refused a publication to %s/%s; publishing it again",
                          out.exchange, out.routing_key)
                again.append(entry)
                continue
            group.remaining -= 1
            if key is not None:
                confirmed_keys.append(key)
            if group.remaining == 0 and group.tags:
                self._ack(group.tags)
        if confirmed_keys:
            self.on_confirmed(confirmed_keys)
        if again:
            def republish() -> None:
                if self._ch is not None and self._ch.is_open:
                    for key, out, group in again:
                        self._send(key, out, group)
            self._conn.ioloop.call_later(0.5, republish)
