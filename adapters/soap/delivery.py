"""Delivery to province CRMs by SOAP: consume node.<code>, call the CRM's Deliver, then ack.

Owns: one zeep Client per CRM, built once per process from protocols/soap/crm.wsdl (a CRM's
own WSDL is never fetched), with connect and operation timeouts (zeep has none by default),
Session.trust_env off (no proxy or netrc surprises, and ~0.8 ms a call), TLS verification
and an optional WS-Security UsernameToken; the translation of zeep and requests exceptions
into the hub's reason codes (`translate`, the one place); and one consumer thread per CRM
node that acks a message only after the CRM answered. Each call's outcome (crm_accepted,
crm_duplicate, crm_refused, crm_fault, crm_timeout, crm_unreachable, with the fault text) is
also a hop of the message's journey in the hub journal (`hub trace ID`), written by
hub/hop_journal.py off this thread: a journal failure never holds or fails a delivery.

Ack and its consequence are one broker transaction (tx.select, as the hop does): the retry
copy in hub.retry (faults, timeouts, an unreachable CRM) or the dead letter in hub.dlq (a
refusal, or the last attempt, with the fault text) is published together with the ack of
the message it replaces, so a crash loses nothing and parks nothing twice. A CRM may see a
message again after a timeout (it answered too late): Deliver is idempotent by MessageId
(crm.wsdl), and a CRM answers the second call `duplicate`.
Must not: decide where a message goes (the hub routed it to node.<code>) or change it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pika
import pika.exceptions
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from adapters.soap import records
from adapters.soap.config import SoapFile
from hub import envelope as ev
from hub import failures
from hub.envelope import Incoming, Outgoing
from hub.hop_journal import HopJournal
from hub.settings import Settings
from hub.store import Hop, Store
from hub.worker import to_pika, to_props
from protocols.errors import HubError, ReasonCode, RejectedMessage, TransientFailure
from protocols.soap.messages import CRM_NS, DeliverAck, DeliverStatus, deliver_ack, payload_text, wsdl_path

log = logging.getLogger("adapters.soap.delivery")

BINDING = f"{{{CRM_NS}}}CrmDeliveryBinding"
STAGE = "adapter.soap"
_MAX_DETAIL = 2000

#: The journal's name for what one CRM call ended in (`hub trace ID` shows it as a hop), by reason code.
CALL_STATUS = {
    ReasonCode.PARTNER_REFUSED: "crm_refused",
    ReasonCode.PARTNER_FAULT: "crm_fault",
    ReasonCode.PARTNER_TIMEOUT: "crm_timeout",
    ReasonCode.PARTNER_UNAVAILABLE: "crm_unreachable",
}


def translate(exc: Exception, node: str) -> HubError:
    """A library exception of a CRM call as the hub's error (the only place that classifies them).

    soap:Server faults, timeouts and unreachable CRMs are transient (retried through the tiers);
    a soap:Client fault says the request itself is wrong, so it is refused like Status=refused.
    """
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, zeep.exceptions.Fault):
        code = (exc.code or "").rsplit(":", 1)[-1]
        text = f"The CRM of node {node} answered a SOAP fault ({exc.code}): {exc.message}"[:_MAX_DETAIL]
        if code.startswith("Client"):
            return RejectedMessage(text, reason=ReasonCode.PARTNER_REFUSED, field="faultcode", value=exc.code)
        return TransientFailure(text, reason=ReasonCode.PARTNER_FAULT, field="faultcode", value=exc.code)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransientFailure(f"The CRM of node {node} did not accept a connection in time.",
                                reason=ReasonCode.PARTNER_UNAVAILABLE)
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientFailure(f"The CRM of node {node} did not answer within the operation timeout.",
                                reason=ReasonCode.PARTNER_TIMEOUT)
    if isinstance(exc, requests.exceptions.RequestException):
        return TransientFailure(f"The CRM of node {node} cannot be reached: {type(exc).__name__}.",
                                reason=ReasonCode.PARTNER_UNAVAILABLE)
    if isinstance(exc, zeep.exceptions.TransportError):
        return TransientFailure(f"The CRM of node {node} answered HTTP {exc.status_code} without a SOAP fault"
                                + (" (check the WS-Security credentials)" if exc.status_code in (401, 403) else "")
                                + ".", reason=ReasonCode.PARTNER_UNAVAILABLE, value=exc.status_code)
    if isinstance(exc, zeep.exceptions.Error):
        return TransientFailure(f"The CRM of node {node} answered something crm.wsdl does not allow: "
                                f"{type(exc).__name__}: {exc}"[:_MAX_DETAIL], reason=ReasonCode.PARTNER_FAULT)
    return HubError(f"Unexpected error calling the CRM of node {node}: {type(exc).__name__}: {exc}"[:_MAX_DETAIL],
                    reason=ReasonCode.PROCESSING_ERROR)


class CrmClient:
    """The zeep client of one CRM; build once per process, use from one thread."""

    def __init__(self, node: str, cfg: SoapFile) -> None:
        crm = cfg.nodes[node].crm
        self.node = node
        self.address = crm.address
        connect_s, operation_s = cfg.timeouts(node)
        session = requests.Session()
        session.trust_env = False
        session.verify = crm.verify_tls
        # requests takes (connect, read); zeep passes operation_timeout through as `timeout`.
        transport = Transport(session=session, timeout=connect_s, operation_timeout=(connect_s, operation_s))
        wsse = None
        if crm.wsse is not None:
            wsse = UsernameToken(crm.wsse.username, cfg.crm_password(node).get_secret_value(),
                                 use_digest=crm.wsse.digest)
        self.client = zeep.Client(wsdl=str(wsdl_path("crm")), transport=transport, wsse=wsse)
        self.service = self.client.create_service(BINDING, crm.address)

    def deliver(self, message_id: str, type_name: str, correlation_id: str | None, source: str | None,
                payload: str) -> DeliverAck:
        try:
            r = self.service.Deliver(MessageId=message_id, Type=type_name, CorrelationId=correlation_id,
                                     Source=source, Payload=payload)
        except Exception as exc:  # translated in one place
            raise translate(exc, self.node) from None
        return deliver_ack(getattr(r, "Status", None), getattr(r, "ReasonCode", None), getattr(r, "Reason", None))

    def close(self) -> None:
        self.client.transport.session.close()


class NodeDelivery:
    """Consumes one node's queue and delivers each message to its CRM; `run` blocks until `stop`."""

    def __init__(self, node: str, cfg: SoapFile, settings: Settings, store: Store | None, *,
                 client: CrmClient | None = None, clock: Callable[[], datetime] | None = None,
                 hop_journal: HopJournal | None = None) -> None:
        self.node = node
        self.hop_journal = hop_journal
        self.queue = f"node.{node}"
        self.cfg = cfg
        self.client = client or CrmClient(node, cfg)
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tiers = [t.name for t in settings.retry_tiers]
        self.params = pika.URLParameters(settings.amqp_url_for_vhost())
        connect_s, operation_s = cfg.timeouts(node)
        # No heartbeats are served during a CRM call (BlockingConnection), so they must outlast one.
        self.params.heartbeat = max(settings.hop.heartbeat_s, int(2 * (connect_s + operation_s)) + 10)
        self.params.client_properties = {"connection_name": f"cs-hub soap {node}"}
        self.params.connection_attempts = 1
        self.stats = {"delivered": 0, "duplicate": 0, "retrying": 0, "dead_lettered": 0, "reconnects": 0}
        self.health = {"connected": False, "last_ok": None, "last_error": None}
        self._ready = threading.Event()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            conn = None
            try:
                conn = pika.BlockingConnection(self.params)
                ch = conn.channel()
                ch.basic_qos(prefetch_count=self.cfg.delivery.prefetch)
                ch.tx_select()
                self.health["connected"] = True
                self._ready.set()
                backoff = 0.5
                log.info("consuming", extra={"queue": self.queue, "crm": self.client.address})
                for method, props, body in ch.consume(self.queue, inactivity_timeout=0.25):
                    if stop.is_set():
                        break
                    if method is not None:
                        self.handle(ch, method, props, body)
            except pika.exceptions.AMQPError as exc:
                self.stats["reconnects"] += 1
                log.warning("broker connection lost; reconnecting", extra={"queue": self.queue,
                                                                           "error": repr(exc), "backoff_s": backoff})
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                self.health["connected"] = False
                self._ready.clear()
                if conn is not None and conn.is_open:
                    try:
                        conn.close()   # unacked (in flight) messages go back to the queue
                    except pika.exceptions.AMQPError:
                        pass
        self.client.close()

    # --- one message -------------------------------------------------------------------------

    def handle(self, ch, method, props, body: bytes) -> str:
        msg = Incoming(body, to_props(props), method.exchange, method.routing_key, method.redelivered,
                       method.delivery_tag)
        outcome, outs, exc, elapsed = self.attempt(msg)
        for out in outs:
            ch.basic_publish(out.exchange, out.routing_key, out.body, to_pika(out.props))
        ch.basic_ack(method.delivery_tag)
        ch.tx_commit()
        self._record(msg, outcome, exc, elapsed)
        self._hop(msg, outcome, exc, elapsed)
        return outcome

    def attempt(self, msg: Incoming) -> tuple[str, list[Outgoing], HubError | None, float]:
        """Call the CRM once; returns (outcome, messages to publish with the ack, error, seconds)."""
        headers = msg.props.headers or {}
        attempt = int(headers.get(ev.H_ATTEMPT, 1))
        mid = self._mid(msg)
        started = time.monotonic()
        try:
            payload = payload_text(msg.body, msg.props.content_encoding)
            ack = self.client.deliver(mid, msg.props.type or "", msg.props.correlation_id,
                                      headers.get(ev.H_SOURCE), payload)
            if ack.status is DeliverStatus.refused:
                raise RejectedMessage(f"The CRM of node {self.node} refused the message: "
                                      f"{ack.reason_code or 'no reason code'}: {ack.reason or ''}".strip(),
                                      reason=ReasonCode.PARTNER_REFUSED, value=ack.reason_code)
        except HubError as exc:
            elapsed = time.monotonic() - started
            return (*self._failed(msg, mid, attempt, exc), elapsed)
        except Exception as exc:  # a bug: retried, then dead-lettered, never lost
            log.exception("soap delivery failed unexpectedly", extra={"message_id": mid, "node": self.node})
            elapsed = time.monotonic() - started
            return (*self._failed(msg, mid, attempt, translate(exc, self.node)), elapsed)
        elapsed = time.monotonic() - started
        outcome = "duplicate" if ack.status is DeliverStatus.duplicate else "delivered"
        self.stats[outcome] += 1
        self.health["last_ok"] = self.clock()
        log.info("delivered to CRM", extra={"message_id": mid, "node": self.node, "type": msg.props.type,
                                            "attempt": attempt, "crm_status": ack.status.value,
                                            "elapsed_ms": int(elapsed * 1000)})
        return outcome, [], None, elapsed

    def _failed(self, msg: Incoming, mid: str, attempt: int, exc: HubError):
        self.health["last_error"] = f"{exc.reason}: {exc.detail}"
        if exc.retryable and attempt < self.cfg.delivery.max_attempts:
            tier = failures.tier_for(attempt, self.tiers)
            self.stats["retrying"] += 1
            log.warning("CRM delivery retrying", extra={"message_id": mid, "node": self.node, "attempt": attempt,
                                                        "tier": tier, "reason_code": str(exc.reason),
                                                        "error": exc.detail})
            return "retrying", [failures.retry(msg, attempt, tier, exc, back_to=self.queue)], exc
        if exc.retryable:
            exc = HubError(f"Gave up after {attempt} attempts; last error: {exc.detail}",
                           reason=ReasonCode.RETRY_EXHAUSTED, value=exc.reason)
        self.stats["dead_lettered"] += 1
        log.error("CRM delivery dead-lettered", extra={"message_id": mid, "node": self.node, "attempt": attempt,
                                                       "reason_code": str(exc.reason), "error": exc.detail})
        source = (msg.props.headers or {}).get(ev.H_SOURCE)
        dead = failures.dead_letter(msg, exc, self.clock(), message_id=mid, attempts=attempt, stage=STAGE,
                                    source=source if isinstance(source, str) else None)
        return "dead_lettered", [dead], exc

    def _mid(self, msg: Incoming) -> str:
        return msg.props.message_id or "no-id-" + hashlib.sha1(msg.body).hexdigest()[:20]

    def _hop(self, msg: Incoming, outcome: str, exc: HubError | None, elapsed: float) -> None:
        """The CRM call as a step of the message's journey in the hub journal (written off this thread)."""
        if self.hop_journal is None:
            return
        if exc is None:
            status = "crm_duplicate" if outcome == "duplicate" else "crm_accepted"
        else:
            # A last attempt is re-labelled RETRY_EXHAUSTED by _failed, with the call's own reason as value.
            reason = exc.value if exc.reason == ReasonCode.RETRY_EXHAUSTED else exc.reason
            status = CALL_STATUS.get(reason, "crm_error")
        attempt = int((msg.props.headers or {}).get(ev.H_ATTEMPT, 1))
        detail = f"attempt {attempt}, {int(elapsed * 1000)} ms, message {outcome}"
        if exc is not None:
            detail += f": {exc.reason}: {exc.detail}"
        self.hop_journal.add([(self._mid(msg), Hop(f"crm.{self.node}", status, self.clock(), detail[:_MAX_DETAIL]))])

    def _record(self, msg: Incoming, outcome: str, exc: HubError | None, elapsed: float) -> None:
        if self.store is None:
            return
        headers = msg.props.headers or {}
        source = headers.get(ev.H_SOURCE)
        rec = records.Delivery(
            message_id=self._mid(msg), node=self.node, attempt=int(headers.get(ev.H_ATTEMPT, 1)),
            type=(msg.props.type or "")[:100], outcome=outcome, elapsed_ms=int(elapsed * 1000), at=self.clock(),
            source=source if isinstance(source, str) else None, correlation_id=msg.props.correlation_id,
            reason_code=str(exc.reason) if exc else None, detail=exc.detail if exc else None)
        try:
            records.save(self.store, rec)
        except Exception:  # delivered (or parked) already; the record is behind, say so loudly
            log.exception("cannot record a SOAP delivery", extra={"message_id": rec.message_id, "node": self.node})


class DeliveryService:
    """One NodeDelivery thread per CRM node of config/soap.yaml."""

    def __init__(self, cfg: SoapFile, settings: Settings, store: Store | None, *,
                 nodes: list[str] | None = None) -> None:
        if store is not None:
            records.ensure_tables(store)
        self.hop_journal = HopJournal(store, name="soap") if store is not None else None
        self.workers = [NodeDelivery(code, cfg, settings, store, hop_journal=self.hop_journal)
                        for code in (nodes or cfg.crm_nodes)]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> DeliveryService:
        for w in self.workers:
            t = threading.Thread(target=w.run, args=(self._stop,), name=f"soap-{w.node}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(w.wait_ready(max(0.0, deadline - time.monotonic())) for w in self.workers)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.hop_journal is not None:
            self.hop_journal.close(min(5.0, max(0.5, deadline - time.monotonic())))

    def health(self) -> dict:
        return {w.node: {**w.health, **w.stats} for w in self.workers}
