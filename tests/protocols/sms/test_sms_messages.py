"""The SMS messages on the bus (protocols/sms/wire.py) and the pure SMS rules of mappings/sms
(what an sms.send asks for, where a customer's SMS goes). No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from mappings.context import RouteContext
from mappings.sms.mo import MoRule, SurveySent, route_mo
from mappings.sms.sending import check_send, purpose_of, text_of
from protocols import schemas, xmlwire
from protocols.errors import ReasonCode, RejectedMessage
from protocols.sms import wire

NOW = datetime(2024, 6, 11, 10, 0, tzinfo=UTC)


def _c14n(data: bytes, encoding: str) -> bytes:
    root, _ = xmlwire.parse(data, encoding)
    return etree.tostring(root, method="c14n")


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "gb18030"])
def test_status_xml_is_the_tree_serialised_and_valid(encoding):
    status = wire.SmsStatusMessage(
        message_id="gd-1&<2>", to="13902001234", status="undeliverable", at=NOW, total_parts=2,
        parts_delivered=1, reason="SMPP_INVALID_DESTINATION", smsc_state="UNDELIVERABLE", smsc_error='0"12',
        detail="SMSC a answered ESME_RINVDSTADR", smsc_message_ids=("00A1", "00A2"), reference="工单𠀀1", smsc="a")
    fast = wire.status_xml(status, encoding)
    assert _c14n(fast, encoding) == _c14n(xmlwire.serialise(wire.status_tree(status), encoding), encoding)
    schemas.validate("sms", xmlwire.parse(fast, encoding)[0])


def test_status_xml_replaces_what_xml_cannot_carry():
    status = wire.SmsStatusMessage(message_id="m", to="1", status="expired", at=NOW, total_parts=1,
                                   smsc_error="0\x0127")
    root, _ = xmlwire.parse(wire.status_xml(status), "utf-8")
    assert root.findtext("{urn:cs-hub:sms:1}SmscError") == "0\ufffd27"


def test_mo_tree_is_valid_and_send_round_trips():
    mo = wire.SmsMoMessage(source="13902001234", destination="10086", text="1 满意\x07", received_at=NOW,
                           complete=False, total_parts=3, parts_received=2, in_reply_to="gd-9", survey_option="1",
                           survey_reference="T-1", smsc="a")
    schemas.validate("sms", wire.mo_tree(mo))
    send = wire.SmsSend(company_code="44", to="+8613902001234", template="satisfaction_survey", lang="en",
                        fields={"sign": "CMCC", "ticket": "T-1"}, reference="T-1")
    tree = wire.send_tree(send)
    schemas.validate("sms", tree)
    assert wire.read_send(tree) == send


def _send(**kw) -> etree._Element:
    return wire.send_tree(wire.SmsSend(company_code="44", to="13902001234", **kw))


def _ctx() -> RouteContext:
    return RouteContext(sender="44", hq="00", nodes=frozenset({"44", "00"}), groups={}, now=NOW)


def test_the_text_of_an_sms_send_is_given_or_rendered_chinese_first():
    assert text_of(wire.read_send(_send(text="你好"))) == "你好"
    rendered = text_of(wire.read_send(_send(template="one_time_password",
                                             fields={"sign": "中国移动", "code": "1234", "minutes": "5"})))
    assert rendered.startswith("【中国移动】您的验证码为1234")
    assert purpose_of(wire.read_send(_send(template="one_time_password", fields={}))) == "one_time_password"
    assert purpose_of(wire.read_send(_send(text="x"))) == "other"


@pytest.mark.parametrize(("kw", "reason", "field"), [
    ({"template": "one_time_password", "fields": {"sign": "a", "code": "12ab", "minutes": "5"}},
     ReasonCode.FIELD_INVALID, "code"),
    ({"template": "no_such_template", "fields": {}}, ReasonCode.FIELD_INVALID, "template"),
    ({"template": "satisfaction_survey", "fields": {"sign": "a", "ticket": "1"}, "purpose": "payment_reminder"},
     ReasonCode.FIELD_INVALID, "Purpose"),
])
def test_check_send_refuses_what_cannot_be_sent(kw, reason, field):
    with pytest.raises(RejectedMessage) as err:
        check_send(_send(**kw), _ctx())
    assert (err.value.reason, err.value.field) == (reason, field)


RULES = [MoRule(survey_reply=True), MoRule(to_prefix="1008699", node="99"), MoRule(keyword="TD", node="00")]
SURVEY = SurveySent(node="44", message_id="gd-9", sent_at=NOW - timedelta(hours=1), reference="T-1")


@pytest.mark.parametrize(("text", "destination", "survey", "expect"), [
    ("1", "10086", SURVEY, ("44", 0, "gd-9", "1")),
    ("１ 满意", "10086", SURVEY, ("44", 0, "gd-9", "1")),
    ("不满意", "10086", SURVEY, ("44", 0, "gd-9", "3")),
    ("信号太差了", "10086", SURVEY, ("44", 0, "gd-9", None)),     # a reply, though no option
    ("1", "10086", SurveySent("44", "old", NOW - timedelta(days=4)), ("77", None, None, None)),  # too old
    ("请回电", "100869901", None, ("99", 1, None, None)),
    ("td", "10086", None, ("00", 2, None, None)),
    ("你好", "10086", None, ("77", None, None, None)),            # the default node
])
def test_mo_routing_rules_in_order(text, destination, survey, expect):
    d = route_mo(text, destination, RULES, "77", NOW, survey)
    assert (d.node, d.rule, d.in_reply_to, d.option) == expect
