"""Hostile bytes against protocols/xmlwire.py and the refusal it feeds (hub/failures.py).

Each case is something a node can put on the wire that once slipped past the strict decoding
or broke the negative acknowledgement itself (see docs/contract.md section 2).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from hub import failures
from hub.envelope import Incoming, Props
from protocols import xmlwire
from protocols.errors import ReasonCode, RejectedMessage

NS = "urn:cs-hub:hub:1"


def notice(text: str = "涓枃") -> str:
    return (f'<Notice xmlns="{NS}"><CompanyCode>44</CompanyCode><To>11</To><Title>x</Title>'
            f"<Text>{text}</Text></Notice>")


def reason(data: bytes, encoding: str | None = None) -> ReasonCode:
    with pytest.raises(RejectedMessage) as refused:
        xmlwire.parse(data, encoding)
    return refused.value.reason


def test_a_second_declaration_cannot_make_lxml_decode_again():
    # Before: the first declaration was stripped, lxml took the second as its own and decoded
    # the checked UTF-8 text as GBK, delivering 娑撴瀮 for 涓枃.
    data = ("<?xml version='1.0' encoding='utf-8'?><?xml version='1.0' encoding='gbk'?>" + notice()).encode()
    assert reason(data) == ReasonCode.XML_MALFORMED


def test_a_stylesheet_pi_after_the_declaration_is_still_accepted():
    root, enc = xmlwire.parse(("<?xml version='1.0'?><?xml-stylesheet href='a.xsl'?>" + notice()).encode())
    assert enc == "utf-8" and root[3].text == "涓枃"


def test_a_byte_order_mark_does_not_hide_a_gbk_declaration():
    # Before: the declaration was looked for at byte 0 only, so BOM + encoding="GBK" went through as UTF-8.
    data = b"\xef\xbb\xbf" + ("<?xml version='1.0' encoding='GBK'?>" + notice()).encode()
    assert reason(data) == ReasonCode.ENCODING_MISMATCH
    root, enc = xmlwire.parse(b"\xef\xbb\xbf" + ("<?xml version='1.0' encoding='UTF-8'?>" + notice()).encode())
    assert enc == "utf-8" and root[3].text == "涓枃"


def _nack(message_id, type_name="notice.text"):
    msg = Incoming(b"<x/>", Props(message_id=message_id, type=type_name, user_id="node-44"))
    exc = RejectedMessage("message_id must be printable.", reason=ReasonCode.MISSING_PROPERTY,
                          field="message_id", value=message_id)
    return failures.nack(msg, exc, datetime(2026, 1, 1, tzinfo=UTC), message_id=message_id,
                         type_name=type_name, queue="node.44", encoding="gbk")


@pytest.mark.parametrize("message_id", ["a" * 255, "中" * 85, "ab\x01c\x00", b"ab\xff\xfe".decode("latin-1")])
def test_a_nack_can_always_be_built_and_sent(message_id):
    out = _nack(message_id, type_name="notice.te\x07xt")
    assert len(out.props.message_id.encode()) <= failures.MAX_SHORTSTR  # pika refuses longer short strings
    assert out.props.message_id == _nack(message_id).props.message_id  # deterministic: a redelivery dedupes
    root = etree.fromstring(out.body)
    assert root.find(f"{{{NS}}}ReasonCode").text == "MISSING_PROPERTY"


def test_safe_text_replaces_what_xml_cannot_carry():
    assert xmlwire.safe_text("a\x00b\x1bc\ttext") == "a\ufffdb\ufffdc\ttext"
    assert xmlwire.safe_text(b"no\xffbytes") == "no\ufffdbytes"
    assert xmlwire.safe_text("中文𠀀") == "中文𠀀"
