"""The dead-letter desk: browse hub.dlq without losing anything, replay and discard with an audit.

Every operation takes messages from hub.dlq with manual acknowledgement (basic.get, no
auto-ack) on one channel and acknowledges only what it finished:
- browse: nothing is acknowledged; closing the channel returns every message to the queue;
- replay: publish to the original route with publisher confirms (mandatory, so an
  unroutable target is an error, not a silent drop), and only after the broker confirmed,
  ack the dead letter. Interrupted anywhere (exception, stop, killed process, lost
  connection), the unacknowledged messages return to hub.dlq: nothing is lost; at worst
  the one message between confirm and ack is both replayed and still parked;
- discard: ack (drop) the selected messages, with a reason in the audit.

A dead letter is named by `key`: a digest of message id, dead-letter time and body, since one
message id can be parked more than once. Operations select by keys or message ids.

Owns: reading dead letters (headers, x-hub-reason-*, attempts, route, payload decoded,
GBK included), the replay target, and the audit rows of what it did.
Must not: decide whether the caller may act (the console's access layer does).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika
import pika.exceptions

from hub import envelope as ev
from hub.console import audit
from hub.settings import Settings
from hub.store import Store
from protocols import xmlwire
from protocols.errors import HubError, TransientFailure

log = logging.getLogger("hub.console.dlq")

#: Headers a replayed message does not carry on: they described the failure, not the message.
_FAILURE_HEADERS = (ev.H_REASON_CODE, ev.H_REASON, ev.H_REASON_ZH, ev.H_STAGE, ev.H_DEAD_AT, ev.H_ORIG_EXCHANGE,
                    ev.H_ORIG_RK, ev.H_ROUTE, ev.H_RETRY_TIER, "x-death", "x-first-death-exchange",
                    "x-first-death-queue", "x-first-death-reason", "x-delivery-count")
MAX_SCAN = 10_000


def _plain(value: Any) -> Any:
    """Header values as JSON-friendly data (bytes decoded, datetimes as text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def hub_headers(props: pika.BasicProperties) -> dict:
    """The dead letter's headers, without x-hub-* ones the hub did not write.

    When the broker dead-lettered a node's own publish (it expired in hub.in, or hit the
    delivery limit there), every header is the node's: a node could name another sender, a
    reason, or an original route straight into another node's queue. The hub never
    re-publishes with user_id (nor with an expiration), so user_id, or an expiry out of hub.in
    (x-death's first entry: the broker keeps its queue and reason), marks such a message.
    """
    headers = dict(props.headers or {})
    deaths = headers.get("x-death")
    first = _plain(deaths[0]) if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    if props.user_id or (first.get("queue") == ev.HUB_QUEUE and first.get("reason") == "expired"):
        headers = {k: v for k, v in headers.items() if not str(k).startswith("x-hub-")}
    return headers


def decode_payload(body: bytes, content_encoding: str | None) -> tuple[str, str]:
    """(text, encoding used): the declared encoding, then the XML declaration, then UTF-8, then GB18030."""
    candidates = []
    if content_encoding:
        candidates.append(content_encoding)
    declared = xmlwire.declared_xml_encoding(body.removeprefix(b"\xef\xbb\xbf"))
    if declared:
        candidates.append(declared)
    candidates += ["utf-8", "gb18030"]
    for enc in candidates:
        try:
            return body.decode(enc), enc.lower()
        except (LookupError, UnicodeDecodeError):
            continue
    return body.hex(" "), "hex"


def replay_target(headers: dict, ) -> tuple[str, str] | None:
    """(exchange, routing key) a dead letter goes back to, or None when its route is unknown.

    The hub's own dead letters name the exchange and routing key of the message as the hub
    took it: a node's publish (hub.ingress) goes back into hub.in through hub.deliver (the
    trusted path, which keeps x-hub-origin-user as the sender); anything else went to a queue
    named by its routing key. A message the broker dead-lettered (delivery limit) names its
    queue in x-death. An unroutable one has no route to go back to.
    """
    exchange, rk = headers.get(ev.H_ORIG_EXCHANGE), headers.get(ev.H_ORIG_RK)
    if exchange == ev.INGRESS_EXCHANGE:
        return ev.DELIVER_EXCHANGE, ev.HUB_QUEUE
    if exchange is not None and rk:
        return ev.DELIVER_EXCHANGE, str(rk)
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) and deaths[0].get("queue"):
        queue = _plain(deaths[0]["queue"])
        if queue != ev.DLQ:
            return ev.DELIVER_EXCHANGE, str(queue)
    return None


@dataclass
class DeadLetter:
    key: str
    message_id: str | None
    type: str | None
    source: str | None
    reason_code: str | None
    reason: str | None
    reason_zh: str | None
    attempts: int | None
    route: str | None
    stage: str | None
    dead_at: str | None
    target: tuple[str, str] | None
    headers: dict
    properties: dict
    payload: str
    payload_encoding: str
    size: int
    _raw: tuple[Any, bytes] | None = field(default=None, repr=False)

    @classmethod
    def from_delivery(cls, props: pika.BasicProperties, body: bytes) -> DeadLetter:
        headers = hub_headers(props)
        plain = _plain(headers)
        digest = hashlib.sha256(f"{props.message_id}\0{plain.get(ev.H_DEAD_AT)}\0".encode() + body).hexdigest()[:20]
        text, enc = decode_payload(body, props.content_encoding)
        attempts = plain.get(ev.H_ATTEMPT)
        if attempts is None and isinstance(plain.get("x-death"), list) and plain["x-death"]:
            attempts = plain["x-death"][0].get("count")
        reason_code = plain.get(ev.H_REASON_CODE)
        if reason_code is None and isinstance(plain.get("x-death"), list) and plain["x-death"]:
            reason_code = f"broker:{plain['x-death'][0].get('reason')}"
        props_view = {k: _plain(getattr(props, k)) for k in ("message_id", "type", "correlation_id", "content_type",
                                                             "content_encoding", "timestamp", "app_id", "user_id",
                                                             "reply_to", "delivery_mode")}
        return cls(
            key=digest, message_id=props.message_id, type=props.type,
            source=plain.get(ev.H_SOURCE), reason_code=reason_code, reason=plain.get(ev.H_REASON),
            reason_zh=plain.get(ev.H_REASON_ZH), attempts=int(attempts) if attempts is not None else None,
            route=plain.get(ev.H_ROUTE) or None, stage=plain.get(ev.H_STAGE), dead_at=plain.get(ev.H_DEAD_AT),
            target=replay_target(headers), headers=plain, properties=props_view, payload=text,
            payload_encoding=enc, size=len(body), _raw=(props, body),
        )

    def summary(self) -> dict:
        return {"key": self.key, "message_id": self.message_id, "type": self.type, "source": self.source,
                "reason_code": self.reason_code, "reason": self.reason, "reason_zh": self.reason_zh,
                "attempts": self.attempts, "route": self.route, "stage": self.stage, "dead_at": self.dead_at,
                "target": "/".join(self.target) if self.target else None, "size": self.size}

    def as_dict(self) -> dict:
        return {**self.summary(), "headers": self.headers, "properties": self.properties,
                "payload": self.payload, "payload_encoding": self.payload_encoding}

    def matches(self, wanted: set[str]) -> bool:
        return self.key in wanted or (self.message_id is not None and self.message_id in wanted)


def replay_properties(props: pika.BasicProperties, replay_id: str) -> pika.BasicProperties:
    """The dead letter's properties for its replay: failure headers removed, attempts reset."""
    headers = {k: v for k, v in hub_headers(props).items() if k not in _FAILURE_HEADERS}
    if props.user_id:
        headers[ev.H_ORIGIN_USER] = props.user_id  # the broker vouched for it when it was first published
    headers[ev.H_ATTEMPT] = 1
    headers[ev.H_REPLAY] = replay_id
    return pika.BasicProperties(
        message_id=props.message_id, type=props.type, correlation_id=props.correlation_id,
        reply_to=props.reply_to, content_type=props.content_type, content_encoding=props.content_encoding,
        timestamp=props.timestamp, app_id=props.app_id, delivery_mode=2, headers=headers)


@dataclass
class ActionResult:
    done: list[dict] = field(default_factory=list)       # summaries of what was replayed / discarded
    skipped: list[dict] = field(default_factory=list)    # selected but not done (no route, failed), with why
    scanned: int = 0
    interrupted: bool = False

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "scanned": self.scanned, "interrupted": self.interrupted}


class DeadLetterDesk:
    """hub.dlq of one vhost; each call opens its own connection (calls may run in parallel threads)."""

    def __init__(self, settings: Settings, store: Store | None = None, *, queue: str = ev.DLQ,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.clock = clock or (lambda: datetime.now(UTC))

    def _connect(self) -> pika.BlockingConnection:
        params = pika.URLParameters(self.settings.amqp_url_for_vhost())
        params.client_properties = {"connection_name": "cs-hub console dlq"}
        params.connection_attempts = 1
        params.blocked_connection_timeout = 30
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.AMQPError as exc:
            raise TransientFailure(f"Cannot connect to RabbitMQ to read {self.queue} ({type(exc).__name__}); "
                                   "check that the broker runs.") from exc

    def depth(self) -> int:
        conn = self._connect()
        try:
            return conn.channel().queue_declare(self.queue, passive=True).method.message_count
        finally:
            _close(conn)

    def _scan(self, ch, limit: int) -> Iterable[tuple[int, DeadLetter]]:
        """(delivery tag, dead letter) of up to `limit` messages, all left unacknowledged."""
        for _ in range(limit):
            method, props, body = ch.basic_get(self.queue, auto_ack=False)
            if method is None:
                return
            yield method.delivery_tag, DeadLetter.from_delivery(props, body)

    def browse(self, limit: int = 200) -> list[DeadLetter]:
        """The first `limit` dead letters; the channel closes unacked, so all stay parked."""
        conn = self._connect()
        try:
            return [dl for _, dl in self._scan(conn.channel(), min(limit, MAX_SCAN))]
        finally:
            _close(conn)

    def find(self, wanted: str) -> DeadLetter | None:
        for dl in self.browse(MAX_SCAN):
            if dl.matches({wanted}):
                return dl
        return None

    def replay(self, selection: Iterable[str] | None, *, who: str, role: str, stop: threading.Event | None = None,
               after_publish: Callable[[DeadLetter], None] | None = None) -> ActionResult:
        """Replay the selected dead letters (keys or message ids; None = all) to their original routes.

        `after_publish` runs after the broker confirmed a replay and before the dead letter is
        acknowledged (tests interrupt there). Audit rows are written per message as it is done.
        """
        wanted = None if selection is None else set(selection)
        result = ActionResult()
        conn = self._connect()
        rows: list[audit.AuditRow] = []
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            for tag, dl in self._scan(ch, MAX_SCAN):
                result.scanned += 1
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
                if wanted is not None and not dl.matches(wanted):
                    continue
                if dl.target is None:
                    result.skipped.append({**dl.summary(), "why": "no_route"})
                    rows.append(self._row(who, role, "replay", dl, "no_route", "no original route"))
                    continue
                exchange, rk = dl.target
                replay_id = f"{who}@{self.clock().isoformat(timespec='seconds')}"
                props, body = dl._raw
                try:
                    ch.basic_publish(exchange, rk, body, replay_properties(props, replay_id), mandatory=True)
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    result.skipped.append({**dl.summary(), "why": type(exc).__name__})
                    rows.append(self._row(who, role, "replay", dl, "failed", f"{exchange}/{rk}: {type(exc).__name__}"))
                    continue
                if after_publish is not None:
                    after_publish(dl)
                # Audited before the ack: a crash in between leaves the record and the parked copy.
                self._audit([self._row(who, role, "replay", dl, "replayed", f"{exchange}/{rk}")])
                ch.basic_ack(tag)
                result.done.append(dl.summary())
                log.info("dead letter replayed", extra={"message_id": dl.message_id, "dlq_key": dl.key,
                                                        "target": f"{exchange}/{rk}", "who": who})
                if wanted is not None and len(result.done) + len(result.skipped) >= len(wanted):
                    break
        except BaseException:
            result.interrupted = True
            raise
        finally:
            _close(conn)  # whatever was not acknowledged goes back to hub.dlq
            self._audit(rows)
        return result

    def discard(self, selection: Iterable[str], reason: str, *, who: str, role: str) -> ActionResult:
        reason = (reason or "").strip()
        if not reason:
            raise HubError("A discard needs a reason (it is kept in the audit trail).")
        wanted = set(selection)
        result = ActionResult()
        conn = self._connect()
        try:
            ch = conn.channel()
            for tag, dl in self._scan(ch, MAX_SCAN):
                result.scanned += 1
                if not dl.matches(wanted):
                    continue
                self._audit([self._row(who, role, "discard", dl, "discarded", reason)])
                ch.basic_ack(tag)
                result.done.append(dl.summary())
                log.info("dead letter discarded", extra={"message_id": dl.message_id, "dlq_key": dl.key, "who": who})
                if len(result.done) >= len(wanted):
                    break
        finally:
            _close(conn)
        return result

    def _row(self, who: str, role: str, action: str, dl: DeadLetter, outcome: str, detail: str) -> audit.AuditRow:
        return audit.AuditRow(self.clock(), who, role, action, dl.message_id, dl.key, outcome, detail)

    def _audit(self, rows: list[audit.AuditRow]) -> None:
        if self.store is not None and rows:
            audit.record(self.store, rows)


def _close(conn: pika.BlockingConnection) -> None:
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # closing a broken connection; the broker returns the unacked messages anyway
        pass
