"""A province's (or HQ's) CRM as a vendor would write it from docs/contract.md and docs/orders.md.

Plain pika and the standard library only: nothing here imports the project, so the
end-to-end tests exercise the wire contract as any vendor's client would meet it. The
tests hand over a broker URL with the node's credentials, as an operator would.

Owns: building the four order messages as XML text, publishing them in the node's own
encoding with the properties the contract demands, and reading the node's queue.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pika

NS = "urn:cs-hub:order:1"
ONS = "{" + NS + "}"
HUBNS = "{urn:cs-hub:hub:1}"
CHINA = timezone(timedelta(hours=8))


def ts(value: datetime) -> str:
    """xs:dateTime with the China offset, as a province's CRM writes it."""
    return value.astimezone(CHINA).isoformat(timespec="seconds")


def dispatch_xml(sender: str, serial: str, to: str, *, dispatch_time: datetime, first: datetime,
                 final: datetime, mobile: str = "13901001234", category: str = "NETWORK_SIGNAL",
                 issue: str = "用户(北京号码)在广州市天河区漫游期间手机信号时有时无,通话经常中断,已持续三天。",
                 to_name: str = "用户归属省公司", dispatcher: str = "李娜", phone: str = "020-87654321",
                 complainant: str = "王建国") -> str:
    return (f'<DispatchOrder xmlns="{NS}">'
            f"<CompanyCode>{sender}</CompanyCode><SerialNumber>{serial}</SerialNumber>"
            f"<ToCompany><Code>{to}</Code><Name>{to_name}</Name></ToCompany>"
            f"<DispatcherName>{dispatcher}</DispatcherName><DispatcherPhone>{phone}</DispatcherPhone>"
            f"<CustomerMobile>{mobile}</CustomerMobile><ComplainantName>{complainant}</ComplainantName>"
            f"<ComplainantPhone>{mobile}</ComplainantPhone><ComplaintCategory>{category}</ComplaintCategory>"
            f"<ComplaintIssue>{issue}</ComplaintIssue>"
            f"<FirstReplyDeadline>{ts(first)}</FirstReplyDeadline>"
            f"<FinalReplyDeadline>{ts(final)}</FinalReplyDeadline>"
            f"<DispatchTime>{ts(dispatch_time)}</DispatchTime></DispatchOrder>")


def dispatch_receipt_xml(sender: str, originator: str, serial: str, *, at: datetime, status: str = "accepted",
                         reason: str | None = None) -> str:
    return (f'<DispatchReceipt xmlns="{NS}"><CompanyCode>{sender}</CompanyCode>'
            f"<DispatchCompanyCode>{originator}</DispatchCompanyCode>"
            f"<DispatchSerialNumber>{serial}</DispatchSerialNumber>"
            f"<ReceivedTime>{ts(at)}</ReceivedTime><Status>{status}</Status>"
            + (f"<Reason>{reason}</Reason>" if reason else "") + "</DispatchReceipt>")


def return_xml(sender: str, originator: str, serial: str, *, at: datetime, kind: str, result: str,
               replier: str = "张伟", phone: str = "010-12345678") -> str:
    return (f'<ReturnOrder xmlns="{NS}"><CompanyCode>{sender}</CompanyCode>'
            f"<DispatchCompanyCode>{originator}</DispatchCompanyCode>"
            f"<DispatchSerialNumber>{serial}</DispatchSerialNumber>"
            f"<ReplierName>{replier}</ReplierName><ReplierPhone>{phone}</ReplierPhone>"
            f"<Result>{result}</Result><ReplyTime>{ts(at)}</ReplyTime><ReplyKind>{kind}</ReplyKind></ReturnOrder>")


def return_receipt_xml(sender: str, serial: str, *, kind: str, at: datetime, status: str = "accepted",
                       reason: str | None = None) -> str:
    return (f'<ReturnReceipt xmlns="{NS}"><CompanyCode>{sender}</CompanyCode>'
            f"<DispatchCompanyCode>{sender}</DispatchCompanyCode>"
            f"<DispatchSerialNumber>{serial}</DispatchSerialNumber><ReplyKind>{kind}</ReplyKind>"
            f"<ReceivedTime>{ts(at)}</ReceivedTime><Status>{status}</Status>"
            + (f"<Reason>{reason}</Reason>" if reason else "") + "</ReturnReceipt>")


def encode(xml_text: str, encoding: str) -> bytes:
    """The document in `encoding`, with a declaration that says so (what a GBK CRM sends)."""
    return f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n{xml_text}'.encode(encoding)


@dataclass
class Received:
    props: pika.BasicProperties
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(self.props.content_encoding or "utf-8")

    @property
    def root(self) -> ET.Element:
        return ET.fromstring(self.text)

    def find(self, name: str) -> str | None:
        el = self.root.find(ONS + name)
        return None if el is None else el.text

    def nack_reason(self) -> str | None:
        el = self.root.find(HUBNS + "ReasonCode")
        return None if el is None else el.text


class ProvinceCRM:
    """One node: publishes as itself to hub.ingress and reads its own queue node.<code>."""

    def __init__(self, url: str, code: str, user: str, encoding: str = "utf-8") -> None:
        self.code = code
        self.user = user
        self.encoding = encoding
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()  # the contract: publisher confirms, persistent messages

    def send(self, type_: str, xml_text: str, *, message_id: str | None = None, correlation_id: str | None = None,
             encoding: str | None = None, body: bytes | None = None, declared: str | None = None) -> str:
        """Publish one message; `body`/`declared` let a test send bytes that do not match the label."""
        encoding = encoding or self.encoding
        message_id = message_id or f"{self.code}-{uuid.uuid4()}"
        self.ch.basic_publish("hub.ingress", type_, body if body is not None else encode(xml_text, encoding),
                              pika.BasicProperties(
                                  message_id=message_id, type=type_, user_id=self.user,
                                  content_type="application/xml", content_encoding=declared or encoding,
                                  delivery_mode=2, timestamp=int(time.time()), correlation_id=correlation_id))
        return message_id

    def next(self, timeout: float = 15.0) -> Received:
        """The next message of the node's queue, acknowledged after reading (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = self.ch.basic_get(f"node.{self.code}", auto_ack=False)
            if method:
                self.ch.basic_ack(method.delivery_tag)
                return Received(props, body)
            self.conn.process_data_events(time_limit=0.02)
        raise AssertionError(f"nothing arrived in node.{self.code} within {timeout}s")

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()
