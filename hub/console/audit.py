"""The console's audit trail: who did what to which message, when, and how it ended.

Owns: the `console_audit` table (in the hub's state store, beside the journal; created
like the order tracker's tables, idempotently), writing one row per action and message,
and reading the latest rows. Never holds a password, a token or a payload.
Must not: decide whether an action is allowed (app.py does) or perform it (deadletters.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, insert, select, text

from hub.store import Store, UTCDateTime

_PG_TABLES_LOCK = 0x6373_6875_6206  # "cshub" + 6 (issue 6)

metadata = MetaData()

console_audit = Table(
    "console_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("who", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),       # replay | discard | login | login_failed
    Column("message_id", String(128)),
    Column("dlq_key", String(32)),
    Column("outcome", String(32), nullable=False),      # replayed | discarded | no_route | failed | ok
    Column("detail", Text),                             # discard reason, replay target, error sentence
    Index("ix_console_audit_at", "at"),
    Index("ix_console_audit_message_id", "message_id"),
)


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    who: str
    role: str
    action: str
    message_id: str | None
    dlq_key: str | None
    outcome: str
    detail: str | None

    def as_dict(self) -> dict:
        return {"at": self.at.isoformat(), "who": self.who, "role": self.role, "action": self.action,
                "message_id": self.message_id, "dlq_key": self.dlq_key, "outcome": self.outcome,
                "detail": self.detail}


def ensure_tables(store: Store) -> None:
    with store.transaction(write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_TABLES_LOCK})
        metadata.create_all(conn)


def record(store: Store, rows: list[AuditRow]) -> None:
    if not rows:
        return
    with store.transaction(write=True) as conn:
        conn.execute(insert(console_audit), [
            {"at": r.at, "who": r.who, "role": r.role, "action": r.action, "message_id": r.message_id,
             "dlq_key": r.dlq_key, "outcome": r.outcome, "detail": (r.detail or None) and r.detail[:2000]}
            for r in rows])


def latest(store: Store, limit: int = 200, message_id: str | None = None) -> list[AuditRow]:
    c = console_audit.c
    stmt = select(console_audit).order_by(c.id.desc()).limit(limit)
    if message_id:
        stmt = stmt.where(c.message_id == message_id)
    with store.transaction(write=False) as conn:
        return [AuditRow(r.at, r.who, r.role, r.action, r.message_id, r.dlq_key, r.outcome, r.detail)
                for r in conn.execute(stmt)]
