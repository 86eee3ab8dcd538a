"""The NMS interface table and the feed's fault states, in SQLAlchemy Core (SQLite and PostgreSQL).

Owns: the columns of the operator's interface table as docs/nms.md defines them (the NMS
inserts; the feed only sets consumed, consumed_at and consume_note), the feed's own state
table beside it, reading the oldest unconsumed rows, and the one transaction that stores the
new fault states and marks rows consumed.
Must not: decide anything about a row (protocols.nms.faults) or talk to the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)
from sqlalchemy.engine import Engine

from protocols.nms.faults import FaultState, RowKind, Severity

ROW_ID = BigInteger().with_variant(Integer, "sqlite")   # SQLite autoincrements INTEGER PRIMARY KEY only


def interface_table(metadata: MetaData, name: str) -> Table:
    return Table(
        name, metadata,
        Column("row_id", ROW_ID, primary_key=True, autoincrement=True, comment="NMS: ascending row number"),
        Column("fault_id", String(64), nullable=False, comment="NMS fault or cut-over ticket"),
        Column("kind", String(16), nullable=False, comment="raised | updated | cleared | cutover"),
        Column("severity", String(16), nullable=True, comment="critical | major | minor | warning"),
        Column("region_code", String(32), nullable=True, comment="NMS region (informational)"),
        Column("province_codes", String(200), nullable=True, comment="affected provinces, comma-separated"),
        Column("title", String(200), nullable=True),
        Column("text", Text, nullable=True),
        Column("occurred_at", DateTime, nullable=False, comment="UTC"),
        Column("consumed", Boolean, nullable=False, default=False, server_default="0"),
        Column("consumed_at", DateTime, nullable=True, comment="UTC, set by the hub"),
        Column("consume_note", String(200), nullable=True, comment="what the hub did with the row"),
        Index(f"ix_{name}_unconsumed", "consumed", "row_id"),
    )


def state_table(metadata: MetaData, name: str) -> Table:
    return Table(
        name, metadata,
        Column("fault_id", String(64), primary_key=True),
        Column("occurrence", Integer, nullable=False),
        Column("revision", Integer, nullable=False),
        Column("open", Boolean, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("severity", String(16), nullable=False),
        Column("provinces", String(200), nullable=False),
        Column("title", String(200), nullable=False),
        Column("text", Text, nullable=False),
        Column("started_at", DateTime, nullable=False),
        Column("ended_at", DateTime, nullable=True),
        Column("updated_at", DateTime, nullable=False),
    )


def _naive(dt: datetime | None) -> datetime | None:
    return None if dt is None else dt.astimezone(UTC).replace(tzinfo=None)


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC))


class FeedTables:
    def __init__(self, engine: Engine, table: str, states: str) -> None:
        self.engine = engine
        self.metadata = MetaData()
        self.rows = interface_table(self.metadata, table)
        self.states = state_table(self.metadata, states)

    def create(self, interface: bool = False) -> None:
        """The state table (always ours); the interface table too when asked (tests, demos)."""
        tables = [self.states] + ([self.rows] if interface else [])
        self.metadata.create_all(self.engine, tables=tables)

    def unconsumed(self, limit: int) -> list[dict]:
        with self.engine.connect() as conn:
            result = conn.execute(select(self.rows).where(self.rows.c.consumed.is_(False))
                                  .order_by(self.rows.c.row_id).limit(limit))
            return [dict(r._mapping) for r in result]

    def load(self, fault_ids: Iterable[str]) -> dict[str, FaultState]:
        ids = sorted(set(fault_ids))
        if not ids:
            return {}
        with self.engine.connect() as conn:
            result = conn.execute(select(self.states).where(self.states.c.fault_id.in_(ids)))
            return {r.fault_id: FaultState(
                r.fault_id, r.occurrence, r.revision, bool(r.open), RowKind(r.kind), Severity(r.severity),
                tuple(p for p in r.provinces.split(",") if p), r.title, r.text, _aware(r.started_at),
                _aware(r.ended_at)) for r in result}

    def commit(self, states: dict[str, FaultState], known: set[str], marks: list[tuple[int, str]],
               now: datetime) -> None:
        """One transaction: new fault states, then the rows marked consumed with their notes."""
        at = _naive(now)

        def values(s: FaultState) -> dict:
            return {"occurrence": s.occurrence, "revision": s.revision, "open": s.open, "kind": s.kind.value,
                    "severity": s.severity.value, "provinces": ",".join(s.provinces), "title": s.title,
                    "text": s.text, "started_at": _naive(s.started_at), "ended_at": _naive(s.ended_at),
                    "updated_at": at}
        with self.engine.begin() as conn:
            old = [{"k_fault_id": fid, **values(s)} for fid, s in states.items() if fid in known]
            new = [{"fault_id": fid, **values(s)} for fid, s in states.items() if fid not in known]
            if old:
                conn.execute(update(self.states).where(self.states.c.fault_id == bindparam("k_fault_id")), old)
            if new:
                conn.execute(self.states.insert(), new)
            if marks:
                conn.execute(update(self.rows).where(self.rows.c.row_id == bindparam("k_row_id"))
                             .values(consumed=True, consumed_at=at, consume_note=bindparam("k_note")),
                             [{"k_row_id": rid, "k_note": note[:200]} for rid, note in marks])
