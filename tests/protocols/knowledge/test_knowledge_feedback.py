"""The feedback flow (seed 003 3.1.1.4): scenario 2's wrong tariff, every legal and illegal step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from knowledge_golden import ITEM, golden

from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.knowledge.feedback import (
    TRANSITIONS,
    FeedbackThread,
    Forward,
    Reply,
    StartUpdate,
    State,
    Submit,
    check_target,
    event_for,
    forward_for,
)
from protocols.knowledge.lifecycle import ItemLifecycle
from protocols.knowledge.lifecycle import State as ItemState
from protocols.knowledge.machine import Event
from protocols.knowledge.models import Disposition

T0 = datetime(2024, 7, 3, 3, 0, tzinfo=UTC)
ALPHABET: list[Event] = [
    Submit(at=T0),
    Reply(at=T0, disposition=Disposition.answered),
    Reply(at=T0, disposition=Disposition.change_required),
    Forward(at=T0, owner="99"),
    StartUpdate(at=T0, version=2, serial=("99", "20240703-0001")),
]


def _thread(state: State = State.NEW) -> FeedbackThread:
    thread = FeedbackThread.for_feedback(golden("feedback.xml"))
    thread.state = state
    return thread


def test_scenario_2_feedback_reaches_the_owner_and_starts_version_2():
    thread = _thread()
    for name, expected in [("feedback.xml", State.SUBMITTED), ("feedback_reply.xml", State.REPLIED),
                           ("feedback_forward.xml", State.FORWARDED), ("submission_update.xml", State.UPDATE_STARTED)]:
        thread.handle(event_for(thread, golden(name)))
        assert thread.state is expected, name
    assert thread.key == ("44", "FB-20240703-0007")
    assert thread.disposition is Disposition.change_required
    assert thread.owner == "99"
    assert (thread.update_version, thread.update_serial) == (2, ("99", "20240703-0001"))  # the link to v2


def test_hq_builds_the_golden_forward():
    thread = _thread(State.REPLIED)
    forward = forward_for(thread, golden("feedback.xml"), owner="99",
                          opinion="请将月功能费更正为 29 元,并核对其余资费数字后提交更新。", forwarded_by="王建华",
                          at=datetime.fromisoformat("2024-07-03T15:05:00+08:00"))
    assert forward == golden("feedback_forward.xml")


def test_an_answered_feedback_ends_replied():
    thread = _thread(State.SUBMITTED)
    thread.handle(event_for(thread, golden("feedback_reply.xml").model_copy(update={"disposition": "answered"})))
    assert thread.state is State.REPLIED and thread.disposition is Disposition.answered


def _refused(thread: FeedbackThread, message) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        thread.handle(event_for(thread, message))
    return err.value


def test_messages_about_another_feedback_or_item_are_unknown_references():
    thread = _thread(State.SUBMITTED)
    other = golden("feedback_reply.xml").model_copy(update={"feedback_id": "FB-OTHER"})
    assert (_refused(thread, other).reason, _refused(thread, other).field) == (ReasonCode.UNKNOWN_REFERENCE,
                                                                             "FeedbackId")
    wrong_item = golden("feedback_reply.xml").model_copy(update={"item_id": "KN-OTHER"})
    assert _refused(thread, wrong_item).field == "ItemId"


def test_only_an_update_that_names_the_feedback_starts_it():
    thread = _thread(State.FORWARDED)
    thread.owner = "99"
    no_ref = golden("submission_update.xml").model_copy(update={"feedback_ref": None})
    assert _refused(thread, no_ref).reason is ReasonCode.UNKNOWN_REFERENCE
    other_item = golden("submission_update.xml")
    other_item = other_item.model_copy(update={"item": other_item.item.model_copy(update={"id": "KN-OTHER"})})
    assert _refused(thread, other_item).field == "Item/Id"
    by_hq = golden("submission_update.xml").model_copy(update={"submitter_code": "00"})
    error = _refused(thread, by_hq)
    assert (error.reason, error.field) == (ReasonCode.SENDER_NOT_PERMITTED, "SubmitterCode")
    assert thread.state is State.FORWARDED


def test_feedback_targets_a_published_live_version():
    feedback = golden("feedback.xml")
    item = ItemLifecycle(item_id=ITEM, owner="99", state=ItemState.PUBLISHED, published_version=1)
    check_target(feedback, item)
    for record, reason, field in [
        (None, ReasonCode.UNKNOWN_REFERENCE, "ItemId"),
        (ItemLifecycle(item_id=ITEM, owner="99"), ReasonCode.UNKNOWN_REFERENCE, "ItemId"),  # never published
        (ItemLifecycle(item_id=ITEM, owner="99", state=ItemState.REVOKED, published_version=1, revoked_version=2),
         ReasonCode.ITEM_REVOKED, "ItemId"),
    ]:
        with pytest.raises(RejectedMessage) as err:
            check_target(feedback, record)
        assert (err.value.reason, err.value.field) == (reason, field)
    with pytest.raises(RejectedMessage) as err:
        check_target(feedback.model_copy(update={"version": 2}), item)  # a version HQ never published
    assert (err.value.reason, err.value.field) == (ReasonCode.UNKNOWN_REFERENCE, "Version")


LEGAL = sorted(((s, e) for s in State for e in ALPHABET if (s, type(e), e.variant) in TRANSITIONS),
               key=lambda p: (p[0].name, p[1].describe()))
ILLEGAL = sorted(((s, e) for s in State for e in ALPHABET if (s, type(e), e.variant) not in TRANSITIONS),
                 key=lambda p: (p[0].name, p[1].describe()))


def _ids(pairs):
    return [f"{s.name}-{e.describe()}" for s, e in pairs]


@pytest.mark.parametrize(("state", "event"), LEGAL, ids=_ids(LEGAL))
def test_legal_transition(state, event):
    thread = _thread(state)
    thread.handle(event)
    assert thread.state is TRANSITIONS[(state, type(event), event.variant)]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_transition_is_refused_naming_event_and_state(state, event):
    thread = _thread(state)
    with pytest.raises(ProtocolViolation) as err:
        thread.handle(event)
    assert err.value.reason is ReasonCode.ILLEGAL_TRANSITION
    assert event.describe() in err.value.detail and f"state {state.name}" in err.value.detail
    assert thread.state is state and thread.history == []


def test_illegal_message_says_what_is_allowed():
    with pytest.raises(ProtocolViolation) as err:
        _thread(State.SUBMITTED).handle(Forward(at=T0, owner="99"))
    assert err.value.detail == (
        "Forward is not allowed while feedback 44/FB-20240703-0007 is in state SUBMITTED; allowed now: "
        "Reply(answered), Reply(change_required)."
    )
    with pytest.raises(ProtocolViolation) as err:
        _thread(State.UPDATE_STARTED).handle(Submit(at=T0))
    assert err.value.detail.endswith("it takes no further messages.")


def test_table_size():
    assert len(LEGAL) == len(TRANSITIONS) == 5
    assert len(LEGAL) + len(ILLEGAL) == len(State) * len(ALPHABET)
