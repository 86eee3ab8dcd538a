"""The SOAP adapter's delivery records, in the hub's state store.

Owns: the table `soap_deliveries`, one row per call of a CRM (message, node, attempt: what
the CRM answered or why the call failed, and what became of the message), and the queries
`hub soap status` shows. The hub's journal stays the hub's: the adapter does not rewrite a
message's journal row (its destinations and status belong to the hop that routed it).
Must not: decide anything, open its own engine or read the clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, func, select, text

from hub.store import Store, UTCDateTime

_PG_TABLES_LOCK = 0x6373_6875_6209  # "cshub" + 9

metadata = MetaData()

deliveries = Table(
    "soap_deliveries",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column("node", String(8), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("type", String(100), nullable=False),
    Column("source", String(8)),
    Column("correlation_id", String(200)),
    # delivered | duplicate | retrying | dead_lettered
    Column("outcome", String(16), nullable=False),
    Column("reason_code", String(40)),
    Column("detail", Text),
    Column("elapsed_ms", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_soap_deliveries_node_at", "node", "at"),
)


@dataclass(frozen=True)
class Delivery:
    message_id: str
    node: str
    attempt: int
    type: str
    outcome: str
    elapsed_ms: int
    at: datetime
    source: str | None = None
    correlation_id: str | None = None
    reason_code: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = self.at.isoformat()
        return d


def ensure_tables(store: Store) -> None:
    """Create the table if missing (idempotent; safe with several processes)."""
    with store.transaction(write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_TABLES_LOCK})
        metadata.create_all(conn)


def save(store: Store, rec: Delivery) -> None:
    """Record one call; a second record of the same (message, node, attempt) replaces the first
    (the broker gave the message back before the adapter's ack reached it)."""
    row = asdict(rec)
    with store.transaction(write=True) as conn:
        conn.execute(deliveries.delete().where(deliveries.c.message_id == rec.message_id,
                                               deliveries.c.node == rec.node, deliveries.c.attempt == rec.attempt))
        conn.execute(deliveries.insert(), [row])


def of_message(store: Store, message_id: str) -> list[Delivery]:
    with store.transaction(write=False) as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.message_id == message_id)
                            .order_by(deliveries.c.node, deliveries.c.attempt))
        return [Delivery(**row._mapping) for row in rows]


def recent(store: Store, *, node: str | None = None, limit: int = 50) -> list[Delivery]:
    q = select(deliveries).order_by(deliveries.c.at.desc()).limit(limit)
    if node is not None:
        q = q.where(deliveries.c.node == node)
    with store.transaction(write=False) as conn:
        return [Delivery(**row._mapping) for row in conn.execute(q)]


def counts(store: Store) -> dict[tuple[str, str], int]:
    """(node, outcome) -> calls."""
    q = select(deliveries.c.node, deliveries.c.outcome, func.count()).group_by(deliveries.c.node,
                                                                                deliveries.c.outcome)
    with store.transaction(write=False) as conn:
        return {(n, o): k for n, o, k in conn.execute(q)}
