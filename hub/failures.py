"""The dead letter channel and the retry tiers, as messages to publish.

Owns: how a failed message is re-published for a retry (hub.retry with x-retry-tier, the
routing key naming the queue it returns to), parked in hub.dlq (original bytes and
properties, plus the x-hub-reason-* headers the console and replay read), and answered to
its sender (hub.nack). The hop and every adapter use these same functions, so a dead
letter looks the same whoever produced it.
Must not: decide whether an error is retryable (the reason code does) or publish.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from lxml import etree

from hub import envelope as ev
from hub.envelope import Incoming, Outgoing, Props
from protocols import xmlwire
from protocols.errors import HubError

HUB_NS = "urn:cs-hub:hub:1"
MAX_SHORTSTR = 255  # AMQP 0-9-1 shortstr (message_id, correlation_id, type): at most 255 bytes


def preserved_props(msg: Incoming) -> Props:
    """The original properties, minus user_id (only its owner may publish it)."""
    p = msg.props.copy(user_id=None)
    if msg.from_node_publish:
        p.headers = {k: v for k, v in p.headers.items() if not str(k).startswith("x-hub-")}
        if msg.props.user_id:
            p.headers[ev.H_ORIGIN_USER] = msg.props.user_id
    return p


def tier_for(attempt: int, tiers: list[str]) -> str:
    """Attempt N (1-based) waits in tier N, the last tier repeating."""
    return tiers[min(attempt, len(tiers)) - 1]


def retry(msg: Incoming, attempt: int, tier: str, exc: HubError, *, back_to: str) -> Outgoing:
    """Park `msg` in retry tier `tier`; it returns to queue `back_to` as attempt+1."""
    p = preserved_props(msg).copy()
    p.headers.update({ev.H_ATTEMPT: attempt + 1, ev.H_RETRY_TIER: tier,
                      ev.H_REASON_CODE: str(exc.reason), ev.H_REASON: exc.detail})
    return Outgoing(ev.RETRY_EXCHANGE, back_to, p, msg.body)


def dead_letter(msg: Incoming, exc: HubError, now: datetime, *, message_id: str, attempts: int,
                stage: str, route: str | None = None, source: str | None = None,
                config_version: str | None = None) -> Outgoing:
    """The original message for hub.dlq, with the reason in Chinese and English."""
    p = preserved_props(msg)
    if not p.message_id:
        p.message_id = message_id
    p.headers.update({
        ev.H_REASON_CODE: str(exc.reason), ev.H_REASON: exc.detail, ev.H_REASON_ZH: exc.text_zh(),
        ev.H_ROUTE: route or "", ev.H_ATTEMPT: attempts, ev.H_STAGE: stage, ev.H_DEAD_AT: now.isoformat(),
        ev.H_ORIG_EXCHANGE: msg.exchange, ev.H_ORIG_RK: msg.routing_key,
    })
    if config_version:
        p.headers[ev.H_CONFIG] = config_version
    if source:
        p.headers[ev.H_SOURCE] = source
    return Outgoing(ev.DLX_EXCHANGE, "", p, msg.body)


def nack(msg: Incoming, exc: HubError, now: datetime, *, message_id: str, type_name: str | None,
         queue: str, encoding: str) -> Outgoing:
    """The negative acknowledgement for the sender's queue (schema protocols/hubmsg/hub.xsd)."""
    body = nack_xml(message_id if msg.props.message_id else "", type_name, exc, now, encoding)
    p = Props(message_id=nack_id(message_id), type="hub.nack", correlation_id=msg.props.message_id,
              content_type="application/xml", content_encoding=encoding, app_id="cs-hub",
              timestamp=int(now.timestamp()), delivery_mode=2,
              headers={ev.H_REASON_CODE: str(exc.reason), ev.H_SOURCE: "hub"})
    return Outgoing(ev.DELIVER_EXCHANGE, queue, p, body)


def nack_id(message_id: str) -> str:
    """The nack's own message_id: deterministic (a redelivered refusal is deduplicated by the
    receiver), and within AMQP's 255-byte short string even for a refused 255-byte id, whose
    plain "nack." prefix pika cannot encode (that crashed the hop on every redelivery)."""
    plain = f"nack.{message_id}"
    if len(plain.encode("utf-8")) <= MAX_SHORTSTR:
        return plain
    return "nack.sha256." + hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def nack_xml(message_id: str, type_name: str | None, exc: HubError, now: datetime, encoding: str) -> bytes:
    text = xmlwire.safe_text  # ids and types come from the sender: control characters, raw bytes
    root = etree.Element(f"{{{HUB_NS}}}Nack", nsmap={None: HUB_NS})
    etree.SubElement(root, f"{{{HUB_NS}}}MessageId").text = text(message_id)
    if type_name:
        etree.SubElement(root, f"{{{HUB_NS}}}MessageType").text = text(type_name)[:200]
    etree.SubElement(root, f"{{{HUB_NS}}}ReasonCode").text = str(exc.reason)
    if exc.field:
        etree.SubElement(root, f"{{{HUB_NS}}}Field").text = text(exc.field)
    etree.SubElement(root, f"{{{HUB_NS}}}Reason", lang="zh").text = text(exc.text_zh())
    etree.SubElement(root, f"{{{HUB_NS}}}Reason", lang="en").text = text(
        f"Message {message_id or '(without message_id)'}: {exc.detail}")
    etree.SubElement(root, f"{{{HUB_NS}}}Retryable").text = "false"
    etree.SubElement(root, f"{{{HUB_NS}}}RefusedAt").text = now.astimezone(UTC).isoformat()
    return xmlwire.serialise(root, encoding)
