"""What the order tests look at on the broker besides the nodes' own queues: depths and the dead letters.

Owns: read-only peeks with the test vhost's admin credentials. Must not: publish.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pika

from hub.settings import Settings


def now_s() -> datetime:
    """The hub's clock now, to the second (the wire times carry seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


def queue_depth(settings: Settings, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def dlq_messages(settings: Settings) -> list[tuple[pika.BasicProperties, bytes]]:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    out = []
    try:
        ch = conn.channel()
        while True:
            m, p, b = ch.basic_get("hub.dlq", auto_ack=True)
            if not m:
                return out
            out.append((p, b))
    finally:
        conn.close()
