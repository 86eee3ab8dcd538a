"""The announcement flows of seed 003 2.3.2 as sans-I/O state machines (HQ's view).

Seed 003, 2.3.2:
  a province or the second-line platform creates an announcement, reviews it locally and
  submits it to HQ (提交)                                   Submit          -> SUBMITTED
  HQ may return it for modification (退回)                  Return          -> RETURNED
  the submitter modifies and resubmits                      Submit          -> SUBMITTED
  HQ publishes it to provinces and the second-line (发布)   Publish         -> PUBLISHED
  (HQ's own announcements and network-management fault notices are published directly:
   NEW -> PUBLISHED)
  the closing notice (结束通告) ends it                      Close           -> CLOSED
  when replies are required, per recipient:
    the recipient replies (回复)                            Reply           AWAITED -> REPLY_SUBMITTED
    HQ may return the reply (退回)                          ReturnReply     -> REPLY_RETURNED
    the recipient resubmits                                 Reply           -> REPLY_SUBMITTED
    HQ accepts it (确认)                                    AcceptReply     -> REPLY_ACCEPTED

Owns: the states and events of both conversations, ONE table each (TRANSITIONS for the
announcement, REPLY_TRANSITIONS for one recipient's reply), the per-announcement record
(AnnouncementFlow, holding the per-recipient ReplyFlow records), the translation of wire
messages into events with the checks that need the record (`event_for`), the reply
deadline as timer data (`deadlines`, `overdue_replies`) and the messages HQ sends
(`return_for`, `publish_for`, `closing_notice`).
Must not: read the clock, schedule timers, resolve groups (the recipients are an argument:
rules.resolve_scope), store or send.

Replies are taken while the announcement is PUBLISHED; a late reply (after the deadline) is
still taken: the reply rate must be 100%, lateness is an overdue flag for statistics and
alarms, as for dispatch orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from protocols.announcements.models import (
    HQ_CODE,
    Announcement,
    AnnouncementPublish,
    AnnouncementReply,
    AnnouncementStatus,
    AnnouncementSubmission,
    ReplyAccepted,
    ReplyReturn,
    ReturnForModification,
)
from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.knowledge.machine import Event, step, utc


class State(Enum):
    NEW = "NEW"              # not yet at HQ
    SUBMITTED = "SUBMITTED"  # submitted to HQ for review (提交)
    RETURNED = "RETURNED"    # returned for modification (退回)
    PUBLISHED = "PUBLISHED"  # published to the nodes in scope (发布); replies are taken
    CLOSED = "CLOSED"        # the closing notice was published; final


class ReplyState(Enum):
    AWAITED = "AWAITED"                  # a reply is required and has not come
    REPLY_SUBMITTED = "REPLY_SUBMITTED"  # a reply awaits HQ's review (回复)
    REPLY_RETURNED = "REPLY_RETURNED"    # HQ returned it for modification (退回)
    REPLY_ACCEPTED = "REPLY_ACCEPTED"    # HQ accepted it (确认); final


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Submit(Event):
    """提交: the announcement was submitted (or resubmitted) to HQ, with its (modified) content."""

    serial: tuple[str, str]
    announcement: Announcement | None = None


@dataclass(frozen=True, kw_only=True)
class Return(Event):
    """退回: HQ returned the announcement for modification."""

    opinion: str = ""


@dataclass(frozen=True, kw_only=True)
class Publish(Event):
    """发布: HQ published the announcement to `recipients` (the resolved scope)."""

    recipients: tuple[str, ...]
    announcement: Announcement | None = None


@dataclass(frozen=True, kw_only=True)
class Close(Event):
    """结束: HQ published the closing notice."""

    announcement: Announcement | None = None


@dataclass(frozen=True, kw_only=True)
class Reply(Event):
    """回复: a recipient submitted (or resubmitted) its reply."""

    company: str
    serial: str


@dataclass(frozen=True, kw_only=True)
class ReturnReply(Event):
    """退回: HQ returned a reply for modification."""

    company: str
    serial: str


@dataclass(frozen=True, kw_only=True)
class AcceptReply(Event):
    """确认: HQ accepted a reply."""

    company: str
    serial: str


REPLY_EVENTS = (Reply, ReturnReply, AcceptReply)

# ----------------------------------------------------------------------------- the tables

S, RS = State, ReplyState

#: The announcement: (state, event type, variant) -> new state. Anything missing is illegal.
TRANSITIONS: dict[tuple[State, type[Event], str | None], State] = {
    (S.NEW, Submit, None): S.SUBMITTED,
    (S.SUBMITTED, Return, None): S.RETURNED,
    (S.RETURNED, Submit, None): S.SUBMITTED,
    (S.SUBMITTED, Publish, None): S.PUBLISHED,
    (S.NEW, Publish, None): S.PUBLISHED,  # HQ's own announcement, a network-management fault
    (S.PUBLISHED, Close, None): S.CLOSED,
}

#: One recipient's reply: (state, event type, variant) -> new state. Anything missing is illegal.
REPLY_TRANSITIONS: dict[tuple[ReplyState, type[Event], str | None], ReplyState] = {
    (RS.AWAITED, Reply, None): RS.REPLY_SUBMITTED,
    (RS.REPLY_SUBMITTED, ReturnReply, None): RS.REPLY_RETURNED,
    (RS.REPLY_RETURNED, Reply, None): RS.REPLY_SUBMITTED,
    (RS.REPLY_SUBMITTED, AcceptReply, None): RS.REPLY_ACCEPTED,
}

#: Reply states in which the recipient still owes a reply (overdue once the deadline passed).
OWED = frozenset({RS.AWAITED, RS.REPLY_RETURNED})


# ----------------------------------------------------------------------------- the records


@dataclass
class ReplyFlow:
    """One recipient's reply to one announcement."""

    company: str
    state: ReplyState = ReplyState.AWAITED
    serial: str | None = None
    replied_at: datetime | None = None
    returns: int = 0


@dataclass
class AnnouncementFlow:
    """One announcement at HQ: its state, latest content, recipients and their replies."""

    announcement: Announcement
    originator: str
    state: State = State.NEW
    pending_serial: tuple[str, str] | None = None
    returns: int = 0
    opinions: list[str] = field(default_factory=list)
    recipients: tuple[str, ...] = ()
    replies: dict[str, ReplyFlow] = field(default_factory=dict)
    history: list[tuple[Event, State]] = field(default_factory=list)

    @classmethod
    def for_message(cls, message: AnnouncementSubmission | AnnouncementPublish) -> AnnouncementFlow:
        """A new record for the first message of an announcement: a submission, or HQ's direct publication."""
        if isinstance(message, AnnouncementSubmission):
            return cls(announcement=message.announcement, originator=message.submitter_code)
        return cls(announcement=message.announcement, originator=message.originator_code)

    @property
    def announcement_id(self) -> str:
        return self.announcement.id

    def handle(self, event: Event) -> None:
        """Apply one event; ProtocolViolation naming event, state and allowed events when illegal."""
        if isinstance(event, REPLY_EVENTS):
            self._handle_reply(event)
        else:
            new = step(TRANSITIONS, self.state, event, what=f"announcement {self.announcement_id}")
            content = getattr(event, "announcement", None)
            if content is not None:
                self.announcement = content  # the latest submitted or published content
            if isinstance(event, Submit):
                self.pending_serial = event.serial
            elif isinstance(event, Return):
                self.returns += 1
                self.opinions.append(event.opinion)
            elif isinstance(event, Publish):
                self.recipients = event.recipients
                if self.announcement.replies_required:
                    self.replies = {code: ReplyFlow(code) for code in event.recipients}
            self.state = new
        self.history.append((event, self.state))

    def _handle_reply(self, event: Reply | ReturnReply | AcceptReply) -> None:
        what = f"announcement {self.announcement_id}"
        if self.state is not State.PUBLISHED:
            raise ProtocolViolation(
                f"{event.describe()} is not allowed while {what} is in state {self.state.name}; replies are "
                "taken while it is PUBLISHED.",
                reason=ReasonCode.ILLEGAL_TRANSITION, value=self.state.name,
            )
        if not self.announcement.replies_required:
            raise ProtocolViolation(
                f"{event.describe()} is not allowed: {what} does not ask for replies (RepliesRequired 是否需要回复 "
                "is false).", reason=ReasonCode.ILLEGAL_TRANSITION, value=self.state.name,
            )
        flow = self.replies.get(event.company)
        if flow is None:
            raise RejectedMessage(
                f"{event.company!r} is not a recipient of {what}; only the nodes in its scope reply.",
                reason=ReasonCode.SENDER_NOT_PERMITTED, field="CompanyCode", value=event.company,
            )
        flow.state = step(REPLY_TRANSITIONS, flow.state, event, what=f"the reply of {event.company} to {what}")
        if isinstance(event, Reply):
            flow.serial, flow.replied_at = event.serial, event.at
        elif isinstance(event, ReturnReply):
            flow.returns += 1

    # ------------------------------------------------------------------------- timers

    def deadlines(self, warn_before: timedelta | None = None) -> list[tuple[str, datetime]]:
        """The timers to schedule once published: [("reply_due", deadline)] and, with
        `warn_before`, ("reply_warning", deadline - warn_before); none when no reply is required."""
        deadline = self.announcement.reply_deadline
        if self.state is not State.PUBLISHED or not self.announcement.replies_required or deadline is None:
            return []
        due = utc(deadline, "ReplyDeadline")
        timers = [("reply_due", due)]
        if warn_before is not None:
            if warn_before <= timedelta(0):
                raise ValueError("warn_before must be positive")
            timers.insert(0, ("reply_warning", due - warn_before))
        return timers

    def overdue_replies(self, now: datetime) -> tuple[str, ...]:
        """Recipients that still owe a reply at `now`, once the deadline has passed (for alarms)."""
        deadline = self.announcement.reply_deadline
        if deadline is None or utc(now, "now") < utc(deadline, "ReplyDeadline"):
            return ()
        return tuple(code for code, flow in self.replies.items() if flow.state in OWED)

    def outstanding_replies(self) -> tuple[str, ...]:
        """Recipients whose reply is not accepted yet (owed or awaiting HQ's review)."""
        return tuple(code for code, flow in self.replies.items() if flow.state is not ReplyState.REPLY_ACCEPTED)


# ----------------------------------------------------------------------------- messages -> events


def _unknown(detail: str, field: str, value: object) -> RejectedMessage:
    return RejectedMessage(detail, reason=ReasonCode.UNKNOWN_REFERENCE, field=field, value=value)


def event_for(flow: AnnouncementFlow,
              message: AnnouncementSubmission | ReturnForModification | AnnouncementPublish | AnnouncementReply
              | ReplyReturn | ReplyAccepted, *, recipients: Iterable[str] | None = None) -> Event:
    """The event a (validated) wire message means for this announcement.

    `recipients` are the company codes of the announcement's scope (rules.resolve_scope),
    needed for a publication. Refuses UNKNOWN_REFERENCE for a message about another
    announcement, submission or reply, SENDER_NOT_PERMITTED for a resubmission by another
    node. The record is not changed: `flow.handle(event)` does that.
    """
    announcement_id = (message.announcement.id if isinstance(message, AnnouncementSubmission | AnnouncementPublish)
                       else message.announcement_id)
    if announcement_id != flow.announcement_id:
        raise _unknown(f"The {type(message).__name__} is about announcement {announcement_id}, not "
                       f"{flow.announcement_id}. Check the announcement's Id (公告编号).", "AnnouncementId",
                       announcement_id)
    if isinstance(message, AnnouncementSubmission):
        if message.submitter_code != flow.originator:
            raise RejectedMessage(
                f"Announcement {flow.announcement_id} was raised by {flow.originator!r}; {message.submitter_code!r} "
                "cannot resubmit it. Submit your own announcement under a new Id.",
                reason=ReasonCode.SENDER_NOT_PERMITTED, field="SubmitterCode", value=message.submitter_code,
            )
        return Submit(at=message.submitted_at, serial=message.key, announcement=message.announcement)
    if isinstance(message, ReturnForModification):
        if flow.pending_serial is not None and message.submission_key != flow.pending_serial:
            raise _unknown(f"The return names submission {message.submitter_code}/{message.submission_serial_number}, "
                           f"but the one under review is {flow.pending_serial[0]}/{flow.pending_serial[1]}.",
                           "SubmissionSerialNumber", message.submission_serial_number)
        return Return(at=message.returned_at, opinion=message.opinion)
    if isinstance(message, AnnouncementPublish):
        if message.originator_code != flow.originator:
            raise _unknown(f"Announcement {flow.announcement_id} was raised by {flow.originator!r}, not "
                           f"{message.originator_code!r}. Check OriginatorCode (发起方公司编号).", "OriginatorCode",
                           message.originator_code)
        if message.announcement.status is AnnouncementStatus.closed:
            return Close(at=message.published_at, announcement=message.announcement)
        if recipients is None:
            raise ValueError("a publication needs its recipients (rules.resolve_scope of the Scope)")
        return Publish(at=message.published_at, recipients=tuple(dict.fromkeys(recipients)),
                       announcement=message.announcement)
    company, serial = message.company_code, (message.serial_number if isinstance(message, AnnouncementReply)
                                             else message.reply_serial_number)
    if isinstance(message, AnnouncementReply):
        return Reply(at=message.replied_at, company=company, serial=serial)
    reply = flow.replies.get(company)
    if reply is not None and reply.serial is not None and reply.serial != serial:
        raise _unknown(f"The {type(message).__name__} names reply {company}/{serial}, but the latest reply of "
                       f"{company} is {reply.serial}.", "ReplySerialNumber", serial)
    if isinstance(message, ReplyReturn):
        return ReturnReply(at=message.returned_at, company=company, serial=serial)
    return AcceptReply(at=message.accepted_at, company=company, serial=serial)


# ----------------------------------------------------------------------------- the messages HQ sends


def return_for(sub: AnnouncementSubmission, *, opinion: str, reviewer: str, at: datetime) -> ReturnForModification:
    """HQ's return for modification (退回修改) of a submission."""
    return ReturnForModification(submitter_code=sub.submitter_code, submission_serial_number=sub.serial_number,
                                 announcement_id=sub.announcement.id, opinion=opinion, reviewer=reviewer,
                                 returned_at=at)


def publish_for(sub: AnnouncementSubmission, *, reviewer: str, at: datetime) -> AnnouncementPublish:
    """HQ's publication (公告发布) of an approved submission."""
    return AnnouncementPublish(originator_code=sub.submitter_code, reviewer=reviewer, published_at=at,
                               announcement=sub.announcement)


def closing_notice(published: AnnouncementPublish, *, content: str, end_time: datetime | None,
                   at: datetime) -> AnnouncementPublish:
    """The closing notice (结束通告): the same announcement, Status closed, with its EndTime."""
    update: dict[str, object] = {"status": AnnouncementStatus.closed, "content": content}
    if end_time is not None:
        update["end_time"] = end_time
    return published.model_copy(update={"published_at": at,
                                        "announcement": published.announcement.model_copy(update=update)})


def fault_notice(announcement: Announcement, *, at: datetime, hq: str = HQ_CODE) -> AnnouncementPublish:
    """A publication HQ raises itself (a network-management fault): no submission, no reviewer."""
    return AnnouncementPublish(originator_code=hq, published_at=at, announcement=announcement)
