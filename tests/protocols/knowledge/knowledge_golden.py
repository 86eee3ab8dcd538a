"""Golden knowledge messages, the fixed clock and the scenario-2 catalog of the knowledge tests.

Owns: where the golden files live, how a test reads them, and the small fixtures built from
them (the 31 provinces + second-line recipient list, HQ's catalog for Sichuan). Pure: no
broker, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from protocols.knowledge import wire
from protocols.knowledge.models import CategoryTree, KnowledgeItem, KnowledgeStatus
from protocols.knowledge.versions import Catalog

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent / "golden"
#: The hub's clock in the tests: 2024-07-05 10:00 +08:00, after every golden message.
NOW = datetime(2024, 7, 5, 2, 0, 0, tzinfo=UTC)
HQ, SECOND_LINE = "00", "99"
ITEM = "KN-99-20240701-0001"  # scenario 2: the new nationwide service's tariff knowledge
OLD_ITEM = "KN-99-20230315-0042"  # revoked at version 4

#: The 31 provinces (GB/T 2260, domain 10) and every recipient of a nationwide item.
PROVINCES = ("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
             "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65")
RECIPIENTS = (*PROVINCES, SECOND_LINE)

#: Every golden file and the message type it holds, in the order of scenario 2.
GOLDEN_FILES = {
    "submission_publish.xml": "KnowledgeSubmission",
    "review_returned.xml": "ReviewResult",
    "submission_publish_resubmitted.xml": "KnowledgeSubmission",
    "review_approved.xml": "ReviewResult",
    "delivery_publish.xml": "KnowledgeDelivery",
    "delivery_receipt.xml": "DeliveryReceipt",
    "feedback.xml": "Feedback",
    "feedback.gbk.xml": "Feedback",
    "feedback_reply.xml": "FeedbackReply",
    "feedback_forward.xml": "FeedbackForward",
    "submission_update.xml": "KnowledgeSubmission",
    "review_update_approved.xml": "ReviewResult",
    "delivery_update.xml": "KnowledgeDelivery",
    "delivery_receipt_stale.xml": "DeliveryReceipt",
    "delivery_revoke.xml": "KnowledgeDelivery",
    "knowledge_item.xml": "KnowledgeItem",
    "category_tree.xml": "CategoryTree",
    "sync_request.xml": "SyncRequest",
    "sync_request_digest.xml": "SyncRequest",
    "sync_response.xml": "SyncResponse",
    "knowledge_alarm.xml": "KnowledgeAlarm",
}


def golden_bytes(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def golden(name: str):
    return wire.loads(golden_bytes(name))


def sender_of(message) -> str:
    """The authenticated node a golden message comes from."""
    name = type(message).__name__
    if name == "KnowledgeSubmission":
        return message.submitter_code
    if name in ("DeliveryReceipt", "Feedback", "SyncRequest"):
        return message.company_code
    return HQ


def tree() -> CategoryTree:
    return golden("category_tree.xml")


def service_rules_item() -> KnowledgeItem:
    """An HQ-authored item every recipient already holds at version 1 (not in a golden file)."""
    return KnowledgeItem(
        id="KN-00-20240115-0003", version=1, title="全网客服热线服务规范", content="接通率、首问负责和回访要求。",
        category_path=("SERVICE_RULES",), status=KnowledgeStatus.published,
        effective_date=datetime(2024, 1, 15, 0, 0, tzinfo=UTC), owner_node=HQ, author="赵敏", reviewer="王建华",
    )


def catalog() -> Catalog:
    """HQ's catalog after scenario 2: the tariff item at version 2, the VoLTE item revoked, the structure v3."""
    return Catalog.build(
        items=[golden("knowledge_item.xml"), service_rules_item()],
        tombstones=[golden("delivery_revoke.xml").tombstone],
        tree=tree(),
    )
