"""WAP business hall (docs/wap.md): the ingress check of a query and where queries go.

Owns: `check_query` (a month for bills and detail records, none in the future) and the
resolver `home_province` (the customer's province from the number segment of Mobile, with
the segment table of config/segments.yaml shared with the order rules).
Must not: know HTTP, the adapter, or the bus.
"""

from __future__ import annotations

from mappings.context import RouteContext
from mappings.orders import _tables
from protocols.errors import ReasonCode, RejectedMessage
from protocols.wap import wire

NS = {"w": wire.NS}


def check_query(root, ctx: RouteContext) -> None:
    wire.check_query_tree(root, ctx.now)


def home_province(root, ctx: RouteContext) -> list[str]:
    """The province of Mobile's number segment; UNKNOWN_SEGMENT when the table lacks it."""
    mobile = root.findtext("w:Mobile", namespaces=NS) or ""
    segments = _tables(ctx).segments
    try:
        code = segments.home_province(mobile, field="Mobile")
    except RejectedMessage as exc:
        if exc.reason != ReasonCode.UNKNOWN_SEGMENT:
            raise
        raise RejectedMessage(f"The number segment (号段) {mobile[:7]} of Mobile {mobile} is not in the segment "
                              "table, so the customer's home province is unknown; the hub cannot ask anyone "
                              "about this customer.", reason=ReasonCode.UNKNOWN_SEGMENT, field="Mobile",
                              value=mobile[:7]) from None
    if code not in ctx.nodes:
        raise RejectedMessage(f"The segment of Mobile {mobile} maps to company {code!r}, which is not on this "
                              "network; ask HQ to correct config/segments.yaml.",
                              reason=ReasonCode.UNKNOWN_NODE, field="Mobile", value=code)
    return [code]
