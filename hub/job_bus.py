"""A single-threaded adapter's broker side (SFTP, NMS): take jobs one at a time, publish with
confirms, ack last. (A streaming adapter with a send window uses hub/adapter_bus.py.)

Owns: one pika BlockingConnection (the adapter is single-threaded: a transfer runs between
two calls here, and `keepalive()` serves heartbeats during a long one), basic_get of one job
at a time with a manual ack, publisher confirms, and turning an unreachable or refusing
broker into TransientFailure(PARTNER_UNAVAILABLE) so the caller can back off.
The rule the adapter relies on: the outputs of a job (marks, retries, dead letters) are
confirmed by the broker before the job is acked; a crash in between repeats the job, whose
outputs carry deterministic message ids.
Must not: decide anything about a job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import pika
import pika.exceptions

from hub.envelope import Incoming, Outgoing
from hub.settings import Settings
from hub.worker import to_pika, to_props
from protocols.errors import ReasonCode, TransientFailure

log = logging.getLogger("hub.job_bus")

_AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)


class Bus:
    def __init__(self, settings: Settings, *, queue: str | None, name: str) -> None:
        """`queue`: where `get` takes jobs from (None for a bus that only publishes)."""
        self.queue = queue
        self.params = pika.URLParameters(settings.amqp_url_for_vhost())
        self.params.heartbeat = settings.hop.heartbeat_s
        self.params.blocked_connection_timeout = 60
        self.params.client_properties = {"connection_name": name}
        self._conn: pika.BlockingConnection | None = None
        self._ch = None
        self._last_keepalive = 0.0
        self.health = {"connected": False, "published": 0, "jobs": 0}

    def _channel(self):
        if self._ch is not None and self._ch.is_open and self._conn is not None and self._conn.is_open:
            return self._ch
        self.close()
        try:
            self._conn = pika.BlockingConnection(self.params)
            ch = self._conn.channel()
            ch.confirm_delivery()
        except _AMQP_ERRORS as exc:
            self.health["connected"] = False
            raise TransientFailure(f"cannot reach RabbitMQ for {self.params.client_properties['connection_name']} "
                                   f"({type(exc).__name__}); retrying",
                                   reason=ReasonCode.PARTNER_UNAVAILABLE) from exc
        self._ch = ch
        self.health["connected"] = True
        return ch

    def publish(self, outs: Iterable[Outgoing]) -> None:
        """Publish and wait for the broker's confirms; TransientFailure when it is gone or refuses."""
        outs = list(outs)
        if not outs:
            return
        ch = self._channel()
        try:
            for out in outs:
                ch.basic_publish(out.exchange, out.routing_key, out.body, to_pika(out.props), mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            raise TransientFailure(f"RabbitMQ did not take a message of {self.params.client_properties['connection_name']} "
                                   f"({type(exc).__name__}: "
                                   f"{out.routing_key}); check that `hub topology apply` created the queues",
                                   reason=ReasonCode.PARTNER_UNAVAILABLE) from exc
        except _AMQP_ERRORS as exc:
            self._drop()
            raise TransientFailure(f"lost RabbitMQ while publishing ({type(exc).__name__})",
                                   reason=ReasonCode.PARTNER_UNAVAILABLE) from exc
        self.health["published"] += len(outs)

    def get(self) -> Incoming | None:
        """The next job, unacknowledged, or None when the queue is empty."""
        if self.queue is None:
            raise ValueError(f"{self.params.client_properties['connection_name']} only publishes; it has no queue")
        ch = self._channel()
        try:
            method, props, body = ch.basic_get(self.queue, auto_ack=False)
        except _AMQP_ERRORS as exc:
            self._drop()
            raise TransientFailure(f"lost RabbitMQ while taking a job ({type(exc).__name__})",
                                   reason=ReasonCode.PARTNER_UNAVAILABLE) from exc
        if method is None:
            return None
        self.health["jobs"] += 1
        return Incoming(body, to_props(props), method.exchange, method.routing_key, method.redelivered,
                        method.delivery_tag)

    def ack(self, msg: Incoming) -> None:
        try:
            self._ch.basic_ack(msg.delivery_tag)
        except _AMQP_ERRORS as exc:  # the job comes back; its outputs have deterministic ids
            self._drop()
            log.warning("could not ack a job; the broker will deliver it again: %s", type(exc).__name__)

    def keepalive(self, every_s: float = 5.0) -> None:
        """Serve heartbeats during a long transfer (at most every `every_s` seconds)."""
        now = time.monotonic()
        if self._conn is None or now - self._last_keepalive < every_s:
            return
        self._last_keepalive = now
        try:
            self._conn.process_data_events(time_limit=0)
        except _AMQP_ERRORS:
            self._drop()

    def sleep(self, seconds: float) -> None:
        """Wait while serving heartbeats (a plain sleep when not connected)."""
        if self._conn is not None and self._conn.is_open:
            try:
                self._conn.sleep(seconds)
                return
            except _AMQP_ERRORS:
                self._drop()
        time.sleep(seconds)

    def _drop(self) -> None:
        self.health["connected"] = False
        self._ch = None
        try:
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
        except _AMQP_ERRORS:
            pass
        self._conn = None

    def close(self) -> None:
        self._drop()
