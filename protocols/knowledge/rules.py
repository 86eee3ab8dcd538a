"""Business validation of knowledge messages: what a vendor's system expects to be refused.

Owns: every rule a knowledge message must pass beyond the XSD, each refusing with
RejectedMessage carrying a specific ReasonCode, `field` set to the wire element name (a
path such as Item/ExpiryDate for nested ones) and a message naming the field in English
and Chinese, the offending value and what to do. Also the normalisation of every
timestamp to UTC (each `validate_*` returns the message with its times in UTC).
Must not: read the clock (`now` is an argument), know who is configured (the sender's
authenticated company code and HQ's code are arguments), or look up stored items: the
rules that need HQ's record of an item (the version a submission must carry) take that
record's values as arguments and are called by protocols.knowledge.lifecycle.

Rules and their reason codes (docs/knowledge.md lists them with examples):

    FIELD_INVALID          a format (codes, identifiers, serials, names, titles, texts, category
                           codes), a naive time, a time too far in the future, a version that is
                           not positive, a version that does not fit the action, a status that
                           does not fit the message, a missing opinion, reason or note, a
                           duplicate recipient or item, an action without its Item or Tombstone
    DEADLINE_ORDER         ExpiryDate not later than EffectiveDate
    SPOOFED_SENDER         SubmitterCode / CompanyCode is not the authenticated sender
    SENDER_NOT_PERMITTED   a message only HQ sends came from another node; an update or
                           revocation from a node that does not own the item
    STALE_VERSION          a submission for a version HQ has already published

Each function raises the first problem it finds, in the order of the fields on the wire,
so a sender fixes its message top to bottom.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from protocols.errors import ReasonCode, RejectedMessage
from protocols.fieldrules import DEFAULT_MAX_FUTURE, FieldRules, in_utc
from protocols.knowledge import structure
from protocols.knowledge.models import (
    FIELD_NAMES_ZH,
    HQ_CODE,
    Action,
    CategoryTree,
    DeliveryReceipt,
    Feedback,
    FeedbackForward,
    FeedbackReply,
    KnowledgeAlarm,
    KnowledgeDelivery,
    KnowledgeItem,
    KnowledgeMessage,
    KnowledgeStatus,
    KnowledgeSubmission,
    ReceiptStatus,
    ReviewOutcome,
    ReviewResult,
    SyncRequest,
    SyncResponse,
    Tombstone,
)

F = FieldRules(FIELD_NAMES_ZH)

# The patterns below are the ones of knowledge.xsd; tests check both accept the same values.
CATEGORY_CODE_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")
REASON_CODE_RE = re.compile(r"[A-Z][A-Z_]{1,39}")
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
CONTENT_MAX = 20000
TEXT_MAX = 2000
REASON_MAX = 500
TITLE_MAX = 200


def _category_code(value: object, field: str) -> None:
    F.pattern(value, field, CATEGORY_CODE_RE, "a category code",
              "Use 1-32 letters, digits, underscores or hyphens, e.g. NEW_SERVICE.")


# ----------------------------------------------------------------------------- the item


def check_item(item: KnowledgeItem, *, prefix: str = "") -> None:
    """The format rules of one knowledge item; `prefix` is its element path (Item/) in a message."""
    F.identifier(item.id, f"{prefix}Id")
    if item.id == structure.STRUCTURE_ID:
        raise F.refuse(f"{prefix}Id", item.id, "is reserved",
                       "The ItemId STRUCTURE names the knowledge structure in receipts; give the item another id.")
    F.positive(item.version, f"{prefix}Version")
    F.line(item.title, f"{prefix}Title", TITLE_MAX)
    F.text(item.content, f"{prefix}Content", CONTENT_MAX)
    path = item.category_path
    if not path or len(path) > structure.MAX_DEPTH:
        raise F.refuse(f"{prefix}CategoryPath", "/".join(path), f"has {len(path)} segments",
                       f"Give 1 to {structure.MAX_DEPTH} category codes from the top of the knowledge structure.")
    for segment in path:
        _category_code(segment, f"{prefix}CategoryPath")
    effective = F.zoned(item.effective_date, f"{prefix}EffectiveDate")
    if item.expiry_date is not None:
        F.zoned(item.expiry_date, f"{prefix}ExpiryDate")
        F.after(item.expiry_date, f"{prefix}ExpiryDate", effective, f"{prefix}EffectiveDate",
                "Set the expiry after the effective date, or leave ExpiryDate out for open-ended knowledge.")
    F.company_code(item.owner_node, f"{prefix}OwnerNode")
    F.line(item.author, f"{prefix}Author")
    if item.reviewer is not None:
        F.line(item.reviewer, f"{prefix}Reviewer")


def _status(item: KnowledgeItem, expected: KnowledgeStatus, field: str, where: str) -> None:
    if item.status is not expected:
        raise F.refuse(field, str(item.status), f"is not {expected.value}", f"An item {where} has Status {expected.value}.")


def validate_item(item: KnowledgeItem, *, tree: CategoryTree | None = None) -> KnowledgeItem:
    """Check a standalone item (and its CategoryPath against `tree` when given); times in UTC."""
    check_item(item)
    if tree is not None:
        structure.check_path(item.category_path, tree)
    return in_utc(item)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- submission and review


def validate_submission(sub: KnowledgeSubmission, *, sender: str, now: datetime, hq: str = HQ_CODE,
                        max_future: timedelta = DEFAULT_MAX_FUTURE) -> KnowledgeSubmission:
    """Check a publish, update or revoke submission (知识提交) from `sender`; times in UTC."""
    F.serial(sub.serial_number, "SerialNumber")
    F.company_code(sub.submitter_code, "SubmitterCode")
    F.sender_is(sub.submitter_code, "SubmitterCode", sender)
    F.line(sub.local_reviewer, "LocalReviewer")
    F.zoned(sub.submitted_at, "SubmittedAt")
    F.not_future(sub.submitted_at, "SubmittedAt", now=now, max_future=max_future)
    if sub.note is not None:
        F.text(sub.note, "Note", TEXT_MAX)
    elif sub.action is Action.revoke:
        raise F.refuse("Note", None, "is missing from a revocation",
                       "Say why the item is revoked (the knowledge deletion request needs a reason).")
    if sub.feedback_ref is not None:
        if sub.action is not Action.update:
            raise F.refuse("FeedbackRef", sub.feedback_ref.feedback_id, f"is set on a {sub.action.value}",
                           "Only an update answers a feedback; leave FeedbackRef out.")
        F.company_code(sub.feedback_ref.company_code, "FeedbackRef/CompanyCode")
        F.serial(sub.feedback_ref.feedback_id, "FeedbackRef/FeedbackId")
    item = sub.item
    check_item(item, prefix="Item/")
    _status(item, KnowledgeStatus.submitted, "Item/Status", "in a submission")
    if sub.action is Action.publish:
        if item.version != 1:
            raise F.refuse("Item/Version", item.version, "is not 1 in a publication",
                           "A new item is published as version 1; to change a published item, submit an update.")
        if item.owner_node != sub.submitter_code:
            raise F.refuse("Item/OwnerNode", item.owner_node,
                           f"is not the submitter {sub.submitter_code!r}",
                           "A node publishes its own knowledge: set OwnerNode to your company code.")
    else:
        if item.version < 2:
            raise F.refuse("Item/Version", item.version, f"is too low for an {sub.action.value}",
                           "An update or revocation carries the published version plus one (2 or more).")
        if sub.submitter_code not in (item.owner_node, hq):
            raise RejectedMessage(
                f"SubmitterCode (提交方公司编号) {sub.submitter_code!r} may not {sub.action.value} item "
                f"{item.id}, which belongs to {item.owner_node!r}. Only the owner or HQ ({hq}) changes an item; "
                "send feedback instead.",
                reason=ReasonCode.SENDER_NOT_PERMITTED, field="SubmitterCode", value=sub.submitter_code,
            )
    return in_utc(sub)  # type: ignore[return-value]


def check_submission_version(sub: KnowledgeSubmission, published_version: int) -> None:
    """The version a submission must carry given HQ's published version of the item (0 = none).

    A publication is version 1 (checked by validate_submission); an update or revocation is
    exactly the published version plus one: lower or equal is STALE_VERSION (someone else's
    change was published first: fetch it and start again), higher is FIELD_INVALID.
    """
    if sub.action is Action.publish:
        return
    expected = published_version + 1
    version = sub.item.version
    if version <= published_version:
        raise F.refuse("Item/Version", version,
                       f"is not newer than the published version {published_version} of {sub.item.id}",
                       f"Base the {sub.action.value} on version {published_version} and submit it as version "
                       f"{expected}.", ReasonCode.STALE_VERSION)
    if version != expected:
        raise F.refuse("Item/Version", version,
                       f"skips versions: {sub.item.id} is published at version {published_version}",
                       f"Submit the {sub.action.value} as version {expected}.")


def validate_review_result(result: ReviewResult, *, sender: str, now: datetime, hq: str = HQ_CODE,
                           max_future: timedelta = DEFAULT_MAX_FUTURE) -> ReviewResult:
    """Check HQ's approval result notification (审批结果通知); only HQ sends it."""
    F.from_hq("ReviewResult (审批结果通知)", sender, hq)
    F.company_code(result.submitter_code, "SubmitterCode")
    F.serial(result.submission_serial_number, "SubmissionSerialNumber")
    F.identifier(result.item_id, "ItemId")
    F.positive(result.version, "Version")
    if result.opinion is not None:
        F.text(result.opinion, "Opinion", TEXT_MAX)
    elif result.outcome is ReviewOutcome.returned:
        raise F.refuse("Opinion", None, "is missing although Outcome (审批结果) is returned",
                       "Say what to modify, so that the submitter can correct it and resubmit.")
    F.line(result.reviewer_at_hq, "ReviewerAtHQ")
    F.zoned(result.reviewed_at, "ReviewedAt")
    F.not_future(result.reviewed_at, "ReviewedAt", now=now, max_future=max_future)
    return in_utc(result)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- delivery and receipts


def check_tombstone(tombstone: Tombstone, prefix: str = "Tombstone/") -> None:
    F.identifier(tombstone.item_id, f"{prefix}ItemId")
    F.positive(tombstone.version, f"{prefix}Version")
    if tombstone.version < 2:
        raise F.refuse(f"{prefix}Version", tombstone.version, "is too low for a tombstone",
                       "A tombstone is the last published version plus one (2 or more).")
    F.company_code(tombstone.owner_node, f"{prefix}OwnerNode")
    F.zoned(tombstone.revoked_at, f"{prefix}RevokedAt")
    if tombstone.note is not None:
        F.text(tombstone.note, f"{prefix}Note", TEXT_MAX)


def validate_delivery(delivery: KnowledgeDelivery, *, sender: str, now: datetime, hq: str = HQ_CODE,
                      max_future: timedelta = DEFAULT_MAX_FUTURE) -> KnowledgeDelivery:
    """Check a publish, update or revoke delivery (知识下发); only HQ sends it."""
    F.from_hq("KnowledgeDelivery (知识下发)", sender, hq)
    if not delivery.recipients:
        raise F.refuse("Recipients", "", "is empty", "Name at least one recipient.")
    seen: set[str] = set()
    for code in delivery.recipients:
        F.company_code(code, "Recipients/Recipient")
        if code in seen:
            raise F.refuse("Recipients/Recipient", code, "is listed twice", "Name each recipient once.")
        seen.add(code)
    F.zoned(delivery.published_at, "PublishedAt")
    F.not_future(delivery.published_at, "PublishedAt", now=now, max_future=max_future)
    if delivery.action is Action.revoke:
        if delivery.tombstone is None or delivery.item is not None:
            raise F.refuse("Tombstone", None, "is missing from a revocation",
                           "A revoke delivery carries a Tombstone and no Item.")
        check_tombstone(delivery.tombstone)
    else:
        item = delivery.item
        if item is None or delivery.tombstone is not None:
            raise F.refuse("Item", None, f"is missing from a {delivery.action.value} delivery",
                           "A publish or update delivery carries the Item and no Tombstone.")
        check_item(item, prefix="Item/")
        _status(item, KnowledgeStatus.published, "Item/Status", "in a delivery")
        if item.reviewer is None:
            raise F.refuse("Item/Reviewer", None, "is missing from a published version",
                           "Name the HQ administrator who approved this version.")
        if delivery.action is Action.publish and item.version != 1:
            raise F.refuse("Item/Version", item.version, "is not 1 in a publication",
                           "Deliver a changed item as an update.")
        if delivery.action is Action.update and item.version < 2:
            raise F.refuse("Item/Version", item.version, "is too low for an update",
                           "An update carries version 2 or more.")
    return in_utc(delivery)  # type: ignore[return-value]


def validate_receipt(receipt: DeliveryReceipt, *, sender: str, now: datetime,
                     max_future: timedelta = DEFAULT_MAX_FUTURE) -> DeliveryReceipt:
    """Check a recipient's success mark (or rejection) for a delivered version."""
    F.company_code(receipt.company_code, "CompanyCode")
    F.sender_is(receipt.company_code, "CompanyCode", sender)
    F.identifier(receipt.item_id, "ItemId")
    F.positive(receipt.version, "Version")
    rejected = receipt.receipt_status is ReceiptStatus.rejected
    if receipt.refusal_code is not None:
        if not rejected:
            raise F.refuse("RefusalCode", receipt.refusal_code, "is set although ReceiptStatus (接收状态) is accepted",
                           "Leave RefusalCode out of a success mark.")
        if not (REASON_CODE_RE.fullmatch(receipt.refusal_code) and receipt.refusal_code in ReasonCode.__members__):
            raise F.refuse("RefusalCode", receipt.refusal_code, "is not a reason code of the hub",
                           "Use a code of docs/knowledge.md, e.g. STALE_VERSION or ITEM_REVOKED, or leave it out.")
    if receipt.reason is not None:
        F.text(receipt.reason, "Reason", REASON_MAX)
    elif rejected:
        raise F.refuse("Reason", None, "is missing although ReceiptStatus (接收状态) is rejected",
                       "Say why the delivery is rejected, so that HQ can correct it.")
    F.zoned(receipt.received_at, "ReceivedAt")
    F.not_future(receipt.received_at, "ReceivedAt", now=now, max_future=max_future)
    return in_utc(receipt)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- feedback


def validate_feedback(feedback: Feedback, *, sender: str, now: datetime,
                      max_future: timedelta = DEFAULT_MAX_FUTURE) -> Feedback:
    """Check a province's feedback (知识反馈) on a published item."""
    F.company_code(feedback.company_code, "CompanyCode")
    F.sender_is(feedback.company_code, "CompanyCode", sender)
    F.serial(feedback.feedback_id, "FeedbackId")
    F.identifier(feedback.item_id, "ItemId")
    F.positive(feedback.version, "Version")
    F.text(feedback.text, "Text", TEXT_MAX)
    F.line(feedback.author, "Author")
    F.line(feedback.local_reviewer, "LocalReviewer")
    F.zoned(feedback.submitted_at, "SubmittedAt")
    F.not_future(feedback.submitted_at, "SubmittedAt", now=now, max_future=max_future)
    return in_utc(feedback)  # type: ignore[return-value]


def validate_feedback_reply(reply: FeedbackReply, *, sender: str, now: datetime, hq: str = HQ_CODE,
                            max_future: timedelta = DEFAULT_MAX_FUTURE) -> FeedbackReply:
    """Check HQ's reply (反馈答复) to a province; only HQ sends it."""
    F.from_hq("FeedbackReply (反馈答复)", sender, hq)
    F.company_code(reply.company_code, "CompanyCode")
    F.serial(reply.feedback_id, "FeedbackId")
    F.identifier(reply.item_id, "ItemId")
    F.text(reply.reply_text, "ReplyText", TEXT_MAX)
    F.line(reply.replier, "Replier")
    F.zoned(reply.replied_at, "RepliedAt")
    F.not_future(reply.replied_at, "RepliedAt", now=now, max_future=max_future)
    return in_utc(reply)  # type: ignore[return-value]


def validate_feedback_forward(forward: FeedbackForward, *, sender: str, now: datetime, hq: str = HQ_CODE,
                              max_future: timedelta = DEFAULT_MAX_FUTURE) -> FeedbackForward:
    """Check HQ's forward (反馈下发) of a feedback to the item's owner; only HQ sends it."""
    F.from_hq("FeedbackForward (反馈下发)", sender, hq)
    F.company_code(forward.owner_node, "OwnerNode")
    F.company_code(forward.company_code, "CompanyCode")
    F.serial(forward.feedback_id, "FeedbackId")
    F.identifier(forward.item_id, "ItemId")
    F.positive(forward.version, "Version")
    F.text(forward.text, "Text", TEXT_MAX)
    F.text(forward.opinion, "Opinion", TEXT_MAX)
    F.line(forward.forwarded_by, "ForwardedBy")
    F.zoned(forward.forwarded_at, "ForwardedAt")
    F.not_future(forward.forwarded_at, "ForwardedAt", now=now, max_future=max_future)
    return in_utc(forward)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- sync and structure


def validate_sync_request(request: SyncRequest, *, sender: str, now: datetime,
                          max_future: timedelta = DEFAULT_MAX_FUTURE) -> SyncRequest:
    """Check a recipient's version sync request (版本同步请求)."""
    F.company_code(request.company_code, "CompanyCode")
    F.sender_is(request.company_code, "CompanyCode", sender)
    F.serial(request.serial_number, "SerialNumber")
    F.zoned(request.requested_at, "RequestedAt")
    F.not_future(request.requested_at, "RequestedAt", now=now, max_future=max_future)
    if isinstance(request.tree_version, bool) or not isinstance(request.tree_version, int) or request.tree_version < 0:
        raise F.refuse("TreeVersion", request.tree_version, "is not a whole number of 0 or more",
                       "Send the version of the knowledge structure you hold, 0 for none.")
    if request.mount_point is not None:
        _category_code(request.mount_point, "MountPoint")
    if (request.known is None) == (request.digest is None):
        raise F.refuse("Known", None, "and Digest (目录摘要) are both present or both missing",
                       "Send either the Known list or the Digest of what you hold.")
    if request.known is not None:
        seen: set[str] = set()
        for ref in request.known:
            F.identifier(ref.item_id, "Known/ItemRef/ItemId")
            F.positive(ref.version, "Known/ItemRef/Version")
            if ref.item_id in seen:
                raise F.refuse("Known/ItemRef/ItemId", ref.item_id, "is listed twice",
                               "List each item once, with the version you hold.")
            seen.add(ref.item_id)
    else:
        F.pattern(request.digest.value, "Digest/Value", DIGEST_RE, "a SHA-256 digest",  # type: ignore[union-attr]
                  "Send 64 lower-case hexadecimal digits (protocols.knowledge.versions.catalog_digest).")
    return in_utc(request)  # type: ignore[return-value]


def validate_sync_response(response: SyncResponse, *, sender: str, now: datetime, hq: str = HQ_CODE,
                           max_future: timedelta = DEFAULT_MAX_FUTURE) -> SyncResponse:
    """Check HQ's sync response (版本同步应答); only HQ sends it."""
    F.from_hq("SyncResponse (版本同步应答)", sender, hq)
    F.company_code(response.company_code, "CompanyCode")
    F.serial(response.request_serial_number, "RequestSerialNumber")
    F.zoned(response.responded_at, "RespondedAt")
    F.not_future(response.responded_at, "RespondedAt", now=now, max_future=max_future)
    for item in response.items:
        check_item(item, prefix="Items/KnowledgeItem/")
        _status(item, KnowledgeStatus.published, "Items/KnowledgeItem/Status", "in a sync response")
    for tombstone in response.tombstones:
        check_tombstone(tombstone, "Tombstones/Tombstone/")
    if response.category_tree is not None:
        check_tree(response.category_tree)
    return in_utc(response)  # type: ignore[return-value]


def check_tree(tree: CategoryTree) -> None:
    F.positive(tree.version, "Version")
    if tree.mount_point is not None:
        _category_code(tree.mount_point, "MountPoint")
    F.zoned(tree.updated_at, "UpdatedAt")
    if not tree.categories:
        raise F.refuse("Category", "", "is empty", "A knowledge structure has at least one top-level category.")
    for category, _parent, _depth in structure.walk(tree.categories):
        _category_code(category.code, "Category/Code")
        F.line(category.name, "Category/Name")
    structure.index(tree)  # unique codes, depth


def validate_category_tree(tree: CategoryTree, *, sender: str, hq: str = HQ_CODE) -> CategoryTree:
    """Check a knowledge structure (知识结构) pushed by HQ; only HQ sends it."""
    F.from_hq("CategoryTree (知识结构)", sender, hq)
    check_tree(tree)
    return in_utc(tree)  # type: ignore[return-value]


def validate_alarm(alarm: KnowledgeAlarm, *, sender: str, now: datetime,
                   max_future: timedelta = DEFAULT_MAX_FUTURE) -> KnowledgeAlarm:
    """Check a knowledge alarm (知识共享告警); the hub produces it, so `sender` is not checked."""
    F.identifier(alarm.subject_id, "SubjectId")
    if alarm.version is not None:
        F.positive(alarm.version, "Version")
    F.company_code(alarm.company_code, "CompanyCode")
    F.zoned(alarm.deadline, "Deadline")
    F.zoned(alarm.raised_at, "RaisedAt")
    return in_utc(alarm)  # type: ignore[return-value]


def validate(message: KnowledgeMessage, *, sender: str, now: datetime, hq: str = HQ_CODE,
             max_future: timedelta = DEFAULT_MAX_FUTURE) -> KnowledgeMessage:
    """Check any knowledge message from the authenticated `sender`; returns it with UTC times."""
    if isinstance(message, KnowledgeItem):
        return validate_item(message)
    if isinstance(message, CategoryTree):
        return validate_category_tree(message, sender=sender, hq=hq)
    hq_kw = {"hq": hq}
    checks = {
        KnowledgeSubmission: (validate_submission, hq_kw),
        ReviewResult: (validate_review_result, hq_kw),
        KnowledgeDelivery: (validate_delivery, hq_kw),
        DeliveryReceipt: (validate_receipt, {}),
        Feedback: (validate_feedback, {}),
        FeedbackReply: (validate_feedback_reply, hq_kw),
        FeedbackForward: (validate_feedback_forward, hq_kw),
        SyncRequest: (validate_sync_request, {}),
        SyncResponse: (validate_sync_response, hq_kw),
        KnowledgeAlarm: (validate_alarm, {}),
    }
    check, extra = checks[type(message)]
    return check(message, sender=sender, now=now, max_future=max_future, **extra)  # type: ignore[operator]
