"""Business rules: every rule refuses with its reason code and field, and names the Chinese field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from order_golden import NOW, golden

from protocols.errors import ReasonCode, RejectedMessage
from protocols.orders import rules
from protocols.orders.models import (
    FIELD_NAMES_ZH,
    CompanyRef,
    DispatchOrder,
    DispatchReceipt,
    ReceiptStatus,
    ReplyKind,
    ReturnOrder,
    ReturnReceipt,
)

CST = timezone(timedelta(hours=8))  # China Standard Time, +08:00
FIELD_INVALID, DEADLINE_ORDER = ReasonCode.FIELD_INVALID, ReasonCode.DEADLINE_ORDER


def _refusal(call) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        call()
    return err.value


def _assert_refused(error: RejectedMessage, reason: ReasonCode, field: str) -> None:
    assert (error.reason, error.field) == (reason, field), error.detail
    assert field in error.detail
    assert FIELD_NAMES_ZH[field] in error.detail  # the Chinese field name, for the operator


def _dispatch(**changes) -> DispatchOrder:
    return golden("dispatch_order.utf8.xml").model_copy(update=changes)


def _return(**changes) -> ReturnOrder:
    return golden("return_order_first.xml").model_copy(update=changes)


def _dispatch_receipt(**changes) -> DispatchReceipt:
    return golden("dispatch_receipt.xml").model_copy(update=changes)


def _return_receipt(**changes) -> ReturnReceipt:
    return golden("return_receipt_final.xml").model_copy(update=changes)


# ----------------------------------------------------------------------------- dispatch order

DISPATCH_REFUSALS = {
    "company code not a code": ({"company_code": "4$"}, FIELD_INVALID, "CompanyCode"),
    "serial with spaces": ({"serial_number": "2024 0611"}, FIELD_INVALID, "SerialNumber"),
    "serial of 33 characters": ({"serial_number": "9" * 33}, FIELD_INVALID, "SerialNumber"),
    "home in lower case": ({"to_company": CompanyRef(code="home", name="归属省")}, FIELD_INVALID, "ToCompany/Code"),
    "receiver code not a code": ({"to_company": CompanyRef(code="X", name="北京")}, FIELD_INVALID, "ToCompany/Code"),
    "sender is the receiver": ({"to_company": CompanyRef(code="44", name="广东")}, FIELD_INVALID, "ToCompany/Code"),
    "receiver name blank": ({"to_company": CompanyRef(code="11", name=" ")}, FIELD_INVALID, "ToCompany/Name"),
    "dispatcher name of 51": ({"dispatcher_name": "李" * 51}, FIELD_INVALID, "DispatcherName"),
    "dispatcher name on two lines": ({"dispatcher_name": "李\n娜"}, FIELD_INVALID, "DispatcherName"),
    "dispatcher name padded": ({"dispatcher_name": " 李娜"}, FIELD_INVALID, "DispatcherName"),
    "dispatcher phone letters": ({"dispatcher_phone": "020-PHONE"}, FIELD_INVALID, "DispatcherPhone"),
    "dispatcher phone too short": ({"dispatcher_phone": "1234"}, FIELD_INVALID, "DispatcherPhone"),
    "dispatcher phone too long": ({"dispatcher_phone": "1" * 21}, FIELD_INVALID, "DispatcherPhone"),
    "dispatcher phone double dash": ({"dispatcher_phone": "020--87654321"}, FIELD_INVALID, "DispatcherPhone"),
    "mobile starting 12": ({"customer_mobile": "12901001234"}, FIELD_INVALID, "CustomerMobile"),
    "mobile of 10 digits": ({"customer_mobile": "1390100123"}, FIELD_INVALID, "CustomerMobile"),
    "mobile with country code": ({"customer_mobile": "+8613901001234"}, FIELD_INVALID, "CustomerMobile"),
    "complainant name empty": ({"complainant_name": ""}, FIELD_INVALID, "ComplainantName"),
    "complainant phone spaces": ({"complainant_phone": "139 0100 1234"}, FIELD_INVALID, "ComplainantPhone"),
    "unknown category": ({"complaint_category": "WEATHER"}, FIELD_INVALID, "ComplaintCategory"),
    "issue blank": ({"complaint_issue": " \n "}, FIELD_INVALID, "ComplaintIssue"),
    "issue of 2001": ({"complaint_issue": "字" * 2001}, FIELD_INVALID, "ComplaintIssue"),
    "naive first deadline": ({"first_reply_deadline": datetime(2024, 6, 11, 12, 0)}, FIELD_INVALID,
                             "FirstReplyDeadline"),
    "naive final deadline": ({"final_reply_deadline": datetime(2024, 6, 12, 10, 0)}, FIELD_INVALID,
                             "FinalReplyDeadline"),
    "naive dispatch time": ({"dispatch_time": datetime(2024, 6, 11, 10, 0)}, FIELD_INVALID, "DispatchTime"),
    "dispatch 11 minutes ahead": ({"dispatch_time": datetime(2024, 6, 11, 10, 16, tzinfo=CST)}, FIELD_INVALID,
                                  "DispatchTime"),
    "first deadline at dispatch": ({"first_reply_deadline": datetime(2024, 6, 11, 10, 0, tzinfo=CST)},
                                   DEADLINE_ORDER, "FirstReplyDeadline"),
    "first deadline before dispatch": ({"first_reply_deadline": datetime(2024, 6, 11, 9, 0, tzinfo=CST)},
                                       DEADLINE_ORDER, "FirstReplyDeadline"),
    "final before first": ({"final_reply_deadline": datetime(2024, 6, 11, 11, 59, tzinfo=CST)},
                           DEADLINE_ORDER, "FinalReplyDeadline"),
}


@pytest.mark.parametrize("case", sorted(DISPATCH_REFUSALS))
def test_dispatch_rule_refuses(case, categories):
    changes, reason, field = DISPATCH_REFUSALS[case]
    order = _dispatch(**changes)
    error = _refusal(lambda: rules.validate_dispatch(order, categories=categories, now=NOW))
    _assert_refused(error, reason, field)


def test_golden_dispatch_passes_and_is_normalised_to_utc(categories):
    order = _dispatch()
    checked = rules.validate_dispatch(order, categories=categories, now=NOW)
    assert checked.dispatch_time == datetime(2024, 6, 11, 2, 0, tzinfo=UTC)
    assert checked.first_reply_deadline.tzinfo is UTC
    assert checked.final_reply_deadline.isoformat() == "2024-06-12T02:00:00+00:00"
    assert checked == order  # same instants, same text
    assert checked.complaint_issue == order.complaint_issue


def test_deadline_order_error_names_both_values(categories):
    order = _dispatch(final_reply_deadline=datetime(2024, 6, 11, 11, 0, tzinfo=CST))
    error = _refusal(lambda: rules.validate_dispatch(order, categories=categories, now=NOW))
    assert "2024-06-11T11:00:00+08:00" in error.detail  # the final deadline, as sent
    assert "2024-06-11T12:00:00+08:00" in error.detail  # the first deadline it precedes
    assert "初步答复时限要求" in error.detail and "最终答复时限要求" in error.detail
    error = _refusal(lambda: rules.validate_dispatch(
        _dispatch(first_reply_deadline=datetime(2024, 6, 11, 9, 0, tzinfo=CST)), categories=categories, now=NOW))
    assert "2024-06-11T09:00:00+08:00" in error.detail and "2024-06-11T10:00:00+08:00" in error.detail
    assert "派单时间" in error.detail
    assert error.text_zh().startswith("时限先后顺序不合法:字段 FirstReplyDeadline")


def test_final_deadline_may_equal_the_first(categories):
    first = datetime(2024, 6, 11, 12, 0, tzinfo=CST)
    rules.validate_dispatch(_dispatch(final_reply_deadline=first), categories=categories, now=NOW)


def test_clock_skew_allowance_is_configurable(categories):
    ahead = _dispatch(dispatch_time=datetime(2024, 6, 11, 10, 14, tzinfo=CST),
                      first_reply_deadline=datetime(2024, 6, 11, 12, 14, tzinfo=CST))
    rules.validate_dispatch(ahead, categories=categories, now=NOW)  # 9 minutes ahead: skew
    error = _refusal(lambda: rules.validate_dispatch(ahead, categories=categories, now=NOW,
                                                     max_future=timedelta(minutes=5)))
    _assert_refused(error, FIELD_INVALID, "DispatchTime")
    assert "5 minutes" in error.detail


def test_other_offsets_are_accepted_and_normalised(categories):
    utc_order = _dispatch(dispatch_time=datetime(2024, 6, 11, 2, 0, tzinfo=UTC),
                          first_reply_deadline=datetime(2024, 6, 11, 0, 0, tzinfo=timezone(timedelta(hours=-4))))
    checked = rules.validate_dispatch(utc_order, categories=categories, now=NOW)
    assert checked.first_reply_deadline == datetime(2024, 6, 11, 4, 0, tzinfo=UTC)


def test_naive_now_is_a_programming_error(categories):
    with pytest.raises(ValueError, match="aware"):
        rules.validate_dispatch(_dispatch(), categories=categories, now=datetime(2024, 6, 11, 2, 5))


def test_unknown_category_message_lists_the_known_codes(categories):
    error = _refusal(lambda: rules.validate_dispatch(_dispatch(complaint_category="WEATHER"),
                                                     categories=categories, now=NOW))
    assert "NETWORK_SIGNAL" in error.detail and "OTHER" in error.detail
    assert error.value == "WEATHER"


# ----------------------------------------------------------------------------- receiver


def test_home_resolves_to_the_customers_home_province(segments):
    assert rules.resolve_receiver(_dispatch(), segments) == "11"


def test_explicit_receiver_is_kept(segments):
    order = _dispatch(to_company=CompanyRef(code="00", name="全国客服中心"))
    assert rules.resolve_receiver(order, segments) == "00"


def test_home_of_a_local_customer_is_refused(segments):
    order = _dispatch(customer_mobile="13920001234")  # a Guangdong number, dispatched by Guangdong
    _assert_refused(_refusal(lambda: rules.resolve_receiver(order, segments)), FIELD_INVALID, "ToCompany/Code")


def test_home_with_unknown_segment_is_refused(segments):
    order = _dispatch(customer_mobile="19999990000")
    error = _refusal(lambda: rules.resolve_receiver(order, segments))
    _assert_refused(error, ReasonCode.UNKNOWN_SEGMENT, "CustomerMobile")
    assert error.value == "1999999"


# ----------------------------------------------------------------------------- return order

RETURN_REFUSALS = {
    "replier code not a code": ({"company_code": "1"}, FIELD_INVALID, "CompanyCode"),
    "dispatcher code not a code": ({"dispatch_company_code": "广东"}, FIELD_INVALID, "DispatchCompanyCode"),
    "replier is the dispatcher": ({"company_code": "44"}, FIELD_INVALID, "CompanyCode"),
    "serial not a serial": ({"dispatch_serial_number": "no/serial"}, FIELD_INVALID, "DispatchSerialNumber"),
    "replier name of 51": ({"replier_name": "张" * 51}, FIELD_INVALID, "ReplierName"),
    "replier phone letters": ({"replier_phone": "ext. 12"}, FIELD_INVALID, "ReplierPhone"),
    "result blank": ({"result": "   "}, FIELD_INVALID, "Result"),
    "result of 2001": ({"result": "答" * 2001}, FIELD_INVALID, "Result"),
    "naive reply time": ({"reply_time": datetime(2024, 6, 11, 11, 20)}, FIELD_INVALID, "ReplyTime"),
    "reply in the future": ({"reply_time": datetime(2024, 6, 11, 11, 40, tzinfo=CST)}, FIELD_INVALID, "ReplyTime"),
}


@pytest.mark.parametrize("case", sorted(RETURN_REFUSALS))
def test_return_rule_refuses(case):
    changes, reason, field = RETURN_REFUSALS[case]
    now = datetime(2024, 6, 11, 3, 25, tzinfo=UTC)
    _assert_refused(_refusal(lambda: rules.validate_return(_return(**changes), now=now)), reason, field)


def test_golden_return_orders_pass_and_are_normalised():
    for name in ("return_order_first.xml", "return_order_final.xml"):
        ret = golden(name)
        checked = rules.validate_return(ret, now=datetime(2024, 6, 12, tzinfo=UTC))
        assert checked.reply_time.tzinfo is UTC and checked == ret


RETURN_VS_DISPATCH = {
    "another serial": ({"dispatch_serial_number": "20240611-000999"}, ReasonCode.UNKNOWN_REFERENCE,
                       "DispatchSerialNumber"),
    "another originator": ({"dispatch_company_code": "31"}, ReasonCode.UNKNOWN_REFERENCE, "DispatchSerialNumber"),
    "not the receiver": ({"company_code": "31"}, FIELD_INVALID, "CompanyCode"),
    "reply before dispatch": ({"reply_time": datetime(2024, 6, 11, 9, 49, tzinfo=CST)}, DEADLINE_ORDER, "ReplyTime"),
}


@pytest.mark.parametrize("case", sorted(RETURN_VS_DISPATCH))
def test_return_against_dispatch_refuses(case):
    changes, reason, field = RETURN_VS_DISPATCH[case]
    error = _refusal(lambda: rules.check_return_against_dispatch(_return(**changes), _dispatch(), "11"))
    assert (error.reason, error.field) == (reason, field)
    if reason is not ReasonCode.UNKNOWN_REFERENCE:
        _assert_refused(error, reason, field)


def test_return_against_dispatch_tolerates_clock_skew():
    early = _return(reply_time=datetime(2024, 6, 11, 9, 55, tzinfo=CST))  # 5 minutes "before" dispatch
    rules.check_return_against_dispatch(early, _dispatch(), "11")
    error = _refusal(lambda: rules.check_return_against_dispatch(early, _dispatch(), "11", skew=timedelta(0)))
    _assert_refused(error, DEADLINE_ORDER, "ReplyTime")
    assert "2024-06-11T09:55:00+08:00" in error.detail and "2024-06-11T10:00:00+08:00" in error.detail


# ----------------------------------------------------------------------------- success marks

RECEIPT_REFUSALS = {
    "confirmer not a code": ({"company_code": "?"}, FIELD_INVALID, "CompanyCode"),
    "dispatcher not a code": ({"dispatch_company_code": ""}, FIELD_INVALID, "DispatchCompanyCode"),
    "serial not a serial": ({"dispatch_serial_number": ""}, FIELD_INVALID, "DispatchSerialNumber"),
    "naive received time": ({"received_time": datetime(2024, 6, 11, 10, 1)}, FIELD_INVALID, "ReceivedTime"),
    "received in the future": ({"received_time": datetime(2024, 6, 11, 10, 30, tzinfo=CST)}, FIELD_INVALID,
                               "ReceivedTime"),
    "rejected without reason": ({"status": ReceiptStatus.rejected}, FIELD_INVALID, "Reason"),
    "rejected with blank reason": ({"status": ReceiptStatus.rejected, "reason": " "}, FIELD_INVALID, "Reason"),
    "reason of 501": ({"reason": "因" * 501}, FIELD_INVALID, "Reason"),
}


@pytest.mark.parametrize("case", sorted(RECEIPT_REFUSALS))
def test_dispatch_receipt_rule_refuses(case):
    changes, reason, field = RECEIPT_REFUSALS[case]
    error = _refusal(lambda: rules.validate_dispatch_receipt(_dispatch_receipt(**changes), now=NOW))
    _assert_refused(error, reason, field)


@pytest.mark.parametrize("case", sorted(RECEIPT_REFUSALS))
def test_return_receipt_rule_refuses(case):
    changes, reason, field = RECEIPT_REFUSALS[case]
    now = datetime(2024, 6, 11, 10, 15, tzinfo=CST)
    error = _refusal(lambda: rules.validate_return_receipt(
        _return_receipt(received_time=datetime(2024, 6, 11, 10, 10, tzinfo=CST)).model_copy(update=changes),
        now=now))
    _assert_refused(error, reason, field)


def test_dispatch_receipt_from_the_dispatcher_is_refused():
    error = _refusal(lambda: rules.validate_dispatch_receipt(_dispatch_receipt(company_code="44"), now=NOW))
    _assert_refused(error, FIELD_INVALID, "CompanyCode")


def test_return_receipt_from_anyone_but_the_dispatcher_is_refused():
    receipt = _return_receipt(company_code="11")
    error = _refusal(lambda: rules.validate_return_receipt(receipt, now=datetime(2024, 6, 12, tzinfo=UTC)))
    _assert_refused(error, FIELD_INVALID, "CompanyCode")


def test_rejection_with_reason_passes_and_times_are_utc():
    receipt = _dispatch_receipt(status=ReceiptStatus.rejected, reason="投诉类别与内容不符,请核实后重派。")
    checked = rules.validate_dispatch_receipt(receipt, now=NOW)
    assert checked.received_time == datetime(2024, 6, 11, 2, 1, 30, tzinfo=UTC)
    assert checked.received_time.tzinfo is UTC


RECEIPT_VS_DISPATCH = {
    "dispatch receipt from a stranger": (_dispatch_receipt, {"company_code": "31"}, FIELD_INVALID, "CompanyCode"),
    "dispatch receipt for another order": (_dispatch_receipt, {"dispatch_serial_number": "X1"},
                                           ReasonCode.UNKNOWN_REFERENCE, "DispatchSerialNumber"),
    "dispatch receipt before dispatch": (_dispatch_receipt,
                                         {"received_time": datetime(2024, 6, 11, 9, 0, tzinfo=CST)},
                                         DEADLINE_ORDER, "ReceivedTime"),
    "return receipt from the receiver": (_return_receipt, {"company_code": "11"}, FIELD_INVALID, "CompanyCode"),
    "return receipt for another order": (_return_receipt, {"dispatch_serial_number": "X1"},
                                         ReasonCode.UNKNOWN_REFERENCE, "DispatchSerialNumber"),
}


@pytest.mark.parametrize("case", sorted(RECEIPT_VS_DISPATCH))
def test_receipt_against_dispatch_refuses(case):
    make, changes, reason, field = RECEIPT_VS_DISPATCH[case]
    error = _refusal(lambda: rules.check_receipt_against_dispatch(make(**changes), _dispatch(), "11"))
    assert (error.reason, error.field) == (reason, field), error.detail


def test_golden_receipts_pass_against_the_golden_dispatch():
    for name in ("dispatch_receipt.xml", "return_receipt_first.xml", "return_receipt_final.xml"):
        rules.check_receipt_against_dispatch(golden(name), _dispatch(), "11")
    assert golden("return_receipt_first.xml").reply_kind is ReplyKind.first
