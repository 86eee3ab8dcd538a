"""The state store's tables: one SQLAlchemy Core definition for SQLite and PostgreSQL.

Owns: table and index definitions, the UTC timestamp column type, and SCHEMA_VERSION (the
number a later migration step compares with the `schema_version` table).
Must not: open connections, run queries or hold dialect-specific SQL (engine.py decides
how to connect, journal.py and timers.py how to query).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, UserDefinedType

#: Bump together with a migration step whenever a table below changes.
SCHEMA_VERSION = 1


class _SQLiteTimestamp(UserDefinedType):
    """Fixed-width UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' on SQLite: compares as time does."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "DATETIME"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on both databases.

    SQLite has no time zone type, PostgreSQL returns timestamptz in the session's zone;
    normalising here keeps comparisons such as `due_at <= now` right on both and refuses
    naive datetimes instead of guessing a zone. On SQLite the text is formatted here with
    isoformat (the same layout SQLAlchemy's DateTime writes): SQLAlchemy's own formatter
    costs about 4 us a value, a third of a 200-row journal batch.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteTimestamp())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the state store; pass an aware UTC datetime")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def process_result_value(self, value: datetime | str | None, dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite; also reads CURRENT_TIMESTAMP's 'YYYY-MM-DD HH:MM:SS'
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False, server_default=func.now()),
)

#: One row per message id: the idempotent-receiver set and the audit trail's head.
journal = Table(
    "journal",
    metadata,
    Column("message_id", String(128), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("business_key", String(256)),
    Column("correlation_id", String(128)),
    Column("status", String(16), nullable=False),
    Column("destinations", JSONDoc, nullable=False),
    Column("route_id", String(128)),
    Column("config_version", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("reason_code", String(32)),
    Column("error", Text),
    Column("duplicates", Integer, nullable=False, server_default="0"),
    # Hops recorded so far: numbers the next hops from a primary-key lookup of this row.
    Column("hop_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_journal_business_key", "business_key"),
    Index("ix_journal_correlation_id", "correlation_id"),
    # No index on status on purpose: it has six values, and PostgreSQL without statistics
    # yet (a fresh table) chose it for known_message_ids and scanned every delivered row.
)

#: Append-only delivery steps of a message, numbered per message from 1 (journal.hop_count).
journal_hops = Table(
    "journal_hops",
    metadata,
    # No foreign key to journal on purpose: record() writes the journal row first in the same
    # transaction, and a per-row constraint check costs the hot path for nothing. Whoever
    # prunes the journal deletes the hops too.
    Column("message_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("destination", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("detail", Text),
)

#: First message id to claim a business key owns it; later ids carrying it are duplicates.
business_keys = Table(
    "business_keys",
    metadata,
    Column("business_key", String(256), primary_key=True),
    Column("message_id", String(128), nullable=False),
    # Informational (retention); filled by the database clock, never compared.
    Column("claimed_at", UTCDateTime, nullable=False, server_default=func.now()),
)

#: Durable one-shot timers; a row is pending until fired_at is set.
timers = Table(
    "timers",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("due_at", UTCDateTime, nullable=False),
    Column("payload", JSONDoc, nullable=False),
    Column("claimed_by", String(128)),
    Column("lease_until", UTCDateTime),
    Column("claims", Integer, nullable=False, server_default="0"),
    Column("fired_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
)

Index(
    "ix_timers_pending_due",
    timers.c.due_at,
    postgresql_where=timers.c.fired_at.is_(None),
    sqlite_where=timers.c.fired_at.is_(None),
)


# ----------------------------------------------------------------------------- knowledge and announcements
# Written by hub/flows/knowledge.py and hub/flows/announcements.py through hub/store/knowledge.py
# (docs/knowledge.md). New tables only: create_all adds them to an existing store, so
# SCHEMA_VERSION stays.

#: One row per knowledge item at HQ: its lifecycle (protocols.knowledge.lifecycle), the change
#: under review, and the published version or the tombstone with its designated recipients.
knowledge_items = Table(
    "knowledge_items",
    metadata,
    Column("item_id", String(40), primary_key=True),
    Column("owner", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("published_version", Integer, nullable=False, server_default="0"),
    Column("revoked_version", Integer),
    Column("pending_action", String(8)),
    Column("pending_version", Integer),
    Column("pending_company", String(8)),
    Column("pending_serial", String(32)),
    Column("returns", Integer, nullable=False, server_default="0"),
    Column("item_json", JSONDoc),        # the published KnowledgeItem (wire names), None until published
    Column("tombstone_json", JSONDoc),   # the Tombstone once revoked
    Column("recipients", JSONDoc),       # the designated recipients of the last delivery
    Column("published_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: Version sync state: per recipient and item, the version delivered and the version confirmed,
#: and the tombstone's version once revoked. Both versions only ever go up.
knowledge_sync = Table(
    "knowledge_sync",
    metadata,
    Column("recipient", String(8), primary_key=True),
    Column("item_id", String(40), primary_key=True),
    Column("delivered", Integer, nullable=False, server_default="0"),
    Column("confirmed", Integer, nullable=False, server_default="0"),
    Column("revoked", Integer),
    Column("delivered_at", UTCDateTime),
    Column("confirmed_at", UTCDateTime),
    Index("ix_knowledge_sync_item", "item_id"),
)

#: The fan-out of each delivered version (protocols.knowledge.fanout): one row per recipient.
knowledge_receipts = Table(
    "knowledge_receipts",
    metadata,
    Column("item_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("recipient", String(8), primary_key=True),
    Column("status", String(12), nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("answered_at", UTCDateTime),
    Column("refusal_code", String(32)),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
)

#: A province's feedback at HQ (protocols.knowledge.feedback).
knowledge_feedback = Table(
    "knowledge_feedback",
    metadata,
    Column("company", String(8), primary_key=True),
    Column("feedback_id", String(32), primary_key=True),
    Column("item_id", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("disposition", String(16)),
    Column("owner", String(8)),
    Column("update_version", Integer),
    Column("update_company", String(8)),
    Column("update_serial", String(32)),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: One announcement at HQ (protocols.announcements.transaction) and its latest content.
announcements = Table(
    "announcements",
    metadata,
    Column("announcement_id", String(40), primary_key=True),
    Column("originator", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("pending_company", String(8)),
    Column("pending_serial", String(32)),
    Column("returns", Integer, nullable=False, server_default="0"),
    Column("recipients", JSONDoc, nullable=False),
    Column("announcement_json", JSONDoc, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: One recipient's reply to an announcement that asks for replies.
announcement_replies = Table(
    "announcement_replies",
    metadata,
    Column("announcement_id", String(40), primary_key=True),
    Column("company", String(8), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("serial", String(32)),
    Column("replied_at", UTCDateTime),
    Column("returns", Integer, nullable=False, server_default="0"),
)

#: HQ's knowledge structure (知识结构, protocols.knowledge.structure): one row, the latest tree.
knowledge_structure = Table(
    "knowledge_structure",
    metadata,
    Column("id", String(8), primary_key=True),      # always "hq"
    Column("version", Integer, nullable=False),
    Column("tree_json", JSONDoc, nullable=False),    # the CategoryTree as HQ sent it (no MountPoint)
    Column("updated_at", UTCDateTime, nullable=False),
)

#: Per recipient: the structure version delivered and confirmed (both only go up), and the
#: MountPoint (挂载点) its last sync request named, under which pushed trees are hung.
knowledge_structure_sync = Table(
    "knowledge_structure_sync",
    metadata,
    Column("recipient", String(8), primary_key=True),
    Column("delivered", Integer, nullable=False, server_default="0"),
    Column("confirmed", Integer, nullable=False, server_default="0"),
    Column("mount_point", String(40)),
    Column("delivered_at", UTCDateTime),
    Column("confirmed_at", UTCDateTime),
)

#: The messages the knowledge and announcement flows applied (write-ahead, by message id), so a
#: message that comes back after a failed broker commit is not applied twice; also their history.
sharing_steps = Table(
    "sharing_steps",
    metadata,
    Column("message_id", String(128), primary_key=True),
    Column("subject", String(80), nullable=False),   # "item/<id>", "feedback/<company>/<id>", "announcement/<id>"
    Column("event", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_sharing_steps_subject", "subject"),
)
