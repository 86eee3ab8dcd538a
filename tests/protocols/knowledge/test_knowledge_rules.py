"""Business rules of the knowledge messages: every rule refuses with its reason code and field,
and names the field in Chinese."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from knowledge_golden import HQ, NOW, golden, tree

from protocols.errors import ReasonCode, RejectedMessage
from protocols.knowledge import rules, structure
from protocols.knowledge.models import (
    FIELD_NAMES_ZH,
    Action,
    CatalogDigest,
    Category,
    FeedbackRef,
    ItemRef,
    KnowledgeStatus,
    ReceiptStatus,
    ReviewOutcome,
)

CST = timezone(timedelta(hours=8))  # China Standard Time, +08:00
FIELD_INVALID, DEADLINE_ORDER = ReasonCode.FIELD_INVALID, ReasonCode.DEADLINE_ORDER
SPOOFED, NOT_PERMITTED = ReasonCode.SPOOFED_SENDER, ReasonCode.SENDER_NOT_PERMITTED
NAIVE = datetime(2024, 7, 1, 9, 30)
FUTURE = NOW + timedelta(minutes=11)


def _refusal(call) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        call()
    return err.value


def _assert_refused(error: RejectedMessage, reason: ReasonCode, field: str | None) -> None:
    assert (error.reason, error.field) == (reason, field), error.detail
    if field is not None:
        assert field in error.detail
        assert rules.F.zh(field) in error.detail  # the Chinese field name, for the operator
        assert rules.F.zh(field) != field


def _item(name: str = "submission_publish.xml", **changes):
    return golden(name).item.model_copy(update=changes)


def _sub(name: str = "submission_publish.xml", item: dict | None = None, **changes):
    sub = golden(name)
    if item:
        changes["item"] = sub.item.model_copy(update=item)
    return sub.model_copy(update=changes)


# ----------------------------------------------------------------------------- submissions

SUBMISSION_REFUSALS = {
    "serial with a slash": ({"serial_number": "2024/07/01"}, FIELD_INVALID, "SerialNumber"),
    "submitter not a code": ({"submitter_code": "9"}, FIELD_INVALID, "SubmitterCode"),
    "submitter is not the sender": ({"submitter_code": "44"}, SPOOFED, "SubmitterCode"),
    "blank local reviewer": ({"local_reviewer": " "}, FIELD_INVALID, "LocalReviewer"),
    "naive submission time": ({"submitted_at": NAIVE}, FIELD_INVALID, "SubmittedAt"),
    "submission time in the future": ({"submitted_at": FUTURE}, FIELD_INVALID, "SubmittedAt"),
    "blank note": ({"note": " \n"}, FIELD_INVALID, "Note"),
    "feedback ref on a publication": ({"feedback_ref": FeedbackRef(company_code="44", feedback_id="FB-1")},
                                      FIELD_INVALID, "FeedbackRef"),
    "item id with a space": ({"item": {"id": "KN 1"}}, FIELD_INVALID, "Item/Id"),
    "version zero": ({"item": {"version": 0}}, FIELD_INVALID, "Item/Version"),
    "negative version": ({"item": {"version": -3}}, FIELD_INVALID, "Item/Version"),
    "publication not version 1": ({"item": {"version": 2}}, FIELD_INVALID, "Item/Version"),
    "title on two lines": ({"item": {"title": "5G\n资费"}}, FIELD_INVALID, "Item/Title"),
    "title too long": ({"item": {"title": "题" * 201}}, FIELD_INVALID, "Item/Title"),
    "empty content": ({"item": {"content": "  "}}, FIELD_INVALID, "Item/Content"),
    "content too long": ({"item": {"content": "字" * 20001}}, FIELD_INVALID, "Item/Content"),
    "empty category path": ({"item": {"category_path": ()}}, FIELD_INVALID, "Item/CategoryPath"),
    "category path too deep": ({"item": {"category_path": ("A",) * 11}}, FIELD_INVALID, "Item/CategoryPath"),
    "category code in Chinese": ({"item": {"category_path": ("全网",)}}, FIELD_INVALID, "Item/CategoryPath"),
    "status not submitted": ({"item": {"status": KnowledgeStatus.published}}, FIELD_INVALID, "Item/Status"),
    "naive effective date": ({"item": {"effective_date": NAIVE}}, FIELD_INVALID, "Item/EffectiveDate"),
    "naive expiry date": ({"item": {"expiry_date": NAIVE}}, FIELD_INVALID, "Item/ExpiryDate"),
    "expiry before effective": ({"item": {"expiry_date": datetime(2024, 7, 9, tzinfo=CST)}},
                                DEADLINE_ORDER, "Item/ExpiryDate"),
    "expiry equal to effective": ({"item": {"expiry_date": datetime(2024, 7, 10, tzinfo=CST)}},
                                  DEADLINE_ORDER, "Item/ExpiryDate"),
    "owner not a code": ({"item": {"owner_node": "x"}}, FIELD_INVALID, "Item/OwnerNode"),
    "publishing someone else's item": ({"item": {"owner_node": "00"}}, FIELD_INVALID, "Item/OwnerNode"),
    "author too long": ({"item": {"author": "陈" * 51}}, FIELD_INVALID, "Item/Author"),
    "blank reviewer": ({"item": {"reviewer": ""}}, FIELD_INVALID, "Item/Reviewer"),
}


@pytest.mark.parametrize("case", sorted(SUBMISSION_REFUSALS))
def test_submission_refusals(case):
    changes, reason, field = SUBMISSION_REFUSALS[case]
    _assert_refused(_refusal(lambda: rules.validate_submission(_sub(**changes), sender="99", now=NOW)),
                    reason, field)


def test_a_revocation_needs_a_note():
    sub = _sub("submission_update.xml", action=Action.revoke, note=None, feedback_ref=None)
    error = _refusal(lambda: rules.validate_submission(sub, sender="99", now=NOW))
    _assert_refused(error, FIELD_INVALID, "Note")
    rules.validate_submission(sub.model_copy(update={"note": "套餐下线"}), sender="99", now=NOW)


def test_an_update_must_come_after_version_1():
    sub = _sub("submission_update.xml", item={"version": 1})
    _assert_refused(_refusal(lambda: rules.validate_submission(sub, sender="99", now=NOW)),
                    FIELD_INVALID, "Item/Version")


def test_only_the_owner_or_hq_updates_an_item():
    sub = _sub("submission_update.xml", submitter_code="44")
    _assert_refused(_refusal(lambda: rules.validate_submission(sub, sender="44", now=NOW)),
                    NOT_PERMITTED, "SubmitterCode")
    by_hq = _sub("submission_update.xml", submitter_code=HQ)
    assert rules.validate_submission(by_hq, sender=HQ, now=NOW).submitter_code == HQ


def test_a_feedback_ref_must_be_well_formed():
    sub = _sub("submission_update.xml", feedback_ref=FeedbackRef(company_code="4", feedback_id="FB-1"))
    _assert_refused(_refusal(lambda: rules.validate_submission(sub, sender="99", now=NOW)),
                    FIELD_INVALID, "FeedbackRef/CompanyCode")


def test_validation_normalises_every_time_to_utc_nested_ones_too():
    sub = rules.validate_submission(golden("submission_publish.xml"), sender="99", now=NOW)
    assert sub.submitted_at == datetime(2024, 7, 1, 1, 30, tzinfo=UTC)
    assert sub.submitted_at.utcoffset() == timedelta(0)
    assert sub.item.effective_date.utcoffset() == timedelta(0)
    assert sub.item.expiry_date == datetime(2025, 7, 9, 15, 59, 59, tzinfo=UTC)
    assert sub == golden("submission_publish.xml")  # same instants


@pytest.mark.parametrize(("published", "version", "reason"), [
    (1, 1, ReasonCode.STALE_VERSION),  # someone else's update was published first
    (2, 2, ReasonCode.STALE_VERSION),
    (1, 3, FIELD_INVALID),  # skips a version
])
def test_submission_version_against_the_published_one(published, version, reason):
    sub = _sub("submission_update.xml", item={"version": version})
    _assert_refused(_refusal(lambda: rules.check_submission_version(sub, published)), reason, "Item/Version")


def test_submission_version_that_follows_the_published_one():
    rules.check_submission_version(golden("submission_update.xml"), 1)
    rules.check_submission_version(golden("submission_publish.xml"), 0)


# ----------------------------------------------------------------------------- review results


REVIEW_REFUSALS = {
    "submitter not a code": ({"submitter_code": "?"}, FIELD_INVALID, "SubmitterCode"),
    "serial too long": ({"submission_serial_number": "9" * 33}, FIELD_INVALID, "SubmissionSerialNumber"),
    "item id empty": ({"item_id": ""}, FIELD_INVALID, "ItemId"),
    "version zero": ({"version": 0}, FIELD_INVALID, "Version"),
    "returned without opinion": ({"opinion": None}, FIELD_INVALID, "Opinion"),
    "blank opinion": ({"opinion": "\t"}, FIELD_INVALID, "Opinion"),
    "reviewer with spaces around": ({"reviewer_at_hq": " 王建华 "}, FIELD_INVALID, "ReviewerAtHQ"),
    "naive review time": ({"reviewed_at": NAIVE}, FIELD_INVALID, "ReviewedAt"),
    "review time in the future": ({"reviewed_at": FUTURE}, FIELD_INVALID, "ReviewedAt"),
}


@pytest.mark.parametrize("case", sorted(REVIEW_REFUSALS))
def test_review_result_refusals(case):
    changes, reason, field = REVIEW_REFUSALS[case]
    result = golden("review_returned.xml").model_copy(update=changes)
    _assert_refused(_refusal(lambda: rules.validate_review_result(result, sender=HQ, now=NOW)), reason, field)


def test_an_approval_needs_no_opinion():
    approved = golden("review_approved.xml")
    assert approved.outcome is ReviewOutcome.approved and approved.opinion is None
    rules.validate_review_result(approved, sender=HQ, now=NOW)


@pytest.mark.parametrize(("name", "validate"), [
    ("review_approved.xml", rules.validate_review_result),
    ("delivery_publish.xml", rules.validate_delivery),
    ("feedback_reply.xml", rules.validate_feedback_reply),
    ("feedback_forward.xml", rules.validate_feedback_forward),
    ("sync_response.xml", rules.validate_sync_response),
])
def test_only_hq_sends_hq_messages(name, validate):
    error = _refusal(lambda: validate(golden(name), sender="99", now=NOW))
    assert (error.reason, error.value) == (NOT_PERMITTED, "99")
    assert "only HQ (00)" in error.detail


def test_only_hq_sends_the_structure():
    error = _refusal(lambda: rules.validate_category_tree(tree(), sender="31"))
    assert error.reason is NOT_PERMITTED


# ----------------------------------------------------------------------------- deliveries and receipts


def _delivery(name: str = "delivery_publish.xml", **changes):
    delivery = golden(name)
    if isinstance(changes.get("item"), dict):
        changes["item"] = delivery.item.model_copy(update=changes["item"])
    return delivery.model_copy(update=changes)


DELIVERY_REFUSALS = {
    "no recipients": ({"recipients": ()}, FIELD_INVALID, "Recipients"),
    "recipient not a code": ({"recipients": ("11", "1")}, FIELD_INVALID, "Recipients/Recipient"),
    "recipient twice": ({"recipients": ("11", "31", "11")}, FIELD_INVALID, "Recipients/Recipient"),
    "naive publication time": ({"published_at": NAIVE}, FIELD_INVALID, "PublishedAt"),
    "publication in the future": ({"published_at": FUTURE}, FIELD_INVALID, "PublishedAt"),
    "publish without item": ({"item": None}, FIELD_INVALID, "Item"),
    "publish with a tombstone too": ({"tombstone": "T"}, FIELD_INVALID, "Item"),
    "item not published": ({"item": {"status": KnowledgeStatus.approved}}, FIELD_INVALID, "Item/Status"),
    "item without HQ reviewer": ({"item": {"reviewer": None}}, FIELD_INVALID, "Item/Reviewer"),
    "publication of version 2": ({"item": {"version": 2}}, FIELD_INVALID, "Item/Version"),
    "update of version 1": ({"action": Action.update}, FIELD_INVALID, "Item/Version"),
    "revoke with an item": ({"action": Action.revoke}, FIELD_INVALID, "Tombstone"),
    "bad item inside": ({"item": {"title": ""}}, FIELD_INVALID, "Item/Title"),
}


@pytest.mark.parametrize("case", sorted(DELIVERY_REFUSALS))
def test_delivery_refusals(case):
    changes, reason, field = DELIVERY_REFUSALS[case]
    if changes.get("tombstone") == "T":
        changes["tombstone"] = golden("delivery_revoke.xml").tombstone
    _assert_refused(_refusal(lambda: rules.validate_delivery(_delivery(**changes), sender=HQ, now=NOW)),
                    reason, field)


@pytest.mark.parametrize(("changes", "field"), [
    ({"version": 1}, "Tombstone/Version"),
    ({"item_id": "KN/1"}, "Tombstone/ItemId"),
    ({"owner_node": "9"}, "Tombstone/OwnerNode"),
    ({"revoked_at": NAIVE}, "Tombstone/RevokedAt"),
    ({"note": " "}, "Tombstone/Note"),
])
def test_tombstone_refusals(changes, field):
    delivery = golden("delivery_revoke.xml")
    delivery = delivery.model_copy(update={"tombstone": delivery.tombstone.model_copy(update=changes)})
    _assert_refused(_refusal(lambda: rules.validate_delivery(delivery, sender=HQ, now=NOW)), FIELD_INVALID, field)


RECEIPT_REFUSALS = {
    "company not the sender": ({"company_code": "44"}, SPOOFED, "CompanyCode"),
    "item id bad": ({"item_id": "知识"}, FIELD_INVALID, "ItemId"),
    "version zero": ({"version": 0}, FIELD_INVALID, "Version"),
    "rejected without reason": ({"reason": None}, FIELD_INVALID, "Reason"),
    "unknown refusal code": ({"refusal_code": "TOO_OLD"}, FIELD_INVALID, "RefusalCode"),
    "refusal code in lower case": ({"refusal_code": "stale_version"}, FIELD_INVALID, "RefusalCode"),
    "refusal code on an acceptance": ({"receipt_status": ReceiptStatus.accepted}, FIELD_INVALID, "RefusalCode"),
    "reason too long": ({"reason": "原" * 501}, FIELD_INVALID, "Reason"),
    "naive receipt time": ({"received_at": NAIVE}, FIELD_INVALID, "ReceivedAt"),
    "receipt from the future": ({"received_at": FUTURE}, FIELD_INVALID, "ReceivedAt"),
}


@pytest.mark.parametrize("case", sorted(RECEIPT_REFUSALS))
def test_receipt_refusals(case):
    changes, reason, field = RECEIPT_REFUSALS[case]
    receipt = golden("delivery_receipt_stale.xml").model_copy(update=changes)
    _assert_refused(_refusal(lambda: rules.validate_receipt(receipt, sender="51", now=NOW)), reason, field)


# ----------------------------------------------------------------------------- feedback


FEEDBACK_REFUSALS = {
    "company not the sender": ({"company_code": "45"}, SPOOFED, "CompanyCode"),
    "feedback id bad": ({"feedback_id": "FB 7"}, FIELD_INVALID, "FeedbackId"),
    "version negative": ({"version": -1}, FIELD_INVALID, "Version"),
    "empty text": ({"text": ""}, FIELD_INVALID, "Text"),
    "text too long": ({"text": "错" * 2001}, FIELD_INVALID, "Text"),
    "author blank": ({"author": ""}, FIELD_INVALID, "Author"),
    "local reviewer on two lines": ({"local_reviewer": "黄\n丽"}, FIELD_INVALID, "LocalReviewer"),
    "naive time": ({"submitted_at": NAIVE}, FIELD_INVALID, "SubmittedAt"),
    "future time": ({"submitted_at": FUTURE}, FIELD_INVALID, "SubmittedAt"),
}


@pytest.mark.parametrize("case", sorted(FEEDBACK_REFUSALS))
def test_feedback_refusals(case):
    changes, reason, field = FEEDBACK_REFUSALS[case]
    feedback = golden("feedback.xml").model_copy(update=changes)
    _assert_refused(_refusal(lambda: rules.validate_feedback(feedback, sender="44", now=NOW)), reason, field)


@pytest.mark.parametrize(("name", "validate", "changes", "field"), [
    ("feedback_reply.xml", rules.validate_feedback_reply, {"reply_text": " "}, "ReplyText"),
    ("feedback_reply.xml", rules.validate_feedback_reply, {"replier": ""}, "Replier"),
    ("feedback_reply.xml", rules.validate_feedback_reply, {"company_code": "4"}, "CompanyCode"),
    ("feedback_reply.xml", rules.validate_feedback_reply, {"replied_at": NAIVE}, "RepliedAt"),
    ("feedback_forward.xml", rules.validate_feedback_forward, {"owner_node": "9"}, "OwnerNode"),
    ("feedback_forward.xml", rules.validate_feedback_forward, {"opinion": ""}, "Opinion"),
    ("feedback_forward.xml", rules.validate_feedback_forward, {"text": "字" * 2001}, "Text"),
    ("feedback_forward.xml", rules.validate_feedback_forward, {"forwarded_by": " 王"}, "ForwardedBy"),
    ("feedback_forward.xml", rules.validate_feedback_forward, {"forwarded_at": FUTURE}, "ForwardedAt"),
    ("feedback_forward.xml", rules.validate_feedback_forward, {"version": 0}, "Version"),
])
def test_feedback_reply_and_forward_refusals(name, validate, changes, field):
    message = golden(name).model_copy(update=changes)
    _assert_refused(_refusal(lambda: validate(message, sender=HQ, now=NOW)), FIELD_INVALID, field)


# ----------------------------------------------------------------------------- sync and structure


SYNC_REFUSALS = {
    "company not the sender": ({"company_code": "52"}, SPOOFED, "CompanyCode"),
    "serial bad": ({"serial_number": ""}, FIELD_INVALID, "SerialNumber"),
    "naive time": ({"requested_at": NAIVE}, FIELD_INVALID, "RequestedAt"),
    "negative tree version": ({"tree_version": -1}, FIELD_INVALID, "TreeVersion"),
    "mount point in Chinese": ({"mount_point": "四川知识库"}, FIELD_INVALID, "MountPoint"),
    "neither known nor digest": ({"known": None}, FIELD_INVALID, "Known"),
    "both known and digest": ({"digest": CatalogDigest(value="0" * 64, item_count=0)}, FIELD_INVALID, "Known"),
    "item listed twice": ({"known": (ItemRef(item_id="A", version=1), ItemRef(item_id="A", version=2))},
                          FIELD_INVALID, "Known/ItemRef/ItemId"),
    "known version zero": ({"known": (ItemRef(item_id="A", version=0),)}, FIELD_INVALID, "Known/ItemRef/Version"),
    "known id bad": ({"known": (ItemRef(item_id="A B", version=1),)}, FIELD_INVALID, "Known/ItemRef/ItemId"),
}


@pytest.mark.parametrize("case", sorted(SYNC_REFUSALS))
def test_sync_request_refusals(case):
    changes, reason, field = SYNC_REFUSALS[case]
    request = golden("sync_request.xml").model_copy(update=changes)
    _assert_refused(_refusal(lambda: rules.validate_sync_request(request, sender="51", now=NOW)), reason, field)


def test_a_digest_must_be_sha256_hex():
    request = golden("sync_request_digest.xml")
    request = request.model_copy(update={"digest": CatalogDigest(value="ABC", item_count=2)})
    _assert_refused(_refusal(lambda: rules.validate_sync_request(request, sender="31", now=NOW)),
                    FIELD_INVALID, "Digest/Value")


def test_an_empty_known_list_is_a_recipient_that_holds_nothing():
    request = golden("sync_request.xml").model_copy(update={"known": ()})
    assert rules.validate_sync_request(request, sender="51", now=NOW).known == ()


def test_sync_response_items_must_be_published():
    response = golden("sync_response.xml")
    item = response.items[0].model_copy(update={"status": KnowledgeStatus.draft})
    error = _refusal(lambda: rules.validate_sync_response(response.model_copy(update={"items": (item,)}),
                                                          sender=HQ, now=NOW))
    _assert_refused(error, FIELD_INVALID, "Items/KnowledgeItem/Status")


def _tree(*categories: Category, **changes):
    return tree().model_copy(update={"categories": categories, **changes})


def test_structure_refusals():
    leaf = Category(code="TARIFF", name="资费")
    cases = [
        (_tree(leaf, leaf), "Category/Code"),
        (_tree(Category(code="资费", name="资费")), "Category/Code"),
        (_tree(Category(code="A", name=" ")), "Category/Name"),
        (_tree(), "Category"),
        (tree().model_copy(update={"version": 0}), "Version"),
        (tree().model_copy(update={"mount_point": "根 节点"}), "MountPoint"),
        (tree().model_copy(update={"updated_at": NAIVE}), "UpdatedAt"),
    ]
    deep = Category(code="L11", name="第11级")
    for level in range(10, 0, -1):
        deep = Category(code=f"L{level}", name=f"第{level}级", children=(deep,))
    cases.append((_tree(deep), "Category"))
    for bad, field in cases:
        error = _refusal(lambda bad=bad: rules.validate_category_tree(bad, sender=HQ))
        assert (error.reason, error.field) == (FIELD_INVALID, field), error.detail


def test_an_item_path_must_exist_in_the_structure():
    item = golden("knowledge_item.xml")
    assert rules.validate_item(item, tree=tree()) == item
    for path in [("TARIFF",), ("NATIONWIDE", "TARIFF"), ("NATIONWIDE", "NEW_SERVICE", "NOPE"),
                 ("SERVICE_RULES", "TARIFF")]:
        error = _refusal(lambda path=path: rules.validate_item(item.model_copy(update={"category_path": path}),
                                                                tree=tree()))
        _assert_refused(error, FIELD_INVALID, "CategoryPath")
        assert "NATIONWIDE/NEW_SERVICE/TARIFF" in error.detail  # the message shows a valid path


def test_mounting_puts_the_tree_under_the_recipients_root():
    mounted = structure.mount(tree(), "SC-KB-ROOT")
    assert mounted.mount_point == "SC-KB-ROOT" and mounted.categories == tree().categories
    assert structure.mounted_path(mounted, ("NATIONWIDE", "NEW_SERVICE", "TARIFF")) == (
        "SC-KB-ROOT", "NATIONWIDE", "NEW_SERVICE", "TARIFF")
    assert structure.mount(mounted, "SC-KB-ROOT") is mounted
    assert structure.index(tree()).names["TARIFF"] == "资费"


def test_a_structure_never_goes_back():
    assert structure.tree_is_newer(2, tree()) is True
    assert structure.tree_is_newer(3, tree()) is False  # the same version again
    error = _refusal(lambda: structure.tree_is_newer(4, tree()))
    assert (error.reason, error.field) == (ReasonCode.STALE_VERSION, "Version")


# ----------------------------------------------------------------------------- every field has a name


def test_every_refusal_field_has_a_chinese_name():
    fields = {field for changes, _r, field in [*SUBMISSION_REFUSALS.values(), *REVIEW_REFUSALS.values(),
                                               *DELIVERY_REFUSALS.values(), *RECEIPT_REFUSALS.values(),
                                               *FEEDBACK_REFUSALS.values(), *SYNC_REFUSALS.values()]}
    for field in fields:
        assert rules.F.zh(field) in FIELD_NAMES_ZH.values(), field


def test_validate_dispatches_on_the_message_type():
    with pytest.raises(RejectedMessage) as err:
        rules.validate(golden("feedback.xml"), sender="45", now=NOW)
    assert err.value.reason is SPOOFED
    assert rules.validate(golden("category_tree.xml"), sender=HQ, now=NOW) == tree()
