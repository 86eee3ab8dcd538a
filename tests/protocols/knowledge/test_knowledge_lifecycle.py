"""A knowledge item's lifecycle at HQ: scenario 2 with the goldens, every legal and illegal step, the guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from knowledge_golden import HQ, ITEM, RECIPIENTS, golden

from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.knowledge import lifecycle, wire
from protocols.knowledge.lifecycle import (
    TRANSITIONS,
    Approve,
    Event,
    ItemLifecycle,
    Pending,
    Publish,
    Return,
    Revoke,
    State,
    Submit,
    delivery_for,
    event_for,
    review_result,
)
from protocols.knowledge.models import Action, KnowledgeStatus, ReviewOutcome

T0 = datetime(2024, 7, 1, 1, 30, tzinfo=UTC)
SERIAL = ("99", "20240701-0001")

#: One event of every (type, variant): the alphabet the table is checked against.
ALPHABET: list[Event] = [
    *[Submit(at=T0, action=a, version=2, serial=SERIAL) for a in Action],
    Approve(at=T0),
    Return(at=T0, opinion="请补充"),
    Publish(at=T0, version=2),
    Revoke(at=T0, version=2),
]


def _record(state: State = State.DRAFT, pending: Action | None = None, published: int = 0) -> ItemLifecycle:
    record = ItemLifecycle(item_id=ITEM, owner="99", state=state, published_version=published)
    if pending is not None:
        record.pending = Pending(pending, published + 1, SERIAL)
    return record


def _pending_for(state: State, event: Event) -> Action | None:
    """The pending change that makes `event` fit the guard in `state` (for the table tests)."""
    if state in (State.SUBMITTED, State.RETURNED, State.APPROVED):
        if isinstance(event, Submit):
            return event.action
        return Action.revoke if isinstance(event, Revoke) else Action.update
    return None


# ----------------------------------------------------------------------------- scenario 2


def test_scenario_2_returned_once_then_approved_published_then_updated():
    first = golden("submission_publish.xml")
    record = ItemLifecycle.for_submission(first)
    assert (record.item_id, record.owner, record.state) == (ITEM, "99", State.DRAFT)
    steps = [
        ("submission_publish.xml", State.SUBMITTED),
        ("review_returned.xml", State.RETURNED),
        ("submission_publish_resubmitted.xml", State.SUBMITTED),
        ("review_approved.xml", State.APPROVED),
        ("delivery_publish.xml", State.PUBLISHED),
        ("submission_update.xml", State.SUBMITTED),
        ("review_update_approved.xml", State.APPROVED),
        ("delivery_update.xml", State.PUBLISHED),
    ]
    for name, expected in steps:
        record.handle(event_for(record, golden(name)))
        assert record.state is expected, name
        if name == "submission_update.xml":
            assert record.published_version == 1  # v1 stays live while v2 is reviewed
    assert record.published_version == 2 and record.pending is None
    assert record.returns == 1 and record.opinions[0].startswith("资费说明未写明")
    assert [type(e).__name__ for e, _ in record.history] == [
        "Submit", "Return", "Submit", "Approve", "Publish", "Submit", "Approve", "Publish"]


def test_revocation_follows_the_same_path_and_is_final():
    record = _record(State.PUBLISHED, published=3)
    sub = golden("submission_update.xml").model_copy(update={
        "action": Action.revoke, "note": "套餐下线", "feedback_ref": None,
        "item": golden("submission_update.xml").item.model_copy(update={"version": 4})})
    record.handle(event_for(record, sub))
    record.handle(event_for(record, review_result(sub, ReviewOutcome.returned, reviewer="王建华",
                                                    at=T0 + timedelta(hours=1), opinion="请写明下线日期")))
    assert record.state is State.RETURNED
    record.handle(event_for(record, sub.model_copy(update={"serial_number": "20240705-0002"})))
    record.handle(Approve(at=T0 + timedelta(hours=2)))
    delivery = delivery_for(sub, recipients=RECIPIENTS, reviewer="王建华", at=T0 + timedelta(hours=3))
    assert delivery.tombstone.version == 4 and delivery.item is None
    record.handle(event_for(record, delivery))
    assert (record.state, record.revoked_version, record.published_version) == (State.REVOKED, 4, 3)
    for late in (sub, golden("review_approved.xml"), golden("delivery_update.xml")):
        with pytest.raises(RejectedMessage) as err:
            record.handle(event_for(record, late))
        assert err.value.reason is ReasonCode.ITEM_REVOKED


def test_hq_authors_use_the_same_path():
    sub = golden("submission_publish.xml").model_copy(update={
        "submitter_code": HQ, "item": golden("submission_publish.xml").item.model_copy(update={"owner_node": HQ})})
    record = ItemLifecycle.for_submission(sub)
    record.handle(event_for(record, sub))
    assert record.state is State.SUBMITTED and record.owner == HQ


# ----------------------------------------------------------------------------- messages HQ sends


def test_hq_builds_the_golden_review_results_and_deliveries():
    returned = review_result(golden("submission_publish.xml"), ReviewOutcome.returned, reviewer="王建华",
                             at=datetime.fromisoformat("2024-07-01T14:00:00+08:00"),
                             opinion=golden("review_returned.xml").opinion)
    assert returned == golden("review_returned.xml")
    approved = review_result(golden("submission_publish_resubmitted.xml"), "approved", reviewer="王建华",
                             at=datetime.fromisoformat("2024-07-02T10:00:00+08:00"))
    assert approved == golden("review_approved.xml")
    delivery = delivery_for(golden("submission_update.xml"), recipients=[*RECIPIENTS, "11"], reviewer="王建华",
                            at=datetime.fromisoformat("2024-07-04T09:35:00+08:00"))
    assert delivery == golden("delivery_update.xml")  # recipients de-duplicated, status published
    assert delivery.item.status is KnowledgeStatus.published
    wire.validate_xsd(wire.to_xml(delivery))


# ----------------------------------------------------------------------------- cross-checks with the record


def _refused(record: ItemLifecycle, message) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        record.handle(event_for(record, message))
    return err.value


def test_a_stale_update_is_refused():
    record = _record(State.PUBLISHED, published=2)
    error = _refused(record, golden("submission_update.xml"))  # version 2 again: someone else's came first
    assert (error.reason, error.field) == (ReasonCode.STALE_VERSION, "Item/Version")
    assert record.state is State.PUBLISHED and record.history == []


def test_an_update_that_skips_a_version_is_refused():
    error = _refused(_record(State.DRAFT), golden("submission_update.xml"))
    # nothing published: the table refuses the update before any version arithmetic
    assert error.reason is ReasonCode.ILLEGAL_TRANSITION
    sub = golden("submission_update.xml")
    sub = sub.model_copy(update={"item": sub.item.model_copy(update={"version": 4})})
    error = _refused(_record(State.PUBLISHED, published=1), sub)
    assert (error.reason, error.field) == (ReasonCode.FIELD_INVALID, "Item/Version")


def test_messages_about_another_item_or_submission_are_unknown_references():
    record = _record(State.SUBMITTED, pending=Action.publish)
    record.pending = Pending(Action.publish, 1, ("99", "20240701-0002"))
    error = _refused(record, golden("review_returned.xml"))  # decides the first, returned submission
    assert (error.reason, error.field) == (ReasonCode.UNKNOWN_REFERENCE, "SubmissionSerialNumber")
    other = ItemLifecycle(item_id="KN-OTHER", owner="99")
    for name, field in [("submission_publish.xml", "Item/Id"), ("review_approved.xml", "ItemId"),
                        ("delivery_publish.xml", "ItemId")]:
        error = _refused(other, golden(name))
        assert (error.reason, error.field) == (ReasonCode.UNKNOWN_REFERENCE, field)


def test_an_item_keeps_its_owner():
    record = _record(State.PUBLISHED, published=1)
    sub = golden("submission_update.xml")
    sub = sub.model_copy(update={"submitter_code": HQ, "item": sub.item.model_copy(update={"owner_node": HQ})})
    error = _refused(record, sub)
    assert (error.reason, error.field) == (ReasonCode.FIELD_INVALID, "Item/OwnerNode")


def test_a_delivery_must_be_the_approved_version():
    record = _record(State.APPROVED, pending=Action.update, published=1)  # pending: update to version 2
    v1 = golden("delivery_publish.xml")
    error = _refused(record, v1)
    assert (error.reason, error.field) == (ReasonCode.FIELD_INVALID, "Action")
    record.handle(event_for(record, golden("delivery_update.xml")))
    assert record.state is State.PUBLISHED


# ----------------------------------------------------------------------------- the table


LEGAL = sorted(((s, e) for s in State for e in ALPHABET if (s, type(e), e.variant) in TRANSITIONS),
               key=lambda p: (p[0].name, p[1].describe()))
ILLEGAL = sorted(((s, e) for s in State for e in ALPHABET if (s, type(e), e.variant) not in TRANSITIONS),
                 key=lambda p: (p[0].name, p[1].describe()))


def _ids(pairs):
    return [f"{s.name}-{e.describe()}" for s, e in pairs]


@pytest.mark.parametrize(("state", "event"), LEGAL, ids=_ids(LEGAL))
def test_legal_transition(state, event):
    record = _record(state, pending=_pending_for(state, event), published=1)
    record.handle(event)
    assert record.state is TRANSITIONS[(state, type(event), event.variant)]
    assert record.history == [(event, record.state)]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_transition_is_refused_naming_event_state_and_allowed_events(state, event):
    record = _record(state, pending=_pending_for(state, event), published=1)
    if state is State.REVOKED:
        with pytest.raises(RejectedMessage) as err:
            record.handle(event)
        assert err.value.reason is ReasonCode.ITEM_REVOKED  # a revoked item takes nothing
    else:
        with pytest.raises(ProtocolViolation) as err:
            record.handle(event)
        assert err.value.reason is ReasonCode.ILLEGAL_TRANSITION
        assert event.describe() in err.value.detail
        assert f"state {state.name}" in err.value.detail
        assert "allowed now: " in err.value.detail
    assert record.state is state and record.history == []  # nothing changed


@pytest.mark.parametrize(("state", "pending", "event", "allowed"), [
    (State.RETURNED, Action.publish, Submit(at=T0, action=Action.update, version=2, serial=SERIAL),
     "Submit(publish)"),
    (State.RETURNED, Action.update, Submit(at=T0, action=Action.revoke, version=2, serial=SERIAL),
     "Submit(update)"),
    (State.APPROVED, Action.revoke, Publish(at=T0, version=2), "Revoke"),
    (State.APPROVED, Action.update, Revoke(at=T0, version=2), "Publish"),
])
def test_the_guard_keeps_the_change_under_review(state, pending, event, allowed):
    record = _record(state, pending=pending, published=1)
    with pytest.raises(ProtocolViolation) as err:
        record.handle(event)
    assert err.value.detail.endswith(f"allowed now: {allowed}.")  # only the event that fits


def test_illegal_message_says_what_is_allowed():
    with pytest.raises(ProtocolViolation) as err:
        _record(State.DRAFT).handle(Approve(at=T0))
    assert err.value.detail == (
        f"Approve is not allowed while knowledge item {ITEM} is in state DRAFT; allowed now: Submit(publish)."
    )


def test_table_size_and_alphabet():
    assert len(ALPHABET) == 7
    assert len(LEGAL) + len(ILLEGAL) == len(State) * len(ALPHABET)
    assert len(TRANSITIONS) == 10
    assert not [k for k in TRANSITIONS if k[0] is State.REVOKED]  # final


def test_events_validate_themselves():
    with pytest.raises(ValueError, match="aware"):
        Approve(at=datetime(2024, 7, 1, 9, 0))
    assert Submit(at=T0, action="revoke", version=2, serial=SERIAL).action is Action.revoke
    with pytest.raises(ValueError):
        Submit(at=T0, action="delete", version=2, serial=SERIAL)
    assert lifecycle.Publish(at=datetime.fromisoformat("2024-07-02T10:05:00+08:00"), version=1).at == datetime(
        2024, 7, 2, 2, 5, tzinfo=UTC)
