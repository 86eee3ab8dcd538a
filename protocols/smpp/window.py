"""The send side without I/O: sequence numbers, the window of submits in flight, throttling.

Owns: the classification of every SMPP 3.4 command_status into submitted / retry later /
retryable / permanent with a reason code (one table, CLASSIFICATION), sequence numbers
(1..0x7FFFFFFF, wrapping, SMPP 3.4 section 5.1.2.4), the window that matches responses
to submits by sequence number and times them out, a token bucket for the SMSC's TPS, and
a back-off for ESME_RTHROTTLED / ESME_RMSGQFUL and reconnects.
Must not: read the clock (every method that needs time takes `now`, seconds on any
monotonic clock the caller uses consistently), sleep, send, or decide what a retry means
for the business (the adapter re-sends with the same business id; docs/sms.md).

An error response means the SMSC did not take the message, so re-sending it cannot
duplicate an SMS. A *missing* response can: the SMSC may have taken the message and the
response was lost. That is why a timeout is retryable but is reported separately
(PARTNER_TIMEOUT), and why a response that comes after its timeout is reported as LATE
rather than refused: if it says ESME_ROK, the retry must be cancelled if not yet sent.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Any

from protocols.errors import ProtocolViolation, ReasonCode
from protocols.smpp.codes import CommandStatus, status_name

MIN_SEQUENCE = 0x00000001
MAX_SEQUENCE = 0x7FFFFFFF


class Outcome(Enum):
    SUBMITTED = "submitted"      # ESME_ROK: the SMSC took the part (message_id in the resp)
    RETRY_LATER = "retry_later"  # the SMSC is busy: back off, then send again
    RETRYABLE = "retryable"      # failed now, may succeed later (also: no response in time)
    PERMANENT = "permanent"      # will fail again: status to the business, no retry
    LATE = "late"                # a response after its timeout: see the module docstring


C = CommandStatus
O = Outcome  # noqa: E741
R = ReasonCode
#: command_status of a submit_sm_resp -> (outcome, reason). Codes not listed (vendor codes
#: 0x400-0x4FF, anything else) are RETRYABLE / SMPP_UNKNOWN_STATUS: an error response
#: means nothing was sent, so a bounded retry costs nothing but time.
CLASSIFICATION: dict[CommandStatus, tuple[Outcome, ReasonCode | None]] = {
    C.ESME_ROK: (O.SUBMITTED, None),
    # the SMSC asks us to slow down
    C.ESME_RTHROTTLED: (O.RETRY_LATER, R.SMPP_THROTTLED),
    C.ESME_RMSGQFUL: (O.RETRY_LATER, R.SMPP_QUEUE_FULL),
    # the SMSC or the session has a problem now
    C.ESME_RSYSERR: (O.RETRYABLE, R.SMPP_SYSTEM_ERROR),
    C.ESME_RSUBMITFAIL: (O.RETRYABLE, R.SMPP_SUBMIT_FAILED),
    C.ESME_RX_T_APPN: (O.RETRYABLE, R.SMPP_SUBMIT_FAILED),
    C.ESME_RINVBNDSTS: (O.RETRYABLE, R.SMPP_NOT_BOUND),
    C.ESME_RUNKNOWNERR: (O.RETRYABLE, R.SMPP_UNKNOWN_STATUS),
    # the addresses are wrong
    C.ESME_RINVDSTADR: (O.PERMANENT, R.SMPP_INVALID_DESTINATION),
    C.ESME_RINVDSTTON: (O.PERMANENT, R.SMPP_INVALID_DESTINATION),
    C.ESME_RINVDSTNPI: (O.PERMANENT, R.SMPP_INVALID_DESTINATION),
    C.ESME_RINVSRCADR: (O.PERMANENT, R.SMPP_INVALID_SOURCE),
    C.ESME_RINVSRCTON: (O.PERMANENT, R.SMPP_INVALID_SOURCE),
    C.ESME_RINVSRCNPI: (O.PERMANENT, R.SMPP_INVALID_SOURCE),
    # the SMSC refuses this message for good
    C.ESME_RX_P_APPN: (O.PERMANENT, R.SMPP_REJECTED),
    C.ESME_RX_R_APPN: (O.PERMANENT, R.SMPP_REJECTED),
    C.ESME_RDELIVERYFAILURE: (O.PERMANENT, R.SMPP_REJECTED),
    # our PDU is malformed or uses a feature the SMSC refuses: sending it again fails again
    **{status: (O.PERMANENT, R.SMPP_INVALID_PDU) for status in (
        C.ESME_RINVMSGLEN, C.ESME_RINVCMDLEN, C.ESME_RINVCMDID, C.ESME_RINVPRTFLG,
        C.ESME_RINVREGDLVFLG, C.ESME_RINVSERTYP, C.ESME_RINVESMCLASS, C.ESME_RINVSYSTYP,
        C.ESME_RINVREPFLAG, C.ESME_RINVSCHED, C.ESME_RINVEXPIRY, C.ESME_RINVDFTMSGID,
        C.ESME_RINVOPTPARSTREAM, C.ESME_ROPTPARNOTALLWD, C.ESME_RINVPARLEN,
        C.ESME_RMISSINGOPTPARAM, C.ESME_RINVOPTPARAMVAL, C.ESME_RINVSUBREP,
        C.ESME_RINVNUMMSGS, C.ESME_RINVNUMDESTS, C.ESME_RINVDLNAME, C.ESME_RINVDESTFLAG,
        C.ESME_RCNTSUBDL, C.ESME_RINVMSGID, C.ESME_RCANCELFAIL, C.ESME_RREPLACEFAIL,
        C.ESME_RQUERYFAIL,
    )},
    # bind statuses: answers to a bind (session.py), never expected for a submit; if an
    # SMSC sends one, the session is broken and the next bind will say why
    C.ESME_RALYBND: (O.RETRYABLE, R.SMPP_NOT_BOUND),
    C.ESME_RBINDFAIL: (O.RETRYABLE, R.SMPP_NOT_BOUND),
    C.ESME_RINVPASWD: (O.RETRYABLE, R.SMPP_NOT_BOUND),
    C.ESME_RINVSYSID: (O.RETRYABLE, R.SMPP_NOT_BOUND),
}
del C, O, R


def classify(command_status: int) -> tuple[Outcome, ReasonCode | None]:
    """(outcome, reason) of a submit_sm_resp's command_status; see CLASSIFICATION."""
    try:
        return CLASSIFICATION[CommandStatus(command_status)]
    except ValueError:
        return Outcome.RETRYABLE, ReasonCode.SMPP_UNKNOWN_STATUS


# ----------------------------------------------------------------------------- sequence numbers


class Sequencer:
    """Sequence numbers 1..0x7FFFFFFF, wrapping to 1 (SMPP 3.4 section 5.1.2.4).

    Has smpplib's sequence-generator interface (`sequence`, `next_sequence()`), so one
    Sequencer can number every PDU of a connection, smpplib's binds included.
    """

    def __init__(self, start: int = MIN_SEQUENCE) -> None:
        if not MIN_SEQUENCE <= start <= MAX_SEQUENCE:
            raise ValueError(f"sequence {start} is outside 1..0x7FFFFFFF")
        self._sequence = start - 1 if start > MIN_SEQUENCE else MAX_SEQUENCE

    @property
    def sequence(self) -> int:
        """The last number handed out."""
        return self._sequence

    def next_sequence(self) -> int:
        self._sequence = MIN_SEQUENCE if self._sequence >= MAX_SEQUENCE else self._sequence + 1
        return self._sequence


# ----------------------------------------------------------------------------- the window


@dataclass(frozen=True)
class WindowEvent:
    """What became of one submit: `item` is what the caller passed to on_sent."""

    outcome: Outcome
    seq: int
    item: Any
    command_status: int | None          # None for a timeout
    reason: ReasonCode | None

    @property
    def detail(self) -> str:
        if self.command_status is None:
            return f"No submit_sm_resp for sequence {self.seq} in time; the SMSC may have taken it."
        return f"submit_sm_resp for sequence {self.seq}: {status_name(self.command_status)}."


class Window:
    """At most `size` submits in flight on one connection, matched by sequence number.

    `on_sent` after writing a submit_sm, `on_resp` for its submit_sm_resp (or a
    generic_nack with that sequence), `on_timeout(now)` to give up on responses older than
    `response_timeout`, `on_connection_lost()` for the submits whose fate is unknown.
    """

    def __init__(self, size: int, response_timeout: float = 30.0, *, remember_late: int = 10_000) -> None:
        if size < 1:
            raise ValueError(f"window size must be at least 1, not {size}")
        if response_timeout <= 0:
            raise ValueError("response_timeout must be positive")
        self.size = size
        self.response_timeout = response_timeout
        self._in_flight: OrderedDict[int, tuple[Any, float]] = OrderedDict()
        self._timed_out: OrderedDict[int, Any] = OrderedDict()
        self._remember_late = remember_late

    def __len__(self) -> int:
        return len(self._in_flight)

    def can_send(self) -> bool:
        return len(self._in_flight) < self.size

    def in_flight(self) -> list[tuple[int, Any]]:
        """(seq, item) of the submits awaiting a response, oldest first."""
        return [(seq, item) for seq, (item, _) in self._in_flight.items()]

    def on_sent(self, seq: int, item: Any, now: float) -> None:
        if not MIN_SEQUENCE <= seq <= MAX_SEQUENCE:
            raise ValueError(f"sequence {seq} is outside 1..0x7FFFFFFF")
        if seq in self._in_flight:
            raise ValueError(f"sequence {seq} is already in flight; sequence numbers must not repeat "
                             "within a window")
        if not self.can_send():
            raise ValueError(f"the window of {self.size} is full; call can_send() before sending")
        self._timed_out.pop(seq, None)
        self._in_flight[seq] = (item, now)

    def on_resp(self, seq: int, command_status: int) -> WindowEvent:
        """The event for a response; LATE after a timeout; ProtocolViolation for a sequence
        number never sent (the SMSC answered something we did not ask)."""
        outcome, reason = classify(command_status)
        if seq in self._in_flight:
            item, _ = self._in_flight.pop(seq)
            return WindowEvent(outcome, seq, item, command_status, reason)
        if seq in self._timed_out:
            return WindowEvent(Outcome.LATE, seq, self._timed_out.pop(seq), command_status, reason)
        raise ProtocolViolation(
            f"The SMSC sent submit_sm_resp with sequence {seq} ({status_name(command_status)}), "
            f"but no submit_sm with that sequence is in flight ({len(self._in_flight)} are); "
            "the response is ignored.",
            reason=ReasonCode.ILLEGAL_TRANSITION, field="sequence_number", value=seq)

    def on_timeout(self, now: float) -> list[WindowEvent]:
        """Give up on submits without a response for response_timeout seconds (RETRYABLE,
        PARTNER_TIMEOUT); a response that still comes is reported LATE."""
        out: list[WindowEvent] = []
        for seq, (item, sent_at) in list(self._in_flight.items()):
            if now - sent_at >= self.response_timeout:
                del self._in_flight[seq]
                self._timed_out[seq] = item
                out.append(WindowEvent(Outcome.RETRYABLE, seq, item, None, ReasonCode.PARTNER_TIMEOUT))
        while len(self._timed_out) > self._remember_late:
            self._timed_out.popitem(last=False)
        return out

    def next_deadline(self) -> float | None:
        """When on_timeout next has something to do (None when nothing is in flight)."""
        if not self._in_flight:
            return None
        return min(sent_at for _, sent_at in self._in_flight.values()) + self.response_timeout

    def on_connection_lost(self) -> list[tuple[int, Any]]:
        """Empty the window: (seq, item) of the submits that got no response, oldest first.

        Their fate is unknown: the SMSC may have taken them. The policy (docs/sms.md):
        re-send them after reconnecting, with the same business id.
        """
        lost = self.in_flight()
        self._in_flight.clear()
        self._timed_out.clear()   # no response can come on a new connection
        return lost


# ----------------------------------------------------------------------------- throttling


_EPSILON = 1e-9


class TokenBucket:
    """`tps` tokens a second, at most `burst` saved up; one token per submit_sm.

    `take(now)` takes a token and returns 0.0, or takes nothing and returns how many
    seconds to wait before one is there. `hold(until)` stops all sending until a time (the
    back-off after ESME_RTHROTTLED or ESME_RMSGQFUL).
    """

    def __init__(self, tps: float, burst: int = 1) -> None:
        if tps <= 0 or burst < 1:
            raise ValueError(f"tps must be > 0 and burst >= 1 (got tps={tps}, burst={burst})")
        self.tps = float(tps)
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self._held_until: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.tps)
        if self._last is None or now > self._last:
            self._last = now

    def take(self, now: float) -> float:
        if self._held_until is not None:
            if now < self._held_until:
                return self._held_until - now
            self._held_until = None
        self._refill(now)
        # The tolerance keeps float rounding (0.9999999999 tokens after waiting exactly the
        # time `take` asked for) from answering "wait 1e-16 s" forever.
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.tps

    def hold(self, until: float) -> None:
        """Send nothing before `until` (a later hold extends, an earlier one does not shorten)."""
        if self._held_until is None or until > self._held_until:
            self._held_until = until


class Backoff:
    """Delays initial, initial*factor, ... capped at `maximum`; `reset()` after a success."""

    def __init__(self, initial: float = 0.1, maximum: float = 30.0, factor: float = 2.0) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class CongestionWindow:
    """How many submits to keep in flight when the SMSC pushes back: at most `limit` (the
    configured window), halved at each throttling episode (ESME_RTHROTTLED, ESME_RMSGQFUL),
    grown back by one per window's worth of accepted submits (additive increase,
    multiplicative decrease, as TCP does). An SMSC whose real window is smaller than ours
    then refuses a few submits once, not most of every burst.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"window limit must be at least 1, not {limit}")
        self.limit = limit
        self._size = float(limit)

    @property
    def size(self) -> int:
        return max(1, int(self._size))

    def on_accepted(self) -> None:
        self._size = min(float(self.limit), self._size + 1.0 / self._size)

    def on_throttled(self) -> None:
        self._size = max(1.0, self._size / 2.0)
