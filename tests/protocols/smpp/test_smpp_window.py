"""protocols/smpp/window.py: status classification, sequences, window, token bucket, back-off."""

from __future__ import annotations

import pytest

from protocols.errors import TRANSIENT_REASONS, ProtocolViolation, ReasonCode
from protocols.smpp.codes import CommandStatus, status_name
from protocols.smpp.window import (
    CLASSIFICATION,
    MAX_SEQUENCE,
    Backoff,
    Outcome,
    Sequencer,
    TokenBucket,
    Window,
    classify,
)

# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize(("status", "outcome", "reason"), [
    (0x00, Outcome.SUBMITTED, None),
    (0x58, Outcome.RETRY_LATER, ReasonCode.SMPP_THROTTLED),       # ESME_RTHROTTLED
    (0x14, Outcome.RETRY_LATER, ReasonCode.SMPP_QUEUE_FULL),      # ESME_RMSGQFUL
    (0x08, Outcome.RETRYABLE, ReasonCode.SMPP_SYSTEM_ERROR),      # ESME_RSYSERR
    (0x45, Outcome.RETRYABLE, ReasonCode.SMPP_SUBMIT_FAILED),     # ESME_RSUBMITFAIL
    (0x64, Outcome.RETRYABLE, ReasonCode.SMPP_SUBMIT_FAILED),     # ESME_RX_T_APPN
    (0x04, Outcome.RETRYABLE, ReasonCode.SMPP_NOT_BOUND),         # ESME_RINVBNDSTS
    (0xFF, Outcome.RETRYABLE, ReasonCode.SMPP_UNKNOWN_STATUS),    # ESME_RUNKNOWNERR
    (0x0B, Outcome.PERMANENT, ReasonCode.SMPP_INVALID_DESTINATION),
    (0x51, Outcome.PERMANENT, ReasonCode.SMPP_INVALID_DESTINATION),
    (0x0A, Outcome.PERMANENT, ReasonCode.SMPP_INVALID_SOURCE),
    (0x65, Outcome.PERMANENT, ReasonCode.SMPP_REJECTED),          # ESME_RX_P_APPN
    (0x66, Outcome.PERMANENT, ReasonCode.SMPP_REJECTED),          # ESME_RX_R_APPN
    (0x01, Outcome.PERMANENT, ReasonCode.SMPP_INVALID_PDU),       # ESME_RINVMSGLEN
    (0xC4, Outcome.PERMANENT, ReasonCode.SMPP_INVALID_PDU),       # ESME_RINVOPTPARAMVAL
    (0x400, Outcome.RETRYABLE, ReasonCode.SMPP_UNKNOWN_STATUS),   # vendor specific
    (0x12345, Outcome.RETRYABLE, ReasonCode.SMPP_UNKNOWN_STATUS),
])
def test_classification(status, outcome, reason):
    assert classify(status) == (outcome, reason)


def test_every_smpp_34_status_is_classified_and_reasons_agree_with_the_error_tree():
    assert set(CLASSIFICATION) == set(CommandStatus)
    for status, (outcome, reason) in CLASSIFICATION.items():
        if outcome in (Outcome.RETRY_LATER, Outcome.RETRYABLE):
            assert reason in TRANSIENT_REASONS, status.name
        elif outcome is Outcome.PERMANENT:
            assert reason not in TRANSIENT_REASONS, status.name


def test_status_names():
    assert status_name(0x58) == "ESME_RTHROTTLED (0x00000058)"
    assert status_name(0x401) == "vendor status 0x00000401"


# ----------------------------------------------------------------------------- sequences


def test_sequence_numbers_wrap_to_one():
    s = Sequencer(start=MAX_SEQUENCE - 1)
    assert [s.next_sequence() for _ in range(3)] == [MAX_SEQUENCE - 1, MAX_SEQUENCE, 1]
    assert s.sequence == 1
    assert Sequencer().next_sequence() == 1
    with pytest.raises(ValueError):
        Sequencer(start=0)


# ----------------------------------------------------------------------------- window


def test_window_fills_and_frees():
    w = Window(2, response_timeout=10)
    w.on_sent(1, "a", now=0)
    w.on_sent(2, "b", now=0)
    assert not w.can_send()
    with pytest.raises(ValueError):
        w.on_sent(3, "c", now=0)
    ev = w.on_resp(2, 0)
    assert (ev.outcome, ev.item, ev.reason) == (Outcome.SUBMITTED, "b", None)
    assert w.can_send() and w.in_flight() == [(1, "a")]


def test_responses_out_of_order_are_matched_by_sequence():
    w = Window(10)
    for seq, item in ((5, "p1"), (6, "p2"), (7, "p3")):
        w.on_sent(seq, item, now=0)
    assert [w.on_resp(s, st).item for s, st in ((7, 0), (5, 0x58), (6, 0x0B))] == ["p3", "p1", "p2"]


def test_throttled_response_says_back_off():
    w = Window(1)
    w.on_sent(1, "m", now=0)
    ev = w.on_resp(1, CommandStatus.ESME_RTHROTTLED)
    assert ev.outcome is Outcome.RETRY_LATER and ev.reason is ReasonCode.SMPP_THROTTLED
    assert "ESME_RTHROTTLED" in ev.detail


def test_duplicate_or_out_of_range_sequence_is_refused():
    w = Window(3)
    w.on_sent(1, "a", now=0)
    with pytest.raises(ValueError):
        w.on_sent(1, "b", now=0)
    with pytest.raises(ValueError):
        w.on_sent(0, "b", now=0)
    with pytest.raises(ValueError):
        w.on_sent(MAX_SEQUENCE + 1, "b", now=0)


def test_response_for_a_sequence_never_sent_is_a_protocol_violation():
    w = Window(3)
    with pytest.raises(ProtocolViolation) as err:
        w.on_resp(42, 0)
    assert "sequence 42" in str(err.value)


def test_timeouts_are_retryable_and_late_responses_are_reported():
    w = Window(5, response_timeout=30)
    w.on_sent(1, "a", now=0)
    w.on_sent(2, "b", now=10)
    assert w.next_deadline() == 30
    assert w.on_timeout(now=29.9) == []
    (ev,) = w.on_timeout(now=30)
    assert (ev.outcome, ev.seq, ev.item, ev.reason, ev.command_status) == (
        Outcome.RETRYABLE, 1, "a", ReasonCode.PARTNER_TIMEOUT, None)
    assert "may have taken it" in ev.detail
    late = w.on_resp(1, 0)
    assert late.outcome is Outcome.LATE and late.item == "a" and late.command_status == 0
    assert w.next_deadline() == 40


def test_connection_lost_returns_the_submits_without_response():
    w = Window(5, response_timeout=30)
    for seq in (3, 1, 2):
        w.on_sent(seq, f"m{seq}", now=0)
    w.on_resp(1, 0)
    assert w.on_connection_lost() == [(3, "m3"), (2, "m2")]
    assert len(w) == 0 and w.can_send() and w.next_deadline() is None


def test_sequences_wrap_through_the_window():
    s, w = Sequencer(start=MAX_SEQUENCE), Window(4)
    for item in "abc":
        w.on_sent(s.next_sequence(), item, now=0)
    assert [seq for seq, _ in w.in_flight()] == [MAX_SEQUENCE, 1, 2]
    assert w.on_resp(1, 0).item == "b"


# ----------------------------------------------------------------------------- token bucket


def test_token_bucket_burst_then_rate():
    b = TokenBucket(tps=10, burst=3)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.1)
    assert b.take(0.05) == pytest.approx(0.05)      # half a token came; nothing was taken
    assert b.take(0.1) == 0.0
    assert b.take(0.1) == pytest.approx(0.1)


def test_token_bucket_sustained_rate_is_tps():
    b = TokenBucket(tps=100, burst=1)
    now, sent = 0.0, 0
    for _ in range(1000):                           # bounded: a bug must not spin
        if now >= 1.0:
            break
        wait = b.take(now)
        if wait == 0.0:
            sent += 1
        else:
            now += wait
    assert now >= 1.0
    assert 100 <= sent <= 101


def test_token_bucket_does_not_save_more_than_burst():
    b = TokenBucket(tps=1, burst=2)
    b.take(0.0)
    assert [b.take(1000.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert b.take(1000.0) > 0


def test_token_bucket_hold_after_throttling():
    b = TokenBucket(tps=1000, burst=10)
    b.hold(until=5.0)
    assert b.take(1.0) == pytest.approx(4.0)
    b.hold(until=3.0)                               # does not shorten
    assert b.take(4.0) == pytest.approx(1.0)
    assert b.take(5.0) == 0.0


def test_token_bucket_ignores_time_going_backwards():
    b = TokenBucket(tps=1, burst=1)
    assert b.take(10.0) == 0.0
    assert b.take(9.0) == pytest.approx(1.0)


def test_token_bucket_refuses_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(tps=0, burst=1)


def test_backoff_doubles_up_to_the_cap_and_resets():
    b = Backoff(initial=0.5, maximum=3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


def test_congestion_window_halves_on_throttling_and_grows_back_to_the_limit():
    from protocols.smpp.window import CongestionWindow

    cw = CongestionWindow(20)
    assert cw.size == 20
    cw.on_throttled()
    cw.on_throttled()
    assert cw.size == 5
    for _ in range(6):
        cw.on_accepted()
    assert cw.size == 6                  # about one more per window's worth of accepted submits
    for _ in range(1000):
        cw.on_accepted()
    assert cw.size == 20                 # never beyond the configured window
    for _ in range(10):
        cw.on_throttled()
    assert cw.size == 1
