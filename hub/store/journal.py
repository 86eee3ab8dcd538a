"""The message journal, the idempotent-receiver set and business-key dedupe.

Owns: the journal's data types (JournalStatus, Hop, JournalEntry, JournalRecord) and the
queries on `journal`, `journal_hops` and `business_keys`, each a function of an open
Connection so the caller decides the transaction. Hot-path functions cost a fixed few
statements (executemany for writes, IN lists of at most CHUNK ids for reads) per batch.
Must not: open connections or transactions, read the clock, translate errors (engine.py
does both), or decide what a duplicate means for routing (the hub does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from itertools import islice, repeat
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.store.schema import business_keys, journal, journal_hops

#: Most ids in one IN list (well under SQLite's and PostgreSQL's parameter limits).
CHUNK = 500


class JournalStatus(StrEnum):
    received = "received"
    delivered = "delivered"
    retrying = "retrying"
    dead_lettered = "dead_lettered"
    duplicate = "duplicate"
    refused = "refused"


#: Statuses after which a re-arrival of the same message id is a duplicate. `duplicate`
#: belongs here: an id already judged a duplicate stays one even if its business-key
#: claim is pruned later. `received` and `retrying` do not: the work may be unfinished.
#: `dead_lettered` and `refused` do not either: a sender that fixes a refused message and
#: sends it again under the same id must get it delivered (docs/contract.md §4).
FINAL_STATUSES = frozenset({JournalStatus.delivered, JournalStatus.duplicate})


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got naive {value!r}")


@dataclass(frozen=True, slots=True)
class Hop:
    """One delivery step: what happened to the message at one destination."""

    destination: str
    status: str
    at: datetime
    detail: str | None = None

    def __post_init__(self) -> None:
        _require_aware("Hop.at", self.at)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """What the hub knows about one message at time `at`; recorded by upsert."""

    message_id: str
    type: str
    source: str
    status: JournalStatus
    at: datetime
    business_key: str | None = None
    correlation_id: str | None = None
    destinations: tuple[str, ...] = ()
    route_id: str | None = None
    config_version: str | None = None
    attempts: int = 0
    reason_code: str | None = None
    error: str | None = None
    hops: tuple[Hop, ...] = ()

    def __post_init__(self) -> None:
        # Lists are accepted for convenience and frozen here so the entry stays immutable.
        object.__setattr__(self, "status", JournalStatus(self.status))
        object.__setattr__(self, "destinations", tuple(self.destinations))
        object.__setattr__(self, "hops", tuple(self.hops))
        _require_aware("JournalEntry.at", self.at)


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """A journal row as read back, with its hops in the order they were recorded."""

    message_id: str
    type: str
    source: str
    status: JournalStatus
    business_key: str | None
    correlation_id: str | None
    destinations: tuple[str, ...]
    route_id: str | None
    config_version: str | None
    attempts: int
    reason_code: str | None
    error: str | None
    duplicates: int
    created_at: datetime
    updated_at: datetime
    hops: tuple[Hop, ...] = field(default=())


def _chunks(items: Sequence, size: int = CHUNK) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _dialect_insert(dialect_name: str, table):
    """The dialect's INSERT, which has on_conflict_* (there is no portable one)."""
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)


_Plan = tuple[str, tuple[str, ...] | None, dict[str, Callable[[Any], Any] | None], dict[str, Any]]
_PLANS: dict[tuple[int, str, tuple[str, ...]], tuple[object, _Plan]] = {}


def _plan(conn: Connection, stmt, keys: tuple[str, ...]) -> _Plan:
    """SQL text, positional order, bind processors and constant binds of `stmt`, cached."""
    dialect = conn.dialect
    cache_key = (id(stmt), dialect.name, keys)
    cached = _PLANS.get(cache_key)
    if cached is not None and cached[0] is stmt:
        return cached[1]
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    procs = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect)
        for bind, name in compiled.bind_names.items()
    }
    constants = {name: b.value for name, b in compiled.binds.items() if name not in keys}
    plan: _Plan = (compiled.string, compiled.positiontup, procs, constants)
    _PLANS[cache_key] = (stmt, plan)
    return plan


def executemany(conn: Connection, stmt, rows: Sequence[dict[str, Any]]) -> None:
    """Run a constant Core statement once per row, with SQLAlchemy's per-row work removed.

    Connection.execute builds and type-processes every parameter set through the generic
    compiler path (about 7 us a row, a third of a 200-row batch's cost on SQLite). Here the
    statement is compiled once per dialect and column set, and each row goes through the
    same bind processors straight to the driver's executemany. Rows must all have the
    keys of the first; statements must be built once (the plan is cached per object).
    """
    if not rows:
        return
    sql, positions, procs, constants = _plan(conn, stmt, tuple(rows[0]))
    names = positions if positions is not None else tuple(procs)
    columns: list[Iterable[Any]] = []  # built column by column: one comprehension each
    for name in names:
        proc = procs.get(name)
        if name in constants:
            v = constants[name]
            columns.append(repeat(v if proc is None or v is None else proc(v)))
        elif proc is None:
            columns.append([r[name] for r in rows])
        else:
            columns.append([None if (v := r[name]) is None else proc(v) for r in rows])
    if all(name in constants for name in names):
        raise ValueError("executemany needs at least one per-row parameter")
    params: list = list(zip(*columns, strict=False))  # repeat() columns are endless
    if positions is None:
        params = [dict(zip(names, p, strict=True)) for p in params]
    conn.exec_driver_sql(sql, params)


# ---------------------------------------------------------------- hot path


_FINAL = tuple(sorted(str(s) for s in FINAL_STATUSES))


def _lookup(conn: Connection, columns: str, chunk: list[str], *, final_only: bool) -> list[tuple]:
    """`SELECT columns FROM journal WHERE message_id IN chunk` as plain driver SQL.

    On the hop's hot path (every batch asks which ids are delivered already) SQLAlchemy's
    statement building cost ~0.25 ms a call here, ten times the query itself; the SQL below
    is the same query without it. PostgreSQL gets one array parameter, SQLite one `?` per id.
    """
    if conn.dialect.name == "postgresql":
        sql = f"SELECT {columns} FROM journal WHERE message_id = ANY(%s)"
        params: tuple = (chunk,)
        if final_only:
            sql += " AND status = ANY(%s)"
            params += (list(_FINAL),)
    else:
        sql = f"SELECT {columns} FROM journal WHERE message_id IN ({','.join('?' * len(chunk))})"
        params = tuple(chunk)
        if final_only:
            sql += f" AND status IN ({','.join('?' * len(_FINAL))})"
            params += _FINAL
    return conn.exec_driver_sql(sql, params).fetchall()


def known_message_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """The ids already journaled with a final status: re-arrivals to drop as duplicates."""
    return set(known_message_types(conn, ids))


def known_message_types(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Like known_message_ids, with the type each was journaled as (an id reused for another
    type is refused, not taken for a re-send)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    for chunk in _chunks(wanted):
        found.update((m, t) for m, t in _lookup(conn, "message_id, type", chunk, final_only=True))
    return found


def claim_business_key_owners(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Claim (business_key, message_id) pairs; return each key's owning message id.

    INSERT ... ON CONFLICT DO NOTHING, then read the owners back in the same transaction:
    on PostgreSQL a concurrent uncommitted claim makes the insert wait for its outcome, on
    SQLite the write lock serialises claimers, so exactly one message id owns each key.
    Within one call the first pair of a key wins. Keys are inserted sorted so that two
    PostgreSQL transactions claiming overlapping keys cannot deadlock.
    """
    first: dict[str, str] = {}
    for key, message_id in pairs:
        first.setdefault(key, message_id)
    if not first:
        return {}
    ordered = sorted(first)
    executemany(conn, _claim_statement(conn.dialect.name),
                [{"business_key": k, "message_id": first[k]} for k in ordered])
    owners: dict[str, str] = {}
    for chunk in _chunks(ordered):
        rows = conn.execute(
            select(business_keys.c.business_key, business_keys.c.message_id).where(
                business_keys.c.business_key.in_(chunk)
            )
        )
        owners.update((k, m) for k, m in rows)
    return owners


def claim_business_keys(conn: Connection, pairs: Iterable[tuple[str, str]]) -> set[str]:
    """Claim the keys; return those already owned by a different message id (duplicates).

    A key given twice in one call with different ids is owned by the first pair and is
    NOT returned (returning it would make the caller drop the original as well); a caller
    whose batch may repeat a key uses claim_business_key_owners to tell the two apart.
    """
    pairs = list(pairs)
    owners = claim_business_key_owners(conn, pairs)
    first: dict[str, str] = {}
    for key, message_id in pairs:
        first.setdefault(key, message_id)
    return {k for k, m in first.items() if owners.get(k) != m}


def release_business_keys(conn: Connection, pairs: Iterable[tuple[str, str]]) -> int:
    """Give up claims: each key is deleted only while `message_id` still owns it.

    For a message that claimed its key and was then refused before publishing (a flow
    found it illegal in the current state): the corrected message must not count as a
    duplicate of one that was never delivered. Returns how many claims were released.
    """
    released = 0
    for key, message_id in dict.fromkeys(pairs):
        result = conn.execute(
            business_keys.delete().where(business_keys.c.business_key == key,
                                         business_keys.c.message_id == message_id)
        )
        released += result.rowcount or 0
    return released


@cache
def _claim_statement(dialect_name: str):
    ins = _dialect_insert(dialect_name, business_keys)
    return ins.on_conflict_do_nothing(index_elements=["business_key"])


_HOPS_INSERT = journal_hops.insert()


@cache
def _upsert_statement(dialect_name: str):
    """INSERT ... ON CONFLICT (message_id) DO UPDATE with the journal's upsert rules.

    A `duplicate` entry for an existing id only counts (duplicates + 1, updated_at); any
    other entry overwrites the mutable columns. created_at is never overwritten; hop_count
    always grows by the entry's hops.
    """
    ins = _dialect_insert(dialect_name, journal)
    ex = ins.excluded
    is_dup = ex.status == str(JournalStatus.duplicate)

    def unless_dup(name: str):
        return case((is_dup, journal.c[name]), else_=ex[name])

    return ins.on_conflict_do_update(
        index_elements=["message_id"],
        set_={
            "status": unless_dup("status"),
            "attempts": unless_dup("attempts"),
            "error": unless_dup("error"),
            "reason_code": unless_dup("reason_code"),
            "destinations": unless_dup("destinations"),
            "route_id": unless_dup("route_id"),
            "config_version": unless_dup("config_version"),
            "business_key": func.coalesce(journal.c.business_key, ex.business_key),
            "correlation_id": func.coalesce(journal.c.correlation_id, ex.correlation_id),
            "duplicates": journal.c.duplicates + case((is_dup, 1), else_=0),
            "hop_count": journal.c.hop_count + ex.hop_count,
            "updated_at": ex.updated_at,
        },
    )


def record(conn: Connection, entries: Sequence[JournalEntry]) -> None:
    """Upsert journal rows and append their hops (call inside one transaction).

    Hops are numbered from journal.hop_count as it stands after the upsert (a primary-key
    lookup): on PostgreSQL the upsert row-locks each journal row until commit, so a
    concurrent record() of the same message waits and numbers its hops after ours.
    Entries are applied sorted by message id (stable: several entries of one id keep their
    order) so that two transactions lock shared rows in the same order, never a deadlock.
    """
    if not entries:
        return
    ordered = sorted(entries, key=lambda e: e.message_id)
    executemany(
        conn,
        _upsert_statement(conn.dialect.name),
        [
            {
                "message_id": e.message_id,
                "type": e.type,
                "source": e.source,
                "business_key": e.business_key,
                "correlation_id": e.correlation_id,
                "status": str(e.status),
                "destinations": list(e.destinations),
                "route_id": e.route_id,
                "config_version": e.config_version,
                "attempts": e.attempts,
                "reason_code": e.reason_code,
                "error": e.error,
                "duplicates": 0,
                "hop_count": len(e.hops),
                "created_at": e.at,
                "updated_at": e.at,
            }
            for e in ordered
        ],
    )
    added: dict[str, int] = {}
    for e in ordered:
        if e.hops:
            added[e.message_id] = added.get(e.message_id, 0) + len(e.hops)
    if not added:
        return
    next_seq: dict[str, int] = {}
    for chunk in _chunks(list(added)):
        rows = _lookup(conn, "message_id, hop_count", chunk, final_only=False)
        next_seq.update((m, total - added[m] + 1) for m, total in rows)
    hop_rows = []
    for e in ordered:
        seq = next_seq.get(e.message_id, 1)
        for h in e.hops:
            hop_rows.append(
                {"message_id": e.message_id, "seq": seq, "destination": h.destination,
                 "status": str(h.status), "at": h.at, "detail": h.detail}
            )
            seq += 1
        next_seq[e.message_id] = seq
    executemany(conn, _HOPS_INSERT, hop_rows)


def append_hops(conn: Connection, hops: Sequence[tuple[str, Hop]]) -> set[str]:
    """Add steps to journaled messages without changing their status (an adapter's later steps:
    a CRM's answer, an SMS receipt, a file's success mark). Returns the ids with no journal row,
    whose hops are not written: the journal only tells the journeys it knows the start of."""
    if not hops:
        return set()
    added: dict[str, int] = {}
    for mid, _ in hops:
        added[mid] = added.get(mid, 0) + 1
    current: dict[str, int] = {}
    for chunk in _chunks(sorted(added)):  # one order for every writer: no deadlock between two
        q = select(journal.c.message_id, journal.c.hop_count).where(journal.c.message_id.in_(chunk))
        if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serialises writers
            q = q.order_by(journal.c.message_id).with_for_update()
        current.update((m, c) for m, c in conn.execute(q))
    if current:
        conn.execute(update(journal).where(journal.c.message_id == bindparam("mid"))
                     .values(hop_count=journal.c.hop_count + bindparam("n")),
                     [{"mid": m, "n": added[m]} for m in sorted(current)])
    next_seq = {m: c + 1 for m, c in current.items()}
    rows = []
    for mid, h in hops:
        if mid in next_seq:
            rows.append({"message_id": mid, "seq": next_seq[mid], "destination": h.destination,
                         "status": str(h.status), "at": h.at, "detail": h.detail})
            next_seq[mid] += 1
    executemany(conn, _HOPS_INSERT, rows)
    return set(added) - set(next_seq)


# ---------------------------------------------------------------- read side


def _records(conn: Connection, rows) -> list[JournalRecord]:
    rows = list(rows)
    hops: dict[str, list[Hop]] = {r.message_id: [] for r in rows}
    for chunk in _chunks(list(hops)):
        for h in conn.execute(
            select(journal_hops)
            .where(journal_hops.c.message_id.in_(chunk))
            .order_by(journal_hops.c.message_id, journal_hops.c.seq)
        ):
            hops[h.message_id].append(Hop(h.destination, h.status, h.at, h.detail))
    return [
        JournalRecord(
            message_id=r.message_id, type=r.type, source=r.source, status=JournalStatus(r.status),
            business_key=r.business_key, correlation_id=r.correlation_id,
            destinations=tuple(r.destinations or ()), route_id=r.route_id, config_version=r.config_version,
            attempts=r.attempts, reason_code=r.reason_code, error=r.error, duplicates=r.duplicates,
            created_at=r.created_at, updated_at=r.updated_at, hops=tuple(hops[r.message_id]),
        )
        for r in rows
    ]


def get(conn: Connection, message_id: str) -> JournalRecord | None:
    found = _records(conn, conn.execute(select(journal).where(journal.c.message_id == message_id)))
    return found[0] if found else None


def search(conn: Connection, text: str, limit: int = 50) -> list[JournalRecord]:
    """Rows whose message id, business key or correlation id equals `text`, newest first."""
    c = journal.c
    stmt = (
        select(journal)
        .where(or_(c.message_id == text, c.business_key == text, c.correlation_id == text))
        .order_by(c.updated_at.desc(), c.message_id)
        .limit(limit)
    )
    return _records(conn, conn.execute(stmt))


def count_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(journal.c.status, func.count()).group_by(journal.c.status))
    return {JournalStatus(s): n for s, n in rows}
