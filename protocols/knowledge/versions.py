"""Version synchronisation (版本同步, seed 003 2.3.1 item 6): the heart of knowledge delivery.

Owns: per recipient and item, the version delivered and the version confirmed
(`RecipientState`); the verdict on a delivery (`accept`), the same on the hub (before it
forwards a delivery) and at a recipient (before it applies one); HQ's catalog of published
items and tombstones (`Catalog`) with its digest; and the catalog difference a recipient
gets when it asks for a sync (`diff`, `answer`), the knowledge structure included.
Must not: read the clock, store, or send anything.

The rules, precisely (docs/knowledge.md, "Version sync"):

1. Versions of an item are totally ordered; the first publication is 1, every approved
   update adds one, the revocation adds one more. A delivery of version v is APPLIED when
   v is greater than every version delivered to or confirmed by the recipient (a recipient
   that missed version 2 applies version 3 directly: every delivery carries the whole item).
2. Out of order, a delivery never regresses a recipient: v lower than the version it holds
   is REFUSED with STALE_VERSION (v2 then v1: v1 is refused and the recipient keeps v2).
   v equal to the version held is a DUPLICATE: acknowledged again, applied once.
3. A tombstone (the revocation, at version r) is APPLIED whatever content version the
   recipient holds: it is above every published version by construction (rule 1), so it
   wins over any lower or equal version; and revocation is final, so even a content
   version a faulty sender numbered above r cannot outrank it.
4. After a tombstone, every content delivery of the item is REFUSED with ITEM_REVOKED, at
   any version (lower or equal: the usual reordering; higher: HQ never issues one, a
   revoked item's Id is never reused). A second tombstone is a DUPLICATE.
5. `diff` compares what the recipient reports holding with HQ's catalog for it: items it
   lacks or holds in an older version are sent whole at the current version; items it
   holds that are revoked get their tombstone; items HQ never published for it, or held at
   a version HQ never issued, are listed as orphans for an operator. The knowledge
   structure is sent whole, mounted at the recipient's root, when its version is older.
   Cost: one pass over each side with dict lookups, then a sort of the output, so a
   10,000-item catalog is answered in milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from protocols.errors import REASON_TEXT_ZH, ReasonCode, RejectedMessage
from protocols.knowledge import structure
from protocols.knowledge.models import (
    Action,
    CatalogDigest,
    CategoryTree,
    DeliveryReceipt,
    KnowledgeDelivery,
    KnowledgeItem,
    Orphan,
    OrphanProblem,
    ReceiptStatus,
    SyncRequest,
    SyncResponse,
    SyncStatus,
    Tombstone,
)


class Verdict(StrEnum):
    APPLY = "apply"          # newer content: store it / forward it
    REVOKE = "revoke"        # a tombstone: remove the item, keep the tombstone
    DUPLICATE = "duplicate"  # the version already held: acknowledge again, change nothing
    REFUSE = "refuse"        # stale content or content of a revoked item: reason says which


@dataclass(frozen=True)
class ItemVersions:
    """What one recipient has of one item: versions delivered and confirmed, and its tombstone."""

    delivered: int = 0
    confirmed: int = 0
    revoked: int | None = None

    @property
    def held(self) -> int:
        """The highest version the recipient was given or confirmed (0 for none)."""
        return max(self.delivered, self.confirmed)


@dataclass(frozen=True)
class Decision:
    """The verdict on one delivery for one recipient, with the record before and after it."""

    verdict: Verdict
    item_id: str
    version: int
    before: ItemVersions
    after: ItemVersions
    detail: str
    reason: ReasonCode | None = None

    @property
    def accepted(self) -> bool:
        """The delivery is to be applied (new content or a tombstone)."""
        return self.verdict in (Verdict.APPLY, Verdict.REVOKE)

    def error(self) -> RejectedMessage | None:
        """The refusal to send back (negative acknowledgement), or None when not refused."""
        if self.verdict is not Verdict.REFUSE:
            return None
        return RejectedMessage(self.detail, reason=self.reason, field="Version", value=self.version)

    def receipt(self, recipient: str, at: datetime) -> DeliveryReceipt:
        """The receipt a recipient sends for this decision: accepted, or rejected with the reason code."""
        if self.verdict is Verdict.REFUSE:
            reason = self.reason or ReasonCode.FIELD_INVALID
            text = f"{REASON_TEXT_ZH[reason]}:{self.detail}"  # Chinese first (domain 8), then the detail
            return DeliveryReceipt(company_code=recipient, item_id=self.item_id, version=self.version,
                                   receipt_status=ReceiptStatus.rejected, refusal_code=reason.value,
                                   reason=text[:500], received_at=at)
        return DeliveryReceipt(company_code=recipient, item_id=self.item_id, version=self.version,
                               receipt_status=ReceiptStatus.accepted, received_at=at)


def judge(current: ItemVersions, item_id: str, version: int, *, tombstone: bool) -> Decision:
    """The verdict on version `version` of `item_id` (content, or a tombstone) for a recipient holding `current`."""

    def decide(verdict: Verdict, after: ItemVersions, detail: str, reason: ReasonCode | None = None) -> Decision:
        return Decision(verdict, item_id, version, current, after, detail, reason)

    if current.revoked is not None:
        if tombstone:
            return decide(Verdict.DUPLICATE, current,
                          f"{item_id} is already revoked (tombstone version {current.revoked}).")
        return decide(Verdict.REFUSE, current,
                      f"{item_id} version {version} is refused: the item was revoked at version {current.revoked} "
                      "and a revoked item never comes back (rule 4 of docs/knowledge.md, version sync).",
                      ReasonCode.ITEM_REVOKED)
    if tombstone:
        return decide(Verdict.REVOKE, replace(current, delivered=max(current.delivered, version), revoked=version),
                      f"{item_id} is revoked at version {version}; remove it and keep the tombstone.")
    if version > current.held:
        return decide(Verdict.APPLY, replace(current, delivered=version),
                      f"{item_id} version {version} replaces version {current.held}." if current.held
                      else f"{item_id} version {version} is new here.")
    if version == current.held:
        return decide(Verdict.DUPLICATE, current, f"{item_id} version {version} is already held.")
    return decide(Verdict.REFUSE, current,
                  f"{item_id} version {version} is older than version {current.held} already held; it is not "
                  "applied (an out-of-order delivery never regresses a recipient).", ReasonCode.STALE_VERSION)


# ----------------------------------------------------------------------------- a recipient's record


@dataclass
class RecipientState:
    """Per item, what one recipient (a province or the second-line platform) was given and confirmed."""

    recipient: str
    items: dict[str, ItemVersions] = field(default_factory=dict)
    tree_version: int = 0

    def get(self, item_id: str) -> ItemVersions:
        return self.items.get(item_id, ItemVersions())

    def record(self, decision: Decision) -> None:
        """Keep an accepted decision (after its delivery was handed over); refusals change nothing."""
        if decision.verdict in (Verdict.APPLY, Verdict.REVOKE):
            self.items[decision.item_id] = decision.after

    def confirm(self, receipt: DeliveryReceipt) -> ItemVersions:
        """Take a recipient's success mark: the confirmed version only ever goes up."""
        if receipt.company_code != self.recipient:
            raise ValueError(f"receipt from {receipt.company_code} fed to the record of {self.recipient}")
        current = self.get(receipt.item_id)
        if receipt.receipt_status is ReceiptStatus.accepted and receipt.version > current.confirmed:
            current = replace(current, confirmed=receipt.version, delivered=max(current.delivered, receipt.version))
            self.items[receipt.item_id] = current
        return current

    def record_response(self, response: SyncResponse) -> list[Decision]:
        """Keep what a sync response hands over (by the same rules as deliveries); returns the decisions.

        Versions of items and tombstones count as delivered once the response was handed
        over, exactly as if they had come one by one.
        """
        decisions = [judge(self.get(i.id), i.id, i.version, tombstone=False) for i in response.items]
        decisions += [judge(self.get(t.item_id), t.item_id, t.version, tombstone=True) for t in response.tombstones]
        for decision in decisions:
            self.record(decision)
        if response.category_tree is not None:
            self.tree_version = max(self.tree_version, response.category_tree.version)
        return decisions

    def unconfirmed(self) -> dict[str, int]:
        """Items delivered but not (yet) confirmed at that version: item id -> version delivered."""
        return {item_id: v.delivered for item_id, v in self.items.items() if v.delivered > v.confirmed}


def accept(state: RecipientState, delivery: KnowledgeDelivery) -> Decision:
    """The verdict on `delivery` for the recipient whose record is `state` (pure: `state` is unchanged).

    The hub calls it before forwarding a delivery to a recipient, and a recipient's own
    system can call it before applying one: same rules on both sides (module docstring).
    Keep the outcome with `state.record(decision)` once the delivery was handed over.
    """
    return judge(state.get(delivery.item_id), delivery.item_id, delivery.version,
                 tombstone=delivery.action is Action.revoke)


# ----------------------------------------------------------------------------- HQ's catalog


def catalog_digest(held: Mapping[str, int]) -> CatalogDigest:
    """SHA-256 of the lines 'ItemId:Version\\n' sorted by item id, in UTF-8 (knowledge.xsd, DigestType)."""
    sha = hashlib.sha256()
    for item_id in sorted(held):
        sha.update(f"{item_id}:{held[item_id]}\n".encode())
    return CatalogDigest(value=sha.hexdigest(), item_count=len(held))


@dataclass
class Catalog:
    """HQ's published knowledge for one recipient: live items and tombstones by id, and the structure."""

    items: dict[str, KnowledgeItem] = field(default_factory=dict)
    tombstones: dict[str, Tombstone] = field(default_factory=dict)
    tree: CategoryTree | None = None

    def __post_init__(self) -> None:
        both = self.items.keys() & self.tombstones.keys()
        if both:
            raise ValueError(f"items both live and revoked in the catalog: {sorted(both)[:5]}")

    @classmethod
    def build(cls, items: Iterable[KnowledgeItem] = (), tombstones: Iterable[Tombstone] = (),
              tree: CategoryTree | None = None) -> Catalog:
        return cls({i.id: i for i in items}, {t.item_id: t for t in tombstones}, tree)

    def versions(self) -> dict[str, int]:
        """Live item id -> published version."""
        return {item_id: item.version for item_id, item in self.items.items()}

    def digest(self) -> CatalogDigest:
        return catalog_digest(self.versions())

    def apply(self, delivery: KnowledgeDelivery) -> Decision:
        """Take a delivery HQ published into the catalog, by the same rules as a recipient."""
        item_id = delivery.item_id
        current = ItemVersions(delivered=self.items[item_id].version if item_id in self.items else 0,
                               revoked=self.tombstones[item_id].version if item_id in self.tombstones else None)
        decision = judge(current, item_id, delivery.version, tombstone=delivery.action is Action.revoke)
        if decision.verdict is Verdict.APPLY:
            self.items[item_id] = delivery.item  # type: ignore[assignment]
        elif decision.verdict is Verdict.REVOKE:
            self.items.pop(item_id, None)
            self.tombstones[item_id] = delivery.tombstone  # type: ignore[assignment]
        return decision


def diff(catalog: Catalog, recipient_known: Mapping[str, int], *, recipient: str, request_serial: str,
         at: datetime, tree_version: int = 0, mount_point: str | None = None) -> SyncResponse:
    """The SyncResponse for a recipient that holds `recipient_known` (item id -> version).

    Items to apply (lacking or older), tombstones (held but revoked), orphans (unknown to
    HQ, or a version HQ never issued) and the structure when `tree_version` is older; each
    list sorted by item id. SyncStatus is in_sync when there is nothing at all to send.
    """
    send: list[KnowledgeItem] = []
    tombstones: list[Tombstone] = []
    orphans: list[Orphan] = []
    items, revoked = catalog.items, catalog.tombstones
    for item_id, held in recipient_known.items():
        item = items.get(item_id)
        if item is not None:
            if held < item.version:
                send.append(item)
            elif held > item.version:
                orphans.append(Orphan(item_id=item_id, version=held, problem=OrphanProblem.version_ahead))
        elif item_id in revoked:
            tombstones.append(revoked[item_id])
        else:
            orphans.append(Orphan(item_id=item_id, version=held, problem=OrphanProblem.unknown_item))
    send.extend(item for item_id, item in items.items() if item_id not in recipient_known)
    tree = None
    if catalog.tree is not None and tree_version < catalog.tree.version:
        tree = structure.mount(catalog.tree, mount_point)
    anything = bool(send or tombstones or orphans or tree)
    return SyncResponse(
        company_code=recipient, request_serial_number=request_serial,
        sync_status=SyncStatus.difference if anything else SyncStatus.in_sync,
        responded_at=at, digest=catalog.digest(),
        items=tuple(sorted(send, key=lambda i: i.id)),
        tombstones=tuple(sorted(tombstones, key=lambda t: t.item_id)),
        orphans=tuple(sorted(orphans, key=lambda o: o.item_id)),
        category_tree=tree,
    )


def answer(catalog: Catalog, request: SyncRequest, *, at: datetime) -> SyncResponse:
    """HQ's answer to a (validated) SyncRequest: the difference for a Known list; for a Digest,
    in_sync when it matches HQ's, else list_required (the recipient sends its Known list)."""
    if request.known is not None:
        return diff(catalog, {ref.item_id: ref.version for ref in request.known}, recipient=request.company_code,
                    request_serial=request.serial_number, at=at, tree_version=request.tree_version,
                    mount_point=request.mount_point)
    ours = catalog.digest()
    tree = None
    if catalog.tree is not None and request.tree_version < catalog.tree.version:
        tree = structure.mount(catalog.tree, request.mount_point)
    if request.digest == ours:
        status = SyncStatus.difference if tree is not None else SyncStatus.in_sync
    else:
        status = SyncStatus.list_required
    return SyncResponse(company_code=request.company_code, request_serial_number=request.serial_number,
                        sync_status=status, responded_at=at, digest=ours, category_tree=tree)


def apply_response(held: Mapping[str, int], response: SyncResponse) -> dict[str, int]:
    """What a recipient holding `held` holds after applying `response` (the recipient's side).

    Items are applied through `judge`, so a response never regresses an item either;
    tombstones remove items; orphans are left for an operator to decide.
    """
    result = dict(held)
    for item in response.items:
        decision = judge(ItemVersions(delivered=result.get(item.id, 0)), item.id, item.version, tombstone=False)
        if decision.verdict is Verdict.APPLY:
            result[item.id] = item.version
    for tombstone in response.tombstones:
        result.pop(tombstone.item_id, None)
    return result
