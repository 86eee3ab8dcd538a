"""XML of the WAP business hall (urn:cs-hub:wap:1, wap.xsd) <-> plain data; pure parse and build.

Owns: reading an HTTP request tree (QueryRequest / TransactionRequest) into frozen data,
checking the field rules the schema cannot express (a month for bills and detail records, not
in the future), building the bus messages the hub sends to the province (Query, Transaction),
reading the few fields the hub needs from the province's Answer / TransactionReceipt, and the
hub's own HTTP answers (Accepted, Error) with Chinese-first text.
Must not: parse raw bytes (protocols.xmlwire.parse does that safely), know HTTP or the bus,
read clocks (time comes in as an argument).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from protocols import schemas
from protocols.errors import HubError, ReasonCode, RejectedMessage

NS = "urn:cs-hub:wap:1"
SCHEMA_NAME = "wap"
QUERY_TYPE = "wap.query"
ANSWER_TYPE = "wap.answer"
TRANSACTION_TYPE = "wap.transaction"
RECEIPT_TYPE = "wap.transaction_receipt"
QUERY_KINDS = ("customer_info", "balance", "bill_summary", "detail_records")
MONTHLY_KINDS = ("bill_summary", "detail_records")


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(root, name: str) -> str | None:
    return root.findtext(q(name))


@dataclass(frozen=True)
class QueryRequest:
    request_id: str
    mobile: str
    kind: str
    month: str | None = None


@dataclass(frozen=True)
class TransactionRequest:
    request_id: str
    mobile: str
    service: str
    action: str
    parameters: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Reply:
    """What the hub reads from a province's Answer or TransactionReceipt."""

    type: str
    company: str
    request_id: str
    mobile: str
    result: str


def parse_request(root) -> QueryRequest | TransactionRequest:
    """A validated HTTP request tree -> data. XSD_INVALID for anything but the two request roots."""
    if root.tag not in (q("QueryRequest"), q("TransactionRequest")):
        raise RejectedMessage(f"The request must be a QueryRequest or TransactionRequest in namespace {NS}, "
                              f"not {root.tag}.", reason=ReasonCode.XSD_INVALID, field="root", value=root.tag)
    schemas.validate(SCHEMA_NAME, root)
    if root.tag == q("QueryRequest"):
        return QueryRequest(_text(root, "RequestId"), _text(root, "Mobile"), _text(root, "Kind"),
                            _text(root, "Month"))
    params = tuple((p.get("name"), p.text or "") for p in root.findall(q("Parameter")))
    return TransactionRequest(_text(root, "RequestId"), _text(root, "Mobile"), _text(root, "Service"),
                              _text(root, "Action"), params)


def check_query(kind: str, month: str | None, now: datetime) -> None:
    """Bills and detail records need a Month not after the current one; other queries take none."""
    if kind in MONTHLY_KINDS and not month:
        raise RejectedMessage(f"A {kind} query needs Month (月份, YYYYMM); add the billing month.",
                              reason=ReasonCode.FIELD_INVALID, field="Month")
    if kind not in MONTHLY_KINDS and month:
        raise RejectedMessage(f"A {kind} query takes no Month; remove it.",
                              reason=ReasonCode.FIELD_INVALID, field="Month", value=month)
    if month and month > now.strftime("%Y%m"):
        raise RejectedMessage(f"Month {month} is in the future; ask for {now.strftime('%Y%m')} or earlier.",
                              reason=ReasonCode.FIELD_INVALID, field="Month", value=month)


def check_query_tree(root, now: datetime) -> None:
    """check_query on a bus Query tree (used by the hub's ingress check)."""
    check_query(_text(root, "Kind") or "", _text(root, "Month"), now)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def query_tree(req: QueryRequest, company: str, now: datetime, answer_within_s: int) -> etree._Element:
    root = etree.Element(q("Query"), nsmap={None: NS})
    for name, value in (("CompanyCode", company), ("RequestId", req.request_id), ("Mobile", req.mobile),
                        ("Kind", req.kind), ("Month", req.month), ("RequestedAt", _stamp(now)),
                        ("AnswerWithinS", str(max(1, int(answer_within_s))))):
        if value is not None:
            etree.SubElement(root, q(name)).text = value
    return root


def transaction_tree(req: TransactionRequest, company: str, now: datetime) -> etree._Element:
    root = etree.Element(q("Transaction"), nsmap={None: NS})
    for name, value in (("CompanyCode", company), ("RequestId", req.request_id), ("Mobile", req.mobile),
                        ("Service", req.service), ("Action", req.action)):
        etree.SubElement(root, q(name)).text = value
    for name, value in req.parameters:
        etree.SubElement(root, q("Parameter"), name=name).text = value
    etree.SubElement(root, q("RequestedAt")).text = _stamp(now)
    return root


def read_reply(root) -> Reply:
    """The routing fields of an Answer or TransactionReceipt tree (already schema-valid)."""
    kind = {q("Answer"): ANSWER_TYPE, q("TransactionReceipt"): RECEIPT_TYPE}.get(root.tag)
    if kind is None:
        raise RejectedMessage(f"Expected an Answer or TransactionReceipt, got {root.tag}.",
                              reason=ReasonCode.UNKNOWN_TYPE, value=root.tag)
    return Reply(kind, _text(root, "CompanyCode") or "", _text(root, "RequestId") or "",
                 _text(root, "Mobile") or "", _text(root, "Result") or "")


def _messages(root, zh: str, en: str) -> None:
    etree.SubElement(root, q("Message"), lang="zh").text = zh[:200]
    etree.SubElement(root, q("Message"), lang="en").text = en[:200]


def answer_tree(company: str, request_id: str, mobile: str, kind: str, result: str = "ok",
                content: etree._Element | None = None, zh: str | None = None, en: str | None = None) -> etree._Element:
    """A province's Answer (used by province adapters, the tests and the benchmark)."""
    root = etree.Element(q("Answer"), nsmap={None: NS})
    for name, value in (("CompanyCode", company), ("RequestId", request_id), ("Mobile", mobile), ("Kind", kind),
                        ("Result", result)):
        etree.SubElement(root, q(name)).text = value
    if content is not None:
        root.append(content)
    if zh and en:
        _messages(root, zh, en)
    return root


def balance(amount: str, as_of: datetime) -> etree._Element:
    el = etree.Element(q("Balance"), nsmap={None: NS})
    etree.SubElement(el, q("Amount")).text = amount
    etree.SubElement(el, q("AsOf")).text = _stamp(as_of)
    return el


def receipt_tree(company: str, request_id: str, mobile: str, result: str, at: datetime,
                 zh: str | None = None, en: str | None = None) -> etree._Element:
    root = etree.Element(q("TransactionReceipt"), nsmap={None: NS})
    for name, value in (("CompanyCode", company), ("RequestId", request_id), ("Mobile", mobile), ("Result", result)):
        etree.SubElement(root, q(name)).text = value
    if zh and en:
        _messages(root, zh, en)
    etree.SubElement(root, q("At")).text = _stamp(at)
    return root


def accepted_tree(request_id: str, message_id: str) -> etree._Element:
    root = etree.Element(q("Accepted"), nsmap={None: NS})
    etree.SubElement(root, q("RequestId")).text = request_id
    etree.SubElement(root, q("MessageId")).text = message_id[:200]
    _messages(root, "业务办理请求已转发至用户归属省,回执尚未到达;请稍后用相同 RequestId 重新提交以取回执。",
              "The transaction was forwarded to the customer's province; its receipt has not arrived yet. "
              "Submit the same RequestId again later to fetch the receipt.")
    return root


def error_tree(exc: HubError, request_id: str | None = None, zh: str | None = None) -> etree._Element:
    """The hub's refusal of an HTTP request: reason code, field, Chinese then English text
    (`zh` when given, else the reason code's Chinese text with the field)."""
    root = etree.Element(q("Error"), nsmap={None: NS})
    if request_id:
        etree.SubElement(root, q("RequestId")).text = request_id[:200]
    etree.SubElement(root, q("ReasonCode")).text = str(exc.reason)
    if exc.field:
        etree.SubElement(root, q("Field")).text = exc.field[:200]
    _messages(root, zh or exc.text_zh(), exc.detail)
    etree.SubElement(root, q("Retryable")).text = "true" if exc.retryable else "false"
    return root
