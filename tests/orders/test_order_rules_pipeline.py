"""Every validation rule of docs/orders.md section 4 refuses at the hub with its reason code and field.

Run through the real pipeline (configuration, catalogue checks, routes) without a broker. A
rule that order.xsd already enforces is refused by the schema first (XSD_INVALID naming the
element); the rules the schema cannot express come from protocols.orders.rules through
mappings/orders.py. Rules that need the dispatch order's state are in test_order_flow.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from province import dispatch_receipt_xml, dispatch_xml, encode, return_receipt_xml, return_xml

from hub.envelope import Incoming, Props
from hub.pipeline import Verdict
from hub.runtime import build_pipeline
from hub.settings import load_settings
from protocols.errors import ReasonCode

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 11, 2, 5, tzinfo=UTC)
T0 = datetime(2024, 6, 11, 2, 0, tzinfo=UTC)
F1, F2 = T0 + timedelta(hours=2), T0 + timedelta(hours=24)
R = ReasonCode


@pytest.fixture(scope="module")
def pipeline():
    return build_pipeline(load_settings(REPO / "config" / "hub.yaml", config_dir=REPO / "config",
                                        routes_dir=REPO / "routes"))


def d(**kw) -> str:
    args = {"sender": "44", "serial": "20240611-000123", "to": "11", "dispatch_time": T0, "first": F1, "final": F2}
    args.update(kw)
    return dispatch_xml(args.pop("sender"), args.pop("serial"), args.pop("to"), **args)


def swap(xml: str, element: str, value: str) -> str:
    start, end = xml.index(f"<{element}>") + len(element) + 2, xml.index(f"</{element}>")
    return xml[:start] + value + xml[end:]


RET = return_xml("11", "44", "20240611-000123", at=NOW, kind="first", result="已受理")
MARK = dispatch_receipt_xml("11", "44", "20240611-000123", at=NOW)
RMARK = return_receipt_xml("44", "20240611-000123", kind="first", at=NOW)

# (case id, sender, type, body, content_encoding, reason, field)
CASES = [
    # --- dispatch order (电子派单)
    ("company code format", "44", "order.dispatch", swap(d(), "CompanyCode", "4-4"), None, R.XSD_INVALID, "CompanyCode"),
    ("HOME in the wrong case", "44", "order.dispatch", d(to="Home"), None, R.FIELD_INVALID, "ToCompany/Code"),
    ("to its own sender", "44", "order.dispatch", d(to="44"), None, R.FIELD_INVALID, "ToCompany/Code"),
    ("serial number format", "44", "order.dispatch", d(serial="2024/06/11"), None, R.XSD_INVALID, "SerialNumber"),
    ("name with surrounding space", "44", "order.dispatch", d(dispatcher=" 李娜"), None, R.XSD_INVALID,
     "DispatcherName"),
    ("name over 50 characters", "44", "order.dispatch", d(complainant="王" * 51), None, R.XSD_INVALID,
     "ComplainantName"),
    ("receiver name empty", "44", "order.dispatch", d(to_name=""), None, R.XSD_INVALID, "Name"),
    ("phone format", "44", "order.dispatch", d(phone="020--8765"), None, R.XSD_INVALID, "DispatcherPhone"),
    ("mobile format", "44", "order.dispatch", d(mobile="12901001234"), None, R.XSD_INVALID, "CustomerMobile"),
    ("unknown complaint category", "44", "order.dispatch", d(category="WEATHER"), None, R.FIELD_INVALID,
     "ComplaintCategory"),
    ("blank complaint issue", "44", "order.dispatch", d(issue="   "), None, R.XSD_INVALID, "ComplaintIssue"),
    ("complaint issue over 2000 characters", "44", "order.dispatch", d(issue="信" * 2001), None, R.XSD_INVALID,
     "ComplaintIssue"),
    ("time without a zone", "44", "order.dispatch", swap(d(), "DispatchTime", "2024-06-11T10:00:00"), None,
     R.XSD_INVALID, "DispatchTime"),
    ("dispatch time in the future", "44", "order.dispatch",
     d(dispatch_time=NOW + timedelta(minutes=11), first=F1 + timedelta(hours=1), final=F2), None,
     R.FIELD_INVALID, "DispatchTime"),
    ("first deadline not after dispatch", "44", "order.dispatch", d(first=T0), None, R.DEADLINE_ORDER,
     "FirstReplyDeadline"),
    ("final deadline before first", "44", "order.dispatch", d(final=F1 - timedelta(minutes=1)), None,
     R.DEADLINE_ORDER, "FinalReplyDeadline"),
    ("HOME with an unknown segment", "44", "order.dispatch", d(to="HOME", mobile="19999999999"), None,
     R.UNKNOWN_SEGMENT, "CustomerMobile"),
    ("HOME resolving to the sender's province", "44", "order.dispatch", d(to="HOME", mobile="13920001234"), None,
     R.FIELD_INVALID, "ToCompany/Code"),
    ("a company not on the network", "44", "order.dispatch", d(to="77"), None, R.UNKNOWN_NODE, "ToCompany/Code"),
    ("in another company's name", "31", "order.dispatch", d(), None, R.SPOOFED_SENDER, "CompanyCode"),
    ("an element the schema does not know", "44", "order.dispatch",
     d().replace("</DispatchOrder>", "<Priority>high</Priority></DispatchOrder>"), None, R.XSD_INVALID, "Priority"),
    # --- return order (电子回单)
    ("originator answering its own order", "44", "order.return",
     return_xml("44", "44", "20240611-000123", at=NOW, kind="first", result="x"), None, R.FIELD_INVALID,
     "CompanyCode"),
    ("blank result", "11", "order.return", swap(RET, "Result", " "), None, R.XSD_INVALID, "Result"),
    ("reply kind", "11", "order.return", swap(RET, "ReplyKind", "interim"), None, R.XSD_INVALID, "ReplyKind"),
    ("reply time in the future", "11", "order.return", swap(RET, "ReplyTime", "2024-06-11T10:20:00+08:00"), None,
     R.FIELD_INVALID, "ReplyTime"),
    ("dispatch serial format", "11", "order.return", swap(RET, "DispatchSerialNumber", "序号1"), None,
     R.XSD_INVALID, "DispatchSerialNumber"),
    # --- success marks (成功标记)
    ("dispatch mark from the originator", "44", "order.dispatch_receipt",
     dispatch_receipt_xml("44", "44", "20240611-000123", at=NOW), None, R.FIELD_INVALID, "CompanyCode"),
    ("rejection without a reason", "11", "order.dispatch_receipt",
     dispatch_receipt_xml("11", "44", "20240611-000123", at=NOW, status="rejected"), None, R.FIELD_INVALID,
     "Reason"),
    ("reason over 500 characters", "11", "order.dispatch_receipt",
     dispatch_receipt_xml("11", "44", "20240611-000123", at=NOW, status="rejected", reason="因" * 501), None,
     R.XSD_INVALID, "Reason"),
    ("mark time in the future", "11", "order.dispatch_receipt",
     dispatch_receipt_xml("11", "44", "20240611-000123", at=NOW + timedelta(minutes=11)), None, R.FIELD_INVALID,
     "ReceivedTime"),
    ("return mark not from the originator", "11", "order.return_receipt",
     RMARK.replace("<CompanyCode>44</CompanyCode>", "<CompanyCode>11</CompanyCode>"), None, R.FIELD_INVALID,
     "CompanyCode"),
    ("return mark status", "44", "order.return_receipt", swap(RMARK, "Status", "ok"), None, R.XSD_INVALID, "Status"),
    # --- bytes and XML
    ("GBK bytes labelled UTF-8", "44", "order.dispatch", d().encode("gbk"), "utf-8", R.ENCODING_INVALID,
     "content_encoding"),
    # Chinese chosen so that the UTF-8 bytes also decode as GBK: only the mismatch check catches them
    ("UTF-8 bytes labelled GBK", "44", "order.dispatch",
     d(dispatcher="测试", complainant="北京", to_name="广东", issue="用户投诉").encode("utf-8"), "gbk",
     R.ENCODING_MISMATCH, "content_encoding"),
    ("property and declaration disagree", "44", "order.dispatch", encode(d(), "utf-8"), "gbk", R.ENCODING_MISMATCH,
     "content_encoding"),
    ("a DTD", "44", "order.dispatch", '<!DOCTYPE x [<!ENTITY e "x">]>' + d(), None, R.XML_FORBIDDEN, None),
    ("not well-formed", "44", "order.dispatch", d()[:-5], None, R.XML_MALFORMED, None),
    ("a notice sent as an order", "44", "order.dispatch",
     '<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>44</CompanyCode><To>11</To><Title>t</Title><Text>t</Text>'
     "</Notice>", None, R.XSD_INVALID, "root"),
    ("alarms come from the hub only", "44", "order.alarm", d(), None, R.UNKNOWN_TYPE, "type"),
]


@pytest.mark.parametrize("case,sender,type_,body,encoding,reason,field", CASES, ids=[c[0] for c in CASES])
def test_rule_refuses_with_its_reason(pipeline, case, sender, type_, body, encoding, reason, field):
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    msg = Incoming(data, Props(message_id=f"rule-{case}", type=type_, content_encoding=encoding,
                               user_id=pipeline.settings.broker_user(f"node-{sender}")))
    o = pipeline.process(msg, NOW)
    assert o.verdict is Verdict.dead_lettered, f"{case}: {o.verdict}, delivered to {o.destinations}"
    assert (o.error.reason, o.error.field) == (reason, field), f"{case}: {o.error}"
    assert [out.routing_key for out in o.outputs] == ["", f"node.{sender}"]  # dead letter + nack to the sender


def test_the_valid_messages_pass(pipeline):
    for sender, type_, body in (("44", "order.dispatch", d()), ("44", "order.dispatch", d(to="HOME")),
                                ("11", "order.return", RET), ("11", "order.dispatch_receipt", MARK)):
        o = pipeline.process(Incoming(body.encode(), Props(message_id="ok", type=type_,
                                                           user_id=pipeline.settings.broker_user(f"node-{sender}"))),
                             NOW)
        assert o.verdict is Verdict.delivered, o.error
