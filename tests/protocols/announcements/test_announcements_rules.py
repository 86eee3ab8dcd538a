"""Business rules of the announcement messages: every rule refuses with its reason code and field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from announcement_golden import GROUPS, HQ, NOW, PROVINCES, golden

from protocols.announcements import rules
from protocols.announcements.models import FIELD_NAMES_ZH, AnnouncementStatus, Scope
from protocols.errors import ReasonCode, RejectedMessage

CST = timezone(timedelta(hours=8))
FIELD_INVALID, DEADLINE_ORDER = ReasonCode.FIELD_INVALID, ReasonCode.DEADLINE_ORDER
NAIVE = datetime(2024, 7, 15, 10, 0)
FUTURE = NOW + timedelta(minutes=11)


def _refusal(call) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        call()
    return err.value


def _assert_refused(error: RejectedMessage, reason: ReasonCode, field: str | None) -> None:
    assert (error.reason, error.field) == (reason, field), error.detail
    if field is not None:
        assert field in error.detail
        assert rules.F.zh(field) in error.detail and rules.F.zh(field) in FIELD_NAMES_ZH.values()


def _sub(announcement: dict | None = None, **changes):
    sub = golden("announcement_submission.xml")
    if announcement:
        changes["announcement"] = sub.announcement.model_copy(update=announcement)
    return sub.model_copy(update=changes)


A = "Announcement/"
SUBMISSION_REFUSALS = {
    "serial bad": ({"serial_number": "2024 07"}, FIELD_INVALID, "SerialNumber"),
    "submitter not a code": ({"submitter_code": "4"}, FIELD_INVALID, "SubmitterCode"),
    "submitter is not the sender": ({"submitter_code": "45"}, ReasonCode.SPOOFED_SENDER, "SubmitterCode"),
    "local reviewer blank": ({"local_reviewer": ""}, FIELD_INVALID, "LocalReviewer"),
    "naive time": ({"submitted_at": NAIVE}, FIELD_INVALID, "SubmittedAt"),
    "future time": ({"submitted_at": FUTURE}, FIELD_INVALID, "SubmittedAt"),
    "closed submission": ({"announcement": {"status": AnnouncementStatus.closed}}, FIELD_INVALID, A + "Status"),
    "id with a slash": ({"announcement": {"id": "GG/44"}}, FIELD_INVALID, A + "Id"),
    "title on two lines": ({"announcement": {"title": "割接\n公告"}}, FIELD_INVALID, A + "Title"),
    "content too long": ({"announcement": {"content": "字" * 4001}}, FIELD_INVALID, A + "Content"),
    "empty scope": ({"announcement": {"scope": Scope()}}, FIELD_INVALID, A + "Scope"),
    "scope node not a code": ({"announcement": {"scope": Scope(nodes=("上海",))}}, FIELD_INVALID, A + "Scope/Node"),
    "scope node twice": ({"announcement": {"scope": Scope(nodes=("31", "31"))}}, FIELD_INVALID, A + "Scope/Node"),
    "scope group in capitals": ({"announcement": {"scope": Scope(groups=("Provinces",))}}, FIELD_INVALID,
                                A + "Scope/Group"),
    "scope group twice": ({"announcement": {"scope": Scope(groups=("all", "all"))}}, FIELD_INVALID,
                          A + "Scope/Group"),
    "replies without deadline": ({"announcement": {"reply_deadline": None}}, FIELD_INVALID, A + "ReplyDeadline"),
    "deadline without replies": ({"announcement": {"replies_required": False}}, FIELD_INVALID, A + "ReplyDeadline"),
    "naive deadline": ({"announcement": {"reply_deadline": datetime(2024, 7, 18, 12)}}, FIELD_INVALID,
                       A + "ReplyDeadline"),
    "deadline already passed": ({"announcement": {"reply_deadline": datetime(2024, 7, 16, 11, tzinfo=CST)}},
                                DEADLINE_ORDER, A + "ReplyDeadline"),
    "deadline equal to now": ({"announcement": {"reply_deadline": NOW}}, DEADLINE_ORDER, A + "ReplyDeadline"),
    "source ref with a space": ({"announcement": {"source_ref": "CUT 44"}}, FIELD_INVALID, A + "SourceRef"),
    "naive start": ({"announcement": {"start_time": NAIVE}}, FIELD_INVALID, A + "StartTime"),
    "end before start": ({"announcement": {"end_time": datetime(2024, 7, 19, 23, tzinfo=CST)}}, DEADLINE_ORDER,
                         A + "EndTime"),
}


@pytest.mark.parametrize("case", sorted(SUBMISSION_REFUSALS))
def test_submission_refusals(case):
    changes, reason, field = SUBMISSION_REFUSALS[case]
    _assert_refused(_refusal(lambda: rules.validate_submission(_sub(**changes), sender="44", now=NOW)),
                    reason, field)


def test_the_deadline_must_follow_the_submission_itself():
    sub = _sub(submitted_at=NOW, announcement={"reply_deadline": NOW + timedelta(seconds=1)})
    rules.validate_submission(sub, sender="44", now=NOW)
    early = _sub(submitted_at=NOW + timedelta(minutes=5), announcement={"reply_deadline": NOW + timedelta(minutes=1)})
    error = _refusal(lambda: rules.validate_submission(early, sender="44", now=NOW))
    _assert_refused(error, DEADLINE_ORDER, A + "ReplyDeadline")
    assert "SubmittedAt (提交时间)" in error.detail


def test_end_may_equal_start_and_an_open_fault_needs_no_end():
    sub = _sub(announcement={"end_time": datetime(2024, 7, 20, tzinfo=CST)})
    rules.validate_submission(sub, sender="44", now=NOW)
    rules.validate_announcement(golden("announcement.xml"), now=NOW)


def test_a_closed_fault_needs_its_end_time():
    closing = golden("announcement_publish_fault_closed.xml")
    closing = closing.model_copy(update={"announcement": closing.announcement.model_copy(update={"end_time": None})})
    _assert_refused(_refusal(lambda: rules.validate_publish(closing, sender=HQ, now=NOW)),
                    FIELD_INVALID, A + "EndTime")


def test_a_closed_announcement_may_have_a_past_deadline():
    published = golden("announcement_publish_cutover.xml")
    later = published.announcement.reply_deadline + timedelta(days=3)
    closing = published.model_copy(update={"published_at": later, "announcement": published.announcement.model_copy(
        update={"status": AnnouncementStatus.closed})})
    rules.validate_publish(closing, sender=HQ, now=later)
    still_open = closing.model_copy(update={"announcement": published.announcement})
    _assert_refused(_refusal(lambda: rules.validate_publish(still_open, sender=HQ, now=later)),
                    DEADLINE_ORDER, A + "ReplyDeadline")


def test_the_deadline_must_follow_the_publication():
    published = golden("announcement_publish_cutover.xml")
    late = published.model_copy(update={"published_at": published.announcement.reply_deadline})
    error = _refusal(lambda: rules.validate_publish(late, sender=HQ, now=NOW + timedelta(days=10)))
    _assert_refused(error, DEADLINE_ORDER, A + "ReplyDeadline")


@pytest.mark.parametrize(("name", "validate"), [
    ("return_for_modification.xml", rules.validate_return),
    ("announcement_publish_fault.xml", rules.validate_publish),
    ("reply_return.xml", rules.validate_reply_return),
    ("reply_accepted.xml", rules.validate_reply_accepted),
])
def test_only_hq_sends_hq_messages(name, validate):
    error = _refusal(lambda: validate(golden(name), sender="31", now=NOW))
    assert (error.reason, error.value) == (ReasonCode.SENDER_NOT_PERMITTED, "31")


HQ_REFUSALS = [
    ("return_for_modification.xml", rules.validate_return, {"opinion": " "}, "Opinion"),
    ("return_for_modification.xml", rules.validate_return, {"submitter_code": "x"}, "SubmitterCode"),
    ("return_for_modification.xml", rules.validate_return, {"submission_serial_number": ""}, "SubmissionSerialNumber"),
    ("return_for_modification.xml", rules.validate_return, {"announcement_id": "GG 1"}, "AnnouncementId"),
    ("return_for_modification.xml", rules.validate_return, {"reviewer": "王" * 51}, "Reviewer"),
    ("return_for_modification.xml", rules.validate_return, {"returned_at": FUTURE}, "ReturnedAt"),
    ("announcement_publish_cutover.xml", rules.validate_publish, {"originator_code": "4"}, "OriginatorCode"),
    ("announcement_publish_cutover.xml", rules.validate_publish, {"reviewer": ""}, "Reviewer"),
    ("announcement_publish_cutover.xml", rules.validate_publish, {"published_at": NAIVE}, "PublishedAt"),
    ("reply_return.xml", rules.validate_reply_return, {"opinion": ""}, "Opinion"),
    ("reply_return.xml", rules.validate_reply_return, {"reply_serial_number": "a b"}, "ReplySerialNumber"),
    ("reply_return.xml", rules.validate_reply_return, {"company_code": "1"}, "CompanyCode"),
    ("reply_accepted.xml", rules.validate_reply_accepted, {"accepted_at": NAIVE}, "AcceptedAt"),
    ("reply_accepted.xml", rules.validate_reply_accepted, {"reviewer": " "}, "Reviewer"),
]


@pytest.mark.parametrize(("name", "validate", "changes", "field"), HQ_REFUSALS,
                         ids=[f"{n}-{f}" for n, _v, _c, f in HQ_REFUSALS])
def test_hq_message_refusals(name, validate, changes, field):
    message = golden(name).model_copy(update=changes)
    _assert_refused(_refusal(lambda: validate(message, sender=HQ, now=NOW)), FIELD_INVALID, field)


REPLY_REFUSALS = {
    "company not the sender": ({"company_code": "12"}, ReasonCode.SPOOFED_SENDER, "CompanyCode"),
    "serial bad": ({"serial_number": "#1"}, FIELD_INVALID, "SerialNumber"),
    "announcement id bad": ({"announcement_id": ""}, FIELD_INVALID, "AnnouncementId"),
    "empty content": ({"content": "\n"}, FIELD_INVALID, "Content"),
    "content too long": ({"content": "字" * 2001}, FIELD_INVALID, "Content"),
    "replier on two lines": ({"replier": "张\n伟"}, FIELD_INVALID, "Replier"),
    "local reviewer blank": ({"local_reviewer": ""}, FIELD_INVALID, "LocalReviewer"),
    "naive time": ({"replied_at": NAIVE}, FIELD_INVALID, "RepliedAt"),
    "future time": ({"replied_at": FUTURE}, FIELD_INVALID, "RepliedAt"),
}


@pytest.mark.parametrize("case", sorted(REPLY_REFUSALS))
def test_reply_refusals(case):
    changes, reason, field = REPLY_REFUSALS[case]
    reply = golden("announcement_reply.xml").model_copy(update=changes)
    _assert_refused(_refusal(lambda: rules.validate_reply(reply, sender="11", now=NOW)), reason, field)


def test_validation_normalises_times_to_utc():
    sub = rules.validate_submission(golden("announcement_submission.xml"), sender="44", now=NOW)
    assert sub.submitted_at.utcoffset() == timedelta(0) and sub.announcement.reply_deadline.utcoffset() == timedelta(0)
    assert sub == golden("announcement_submission.xml")


# ----------------------------------------------------------------------------- scope


def test_scope_expands_nodes_then_groups_once_each():
    scope = golden("announcement_publish_cutover.xml").announcement.scope
    assert rules.resolve_scope(scope, GROUPS) == ("99", *PROVINCES)
    assert rules.resolve_scope(Scope(nodes=("31", "00")), GROUPS, known=GROUPS["all"]) == ("31", "00")
    assert rules.resolve_scope(Scope(nodes=("11",), groups=("provinces",)), GROUPS)[:2] == ("11", "12")


def test_scope_with_unknown_names_is_refused():
    for scope, field in [(Scope(groups=("south",)), "Announcement/Scope/Group"),
                         (Scope(nodes=("88",)), "Announcement/Scope/Node")]:
        error = _refusal(lambda scope=scope: rules.resolve_scope(scope, GROUPS, known=GROUPS["all"]))
        _assert_refused(error, ReasonCode.UNKNOWN_NODE, field)
    error = _refusal(lambda: rules.resolve_scope(Scope(groups=("cities",)), {**GROUPS, "cities": ()}))
    assert error.reason is ReasonCode.NO_DESTINATION
