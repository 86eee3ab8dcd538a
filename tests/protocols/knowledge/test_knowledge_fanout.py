"""Fan-out of one approved version to 31 provinces and the second-line platform, every receipt tracked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from knowledge_golden import ITEM, PROVINCES, RECIPIENTS, golden

from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.knowledge.fanout import (
    RECIPIENT_TRANSITIONS,
    Delivered,
    FanOut,
    ReceiptArrived,
    RecipientStatus,
    Superseded,
)
from protocols.knowledge.models import Action, DeliveryReceipt, ReceiptStatus

T0 = datetime(2024, 7, 2, 2, 5, tzinfo=UTC)  # the golden publication, 10:05 +08:00
R = RecipientStatus


def _receipt(code: str, *, version: int = 1, accepted: bool = True, code_: str | None = None,
             at: datetime = T0 + timedelta(seconds=12)) -> DeliveryReceipt:
    return DeliveryReceipt(company_code=code, item_id=ITEM, version=version,
                           receipt_status=ReceiptStatus.accepted if accepted else ReceiptStatus.rejected,
                           refusal_code=code_, reason=None if accepted else "拒收", received_at=at)


def test_publication_to_31_provinces_and_the_second_line_with_every_receipt():
    fan = FanOut.for_delivery(golden("delivery_publish.xml"))
    assert (fan.item_id, fan.version, fan.action) == (ITEM, 1, Action.publish)
    assert tuple(fan.recipients) == RECIPIENTS and len(fan.recipients) == 32
    assert fan.outstanding() == RECIPIENTS and not fan.complete
    for code in RECIPIENTS:
        assert fan.delivered(code, T0) is R.DELIVERED
    assert fan.receipt(golden("delivery_receipt.xml")) is R.CONFIRMED  # Shanghai's golden mark
    for code in RECIPIENTS:
        if code != "31":
            fan.receipt(_receipt(code))
    assert fan.complete and fan.outstanding() == () and fan.rejected() == ()
    assert fan.summary() == {"PENDING": 0, "DELIVERED": 0, "CONFIRMED": 32, "REJECTED": 0, "SUPERSEDED": 0}
    assert fan.recipients["31"].answered_at == datetime(2024, 7, 2, 2, 5, 12, tzinfo=UTC)


def test_a_crm_that_is_down_stays_outstanding_and_overdue_then_catches_up():
    fan = FanOut.start(ITEM, 1, Action.publish, RECIPIENTS)
    for code in RECIPIENTS:
        fan.delivered(code, T0)
        if code != "51":
            fan.receipt(_receipt(code))
    assert fan.outstanding() == ("51",)
    assert fan.overdue(T0 + timedelta(minutes=29), within=timedelta(minutes=30)) == ()
    assert fan.overdue(T0 + timedelta(minutes=30), within=timedelta(minutes=30)) == ("51",)
    fan.delivered("51", T0 + timedelta(hours=1))  # the retry after the CRM came back
    assert fan.recipients["51"].attempts == 2
    assert fan.overdue(T0 + timedelta(hours=1, minutes=5), within=timedelta(minutes=30)) == ()
    fan.receipt(_receipt("51", at=T0 + timedelta(hours=1, seconds=3)))
    assert fan.complete


def test_a_receipt_may_overtake_the_publisher_confirm():
    fan = FanOut.start(ITEM, 1, Action.publish, ["31"])
    assert fan.receipt(_receipt("31")) is R.CONFIRMED
    assert fan.delivered("31", T0) is R.CONFIRMED  # the late confirm changes nothing
    assert fan.complete


def test_a_recipient_holding_a_newer_version_is_superseded_not_rejected():
    fan = FanOut.start(ITEM, 1, Action.publish, ["51", "52"])
    fan.delivered("51", T0)
    assert fan.receipt(golden("delivery_receipt_stale.xml")) is R.SUPERSEDED
    fan.receipt(_receipt("52", accepted=False, code_="ITEM_REVOKED"))
    assert fan.with_status(R.SUPERSEDED) == ("51", "52")
    assert fan.complete and fan.rejected() == ()


def test_marks_racing_a_newer_version_are_taken():
    fan = FanOut.start(ITEM, 1, Action.publish, ["11", "31", "44"])
    for code in ("11", "31", "44"):
        fan.delivered(code, T0)
    fan.receipt(_receipt("11"))
    fan.supersede(T0 + timedelta(days=2))
    assert fan.receipt(_receipt("31")) is R.CONFIRMED  # v1's mark, sent before v2 arrived
    assert fan.receipt(_receipt("44", accepted=False, code_="FIELD_INVALID")) is R.SUPERSEDED
    assert fan.receipt(_receipt("11", accepted=False, code_="STALE_VERSION")) is R.CONFIRMED  # a duplicate of v1
    assert fan.complete


def test_a_real_rejection_waits_for_an_operator_and_a_resend():
    fan = FanOut.start(ITEM, 1, Action.publish, ["44"])
    fan.delivered("44", T0)
    assert fan.receipt(_receipt("44", accepted=False, code_="XSD_INVALID")) is R.REJECTED
    assert fan.rejected() == ("44",) and fan.outstanding() == () and not fan.complete
    assert fan.recipients["44"].refusal_code == "XSD_INVALID"
    fan.delivered("44", T0 + timedelta(hours=1))
    fan.receipt(_receipt("44"))
    assert fan.complete


def test_a_newer_version_releases_the_open_recipients():
    fan = FanOut.start(ITEM, 1, Action.publish, ["11", "31", "44", "51"])
    fan.delivered("11", T0)
    fan.receipt(_receipt("11"))
    fan.delivered("44", T0)
    fan.receipt(_receipt("44", accepted=False, code_="FIELD_INVALID"))
    assert fan.supersede(T0 + timedelta(days=2)) == ("31", "44", "51")
    assert fan.with_status(R.CONFIRMED) == ("11",) and fan.with_status(R.SUPERSEDED) == ("31", "44", "51")
    assert fan.complete


def test_receipts_for_other_versions_or_from_strangers_are_refused():
    fan = FanOut.for_delivery(golden("delivery_publish.xml"))
    with pytest.raises(RejectedMessage) as err:
        fan.receipt(_receipt("31", version=2))
    assert (err.value.reason, err.value.field) == (ReasonCode.UNKNOWN_REFERENCE, "Version")
    with pytest.raises(RejectedMessage) as err:
        fan.receipt(_receipt("00"))
    assert (err.value.reason, err.value.field) == (ReasonCode.UNKNOWN_REFERENCE, "CompanyCode")


def test_a_contradicting_receipt_is_an_illegal_transition():
    fan = FanOut.start(ITEM, 1, Action.publish, ["31"])
    fan.receipt(_receipt("31"))
    with pytest.raises(ProtocolViolation) as err:
        fan.receipt(_receipt("31", accepted=False, code_="FIELD_INVALID"))
    assert err.value.detail == (
        f"ReceiptArrived(rejected) is not allowed while the delivery of {ITEM} version 1 to 31 is in state "
        "CONFIRMED; allowed now: Delivered, ReceiptArrived(accepted), ReceiptArrived(superseded), Superseded."
    )


ALPHABET = [Delivered(at=T0), *[ReceiptArrived(at=T0, outcome=o) for o in ("accepted", "rejected", "superseded")],
            Superseded(at=T0)]
ILLEGAL = [(s, e) for s in R for e in ALPHABET if (s, type(e), e.variant) not in RECIPIENT_TRANSITIONS]


@pytest.mark.parametrize(("status", "event"), ILLEGAL, ids=[f"{s.name}-{e.describe()}" for s, e in ILLEGAL])
def test_every_illegal_recipient_step_is_refused(status, event):
    fan = FanOut.start(ITEM, 1, Action.publish, ["31"])
    fan.recipients["31"].status = status
    with pytest.raises(ProtocolViolation) as err:
        fan._apply("31", event)
    assert f"state {status.name}" in err.value.detail and event.describe() in err.value.detail
    assert fan.recipients["31"].status is status


def test_recipient_table_covers_every_status():
    assert {s for s, _e, _v in RECIPIENT_TRANSITIONS} == set(R)
    assert len(ILLEGAL) == len(R) * len(ALPHABET) - len(RECIPIENT_TRANSITIONS) == 3


def test_a_fan_out_needs_recipients_and_lists_them_once():
    with pytest.raises(ValueError):
        FanOut.start(ITEM, 1, Action.publish, [])
    assert tuple(FanOut.start(ITEM, 1, Action.publish, [*PROVINCES, "11"]).recipients) == PROVINCES
