"""protocols/smpp/session.py: the transition table, bind refusals, enquire_link timers."""

from __future__ import annotations

import pytest

from protocols.errors import ProtocolViolation, ReasonCode
from protocols.smpp.codes import Command, CommandStatus
from protocols.smpp.session import (
    TRANSITIONS,
    BindRefused,
    Bound,
    Closed,
    Direction,
    EnquireLinkDue,
    LinkDead,
    SendEnquireLinkResp,
    SendUnbindResp,
    Session,
    State,
    next_state,
)
from protocols.smpp.window import Sequencer

IN, OUT = Direction.IN, Direction.OUT


def bound(now: float = 0.0, **kw) -> tuple[Session, Sequencer]:
    s, seq = Session(now, **kw), Sequencer()
    n = seq.next_sequence()
    s.send(Command.bind_transceiver, n, now)
    assert s.receive(Command.bind_transceiver_resp, n, now) == [Bound()]
    return s, seq


# ----------------------------------------------------------------------------- the table


@pytest.mark.parametrize(("state", "direction", "command", "variant", "new"), [
    (State.OPEN, OUT, Command.bind_transceiver, None, State.BINDING),
    (State.BINDING, IN, Command.bind_transceiver_resp, "ok", State.BOUND_TRX),
    (State.BINDING, IN, Command.bind_transceiver_resp, "error", State.BIND_FAILED),
    (State.BINDING, IN, Command.generic_nack, None, State.BIND_FAILED),
    (State.BOUND_TRX, OUT, Command.submit_sm, None, State.BOUND_TRX),
    (State.BOUND_TRX, IN, Command.submit_sm_resp, None, State.BOUND_TRX),
    (State.BOUND_TRX, IN, Command.deliver_sm, None, State.BOUND_TRX),
    (State.BOUND_TRX, OUT, Command.deliver_sm_resp, None, State.BOUND_TRX),
    (State.BOUND_TRX, IN, Command.enquire_link, None, State.BOUND_TRX),
    (State.BOUND_TRX, OUT, Command.enquire_link, None, State.BOUND_TRX),
    (State.BOUND_TRX, OUT, Command.unbind, None, State.UNBINDING),
    (State.BOUND_TRX, IN, Command.unbind, None, State.UNBINDING),
    (State.UNBINDING, IN, Command.submit_sm_resp, None, State.UNBINDING),
    (State.UNBINDING, IN, Command.unbind_resp, None, State.CLOSED),
    (State.UNBINDING, OUT, Command.unbind_resp, None, State.CLOSED),
])
def test_legal_transitions(state, direction, command, variant, new):
    assert next_state(state, direction, command, variant) is new


@pytest.mark.parametrize(("state", "direction", "command"), [
    (State.OPEN, OUT, Command.submit_sm),                  # submit before bind
    (State.BINDING, OUT, Command.submit_sm),               # submit before the bind is answered
    (State.BINDING, OUT, Command.bind_transceiver),        # a second bind
    (State.BOUND_TRX, IN, Command.submit_sm),              # an SMSC does not submit to an ESME
    (State.BOUND_TRX, IN, Command.bind_transceiver_resp),  # a bind answer out of the blue
    (State.BOUND_TRX, OUT, Command.bind_transmitter),      # we only bind as transceiver
    (State.UNBINDING, OUT, Command.submit_sm),             # no new requests after unbind
    (State.CLOSED, IN, Command.deliver_sm),
    (State.BIND_FAILED, OUT, Command.submit_sm),
])
def test_illegal_pdus_name_the_pdu_and_the_state(state, direction, command):
    with pytest.raises(ProtocolViolation) as err:
        next_state(state, direction, command)
    assert command.value in str(err.value) and state.name in str(err.value)
    assert err.value.reason is ReasonCode.ILLEGAL_TRANSITION


def test_an_illegal_pdu_from_the_smsc_leaves_the_session_as_it_was():
    s, _ = bound()
    with pytest.raises(ProtocolViolation) as err:
        s.receive(Command.submit_sm, 9, now=1)
    assert str(err.value).startswith("ILLEGAL_TRANSITION: The SMSC sent submit_sm while the session is BOUND_TRX")
    assert s.state is State.BOUND_TRX


def test_our_own_illegal_pdu_is_named_as_ours():
    s = Session(0)
    with pytest.raises(ProtocolViolation) as err:
        s.send(Command.submit_sm, 1, now=0)
    assert "The hub may not send submit_sm while the session is OPEN" in str(err.value)
    assert "bind_transceiver" in str(err.value)   # what is allowed now


def test_the_table_only_uses_known_states_and_commands():
    for (state, direction, command, variant), new in TRANSITIONS.items():
        assert isinstance(state, State) and isinstance(new, State)
        assert isinstance(direction, Direction) and isinstance(command, Command)
        assert variant in (None, "ok", "error")


# ----------------------------------------------------------------------------- conversations


def test_bind_submit_deliver_unbind():
    s, seq = bound(system_id="cs-hub")
    s.send("submit_sm", seq.next_sequence(), now=1)
    assert s.receive("submit_sm_resp", seq.sequence, now=1.1) == []
    assert s.receive("deliver_sm", 77, now=2) == []
    s.send("deliver_sm_resp", 77, now=2)
    n = seq.next_sequence()
    s.send("unbind", n, now=3)
    assert s.state is State.UNBINDING
    assert s.receive("submit_sm_resp", 5, now=3.1) == []   # outstanding answers still come
    assert s.receive("unbind_resp", n, now=3.2) == [Closed()]
    assert s.state is State.CLOSED


def test_smsc_initiated_unbind():
    s, _ = bound()
    assert s.receive(Command.unbind, 500, now=5) == [SendUnbindResp(500)]
    s.send(Command.unbind_resp, 500, now=5)
    assert s.state is State.CLOSED


@pytest.mark.parametrize(("status", "reason", "words"), [
    (CommandStatus.ESME_RINVPASWD, ReasonCode.SMPP_INVALID_PASSWORD, "invalid password"),
    (CommandStatus.ESME_RINVSYSID, ReasonCode.SMPP_INVALID_SYSTEM_ID, "invalid system_id"),
    (CommandStatus.ESME_RBINDFAIL, ReasonCode.SMPP_BIND_FAILED, "ESME_RBINDFAIL"),
])
def test_bind_refused_is_named_clearly(status, reason, words):
    s = Session(0, system_id="cs-hub")
    s.send(Command.bind_transceiver, 1, now=0)
    (refused,) = s.receive(Command.bind_transceiver_resp, 1, now=0.1, command_status=status)
    assert isinstance(refused, BindRefused) and refused.reason is reason
    assert words in refused.detail and "'cs-hub'" in refused.detail
    assert f"0x{int(status):08X}" in refused.detail
    assert s.state is State.BIND_FAILED and s.bind_refusal == refused
    s.connection_lost()
    assert s.state is State.CLOSED


def test_bind_answered_with_generic_nack():
    s = Session(0)
    s.send(Command.bind_transceiver, 1, now=0)
    (refused,) = s.receive(Command.generic_nack, 1, now=0, command_status=CommandStatus.ESME_RINVCMDID)
    assert refused.reason is ReasonCode.SMPP_BIND_FAILED and s.state is State.BIND_FAILED


# ----------------------------------------------------------------------------- timers


def test_enquire_link_due_after_idle_interval_once():
    s, seq = bound(now=0, enquire_link_interval=30, response_timeout=10)
    assert s.next_deadline() == 30
    assert s.poll(29.9) == []
    assert s.poll(30) == [EnquireLinkDue()]
    assert s.poll(31) == []                                # reported once per idle spell
    n = seq.next_sequence()
    s.send(Command.enquire_link, n, now=31)
    assert s.next_deadline() == 41                         # the response deadline
    s.receive(Command.enquire_link_resp, n, now=32)
    assert s.next_deadline() == 62 and s.poll(61) == []
    assert s.poll(62) == [EnquireLinkDue()]


def test_traffic_from_the_smsc_postpones_the_enquire_link():
    s, _ = bound(now=0, enquire_link_interval=30)
    s.receive(Command.deliver_sm, 3, now=25)
    assert s.poll(30) == [] and s.next_deadline() == 55


def test_enquire_link_without_answer_means_the_link_is_dead():
    s, seq = bound(now=0, enquire_link_interval=30, response_timeout=10)
    s.send(Command.enquire_link, seq.next_sequence(), now=30)
    assert s.poll(39) == []
    (dead,) = s.poll(40)
    assert isinstance(dead, LinkDead) and dead.reason is ReasonCode.PARTNER_TIMEOUT
    assert "enquire_link" in dead.detail


def test_a_stale_enquire_link_resp_does_not_clear_the_outstanding_one():
    s, seq = bound(now=0, response_timeout=10)
    n = seq.next_sequence()
    s.send(Command.enquire_link, n, now=30)
    s.receive(Command.enquire_link_resp, n + 100, now=31)
    assert isinstance(s.poll(40)[0], LinkDead)


def test_bind_without_answer_means_the_link_is_dead():
    s = Session(0, response_timeout=5)
    s.send(Command.bind_transceiver, 1, now=0)
    assert s.next_deadline() == 5
    assert "bind_transceiver" in s.poll(5)[0].detail


def test_smsc_enquire_link_is_answered():
    s, _ = bound()
    assert s.receive(Command.enquire_link, 900, now=1) == [SendEnquireLinkResp(900)]
    s.send(Command.enquire_link_resp, 900, now=1)
    assert s.state is State.BOUND_TRX


def test_no_timers_when_closed():
    s, _ = bound()
    s.connection_lost()
    assert s.poll(1000) == [] and s.next_deadline() is None
