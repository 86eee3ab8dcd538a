"""The test's own side of the bus: publish sms.send into adapter.smpp as the hub's hop
delivers it, and read what the adapter published to node queues.

Owns: a BlockingConnection with the settings' credentials (full rights on the test vhost),
and `statuses`, which collects sms.status by correlation id until enough have come.
Must not: assert anything beyond waiting; tests do.
"""

from __future__ import annotations

import pika
from lxml import etree
from waiting import wait_until

from hub.envelope import DELIVER_EXCHANGE, H_SOURCE
from hub.settings import Settings
from protocols import xmlwire
from protocols.sms.wire import SmsSend, send_tree

NS = {"s": "urn:cs-hub:sms:1"}


def statuses(bus, queue: str, expect: int, timeout: float = 20.0,
             got: dict[str, etree._Element] | None = None) -> dict[str, etree._Element]:
    """sms.status by correlation id, taken from `queue` until `expect` are there (added to `got`)."""
    got = {} if got is None else got

    def more():
        for props, body in bus.take(queue):
            assert props.type == "sms.status"
            root, _ = xmlwire.parse(body, props.content_encoding)
            got[props.correlation_id] = root
        return len(got) >= expect
    wait_until(more, timeout, 0.05, f"{expect} sms.status arrive in {queue}")
    return got


class Bus:
    """The test's own connection: publish sms.send as the hub delivers it, read node queues."""

    def __init__(self, settings: Settings) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def send(self, message_id: str, to: str, text: str | None = None, *, node: str = "44",
             template: str | None = None, fields: dict | None = None, purpose: str | None = None,
             reference: str | None = None) -> None:
        """An sms.send in adapter.smpp, exactly as the hub's hop delivers it (x-hub-source = node)."""
        body = xmlwire.serialise(send_tree(SmsSend(company_code=node, to=to, text=text, template=template,
                                                   fields=fields or {}, purpose=purpose, reference=reference)),
                                 "utf-8")
        props = pika.BasicProperties(message_id=message_id, type="sms.send", content_type="application/xml",
                                     content_encoding="utf-8", delivery_mode=2, app_id="cs-hub",
                                     headers={H_SOURCE: node, "x-hub-route": "sms-send"})
        self.ch.basic_publish(DELIVER_EXCHANGE, "adapter.smpp", body, props)

    def take(self, queue: str) -> list[tuple]:
        out = []
        while True:
            m, p, b = self.ch.basic_get(queue, auto_ack=True)
            if not m:
                return out
            out.append((p, b))

    def depth(self, queue: str) -> int:
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()
