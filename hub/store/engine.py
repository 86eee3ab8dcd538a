"""Opening the state store: engine, connection settings, schema check, and the Store facade.

Owns: turning a store URL into an Engine (SQLite file in WAL mode with busy_timeout and
BEGIN IMMEDIATE for writes; PostgreSQL through psycopg with a bounded, pre-pinged pool),
creating the tables and checking `schema_version` on open, the one place where database
outages become TransientFailure(STORE_UNAVAILABLE), and Store, which holds the engine and
gives each journal/timer call its own transaction.
Must not: hold SQL beyond connection setup and the schema check (journal.py and timers.py
do), read the clock, or retry: a failed call raises and the hub's retry tiers decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from hub.store import journal as _journal
from hub.store import retention as _retention
from hub.store import timers as _timers
from hub.store.errors import store_unavailable
from hub.store.hot_path import HotPath
from hub.store.journal import Hop, JournalEntry, JournalRecord
from hub.store.schema import SCHEMA_VERSION, metadata, schema_version
from hub.store.timers import Timer
from protocols.errors import ConfigError

#: How long a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5_000
#: Serialises concurrent schema creation of several hub processes on PostgreSQL.
_PG_SCHEMA_LOCK = 0x6373_6875_6201  # "cshub" + 1


@contextmanager
def translate_errors() -> Iterator[None]:
    """Database outages (connection refused, lock timeout, pool exhausted) are transient."""
    try:
        yield
    except (OperationalError, PoolTimeoutError) as exc:
        raise store_unavailable(exc) from exc


def _sqlite_engine(url) -> Engine:
    db = url.database or ""
    if db and db != ":memory:" and not db.startswith("file:"):
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy's "begin" event below, not pysqlite, decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes can fail with SQLITE_BUSY without waiting when another writer got in first.
        write = conn.get_execution_options().get("hub_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgresql_engine(url) -> Engine:
    # Custom plans always: psycopg prepares a statement after 5 runs and PostgreSQL may then
    # settle on a generic plan made while the tables were small or unanalysed (a sequential
    # scan for `message_id IN (...)`) and keep it as the journal grows: batches went from
    # 4 ms to 100+ ms in the benchmark. Planning these short queries each time is cheap.
    options = " ".join(filter(None, [*_as_tuple(url.query.get("options")), "-c plan_cache_mode=force_custom_plan"]))
    return create_engine(
        url.update_query_dict({"options": options}),
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        pool_pre_ping=True,  # a restarted PostgreSQL costs one failed ping, not a failed batch
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "cs-hub"},
    )


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def create_store_engine(url: str) -> Engine:
    """An Engine for a store URL: sqlite:///PATH or postgresql+psycopg://..."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql_engine(parsed)
    raise ConfigError(
        f"Unsupported state store URL scheme {parsed.drivername!r}; use sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST/DB.",
        file="store_url",
    )


def ensure_schema(conn: Connection) -> None:
    """Create missing tables and record or check the schema version (inside a write tx)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
    metadata.create_all(conn)
    found = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())).first()
    if found is None:
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    elif found[0] != SCHEMA_VERSION:
        raise ConfigError(
            f"The state store has schema version {found[0]} but this hub expects {SCHEMA_VERSION}; "
            "run the hub version that matches the database, or migrate it.",
            file="store_url",
        )


class HeldConnection:
    """Write transactions of one thread on one Connection it keeps, instead of a pool checkout each.

    For a thread that commits many small transactions a second (the SMPP engine's round):
    checkout, the "begin" event and return cost ~160 us a transaction on SQLite, as much as
    the writes. Same rules as Store._tx (BEGIN IMMEDIATE on SQLite, outages as
    TransientFailure); after an outage the connection is dropped and the next transaction
    opens a new one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with translate_errors():
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                self.close()
                self._conn = self.engine.connect()
                self._conn.execution_options(hub_write=True)
            try:
                with self._conn.begin():
                    yield self._conn
            except OperationalError:
                self.close()
                raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: S110 - a broken connection; the pool discards it
                pass


class Store:
    """The state store of one hub process: each method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Connection]:
        with translate_errors(), self.engine.connect() as conn:
            if write:
                conn.execution_options(hub_write=True)
            with conn.begin():
                yield conn

    def transaction(self, *, write: bool = True):
        """One transaction for a caller that keeps its own tables in this store (a flow's tracker).

        Same rules as every Store call: writers take the write lock up front (SQLite BEGIN
        IMMEDIATE), database outages come out as TransientFailure(STORE_UNAVAILABLE).
        """
        return self._tx(write=write)

    # journal (hot path)
    def hot_path(self) -> HotPath:
        """A held connection for one thread's per-batch calls (the hop's dedupe, the journal writer)."""
        return HotPath(self.engine)

    def held(self) -> HeldConnection:
        """Write transactions on a connection kept by the calling thread (see HeldConnection)."""
        return HeldConnection(self.engine)

    def known_message_ids(self, ids: Iterable[str]) -> set[str]:
        with self._tx(write=False) as conn:
            return _journal.known_message_ids(conn, ids)

    def claim_business_keys(self, pairs: Iterable[tuple[str, str]]) -> set[str]:
        with self._tx(write=True) as conn:
            return _journal.claim_business_keys(conn, pairs)

    def claim_business_key_owners(self, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        with self._tx(write=True) as conn:
            return _journal.claim_business_key_owners(conn, pairs)

    def release_business_keys(self, pairs: Iterable[tuple[str, str]]) -> int:
        with self._tx(write=True) as conn:
            return _journal.release_business_keys(conn, pairs)

    def record(self, entries: Sequence[JournalEntry]) -> None:
        if not entries:
            return
        with self._tx(write=True) as conn:
            _journal.record(conn, entries)

    def append_hops(self, hops: Sequence[tuple[str, Hop]]) -> set[str]:
        """Later steps of journaled messages (adapters); returns the ids that have no journal row."""
        if not hops:
            return set()
        with self._tx(write=True) as conn:
            return _journal.append_hops(conn, hops)

    # journal (read side)
    def get(self, message_id: str) -> JournalRecord | None:
        with self._tx(write=False) as conn:
            return _journal.get(conn, message_id)

    def search(self, text: str, limit: int = 50) -> list[JournalRecord]:
        with self._tx(write=False) as conn:
            return _journal.search(conn, text, limit)

    def count_by_status(self) -> dict[str, int]:
        with self._tx(write=False) as conn:
            return _journal.count_by_status(conn)

    # timers
    def schedule(self, key: str, due_at: datetime, payload: dict[str, Any], *, replace: bool = False) -> bool:
        with self._tx(write=True) as conn:
            return _timers.schedule(conn, key, due_at, payload, replace=replace)

    def cancel(self, key: str) -> bool:
        with self._tx(write=True) as conn:
            return _timers.cancel(conn, key)

    def claim_due(self, now: datetime, owner: str, limit: int = 100, lease_s: float = 30.0) -> list[Timer]:
        with self._tx(write=True) as conn:
            return _timers.claim_due(conn, now, owner, limit, lease_s)

    def mark_fired(self, keys: Iterable[str], *, owner: str | None = None,
                   at: datetime | None = None) -> set[str]:
        with self._tx(write=True) as conn:
            return _timers.mark_fired(conn, keys, owner=owner, at=at)

    def get_timer(self, key: str) -> Timer | None:
        with self._tx(write=False) as conn:
            return _timers.get_timer(conn, key)

    # retention (hub/store/retention.py)
    def prune(self, before: datetime, *, batch: int = 5000,
              progress: Callable[[_retention.Pruned], None] | None = None) -> _retention.Pruned:
        """Delete old final journal rows, their hops, old key claims and fired timers, batch by batch."""
        if before.tzinfo is None:
            raise ValueError("prune needs an aware UTC cut-off")
        pruned = _retention.Pruned()
        for step in _retention.BATCHES:
            while True:
                with self._tx(write=True) as conn:
                    n = step(conn, before, batch, pruned)
                pruned.batches += 1
                if progress is not None:
                    progress(pruned)
                if n < batch:
                    break
        return pruned

    def count_prunable(self, before: datetime) -> dict[str, int]:
        with self._tx(write=False) as conn:
            return _retention.count_prunable(conn, before)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str) -> Store:
    """Connect, create missing tables, check the schema version; the Store is ready to use."""
    engine = create_store_engine(url)
    store = Store(engine)
    try:
        with store._tx(write=True) as conn:
            ensure_schema(conn)
    except BaseException:
        engine.dispose()
        raise
    return store
