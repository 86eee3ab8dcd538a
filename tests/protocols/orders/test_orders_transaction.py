"""The six-step transaction (seed 001, 5.1): happy path, every illegal event, overdue and alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from order_golden import golden

from protocols.errors import ProtocolViolation, ReasonCode, RejectedMessage
from protocols.orders import wire
from protocols.orders.models import AlarmKind, OrderAlarm, ReplyKind
from protocols.orders.transaction import (
    TRANSITIONS,
    DeadlinePassed,
    DispatchForwarded,
    DispatchReceiptArrived,
    DispatchSent,
    Event,
    OrderTransaction,
    ReturnReceiptArrived,
    ReturnSent,
    State,
    alarm_for,
    deadlines,
    event_for,
    find_transaction,
)

T0 = datetime(2024, 6, 11, 2, 0, tzinfo=UTC)  # the golden dispatch time, 10:00 +08:00
FIRST_DUE = T0 + timedelta(hours=2)
FINAL_DUE = T0 + timedelta(hours=24)

#: One event of every (type, variant): the alphabet the table is checked against.
ALPHABET: list[Event] = [
    DispatchSent(at=T0),
    DispatchForwarded(at=T0),
    DispatchReceiptArrived(at=T0, accepted=True),
    DispatchReceiptArrived(at=T0, accepted=False),
    ReturnSent(at=T0, kind=ReplyKind.first),
    ReturnSent(at=T0, kind=ReplyKind.final),
    *[ReturnReceiptArrived(at=T0, kind=k, accepted=a) for k in ReplyKind for a in (True, False)],
    *[DeadlinePassed(at=T0, kind=k) for k in AlarmKind],
]


def _tx(state: State = State.NEW, **kwargs) -> OrderTransaction:
    tx = OrderTransaction(order=golden("dispatch_order.utf8.xml"), receiver="11", **kwargs)
    tx.state = state
    return tx


def _received() -> OrderTransaction:
    tx = _tx()
    for event in (DispatchSent(at=T0), DispatchForwarded(at=T0 + timedelta(seconds=1)),
                  DispatchReceiptArrived(at=T0 + timedelta(seconds=90), accepted=True)):
        tx.handle(event)
    return tx


# ----------------------------------------------------------------------------- happy path


def test_happy_path_with_the_golden_messages():
    order = golden("dispatch_order.utf8.xml")
    tx = OrderTransaction(order=order, receiver="11")
    steps = [
        (order, State.DISPATCHED),
        (DispatchForwarded(at=T0 + timedelta(seconds=1)), State.DELIVERED),
        (golden("dispatch_receipt.xml"), State.RECEIVED),
        (golden("return_order_first.xml"), State.FIRST_REPLIED),
        (golden("return_receipt_first.xml"), State.FIRST_REPLIED),
        (golden("return_order_final.xml"), State.FINAL_REPLIED),
        (golden("return_receipt_final.xml"), State.CLOSED),
    ]
    for step, expected in steps:
        event = step if isinstance(step, Event) else event_for(tx, step)
        assert tx.handle(event) == []
        assert tx.state is expected, type(step).__name__
    assert not tx.is_overdue and tx.alarms == []
    assert tx.time_of(State.FIRST_REPLIED) == datetime(2024, 6, 11, 3, 20, tzinfo=UTC)  # ReplyTime, not its mark
    assert tx.time_of(State.REFUSED) is None
    assert tx.time_of(State.CLOSED) == datetime(2024, 6, 11, 10, 31, 5, tzinfo=UTC)
    assert tx.parties == ("44", "11", "00")


def test_final_reply_without_a_first_one_closes():
    tx = _received()
    tx.handle(ReturnSent(at=T0 + timedelta(minutes=10), kind=ReplyKind.final))
    tx.handle(ReturnReceiptArrived(at=T0 + timedelta(minutes=11), kind=ReplyKind.final, accepted=True))
    assert tx.state is State.CLOSED


def test_rejected_final_reply_must_be_sent_again():
    tx = _received()
    tx.handle(ReturnSent(at=T0 + timedelta(hours=1), kind=ReplyKind.first))
    tx.handle(ReturnSent(at=T0 + timedelta(hours=5), kind=ReplyKind.final))
    tx.handle(ReturnReceiptArrived(at=T0 + timedelta(hours=5), kind=ReplyKind.final, accepted=False))
    assert tx.state is State.FIRST_REPLIED
    assert alarm_for(tx, AlarmKind.final_reply_overdue, FINAL_DUE) is not None  # the final is owed again
    tx.handle(ReturnSent(at=T0 + timedelta(hours=6), kind=ReplyKind.final))
    tx.handle(ReturnReceiptArrived(at=T0 + timedelta(hours=6), kind=ReplyKind.final, accepted=True))
    assert tx.state is State.CLOSED


def test_rejected_first_reply_must_be_sent_again():
    tx = _received()
    tx.handle(ReturnSent(at=T0 + timedelta(hours=1), kind=ReplyKind.first))
    tx.handle(ReturnReceiptArrived(at=T0 + timedelta(hours=1), kind=ReplyKind.first, accepted=False))
    assert tx.state is State.RECEIVED
    assert [a.kind for a in tx.handle(DeadlinePassed(at=FIRST_DUE, kind=AlarmKind.first_reply_overdue))] == [
        AlarmKind.first_reply_overdue]


def test_receiver_refuses_the_order():
    tx = _tx(State.DELIVERED)
    tx.handle(event_for(tx, golden("dispatch_receipt.xml").model_copy(
        update={"status": "rejected", "reason": "非本省号码"})))
    assert tx.state is State.REFUSED
    assert alarm_for(tx, AlarmKind.first_reply_overdue, FIRST_DUE) is None


# ----------------------------------------------------------------------------- the table


LEGAL = sorted(((s, e) for s in State for e in ALPHABET if (s, type(e), e.variant) in TRANSITIONS),
               key=lambda p: (p[0].name, p[1].describe()))
ILLEGAL = sorted(((s, e) for s in State for e in ALPHABET if (s, type(e), e.variant) not in TRANSITIONS),
                 key=lambda p: (p[0].name, p[1].describe()))


def _ids(pairs):
    return [f"{s.name}-{e.describe()}" for s, e in pairs]


@pytest.mark.parametrize(("state", "event"), LEGAL, ids=_ids(LEGAL))
def test_legal_transition(state, event):
    tx = _tx(state)
    tx.handle(event)
    assert tx.state is TRANSITIONS[(state, type(event), event.variant)]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_transition_is_refused_naming_event_and_state(state, event):
    tx = _tx(state)
    if isinstance(event, ReturnSent) and state in (State.CLOSED, State.REFUSED):
        with pytest.raises(RejectedMessage) as err:
            tx.handle(event)
        assert err.value.reason is ReasonCode.UNKNOWN_REFERENCE  # a reply to a finished order
    else:
        with pytest.raises(ProtocolViolation) as err:
            tx.handle(event)
        assert err.value.reason is ReasonCode.ILLEGAL_TRANSITION
        assert event.describe() in err.value.detail
        assert f"state {state.name}" in err.value.detail
    assert tx.state is state and tx.history == []  # nothing changed


def test_table_size_and_alphabet():
    assert len(ALPHABET) == 15
    assert len(LEGAL) + len(ILLEGAL) == len(State) * len(ALPHABET)
    assert all(new in State for new in TRANSITIONS.values())


def test_illegal_message_says_what_is_allowed():
    with pytest.raises(ProtocolViolation) as err:
        _tx(State.DELIVERED).handle(ReturnSent(at=T0, kind=ReplyKind.first))
    assert err.value.detail == (
        "ReturnSent(first) is not allowed while the dispatch order is in state DELIVERED; allowed now: "
        "DispatchReceiptArrived(accepted), DispatchReceiptArrived(rejected)."
    )


def test_events_validate_themselves():
    with pytest.raises(ValueError, match="aware"):
        DispatchSent(at=datetime(2024, 6, 11, 10, 0))
    assert ReturnSent(at=T0, kind="final").kind is ReplyKind.final
    with pytest.raises(ValueError):
        DeadlinePassed(at=T0, kind="someday")
    with pytest.raises(TypeError):
        ReturnSent(at=T0)  # the kind is required


def test_transaction_needs_a_resolved_receiver():
    with pytest.raises(ValueError, match="resolved"):
        OrderTransaction(order=golden("dispatch_order.utf8.xml"), receiver="HOME")
    with pytest.raises(ValueError, match="same company"):
        OrderTransaction(order=golden("dispatch_order.utf8.xml"), receiver="44")


# ----------------------------------------------------------------------------- overdue and alarms


def test_no_reply_raises_the_golden_alarm_to_both_provinces_and_hq():
    tx = _received()
    alarms = tx.handle(DeadlinePassed(at=FIRST_DUE + timedelta(seconds=5), kind=AlarmKind.first_reply_overdue))
    assert alarms == [golden("order_alarm.xml")]
    assert alarms[0].parties == ("44", "11", "00")
    assert tx.state is State.RECEIVED and tx.is_overdue
    wire.validate_xsd(wire.to_xml(alarms[0]))


def test_late_reply_after_overdue_still_closes():
    tx = _received()
    assert tx.handle(DeadlinePassed(at=FIRST_DUE, kind=AlarmKind.first_reply_overdue))
    tx.handle(ReturnSent(at=FIRST_DUE + timedelta(hours=3), kind=ReplyKind.first))
    assert tx.state is State.FIRST_REPLIED
    assert tx.handle(DeadlinePassed(at=FINAL_DUE, kind=AlarmKind.final_reply_overdue))
    tx.handle(ReturnSent(at=FINAL_DUE + timedelta(hours=1), kind=ReplyKind.final))
    tx.handle(ReturnReceiptArrived(at=FINAL_DUE + timedelta(hours=1), kind=ReplyKind.final, accepted=True))
    assert tx.state is State.CLOSED
    assert tx.overdue == {AlarmKind.first_reply_overdue, AlarmKind.final_reply_overdue}  # kept for statistics
    assert [a.kind for a in tx.alarms] == [AlarmKind.first_reply_overdue, AlarmKind.final_reply_overdue]


def test_timer_firing_late_after_the_reply_produces_nothing():
    tx = _received()
    tx.handle(ReturnSent(at=FIRST_DUE - timedelta(minutes=1), kind=ReplyKind.first))
    late = FIRST_DUE + timedelta(minutes=3)
    assert alarm_for(tx, AlarmKind.first_reply_overdue, late) is None
    assert alarm_for(tx, AlarmKind.first_reply_warning, late) is None
    assert alarm_for(tx, AlarmKind.receipt_missing, late) is None
    assert tx.handle(DeadlinePassed(at=late, kind=AlarmKind.first_reply_overdue)) == []
    assert tx.state is State.FIRST_REPLIED and not tx.is_overdue


def test_timers_after_closing_produce_nothing():
    tx = _tx(State.CLOSED)
    for kind in AlarmKind:
        assert tx.handle(DeadlinePassed(at=FINAL_DUE + timedelta(days=1), kind=kind)) == []
    assert tx.state is State.CLOSED


def test_overdue_timer_firing_early_produces_nothing():
    tx = _received()
    assert alarm_for(tx, AlarmKind.first_reply_overdue, FIRST_DUE - timedelta(seconds=1)) is None
    assert alarm_for(tx, AlarmKind.first_reply_overdue, FIRST_DUE) is not None


def test_warning_is_an_alarm_but_not_overdue():
    tx = _received()
    alarms = tx.handle(DeadlinePassed(at=FIRST_DUE - timedelta(minutes=30), kind=AlarmKind.first_reply_warning))
    assert [(a.kind, a.deadline) for a in alarms] == [(AlarmKind.first_reply_warning, FIRST_DUE)]
    assert not tx.is_overdue


def test_missing_receipt_alarm_until_the_receipt_arrives():
    tx = _tx(receipt_within=timedelta(minutes=15))
    tx.handle(DispatchSent(at=T0))
    tx.handle(DispatchForwarded(at=T0))
    alarm = alarm_for(tx, AlarmKind.receipt_missing, T0 + timedelta(minutes=16))
    assert isinstance(alarm, OrderAlarm) and alarm.deadline == T0 + timedelta(minutes=15)
    tx.handle(DispatchReceiptArrived(at=T0 + timedelta(minutes=17), accepted=True))
    assert alarm_for(tx, AlarmKind.receipt_missing, T0 + timedelta(minutes=18)) is None


def test_hq_is_named_once_when_hq_dispatched():
    order = golden("dispatch_order.utf8.xml").model_copy(update={"company_code": "00"})
    tx = OrderTransaction(order=order, receiver="11", state=State.RECEIVED)
    assert alarm_for(tx, AlarmKind.final_reply_overdue, FINAL_DUE).parties == ("00", "11")


# ----------------------------------------------------------------------------- timers


def test_deadlines_without_warnings():
    order = golden("dispatch_order.utf8.xml")
    assert deadlines(order) == [(AlarmKind.first_reply_overdue, FIRST_DUE),
                                (AlarmKind.final_reply_overdue, FINAL_DUE)]
    assert all(due.tzinfo is UTC for _, due in deadlines(order))


def test_deadlines_with_warnings_and_receipt_timer_are_sorted():
    order = golden("dispatch_order.utf8.xml")
    assert deadlines(order, timedelta(minutes=30), receipt_within=timedelta(minutes=15)) == [
        (AlarmKind.receipt_missing, T0 + timedelta(minutes=15)),
        (AlarmKind.first_reply_warning, FIRST_DUE - timedelta(minutes=30)),
        (AlarmKind.first_reply_overdue, FIRST_DUE),
        (AlarmKind.final_reply_warning, FINAL_DUE - timedelta(minutes=30)),
        (AlarmKind.final_reply_overdue, FINAL_DUE),
    ]


def test_a_warning_before_the_dispatch_is_skipped():
    order = golden("dispatch_order.utf8.xml")
    kinds = [kind for kind, _ in deadlines(order, timedelta(hours=3))]
    assert kinds == [AlarmKind.first_reply_overdue, AlarmKind.final_reply_warning, AlarmKind.final_reply_overdue]


@pytest.mark.parametrize("bad", [{"warn_before": timedelta(0)}, {"receipt_within": timedelta(minutes=-1)}])
def test_deadlines_refuse_non_positive_durations(bad):
    with pytest.raises(ValueError):
        deadlines(golden("dispatch_order.utf8.xml"), **bad)


# ----------------------------------------------------------------------------- lookups


def test_find_transaction():
    tx = _received()
    book = {tx.key: tx}
    assert find_transaction(book, golden("return_order_first.xml")) is tx
    with pytest.raises(RejectedMessage) as err:
        find_transaction({}, golden("return_order_first.xml"))
    assert (err.value.reason, err.value.field) == (ReasonCode.UNKNOWN_REFERENCE, "DispatchSerialNumber")
    assert "unknown" in err.value.detail


def test_return_order_for_a_closed_dispatch_is_an_unknown_reference():
    tx = _tx(State.CLOSED)
    with pytest.raises(RejectedMessage) as err:
        find_transaction({tx.key: tx}, golden("return_order_final.xml"))
    assert err.value.reason is ReasonCode.UNKNOWN_REFERENCE and "closed" in err.value.detail
    with pytest.raises(RejectedMessage) as err:
        tx.handle(event_for(tx, golden("return_order_final.xml")))
    assert err.value.reason is ReasonCode.UNKNOWN_REFERENCE


def test_event_for_checks_the_party_and_the_reference():
    tx = _received()
    with pytest.raises(RejectedMessage) as err:
        event_for(tx, golden("return_order_first.xml").model_copy(update={"company_code": "31"}))
    assert (err.value.reason, err.value.field) == (ReasonCode.FIELD_INVALID, "CompanyCode")
    with pytest.raises(RejectedMessage) as err:
        event_for(tx, golden("return_receipt_first.xml").model_copy(update={"dispatch_serial_number": "X"}))
    assert err.value.reason is ReasonCode.UNKNOWN_REFERENCE
    with pytest.raises(RejectedMessage) as err:
        event_for(tx, golden("dispatch_order.utf8.xml").model_copy(update={"serial_number": "X"}))
    assert err.value.reason is ReasonCode.UNKNOWN_REFERENCE
    with pytest.raises(TypeError):
        event_for(tx, golden("order_alarm.xml"))
