"""Knowledge and announcement state in the store: items, version sync, receipts, feedback, announcements.

Owns: reading and writing the tables of hub/store/schema.py that the knowledge flow
(hub/flows/knowledge.py) and the announcement flow (hub/flows/announcements.py) keep,
turning rows into the protocol's records (ItemLifecycle, FanOut, FeedbackThread,
AnnouncementFlow, versions.ItemVersions / Catalog) and back, and the read side for the
console: `sync_matrix` (item x recipient: version delivered / confirmed, receipts
outstanding).
Must not: decide anything (the protocol's state machines do, fed by the flows), open its
own engine or read the clock. Every function takes an open connection of Store.transaction.

Version sync invariants kept here whatever order the callers write in: `delivered` and
`confirmed` of a (recipient, item) only ever go up, and `revoked` once set never clears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, tuple_, update

from hub.store import timers as timer_store
from hub.store.schema import (
    announcement_replies,
    announcements,
    knowledge_feedback,
    knowledge_items,
    knowledge_receipts,
    knowledge_structure,
    knowledge_structure_sync,
    knowledge_sync,
    sharing_steps,
)
from hub.store.schema import timers as timer_table
from protocols.announcements.models import Announcement
from protocols.announcements.transaction import AnnouncementFlow, ReplyFlow, ReplyState
from protocols.announcements.transaction import State as AnnouncementState
from protocols.knowledge.fanout import FanOut, RecipientRecord, RecipientStatus
from protocols.knowledge.feedback import FeedbackThread
from protocols.knowledge.feedback import State as FeedbackState
from protocols.knowledge.lifecycle import ItemLifecycle, Pending, State
from protocols.knowledge.models import Action, CategoryTree, Disposition, KnowledgeItem, Tombstone
from protocols.knowledge.versions import Catalog, ItemVersions

CHUNK = 500


def _chunks(seq: list, n: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


# ----------------------------------------------------------------------------- items


@dataclass
class StoredItem:
    """A knowledge_items row: the lifecycle plus what was published."""

    lifecycle: ItemLifecycle
    item: KnowledgeItem | None = None
    tombstone: Tombstone | None = None
    recipients: tuple[str, ...] = ()
    published_at: datetime | None = None
    new: bool = False


def _item_from_row(row) -> StoredItem:
    pending = None
    if row.pending_action:
        pending = Pending(Action(row.pending_action), row.pending_version, (row.pending_company, row.pending_serial))
    life = ItemLifecycle(item_id=row.item_id, owner=row.owner, state=State(row.state),
                         published_version=row.published_version, revoked_version=row.revoked_version,
                         pending=pending, returns=row.returns)
    return StoredItem(life, KnowledgeItem.model_validate(row.item_json) if row.item_json else None,
                      Tombstone.model_validate(row.tombstone_json) if row.tombstone_json else None,
                      tuple(row.recipients or ()), row.published_at)


def load_items(conn: Connection, item_ids: Iterable[str], *, for_update: bool = False) -> dict[str, StoredItem]:
    ids = list(dict.fromkeys(item_ids))
    found: dict[str, StoredItem] = {}
    for part in _chunks(ids):
        q = select(knowledge_items).where(knowledge_items.c.item_id.in_(part))
        if for_update and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        for row in conn.execute(q):
            found[row.item_id] = _item_from_row(row)
    return found


def save_item(conn: Connection, stored: StoredItem, now: datetime) -> None:
    life = stored.lifecycle
    p = life.pending
    values: dict[str, Any] = {
        "owner": life.owner, "state": life.state.value, "published_version": life.published_version,
        "revoked_version": life.revoked_version, "pending_action": p.action.value if p else None,
        "pending_version": p.version if p else None, "pending_company": p.serial[0] if p else None,
        "pending_serial": p.serial[1] if p else None, "returns": life.returns,
        "item_json": stored.item.model_dump(mode="json", by_alias=True) if stored.item else None,
        "tombstone_json": stored.tombstone.model_dump(mode="json", by_alias=True) if stored.tombstone else None,
        "recipients": list(stored.recipients), "published_at": stored.published_at, "updated_at": now,
    }
    if stored.new:
        conn.execute(insert(knowledge_items).values(item_id=life.item_id, **values))
        stored.new = False
    else:
        conn.execute(update(knowledge_items).where(knowledge_items.c.item_id == life.item_id).values(**values))


def publish_items(conn: Connection, items: Iterable[KnowledgeItem], recipients: Iterable[str], at: datetime) -> int:
    """Record items as published to `recipients` without any delivery (seeding a catalog: benchmarks, migration).

    Each item's recipients get a sync row with nothing delivered yet, so a sync request
    from one of them re-sends it.
    """
    codes = list(dict.fromkeys(recipients))
    rows, sync = [], []
    for item in items:
        rows.append({"item_id": item.id, "owner": item.owner_node, "state": State.PUBLISHED.value,
                     "published_version": item.version, "returns": 0,
                     "item_json": item.model_dump(mode="json", by_alias=True), "recipients": codes,
                     "published_at": at, "updated_at": at})
        sync.extend({"recipient": c, "item_id": item.id, "delivered": 0, "confirmed": 0} for c in codes)
    for part in _chunks(rows):
        conn.execute(insert(knowledge_items), part)
    for part in _chunks(sync):
        conn.execute(insert(knowledge_sync), part)
    return len(rows)


# ----------------------------------------------------------------------------- version sync


def load_versions(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], ItemVersions]:
    """(recipient, item) -> ItemVersions for the pairs asked (absent pairs are left out)."""
    keys = list(dict.fromkeys(pairs))
    found: dict[tuple[str, str], ItemVersions] = {}
    for part in _chunks(keys):
        q = select(knowledge_sync).where(tuple_(knowledge_sync.c.recipient, knowledge_sync.c.item_id).in_(part))
        for r in conn.execute(q):
            found[(r.recipient, r.item_id)] = ItemVersions(r.delivered, r.confirmed, r.revoked)
    return found


def write_versions(conn: Connection, changes: Mapping[tuple[str, str], ItemVersions], *, now: datetime,
                   confirmed_at: datetime | None = None) -> None:
    """Write (recipient, item) versions, never lowering a version already stored (out-of-order safe)."""
    if not changes:
        return
    current = load_versions(conn, changes)
    new_rows, updates = [], []
    for (recipient, item_id), v in changes.items():
        old = current.get((recipient, item_id))
        if old is None:
            new_rows.append({"recipient": recipient, "item_id": item_id, "delivered": v.delivered,
                             "confirmed": v.confirmed, "revoked": v.revoked,
                             "delivered_at": now if v.delivered else None,
                             "confirmed_at": confirmed_at if v.confirmed else None})
            continue
        merged = ItemVersions(max(old.delivered, v.delivered), max(old.confirmed, v.confirmed),
                              old.revoked if old.revoked is not None else v.revoked)
        if merged == old:
            continue
        row: dict[str, Any] = {"k_recipient": recipient, "k_item": item_id, "delivered": merged.delivered,
                               "confirmed": merged.confirmed, "revoked": merged.revoked,
                               "delivered_at": now if merged.delivered > old.delivered else None,
                               "confirmed_at": (confirmed_at or now) if merged.confirmed > old.confirmed else None}
        updates.append(row)
    for part in _chunks(new_rows):
        conn.execute(insert(knowledge_sync), part)
    c = knowledge_sync.c
    stmt = (update(knowledge_sync)
            .where(and_(c.recipient == bindparam("k_recipient"), c.item_id == bindparam("k_item")))
            .values(delivered=bindparam("delivered"), confirmed=bindparam("confirmed"), revoked=bindparam("revoked"),
                    delivered_at=func.coalesce(bindparam("delivered_at", type_=c.delivered_at.type), c.delivered_at),
                    confirmed_at=func.coalesce(bindparam("confirmed_at", type_=c.confirmed_at.type),
                                               c.confirmed_at)))
    for part in _chunks(updates):
        conn.execute(stmt, part)


def catalog_for(conn: Connection, recipient: str) -> Catalog:
    """HQ's published knowledge for one recipient: the live items and tombstones designated for it."""
    j = knowledge_items.join(knowledge_sync, knowledge_sync.c.item_id == knowledge_items.c.item_id)
    q = (select(knowledge_items.c.item_id, knowledge_items.c.item_json, knowledge_items.c.tombstone_json,
                knowledge_items.c.state)
         .select_from(j).where(knowledge_sync.c.recipient == recipient)
         .where(knowledge_items.c.state.in_([State.PUBLISHED.value, State.REVOKED.value, State.SUBMITTED.value,
                                             State.RETURNED.value, State.APPROVED.value])))
    items, tombstones = {}, {}
    for r in conn.execute(q):
        if r.tombstone_json:
            tombstones[r.item_id] = Tombstone.model_validate(r.tombstone_json)
        elif r.item_json:  # published (an update or revocation may be under review: recipients keep it)
            items[r.item_id] = KnowledgeItem.model_validate(r.item_json)
    return Catalog(items, tombstones)


# ----------------------------------------------------------------------------- the knowledge structure


@dataclass(frozen=True)
class TreeVersions:
    """The structure versions of one recipient: delivered, confirmed, and its MountPoint (挂载点)."""

    delivered: int = 0
    confirmed: int = 0
    mount_point: str | None = None


def load_tree(conn: Connection) -> CategoryTree | None:
    """HQ's latest knowledge structure (without a MountPoint), or None before the first one."""
    r = conn.execute(select(knowledge_structure).where(knowledge_structure.c.id == "hq")).first()
    return CategoryTree.model_validate(r.tree_json) if r else None


def save_tree(conn: Connection, tree: CategoryTree, now: datetime) -> None:
    values = {"version": tree.version, "tree_json": tree.model_dump(mode="json", by_alias=True), "updated_at": now}
    if conn.execute(update(knowledge_structure).where(knowledge_structure.c.id == "hq").values(**values)).rowcount:
        return
    conn.execute(insert(knowledge_structure).values(id="hq", **values))


def load_tree_versions(conn: Connection, recipients: Iterable[str]) -> dict[str, TreeVersions]:
    codes = list(dict.fromkeys(recipients))
    found: dict[str, TreeVersions] = {}
    c = knowledge_structure_sync.c
    for part in _chunks(codes):
        for r in conn.execute(select(knowledge_structure_sync).where(c.recipient.in_(part))):
            found[r.recipient] = TreeVersions(r.delivered, r.confirmed, r.mount_point)
    return found


def write_tree_versions(conn: Connection, changes: Mapping[str, TreeVersions], *, now: datetime) -> None:
    """Write recipients' structure versions, never lowering one; a None MountPoint keeps the stored one."""
    current = load_tree_versions(conn, changes)
    c = knowledge_structure_sync.c
    for code, v in changes.items():
        old = current.get(code)
        if old is None:
            conn.execute(insert(knowledge_structure_sync).values(
                recipient=code, delivered=v.delivered, confirmed=v.confirmed, mount_point=v.mount_point,
                delivered_at=now if v.delivered else None, confirmed_at=now if v.confirmed else None))
            continue
        merged = TreeVersions(max(old.delivered, v.delivered), max(old.confirmed, v.confirmed),
                              v.mount_point or old.mount_point)
        if merged == old:
            continue
        values: dict[str, Any] = {"delivered": merged.delivered, "confirmed": merged.confirmed,
                                  "mount_point": merged.mount_point}
        if merged.delivered > old.delivered:
            values["delivered_at"] = now
        if merged.confirmed > old.confirmed:
            values["confirmed_at"] = now
        conn.execute(update(knowledge_structure_sync).where(c.recipient == code).values(**values))


# ----------------------------------------------------------------------------- overdue timers


def arm_timers(conn: Connection, timers: Iterable[tuple[str, datetime, dict[str, Any]]], *,
               replace: bool = False) -> None:
    """Durable timers (hub/timer_service.py) in the caller's transaction; `replace` re-arms existing keys."""
    rows = list({key: (key, due, payload) for key, due, payload in timers}.values())
    if replace:
        cancel_timers(conn, [key for key, _, _ in rows])
    timer_store.schedule_many(conn, rows)


def cancel_timers(conn: Connection, keys: Iterable[str]) -> None:
    """Forget timers (fired or not) by key."""
    for part in _chunks(list(dict.fromkeys(keys))):
        conn.execute(delete(timer_table).where(timer_table.c.key.in_(part)))


# ----------------------------------------------------------------------------- fan-out receipts


def load_fanout(conn: Connection, item_id: str, version: int) -> FanOut | None:
    q = select(knowledge_receipts).where(knowledge_receipts.c.item_id == item_id,
                                         knowledge_receipts.c.version == version)
    rows = list(conn.execute(q))
    if not rows:
        return None
    action = Action.publish  # informational only in the record
    fan = FanOut(item_id=item_id, version=version, action=action)
    for r in rows:
        fan.recipients[r.recipient] = RecipientRecord(RecipientStatus(r.status), r.delivered_at, r.answered_at,
                                                      r.refusal_code, r.reason, r.attempts)
    return fan


def open_fanouts(conn: Connection, item_id: str, below: int) -> list[FanOut]:
    """Fan-outs of older versions of an item that still wait for someone (to supersede them)."""
    q = (select(knowledge_receipts.c.version).distinct()
         .where(knowledge_receipts.c.item_id == item_id, knowledge_receipts.c.version < below,
                knowledge_receipts.c.status.in_([RecipientStatus.PENDING.value, RecipientStatus.DELIVERED.value,
                                                 RecipientStatus.REJECTED.value])))
    return [f for v in conn.execute(q).scalars() if (f := load_fanout(conn, item_id, v)) is not None]


def save_fanout(conn: Connection, fan: FanOut, *, only: Iterable[str] | None = None) -> None:
    """Write a fan-out's recipients (all, or `only` those): replace their rows."""
    codes = list(fan.recipients) if only is None else list(dict.fromkeys(only))
    if not codes:
        return
    c = knowledge_receipts.c
    for part in _chunks(codes):
        conn.execute(delete(knowledge_receipts).where(c.item_id == fan.item_id, c.version == fan.version,
                                                      c.recipient.in_(part)))
    rows = [{"item_id": fan.item_id, "version": fan.version, "recipient": code, "status": r.status.value,
             "delivered_at": r.delivered_at, "answered_at": r.answered_at, "refusal_code": r.refusal_code,
             "reason": r.reason, "attempts": r.attempts}
            for code in codes for r in [fan.recipients[code]]]
    for part in _chunks(rows):
        conn.execute(insert(knowledge_receipts), part)


def mark_delivered(conn: Connection, triples: Iterable[tuple[str, int, str]], at: datetime) -> int:
    """The broker took the deliveries: PENDING recipients become DELIVERED (a receipt may have come first)."""
    c = knowledge_receipts.c
    n = 0
    keys = list(dict.fromkeys(triples))
    for part in _chunks(keys):
        res = conn.execute(update(knowledge_receipts)
                           .where(tuple_(c.item_id, c.version, c.recipient).in_(part),
                                  c.status == RecipientStatus.PENDING.value)
                           .values(status=RecipientStatus.DELIVERED.value, delivered_at=at,
                                   attempts=c.attempts + 1))
        n += res.rowcount or 0
    return n


def open_receipts(conn: Connection, triples: list[tuple[str, int, str]]) -> None:
    """Receipt rows (PENDING) for (item, version, recipient) re-sent by a sync that have none yet."""
    c = knowledge_receipts.c
    have: set[tuple] = set()
    for part in _chunks(list(dict.fromkeys(triples))):
        q = select(c.item_id, c.version, c.recipient).where(tuple_(c.item_id, c.version, c.recipient).in_(part))
        have.update(tuple(r) for r in conn.execute(q))
    rows = [{"item_id": a, "version": v, "recipient": r, "status": RecipientStatus.PENDING.value, "attempts": 0}
            for a, v, r in dict.fromkeys(triples) if (a, v, r) not in have]
    for part in _chunks(rows):
        conn.execute(insert(knowledge_receipts), part)


# ----------------------------------------------------------------------------- feedback


def load_feedback(conn: Connection, key: tuple[str, str]) -> FeedbackThread | None:
    q = select(knowledge_feedback).where(knowledge_feedback.c.company == key[0],
                                         knowledge_feedback.c.feedback_id == key[1])
    r = conn.execute(q).first()
    if r is None:
        return None
    return FeedbackThread(company_code=r.company, feedback_id=r.feedback_id, item_id=r.item_id, version=r.version,
                          state=FeedbackState(r.state), disposition=Disposition(r.disposition) if r.disposition
                          else None, owner=r.owner, update_version=r.update_version,
                          update_serial=(r.update_company, r.update_serial) if r.update_serial else None)


def save_feedback(conn: Connection, thread: FeedbackThread, now: datetime, *, new: bool) -> None:
    values = {"item_id": thread.item_id, "version": thread.version, "state": thread.state.value,
              "disposition": thread.disposition.value if thread.disposition else None, "owner": thread.owner,
              "update_version": thread.update_version,
              "update_company": thread.update_serial[0] if thread.update_serial else None,
              "update_serial": thread.update_serial[1] if thread.update_serial else None, "updated_at": now}
    if new:
        conn.execute(insert(knowledge_feedback).values(company=thread.company_code, feedback_id=thread.feedback_id,
                                                       **values))
    else:
        c = knowledge_feedback.c
        conn.execute(update(knowledge_feedback).where(c.company == thread.company_code,
                                                      c.feedback_id == thread.feedback_id).values(**values))


# ----------------------------------------------------------------------------- announcements


def load_announcement(conn: Connection, announcement_id: str) -> AnnouncementFlow | None:
    r = conn.execute(select(announcements).where(announcements.c.announcement_id == announcement_id)).first()
    if r is None:
        return None
    flow = AnnouncementFlow(announcement=Announcement.model_validate(r.announcement_json), originator=r.originator,
                            state=AnnouncementState(r.state),
                            pending_serial=(r.pending_company, r.pending_serial) if r.pending_serial else None,
                            returns=r.returns, recipients=tuple(r.recipients or ()))
    q = select(announcement_replies).where(announcement_replies.c.announcement_id == announcement_id)
    for rr in conn.execute(q):
        flow.replies[rr.company] = ReplyFlow(rr.company, ReplyState(rr.state), rr.serial, rr.replied_at, rr.returns)
    return flow


def save_announcement(conn: Connection, flow: AnnouncementFlow, now: datetime, *, new: bool) -> None:
    values = {"originator": flow.originator, "state": flow.state.value,
              "pending_company": flow.pending_serial[0] if flow.pending_serial else None,
              "pending_serial": flow.pending_serial[1] if flow.pending_serial else None,
              "returns": flow.returns, "recipients": list(flow.recipients),
              "announcement_json": flow.announcement.model_dump(mode="json", by_alias=True), "updated_at": now}
    if new:
        conn.execute(insert(announcements).values(announcement_id=flow.announcement_id, **values))
    else:
        conn.execute(update(announcements).where(announcements.c.announcement_id == flow.announcement_id)
                     .values(**values))
    conn.execute(delete(announcement_replies).where(announcement_replies.c.announcement_id == flow.announcement_id))
    rows = [{"announcement_id": flow.announcement_id, "company": r.company, "state": r.state.value,
             "serial": r.serial, "replied_at": r.replied_at, "returns": r.returns} for r in flow.replies.values()]
    for part in _chunks(rows):
        conn.execute(insert(announcement_replies), part)


# ----------------------------------------------------------------------------- applied messages


def applied_message_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for part in _chunks(list(dict.fromkeys(ids))):
        found.update(conn.execute(select(sharing_steps.c.message_id)
                                  .where(sharing_steps.c.message_id.in_(part))).scalars())
    return found


def record_steps(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """rows: {message_id, subject, event, state, recorded_at}."""
    for part in _chunks(rows):
        conn.execute(insert(sharing_steps), part)


def steps_of(conn: Connection, subject: str) -> list[tuple[str, str, str]]:
    """(message_id, event, state) of one subject ("item/KN-...", "feedback/44/FB-...", "announcement/GG-...")."""
    q = select(sharing_steps).where(sharing_steps.c.subject == subject).order_by(sharing_steps.c.recorded_at)
    return [(r.message_id, r.event, r.state) for r in conn.execute(q)]


# ----------------------------------------------------------------------------- the console's read side


@dataclass(frozen=True)
class SyncCell:
    """One cell of the knowledge sync matrix: an item at one recipient."""

    item_id: str
    recipient: str
    published: int              # HQ's published version (the tombstone's version once revoked)
    revoked: bool               # the item is revoked at HQ
    delivered: int              # the highest version handed to the recipient
    confirmed: int              # the highest version the recipient confirmed
    receipt: str | None         # status of the receipt of the current version (PENDING, DELIVERED, ...)

    @property
    def outstanding(self) -> bool:
        """The current version (or tombstone) is not confirmed yet by this recipient."""
        return self.confirmed < self.published and self.receipt not in ("SUPERSEDED",)

    @property
    def in_sync(self) -> bool:
        return self.confirmed >= self.published


def sync_matrix(conn: Connection, *, item_ids: Iterable[str] | None = None,
                recipients: Iterable[str] | None = None, only_outstanding: bool = False,
                limit: int = 5000) -> list[SyncCell]:
    """The knowledge sync matrix for the console: item x recipient, version delivered and confirmed.

    Filters: some items, some recipients, only the cells whose current version is not yet
    confirmed. Sorted by item then recipient; at most `limit` cells.
    """
    i, s, r = knowledge_items.c, knowledge_sync.c, knowledge_receipts.c
    current = func.coalesce(i.revoked_version, i.published_version)
    j = (knowledge_sync.join(knowledge_items, i.item_id == s.item_id)
         .outerjoin(knowledge_receipts, and_(r.item_id == s.item_id, r.recipient == s.recipient,
                                             r.version == current)))
    q = select(s.item_id, s.recipient, i.published_version, i.revoked_version, s.delivered, s.confirmed,
               r.status).select_from(j).where(current > 0)
    if item_ids is not None:
        q = q.where(s.item_id.in_(list(item_ids)))
    if recipients is not None:
        q = q.where(s.recipient.in_(list(recipients)))
    if only_outstanding:
        q = q.where(s.confirmed < current, or_(r.status.is_(None), r.status != RecipientStatus.SUPERSEDED.value))
    q = q.order_by(s.item_id, s.recipient).limit(limit)
    return [SyncCell(row.item_id, row.recipient, row.revoked_version or row.published_version,
                     row.revoked_version is not None, row.delivered, row.confirmed, row.status)
            for row in conn.execute(q)]


def outstanding_receipts(conn: Connection) -> dict[str, int]:
    """Recipient -> number of delivered versions still awaiting its receipt (PENDING or DELIVERED)."""
    c = knowledge_receipts.c
    q = (select(c.recipient, func.count()).where(c.status.in_([RecipientStatus.PENDING.value,
                                                                RecipientStatus.DELIVERED.value]))
         .group_by(c.recipient))
    return {code: n for code, n in conn.execute(q)}

