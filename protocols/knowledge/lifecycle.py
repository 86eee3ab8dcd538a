"""A knowledge item's lifecycle at HQ (seed 003 3.1.1.1-3.1.1.3) as a sans-I/O state machine.

Seed 003, 3.1.1.1 (publish; update 3.1.1.2 and revocation 3.1.1.3 follow the same path):
  second-line author creates, second-line admin reviews locally         -> DRAFT
  admin submits to HQ (提交)                      Submit(publish|update|revoke) -> SUBMITTED
  HQ admin reviews (审核): approved               Approve                 -> APPROVED
                           rejected: returned (退回) for modification     Return  -> RETURNED
  the originator modifies and resubmits           Submit (same action)    -> SUBMITTED
  HQ publishes to the designated recipients (发布) Publish                -> PUBLISHED
  ... or, for an approved revocation (撤销)       Revoke                  -> REVOKED (final)

Owns: the states, the events, ONE transition table (TRANSITIONS), the per-item record
(ItemLifecycle: the published version, the change under review, the returns), the
translation of wire messages into events with the checks that need the record
(`event_for`), and the messages HQ sends at each step (`review_result`, `delivery_for`).
Must not: read the clock, store, send, or decide who the recipients are (HQ designates
them; they arrive as an argument or in the KnowledgeDelivery).

While an update or revocation is under review the item stays published at its current
version: the state is that of the change, `published_version` says what recipients hold.
A record in REVOKED refuses every further submission with ITEM_REVOKED: a revoked item
never comes back, and its Id is never reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from protocols.errors import ReasonCode, RejectedMessage
from protocols.knowledge import rules
from protocols.knowledge.machine import Event, step
from protocols.knowledge.models import (
    Action,
    KnowledgeDelivery,
    KnowledgeStatus,
    KnowledgeSubmission,
    ReviewOutcome,
    ReviewResult,
    Tombstone,
)


class State(Enum):
    DRAFT = "DRAFT"          # created (by a second-line or HQ author), nothing at HQ's review yet
    SUBMITTED = "SUBMITTED"  # a publish, update or revocation awaits HQ's review (提交)
    RETURNED = "RETURNED"    # HQ returned it for modification (退回)
    APPROVED = "APPROVED"    # HQ approved it (审核); publication (发布) follows
    PUBLISHED = "PUBLISHED"  # the recipients hold `published_version`
    REVOKED = "REVOKED"      # the tombstone was published (撤销); final


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Submit(Event):
    """提交: a publish, update or revocation submitted to HQ (also a resubmission after a return)."""

    action: Action
    version: int
    serial: tuple[str, str]  # (SubmitterCode, SerialNumber) of the submission

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "action", Action(self.action))

    @property
    def variant(self) -> str:
        return self.action.value


@dataclass(frozen=True, kw_only=True)
class Approve(Event):
    """审核: HQ approved the change under review."""


@dataclass(frozen=True, kw_only=True)
class Return(Event):
    """退回: HQ returned the change for modification, with an opinion."""

    opinion: str = ""


@dataclass(frozen=True, kw_only=True)
class Publish(Event):
    """发布: HQ delivered the approved version (publish or update) to the recipients."""

    version: int


@dataclass(frozen=True, kw_only=True)
class Revoke(Event):
    """撤销: HQ delivered the approved revocation (the tombstone) to the recipients."""

    version: int


# ----------------------------------------------------------------------------- the table

S = State

#: (state, event type, event variant) -> new state. Anything missing is illegal.
TRANSITIONS: dict[tuple[State, type[Event], str | None], State] = {
    (S.DRAFT, Submit, "publish"): S.SUBMITTED,
    (S.SUBMITTED, Approve, None): S.APPROVED,
    (S.SUBMITTED, Return, None): S.RETURNED,
    # A returned change is resubmitted as the same change (guard: the pending action).
    (S.RETURNED, Submit, "publish"): S.SUBMITTED,
    (S.RETURNED, Submit, "update"): S.SUBMITTED,
    (S.RETURNED, Submit, "revoke"): S.SUBMITTED,
    # Publication of the approved change (guard: Publish for publish/update, Revoke for revoke).
    (S.APPROVED, Publish, None): S.PUBLISHED,
    (S.APPROVED, Revoke, None): S.REVOKED,
    # A published item takes updates and the revocation through the same review path.
    (S.PUBLISHED, Submit, "update"): S.SUBMITTED,
    (S.PUBLISHED, Submit, "revoke"): S.SUBMITTED,
}


@dataclass(frozen=True)
class Pending:
    """The change under review or approved: what it does, its version, the submission's key."""

    action: Action
    version: int
    serial: tuple[str, str]


# ----------------------------------------------------------------------------- the record


@dataclass
class ItemLifecycle:
    """One knowledge item at HQ: its state, the version recipients hold and the change in review."""

    item_id: str
    owner: str
    state: State = State.DRAFT
    published_version: int = 0
    revoked_version: int | None = None
    pending: Pending | None = None
    returns: int = 0
    opinions: list[str] = field(default_factory=list)
    history: list[tuple[Event, State]] = field(default_factory=list)

    @classmethod
    def for_submission(cls, sub: KnowledgeSubmission) -> ItemLifecycle:
        """A new record for the first submission of an item (its owner is the item's OwnerNode)."""
        return cls(item_id=sub.item.id, owner=sub.item.owner_node)

    def _fits(self, event_type: type[Event], variant: str | None) -> bool:
        """The guard on top of the table: resubmit the returned change; publish what was approved."""
        pending = self.pending
        if self.state is State.RETURNED and event_type is Submit:
            return pending is not None and variant == pending.action.value
        if self.state is State.APPROVED and event_type in (Publish, Revoke):
            is_revoke = pending is not None and pending.action is Action.revoke
            return is_revoke == (event_type is Revoke)
        return True

    def allows(self, event_type: type[Event], variant: str | None = None) -> bool:
        """True when an event of this type and variant is legal now."""
        return (self.state, event_type, variant) in TRANSITIONS and self._fits(event_type, variant)

    def handle(self, event: Event) -> None:
        """Apply one event. ITEM_REVOKED for anything after the revocation, ILLEGAL_TRANSITION otherwise."""
        if self.state is State.REVOKED:
            raise RejectedMessage(
                f"Knowledge item {self.item_id} was revoked at version {self.revoked_version}; it takes no "
                f"{event.describe()}. A revoked item never comes back: create a new item with a new Id.",
                reason=ReasonCode.ITEM_REVOKED, field="ItemId", value=self.item_id,
            )
        new = step(TRANSITIONS, self.state, event, what=f"knowledge item {self.item_id}", allowed=self._fits)
        if isinstance(event, Submit):
            self.pending = Pending(event.action, event.version, event.serial)
        elif isinstance(event, Return):
            self.returns += 1
            self.opinions.append(event.opinion)
        elif isinstance(event, Publish):
            self.published_version = event.version
            self.pending = None
        elif isinstance(event, Revoke):
            self.revoked_version = event.version
            self.pending = None
        self.state = new
        self.history.append((event, new))


# ----------------------------------------------------------------------------- messages -> events


def _unknown(what: str, value: object, field: str, fix: str) -> RejectedMessage:
    return RejectedMessage(f"{what}. {fix}", reason=ReasonCode.UNKNOWN_REFERENCE, field=field, value=value)


def event_for(record: ItemLifecycle, message: KnowledgeSubmission | ReviewResult | KnowledgeDelivery) -> Event:
    """The event a (validated) wire message means for this item, with the checks that need the record.

    Refuses: UNKNOWN_REFERENCE for a message about another item or another submission,
    STALE_VERSION / FIELD_INVALID for a submission whose version does not follow the
    published one (rules.check_submission_version), FIELD_INVALID for an update that
    changes the owner or a delivery whose action differs from the approved change.
    """
    if isinstance(message, KnowledgeSubmission):
        item = message.item
        if item.id != record.item_id:
            raise _unknown(f"The submission is for item {item.id}, not {record.item_id}", item.id, "Item/Id",
                           "Check Item/Id (知识编号).")
        if item.owner_node != record.owner:
            raise rules.F.refuse("Item/OwnerNode", item.owner_node, f"differs from the owner {record.owner!r}",
                                 "An item keeps its owner for life; submit it with the same OwnerNode.")
        if record.allows(Submit, message.action.value):  # else handle() refuses the step itself
            rules.check_submission_version(message, record.published_version)
        return Submit(at=message.submitted_at, action=message.action, version=item.version, serial=message.key)
    pending = record.pending
    if isinstance(message, ReviewResult):
        if message.item_id != record.item_id:
            raise _unknown(f"The review result is for item {message.item_id}, not {record.item_id}",
                           message.item_id, "ItemId", "Check ItemId (知识编号).")
        if pending is not None and (message.submission_key != pending.serial or message.version != pending.version
                                    or message.action is not pending.action):
            raise _unknown(
                f"The review result decides submission {message.submitter_code}/{message.submission_serial_number} "
                f"({message.action.value}, version {message.version}), but the change under review is "
                f"{pending.serial[0]}/{pending.serial[1]} ({pending.action.value}, version {pending.version})",
                message.submission_serial_number, "SubmissionSerialNumber",
                "Answer the latest submission (SubmissionSerialNumber 提交流水号).")
        if message.outcome is ReviewOutcome.approved:
            return Approve(at=message.reviewed_at)
        return Return(at=message.reviewed_at, opinion=message.opinion or "")
    if isinstance(message, KnowledgeDelivery):
        if message.item_id != record.item_id:
            raise _unknown(f"The delivery is for item {message.item_id}, not {record.item_id}",
                           message.item_id, "ItemId", "Check the item's Id (知识编号).")
        if pending is not None and (message.version != pending.version or message.action is not pending.action):
            raise rules.F.refuse(
                "Action", message.action.value,
                f"with version {message.version} does not match the approved change ({pending.action.value}, "
                f"version {pending.version})", "Deliver exactly the version HQ approved.")
        if message.action is Action.revoke:
            return Revoke(at=message.published_at, version=message.version)
        return Publish(at=message.published_at, version=message.version)
    raise TypeError(f"{type(message).__name__} is not a message of the knowledge lifecycle")


# ----------------------------------------------------------------------------- the messages HQ sends


def review_result(sub: KnowledgeSubmission, outcome: ReviewOutcome, *, reviewer: str, at: datetime,
                  opinion: str | None = None) -> ReviewResult:
    """HQ's approval result notification (审批结果通知) for `sub`, to its submitter."""
    return ReviewResult(
        submitter_code=sub.submitter_code, submission_serial_number=sub.serial_number, action=sub.action,
        item_id=sub.item.id, version=sub.item.version, outcome=ReviewOutcome(outcome), opinion=opinion,
        reviewer_at_hq=reviewer, reviewed_at=at,
    )


def delivery_for(sub: KnowledgeSubmission, *, recipients: Iterable[str], reviewer: str,
                 at: datetime) -> KnowledgeDelivery:
    """The delivery (知识下发) of an approved submission to the designated recipients.

    Publish and update carry the item with Status published and the HQ Reviewer; a
    revocation carries the tombstone at the submission's version, with its Note.
    """
    codes = tuple(dict.fromkeys(recipients))
    if sub.action is Action.revoke:
        tombstone = Tombstone(item_id=sub.item.id, version=sub.item.version, owner_node=sub.item.owner_node,
                              revoked_at=at, note=sub.note)
        return KnowledgeDelivery(action=sub.action, recipients=codes, published_at=at, tombstone=tombstone)
    item = sub.item.model_copy(update={"status": KnowledgeStatus.published, "reviewer": reviewer})
    return KnowledgeDelivery(action=sub.action, recipients=codes, published_at=at, item=item)


__all__ = ["Approve", "Event", "ItemLifecycle", "Pending", "Publish", "Return", "Revoke", "State",
           "Submit", "TRANSITIONS", "delivery_for", "event_for", "review_result"]
