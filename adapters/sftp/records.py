"""Transfer records and the alarm log of the SFTP adapter, in the hub's state store.

Owns: the tables `sftp_transfers` (one row per file per direction per node: its facts,
protocol state, attempts, resume point, marks) and `sftp_alarms` (each late-report or
transfer alarm raised once), created on the Store's engine like the hub's own tables
(SQLAlchemy Core, SQLite and PostgreSQL), and the queries the adapter needs: idempotence
by content (node, direction, name, SHA-256), versions of a name, the reports HQ received.
Must not: decide anything (adapters/sftp/service.py feeds the protocol machine and writes
the result here), open its own engine or read the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.store import JSONDoc, Store, UTCDateTime

#: Serialises concurrent table creation of several processes on PostgreSQL.
_PG_TABLES_LOCK = 0x6373_6875_6208  # "cshub" + 8

metadata = MetaData()

transfers = Table(
    "sftp_transfers",
    metadata,
    Column("key", String(1100), primary_key=True),      # direction:node:remote path
    Column("node", String(8), nullable=False),           # the node this adapter acted for
    Column("direction", String(8), nullable=False),      # upload | download
    Column("kind", String(16), nullable=False),          # report | document | file
    Column("sender", String(8), nullable=False),
    Column("base_name", String(255), nullable=False),    # the name without its version
    Column("version", Integer, nullable=False),
    Column("remote_path", String(1024), nullable=False),
    Column("local_path", String(1024), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("mtime_ns", BigInteger),                      # uploads: the local file's when it was hashed
    Column("report_type", String(32)),
    Column("period", String(8)),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("done", BigInteger, nullable=False, server_default="0"),
    Column("resumed_from", BigInteger, nullable=False, server_default="0"),
    Column("reason_code", String(40)),
    Column("error", Text),
    Column("marks", JSONDoc, nullable=False),            # receiver code -> ISO time of its success mark
    Column("sent_at", UTCDateTime),                      # the sender's mark time
    Column("completed_at", UTCDateTime),                 # SENT (upload) or MARKED (download)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_sftp_transfers_content", "node", "direction", "base_name", "sha256"),
    Index("ix_sftp_transfers_local", "node", "direction", "local_path"),
    Index("ix_sftp_transfers_state", "state", "node"),
)

alarms = Table(
    "sftp_alarms",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("payload", JSONDoc, nullable=False),
)


@dataclass(frozen=True)
class TransferRecord:
    key: str
    node: str
    direction: str
    kind: str
    sender: str
    base_name: str
    version: int
    remote_path: str
    local_path: str
    size: int
    sha256: str
    state: str
    created_at: datetime
    updated_at: datetime
    mtime_ns: int | None = None
    report_type: str | None = None
    period: str | None = None
    attempts: int = 0
    done: int = 0
    resumed_from: int = 0
    reason_code: str | None = None
    error: str | None = None
    marks: dict[str, str] = field(default_factory=dict)
    sent_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.remote_path.rsplit("/", 1)[-1]

    def evolve(self, **changes: Any) -> TransferRecord:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
        return d


def ensure_tables(store: Store) -> None:
    """Create the adapter's tables if missing (idempotent; safe with several processes)."""
    with store.transaction(write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_TABLES_LOCK})
        metadata.create_all(conn)


def _insert(conn: Connection, table: Table):
    """INSERT with ON CONFLICT for the store's dialect (SQLite or PostgreSQL)."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def _record(row) -> TransferRecord:
    return TransferRecord(**{c.name: getattr(row, c.name) for c in transfers.columns})


def get(store: Store, key: str) -> TransferRecord | None:
    with store.transaction(write=False) as conn:
        row = conn.execute(select(transfers).where(transfers.c.key == key)).first()
    return _record(row) if row else None


def save(store: Store, rec: TransferRecord) -> None:
    """Insert or replace the record (one row per key)."""
    values = {c.name: getattr(rec, c.name) for c in transfers.columns}
    with store.transaction(write=True) as conn:
        ins = _insert(conn, transfers).values(**values)
        conn.execute(ins.on_conflict_do_update(index_elements=["key"],
                                               set_={k: ins.excluded[k] for k in values if k != "key"}))


def by_local_file(store: Store, node: str, local_path: str, size: int, mtime_ns: int) -> TransferRecord | None:
    """An upload recorded for this local file while it had this size and mtime (no need to hash it again)."""
    c = transfers.c
    with store.transaction(write=False) as conn:
        row = conn.execute(select(transfers).where(and_(
            c.node == node, c.direction == "upload", c.local_path == local_path, c.size == size,
            c.mtime_ns == mtime_ns)).limit(1)).first()
    return _record(row) if row else None


def latest_version(store: Store, node: str, direction: str, base_name: str) -> int:
    c = transfers.c
    with store.transaction(write=False) as conn:
        found = conn.execute(select(func.max(c.version)).where(and_(
            c.node == node, c.direction == direction, c.base_name == base_name))).scalar()
    return int(found or 0)


def in_states(store: Store, states: Iterable[str], *, node: str | None = None,
              direction: str | None = None, limit: int = 1000) -> list[TransferRecord]:
    c = transfers.c
    cond = [c.state.in_(list(states))]
    if node is not None:
        cond.append(c.node == node)
    if direction is not None:
        cond.append(c.direction == direction)
    with store.transaction(write=False) as conn:
        rows = conn.execute(select(transfers).where(and_(*cond)).order_by(c.updated_at.desc()).limit(limit))
        return [_record(r) for r in rows]


def recent(store: Store, *, node: str | None = None, limit: int = 50) -> list[TransferRecord]:
    c = transfers.c
    stmt = select(transfers).order_by(c.updated_at.desc(), c.key).limit(limit)
    if node is not None:
        stmt = stmt.where(c.node == node)
    with store.transaction(write=False) as conn:
        return [_record(r) for r in conn.execute(stmt)]


def counts(store: Store) -> dict[tuple[str, str, str], int]:
    """(node, direction, state) -> number of transfers."""
    c = transfers.c
    with store.transaction(write=False) as conn:
        rows = conn.execute(select(c.node, c.direction, c.state, func.count()).group_by(c.node, c.direction, c.state))
        return {(n, d, s): k for n, d, s, k in rows}


def received_reports(store: Store, receiver: str) -> set[tuple[str, str, str]]:
    """(report type, sending province, period) of every report `receiver` fetched, verified and marked."""
    c = transfers.c
    with store.transaction(write=False) as conn:
        rows = conn.execute(select(c.report_type, c.sender, c.period).where(and_(
            c.node == receiver, c.direction == "download", c.kind == "report", c.state == "marked")))
        return {(r, s, p) for r, s, p in rows if r and p}


def claim_alarm(store: Store, key: str, kind: str, at: datetime, payload: dict[str, Any]) -> bool:
    """Record that the alarm `key` is raised; False when it was raised before (raise it once)."""
    with store.transaction(write=True) as conn:
        return _claim(conn, key, kind, at, payload)


def _claim(conn: Connection, key: str, kind: str, at: datetime, payload: dict[str, Any]) -> bool:
    stmt = _insert(conn, alarms).values(key=key, kind=kind, raised_at=at, payload=payload)
    return conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]).returning(alarms.c.key)).first() is not None


def release_alarm(store: Store, key: str) -> None:
    """Forget an alarm whose event could not be published, so the next check raises it again."""
    with store.transaction(write=True) as conn:
        conn.execute(alarms.delete().where(alarms.c.key == key))


def alarms_raised(store: Store, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    stmt = select(alarms).order_by(alarms.c.raised_at.desc()).limit(limit)
    if kind is not None:
        stmt = stmt.where(alarms.c.kind == kind)
    with store.transaction(write=False) as conn:
        return [{"key": r.key, "kind": r.kind, "raised_at": r.raised_at.isoformat(), **(r.payload or {})}
                for r in conn.execute(stmt)]
