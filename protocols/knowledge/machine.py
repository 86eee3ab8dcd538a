"""The plumbing every seed-003 conversation shares: events and the transition-table lookup.

Owns: the Event base (frozen, aware time stored as UTC, an optional variant that selects
the transition) and `step`, the one lookup in a transition table that refuses a missing
entry with ProtocolViolation(ILLEGAL_TRANSITION) naming the event, the state and the
events allowed now. Each conversation (protocols.knowledge.lifecycle, .feedback, .fanout,
protocols.announcements.transaction) keeps its own states, events and ONE table.
Must not: hold any conversation's states or rules, read the clock, or do I/O.

Like protocols.orders.transaction there is no ERROR state: an illegal event is refused on
its own and the conversation carries on; the sender learns it from the negative
acknowledgement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TypeVar

from protocols.errors import ProtocolViolation, ReasonCode

S = TypeVar("S", bound=Enum)
#: A transition table: (state, event type, event variant or None) -> new state.
Table = Mapping[tuple[S, type["Event"], str | None], S]


def utc(at: object, what: str) -> datetime:
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise ValueError(f"{what} must be a time-zone aware datetime, got {at!r}")
    return at.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of the conversations' events; `at` is when it happened (aware, stored as UTC)."""

    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at, f"{type(self).__name__}.at"))

    @property
    def variant(self) -> str | None:
        """The part of the event, besides its type, that selects the transition."""
        return None

    def describe(self) -> str:
        return type(self).__name__ + (f"({self.variant})" if self.variant else "")


def label(event_type: type[Event], variant: str | None) -> str:
    return f"{event_type.__name__}({variant})" if variant else event_type.__name__


def step(table: Table, state: S, event: Event, *, what: str,
         allowed: Callable[[type[Event], str | None], bool] | None = None) -> S:
    """The state after `event`; ProtocolViolation(ILLEGAL_TRANSITION) naming both if illegal.

    `what` names the conversation in the message ("the knowledge item KN-..."). `allowed`,
    when given, is a guard the record applies on top of the table (an entry that exists
    but does not fit the record's data); it also filters the events listed as allowed.
    """
    key = (state, type(event), event.variant)
    if key in table and (allowed is None or allowed(type(event), event.variant)):
        return table[key]
    now = sorted(label(etype, variant) for (s, etype, variant) in table
                 if s is state and (allowed is None or allowed(etype, variant)))
    hint = f"allowed now: {', '.join(now)}" if now else "it takes no further messages"
    raise ProtocolViolation(
        f"{event.describe()} is not allowed while {what} is in state {state.name}; {hint}.",
        reason=ReasonCode.ILLEGAL_TRANSITION, value=state.name,
    )
