"""Generic notices (notice.text): the simplest routed message, used by the demo and tests."""

from __future__ import annotations

from protocols.errors import ReasonCode, RejectedMessage

NS = {"h": "urn:cs-hub:hub:1"}


def recipient(root, ctx) -> list[str]:
    """The node or group named in <To>."""
    to = (root.findtext("h:To", namespaces=NS) or "").strip()
    if to in ctx.nodes:
        return [to]
    if to in ctx.groups:
        return [c for c in ctx.groups[to] if c != ctx.sender]
    raise RejectedMessage(f"Recipient {to!r} is neither a node code nor a group.",
                          reason=ReasonCode.UNKNOWN_NODE, field="To", value=to)
