"""The knowledge flow: nationwide knowledge sharing (全网知识共享) kept by the hub (docs/knowledge.md).

Owns: judging every knowledge message against HQ's records with the protocol's state
machines (protocols.knowledge.lifecycle, .fanout, .feedback, .versions) and recording the
step ahead of the publish (write-ahead, one store transaction per batch, idempotent by
message id, as the orders flow does):
- submissions (publish / update / revoke, resubmissions after a return, updates answering
  a feedback), HQ's review results, feedback, HQ's replies and forwards: the step must fit
  the item's or the feedback's state, else the sender gets ILLEGAL_TRANSITION (or
  STALE_VERSION, ITEM_REVOKED, UNKNOWN_REFERENCE) through Pipeline.refuse;
- deliveries: the approved version only; per recipient the version sync verdict
  (versions.judge): a recipient that holds a newer version or the tombstone does not get
  the copy (an out-of-order delivery never regresses a recipient); a fan-out record per
  version tracks every recipient's receipt; older versions' open fan-outs are superseded;
- receipts: the recipient's fan-out record and its confirmed version (never lowered);
- sync requests: the hub answers itself with knowledge.sync_response pages carrying the
  catalog difference (versions.answer): the missing or older items whole, the tombstones
  of revoked items (a revoked item never comes back), the orphans, and HQ's knowledge
  structure when the recipient's is older; what it re-sends counts as delivered and awaits
  the recipient's receipts like any delivery;
- the knowledge structure (知识结构, knowledge.structure): HQ's latest tree is kept; an older
  one is refused (STALE_VERSION); each recipient's copy is hung under its own root
  (MountPoint, protocols.knowledge.structure.mount) and its delivered / confirmed structure
  version kept; a DeliveryReceipt naming ItemId STRUCTURE confirms it;
- overdue receipts (config/knowledge.yaml): a durable timer per recipient of every version
  (and structure) handed over, cancelled by the receipt; when it fires first, HQ gets a
  knowledge.alarm (`alarm_output`, also used by the announcement flow for late replies).
Must not: validate fields (mappings/knowledge.py runs protocols.knowledge.rules at
ingress), choose routes (routes/knowledge.yaml) or publish (the hop does).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from hub.envelope import DELIVER_EXCHANGE, H_SOURCE, Outgoing, Props
from hub.flows.knowledge_settings import KnowledgeSettings, load_knowledge_settings
from hub.pipeline import Outcome, Pipeline, Verdict
from hub.settings import Settings
from hub.store import Store, Timer
from hub.store import knowledge as ks
from protocols import xmlwire
from protocols.errors import HubError, ProtocolViolation, ReasonCode, RejectedMessage, TransientFailure
from protocols.knowledge import feedback as fb
from protocols.knowledge import lifecycle, structure, versions, wire
from protocols.knowledge.fanout import FanOut, RecipientRecord, RecipientStatus
from protocols.knowledge.models import (
    Action,
    AlarmKind,
    CategoryTree,
    DeliveryReceipt,
    Feedback,
    FeedbackForward,
    FeedbackReply,
    KnowledgeAlarm,
    KnowledgeDelivery,
    KnowledgeSubmission,
    ReviewResult,
    SyncRequest,
    SyncResponse,
)

log = logging.getLogger("hub.flows.knowledge")

TYPES: dict[str, type] = {
    "knowledge.submit": KnowledgeSubmission,
    "knowledge.review": ReviewResult,
    "knowledge.delivery": KnowledgeDelivery,
    "knowledge.receipt": DeliveryReceipt,
    "knowledge.feedback": Feedback,
    "knowledge.feedback_reply": FeedbackReply,
    "knowledge.feedback_forward": FeedbackForward,
    "knowledge.sync_request": SyncRequest,
    "knowledge.structure": CategoryTree,
}
SYNC_RESPONSE_TYPE = "knowledge.sync_response"
ALARM_TYPE = "knowledge.alarm"
H_ALARM_KIND = "x-hub-alarm-kind"
H_ALARM_ZH = "x-hub-alarm-zh"
#: Kinds of the knowledge flow's timers (payload "kind"); the key names the subject and recipient.
RECEIPT_TIMER = "receipt"
STRUCTURE_TIMER = "structure"
ALARM_ZH = {
    AlarmKind.receipt_overdue: "接收方未在时限内回送知识下发成功标记",
    AlarmKind.structure_receipt_overdue: "接收方未在时限内回送知识结构成功标记",
    AlarmKind.reply_overdue: "接收方未在回复时限内回复公告",
}
_OPEN = (RecipientStatus.PENDING, RecipientStatus.DELIVERED)
H_SYNC_PAGE = "x-hub-sync-page"
H_SYNC_PAGES = "x-hub-sync-pages"
#: Items per knowledge.sync_response page (a page of 200 typical items is well under 1 MB).
SYNC_PAGE_SIZE = 200
#: HQ sends these back to back after the step they follow (a delivery after its approval, a
#: forward after the reply); on another lane one can overtake the other: retried once.
_MAY_OVERTAKE = frozenset({"knowledge.delivery", "knowledge.feedback_forward"})


def _unknown(detail: str, field: str, value: object) -> RejectedMessage:
    return RejectedMessage(detail, reason=ReasonCode.UNKNOWN_REFERENCE, field=field, value=value)


def receipt_timer_key(item_id: str, version: int, recipient: str) -> str:
    return f"knowledge/receipt/{item_id}/{version}/{recipient}"


def structure_timer_key(version: int, recipient: str) -> str:
    return f"knowledge/structure/{version}/{recipient}"


def alarm_message_id(kind: AlarmKind, subject: str, version: int | None, recipient: str) -> str:
    """Deterministic, so an alarm fired twice (a crash between publish and mark) is recognisable."""
    return f"alarm.{kind.value}.{subject}.{version or 0}.{recipient}"


def alarm_output(alarm: KnowledgeAlarm, directory, now: datetime, *, correlation_id: str | None = None,
                 text_zh: str) -> list[Outgoing]:
    """The knowledge.alarm to HQ (工作流监控 of the sharing flows); none when HQ is disabled."""
    hq = directory.hq
    if not hq.enabled:
        return []
    mid = alarm_message_id(alarm.kind, alarm.subject_id, alarm.version, alarm.company_code)
    props = Props(message_id=mid, type=ALARM_TYPE, correlation_id=correlation_id, content_type="application/xml",
                  content_encoding=hq.encoding, app_id="cs-hub", timestamp=int(now.timestamp()), delivery_mode=2,
                  headers={H_SOURCE: "hub", H_ALARM_KIND: alarm.kind.value, H_ALARM_ZH: text_zh})
    return [Outgoing(DELIVER_EXCHANGE, hq.queue, props, wire.dumps(alarm, hq.encoding))]


@dataclass
class _Batch:
    """What one batch read and changed, written at the end of its transaction."""

    items: dict[str, ks.StoredItem] = field(default_factory=dict)
    dirty_items: set[str] = field(default_factory=set)
    steps: list[dict[str, Any]] = field(default_factory=list)


class KnowledgeFlow:
    """The Flow (hub/flows/__init__.py) of nationwide knowledge sharing."""

    name = "knowledge"
    types = frozenset(TYPES)

    def __init__(self, settings: Settings, store: Store, pipeline_ref, *, page_size: int = SYNC_PAGE_SIZE,
                 knowledge_settings: KnowledgeSettings | None = None) -> None:
        self.settings = settings
        self.store = store
        self.pipeline_ref = pipeline_ref
        self.page_size = page_size
        self.config = knowledge_settings or load_knowledge_settings(settings.config_dir)
        self._handed: dict[str, list[tuple[str, int, str]]] = {}  # message id -> fan-out rows to mark delivered

    # --- before_publish ------------------------------------------------------------------
    def before_publish(self, batch: list[Outcome], now: datetime) -> None:
        work: list[tuple[Outcome, Any]] = []
        refusals: list[tuple[Outcome, HubError]] = []
        for o in batch:
            if o.verdict is not Verdict.delivered or o.type not in TYPES:
                continue
            try:
                root, _ = xmlwire.parse(o.incoming.body, o.incoming.props.content_encoding)
                work.append((o, wire.from_xml(root, validate=False)))
            except RejectedMessage as exc:
                refusals.append((o, exc))
        pipeline: Pipeline = self.pipeline_ref()
        if work:
            try:
                with self.store.transaction(write=True) as conn:
                    applied = ks.applied_message_ids(conn, [o.message_id for o, _ in work])
                    b = _Batch()
                    for o, message in work:
                        if o.message_id in applied:
                            log.info("knowledge message accepted again after a failed commit",
                                     extra={"message_id": o.message_id})
                            continue
                        try:
                            event, state, subject = self._judge(conn, b, o, message, now, pipeline)
                        except ProtocolViolation as exc:
                            if o.type in _MAY_OVERTAKE and o.attempts == 1:
                                exc = TransientFailure(f"{exc.detail} It may have overtaken the step it follows; "
                                                       "retried once.", reason=ReasonCode.OUT_OF_ORDER,
                                                       field=exc.field, value=exc.value)
                            refusals.append((o, exc))
                            continue
                        except (RejectedMessage, TransientFailure) as exc:
                            refusals.append((o, exc))
                            continue
                        if subject is not None:
                            b.steps.append({"message_id": o.message_id, "subject": subject, "event": event,
                                            "state": state, "recorded_at": now})
                    for item_id in b.dirty_items:
                        ks.save_item(conn, b.items[item_id], now)
                    ks.record_steps(conn, b.steps)
            except IntegrityError as exc:  # another hub process recorded the same item a moment ago
                raise TransientFailure(f"The knowledge records changed under this batch ({exc.orig}); the batch "
                                       "is judged again.", reason=ReasonCode.STORE_UNAVAILABLE) from exc
        for o, exc in refusals:
            self._handed.pop(o.message_id, None)
            pipeline.refuse(o, exc, now)
            log.warning("knowledge message refused" if o.verdict is Verdict.dead_lettered
                        else "knowledge message deferred",
                        extra={"message_id": o.message_id, "type": o.type, "source": o.source,
                               "reason_code": str(exc.reason), "field": exc.field, "error": exc.detail})

    def _item(self, conn, b: _Batch, item_id: str) -> ks.StoredItem | None:
        if item_id not in b.items:
            found = ks.load_items(conn, [item_id], for_update=True).get(item_id)
            if found is None:
                return None
            b.items[item_id] = found
        return b.items[item_id]

    def _judge(self, conn, b: _Batch, o: Outcome, message, now: datetime,
               pipeline: Pipeline) -> tuple[str, str, str | None]:
        """Apply one message; returns (event, new state, subject) for the step history."""
        if isinstance(message, KnowledgeSubmission):
            return self._submission(conn, b, message, now)
        if isinstance(message, ReviewResult):
            stored = self._known(conn, b, message.item_id)
            event = lifecycle.event_for(stored.lifecycle, message)
            stored.lifecycle.handle(event)
            b.dirty_items.add(message.item_id)
            return event.describe(), stored.lifecycle.state.value, f"item/{message.item_id}"
        if isinstance(message, KnowledgeDelivery):
            return self._delivery(conn, b, o, message, now, pipeline)
        if isinstance(message, DeliveryReceipt):
            return self._receipt(conn, b, message, now)
        if isinstance(message, Feedback):
            stored = self._item(conn, b, message.item_id)
            fb.check_target(message, stored.lifecycle if stored else None)
            if ks.load_feedback(conn, message.key) is not None:
                raise RejectedMessage(f"Feedback {message.company_code}/{message.feedback_id} was already submitted; "
                                      "give every feedback a new FeedbackId (反馈编号).",
                                      reason=ReasonCode.DUPLICATE, field="FeedbackId", value=message.feedback_id)
            thread = fb.FeedbackThread.for_feedback(message)
            thread.handle(fb.event_for(thread, message))
            ks.save_feedback(conn, thread, now, new=True)
            return "Submit", thread.state.value, f"feedback/{message.company_code}/{message.feedback_id}"
        if isinstance(message, FeedbackReply | FeedbackForward):
            thread = ks.load_feedback(conn, message.key)
            if thread is None:
                raise _unknown(f"HQ has no feedback {message.company_code}/{message.feedback_id}. Check CompanyCode "
                               "(公司编号) and FeedbackId (反馈编号).", "FeedbackId", message.feedback_id)
            if isinstance(message, FeedbackForward):
                stored = self._known(conn, b, message.item_id)
                if message.owner_node != stored.lifecycle.owner:
                    raise RejectedMessage(
                        f"Item {message.item_id} is owned by {stored.lifecycle.owner!r}, not {message.owner_node!r}; "
                        "a feedback goes down to the item's owner.", reason=ReasonCode.FIELD_INVALID,
                        field="OwnerNode", value=message.owner_node)
            event = fb.event_for(thread, message)
            thread.handle(event)
            ks.save_feedback(conn, thread, now, new=False)
            return event.describe(), thread.state.value, f"feedback/{message.company_code}/{message.feedback_id}"
        if isinstance(message, SyncRequest):
            self._sync(conn, o, message, now, pipeline)
            return "SyncRequest", "ANSWERED", None
        if isinstance(message, CategoryTree):
            return self._structure(conn, o, message, now, pipeline)
        raise TypeError(type(message).__name__)

    def _known(self, conn, b: _Batch, item_id: str) -> ks.StoredItem:
        stored = self._item(conn, b, item_id)
        if stored is None:
            raise _unknown(f"HQ has no knowledge item {item_id}. Check ItemId (知识编号).", "ItemId", item_id)
        return stored

    # --- submissions ---------------------------------------------------------------------
    def _submission(self, conn, b: _Batch, sub: KnowledgeSubmission, now: datetime) -> tuple[str, str, str]:
        stored = self._item(conn, b, sub.item.id)
        if stored is None:
            if sub.action is not Action.publish:
                raise _unknown(f"The {sub.action.value} names item {sub.item.id}, which HQ has never published. "
                               "Check Item/Id (知识编号).", "Item/Id", sub.item.id)
            stored = ks.StoredItem(lifecycle.ItemLifecycle.for_submission(sub), new=True)
            b.items[sub.item.id] = stored
        event = lifecycle.event_for(stored.lifecycle, sub)
        thread = None
        if sub.feedback_ref is not None:
            thread = ks.load_feedback(conn, (sub.feedback_ref.company_code, sub.feedback_ref.feedback_id))
            if thread is None:
                raise _unknown(f"HQ has no feedback {sub.feedback_ref.company_code}/{sub.feedback_ref.feedback_id}.",
                               "FeedbackRef", sub.feedback_ref.feedback_id)
            fb_event = fb.event_for(thread, sub)
        stored.lifecycle.handle(event)
        if thread is not None:
            thread.handle(fb_event)
            ks.save_feedback(conn, thread, now, new=False)
        b.dirty_items.add(sub.item.id)
        return event.describe(), stored.lifecycle.state.value, f"item/{sub.item.id}"

    # --- deliveries ----------------------------------------------------------------------
    def _delivery(self, conn, b: _Batch, o: Outcome, d: KnowledgeDelivery, now: datetime,
                  pipeline: Pipeline) -> tuple[str, str, str]:
        stored = self._known(conn, b, d.item_id)
        life = stored.lifecycle
        tomb = d.action is Action.revoke
        at_hq = versions.judge(versions.ItemVersions(delivered=life.published_version, revoked=life.revoked_version),
                               d.item_id, d.version, tombstone=tomb)
        if at_hq.verdict is versions.Verdict.REFUSE:
            raise at_hq.error()
        resend = at_hq.verdict is versions.Verdict.DUPLICATE
        if not resend:
            event = lifecycle.event_for(life, d)
            life.handle(event)
            stored.item, stored.tombstone = (None, d.tombstone) if tomb else (d.item, None)
            stored.recipients, stored.published_at = tuple(d.recipients), now
            b.dirty_items.add(d.item_id)
            for old in ks.open_fanouts(conn, d.item_id, d.version):
                old.supersede(now)
                ks.save_fanout(conn, old)
        # Per recipient: the version sync verdict decides who gets this copy.
        by_queue = {pipeline.cfg.directory.by_code[c].queue: c for c in d.recipients
                    if c in pipeline.cfg.directory.by_code}
        held = ks.load_versions(conn, [(c, d.item_id) for c in d.recipients])
        fan = ks.load_fanout(conn, d.item_id, d.version) or FanOut.start(d.item_id, d.version, d.action, d.recipients)
        for code in d.recipients:
            fan.recipients.setdefault(code, RecipientRecord())
        keep: set[str] = set()
        changes: dict[tuple[str, str], versions.ItemVersions] = {}
        for code in d.recipients:
            current = held.get((code, d.item_id), versions.ItemVersions())
            decision = versions.judge(current, d.item_id, d.version, tombstone=tomb)
            record = fan.recipients[code]
            if decision.accepted:
                keep.add(code)
                changes[(code, d.item_id)] = decision.after
            elif decision.verdict is versions.Verdict.DUPLICATE and current.confirmed < d.version:
                keep.add(code)  # handed over before, not confirmed: a re-send
                changes[(code, d.item_id)] = current
            elif record.status in (RecipientStatus.PENDING, RecipientStatus.DELIVERED, RecipientStatus.REJECTED):
                fan.recipients[code].status = RecipientStatus.SUPERSEDED
                log.info("delivery not forwarded: the recipient holds a newer version or the tombstone",
                         extra={"message_id": o.message_id, "item": d.item_id, "version": d.version,
                                "recipient": code, "reason_code": str(decision.reason or "DUPLICATE")})
        if not keep:
            raise RejectedMessage(
                f"No recipient needs {d.item_id} version {d.version}: each holds it confirmed, a newer version or the "
                "tombstone.", reason=ReasonCode.DUPLICATE if resend else ReasonCode.STALE_VERSION,
                field="Version", value=d.version)
        outputs = [(out, dest) for out, dest in zip(o.outputs, o.destinations, strict=False)]
        o.outputs = [out for out, _ in outputs if by_queue.get(out.routing_key) in keep]
        o.destinations = [dest for out, dest in outputs if by_queue.get(out.routing_key) in keep]
        ks.write_versions(conn, changes, now=now)
        ks.save_fanout(conn, fan)
        self._arm_receipts(conn, [(d.item_id, d.version, c) for c in keep], now)
        self._handed[o.message_id] = [(d.item_id, d.version, c) for c in keep]
        return ("Resend" if resend else f"{'Revoke' if tomb else 'Publish'}"), life.state.value, f"item/{d.item_id}"

    # --- receipts ------------------------------------------------------------------------
    def _arm_receipts(self, conn, triples: list[tuple[str, int, str]], now: datetime) -> None:
        """A receipt timer per (item, version, recipient) handed over; a re-send starts the wait again."""
        within = self.config.receipt_within
        if within is None or not triples:
            return
        due = now + within
        ks.arm_timers(conn, [(receipt_timer_key(i, v, c), due, {"flow": self.name, "kind": RECEIPT_TIMER,
                                                                 "item": i, "version": v, "recipient": c})
                             for i, v, c in triples], replace=True)

    def _receipt(self, conn, b: _Batch, r: DeliveryReceipt, now: datetime) -> tuple[str, str, str]:
        if r.item_id == structure.STRUCTURE_ID:
            return self._structure_receipt(conn, r, now)
        self._known(conn, b, r.item_id)
        fan = ks.load_fanout(conn, r.item_id, r.version)
        if fan is None:
            raise _unknown(f"HQ never delivered {r.item_id} version {r.version}. Check ItemId (知识编号) and Version "
                           "(版本号).", "Version", r.version)
        status = fan.receipt(r)
        ks.save_fanout(conn, fan, only=[r.company_code])
        ks.cancel_timers(conn, [receipt_timer_key(r.item_id, r.version, r.company_code)])
        if status is RecipientStatus.CONFIRMED:
            ks.write_versions(conn, {(r.company_code, r.item_id): versions.ItemVersions(r.version, r.version)},
                              now=now, confirmed_at=now)
        return f"Receipt({r.receipt_status.value})", status.value, f"item/{r.item_id}"

    # --- sync requests -------------------------------------------------------------------
    def _sync(self, conn, o: Outcome, request: SyncRequest, now: datetime, pipeline: Pipeline) -> None:
        code = request.company_code
        if request.mount_point is None and code in self.config.mount_points:
            request = request.model_copy(update={"mount_point": self.config.mount_points[code]})
        catalog = ks.catalog_for(conn, code)
        hq_tree = ks.load_tree(conn)
        catalog.tree = hq_tree
        answer = versions.answer(catalog, request, at=now)
        # The request states the structure version the recipient holds (never above HQ's): confirmed.
        confirmed = min(request.tree_version, hq_tree.version if hq_tree else 0)
        tree_sent = answer.category_tree.version if answer.category_tree is not None else 0
        ks.write_tree_versions(conn, {code: ks.TreeVersions(max(tree_sent, confirmed), confirmed,
                                                            request.mount_point)}, now=now)
        if tree_sent:
            self._arm_structure(conn, tree_sent, [code], now)
        pages = self._pages(answer)
        node = pipeline.cfg.directory.by_code[code]
        for n, page in enumerate(pages, start=1):
            props = Props(message_id=f"{o.message_id}.sync.{n}", type=SYNC_RESPONSE_TYPE,
                          correlation_id=o.message_id, content_type="application/xml",
                          content_encoding=node.encoding, app_id="cs-hub", timestamp=int(now.timestamp()),
                          delivery_mode=2, headers={H_SOURCE: "hub", H_SYNC_PAGE: n, H_SYNC_PAGES: len(pages)})
            o.outputs.append(Outgoing(DELIVER_EXCHANGE, node.queue, props, wire.dumps(page, node.encoding)))
            o.destinations.append(node.queue)
        # What the answer re-sends counts as delivered, and awaits the recipient's receipts.
        sent = [(i.id, i.version, False) for i in answer.items] + [(t.item_id, t.version, True)
                                                                    for t in answer.tombstones]
        if not sent:
            log.info("sync request answered", extra={"message_id": o.message_id, "recipient": code,
                                                     "status": answer.sync_status.value})
            return
        held = ks.load_versions(conn, [(code, item_id) for item_id, _, _ in sent])
        changes = {}
        triples = []
        for item_id, version, tomb in sent:
            decision = versions.judge(held.get((code, item_id), versions.ItemVersions()), item_id, version,
                                      tombstone=tomb)
            changes[(code, item_id)] = decision.after if decision.accepted else held.get(
                (code, item_id), versions.ItemVersions())
            triples.append((item_id, version, code))
        ks.write_versions(conn, changes, now=now)
        ks.open_receipts(conn, triples)
        self._arm_receipts(conn, triples, now)
        self._handed[o.message_id] = triples
        log.info("sync request answered", extra={
            "message_id": o.message_id, "recipient": code, "status": answer.sync_status.value,
            "items": len(answer.items), "tombstones": len(answer.tombstones), "orphans": len(answer.orphans),
            "pages": len(pages)})

    def _pages(self, answer: SyncResponse) -> list[SyncResponse]:
        items = answer.items
        if len(items) <= self.page_size:
            return [answer]
        pages = []
        for i in range(0, len(items), self.page_size):
            first = i == 0
            pages.append(answer.model_copy(update={
                "items": items[i:i + self.page_size],
                "tombstones": answer.tombstones if first else (), "orphans": answer.orphans if first else (),
                "category_tree": answer.category_tree if first else None}))
        return pages

    # --- after_commit: the broker took the deliveries ------------------------------------
    def after_commit(self, batch: list[Outcome], now: datetime) -> None:
        triples = []
        for o in batch:
            handed = self._handed.pop(o.message_id, None)
            if handed and o.verdict is Verdict.delivered:
                triples.extend(handed)
        if len(self._handed) > 10 * self.settings.hop.prefetch:
            self._handed.clear()
        if triples:
            with self.store.transaction(write=True) as conn:
                ks.mark_delivered(conn, triples, now)

    # --- the knowledge structure ---------------------------------------------------------
    def _structure(self, conn, o: Outcome, tree: CategoryTree, now: datetime,
                   pipeline: Pipeline) -> tuple[str, str, str]:
        held_at_hq = ks.load_tree(conn)
        current = held_at_hq.version if held_at_hq is not None else 0
        newer = structure.tree_is_newer(current, tree)  # an older tree: STALE_VERSION to HQ
        if newer:
            ks.save_tree(conn, tree, now)
        directory = pipeline.cfg.directory
        by_queue = {node.queue: code for code, node in directory.by_code.items()}
        codes = [by_queue[out.routing_key] for out in o.outputs if out.routing_key in by_queue]
        held = ks.load_tree_versions(conn, codes)
        keep = {c for c in codes if held.get(c, ks.TreeVersions()).confirmed < tree.version}
        if not keep:
            raise RejectedMessage(f"Every recipient already confirmed knowledge structure version {tree.version}.",
                                  reason=ReasonCode.DUPLICATE, field="Version", value=tree.version)
        outputs, destinations = [], []
        for out, dest in zip(o.outputs, o.destinations, strict=False):
            code = by_queue.get(out.routing_key)
            if code not in keep:
                continue
            node = directory.by_code[code]
            mount_point = self.config.mount_points.get(code) or held.get(code, ks.TreeVersions()).mount_point
            body = wire.dumps(structure.mount(tree, mount_point), node.encoding)
            outputs.append(dataclasses.replace(out, body=body))
            destinations.append(dest)
        o.outputs, o.destinations = outputs, destinations
        ks.write_tree_versions(conn, {c: ks.TreeVersions(delivered=tree.version) for c in keep}, now=now)
        self._arm_structure(conn, tree.version, sorted(keep), now)
        log.info("knowledge structure handed to the recipients", extra={
            "message_id": o.message_id, "version": tree.version, "recipients": len(keep), "resend": not newer})
        return ("Structure" if newer else "StructureResend"), "PUBLISHED", f"structure/{tree.version}"

    def _arm_structure(self, conn, version: int, codes: list[str], now: datetime) -> None:
        within = self.config.structure_receipt_within
        if within is None:
            return
        due = now + within
        ks.arm_timers(conn, [(structure_timer_key(version, c), due, {"flow": self.name, "kind": STRUCTURE_TIMER,
                                                                     "version": version, "recipient": c})
                             for c in codes], replace=True)

    def _structure_receipt(self, conn, r: DeliveryReceipt, now: datetime) -> tuple[str, str, str]:
        held = ks.load_tree_versions(conn, [r.company_code]).get(r.company_code)
        if held is None or held.delivered < r.version:
            raise _unknown(f"HQ never handed knowledge structure version {r.version} to {r.company_code}. Check "
                           "Version (版本号).", "Version", r.version)
        ks.cancel_timers(conn, [structure_timer_key(r.version, r.company_code)])
        if r.receipt_status.value == "accepted":
            ks.write_tree_versions(conn, {r.company_code: ks.TreeVersions(confirmed=r.version)}, now=now)
            return "Receipt(accepted)", "CONFIRMED", f"structure/{r.version}"
        log.warning("knowledge structure rejected by a recipient", extra={
            "recipient": r.company_code, "version": r.version, "reason_code": r.refusal_code, "error": r.reason})
        return "Receipt(rejected)", "REJECTED", f"structure/{r.version}"

    # --- timers: overdue receipts --------------------------------------------------------
    def on_timer(self, timer: Timer, now: datetime) -> list[Outgoing]:
        p = timer.payload or {}
        kind, code, version = p.get("kind"), str(p.get("recipient", "")), int(p.get("version", 0))
        with self.store.transaction(write=True) as conn:
            if kind == RECEIPT_TIMER:
                item_id = str(p.get("item", ""))
                fan = ks.load_fanout(conn, item_id, version)
                record = fan.recipients.get(code) if fan is not None else None
                if record is None or record.status not in _OPEN:
                    log.info("knowledge receipt timer: nothing missing", extra={"timer": timer.key})
                    return []
                alarm = KnowledgeAlarm(kind=AlarmKind.receipt_overdue, subject_id=item_id, version=version,
                                       company_code=code, deadline=timer.due_at, raised_at=now)
                subject, text = f"item/{item_id}", f"知识共享告警:{code} 未回送知识 {item_id} 第 {version} 版的下发成功标记"
            elif kind == STRUCTURE_TIMER:
                held = ks.load_tree_versions(conn, [code]).get(code, ks.TreeVersions())
                hq_tree = ks.load_tree(conn)
                if held.confirmed >= version or (hq_tree is not None and hq_tree.version > version):
                    log.info("knowledge structure timer: nothing missing", extra={"timer": timer.key})
                    return []
                alarm = KnowledgeAlarm(kind=AlarmKind.structure_receipt_overdue, subject_id=structure.STRUCTURE_ID,
                                       version=version, company_code=code, deadline=timer.due_at, raised_at=now)
                subject, text = f"structure/{version}", f"知识共享告警:{code} 未回送知识结构第 {version} 版的成功标记"
            else:
                log.error("knowledge timer of an unknown kind", extra={"timer": timer.key, "kind": kind})
                return []
            mid = alarm_message_id(alarm.kind, alarm.subject_id, alarm.version, code)
            if not ks.applied_message_ids(conn, [mid]):
                ks.record_steps(conn, [{"message_id": mid, "subject": subject, "event": f"Overdue({code})",
                                        "state": "ALARMED", "recorded_at": now}])
        log.warning("knowledge alarm raised", extra={"message_id": mid, "kind": alarm.kind.value, "recipient": code,
                                                     "subject": subject, "deadline": timer.due_at.isoformat()})
        return alarm_output(alarm, self.pipeline_ref().cfg.directory, now, text_zh=f"{text}({ALARM_ZH[alarm.kind]})")
