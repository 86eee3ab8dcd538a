"""Fan-out of one approved version to its recipients, with every receipt tracked (pure).

Owns: `FanOut`, the record HQ keeps for one delivered version (an item's publish, update
or revocation): the designated recipients (provinces and the second-line platform), per
recipient whether the delivery went out, whether the recipient confirmed or rejected it,
and when; ONE transition table per recipient (RECIPIENT_TRANSITIONS); the outstanding
receipts, the overdue ones (data for the hub's timers) and the rejections an operator must
look at. Every exchange is acknowledged (seed 001 ch. 5): a fan-out is complete when every
recipient has confirmed the version or holds something newer.
Must not: read the clock, send, retry or store; the hub marks a recipient delivered when
its publisher confirm (or its SOAP call) succeeds and feeds receipts as they come.

A rejection with RefusalCode STALE_VERSION or ITEM_REVOKED means the recipient already
holds a newer version or the tombstone (protocols.knowledge.versions): the version is
SUPERSEDED for it, which counts as done. When HQ publishes the next version, the previous
fan-out's open recipients are superseded too (`supersede`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from protocols.errors import ReasonCode, RejectedMessage
from protocols.knowledge.machine import Event, step, utc
from protocols.knowledge.models import Action, DeliveryReceipt, KnowledgeDelivery, ReceiptStatus


class RecipientStatus(Enum):
    PENDING = "PENDING"          # not yet handed to the recipient's queue or CRM
    DELIVERED = "DELIVERED"      # handed over (publisher confirm / SOAP response); receipt awaited
    CONFIRMED = "CONFIRMED"      # the recipient's success mark (成功标记)
    REJECTED = "REJECTED"        # the recipient rejected it for a reason that needs an operator
    SUPERSEDED = "SUPERSEDED"    # the recipient holds a newer version or the tombstone


@dataclass(frozen=True, kw_only=True)
class Delivered(Event):
    """The delivery was handed to the recipient (first time, a retry, or a re-send after a sync)."""


@dataclass(frozen=True, kw_only=True)
class ReceiptArrived(Event):
    """The recipient's receipt: accepted, rejected, or rejected because it holds something newer."""

    outcome: str  # "accepted" | "rejected" | "superseded"

    @property
    def variant(self) -> str:
        return self.outcome


@dataclass(frozen=True, kw_only=True)
class Superseded(Event):
    """HQ published a newer version of the item; this one need not be confirmed any more."""


R = RecipientStatus
_OUTCOMES = ("accepted", "rejected", "superseded")
_ANSWER = {"accepted": R.CONFIRMED, "rejected": R.REJECTED, "superseded": R.SUPERSEDED}

#: Per recipient: (status, event type, variant) -> new status. Anything missing is illegal.
RECIPIENT_TRANSITIONS: dict[tuple[RecipientStatus, type[Event], str | None], RecipientStatus] = {
    (R.PENDING, Delivered, None): R.DELIVERED,
    # A receipt can overtake the publisher confirm that marks the delivery.
    **{(R.PENDING, ReceiptArrived, o): _ANSWER[o] for o in _OUTCOMES},
    **{(R.DELIVERED, ReceiptArrived, o): _ANSWER[o] for o in _OUTCOMES},
    (R.DELIVERED, Delivered, None): R.DELIVERED,        # a retry
    (R.REJECTED, Delivered, None): R.DELIVERED,         # re-sent after the cause was fixed
    # Repeated marks and re-sends after a confirmation change nothing; nor does a duplicate
    # of this version that reached the recipient after a newer one (it answers "stale").
    (R.CONFIRMED, ReceiptArrived, "accepted"): R.CONFIRMED,
    (R.CONFIRMED, ReceiptArrived, "superseded"): R.CONFIRMED,
    (R.CONFIRMED, Delivered, None): R.CONFIRMED,
    (R.REJECTED, ReceiptArrived, "rejected"): R.REJECTED,
    # Marks still in flight when a newer version superseded this one: an acceptance is recorded.
    (R.SUPERSEDED, ReceiptArrived, "accepted"): R.CONFIRMED,
    (R.SUPERSEDED, ReceiptArrived, "rejected"): R.SUPERSEDED,
    (R.SUPERSEDED, ReceiptArrived, "superseded"): R.SUPERSEDED,
    (R.SUPERSEDED, Delivered, None): R.SUPERSEDED,
    # A newer version ends the wait for this one wherever it was not confirmed.
    (R.PENDING, Superseded, None): R.SUPERSEDED,
    (R.DELIVERED, Superseded, None): R.SUPERSEDED,
    (R.REJECTED, Superseded, None): R.SUPERSEDED,
    (R.CONFIRMED, Superseded, None): R.CONFIRMED,
    (R.SUPERSEDED, Superseded, None): R.SUPERSEDED,
}

#: Refusal codes that mean "I hold something newer" rather than "something is wrong".
SUPERSEDING_CODES = frozenset({ReasonCode.STALE_VERSION.value, ReasonCode.ITEM_REVOKED.value})
OPEN = frozenset({R.PENDING, R.DELIVERED})


@dataclass
class RecipientRecord:
    """One recipient of a fan-out."""

    status: RecipientStatus = RecipientStatus.PENDING
    delivered_at: datetime | None = None
    answered_at: datetime | None = None
    refusal_code: str | None = None
    reason: str | None = None
    attempts: int = 0


@dataclass
class FanOut:
    """One approved version on its way to every designated recipient."""

    item_id: str
    version: int
    action: Action
    recipients: dict[str, RecipientRecord] = field(default_factory=dict)

    @classmethod
    def start(cls, item_id: str, version: int, action: Action, recipients: Iterable[str]) -> FanOut:
        records = {code: RecipientRecord() for code in dict.fromkeys(recipients)}
        if not records:
            raise ValueError("a fan-out needs at least one recipient")
        return cls(item_id=item_id, version=version, action=Action(action), recipients=records)

    @classmethod
    def for_delivery(cls, delivery: KnowledgeDelivery) -> FanOut:
        return cls.start(delivery.item_id, delivery.version, delivery.action, delivery.recipients)

    def _apply(self, code: str, event: Event) -> RecipientStatus:
        record = self.recipients.get(code)
        if record is None:
            raise RejectedMessage(
                f"{code!r} is not a recipient of {self.item_id} version {self.version}; the recipients are "
                f"{', '.join(self.recipients)}.",
                reason=ReasonCode.UNKNOWN_REFERENCE, field="CompanyCode", value=code,
            )
        record.status = step(RECIPIENT_TRANSITIONS, record.status, event,
                             what=f"the delivery of {self.item_id} version {self.version} to {code}")
        return record.status

    def delivered(self, code: str, at: datetime) -> RecipientStatus:
        """Record that the delivery was handed to `code` (a first send, a retry or a re-send)."""
        status = self._apply(code, Delivered(at=at))
        record = self.recipients[code]
        record.attempts += 1
        record.delivered_at = utc(at, "at")
        return status

    def receipt(self, receipt: DeliveryReceipt) -> RecipientStatus:
        """Record a recipient's (validated) receipt; UNKNOWN_REFERENCE for another item or version."""
        if (receipt.item_id, receipt.version) != (self.item_id, self.version):
            raise RejectedMessage(
                f"The receipt confirms {receipt.item_id} version {receipt.version}, not {self.item_id} "
                f"version {self.version}. Check ItemId (知识编号) and Version (版本号).",
                reason=ReasonCode.UNKNOWN_REFERENCE, field="Version", value=receipt.version,
            )
        if receipt.receipt_status is ReceiptStatus.accepted:
            outcome = "accepted"
        elif receipt.refusal_code in SUPERSEDING_CODES:
            outcome = "superseded"
        else:
            outcome = "rejected"
        status = self._apply(receipt.company_code, ReceiptArrived(at=receipt.received_at, outcome=outcome))
        record = self.recipients[receipt.company_code]
        record.answered_at = utc(receipt.received_at, "ReceivedAt")
        record.refusal_code, record.reason = receipt.refusal_code, receipt.reason
        return status

    def supersede(self, at: datetime) -> tuple[str, ...]:
        """A newer version was published: stop waiting for this one. Returns the recipients released."""
        released = tuple(code for code, r in self.recipients.items() if r.status in OPEN | {R.REJECTED})
        for code in self.recipients:
            self._apply(code, Superseded(at=at))
        return released

    # ------------------------------------------------------------------------- queries

    def with_status(self, *statuses: RecipientStatus) -> tuple[str, ...]:
        return tuple(code for code, r in self.recipients.items() if r.status in statuses)

    def outstanding(self) -> tuple[str, ...]:
        """Recipients whose receipt has not come (pending or delivered), in recipient order."""
        return self.with_status(*OPEN)

    def rejected(self) -> tuple[str, ...]:
        """Recipients that rejected the version for a reason an operator must look at."""
        return self.with_status(R.REJECTED)

    def overdue(self, now: datetime, within: timedelta) -> tuple[str, ...]:
        """Delivered recipients whose receipt is more than `within` late at `now` (for alarms)."""
        now = utc(now, "now")
        return tuple(code for code, r in self.recipients.items()
                     if r.status is R.DELIVERED and r.delivered_at is not None and r.delivered_at + within <= now)

    @property
    def complete(self) -> bool:
        """Every recipient confirmed this version or holds something newer."""
        return all(r.status in (R.CONFIRMED, R.SUPERSEDED) for r in self.recipients.values())

    def summary(self) -> dict[str, int]:
        """How many recipients are in each status (for the console and metrics)."""
        counts = {status.name: 0 for status in RecipientStatus}
        for record in self.recipients.values():
            counts[record.status.name] += 1
        return counts
