"""Durable one-shot timers that fire once even with several hub workers.

Owns: the Timer type and the queries on `timers`: schedule (idempotent by key), cancel,
claim_due (a lease: one owner per timer until the lease expires) and mark_fired. A worker
that crashes between claim and mark_fired loses its lease, and the timer is claimed again.
Must not: open connections or transactions, read the clock (callers pass `now`), or know
what a timer's payload means (order reply deadlines and others live in the hub).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from hub.store.journal import _chunks, _dialect_insert, _require_aware
from hub.store.schema import timers


@dataclass(frozen=True, slots=True)
class Timer:
    """A claimed timer: act on `payload`, then mark_fired(key) before `lease_until`."""

    key: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    claimed_by: str | None = None
    lease_until: datetime | None = None
    claims: int = 0
    fired_at: datetime | None = None


def schedule(conn: Connection, key: str, due_at: datetime, payload: dict[str, Any], *,
             replace: bool = False) -> bool:
    """Create the timer unless the key exists; True when this call created or replaced it.

    replace=True re-arms the key from scratch (new due time and payload, claim and fired
    mark cleared), so a timer that already fired fires again at the new time.
    """
    _require_aware("due_at", due_at)
    ins = _dialect_insert(conn.dialect.name, timers).values(key=key, due_at=due_at, payload=payload, claims=0)
    if replace:
        stmt = ins.on_conflict_do_update(
            index_elements=["key"],
            set_={"due_at": ins.excluded.due_at, "payload": ins.excluded.payload, "claimed_by": None,
                  "lease_until": None, "claims": 0, "fired_at": None},
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=["key"])
    # RETURNING, not rowcount: SQLAlchemy leaves an INSERT's rowcount at -1 on psycopg.
    return conn.execute(stmt.returning(timers.c.key)).first() is not None


def schedule_many(conn: Connection, items: Iterable[tuple[str, datetime, dict[str, Any]]]) -> None:
    """Create many timers in the caller's transaction; keys that exist are left alone.

    For a flow that records its state and the timers that state needs atomically (an order
    and its reply deadlines): either both are stored or neither.
    """
    rows = []
    for key, due_at, payload in items:
        _require_aware("due_at", due_at)
        rows.append({"key": key, "due_at": due_at, "payload": payload, "claims": 0})
    if not rows:
        return
    stmt = _dialect_insert(conn.dialect.name, timers).on_conflict_do_nothing(index_elements=["key"])
    conn.execute(stmt, rows)


def cancel(conn: Connection, key: str) -> bool:
    """Forget the timer (fired or not); True when it existed."""
    return conn.execute(timers.delete().where(timers.c.key == key).returning(timers.c.key)).first() is not None


def claim_due(conn: Connection, now: datetime, owner: str, limit: int, lease_s: float) -> list[Timer]:
    """Lease up to `limit` due, unfired timers to `owner` until now + lease_s, oldest first.

    One statement: WITH due AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)
    UPDATE ... WHERE key IN (SELECT key FROM due) RETURNING. MATERIALIZED makes PostgreSQL
    run the locking select exactly once (a plain IN subquery may be re-run by the planner
    and lease more than `limit` rows); other workers skip the rows it locked. SQLite drops
    FOR UPDATE and relies on the caller's BEGIN IMMEDIATE, which serialises claimers. A
    timer whose lease expired without mark_fired is claimable again (its worker is presumed
    dead).
    """
    _require_aware("now", now)
    if limit <= 0:
        return []
    t = timers.c
    due = (
        select(t.key)
        .where(t.fired_at.is_(None), t.due_at <= now, or_(t.claimed_by.is_(None), t.lease_until <= now))
        .order_by(t.due_at, t.key)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        update(timers)
        .where(t.key.in_(select(due.c.key)))
        .values(claimed_by=owner, lease_until=now + timedelta(seconds=lease_s), claims=t.claims + 1)
        .returning(t.key, t.due_at, t.payload, t.claimed_by, t.lease_until, t.claims)
    )
    claimed = [Timer(r.key, r.due_at, r.payload, r.claimed_by, r.lease_until, r.claims)
               for r in conn.execute(stmt)]
    return sorted(claimed, key=lambda tm: (tm.due_at, tm.key))


def mark_fired(conn: Connection, keys: Iterable[str], *, owner: str | None = None,
               at: datetime | None = None) -> set[str]:
    """Make the timers never fire again; return the keys actually marked.

    With `owner`, only timers still leased to that owner are marked, so a worker whose
    lease expired (and whose timer another worker took over) learns it lost the timer.
    `at` defaults to the database clock: fired_at is informational, never compared.
    """
    if at is not None:
        _require_aware("at", at)
    keys = list(dict.fromkeys(keys))
    marked: set[str] = set()
    t = timers.c
    for chunk in _chunks(keys):
        cond = [t.key.in_(chunk), t.fired_at.is_(None)]
        if owner is not None:
            cond.append(t.claimed_by == owner)
        stmt = (
            update(timers)
            .where(and_(*cond))
            .values(fired_at=at if at is not None else func.now())
            .returning(t.key)
        )
        marked.update(r[0] for r in conn.execute(stmt))
    return marked


def get_timer(conn: Connection, key: str) -> Timer | None:
    """The timer as stored (claimed or not), for inspection and tests."""
    r = conn.execute(select(timers).where(timers.c.key == key)).first()
    if r is None:
        return None
    return Timer(r.key, r.due_at, r.payload, r.claimed_by, r.lease_until, r.claims, r.fired_at)
