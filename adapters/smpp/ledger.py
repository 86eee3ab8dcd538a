"""The SMPP adapter's durable state, in the hub's state store: what was submitted, what came back.

Owns: five tables next to the journal (SQLAlchemy Core, SQLite and PostgreSQL) and their
queries, written in one transaction per round of the adapter's loop (`Changes`):

    smpp_messages  one row per sms.send that reached the SMSC: who asked, to whom, its final status
    smpp_parts     one row per accepted part: the SMSC's message id (and its canonical form),
                   the part's last receipt state; a part with a row is never sent again
    smpp_receipts  receipts that matched nothing yet (pending) or within the grace (unknown)
    smpp_outbox    sms.status and sms.mo messages decided but not yet confirmed by the broker
    smpp_surveys   per customer number, the last satisfaction survey sent (who sent it)

So a restart loses nothing: open messages and their parts go back into the correlator,
waiting receipts are matched when their submit turns up, and the outbox is published again
(message ids are derived from the business id, so a receiver sees a re-publication as the
same message).
Must not: decide anything (the engine does, with protocols/smpp), or read the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from hub.store import JSONDoc, Store, UTCDateTime
from hub.store.journal import executemany

metadata = MetaData()

messages = Table(
    "smpp_messages", metadata,
    Column("business_ref", String(128), primary_key=True),   # the sms.send's message_id
    Column("node", String(16), nullable=False),               # who asked (x-hub-source)
    Column("destination", String(32), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("reference", String(64)),
    Column("total_parts", Integer, nullable=False),
    Column("smsc", String(32), nullable=False),
    Column("status", String(16)),                             # None while open
    Column("created_at", UTCDateTime, nullable=False),
    Column("final_at", UTCDateTime),
    Index("ix_smpp_messages_open", "status"),
)

parts = Table(
    "smpp_parts", metadata,
    Column("business_ref", String(128), primary_key=True),
    Column("part_index", Integer, primary_key=True),
    Column("smsc", String(32), nullable=False),
    Column("message_id", String(65), nullable=False),         # as the SMSC wrote it in submit_sm_resp
    Column("id_key", String(65), nullable=False),             # protocols.smpp.receipts.normalise_message_id
    Column("state", Integer),                                 # MessageState of the last receipt
    Column("error", String(64)),
    Column("accepted_at", UTCDateTime, nullable=False),
    Index("ix_smpp_parts_id_key", "id_key"),
)

receipts = Table(
    "smpp_receipts", metadata,
    Column("id", String(32), primary_key=True),
    Column("smsc", String(32), nullable=False),
    Column("message_id", String(65), nullable=False),
    Column("state", Integer, nullable=False),
    Column("stat", String(32)),
    Column("error", String(64)),
    Column("other_ids", JSONDoc, nullable=False),
    Column("text", Text),
    Column("status", String(16), nullable=False),             # pending | unknown
    Column("ambiguous", JSONDoc, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_smpp_receipts_status", "status"),
)

outbox = Table(
    "smpp_outbox", metadata,
    Column("id", String(160), primary_key=True),               # the AMQP message_id it is published with
    Column("exchange", String(64), nullable=False),
    Column("routing_key", String(128), nullable=False),
    Column("props", JSONDoc, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

surveys = Table(
    "smpp_surveys", metadata,
    Column("destination", String(32), primary_key=True),
    Column("node", String(16), nullable=False),
    Column("message_id", String(128), nullable=False),
    Column("reference", String(64)),
    Column("sent_at", UTCDateTime, nullable=False),
)


def _insert(dialect: str, table: Table):
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@dataclass
class Changes:
    """Everything one round of the engine wrote, committed in one transaction."""

    # tuples in the column order of Ledger._sql (times through Ledger.ts)
    messages: list[tuple] = field(default_factory=list)      # insert, ignore if present
    parts: list[tuple] = field(default_factory=list)         # insert or replace
    part_states: list[tuple] = field(default_factory=list)   # state, error, business_ref, part_index
    finals: list[tuple] = field(default_factory=list)        # status, final_at, business_ref
    receipts: list[dict] = field(default_factory=list)       # insert
    receipts_gone: list[str] = field(default_factory=list)   # matched at last: delete
    receipts_unknown: list[str] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    outbox_done: list[str] = field(default_factory=list)
    surveys: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.messages, self.parts, self.part_states, self.finals, self.receipts,
                    self.receipts_gone, self.receipts_unknown, self.outbox, self.outbox_done, self.surveys))


@dataclass(frozen=True)
class OpenMessage:
    business_ref: str
    node: str
    destination: str
    purpose: str
    reference: str | None
    total_parts: int
    smsc: str
    status: str | None
    parts: dict[int, tuple[str, str, int | None, str | None]]   # index -> (smsc, message_id, state, error)


class Ledger:
    """The adapter's tables in one Store; every method is one short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction(write=True) as conn:
            metadata.create_all(conn)
        self._held = store.held()  # commit() is called by the engine thread only
        self.dialect = store.engine.dialect.name
        # The four statements of every SMS go to the driver as they are (executemany of tuples):
        # SQLAlchemy's per-row parameter processing cost more than the database at 2,000 SMS/s.
        p = "?" if self.dialect == "sqlite" else "%s"
        self._sql = {
            "messages": f"INSERT INTO smpp_messages (business_ref, node, destination, purpose, reference, total_parts, "
                        f"smsc, created_at) VALUES ({', '.join([p] * 8)}) ON CONFLICT (business_ref) DO NOTHING",
            "parts": f"INSERT INTO smpp_parts (business_ref, part_index, smsc, message_id, id_key, accepted_at) "
                     f"VALUES ({', '.join([p] * 6)}) ON CONFLICT (business_ref, part_index) DO UPDATE SET "
                     "smsc = excluded.smsc, message_id = excluded.message_id, id_key = excluded.id_key, "
                     "accepted_at = excluded.accepted_at",
            "part_states": f"UPDATE smpp_parts SET state = {p}, error = {p} WHERE business_ref = {p} AND part_index = {p}",
            "finals": f"UPDATE smpp_messages SET status = {p}, final_at = {p} WHERE business_ref = {p}",
        }
        # Built once: hub.store.journal.executemany caches the compiled form per statement object.
        self._receipts_insert = receipts.insert()
        self._outbox_insert = _insert(self.dialect, outbox).on_conflict_do_nothing()

    def ts(self, value: datetime):
        """A time as the driver takes it for a UTCDateTime column (see hub/store/schema.py)."""
        if self.dialect == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    # -- the engine's round

    def commit(self, c: Changes) -> None:
        if not c:
            return
        with self._held.transaction() as conn:
            for key in ("messages", "parts", "part_states", "finals"):
                rows = getattr(c, key)
                if rows:
                    conn.exec_driver_sql(self._sql[key], rows)
            if c.receipts:
                executemany(conn, self._receipts_insert, c.receipts)
            if c.receipts_gone:
                conn.execute(delete(receipts).where(receipts.c.id.in_(c.receipts_gone)))
            if c.receipts_unknown:
                conn.execute(update(receipts).where(receipts.c.id.in_(c.receipts_unknown)).values(status="unknown"))
            if c.outbox:
                executemany(conn, self._outbox_insert, c.outbox)
            if c.outbox_done:
                conn.execute(delete(outbox).where(outbox.c.id.in_(c.outbox_done)))
            if c.surveys:
                ins = _insert(self.dialect, surveys)
                conn.execute(ins.on_conflict_do_update(
                    index_elements=["destination"],
                    set_={k: ins.excluded[k] for k in ("node", "message_id", "reference", "sent_at")}), c.surveys)

    def close(self) -> None:
        """Give back the engine's held connection (after the engine thread stopped)."""
        self._held.close()

    # -- reads

    def messages_by_ref(self, refs: Iterable[str]) -> dict[str, OpenMessage]:
        """The recorded state of these business messages (those never accepted are absent)."""
        refs = list(dict.fromkeys(refs))
        if not refs:
            return {}
        with self.store.transaction(write=False) as conn:
            rows = conn.execute(select(messages).where(messages.c.business_ref.in_(refs))).all()
            prows = conn.execute(select(parts).where(parts.c.business_ref.in_(refs))).all()
        return self._assemble(rows, prows)

    def open_messages(self) -> dict[str, OpenMessage]:
        """Messages without a final status, with their parts (for the correlator after a restart)."""
        with self.store.transaction(write=False) as conn:
            rows = conn.execute(select(messages).where(messages.c.status.is_(None))).all()
            prows = conn.execute(select(parts).join(messages, parts.c.business_ref == messages.c.business_ref)
                                 .where(messages.c.status.is_(None))).all()
        return self._assemble(rows, prows)

    @staticmethod
    def _assemble(rows, prows) -> dict[str, OpenMessage]:
        by_ref: dict[str, dict] = {}
        for p in prows:
            by_ref.setdefault(p.business_ref, {})[p.part_index] = (p.smsc, p.message_id, p.state, p.error)
        return {r.business_ref: OpenMessage(r.business_ref, r.node, r.destination, r.purpose, r.reference,
                                            r.total_parts, r.smsc, r.status, by_ref.get(r.business_ref, {}))
                for r in rows}

    def waiting_receipts(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Receipts that matched nothing: pending and unknown, or one of them; oldest first."""
        q = select(receipts).order_by(receipts.c.received_at)
        if status is not None:
            q = q.where(receipts.c.status == status)
        if limit is not None:
            q = q.limit(limit)
        with self.store.transaction(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def outbox_rows(self) -> list[dict[str, Any]]:
        with self.store.transaction(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(select(outbox).order_by(outbox.c.created_at))]

    def survey_for(self, destination: str) -> dict[str, Any] | None:
        with self.store.transaction(write=False) as conn:
            row = conn.execute(select(surveys).where(surveys.c.destination == destination)).first()
        return dict(row._mapping) if row else None

    def counts(self) -> dict[str, int]:
        """Figures for `hub smpp status`."""
        with self.store.transaction(write=False) as conn:
            by_status = dict(conn.execute(select(messages.c.status, func.count()).group_by(messages.c.status)).all())
            waiting = dict(conn.execute(select(receipts.c.status, func.count()).group_by(receipts.c.status)).all())
            pending_out = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
        return {"open": by_status.pop(None, 0), **{str(k): v for k, v in by_status.items()},
                "receipts_pending": waiting.get("pending", 0), "receipts_unknown": waiting.get("unknown", 0),
                "outbox": pending_out}
