"""Business validation of order messages: what a customer-service vendor expects to be refused.

Owns: every rule a dispatch order, return order or success mark must pass beyond the XSD,
each refusing with RejectedMessage carrying a specific ReasonCode, `field` set to the wire
(XML element) name and a message naming the field in English and Chinese, the offending
value and what to do. Also the normalisation of every timestamp to UTC.
Must not: read the clock (`now` is an argument), load configuration (the category list
and the segment table are passed in), or look up stored orders (rules that need the
dispatch order take it as an argument).

Rules and their reason codes (docs/orders.md lists them with examples):

    FIELD_INVALID      a format (company code, serial number, mobile, phone, names, texts),
                       a naive timestamp, a time too far in the future, an unknown complaint
                       category, sender == receiver, a rejection without a reason, a reply
                       or mark from the wrong party
    DEADLINE_ORDER     FirstReplyDeadline <= DispatchTime, FinalReplyDeadline < FirstReplyDeadline,
                       a reply or mark dated before the dispatch
    UNKNOWN_SEGMENT    ToCompany/Code is HOME and the customer's number segment is unknown
    UNKNOWN_REFERENCE  a reply or mark that refers to another dispatch order

Each function raises the first problem it finds, in the order of the fields on the wire,
so a sender fixes its message top to bottom.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from protocols.errors import ReasonCode, RejectedMessage
from protocols.fieldrules import DEFAULT_MAX_FUTURE, FieldRules, iso
from protocols.orders.categories import ComplaintCategories
from protocols.orders.models import (
    FIELD_NAMES_ZH,
    HOME,
    DispatchOrder,
    DispatchReceipt,
    ReceiptStatus,
    ReturnOrder,
    ReturnReceipt,
)
from protocols.orders.segments import MOBILE_RE, SegmentTable

# The patterns here and in protocols/fieldrules.py are the ones of order.xsd; tests check both
# accept the same values.
PHONE_RE = re.compile(r"\+?[0-9]+(?:-[0-9]+)*")
PHONE_LENGTH = (5, 20)
NAME_MAX = 50
ISSUE_MAX = 2000
RESULT_MAX = 2000
REASON_MAX = 500


#: The single-field checks shared with knowledge and announcements, naming fields in Chinese.
F = FieldRules(FIELD_NAMES_ZH)


# ----------------------------------------------------------------------------- single fields


def check_company_code(value: str, field: str = "CompanyCode") -> None:
    F.company_code(value, field)


def check_serial(value: str, field: str = "SerialNumber") -> None:
    F.serial(value, field)


def check_mobile(value: str, field: str = "CustomerMobile") -> None:
    if not (isinstance(value, str) and MOBILE_RE.fullmatch(value)):
        raise F.refuse(field, value, "is not a mobile number",
                      "Send 11 digits starting with 13-19, without spaces or country code, e.g. 13901001234.")


def check_phone(value: str, field: str) -> None:
    low, high = PHONE_LENGTH
    if not (isinstance(value, str) and low <= len(value) <= high and PHONE_RE.fullmatch(value)):
        raise F.refuse(field, value, "is not a phone number",
                      f"Send {low}-{high} characters: digits, an optional leading + and single dashes "
                      "between digit groups, e.g. 010-12345678 or +86-20-87654321.")


def check_name(value: str, field: str) -> None:
    """A person's or company's name: 1-50 characters on one line, no surrounding white space."""
    F.line(value, field, NAME_MAX)


def check_text(value: str, field: str, max_length: int) -> None:
    """A free text: 1..max_length characters (counted as characters, not bytes), not blank."""
    F.text(value, field, max_length)


def check_category(value: str, categories: ComplaintCategories, field: str = "ComplaintCategory") -> None:
    if value not in categories:
        raise F.refuse(field, value, "is not a known complaint category",
                      f"Use one of {', '.join(categories.codes)} (config/complaint_categories.yaml).")


def to_utc(value: datetime, field: str) -> datetime:
    """The timestamp in UTC; a naive timestamp is refused (a deadline needs a zone)."""
    return F.zoned(value, field)


def check_not_future(value: datetime, field: str, *, now: datetime,
                     max_future: timedelta = DEFAULT_MAX_FUTURE) -> None:
    """`value` (aware) may be at most `max_future` after `now`: clock skew, not time travel."""
    F.not_future(value, field, now=now, max_future=max_future)


def _times(model, fields: dict[str, str]) -> dict[str, datetime]:
    """{attribute: UTC value} for the model's timestamp attributes, refusing naive ones."""
    return {attr: to_utc(getattr(model, attr), wire) for attr, wire in fields.items()}


# ----------------------------------------------------------------------------- dispatch order


def validate_dispatch(order: DispatchOrder, *, categories: ComplaintCategories, now: datetime,
                      max_future: timedelta = DEFAULT_MAX_FUTURE) -> DispatchOrder:
    """Check a dispatch order (电子派单); return a copy with every timestamp in UTC."""
    check_company_code(order.company_code, "CompanyCode")
    check_serial(order.serial_number, "SerialNumber")
    receiver = order.to_company.code
    if isinstance(receiver, str) and receiver != HOME and receiver.upper() == HOME:
        raise F.refuse("ToCompany/Code", receiver, "looks like HOME in the wrong case",
                      "Write HOME in capitals to send the order to the customer's home province.")
    check_company_code(receiver, "ToCompany/Code")
    if receiver == order.company_code:
        raise F.refuse("ToCompany/Code", receiver, "is the sender's own company code (CompanyCode)",
                      "A dispatch order goes to another company; handle the complaint locally instead.")
    check_name(order.to_company.name, "ToCompany/Name")
    check_name(order.dispatcher_name, "DispatcherName")
    check_phone(order.dispatcher_phone, "DispatcherPhone")
    check_mobile(order.customer_mobile, "CustomerMobile")
    check_name(order.complainant_name, "ComplainantName")
    check_phone(order.complainant_phone, "ComplainantPhone")
    check_category(order.complaint_category, categories)
    check_text(order.complaint_issue, "ComplaintIssue", ISSUE_MAX)
    times = _times(order, {"first_reply_deadline": "FirstReplyDeadline",
                           "final_reply_deadline": "FinalReplyDeadline",
                           "dispatch_time": "DispatchTime"})
    # Messages quote the times as sent (with the sender's offset); the comparisons are on instants.
    check_not_future(order.dispatch_time, "DispatchTime", now=now, max_future=max_future)
    check_deadlines(order.dispatch_time, order.first_reply_deadline, order.final_reply_deadline)
    return order.model_copy(update=times)


def check_deadlines(dispatch_time: datetime, first: datetime, final: datetime) -> None:
    """FirstReplyDeadline > DispatchTime and FinalReplyDeadline >= FirstReplyDeadline (aware times)."""
    if not first > dispatch_time:
        raise F.refuse(
            "FirstReplyDeadline", iso(first),
            f"is not later than DispatchTime (派单时间) {iso(dispatch_time)}",
            "Set the first-reply deadline after the dispatch time (ordinary complaints: 2 hours).",
            ReasonCode.DEADLINE_ORDER,
        )
    if final < first:
        raise F.refuse(
            "FinalReplyDeadline", iso(final),
            f"is earlier than FirstReplyDeadline (初步答复时限要求) {iso(first)}",
            "Set the final-reply deadline at or after the first-reply deadline (ordinary complaints: 24 hours).",
            ReasonCode.DEADLINE_ORDER,
        )


def resolve_receiver(order: DispatchOrder, segments: SegmentTable) -> str:
    """Company code the order goes to: ToCompany/Code, or for HOME the customer's home province.

    Raises UNKNOWN_SEGMENT for an unknown number segment and FIELD_INVALID when HOME
    resolves to the sender itself (a local customer needs no dispatch order).
    """
    code = order.to_company.code
    if code != HOME:
        return code
    province = segments.home_province(order.customer_mobile)
    if province == order.company_code:
        raise F.refuse(
            "ToCompany/Code", HOME,
            f"resolves to {province}, the sender's own province, from CustomerMobile (用户手机号) "
            f"{order.customer_mobile}",
            "The customer is local: handle the complaint without a dispatch order.",
        )
    return province


# ----------------------------------------------------------------------------- return order


def validate_return(ret: ReturnOrder, *, now: datetime,
                    max_future: timedelta = DEFAULT_MAX_FUTURE) -> ReturnOrder:
    """Check a return order (电子回单) on its own; return a copy with ReplyTime in UTC."""
    check_company_code(ret.company_code, "CompanyCode")
    check_company_code(ret.dispatch_company_code, "DispatchCompanyCode")
    if ret.company_code == ret.dispatch_company_code:
        raise F.refuse("CompanyCode", ret.company_code,
                      "equals DispatchCompanyCode (派单公司编号): the originator cannot answer its own order",
                      "Send the return order as the company the order was dispatched to.")
    check_serial(ret.dispatch_serial_number, "DispatchSerialNumber")
    check_name(ret.replier_name, "ReplierName")
    check_phone(ret.replier_phone, "ReplierPhone")
    check_text(ret.result, "Result", RESULT_MAX)
    times = _times(ret, {"reply_time": "ReplyTime"})
    check_not_future(ret.reply_time, "ReplyTime", now=now, max_future=max_future)
    return ret.model_copy(update=times)


def check_return_against_dispatch(ret: ReturnOrder, dispatch: DispatchOrder, receiver: str, *,
                                  skew: timedelta = DEFAULT_MAX_FUTURE) -> None:
    """The rules that need the dispatch order: same order, from its receiver, not dated before it.

    `receiver` is the resolved company code the order went to (never HOME); `skew` is the
    clock difference tolerated between the two systems.
    """
    _check_reference(ret.key, dispatch)
    if ret.company_code != receiver:
        raise F.refuse("CompanyCode", ret.company_code,
                      f"did not receive dispatch order {_key(dispatch)}, which was sent to {receiver}",
                      "Only the company the order was dispatched to can answer it.")
    if to_utc(ret.reply_time, "ReplyTime") < to_utc(dispatch.dispatch_time, "DispatchTime") - skew:
        raise F.refuse("ReplyTime", iso(ret.reply_time),
                      f"is earlier than the dispatch order's DispatchTime (派单时间) {iso(dispatch.dispatch_time)}",
                      "Check the replying system's clock and resend.", ReasonCode.DEADLINE_ORDER)


# ----------------------------------------------------------------------------- success marks


def validate_dispatch_receipt(receipt: DispatchReceipt, *, now: datetime,
                              max_future: timedelta = DEFAULT_MAX_FUTURE) -> DispatchReceipt:
    """Check the receiver's success mark (or rejection) for a dispatch order."""
    _check_receipt(receipt, now=now, max_future=max_future)
    if receipt.company_code == receipt.dispatch_company_code:
        raise F.refuse("CompanyCode", receipt.company_code,
                      "equals DispatchCompanyCode (派单公司编号): the originator cannot confirm its own order",
                      "Send the success mark as the company the order was dispatched to.")
    return receipt.model_copy(update=_times(receipt, {"received_time": "ReceivedTime"}))


def validate_return_receipt(receipt: ReturnReceipt, *, now: datetime,
                            max_future: timedelta = DEFAULT_MAX_FUTURE) -> ReturnReceipt:
    """Check the originator's success mark (or rejection) for a return order."""
    _check_receipt(receipt, now=now, max_future=max_future)
    if receipt.company_code != receipt.dispatch_company_code:
        raise F.refuse("CompanyCode", receipt.company_code,
                      f"is not DispatchCompanyCode (派单公司编号) {receipt.dispatch_company_code!r}: "
                      "only the originator confirms a return order",
                      "Send the success mark as the company that dispatched the order.")
    return receipt.model_copy(update=_times(receipt, {"received_time": "ReceivedTime"}))


def _check_receipt(receipt: DispatchReceipt | ReturnReceipt, *, now: datetime, max_future: timedelta) -> None:
    check_company_code(receipt.company_code, "CompanyCode")
    check_company_code(receipt.dispatch_company_code, "DispatchCompanyCode")
    check_serial(receipt.dispatch_serial_number, "DispatchSerialNumber")
    to_utc(receipt.received_time, "ReceivedTime")
    check_not_future(receipt.received_time, "ReceivedTime", now=now, max_future=max_future)
    if receipt.status is ReceiptStatus.rejected and receipt.reason is None:
        raise F.refuse("Reason", None, "is missing although Status (接收状态) is rejected",
                      "Say why the message is rejected, so that the other side can correct it.")
    if receipt.reason is not None:
        check_text(receipt.reason, "Reason", REASON_MAX)


def check_receipt_against_dispatch(receipt: DispatchReceipt | ReturnReceipt, dispatch: DispatchOrder,
                                   receiver: str, *, skew: timedelta = DEFAULT_MAX_FUTURE) -> None:
    """A success mark must refer to this order, come from the right party and not predate it.

    A DispatchReceipt comes from the receiver; a ReturnReceipt from the originator.
    """
    _check_reference(receipt.key, dispatch)
    expected = receiver if isinstance(receipt, DispatchReceipt) else dispatch.company_code
    if receipt.company_code != expected:
        raise F.refuse("CompanyCode", receipt.company_code,
                      f"cannot confirm for dispatch order {_key(dispatch)}; the {type(receipt).__name__} "
                      f"must come from {expected}",
                      "Send the success mark from the party that received the message.")
    if to_utc(receipt.received_time, "ReceivedTime") < to_utc(dispatch.dispatch_time, "DispatchTime") - skew:
        raise F.refuse("ReceivedTime", iso(receipt.received_time),
                      f"is earlier than the dispatch order's DispatchTime (派单时间) {iso(dispatch.dispatch_time)}",
                      "Check the confirming system's clock and resend.", ReasonCode.DEADLINE_ORDER)


def _check_reference(key: tuple[str, str], dispatch: DispatchOrder) -> None:
    if key != dispatch.key:
        raise RejectedMessage(
            f"The message refers to dispatch order {key[0]}/{key[1]}, not to {_key(dispatch)}; "
            "check DispatchCompanyCode (派单公司编号) and DispatchSerialNumber (派单流水号).",
            reason=ReasonCode.UNKNOWN_REFERENCE, field="DispatchSerialNumber", value=f"{key[0]}/{key[1]}",
        )


def _key(dispatch: DispatchOrder) -> str:
    return f"{dispatch.company_code}/{dispatch.serial_number}"
