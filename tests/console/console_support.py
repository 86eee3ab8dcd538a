"""What the console's tests share, imported by name (test modules must not import `conftest`:
with several test folders in one run that name is whichever conftest was loaded last)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pika

from hub import failures
from hub.envelope import INGRESS_EXCHANGE, Incoming, Props
from hub.worker import to_pika
from protocols.errors import ReasonCode, TransientFailure

PASSWORD = "correct horse 1"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def notice_xml(sender: str, to: str, text: str) -> bytes:
    return ('<?xml version="1.0" encoding="GBK"?>'
            f'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>{sender}</CompanyCode><To>{to}</To>'
            f"<Title>通知</Title><Text>{text}</Text></Notice>").encode("gbk")


def park(settings, message_id: str, *, sender: str = "44", to: str = "11", text: str = "漫游用户投诉:信号差") -> None:
    """A dead letter of a valid GBK notice whose delivery gave up (as the hub makes it), in hub.dlq."""
    msg = Incoming(notice_xml(sender, to, text),
                   Props(message_id=message_id, type="notice.text", content_type="application/xml",
                         content_encoding="gbk", user_id=settings.broker_user(f"node-{sender}")),
                   exchange=INGRESS_EXCHANGE, routing_key="notice.text")
    exc = TransientFailure("province 11 did not answer through all retries", reason=ReasonCode.RETRY_EXHAUSTED)
    out = failures.dead_letter(msg, exc, datetime.now(UTC), message_id=message_id, attempts=5, stage="deliver",
                               route="notice-to-province", source=sender)
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(out.exchange, out.routing_key, out.body, to_pika(out.props))
    finally:
        conn.close()


def queue_ids(settings, queue: str) -> list[str]:
    """Message ids in `queue`, read without consuming (the channel closes unacked)."""
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        ch = conn.channel()
        ids = []
        while True:
            m, p, _ = ch.basic_get(queue, auto_ack=False)
            if m is None:
                return ids
            ids.append(p.message_id)
    finally:
        conn.close()
