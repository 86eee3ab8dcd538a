"""WAP XML: requests parsed, bus messages built valid against wap.xsd, rate buckets (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.wap.ratelimit import TokenBucket
from protocols import schemas, xmlwire
from protocols.errors import HubError, ReasonCode, RejectedMessage
from protocols.wap import wire

NOW = datetime(2026, 1, 10, 2, tzinfo=UTC)


def parse(text: str):
    root, _ = xmlwire.parse(text.encode())
    return wire.parse_request(root)


def test_query_and_transaction_round_trip_into_valid_bus_messages():
    q = parse('<QueryRequest xmlns="urn:cs-hub:wap:1"><RequestId>R1</RequestId><Mobile>13920001234</Mobile>'
              "<Kind>bill_summary</Kind><Month>202512</Month></QueryRequest>")
    assert q == wire.QueryRequest("R1", "13920001234", "bill_summary", "202512")
    schemas.validate("wap", wire.query_tree(q, "WAP", NOW, 8))
    t = parse('<TransactionRequest xmlns="urn:cs-hub:wap:1"><RequestId>T1</RequestId><Mobile>13920001234</Mobile>'
              '<Service>DATA10G</Service><Action>change</Action><Parameter name="to">DATA20G</Parameter>'
              "</TransactionRequest>")
    assert t.parameters == (("to", "DATA20G"),)
    schemas.validate("wap", wire.transaction_tree(t, "WAP", NOW))
    for tree in (wire.answer_tree("44", "R1", "13920001234", "balance", "ok", wire.balance("1.50", NOW), "余额", "b"),
                 wire.receipt_tree("44", "T1", "13920001234", "done", NOW),
                 wire.accepted_tree("T1", "wap.tx.hall.T1"),
                 wire.error_tree(HubError("x", reason=ReasonCode.PARTNER_TIMEOUT), "R1", zh="超时")):
        schemas.validate("wap", tree)
    reply = wire.read_reply(wire.receipt_tree("44", "T1", "13920001234", "done", NOW))
    assert (reply.type, reply.company, reply.result) == ("wap.transaction_receipt", "44", "done")


@pytest.mark.parametrize("kind, month, ok", [
    ("balance", None, True), ("balance", "202512", False), ("bill_summary", None, False),
    ("detail_records", "202601", True), ("detail_records", "202602", False)])
def test_month_rules(kind, month, ok):
    if ok:
        wire.check_query(kind, month, NOW)
    else:
        with pytest.raises(RejectedMessage) as info:
            wire.check_query(kind, month, NOW)
        assert info.value.field == "Month"


def test_other_roots_are_refused():
    with pytest.raises(RejectedMessage) as info:
        parse('<Query xmlns="urn:cs-hub:wap:1"/>')
    assert info.value.reason == ReasonCode.XSD_INVALID


def test_token_bucket():
    b = TokenBucket(rate=2.0, burst=2)
    assert [b.take(0.0)[0] for _ in range(3)] == [True, True, False]
    ok, wait = b.take(0.1)
    assert not ok and wait == pytest.approx(0.4)
    assert b.take(0.5)[0] and not b.take(0.5)[0]
