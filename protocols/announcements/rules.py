"""Business validation of announcement messages, each refusal with a reason code.

Owns: every rule an announcement message must pass beyond the XSD (RejectedMessage with a
ReasonCode, `field` the wire element name or path such as Announcement/ReplyDeadline, a
message naming the field in English and Chinese, the value and what to do), the UTC
normalisation of every timestamp, and the expansion of a Scope into company codes given
the node groups (`resolve_scope`).
Must not: read the clock (`now` is an argument), read config/nodes.yaml (the groups and the
known codes are arguments), or look up stored announcements (protocols.announcements.transaction
does the checks that need the record).

Rules and their reason codes (docs/knowledge.md, part B, lists them):

    FIELD_INVALID          a format, a naive or future time, an empty or repeated scope entry,
                           a reply deadline without replies or replies without a deadline, a
                           submission that is not open, a closed fault without its EndTime
    DEADLINE_ORDER         ReplyDeadline not after `now` (or the publication) for an open
                           announcement; EndTime before StartTime
    SPOOFED_SENDER         SubmitterCode / CompanyCode is not the authenticated sender
    SENDER_NOT_PERMITTED   a message only HQ sends came from another node
    UNKNOWN_NODE           a Scope names a node or group the hub does not know
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

from protocols.announcements.models import (
    FIELD_NAMES_ZH,
    HQ_CODE,
    Announcement,
    AnnouncementKind,
    AnnouncementMessage,
    AnnouncementPublish,
    AnnouncementReply,
    AnnouncementStatus,
    AnnouncementSubmission,
    ReplyAccepted,
    ReplyReturn,
    ReturnForModification,
    Scope,
)
from protocols.errors import ReasonCode, RejectedMessage
from protocols.fieldrules import DEFAULT_MAX_FUTURE, FieldRules, aware, in_utc, iso

F = FieldRules(FIELD_NAMES_ZH)

# The patterns of announcement.xsd; tests check both accept the same values.
GROUP_RE = re.compile(r"[a-z][a-z0-9_]{1,31}")
SOURCE_REF_RE = re.compile(r"[0-9A-Za-z_\-:.]{1,64}")
CONTENT_MAX = 4000
TEXT_MAX = 2000
TITLE_MAX = 200


def check_scope(scope: Scope, prefix: str = "Announcement/Scope/") -> None:
    if not scope.nodes and not scope.groups:
        raise F.refuse(prefix.rstrip("/"), "", "is empty", "Name at least one node (e.g. 31) or group (e.g. provinces).")
    for values, field, check in ((scope.nodes, "Node", lambda v, f: F.company_code(v, f)),
                                 (scope.groups, "Group", lambda v, f: F.pattern(
                                     v, f, GROUP_RE, "a node group name",
                                     "Use a group of config/nodes.yaml such as provinces, second_line or all."))):
        seen: set[str] = set()
        for value in values:
            check(value, prefix + field)
            if value in seen:
                raise F.refuse(prefix + field, value, "is listed twice", "Name each node and group once.")
            seen.add(value)


def check_announcement(ann: Announcement, *, now: datetime, prefix: str = "Announcement/",
                       not_before: tuple[datetime, str] | None = None) -> None:
    """The rules of one announcement; an open one's ReplyDeadline must lie after `now`
    (and after `not_before`, the message's own time, when given)."""
    F.identifier(ann.id, f"{prefix}Id")
    F.line(ann.title, f"{prefix}Title", TITLE_MAX)
    F.text(ann.content, f"{prefix}Content", CONTENT_MAX)
    check_scope(ann.scope, f"{prefix}Scope/")
    deadline_field = f"{prefix}ReplyDeadline"
    if ann.replies_required and ann.reply_deadline is None:
        raise F.refuse(deadline_field, None, "is missing although RepliesRequired (是否需要回复) is true",
                       "Say by when the replies are due, with time zone.")
    if not ann.replies_required and ann.reply_deadline is not None:
        raise F.refuse(deadline_field, iso(ann.reply_deadline), "is set although RepliesRequired (是否需要回复) "
                       "is false", "Leave ReplyDeadline out, or set RepliesRequired to true.")
    if ann.reply_deadline is not None:
        deadline = F.zoned(ann.reply_deadline, deadline_field)
        if ann.status is AnnouncementStatus.open:
            now_utc = aware(now)
            if deadline <= now_utc:
                raise F.refuse(deadline_field, iso(ann.reply_deadline),
                               f"is not later than the hub's time {iso(now_utc)}",
                               "Give the recipients time to reply: set the deadline in the future.",
                               ReasonCode.DEADLINE_ORDER)
            if not_before is not None:
                F.after(ann.reply_deadline, deadline_field, not_before[0], not_before[1],
                        "Set the reply deadline after the message's own time.")
    if ann.source_ref is not None:
        F.pattern(ann.source_ref, f"{prefix}SourceRef", SOURCE_REF_RE, "a source reference",
                  "Use the NMS fault or cut-over ticket number: 1-64 letters, digits, _ - : or .")
    if ann.start_time is not None:
        F.zoned(ann.start_time, f"{prefix}StartTime")
    if ann.end_time is not None:
        F.zoned(ann.end_time, f"{prefix}EndTime")
        if ann.start_time is not None:
            F.after(ann.end_time, f"{prefix}EndTime", ann.start_time, f"{prefix}StartTime",
                    "The fault cannot clear, nor the cut-over end, before it started.", strictly=False)
    elif ann.kind is AnnouncementKind.fault and ann.status is AnnouncementStatus.closed:
        raise F.refuse(f"{prefix}EndTime", None, "is missing from a closed fault notice",
                       "Say when the fault was cleared (故障恢复时间).")


def validate_announcement(ann: Announcement, *, now: datetime) -> Announcement:
    """Check a standalone announcement; times in UTC."""
    check_announcement(ann, now=now, prefix="")
    return in_utc(ann)  # type: ignore[return-value]


def validate_submission(sub: AnnouncementSubmission, *, sender: str, now: datetime,
                        max_future: timedelta = DEFAULT_MAX_FUTURE) -> AnnouncementSubmission:
    """Check an announcement submission (公告提交) from `sender`; times in UTC."""
    F.serial(sub.serial_number, "SerialNumber")
    F.company_code(sub.submitter_code, "SubmitterCode")
    F.sender_is(sub.submitter_code, "SubmitterCode", sender)
    F.line(sub.local_reviewer, "LocalReviewer")
    F.zoned(sub.submitted_at, "SubmittedAt")
    F.not_future(sub.submitted_at, "SubmittedAt", now=now, max_future=max_future)
    if sub.announcement.status is not AnnouncementStatus.open:
        raise F.refuse("Announcement/Status", sub.announcement.status.value, "is not open in a submission",
                       "Submit an open announcement; HQ publishes the closing notice.")
    check_announcement(sub.announcement, now=now, not_before=(sub.submitted_at, "SubmittedAt"))
    return in_utc(sub)  # type: ignore[return-value]


def validate_return(ret: ReturnForModification, *, sender: str, now: datetime, hq: str = HQ_CODE,
                    max_future: timedelta = DEFAULT_MAX_FUTURE) -> ReturnForModification:
    """Check HQ's return for modification (退回修改); only HQ sends it."""
    F.from_hq("ReturnForModification (退回修改)", sender, hq)
    F.company_code(ret.submitter_code, "SubmitterCode")
    F.serial(ret.submission_serial_number, "SubmissionSerialNumber")
    F.identifier(ret.announcement_id, "AnnouncementId")
    F.text(ret.opinion, "Opinion", TEXT_MAX)
    F.line(ret.reviewer, "Reviewer")
    F.zoned(ret.returned_at, "ReturnedAt")
    F.not_future(ret.returned_at, "ReturnedAt", now=now, max_future=max_future)
    return in_utc(ret)  # type: ignore[return-value]


def validate_publish(pub: AnnouncementPublish, *, sender: str, now: datetime, hq: str = HQ_CODE,
                     max_future: timedelta = DEFAULT_MAX_FUTURE) -> AnnouncementPublish:
    """Check HQ's publication (公告发布) or closing notice; only HQ sends it."""
    F.from_hq("AnnouncementPublish (公告发布)", sender, hq)
    F.company_code(pub.originator_code, "OriginatorCode")
    if pub.reviewer is not None:
        F.line(pub.reviewer, "Reviewer")
    F.zoned(pub.published_at, "PublishedAt")
    F.not_future(pub.published_at, "PublishedAt", now=now, max_future=max_future)
    check_announcement(pub.announcement, now=now, not_before=(pub.published_at, "PublishedAt"))
    return in_utc(pub)  # type: ignore[return-value]


def validate_reply(reply: AnnouncementReply, *, sender: str, now: datetime,
                   max_future: timedelta = DEFAULT_MAX_FUTURE) -> AnnouncementReply:
    """Check a recipient's reply (公告回复)."""
    F.company_code(reply.company_code, "CompanyCode")
    F.sender_is(reply.company_code, "CompanyCode", sender)
    F.serial(reply.serial_number, "SerialNumber")
    F.identifier(reply.announcement_id, "AnnouncementId")
    F.text(reply.content, "Content", TEXT_MAX)
    F.line(reply.replier, "Replier")
    F.line(reply.local_reviewer, "LocalReviewer")
    F.zoned(reply.replied_at, "RepliedAt")
    F.not_future(reply.replied_at, "RepliedAt", now=now, max_future=max_future)
    return in_utc(reply)  # type: ignore[return-value]


def validate_reply_return(ret: ReplyReturn, *, sender: str, now: datetime, hq: str = HQ_CODE,
                          max_future: timedelta = DEFAULT_MAX_FUTURE) -> ReplyReturn:
    """Check HQ's return of a reply (回复退回); only HQ sends it."""
    F.from_hq("ReplyReturn (回复退回)", sender, hq)
    F.company_code(ret.company_code, "CompanyCode")
    F.serial(ret.reply_serial_number, "ReplySerialNumber")
    F.identifier(ret.announcement_id, "AnnouncementId")
    F.text(ret.opinion, "Opinion", TEXT_MAX)
    F.line(ret.reviewer, "Reviewer")
    F.zoned(ret.returned_at, "ReturnedAt")
    F.not_future(ret.returned_at, "ReturnedAt", now=now, max_future=max_future)
    return in_utc(ret)  # type: ignore[return-value]


def validate_reply_accepted(acc: ReplyAccepted, *, sender: str, now: datetime, hq: str = HQ_CODE,
                            max_future: timedelta = DEFAULT_MAX_FUTURE) -> ReplyAccepted:
    """Check HQ's acceptance of a reply (回复确认); only HQ sends it."""
    F.from_hq("ReplyAccepted (回复确认)", sender, hq)
    F.company_code(acc.company_code, "CompanyCode")
    F.serial(acc.reply_serial_number, "ReplySerialNumber")
    F.identifier(acc.announcement_id, "AnnouncementId")
    F.line(acc.reviewer, "Reviewer")
    F.zoned(acc.accepted_at, "AcceptedAt")
    F.not_future(acc.accepted_at, "AcceptedAt", now=now, max_future=max_future)
    return in_utc(acc)  # type: ignore[return-value]


def validate(message: AnnouncementMessage, *, sender: str, now: datetime, hq: str = HQ_CODE,
             max_future: timedelta = DEFAULT_MAX_FUTURE) -> AnnouncementMessage:
    """Check any announcement message from the authenticated `sender`; returns it with UTC times."""
    if isinstance(message, Announcement):
        return validate_announcement(message, now=now)
    if isinstance(message, AnnouncementSubmission):
        return validate_submission(message, sender=sender, now=now, max_future=max_future)
    if isinstance(message, AnnouncementReply):
        return validate_reply(message, sender=sender, now=now, max_future=max_future)
    checks = {ReturnForModification: validate_return, AnnouncementPublish: validate_publish,
              ReplyReturn: validate_reply_return, ReplyAccepted: validate_reply_accepted}
    return checks[type(message)](message, sender=sender, now=now, hq=hq, max_future=max_future)  # type: ignore[operator]


def resolve_scope(scope: Scope, groups: Mapping[str, Iterable[str]],
                  known: Collection[str] | None = None) -> tuple[str, ...]:
    """The company codes a Scope names: its nodes, then the members of its groups, each once.

    `groups` is the node directory's group table (hub.nodes: all, provinces, second_line, ...);
    `known`, when given, is every configured node code. Unknown names are UNKNOWN_NODE.
    """
    codes: dict[str, None] = {}
    for node in scope.nodes:
        if known is not None and node not in known:
            raise F.refuse("Announcement/Scope/Node", node, "is not a configured node",
                           "Use a company code of config/nodes.yaml.", ReasonCode.UNKNOWN_NODE)
        codes[node] = None
    for group in scope.groups:
        if group not in groups:
            raise F.refuse("Announcement/Scope/Group", group, "is not a node group",
                           f"Use one of {', '.join(sorted(groups))}.", ReasonCode.UNKNOWN_NODE)
        codes.update(dict.fromkeys(groups[group]))
    if not codes:
        raise RejectedMessage("The announcement's Scope (发布范围) names no node at all; its groups are empty.",
                              reason=ReasonCode.NO_DESTINATION, field="Announcement/Scope")
    return tuple(codes)
