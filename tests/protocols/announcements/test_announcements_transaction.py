"""The announcement flows: scenario 3's fault notice, the cut-over with returns, every legal and illegal step,
reply deadlines as timer data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from announcement_golden import CUTOVER, FAULT, GROUPS, HQ, NOW, PROVINCES, at, golden, sender_of

from protocols.announcements import rules, wire
from protocols.announcements.transaction import (
    REPLY_TRANSITIONS,
    TRANSITIONS,
    AcceptReply,
    AnnouncementFlow,
    Close,
    Publish,
    Reply,
    ReplyState,
    Return,
    ReturnReply,
    State,
    Submit,
    closing_notice,
    event_for,
    fault_notice,
    publish_for,
    return_for,
)
from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.knowledge.machine import Event

T0 = datetime(2024, 7, 15, 2, 0, tzinfo=UTC)
SCOPE = ("99", *PROVINCES)


def _feed(flow: AnnouncementFlow, name: str, *, recipients=None, now: datetime = NOW) -> None:
    message = golden(name)
    message = rules.validate(wire.loads(wire.dumps(message, "gbk"), "gbk"), sender=sender_of(message), now=now)
    flow.handle(event_for(flow, message, recipients=recipients))


# ----------------------------------------------------------------------------- scenario 3


def test_scenario_3_fault_notice_to_shanghai_and_hq_closed_an_hour_later():
    published = golden("announcement_publish_fault.xml")
    assert fault_notice(golden("announcement.xml"), at=at("2024-07-10T14:25:00+08:00")) == published
    flow = AnnouncementFlow.for_message(published)
    recipients = rules.resolve_scope(published.announcement.scope, GROUPS)
    assert recipients == ("31", HQ)
    now = at("2024-07-10T14:26:00+08:00")
    _feed(flow, "announcement_publish_fault.xml", recipients=recipients, now=now)
    assert (flow.state, flow.recipients, flow.replies) == (State.PUBLISHED, ("31", HQ), {})
    assert flow.deadlines() == []  # no replies asked: no timers

    # Repeated alarms of the same fault produce one announcement: a second publication is refused.
    with pytest.raises(ProtocolViolation) as err:
        flow.handle(event_for(flow, published, recipients=recipients))
    assert "state PUBLISHED; allowed now: Close" in err.value.detail

    closing = closing_notice(published, content=golden("announcement_publish_fault_closed.xml").announcement.content,
                             end_time=at("2024-07-10T15:20:00+08:00"), at=at("2024-07-10T15:25:00+08:00"))
    assert closing == golden("announcement_publish_fault_closed.xml")
    _feed(flow, "announcement_publish_fault_closed.xml", now=at("2024-07-10T15:26:00+08:00"))
    assert flow.state is State.CLOSED and flow.announcement.status.value == "closed"
    assert [type(e).__name__ for e, _ in flow.history] == ["Publish", "Close"]


# ----------------------------------------------------------------------------- the cut-over, with returns


def test_cutover_returned_resubmitted_published_and_a_reply_returned_then_accepted():
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    assert (flow.originator, flow.announcement_id) == ("44", CUTOVER)
    _feed(flow, "announcement_submission.gbk.xml", now=at("2024-07-15T10:01:00+08:00"))
    _feed(flow, "return_for_modification.xml", now=at("2024-07-15T11:01:00+08:00"))
    assert flow.state is State.RETURNED and flow.opinions[0].startswith("请写明割接期间")
    _feed(flow, "announcement_submission_resubmitted.xml", now=at("2024-07-15T15:01:00+08:00"))
    assert flow.announcement.reply_deadline == at("2024-07-18T12:00:00+08:00")  # the modified content
    _feed(flow, "announcement_publish_cutover.xml", recipients=rules.resolve_scope(
        flow.announcement.scope, GROUPS), now=at("2024-07-15T16:01:00+08:00"))
    assert flow.state is State.PUBLISHED and len(flow.replies) == 32
    assert flow.outstanding_replies() == SCOPE

    for name, state in [("announcement_reply.xml", ReplyState.REPLY_SUBMITTED),
                        ("reply_return.xml", ReplyState.REPLY_RETURNED),
                        ("announcement_reply_resubmitted.xml", ReplyState.REPLY_SUBMITTED),
                        ("reply_accepted.xml", ReplyState.REPLY_ACCEPTED)]:
        _feed(flow, name)
        assert flow.replies["11"].state is state, name
    assert flow.replies["11"].returns == 1 and flow.replies["11"].serial == "20240716-0006"
    assert "11" not in flow.outstanding_replies() and len(flow.outstanding_replies()) == 31


def test_hq_builds_the_golden_return_and_publication():
    assert return_for(golden("announcement_submission.xml"), opinion=golden("return_for_modification.xml").opinion,
                      reviewer="王建华", at=at("2024-07-15T11:00:00+08:00")) == golden("return_for_modification.xml")
    assert publish_for(golden("announcement_submission_resubmitted.xml"), reviewer="王建华",
                       at=at("2024-07-15T16:00:00+08:00")) == golden("announcement_publish_cutover.xml")


def _published() -> AnnouncementFlow:
    flow = AnnouncementFlow.for_message(golden("announcement_publish_cutover.xml"))
    flow.state = State.SUBMITTED
    flow.handle(Publish(at=T0, recipients=SCOPE, announcement=golden("announcement_publish_cutover.xml").announcement))
    return flow


# ----------------------------------------------------------------------------- deadlines


def test_reply_deadline_as_timer_data_and_overdue_recipients():
    flow = _published()
    due = datetime(2024, 7, 18, 4, 0, tzinfo=UTC)
    assert flow.deadlines() == [("reply_due", due)]
    assert flow.deadlines(timedelta(hours=2)) == [("reply_warning", due - timedelta(hours=2)), ("reply_due", due)]
    with pytest.raises(ValueError):
        flow.deadlines(timedelta(0))
    assert flow.overdue_replies(due - timedelta(seconds=1)) == ()
    flow.handle(Reply(at=T0, company="11", serial="1"))  # submitted, awaiting HQ: not overdue
    flow.handle(Reply(at=T0, company="12", serial="1"))
    flow.handle(ReturnReply(at=T0, company="12", serial="1"))  # returned and not resubmitted: overdue
    overdue = flow.overdue_replies(due)
    assert "11" not in overdue and "12" in overdue and len(overdue) == 31
    flow.handle(Reply(at=due + timedelta(hours=1), company="13", serial="1"))  # a late reply is still taken
    assert flow.replies["13"].state is ReplyState.REPLY_SUBMITTED


# ----------------------------------------------------------------------------- cross-checks


def _refused(flow: AnnouncementFlow, message, **kwargs) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        flow.handle(event_for(flow, message, **kwargs))
    return err.value


def test_messages_about_another_announcement_submission_or_reply_are_unknown_references():
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    flow.handle(event_for(flow, golden("announcement_submission_resubmitted.xml")))
    error = _refused(flow, golden("return_for_modification.xml"))  # names the first submission
    assert (error.reason, error.field) == (ReasonCode.UNKNOWN_REFERENCE, "SubmissionSerialNumber")
    other = AnnouncementFlow.for_message(golden("announcement_publish_fault.xml"))
    assert _refused(other, golden("announcement_reply.xml")).field == "AnnouncementId"
    published = _published()
    published.handle(event_for(published, golden("announcement_reply_resubmitted.xml")))
    error = _refused(published, golden("reply_return.xml"))  # returns the older reply
    assert (error.reason, error.field) == (ReasonCode.UNKNOWN_REFERENCE, "ReplySerialNumber")


def test_only_the_originator_resubmits_and_only_recipients_reply():
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    stranger = golden("announcement_submission.xml").model_copy(update={"submitter_code": "45"})
    error = _refused(flow, stranger)
    assert (error.reason, error.field) == (ReasonCode.SENDER_NOT_PERMITTED, "SubmitterCode")
    wrong_origin = golden("announcement_publish_cutover.xml").model_copy(update={"originator_code": "45"})
    assert _refused(flow, wrong_origin, recipients=SCOPE).field == "OriginatorCode"
    published = _published()
    with pytest.raises(RejectedMessage) as err:
        published.handle(Reply(at=T0, company="00", serial="1"))  # HQ is not in this scope
    assert (err.value.reason, err.value.field) == (ReasonCode.SENDER_NOT_PERMITTED, "CompanyCode")


def test_a_publication_needs_its_recipients():
    flow = AnnouncementFlow.for_message(golden("announcement_publish_fault.xml"))
    with pytest.raises(ValueError, match="recipients"):
        event_for(flow, golden("announcement_publish_fault.xml"))


def test_replies_only_while_published_and_only_when_asked():
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    with pytest.raises(ProtocolViolation) as err:
        flow.handle(Reply(at=T0, company="11", serial="1"))
    assert "state NEW; replies are taken while it is PUBLISHED" in err.value.detail
    fault = AnnouncementFlow.for_message(golden("announcement_publish_fault.xml"))
    fault.handle(Publish(at=T0, recipients=("31", HQ)))
    with pytest.raises(ProtocolViolation) as err:
        fault.handle(Reply(at=T0, company="31", serial="1"))
    assert "does not ask for replies" in err.value.detail
    published = _published()
    published.handle(Close(at=T0))
    with pytest.raises(ProtocolViolation):
        published.handle(Reply(at=T0, company="11", serial="1"))


# ----------------------------------------------------------------------------- the tables

ALPHABET: list[Event] = [Submit(at=T0, serial=("44", "1")), Return(at=T0), Publish(at=T0, recipients=SCOPE),
                         Close(at=T0)]
LEGAL = [(s, e) for s in State for e in ALPHABET if (s, type(e), None) in TRANSITIONS]
ILLEGAL = [(s, e) for s in State for e in ALPHABET if (s, type(e), None) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "event"), LEGAL, ids=[f"{s.name}-{e.describe()}" for s, e in LEGAL])
def test_legal_transition(state, event):
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    flow.state = state
    flow.handle(event)
    assert flow.state is TRANSITIONS[(state, type(event), None)]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=[f"{s.name}-{e.describe()}" for s, e in ILLEGAL])
def test_illegal_transition_is_refused_naming_event_and_state(state, event):
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    flow.state = state
    with pytest.raises(ProtocolViolation) as err:
        flow.handle(event)
    assert err.value.reason is ReasonCode.ILLEGAL_TRANSITION
    assert event.describe() in err.value.detail and f"state {state.name}" in err.value.detail
    assert flow.state is state and flow.history == []


REPLY_ALPHABET: list[Event] = [Reply(at=T0, company="11", serial="1"), ReturnReply(at=T0, company="11", serial="1"),
                               AcceptReply(at=T0, company="11", serial="1")]
REPLY_LEGAL = [(s, e) for s in ReplyState for e in REPLY_ALPHABET if (s, type(e), None) in REPLY_TRANSITIONS]
REPLY_ILLEGAL = [(s, e) for s in ReplyState for e in REPLY_ALPHABET if (s, type(e), None) not in REPLY_TRANSITIONS]


@pytest.mark.parametrize(("state", "event"), REPLY_LEGAL, ids=[f"{s.name}-{e.describe()}" for s, e in REPLY_LEGAL])
def test_legal_reply_transition(state, event):
    flow = _published()
    flow.replies["11"].state = state
    flow.handle(event)
    assert flow.replies["11"].state is REPLY_TRANSITIONS[(state, type(event), None)]


@pytest.mark.parametrize(("state", "event"), REPLY_ILLEGAL,
                         ids=[f"{s.name}-{e.describe()}" for s, e in REPLY_ILLEGAL])
def test_illegal_reply_transition_is_refused_naming_event_and_state(state, event):
    flow = _published()
    flow.replies["11"].state = state
    with pytest.raises(ProtocolViolation) as err:
        flow.handle(event)
    assert err.value.reason is ReasonCode.ILLEGAL_TRANSITION
    assert event.describe() in err.value.detail and f"state {state.name}" in err.value.detail
    assert f"the reply of 11 to announcement {CUTOVER}" in err.value.detail
    assert flow.replies["11"].state is state


def test_illegal_message_says_what_is_allowed():
    flow = AnnouncementFlow.for_message(golden("announcement_submission.xml"))
    with pytest.raises(ProtocolViolation) as err:
        flow.handle(Close(at=T0))
    assert err.value.detail == (
        f"Close is not allowed while announcement {CUTOVER} is in state NEW; allowed now: Publish, Submit."
    )
    published = _published()
    with pytest.raises(ProtocolViolation) as err:
        published.handle(AcceptReply(at=T0, company="11", serial="1"))
    assert err.value.detail.endswith("is in state AWAITED; allowed now: Reply.")


def test_table_sizes():
    assert (len(TRANSITIONS), len(LEGAL), len(ILLEGAL)) == (6, 6, 14)
    assert (len(REPLY_TRANSITIONS), len(REPLY_LEGAL), len(REPLY_ILLEGAL)) == (4, 4, 8)
    assert FAULT != CUTOVER
