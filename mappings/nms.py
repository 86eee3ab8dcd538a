"""NMS fault notices (docs/nms.md): the ingress check of nms.fault / nms.clear.

Owns: `check_notice`: the payload is an AnnouncementPublish that HQ could publish (the
announcement rules, with HQ as the publisher: the NMS feed announces on HQ's behalf), of Kind
fault or cutover, asking for no replies; routes/nms.yaml
matches nms.fault only when open and nms.clear only when closed.
Must not: know the feed, the database or the bus.
"""

from __future__ import annotations

from mappings.context import RouteContext
from protocols.announcements import rules as announcement_rules
from protocols.announcements import wire as announcement_wire
from protocols.announcements.models import AnnouncementKind, AnnouncementPublish
from protocols.errors import ReasonCode, RejectedMessage


def check_notice(root, ctx: RouteContext) -> None:
    message = announcement_wire.from_xml(root, validate=False)
    if not isinstance(message, AnnouncementPublish):
        raise RejectedMessage("An NMS notice must be an AnnouncementPublish.", reason=ReasonCode.UNKNOWN_TYPE)
    announcement_rules.validate_publish(message, sender=ctx.hq, now=ctx.now, hq=ctx.hq)
    ann = message.announcement
    if ann.kind not in (AnnouncementKind.fault, AnnouncementKind.cutover):
        raise RejectedMessage(f"An NMS notice has Kind fault or cutover, not {ann.kind.value}.",
                              reason=ReasonCode.FIELD_INVALID, field="Announcement/Kind", value=ann.kind.value)
    if ann.replies_required:
        raise RejectedMessage("An NMS notice asks for no replies; set RepliesRequired to false.",
                              reason=ReasonCode.FIELD_INVALID, field="Announcement/RepliesRequired")
    if ann.source_ref is None:
        raise RejectedMessage("An NMS notice names its NMS ticket in SourceRef.",
                              reason=ReasonCode.FIELD_INVALID, field="Announcement/SourceRef")
