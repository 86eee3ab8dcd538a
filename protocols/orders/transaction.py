"""The dispatch/return transaction of seed 001, 5.1, as a sans-I/O state machine (hub's view).

Seed 001, 5.1, "简单交易描述":
  1. originator forms the dispatch order            -> NEW
  2. packs and sends it, marks it "sent"            DispatchSent            -> DISPATCHED
     (the hub forwards it to the receiver)          DispatchForwarded       -> DELIVERED
  3. receiver returns a success mark, unpacks it    DispatchReceiptArrived  -> RECEIVED / REFUSED
  4. receiver forms a return order in time
  5. sends it (first, then final reply)             ReturnSent(first|final) -> FIRST_REPLIED / FINAL_REPLIED
  6. originator returns a success mark              ReturnReceiptArrived    -> CLOSED (on the final reply)

Owns: the states, the events, ONE transition table (TRANSITIONS), the per-order record
(OrderTransaction), the timers the hub must schedule (`deadlines`) and the alarms of
workflow monitoring (工作流监控, `alarm_for`).
Must not: read the clock (every event carries its time; `now` is an argument), schedule
timers, store anything or send anything: the hub feeds events in and sends what comes out.

Overdue is a flag plus alarms, never a state: a late reply still moves the order on and a
late final reply still closes it (domain 3: reply rate 100%; overdue counts are statistics).
DeadlinePassed is legal in every state after dispatch and does nothing once the reply it
watches has come, because timers race with replies. Unlike h11 there is no ERROR state: an
illegal event (a duplicate, an out-of-order mark) is refused on its own and the order
carries on; the sender learns it from the negative acknowledgement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.orders import rules
from protocols.orders.models import (
    HOME,
    AlarmKind,
    DispatchOrder,
    DispatchReceipt,
    OrderAlarm,
    ReceiptStatus,
    ReplyKind,
    ReturnOrder,
    ReturnReceipt,
)

#: Company code of HQ (全国客服中心), told about every alarm (config/nodes.yaml).
HQ_CODE = "00"
#: When the receiver's success mark is due after dispatch unless the caller says otherwise.
#: The seed wants the mark "on arrival" (5.1 step 3); 30 minutes leaves room for a CRM restart.
DEFAULT_RECEIPT_WITHIN = timedelta(minutes=30)


class State(Enum):
    NEW = "NEW"                      # formed by the originator, not yet sent (step 1)
    DISPATCHED = "DISPATCHED"        # the hub has the order from the originator (step 2)
    DELIVERED = "DELIVERED"          # the hub forwarded it to the receiver
    RECEIVED = "RECEIVED"            # the receiver's success mark arrived (step 3)
    FIRST_REPLIED = "FIRST_REPLIED"  # a first reply was sent (steps 4-5)
    FINAL_REPLIED = "FINAL_REPLIED"  # the final reply was sent (steps 4-5)
    CLOSED = "CLOSED"                # the originator's success mark on the final reply (step 6)
    REFUSED = "REFUSED"              # the receiver rejected the order (step 3, rejected)


TERMINAL = frozenset({State.CLOSED, State.REFUSED})


# ----------------------------------------------------------------------------- events


def _utc(at: datetime, what: str) -> datetime:
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise ValueError(f"{what}.at must be a time-zone aware datetime, got {at!r}")
    return at.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of the transaction's events; `at` is when it happened (aware, stored as UTC)."""

    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at, type(self).__name__))

    @property
    def variant(self) -> str | None:
        """The part of the event, besides its type, that selects the transition."""
        return None

    def describe(self) -> str:
        return type(self).__name__ + (f"({self.variant})" if self.variant else "")


@dataclass(frozen=True, kw_only=True)
class DispatchSent(Event):
    """The originator sent the dispatch order (the hub accepted it)."""


@dataclass(frozen=True, kw_only=True)
class DispatchForwarded(Event):
    """The hub forwarded the dispatch order to the receiver (publisher-confirmed)."""


@dataclass(frozen=True, kw_only=True)
class DispatchReceiptArrived(Event):
    """The receiver's success mark (accepted) or rejection for the dispatch order."""

    accepted: bool

    @property
    def variant(self) -> str:
        return "accepted" if self.accepted else "rejected"


@dataclass(frozen=True, kw_only=True)
class ReturnSent(Event):
    """The receiver sent a return order: a first or the final reply."""

    kind: ReplyKind

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kind", ReplyKind(self.kind))

    @property
    def variant(self) -> str:
        return self.kind.value


@dataclass(frozen=True, kw_only=True)
class ReturnReceiptArrived(Event):
    """The originator's success mark (accepted) or rejection for a first or final return order."""

    kind: ReplyKind
    accepted: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kind", ReplyKind(self.kind))

    @property
    def variant(self) -> str:
        return f"{self.kind.value}/{'accepted' if self.accepted else 'rejected'}"


@dataclass(frozen=True, kw_only=True)
class DeadlinePassed(Event):
    """A timer of `deadlines()` fired: a warning time or a deadline has come."""

    kind: AlarmKind

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kind", AlarmKind(self.kind))

    @property
    def variant(self) -> str:
        return self.kind.value


# ----------------------------------------------------------------------------- the table

S = State
_AFTER_DISPATCH = [s for s in State if s is not State.NEW]

#: (state, event type, event variant) -> new state. Anything missing is illegal.
TRANSITIONS: dict[tuple[State, type[Event], str | None], State] = {
    (S.NEW, DispatchSent, None): S.DISPATCHED,
    (S.DISPATCHED, DispatchForwarded, None): S.DELIVERED,
    (S.DELIVERED, DispatchReceiptArrived, "accepted"): S.RECEIVED,
    (S.DELIVERED, DispatchReceiptArrived, "rejected"): S.REFUSED,
    # A final reply may come without a first one (a simple complaint handled at once).
    (S.RECEIVED, ReturnSent, "first"): S.FIRST_REPLIED,
    (S.RECEIVED, ReturnSent, "final"): S.FINAL_REPLIED,
    (S.FIRST_REPLIED, ReturnSent, "final"): S.FINAL_REPLIED,
    # Marks on the first reply keep the order open; a rejected first reply must be sent again.
    (S.FIRST_REPLIED, ReturnReceiptArrived, "first/accepted"): S.FIRST_REPLIED,
    (S.FIRST_REPLIED, ReturnReceiptArrived, "first/rejected"): S.RECEIVED,
    # The mark on the first reply can arrive after the final reply was sent: no change.
    (S.FINAL_REPLIED, ReturnReceiptArrived, "first/accepted"): S.FINAL_REPLIED,
    (S.FINAL_REPLIED, ReturnReceiptArrived, "first/rejected"): S.FINAL_REPLIED,
    (S.FINAL_REPLIED, ReturnReceiptArrived, "final/accepted"): S.CLOSED,
    # A rejected final reply still answered the customer once; the final must be sent again.
    (S.FINAL_REPLIED, ReturnReceiptArrived, "final/rejected"): S.FIRST_REPLIED,
    # Timers: legal whenever a timer can exist, never a change of state (overdue is a flag).
    **{(s, DeadlinePassed, kind.value): s for s in _AFTER_DISPATCH for kind in AlarmKind},
}

#: The states in which each alarm kind is still outstanding (its awaited step has not come).
OUTSTANDING: dict[AlarmKind, frozenset[State]] = {
    AlarmKind.receipt_missing: frozenset({S.DISPATCHED, S.DELIVERED}),
    AlarmKind.first_reply_warning: frozenset({S.DISPATCHED, S.DELIVERED, S.RECEIVED}),
    AlarmKind.first_reply_overdue: frozenset({S.DISPATCHED, S.DELIVERED, S.RECEIVED}),
    AlarmKind.final_reply_warning: frozenset({S.DISPATCHED, S.DELIVERED, S.RECEIVED, S.FIRST_REPLIED}),
    AlarmKind.final_reply_overdue: frozenset({S.DISPATCHED, S.DELIVERED, S.RECEIVED, S.FIRST_REPLIED}),
}

OVERDUE_KINDS = frozenset({AlarmKind.first_reply_overdue, AlarmKind.final_reply_overdue,
                           AlarmKind.receipt_missing})


def next_state(state: State, event: Event) -> State:
    """The state after `event`; ProtocolViolation(ILLEGAL_TRANSITION) naming both if illegal."""
    try:
        return TRANSITIONS[(state, type(event), event.variant)]
    except KeyError:
        allowed = sorted(
            f"{etype.__name__}({variant})" if variant else etype.__name__
            for (s, etype, variant) in TRANSITIONS
            if s is state and etype is not DeadlinePassed
        )
        hint = f"allowed now: {', '.join(allowed)}" if allowed else "the order takes no further messages"
        raise ProtocolViolation(
            f"{event.describe()} is not allowed while the dispatch order is in state {state.name}; {hint}.",
            reason=ReasonCode.ILLEGAL_TRANSITION, value=state.name,
        ) from None


# ----------------------------------------------------------------------------- the record


@dataclass
class OrderTransaction:
    """One dispatch order's transaction as the hub sees it: state, times, overdue flags, alarms.

    `receiver` is the resolved company code the order goes to (rules.resolve_receiver), never
    HOME. Feed events with `handle`; it returns the alarms to send.
    """

    order: DispatchOrder
    receiver: str
    hq: str = HQ_CODE
    receipt_within: timedelta = DEFAULT_RECEIPT_WITHIN
    state: State = State.NEW
    overdue: set[AlarmKind] = field(default_factory=set)
    alarms: list[OrderAlarm] = field(default_factory=list)
    history: list[tuple[Event, State]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.receiver == HOME:
            raise ValueError("receiver must be resolved (rules.resolve_receiver) before the transaction starts")
        if self.receiver == self.order.company_code:
            raise ValueError("receiver and originator are the same company")

    @property
    def key(self) -> tuple[str, str]:
        return self.order.key

    @property
    def originator(self) -> str:
        return self.order.company_code

    @property
    def parties(self) -> tuple[str, ...]:
        """Who hears about an alarm: both companies and HQ (domain 3, workflow monitoring)."""
        return tuple(dict.fromkeys((self.originator, self.receiver, self.hq)))

    @property
    def is_overdue(self) -> bool:
        return bool(self.overdue)

    def time_of(self, state: State) -> datetime | None:
        """When the order last moved into `state` from another state (None if it never did)."""
        found, before = None, State.NEW
        for event, entered in self.history:
            if entered is state and before is not state:
                found = event.at
            before = entered
        return found

    def handle(self, event: Event) -> list[OrderAlarm]:
        """Apply one event; returns the alarms to send (only DeadlinePassed produces any).

        Raises RejectedMessage(UNKNOWN_REFERENCE) for a return order to a closed or refused
        order, ProtocolViolation(ILLEGAL_TRANSITION) for any other illegal event.
        """
        if isinstance(event, ReturnSent) and self.state in TERMINAL:
            raise RejectedMessage(
                f"Dispatch order {self.key[0]}/{self.key[1]} is {self.state.name.lower()}; it takes no "
                "return orders. Check DispatchSerialNumber (派单流水号).",
                reason=ReasonCode.UNKNOWN_REFERENCE, field="DispatchSerialNumber", value=self.key[1],
            )
        new = next_state(self.state, event)
        out: list[OrderAlarm] = []
        if isinstance(event, DeadlinePassed):
            alarm = alarm_for(self, event.kind, event.at)
            if alarm is not None:
                if event.kind in OVERDUE_KINDS:
                    self.overdue.add(event.kind)
                self.alarms.append(alarm)
                out.append(alarm)
        self.state = new
        self.history.append((event, new))
        return out


# ----------------------------------------------------------------------------- timers and alarms


def deadlines(order: DispatchOrder, warn_before: timedelta | None = None, *,
              receipt_within: timedelta | None = None) -> list[tuple[AlarmKind, datetime]]:
    """The timers the hub schedules for an order: [(kind, due_at UTC)], earliest first.

    Overdue timers at FirstReplyDeadline and FinalReplyDeadline; with `warn_before`, early
    warnings that long before each (skipped when they would fall before the dispatch time);
    with `receipt_within`, a receipt_missing timer that long after DispatchTime.
    """
    if warn_before is not None and warn_before <= timedelta(0):
        raise ValueError("warn_before must be positive")
    if receipt_within is not None and receipt_within <= timedelta(0):
        raise ValueError("receipt_within must be positive")
    sent = _utc(order.dispatch_time, "DispatchTime")
    first = _utc(order.first_reply_deadline, "FirstReplyDeadline")
    final = _utc(order.final_reply_deadline, "FinalReplyDeadline")
    timers = [(AlarmKind.first_reply_overdue, first), (AlarmKind.final_reply_overdue, final)]
    if warn_before is not None:
        for kind, deadline in ((AlarmKind.first_reply_warning, first), (AlarmKind.final_reply_warning, final)):
            if deadline - warn_before > sent:
                timers.append((kind, deadline - warn_before))
    if receipt_within is not None:
        timers.append((AlarmKind.receipt_missing, sent + receipt_within))
    order_of = list(AlarmKind)
    return sorted(timers, key=lambda t: (t[1], order_of.index(t[0])))


def deadline_of(tx: OrderTransaction, kind: AlarmKind) -> datetime:
    """The time limit an alarm of `kind` is about (UTC)."""
    if kind is AlarmKind.receipt_missing:
        return _utc(tx.order.dispatch_time, "DispatchTime") + tx.receipt_within
    if kind in (AlarmKind.first_reply_overdue, AlarmKind.first_reply_warning):
        return _utc(tx.order.first_reply_deadline, "FirstReplyDeadline")
    return _utc(tx.order.final_reply_deadline, "FinalReplyDeadline")


def alarm_for(order_state: OrderTransaction, kind: AlarmKind, now: datetime) -> OrderAlarm | None:
    """The alarm to raise when the timer `kind` fires at `now`, or None if nothing is missing.

    None when the awaited step already happened (a timer firing late after the reply
    produces nothing), when the order is closed or refused, and when an overdue timer fires
    before its deadline.
    """
    kind = AlarmKind(kind)
    now = _utc(now, "now")
    if order_state.state not in OUTSTANDING[kind]:
        return None
    deadline = deadline_of(order_state, kind)
    if kind in OVERDUE_KINDS and now < deadline:
        return None
    return OrderAlarm(
        dispatch_company_code=order_state.order.company_code,
        dispatch_serial_number=order_state.order.serial_number,
        kind=kind,
        deadline=deadline,
        raised_at=now,
        parties=order_state.parties,
    )


# ----------------------------------------------------------------------------- messages -> events


def event_for(tx: OrderTransaction, message: DispatchOrder | DispatchReceipt | ReturnOrder | ReturnReceipt,
              *, skew: timedelta = rules.DEFAULT_MAX_FUTURE) -> Event:
    """The event a (validated) wire message means for this transaction.

    Checks what needs the dispatch order: that the message refers to this order
    (UNKNOWN_REFERENCE), comes from the right party and is not dated before the dispatch.
    The event's time is the message's own timestamp.
    """
    order = tx.order
    if isinstance(message, DispatchOrder):
        if message.key != order.key:
            raise RejectedMessage(
                f"Dispatch order {message.key[0]}/{message.key[1]} is not {order.key[0]}/{order.key[1]}.",
                reason=ReasonCode.UNKNOWN_REFERENCE, field="SerialNumber", value=message.serial_number,
            )
        return DispatchSent(at=message.dispatch_time)
    if isinstance(message, ReturnOrder):
        rules.check_return_against_dispatch(message, order, tx.receiver, skew=skew)
        return ReturnSent(at=message.reply_time, kind=message.reply_kind)
    if isinstance(message, DispatchReceipt):
        rules.check_receipt_against_dispatch(message, order, tx.receiver, skew=skew)
        return DispatchReceiptArrived(at=message.received_time,
                                      accepted=message.status is ReceiptStatus.accepted)
    if isinstance(message, ReturnReceipt):
        rules.check_receipt_against_dispatch(message, order, tx.receiver, skew=skew)
        return ReturnReceiptArrived(at=message.received_time, kind=message.reply_kind,
                                    accepted=message.status is ReceiptStatus.accepted)
    raise TypeError(f"{type(message).__name__} is not a message of the dispatch/return transaction")


def find_transaction(transactions: Mapping[tuple[str, str], OrderTransaction],
                     message: ReturnOrder | DispatchReceipt | ReturnReceipt) -> OrderTransaction:
    """The open transaction a reply or mark refers to; UNKNOWN_REFERENCE if unknown or closed.

    `transactions` is whatever the caller holds (a dict in tests, a view over the store in
    the hub), keyed by (originator company code, serial number).
    """
    tx = transactions.get(message.key)
    if tx is None or (isinstance(message, ReturnOrder) and tx.state in TERMINAL):
        what = "unknown" if tx is None else tx.state.name.lower()
        raise RejectedMessage(
            f"{type(message).__name__} refers to dispatch order {message.key[0]}/{message.key[1]}, which is "
            f"{what}. Check DispatchCompanyCode (派单公司编号) and DispatchSerialNumber (派单流水号).",
            reason=ReasonCode.UNKNOWN_REFERENCE, field="DispatchSerialNumber", value=message.key[1],
        )
    return tx
