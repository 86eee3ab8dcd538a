"""The hub hop's work on one message: authenticate, decode, validate, route, map, encode.

Owns: the ingress checks of the wire contract (docs/contract.md) in order, and turning the
result into an Outcome: the messages to publish (deliveries, or a retry, or a dead letter
plus a negative acknowledgement to the sender) and what the journal records.
Must not: publish, ack, or touch the store. It is pure given the configuration and the
time, so `hub routes test` and the unit tests run it without a broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from hub import envelope as ev
from hub import failures
from hub.envelope import Incoming, Outgoing
from hub.router import RouteTable
from hub.settings import Settings
from protocols import schemas, xmlwire
from protocols.errors import HubError, ReasonCode, RejectedMessage

log = logging.getLogger("hub.pipeline")

MAX_MESSAGE_ID = 128


class Verdict(StrEnum):
    delivered = "delivered"
    retrying = "retrying"
    dead_lettered = "dead_lettered"
    duplicate = "duplicate"


@dataclass
class Outcome:
    incoming: Incoming
    verdict: Verdict
    message_id: str
    type: str | None
    source: str | None
    outputs: list[Outgoing] = field(default_factory=list)
    business_key: str | None = None
    correlation_id: str | None = None
    route_id: str | None = None
    destinations: list[str] = field(default_factory=list)
    attempts: int = 1
    error: HubError | None = None
    config_version: str | None = None
    arrived: float = 0.0  # time.perf_counter() when the hop received it (latency metrics)


class Pipeline:
    """One configuration version's processing; swapped whole on reload."""

    def __init__(self, table: RouteTable, settings: Settings, lookups: dict | None = None) -> None:
        self.table = table
        self.cfg = table.cfg
        self.settings = settings
        self.tiers = [t.name for t in settings.retry_tiers]
        #: State lookups the running flows offer to resolvers (mappings.context.RouteContext.lookups);
        #: the runtime sets them, a bare Pipeline (fixtures, unit tests) has none.
        self.lookups: dict = dict(lookups or {})

    # --- entry point -------------------------------------------------------------
    def process(self, msg: Incoming, now: datetime | None = None) -> Outcome:
        now = now or datetime.now(UTC)
        props = msg.props
        headers = props.headers or {}
        trusted = not msg.from_node_publish
        if not trusted:  # a node's own x-hub-* headers mean nothing: not even to a route's header predicate
            headers = {k: v for k, v in headers.items() if not str(k).startswith("x-hub-")}
        user = headers.get(ev.H_ORIGIN_USER) if trusted else props.user_id
        attempt = int(headers.get(ev.H_ATTEMPT, 1)) if trusted else 1
        node = self.cfg.directory.by_user.get(self.settings.node_user(user) or "")
        # pika hands over a short string that is not valid UTF-8 as bytes: such an id or type is
        # treated as absent (refused below), never carried into the journal, logs or the nack.
        mid = props.message_id if isinstance(props.message_id, str) else ""
        type_name = props.type if isinstance(props.type, str) else None
        corr = props.correlation_id if isinstance(props.correlation_id, str) else None
        out = Outcome(msg, Verdict.delivered, mid or _synthetic_id(msg.body), type_name, node.code if node else None,
                      correlation_id=corr, attempts=attempt, config_version=self.table.version)
        route = None
        try:
            if node is None:
                if not user:
                    raise RejectedMessage("The message has no user_id property; set user_id to your node's AMQP "
                                          "user so the broker can vouch for the sender.",
                                          reason=ReasonCode.SENDER_UNAUTHENTICATED, field="user_id")
                raise RejectedMessage(f"AMQP user {user!r} is not a configured node.",
                                      reason=ReasonCode.UNKNOWN_NODE, field="user_id", value=user)
            if not mid or len(mid) > MAX_MESSAGE_ID or not mid.isprintable():
                raise RejectedMessage(f"message_id must be 1-{MAX_MESSAGE_ID} printable UTF-8 characters.",
                                      reason=ReasonCode.MISSING_PROPERTY, field="message_id", value=mid or None)
            mtype = self.cfg.catalogue.types.get(type_name or "")
            if mtype is None or mtype.produced_by_hub:
                raise RejectedMessage(f"Message type {type_name!r} is not accepted from nodes; see the "
                                      "message types in docs/contract.md.",
                                      reason=ReasonCode.UNKNOWN_TYPE, field="type", value=type_name)
            root, src_enc = xmlwire.parse(msg.body, props.content_encoding,
                                          max_bytes=node.limits.max_message_bytes)
            original = root
            expected = self.cfg.catalogue.root_tag(type_name)
            if root.tag != expected:
                raise RejectedMessage(f"A {type_name} message must have root element {expected}, not {root.tag}.",
                                      reason=ReasonCode.XSD_INVALID, field="root", value=root.tag)
            schemas.validate(mtype.schema_name, root)
            claimed = self.cfg.catalogue.sender_of(type_name, root)
            if claimed is not None and claimed != node.code:
                raise RejectedMessage(
                    f"The payload names sender {claimed!r} but the message was published by node {node.code}.",
                    reason=ReasonCode.SPOOFED_SENDER, field="CompanyCode", value=claimed)
            ctx = self.table.context(node.code, now, self.lookups)
            if mtype.check:
                from mappings import registry
                registry.CHECKS[mtype.check](root, ctx)
            out.business_key = self.cfg.catalogue.business_key(type_name, root)
            route = self.table.match(type_name, node.code, headers, root)
            out.route_id = route.id
            root, deliveries, extra = self.table.run(route, root, ctx)
            base = props.copy(user_id=None, app_id="cs-hub", delivery_mode=2, content_type="application/xml")
            base.headers = {k: v for k, v in headers.items() if not str(k).startswith("x-hub-")
                            and k != ev.H_RETRY_TIER}
            base.headers.update(extra)
            base.headers.update({ev.H_SOURCE: node.code, ev.H_ROUTE: route.id, ev.H_CONFIG: self.table.version,
                                 ev.H_ORIGIN_USER: self.settings.broker_user(node.amqp_user)})
            # Unchanged trees in the sender's own encoding go out byte for byte as they came in.
            encoded: dict[tuple[int, str], bytes] = {(id(original), src_enc): msg.body}
            for d in deliveries:
                enc = self.cfg.directory.by_code[d.node].encoding if d.node else "utf-8"
                key = (id(d.root), enc)
                if key not in encoded:
                    encoded[key] = xmlwire.serialise(d.root, enc)
                p = base.copy(type=d.type, content_encoding=enc)
                out.outputs.append(Outgoing(ev.DELIVER_EXCHANGE, d.queue, p, encoded[key]))
                out.destinations.append(d.queue)
            return out
        except HubError as exc:
            return self._failed(out, exc, route, now)
        except Exception as exc:  # a bug or an unexpected library error: retried, then dead-lettered
            log.exception("processing failed", extra={"message_id": out.message_id, "type": props.type})
            err = HubError(f"Unexpected error while processing: {type(exc).__name__}: {exc}",
                           reason=ReasonCode.PROCESSING_ERROR)
            return self._failed(out, err, route, now)

    # --- failures ----------------------------------------------------------------
    def refuse(self, out: Outcome, exc: HubError, now: datetime) -> Outcome:
        """Turn a routed outcome into a refusal (used by flows that check state)."""
        route = self.table.by_id.get(out.route_id or "")
        out.outputs, out.destinations = [], []
        return self._failed(out, exc, route, now)

    def refuse_reused_id(self, out: Outcome, first_type: str, now: datetime) -> Outcome:
        """A message id already delivered as another type: not a re-send but a second message
        under a used id. Nothing is delivered and the journal keeps the first message's record
        (the verdict stays `duplicate`), but the sender gets a nack and hub.dlq the message."""
        exc = RejectedMessage(
            f"message_id {out.message_id!r} was already delivered as a {first_type} message; this "
            f"{out.type} message was not delivered. Give every new message a new id; re-send only "
            "the same message under the same id.",
            reason=ReasonCode.DUPLICATE, field="message_id", value=out.message_id)
        route = self.table.by_id.get(out.route_id or "")
        out.verdict = Verdict.duplicate
        out.error = exc
        out.outputs, out.destinations = self._refusal(out, exc, route, now)
        return out

    def _failed(self, out: Outcome, exc: HubError, route, now: datetime) -> Outcome:
        out.error = exc
        max_attempts = route.max_attempts if route is not None else self.settings.max_attempts
        if exc.retryable and out.attempts < max_attempts:
            out.verdict = Verdict.retrying
            tier = failures.tier_for(out.attempts, self.tiers)
            out.outputs = [failures.retry(out.incoming, out.attempts, tier, exc, back_to=ev.HUB_QUEUE)]
            out.destinations = [f"{ev.RETRY_EXCHANGE}:{tier}"]
            return out
        if exc.retryable:
            exc = HubError(f"Gave up after {out.attempts} attempts; last error: {exc.detail}",
                           reason=ReasonCode.RETRY_EXHAUSTED)
            out.error = exc
        out.verdict = Verdict.dead_lettered
        out.outputs, out.destinations = self._refusal(out, exc, route, now)
        return out

    def _refusal(self, out: Outcome, exc: HubError, route, now: datetime) -> tuple[list[Outgoing], list[str]]:
        """The dead letter, and the nack to the sender when the sender is a known node."""
        outputs = [failures.dead_letter(out.incoming, exc, now, message_id=out.message_id,
                                        attempts=out.attempts, stage="hub",
                                        route=route.id if route is not None else None,
                                        source=out.source, config_version=self.table.version)]
        destinations = [ev.DLQ]
        if out.source is not None:
            node = self.cfg.directory.by_code[out.source]
            outputs.append(failures.nack(out.incoming, exc, now, message_id=out.message_id,
                                         type_name=out.type, queue=node.queue, encoding=node.encoding))
            destinations.append(node.queue)
        return outputs, destinations


def _synthetic_id(body: bytes) -> str:
    import hashlib

    return "no-id-" + hashlib.sha1(body).hexdigest()[:20]
