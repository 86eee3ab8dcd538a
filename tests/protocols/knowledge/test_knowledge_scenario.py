"""Scenario 2 of the domain end to end, HQ and 32 recipients wired together in memory through the wire format.

A new nationwide service launches: the second-line platform submits its tariff knowledge, HQ
returns it once with an opinion and approves the resubmission; all 31 provinces and the
second-line platform receive it, Sichuan's SOAP CRM is down for an hour and catches up through a
sync request; Guangdong (GBK) reports that the tariff is wrong; HQ replies, forwards the feedback
to the second-line platform, which updates the item to version 2; Guangxi sees version 2 before
version 1 and keeps version 2. Every message travels as bytes and passes the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from knowledge_golden import HQ, ITEM, RECIPIENTS, SECOND_LINE, golden, sender_of, tree

from protocols.knowledge import feedback, lifecycle, rules, wire
from protocols.knowledge.fanout import FanOut, RecipientStatus
from protocols.knowledge.models import ItemRef, KnowledgeDelivery, ReceiptStatus, ReviewOutcome, SyncRequest
from protocols.knowledge.versions import Catalog, RecipientState, Verdict, accept, answer

ENCODING = {"44": "gbk"}  # Guangdong's legacy CRM speaks GBK
SOAP_DOWN = "51"          # Sichuan's SOAP CRM is down for an hour after the first publication
LATE_V1 = "45"            # Guangxi gets version 1 only after version 2


def hop(message, sender: str, now: datetime):
    """One message over the bus: bytes in the sender's encoding, parsed, validated against the rules."""
    encoding = ENCODING.get(sender, "utf-8")
    received = wire.loads(wire.dumps(message, encoding), encoding)
    assert received == message
    return rules.validate(received, sender=sender, now=now)


@dataclass
class Recipient:
    """A province CRM or the second-line platform: applies deliveries by the version rules, sends receipts."""

    code: str
    state: RecipientState = None  # type: ignore[assignment]
    holds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = RecipientState(self.code)

    def receive(self, delivery: KnowledgeDelivery, at: datetime):
        decision = accept(self.state, delivery)
        self.state.record(decision)
        if decision.verdict is Verdict.APPLY:
            self.holds[delivery.item_id] = delivery.version
        return decision.receipt(self.code, at)


@dataclass
class Hq:
    """HQ's side: the item's lifecycle, the catalog, one fan-out per version, per-recipient records."""

    catalog: Catalog = field(default_factory=lambda: Catalog(tree=tree()))
    item: lifecycle.ItemLifecycle | None = None
    fanouts: dict[int, FanOut] = field(default_factory=dict)
    records: dict[str, RecipientState] = field(default_factory=lambda: {c: RecipientState(c) for c in RECIPIENTS})

    def take(self, message, now: datetime) -> None:
        if self.item is None:
            self.item = lifecycle.ItemLifecycle.for_submission(message)
        self.item.handle(lifecycle.event_for(self.item, hop(message, sender_of(message), now)))

    def publish(self, delivery: KnowledgeDelivery, recipients: dict[str, Recipient], now: datetime,
                down: set[str] = frozenset(), hold_back: set[str] = frozenset()) -> list:
        delivery = hop(delivery, HQ, now)
        self.item.handle(lifecycle.event_for(self.item, delivery))
        assert self.catalog.apply(delivery).verdict is Verdict.APPLY
        for older in self.fanouts.values():
            older.supersede(now)
        self.fanouts[delivery.version] = FanOut.for_delivery(delivery)
        receipts = []
        for code in delivery.recipients:
            if code in down or code in hold_back:
                continue
            receipts.append(self.forward(delivery, code, recipients[code], now))
        return receipts

    def forward(self, delivery: KnowledgeDelivery, code: str, recipient: Recipient, now: datetime):
        decision = accept(self.records[code], delivery)
        if not decision.accepted:
            return decision  # the hub itself drops a stale delivery: the recipient never sees it
        self.records[code].record(decision)
        self.fanouts[delivery.version].delivered(code, now)
        receipt = hop(recipient.receive(delivery, now + timedelta(seconds=5)), code, now + timedelta(seconds=10))
        self.take_receipt(receipt)
        return receipt

    def take_receipt(self, receipt) -> None:
        self.fanouts[receipt.version].receipt(receipt)
        self.records[receipt.company_code].confirm(receipt)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_scenario_2():
    hq = Hq()
    recipients = {code: Recipient(code) for code in RECIPIENTS}

    # The second-line platform submits; HQ returns it once with an opinion; the resubmission is approved.
    for name in ("submission_publish.xml", "review_returned.xml", "submission_publish_resubmitted.xml",
                 "review_approved.xml"):
        hq.take(golden(name), at("2024-07-02T10:00:00+08:00"))
    assert hq.item.state is lifecycle.State.APPROVED and hq.item.returns == 1

    # HQ publishes version 1 to 31 provinces and the second-line platform; Sichuan's CRM is down,
    # Guangxi's copy is delayed in a retry queue.
    v1 = golden("delivery_publish.xml")
    t1 = at("2024-07-02T10:05:00+08:00")
    receipts = hq.publish(v1, recipients, t1, down={SOAP_DOWN}, hold_back={LATE_V1})
    assert len(receipts) == 30 and all(r.receipt_status is ReceiptStatus.accepted for r in receipts)
    fan1 = hq.fanouts[1]
    assert set(fan1.outstanding()) == {SOAP_DOWN, LATE_V1}
    assert fan1.with_status(RecipientStatus.PENDING) == (LATE_V1, SOAP_DOWN)  # recipient order: 45 before 51

    # An hour later Sichuan's CRM is back and asks for a sync with what it holds (nothing yet).
    t2 = t1 + timedelta(hours=1)
    request = SyncRequest(company_code=SOAP_DOWN, serial_number="20240702-0001", requested_at=t2, tree_version=0,
                          mount_point="SC-KB-ROOT", known=())
    response = hop(answer(hq.catalog, hop(request, SOAP_DOWN, t2), at=t2), HQ, t2)
    assert [(i.id, i.version) for i in response.items] == [(ITEM, 1)]
    assert response.category_tree.mount_point == "SC-KB-ROOT"
    hq.records[SOAP_DOWN].record_response(response)
    fan1.delivered(SOAP_DOWN, t2)
    sichuan = recipients[SOAP_DOWN]
    for item in response.items:
        delivery = KnowledgeDelivery(action="publish", recipients=(SOAP_DOWN,), published_at=t2, item=item)
        hq.take_receipt(hop(sichuan.receive(delivery, t2 + timedelta(seconds=3)), SOAP_DOWN, t2))
    assert sichuan.holds == {ITEM: 1}
    assert fan1.outstanding() == (LATE_V1,)

    # Guangdong finds the tariff wrong; HQ replies and forwards the feedback to the owner.
    t3 = at("2024-07-03T15:10:00+08:00")
    fb = hop(golden("feedback.gbk.xml"), "44", t3)
    feedback.check_target(fb, hq.item)
    thread = feedback.FeedbackThread.for_feedback(fb)
    for message in (fb, hop(golden("feedback_reply.xml"), HQ, t3), hop(golden("feedback_forward.xml"), HQ, t3)):
        thread.handle(feedback.event_for(thread, message))
    assert thread.state is feedback.State.FORWARDED and thread.owner == SECOND_LINE

    # The second-line platform updates the item to version 2; HQ approves and publishes it.
    t4 = at("2024-07-04T09:35:00+08:00")
    update = golden("submission_update.xml")
    thread.handle(feedback.event_for(thread, update))
    hq.take(update, t4)
    hq.take(golden("review_update_approved.xml"), t4)
    assert thread.state is feedback.State.UPDATE_STARTED and thread.update_version == 2
    v2 = lifecycle.delivery_for(update, recipients=RECIPIENTS, reviewer="王建华", at=t4)
    assert v2 == golden("delivery_update.xml")
    hq.publish(v2, recipients, t4)
    assert hq.fanouts[2].complete and hq.item.published_version == 2
    assert fan1.with_status(RecipientStatus.SUPERSEDED) == (LATE_V1,)  # v1 no longer awaited there

    # Guangxi's delayed version 1 finally comes out of the retry queue: the hub drops it ...
    late = hq.forward(v1, LATE_V1, recipients[LATE_V1], t4 + timedelta(minutes=1))
    assert (late.verdict, late.reason.value) == (Verdict.REFUSE, "STALE_VERSION")
    # ... and had it reached Guangxi's CRM directly, the CRM would refuse it too and keep version 2.
    receipt = hop(recipients[LATE_V1].receive(v1, t4 + timedelta(minutes=1)), LATE_V1, t4 + timedelta(minutes=2))
    assert (receipt.receipt_status, receipt.refusal_code) == (ReceiptStatus.rejected, "STALE_VERSION")
    hq.take_receipt(receipt)
    assert fan1.complete

    # Everyone ends with version 2; a sync from anyone is now in sync.
    assert {code: r.holds for code, r in recipients.items()} == {code: {ITEM: 2} for code in RECIPIENTS}
    t5 = t4 + timedelta(hours=1)
    for code in (SOAP_DOWN, LATE_V1, "11"):
        request = SyncRequest(company_code=code, serial_number="20240704-0099", requested_at=t5, tree_version=3,
                              known=(ItemRef(item_id=ITEM, version=2),))
        assert answer(hq.catalog, request, at=t5).sync_status.value == "in_sync"
    assert hq.item.history[-1][1] is lifecycle.State.PUBLISHED
    assert lifecycle.review_result(update, ReviewOutcome.approved, reviewer="王建华",
                                   at=at("2024-07-04T09:30:00+08:00")) == golden("review_update_approved.xml")
