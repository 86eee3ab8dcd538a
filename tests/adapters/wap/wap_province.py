"""A province CRM answering WAP queries, as a vendor would write it: plain pika, its own user.

Owns: consuming node.<code>, answering each wap.query with a wap.answer (correlation_id = the
query's message_id) and each wap.transaction with a wap.transaction_receipt, in the province's
own encoding; `silent` makes it take queries without answering (for timeouts), `delay_s` answers late.
Must not: import the project's runtime (only the pure wire builders, as a vendor would copy XML).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pika
from lxml import etree

from protocols import xmlwire
from protocols.wap import wire

#: The secret of the test clients (config/wap.yaml holds only its SHA-256).
SECRET = "wap-hall-secret-for-tests-0001"


class WapProvince:
    def __init__(self, url: str, code: str, user: str, *, encoding: str = "utf-8") -> None:
        self.url, self.code, self.user, self.encoding = url, code, user, encoding
        self.silent = False
        self.delay_s = 0.0
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"province-{code}")

    def start(self) -> WapProvince:
        self._thread.start()
        assert self._ready.wait(15), f"province {self.code} did not start consuming"
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_qos(prefetch_count=200)
        ch.basic_consume(f"node.{self.code}", lambda c, m, p, b: self._on(c, m, p, b))
        self._ready.set()
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.05)
        conn.close()

    def _on(self, ch, method, props, body) -> None:
        self.seen.append(props.type)
        root, _ = xmlwire.parse(body, props.content_encoding)
        if self.silent or props.type not in (wire.QUERY_TYPE, wire.TRANSACTION_TYPE):
            ch.basic_ack(method.delivery_tag)
            return
        if self.delay_s:
            time.sleep(self.delay_s)
        ns = {"w": wire.NS}
        rid, mobile = root.findtext("w:RequestId", namespaces=ns), root.findtext("w:Mobile", namespaces=ns)
        now = datetime.now(UTC)
        if props.type == wire.QUERY_TYPE:
            kind = root.findtext("w:Kind", namespaces=ns)
            if mobile.endswith("0000"):
                reply = wire.answer_tree(self.code, rid, mobile, kind, "unknown_customer",
                                         zh="查无此用户", en="No such customer")
            else:
                reply = wire.answer_tree(self.code, rid, mobile, kind, "ok", wire.balance("58.30", now),
                                         zh="余额充足", en="Balance is sufficient")
            type_ = wire.ANSWER_TYPE
        else:
            reply = wire.receipt_tree(self.code, rid, mobile, "done", now, zh="已办理", en="Done")
            type_ = wire.RECEIPT_TYPE
        out = xmlwire.serialise(reply, self.encoding)
        ch.basic_publish("hub.ingress", type_, out, pika.BasicProperties(
            message_id=f"p{self.code}.{uuid.uuid4().hex}", type=type_, correlation_id=props.message_id,
            user_id=self.user, content_type="application/xml", content_encoding=self.encoding, delivery_mode=2))
        ch.basic_ack(method.delivery_tag)


def text_of(body: bytes, name: str, lang: str | None = None) -> str | None:
    root = etree.fromstring(body)
    path = f"w:{name}" + (f"[@lang='{lang}']" if lang else "")
    return root.findtext(path, namespaces={"w": wire.NS})
