"""The knowledge feedback flow (seed 003 3.1.1.4) as a sans-I/O state machine (HQ's view).

Seed 003, 3.1.1.4:
  a province user writes feedback on a published item; the province admin reviews it
  and submits it to HQ (反馈)                        Submit          -> SUBMITTED
  HQ reviews it and replies to that province (回复)   Reply(answered | change_required) -> REPLIED
  if the knowledge must change, HQ sends the feedback
  down to the item's owner (下发)                     Forward         -> FORWARDED
  the owner starts an update flow that answers it    StartUpdate     -> UPDATE_STARTED
  (a KnowledgeSubmission with FeedbackRef; the thread links the new version)

Owns: the states, the events, ONE transition table (TRANSITIONS), the per-feedback record
(FeedbackThread), the translation of wire messages into events with the checks that need
the record (`event_for`) and the check of a feedback against the item's lifecycle
(`check_target`).
Must not: read the clock, store or send anything.

HQ always replies before it forwards: the reply tells the province whether the item will
change (Disposition), and the forward is the follow-up for the owner. A reply saying
`answered` ends the thread in REPLIED; HQ may still forward later if it finds otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from protocols.errors import ReasonCode, RejectedMessage
from protocols.knowledge.lifecycle import ItemLifecycle
from protocols.knowledge.lifecycle import State as ItemState
from protocols.knowledge.machine import Event, step
from protocols.knowledge.models import (
    Action,
    Disposition,
    Feedback,
    FeedbackForward,
    FeedbackReply,
    KnowledgeSubmission,
)


class State(Enum):
    NEW = "NEW"                        # not yet at HQ
    SUBMITTED = "SUBMITTED"            # the province submitted it to HQ (反馈)
    REPLIED = "REPLIED"                # HQ replied to the province (回复)
    FORWARDED = "FORWARDED"            # HQ sent it down to the item's owner (下发)
    UPDATE_STARTED = "UPDATE_STARTED"  # the owner submitted an update answering it; final


@dataclass(frozen=True, kw_only=True)
class Submit(Event):
    """反馈: the province submitted the feedback to HQ."""


@dataclass(frozen=True, kw_only=True)
class Reply(Event):
    """回复: HQ replied to the province, saying whether the item will change."""

    disposition: Disposition

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "disposition", Disposition(self.disposition))

    @property
    def variant(self) -> str:
        return self.disposition.value


@dataclass(frozen=True, kw_only=True)
class Forward(Event):
    """下发: HQ sent the feedback down to the owner of the item."""

    owner: str


@dataclass(frozen=True, kw_only=True)
class StartUpdate(Event):
    """更新: the owner submitted an update answering the feedback."""

    version: int
    serial: tuple[str, str]


S = State

#: (state, event type, event variant) -> new state. Anything missing is illegal.
TRANSITIONS: dict[tuple[State, type[Event], str | None], State] = {
    (S.NEW, Submit, None): S.SUBMITTED,
    (S.SUBMITTED, Reply, "answered"): S.REPLIED,
    (S.SUBMITTED, Reply, "change_required"): S.REPLIED,
    (S.REPLIED, Forward, None): S.FORWARDED,
    (S.FORWARDED, StartUpdate, None): S.UPDATE_STARTED,
}


@dataclass
class FeedbackThread:
    """One feedback at HQ: from which province, on which item and version, and what came of it."""

    company_code: str
    feedback_id: str
    item_id: str
    version: int
    state: State = State.NEW
    disposition: Disposition | None = None
    owner: str | None = None
    update_version: int | None = None
    update_serial: tuple[str, str] | None = None
    history: list[tuple[Event, State]] = field(default_factory=list)

    @classmethod
    def for_feedback(cls, feedback: Feedback) -> FeedbackThread:
        return cls(company_code=feedback.company_code, feedback_id=feedback.feedback_id,
                   item_id=feedback.item_id, version=feedback.version)

    @property
    def key(self) -> tuple[str, str]:
        return (self.company_code, self.feedback_id)

    def handle(self, event: Event) -> None:
        """Apply one event; ProtocolViolation(ILLEGAL_TRANSITION) naming event, state and allowed events."""
        new = step(TRANSITIONS, self.state, event,
                   what=f"feedback {self.company_code}/{self.feedback_id}")
        if isinstance(event, Reply):
            self.disposition = event.disposition
        elif isinstance(event, Forward):
            self.owner = event.owner
        elif isinstance(event, StartUpdate):
            self.update_version, self.update_serial = event.version, event.serial
        self.state = new
        self.history.append((event, new))


def _unknown(detail: str, field: str, value: object) -> RejectedMessage:
    return RejectedMessage(detail, reason=ReasonCode.UNKNOWN_REFERENCE, field=field, value=value)


def event_for(thread: FeedbackThread,
              message: Feedback | FeedbackReply | FeedbackForward | KnowledgeSubmission) -> Event:
    """The event a (validated) wire message means for this feedback thread.

    Refuses with UNKNOWN_REFERENCE a message about another feedback or item, and with
    SENDER_NOT_PERMITTED an update answering the feedback from a node other than the owner
    it was forwarded to.
    """
    if isinstance(message, KnowledgeSubmission):
        ref = message.feedback_ref
        if message.action is not Action.update or ref is None or (ref.company_code, ref.feedback_id) != thread.key:
            raise _unknown(f"The submission {message.submitter_code}/{message.serial_number} does not answer "
                           f"feedback {thread.company_code}/{thread.feedback_id}. Set FeedbackRef (关联反馈) on the "
                           "update.", "FeedbackRef", message.serial_number)
        if message.item.id != thread.item_id:
            raise _unknown(f"The update is for item {message.item.id}, but feedback {thread.company_code}/"
                           f"{thread.feedback_id} is about {thread.item_id}.", "Item/Id", message.item.id)
        if thread.owner is not None and message.submitter_code != thread.owner:
            raise RejectedMessage(
                f"Feedback {thread.company_code}/{thread.feedback_id} was sent down to {thread.owner!r}; "
                f"{message.submitter_code!r} cannot answer it with an update.",
                reason=ReasonCode.SENDER_NOT_PERMITTED, field="SubmitterCode", value=message.submitter_code,
            )
        return StartUpdate(at=message.submitted_at, version=message.item.version, serial=message.key)
    if message.key != thread.key:
        raise _unknown(f"The {type(message).__name__} is about feedback {message.key[0]}/{message.key[1]}, not "
                       f"{thread.company_code}/{thread.feedback_id}. Check CompanyCode (公司编号) and FeedbackId "
                       "(反馈编号).", "FeedbackId", message.key[1])
    if message.item_id != thread.item_id:
        raise _unknown(f"The {type(message).__name__} names item {message.item_id}, but the feedback is about "
                       f"{thread.item_id}. Check ItemId (知识编号).", "ItemId", message.item_id)
    if isinstance(message, Feedback):
        return Submit(at=message.submitted_at)
    if isinstance(message, FeedbackReply):
        return Reply(at=message.replied_at, disposition=message.disposition)
    if isinstance(message, FeedbackForward):
        return Forward(at=message.forwarded_at, owner=message.owner_node)
    raise TypeError(f"{type(message).__name__} is not a message of the feedback flow")


def check_target(feedback: Feedback, item: ItemLifecycle | None) -> None:
    """A feedback must be about a published version of a known, live item.

    UNKNOWN_REFERENCE for an unknown item or a version HQ never published, ITEM_REVOKED for
    a revoked item (there is nothing left to correct).
    """
    if item is None or item.item_id != feedback.item_id or item.published_version == 0:
        raise _unknown(f"Feedback {feedback.company_code}/{feedback.feedback_id} is about item {feedback.item_id}, "
                       "which HQ has not published. Check ItemId (知识编号).", "ItemId", feedback.item_id)
    if item.state is ItemState.REVOKED:
        raise RejectedMessage(
            f"Item {feedback.item_id} was revoked; feedback on it is no longer taken.",
            reason=ReasonCode.ITEM_REVOKED, field="ItemId", value=feedback.item_id,
        )
    if feedback.version > item.published_version:
        raise _unknown(f"Feedback {feedback.company_code}/{feedback.feedback_id} is about version {feedback.version} "
                       f"of {feedback.item_id}; HQ has published up to version {item.published_version}.",
                       "Version", feedback.version)


def forward_for(thread: FeedbackThread, feedback: Feedback, *, owner: str, opinion: str, forwarded_by: str,
                at: datetime) -> FeedbackForward:
    """The FeedbackForward (反馈下发) HQ sends to the item's owner for this thread."""
    return FeedbackForward(owner_node=owner, company_code=thread.company_code, feedback_id=thread.feedback_id,
                           item_id=thread.item_id, version=thread.version, text=feedback.text, opinion=opinion,
                           forwarded_by=forwarded_by, forwarded_at=at)
