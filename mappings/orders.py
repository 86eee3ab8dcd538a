"""Electronic dispatch and return orders on the hub: the checks and resolvers routes name.

Owns: the ingress content checks of the four order messages (wrapping
protocols.orders.rules, so every refusal carries the rule's reason code and field), the
resolvers that route them (the company an order goes to, its originator, its replier), and
the table objects (complaint categories, number segments) built once per configuration
version from the parsed files the hub passes in `ctx.tables`.
Must not: read files, the clock or the store. Time is `ctx.now`; what only the order
tracker knows (the company a dispatch order went to, for a ReturnReceipt that does not
name it) comes in as `ctx.lookups["order_receiver"]`, offered by the hub's orders flow.

The checks run after the catalogue's schema validation (hub/pipeline.py), so they build
the models without validating against order.xsd a second time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from mappings.context import RouteContext
from protocols.errors import ConfigError, ReasonCode, RejectedMessage
from protocols.orders import rules, wire
from protocols.orders.categories import ComplaintCategories
from protocols.orders.models import CompanyRef, DispatchOrder, DispatchReceipt, ReturnOrder, ReturnReceipt
from protocols.orders.segments import SegmentTable

NS = {"o": wire.NS}
#: Name of the lookup the orders flow offers: (originator, serial) -> receiver code or None.
RECEIVER_LOOKUP = "order_receiver"


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class OrderTables:
    """The code lists the order rules need, validated once per configuration version."""

    categories: ComplaintCategories
    segments: SegmentTable


_built: dict[int, tuple[Mapping, OrderTables]] = {}
_built_lock = threading.Lock()


def order_tables(tables: Mapping) -> OrderTables:
    """The table objects of `tables` (HubConfig.tables), built on first use of that dict.

    Cached by the identity of the dict, which is one object per configuration version, so
    a reload that changes config/segments.yaml gets new tables and an unchanged one costs a
    dict look-up. Raises ConfigError naming the file when a table is malformed.
    """
    hit = _built.get(id(tables))
    if hit is not None and hit[0] is tables:
        return hit[1]
    categories = tables.get("complaint_categories")
    if isinstance(categories, ComplaintCategories):
        cats = categories
    else:
        cats = ComplaintCategories.from_mapping(
            {"version": 1, "categories": categories or []}, source="config/complaint_categories.yaml")
    segments = tables.get("segments")
    if isinstance(segments, SegmentTable):
        segs = segments
    else:
        segs = SegmentTable.from_mapping({"version": 1, "segments": segments or {}},
                                         source=tables.get("segments_file") or "config/segments.yaml")
    built = OrderTables(cats, segs)
    with _built_lock:
        if len(_built) >= 8:  # old configuration versions: the running hub holds one or two
            _built.clear()
        _built[id(tables)] = (tables, built)
    return built


def _tables(ctx: RouteContext) -> OrderTables:
    try:
        return order_tables(ctx.tables)
    except ConfigError as exc:
        # The hub's files are wrong, not the sender's message: say so in the refusal.
        raise RejectedMessage(
            f"The hub cannot check order messages because its configuration is invalid ({exc}); "
            "the hub's operators must fix the file. Resend the message afterwards.",
            reason=ReasonCode.CONFIG_INVALID,
        ) from None


# ----------------------------------------------------------------------------- checks


def _model(root, cls):
    message = wire.from_xml(root, validate=False)
    if not isinstance(message, cls):  # the catalogue pairs each type with its root element
        raise RejectedMessage(f"Expected a {cls.__name__}, got a {type(message).__name__}.",
                              reason=ReasonCode.UNKNOWN_TYPE, value=type(message).__name__)
    return message


def receiver_of(order: DispatchOrder, ctx: RouteContext) -> str:
    """The company code a dispatch order goes to: ToCompany/Code, or for HOME the customer's
    home province from the number segment (号段) of CustomerMobile.

    Refuses UNKNOWN_SEGMENT for a segment not in the table, FIELD_INVALID when HOME is the
    sender's own province, UNKNOWN_NODE when the company is not on this network.
    """
    code = rules.resolve_receiver(order, _tables(ctx).segments)
    if code not in ctx.nodes:
        raise RejectedMessage(
            f"ToCompany/Code (派往公司编号) {code!r} is not a company on this network; send the order to "
            "a company code of config/nodes.yaml (provinces by GB/T 2260 code, HQ 00), or HOME.",
            reason=ReasonCode.UNKNOWN_NODE, field="ToCompany/Code", value=code)
    return code


def check_dispatch(root, ctx: RouteContext) -> None:
    """电子派单: every field rule, the deadline order, and that the receiver resolves."""
    order = _model(root, DispatchOrder)
    order = rules.validate_dispatch(order, categories=_tables(ctx).categories, now=ctx.now)
    receiver_of(order, ctx)


def check_return(root, ctx: RouteContext) -> None:
    """电子回单: field rules; the rules that need the dispatch order run in the orders flow."""
    rules.validate_return(_model(root, ReturnOrder), now=ctx.now)


def check_dispatch_receipt(root, ctx: RouteContext) -> None:
    """The receiver's success mark (成功标记) for a dispatch order."""
    rules.validate_dispatch_receipt(_model(root, DispatchReceipt), now=ctx.now)


def check_return_receipt(root, ctx: RouteContext) -> None:
    """The originator's success mark for a return order."""
    rules.validate_return_receipt(_model(root, ReturnReceipt), now=ctx.now)


# ----------------------------------------------------------------------------- resolvers


def order_receiver(root, ctx: RouteContext) -> list[str]:
    """A dispatch order goes to the company it names (HOME: the customer's home province)."""
    # The check already validated the whole order: only the three fields routing reads are taken.
    order = DispatchOrder.model_construct(
        company_code=(root.findtext("o:CompanyCode", namespaces=NS) or "").strip(),
        to_company=CompanyRef.model_construct(code=(root.findtext("o:ToCompany/o:Code", namespaces=NS) or "").strip(),
                                              name=""),
        customer_mobile=(root.findtext("o:CustomerMobile", namespaces=NS) or "").strip(),
    )
    return [receiver_of(order, ctx)]


def order_originator(root, ctx: RouteContext) -> list[str]:
    """A return order or a dispatch receipt goes back to the originator (DispatchCompanyCode)."""
    code = (root.findtext("o:DispatchCompanyCode", namespaces=NS) or "").strip()
    if code not in ctx.nodes:
        raise RejectedMessage(
            f"DispatchCompanyCode (派单公司编号) {code!r} is not a company on this network; check the "
            "dispatch order this message answers.",
            reason=ReasonCode.UNKNOWN_REFERENCE, field="DispatchCompanyCode", value=code)
    return [code]


def order_replier(root, ctx: RouteContext) -> list[str]:
    """A return receipt goes to the replier: the company the dispatch order went to.

    The receipt names only the originator and the serial number, so the order tracker
    answers (ctx.lookups["order_receiver"]); an order it does not know is UNKNOWN_REFERENCE.
    """
    company = (root.findtext("o:DispatchCompanyCode", namespaces=NS) or "").strip()
    serial = (root.findtext("o:DispatchSerialNumber", namespaces=NS) or "").strip()
    lookup = ctx.lookups.get(RECEIVER_LOOKUP)
    if lookup is None:
        raise RejectedMessage(
            "A ReturnReceipt is routed to the company the dispatch order went to, which only the "
            "order tracker knows, and this hub runs without the orders flow.",
            reason=ReasonCode.NO_DESTINATION, field="DispatchSerialNumber", value=serial)
    receiver = lookup(company, serial)
    if receiver is None:
        raise RejectedMessage(
            f"ReturnReceipt refers to dispatch order {company}/{serial}, which the hub does not know. "
            "Check DispatchCompanyCode (派单公司编号) and DispatchSerialNumber (派单流水号).",
            reason=ReasonCode.UNKNOWN_REFERENCE, field="DispatchSerialNumber", value=f"{company}/{serial}")
    return [receiver]
