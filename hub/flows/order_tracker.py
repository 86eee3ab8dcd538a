"""The order tracker's tables and queries: every dispatch order's state, steps and statistics.

Owns: the `orders` and `order_steps` tables (SQLAlchemy Core, SQLite and PostgreSQL, in the
hub's state store next to the journal and the timers), creating them, reading orders in
batches, writing what the orders flow decided, and the read side for operators: one order
with its steps (`hub orders show`) and the statistics per province and day
(`hub orders stats`; the console shows the same `ProvinceDay` records).
Must not: decide anything about an order (hub/flows/orders.py feeds the protocol's state
machine and writes the result here), open its own engine, or read the clock.

Times: `dispatch_time`, `received_at`, `first_replied_at`, `final_replied_at` and
`closed_at` are the senders' business timestamps (DispatchTime, ReceivedTime, ReplyTime),
which the service levels are about; `accepted_at`, `delivered_at` and the steps'
`recorded_at` are the hub's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    false,
    select,
    text,
    tuple_,
    update,
)

from hub.store import JSONDoc, Store, UTCDateTime
from protocols.orders.models import AlarmKind, DispatchOrder
from protocols.orders.transaction import HQ_CODE, OrderTransaction, State

#: Serialises concurrent table creation of several hub processes on PostgreSQL.
_PG_TABLES_LOCK = 0x6373_6875_6202  # "cshub" + 2
CHUNK = 500

metadata = MetaData()

#: One row per dispatch order, keyed like the protocol: (originator, serial number).
orders = Table(
    "orders",
    metadata,
    Column("originator", String(8), primary_key=True),
    Column("serial", String(32), primary_key=True),
    Column("receiver", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("message_id", String(128), nullable=False),   # of the dispatch order
    Column("category", String(32), nullable=False),
    Column("dispatch_time", UTCDateTime, nullable=False),
    Column("first_deadline", UTCDateTime, nullable=False),
    Column("final_deadline", UTCDateTime, nullable=False),
    Column("receipt_due_at", UTCDateTime, nullable=False),  # when a missing mark becomes an alarm
    Column("accepted_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("received_at", UTCDateTime),
    Column("first_replied_at", UTCDateTime),
    Column("final_replied_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("refused_at", UTCDateTime),
    Column("first_overdue", Boolean, nullable=False, server_default=false()),
    Column("final_overdue", Boolean, nullable=False, server_default=false()),
    Column("receipt_overdue", Boolean, nullable=False, server_default=false()),
    Column("resends", Integer, nullable=False, server_default="0"),
    Column("order_json", Text, nullable=False),           # the canonical DispatchOrder
    Column("resend_body", LargeBinary),                   # the bytes the receiver got, its encoding
    Column("resend_props", JSONDoc),                      # and the properties, for a byte-identical re-send
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_orders_dispatch_time", "dispatch_time"),
)

#: Append-only history: each event the order went through, and the message that caused it.
order_steps = Table(
    "order_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("originator", String(8), nullable=False),
    Column("serial", String(32), nullable=False),
    Column("event", String(64), nullable=False),
    Column("state", String(16), nullable=False),          # the state after the event
    Column("at", UTCDateTime, nullable=False),            # the event's own time
    Column("recorded_at", UTCDateTime, nullable=False),   # the hub's clock
    Column("message_id", String(128)),
    Index("ix_order_steps_order", "originator", "serial", "id"),
    Index("ix_order_steps_message_id", "message_id"),
)

_OVERDUE_COLUMN = {
    AlarmKind.first_reply_overdue: "first_overdue",
    AlarmKind.final_reply_overdue: "final_overdue",
    AlarmKind.receipt_missing: "receipt_overdue",
}
OVERDUE_COLUMNS = tuple(_OVERDUE_COLUMN.values())


def overdue_column(kind: AlarmKind) -> str | None:
    return _OVERDUE_COLUMN.get(AlarmKind(kind))


def ensure_tables(store: Store) -> None:
    """Create the tracker's tables if missing (idempotent; safe with several hub processes)."""
    with store.transaction(write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_TABLES_LOCK})
        metadata.create_all(conn)


# ----------------------------------------------------------------------------- rows


Key = tuple[str, str]


@dataclass
class TrackedOrder:
    """An `orders` row as read back."""

    originator: str
    serial: str
    receiver: str
    state: State
    message_id: str
    category: str
    dispatch_time: datetime
    first_deadline: datetime
    final_deadline: datetime
    receipt_due_at: datetime
    accepted_at: datetime
    delivered_at: datetime | None
    received_at: datetime | None
    first_replied_at: datetime | None
    final_replied_at: datetime | None
    closed_at: datetime | None
    refused_at: datetime | None
    first_overdue: bool
    final_overdue: bool
    receipt_overdue: bool
    resends: int
    order_json: str
    resend_body: bytes | None
    resend_props: dict | None
    updated_at: datetime

    @property
    def key(self) -> Key:
        return (self.originator, self.serial)

    @property
    def overdue(self) -> set[AlarmKind]:
        return {kind for kind, col in _OVERDUE_COLUMN.items() if getattr(self, col)}

    def order(self) -> DispatchOrder:
        return DispatchOrder.model_validate_json(self.order_json)

    def transaction(self, hq: str = HQ_CODE) -> OrderTransaction:
        """The protocol's view of this order, to feed events to."""
        return OrderTransaction(
            order=self.order(), receiver=self.receiver, hq=hq,
            receipt_within=self.receipt_due_at - self.dispatch_time,
            state=self.state, overdue=self.overdue,
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for k in ("order_json", "resend_body", "resend_props"):
            data.pop(k)
        data["state"] = self.state.name
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}


def _tracked(row) -> TrackedOrder:
    data = dict(row._mapping)
    data["state"] = State(data["state"])
    return TrackedOrder(**data)


def load(conn: Connection, keys: Iterable[Key], *, for_update: bool = False) -> dict[Key, TrackedOrder]:
    """The orders of `keys` (unknown ones are absent), one statement per CHUNK keys.

    `for_update` locks the rows on PostgreSQL until the transaction ends (SQLite's writer
    lock, taken at BEGIN IMMEDIATE, already serialises writers).
    """
    wanted = list(dict.fromkeys(keys))
    found: dict[Key, TrackedOrder] = {}
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i:i + CHUNK]
        stmt = select(orders).where(tuple_(orders.c.originator, orders.c.serial).in_(chunk))
        if for_update and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        for row in conn.execute(stmt):
            t = _tracked(row)
            found[t.key] = t
    return found


def applied_message_ids(conn: Connection, message_ids: Iterable[str]) -> set[str]:
    """The message ids that already moved an order (a step written ahead of a broker commit
    that then failed: the message comes back and must be accepted again, not refused)."""
    wanted = list(dict.fromkeys(message_ids))
    found: set[str] = set()
    for i in range(0, len(wanted), CHUNK):
        rows = conn.execute(select(order_steps.c.message_id).where(
            order_steps.c.message_id.in_(wanted[i:i + CHUNK])))
        found.update(r[0] for r in rows)
    return found


def receiver(conn: Connection, key: Key) -> str | None:
    row = conn.execute(select(orders.c.receiver).where(
        orders.c.originator == key[0], orders.c.serial == key[1])).first()
    return row[0] if row else None


def insert_orders(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(orders.insert(), rows)


def update_order(conn: Connection, key: Key, changes: Mapping[str, Any]) -> None:
    update_orders(conn, {key: changes})


@cache
def _update_statement(columns: tuple[str, ...]):
    return (update(orders)
            .where(orders.c.originator == bindparam("k_originator"), orders.c.serial == bindparam("k_serial"))
            .values({c: bindparam(c) for c in columns}))


def update_orders(conn: Connection, changes: Mapping[Key, Mapping[str, Any]]) -> None:
    """Apply each order's column changes; one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, cols in changes.items():
        if cols:
            groups.setdefault(tuple(sorted(cols)), []).append(
                {**cols, "k_originator": key[0], "k_serial": key[1]})
    for columns, rows in groups.items():
        conn.execute(_update_statement(columns), rows)


def insert_steps(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(order_steps.insert(), rows)


def step_row(key: Key, event: str, state: State, at: datetime, recorded_at: datetime,
             message_id: str | None) -> dict[str, Any]:
    return {"originator": key[0], "serial": key[1], "event": event[:64], "state": state.value,
            "at": at, "recorded_at": recorded_at, "message_id": message_id}


# ----------------------------------------------------------------------------- read side


@dataclass(frozen=True)
class Step:
    event: str
    state: str
    at: datetime
    recorded_at: datetime
    message_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "state": self.state, "at": self.at.isoformat(),
                "recorded_at": self.recorded_at.isoformat(), "message_id": self.message_id}


@dataclass
class OrderView:
    """One order for an operator: the row, its steps, and its timers (key -> due, fired)."""

    order: TrackedOrder
    steps: list[Step]
    timers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        timers = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in t.items()}
                  for t in self.timers]
        return {"order": self.order.as_dict(), "steps": [s.as_dict() for s in self.steps], "timers": timers}


def get_order(store: Store, key: Key) -> OrderView | None:
    with store.transaction(write=False) as conn:
        found = load(conn, [key]).get(key)
        if found is None:
            return None
        steps = [Step(r.event, r.state, r.at, r.recorded_at, r.message_id) for r in conn.execute(
            select(order_steps).where(order_steps.c.originator == key[0], order_steps.c.serial == key[1])
            .order_by(order_steps.c.id))]
    return OrderView(found, steps)


@dataclass
class ProvinceDay:
    """Statistics of one company for one calendar day (orders counted by their DispatchTime).

    sent: orders it dispatched; received: orders dispatched to it; first_replied /
    final_replied: of the received, those with a first answer (a first or the final reply)
    and with the final reply; reply_rate: final_replied / received; avg_first_reply_s and
    avg_final_reply_s: mean seconds from DispatchTime to the first answer / the final
    reply; overdue: received orders with an overdue reply or a missing success mark;
    refused: received orders it rejected.
    """

    company: str
    day: str
    sent: int = 0
    received: int = 0
    first_replied: int = 0
    final_replied: int = 0
    closed: int = 0
    overdue: int = 0
    refused: int = 0
    reply_rate: float | None = None
    avg_first_reply_s: float | None = None
    avg_final_reply_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_REPLIED = {State.FINAL_REPLIED, State.CLOSED}


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in `zone`, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def daily_stats(store: Store, day: date, zone: ZoneInfo) -> list[ProvinceDay]:
    """Per company, the statistics of the orders dispatched on `day` (a calendar day in `zone`)."""
    start, end = day_bounds(day, zone)
    cols = orders.c
    with store.transaction(write=False) as conn:
        rows = conn.execute(select(
            cols.originator, cols.receiver, cols.state, cols.dispatch_time, cols.first_replied_at,
            cols.final_replied_at, *(cols[c] for c in OVERDUE_COLUMNS),
        ).where(cols.dispatch_time >= start, cols.dispatch_time < end)).all()
    stats: dict[str, ProvinceDay] = {}
    first_times: dict[str, list[float]] = {}
    final_times: dict[str, list[float]] = {}

    def of(code: str) -> ProvinceDay:
        if code not in stats:
            stats[code] = ProvinceDay(code, day.isoformat())
        return stats[code]

    for r in rows:
        of(r.originator).sent += 1
        s = of(r.receiver)
        s.received += 1
        state = State(r.state)
        replied = state in _REPLIED
        first = r.first_replied_at or (r.final_replied_at if replied else None)
        if first is not None:
            s.first_replied += 1
            first_times.setdefault(r.receiver, []).append((first - r.dispatch_time).total_seconds())
        if replied and r.final_replied_at is not None:
            s.final_replied += 1
            final_times.setdefault(r.receiver, []).append((r.final_replied_at - r.dispatch_time).total_seconds())
        s.closed += state is State.CLOSED
        s.refused += state is State.REFUSED
        s.overdue += any(getattr(r, c) for c in OVERDUE_COLUMNS)
    for code, s in stats.items():
        if s.received:
            s.reply_rate = round(s.final_replied / s.received, 4)
        if first_times.get(code):
            s.avg_first_reply_s = round(fmean(first_times[code]), 1)
        if final_times.get(code):
            s.avg_final_reply_s = round(fmean(final_times[code]), 1)
    return [stats[c] for c in sorted(stats)]
