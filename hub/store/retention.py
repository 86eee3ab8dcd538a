"""Retention: delete what the store no longer needs, in short batches, oldest first.

Why batches: a hub that keeps a month of traffic has millions of journal rows; one DELETE of
all of them would hold SQLite's write lock (or bloat one PostgreSQL transaction) long enough
to stall the hop. Each batch is its own short transaction, so the hop's writes interleave.

What goes, and what that means:
- journal rows in a final or failed state (delivered, duplicate, dead_lettered, refused)
  last updated before the cut-off, with their hops. `received` and `retrying` stay: that
  work may be unfinished. After this, a sender re-sending such an old message id is no
  longer recognised as a duplicate: the retention period is also the dedupe window
  (docs/operations.md says so).
- business-key claims made before the cut-off (same dedupe-window caveat).
- timers that fired before the cut-off (pending timers always stay).
Flows' own tables (orders, knowledge) keep their business records; they are not touched here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete, select

from hub.store.journal import JournalStatus
from hub.store.schema import business_keys, journal, journal_hops, timers

#: Journal states whose rows may be pruned once old enough.
PRUNABLE = (JournalStatus.delivered, JournalStatus.duplicate, JournalStatus.dead_lettered,
            JournalStatus.refused)


@dataclass
class Pruned:
    journal: int = 0
    hops: int = 0
    business_keys: int = 0
    timers: int = 0
    batches: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def total(self) -> int:
        return self.journal + self.hops + self.business_keys + self.timers


def prune_journal_batch(conn: Connection, before: datetime, limit: int, pruned: Pruned) -> int:
    rows = conn.execute(
        select(journal.c.message_id, journal.c.status)
        .where(journal.c.status.in_([str(s) for s in PRUNABLE]), journal.c.updated_at < before)
        .order_by(journal.c.updated_at)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    ids = [r.message_id for r in rows]
    pruned.hops += conn.execute(delete(journal_hops).where(journal_hops.c.message_id.in_(ids))).rowcount or 0
    conn.execute(delete(journal).where(journal.c.message_id.in_(ids)))
    for r in rows:
        pruned.by_status[r.status] = pruned.by_status.get(r.status, 0) + 1
    pruned.journal += len(ids)
    return len(ids)


def prune_business_keys_batch(conn: Connection, before: datetime, limit: int, pruned: Pruned) -> int:
    keys = conn.execute(
        select(business_keys.c.business_key).where(business_keys.c.claimed_at < before).limit(limit)
    ).scalars().all()
    if keys:
        conn.execute(delete(business_keys).where(business_keys.c.business_key.in_(keys)))
    pruned.business_keys += len(keys)
    return len(keys)


def prune_timers_batch(conn: Connection, before: datetime, limit: int, pruned: Pruned) -> int:
    keys = conn.execute(
        select(timers.c.key).where(timers.c.fired_at.is_not(None), timers.c.fired_at < before).limit(limit)
    ).scalars().all()
    if keys:
        conn.execute(delete(timers).where(timers.c.key.in_(keys)))
    pruned.timers += len(keys)
    return len(keys)


BATCHES: tuple[Callable[[Connection, datetime, int, Pruned], int], ...] = (
    prune_journal_batch, prune_business_keys_batch, prune_timers_batch,
)


def count_prunable(conn: Connection, before: datetime) -> dict[str, int]:
    """What a prune with this cut-off would delete (for --dry-run and progress totals)."""
    from sqlalchemy import func

    return {
        "journal": conn.execute(select(func.count()).select_from(journal).where(
            journal.c.status.in_([str(s) for s in PRUNABLE]), journal.c.updated_at < before)).scalar_one(),
        "business_keys": conn.execute(select(func.count()).select_from(business_keys).where(
            business_keys.c.claimed_at < before)).scalar_one(),
        "timers": conn.execute(select(func.count()).select_from(timers).where(
            timers.c.fired_at.is_not(None), timers.c.fired_at < before)).scalar_one(),
    }
