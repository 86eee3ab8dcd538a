"""Knowledge messages as HQ, the second-line platform and the provinces send them (built with the
protocol's models, written with protocols.knowledge.wire)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from protocols.knowledge import wire
from protocols.knowledge.models import (
    Action,
    DeliveryReceipt,
    Feedback,
    FeedbackForward,
    FeedbackRef,
    FeedbackReply,
    ItemRef,
    KnowledgeDelivery,
    KnowledgeItem,
    KnowledgeStatus,
    KnowledgeSubmission,
    ReceiptStatus,
    ReviewOutcome,
    ReviewResult,
    SyncRequest,
    Tombstone,
)

CHINA = timezone(timedelta(hours=8))
PROVINCES = ("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
             "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65")


def now() -> datetime:
    return datetime.now(UTC).astimezone(CHINA).replace(microsecond=0) - timedelta(seconds=5)


def item(item_id: str, version: int, *, status: str = "submitted", title: str = "5G新通话业务资费说明",
         reviewer: str | None = None) -> KnowledgeItem:
    return KnowledgeItem(id=item_id, version=version, title=title, content=f"第 {version} 版:5G 新通话的资费与开通方式。",
                         category_path=("NATIONWIDE", "NEW_SERVICE"), status=KnowledgeStatus(status),
                         effective_date=now(), owner_node="99", author="陈思远", reviewer=reviewer)


def new_id() -> str:
    return f"KN-99-{uuid.uuid4().hex[:12]}"


def serial() -> str:
    return uuid.uuid4().hex[:16]


def submit(item_id: str, version: int, action: str = "publish", *, sn: str | None = None,
           feedback: tuple[str, str] | None = None) -> tuple[bytes, KnowledgeSubmission]:
    sub = KnowledgeSubmission(serial_number=sn or serial(), action=Action(action), submitter_code="99",
                              local_reviewer="李明", submitted_at=now(), item=item(item_id, version),
                              note="撤销:业务下线" if action == "revoke" else None,
                              feedback_ref=FeedbackRef(company_code=feedback[0], feedback_id=feedback[1])
                              if feedback else None)
    return wire.dumps(sub), sub


def review(sub: KnowledgeSubmission, outcome: str = "approved", opinion: str | None = None) -> bytes:
    return wire.dumps(ReviewResult(submitter_code=sub.submitter_code, submission_serial_number=sub.serial_number,
                                   action=sub.action, item_id=sub.item.id, version=sub.item.version,
                                   outcome=ReviewOutcome(outcome), opinion=opinion, reviewer_at_hq="王建华",
                                   reviewed_at=now()))


def delivery(sub: KnowledgeSubmission, recipients) -> bytes:
    if sub.action is Action.revoke:
        return wire.dumps(KnowledgeDelivery(action=sub.action, recipients=tuple(recipients), published_at=now(),
                                            tombstone=Tombstone(item_id=sub.item.id, version=sub.item.version,
                                                                owner_node="99", revoked_at=now(), note=sub.note)))
    published = sub.item.model_copy(update={"status": KnowledgeStatus.published, "reviewer": "王建华"})
    return wire.dumps(KnowledgeDelivery(action=sub.action, recipients=tuple(recipients), published_at=now(),
                                        item=published))


def receipt(code: str, item_id: str, version: int) -> bytes:
    return wire.dumps(DeliveryReceipt(company_code=code, item_id=item_id, version=version,
                                      receipt_status=ReceiptStatus.accepted, received_at=now()))


def feedback(code: str, fid: str, item_id: str, version: int) -> bytes:
    return wire.dumps(Feedback(company_code=code, feedback_id=fid, item_id=item_id, version=version,
                               text="资费说明缺少国际漫游的情况。", author="黄丽", local_reviewer="刘洋",
                               submitted_at=now()))


def feedback_reply(code: str, fid: str, item_id: str) -> bytes:
    return wire.dumps(FeedbackReply(company_code=code, feedback_id=fid, item_id=item_id,
                                    disposition="change_required", reply_text="已转知识归属二线修改。",
                                    replier="王建华", replied_at=now()))


def feedback_forward(code: str, fid: str, item_id: str, version: int) -> bytes:
    return wire.dumps(FeedbackForward(owner_node="99", company_code=code, feedback_id=fid, item_id=item_id,
                                      version=version, text="资费说明缺少国际漫游的情况。", opinion="请补充国际漫游资费。",
                                      forwarded_by="王建华", forwarded_at=now()))


def sync_request(code: str, known: dict[str, int]) -> bytes:
    return wire.dumps(SyncRequest(company_code=code, serial_number=serial(), requested_at=now(), tree_version=0,
                                  known=tuple(ItemRef(item_id=k, version=v) for k, v in known.items())))
