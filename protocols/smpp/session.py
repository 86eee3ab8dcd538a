"""The ESME side of one SMPP 3.4 transceiver session, as a sans-I/O state machine.

    OPEN --bind_transceiver--> BINDING --bind_transceiver_resp OK--> BOUND_TRX
                                  |  \\--resp with error / generic_nack--> BIND_FAILED
    BOUND_TRX --unbind (ours)--> UNBINDING --unbind_resp--> CLOSED
    BOUND_TRX --unbind (SMSC's)--> UNBINDING --unbind_resp (ours)--> CLOSED
    any state --connection lost--> CLOSED

Owns: the states, ONE transition table (TRANSITIONS, keyed by state, direction, command and
variant), the session-level timers (enquire_link when the link has been idle, and the
deadlines of bind, enquire_link and unbind responses) as events, and the naming of bind
refusals (ESME_RINVPASWD, ESME_RINVSYSID).
Must not: open sockets, encode PDUs (smpplib does), read the clock (`now` is an argument,
seconds on the caller's monotonic clock) or follow submits (window.py does).

The caller tells the session about every PDU: `send(command, seq, now)` before writing
one, `receive(command, seq, now, command_status)` after reading one; both raise
ProtocolViolation naming the PDU and the state when the table has no entry (SMPP 3.4
section 2.3 lists which PDUs each session state allows). The state does not change on a
violation: an unexpected PDU from the SMSC is answered with generic_nack
(ESME_RINVBNDSTS) and the session carries on. `receive` and `poll(now)` return what the
caller must do (answer an enquire_link, send one, give up on a dead link).
BINDING is a state of its own (the brief drew OPEN -> BOUND_TRX) so that a second bind
while one is outstanding, or a submit before the bind is answered, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocols.errors import ProtocolViolation, ReasonCode
from protocols.smpp.codes import Command, CommandStatus, status_name


class State(Enum):
    OPEN = "OPEN"                # TCP connected, not bound (SMPP 3.4 section 2.2)
    BINDING = "BINDING"          # bind_transceiver sent, awaiting its response
    BOUND_TRX = "BOUND_TRX"      # bound as transceiver: submit, deliver, enquire_link
    UNBINDING = "UNBINDING"      # unbind sent or received, awaiting / owing unbind_resp
    CLOSED = "CLOSED"            # unbound or the connection is gone; make a new Session
    BIND_FAILED = "BIND_FAILED"  # the SMSC refused the bind; close the connection


class Direction(Enum):
    OUT = "out"   # ESME -> SMSC (we send)
    IN = "in"     # SMSC -> ESME (we receive)


S, D, Cmd = State, Direction, Command
_BOUND_TRAFFIC = [
    (D.OUT, Cmd.submit_sm), (D.IN, Cmd.submit_sm_resp),
    (D.IN, Cmd.deliver_sm), (D.OUT, Cmd.deliver_sm_resp),
    (D.IN, Cmd.data_sm), (D.OUT, Cmd.data_sm_resp),
    (D.OUT, Cmd.enquire_link), (D.IN, Cmd.enquire_link_resp),
    (D.IN, Cmd.enquire_link), (D.OUT, Cmd.enquire_link_resp),
    (D.IN, Cmd.generic_nack), (D.OUT, Cmd.generic_nack),
    (D.IN, Cmd.alert_notification),
]
# While unbinding, responses to what was in flight still arrive and owed answers still go
# out (SMPP 3.4 section 4.2: no new requests after unbind, but outstanding ones complete).
_UNBINDING_TRAFFIC = [
    (D.IN, Cmd.submit_sm_resp), (D.OUT, Cmd.deliver_sm_resp), (D.OUT, Cmd.data_sm_resp),
    (D.IN, Cmd.enquire_link_resp), (D.OUT, Cmd.enquire_link_resp), (D.IN, Cmd.generic_nack),
    (D.OUT, Cmd.generic_nack), (D.IN, Cmd.deliver_sm),
]

#: (state, direction, command, variant) -> new state. Missing means illegal. The variant is
#: "ok" / "error" for bind_transceiver_resp (its command_status decides), else None.
TRANSITIONS: dict[tuple[State, Direction, Command, str | None], State] = {
    (S.OPEN, D.OUT, Cmd.bind_transceiver, None): S.BINDING,
    (S.BINDING, D.IN, Cmd.bind_transceiver_resp, "ok"): S.BOUND_TRX,
    (S.BINDING, D.IN, Cmd.bind_transceiver_resp, "error"): S.BIND_FAILED,
    (S.BINDING, D.IN, Cmd.generic_nack, None): S.BIND_FAILED,
    **{(S.BOUND_TRX, d, c, None): S.BOUND_TRX for d, c in _BOUND_TRAFFIC},
    (S.BOUND_TRX, D.OUT, Cmd.unbind, None): S.UNBINDING,
    (S.BOUND_TRX, D.IN, Cmd.unbind, None): S.UNBINDING,
    **{(S.UNBINDING, d, c, None): S.UNBINDING for d, c in _UNBINDING_TRAFFIC},
    (S.UNBINDING, D.IN, Cmd.unbind_resp, None): S.CLOSED,
    (S.UNBINDING, D.OUT, Cmd.unbind_resp, None): S.CLOSED,
}
del S, D, Cmd

#: Bind refusals, named so that the operator sees at once what to fix.
BIND_REFUSALS: dict[int, tuple[ReasonCode, str]] = {
    CommandStatus.ESME_RINVPASWD: (
        ReasonCode.SMPP_INVALID_PASSWORD,
        "invalid password; check the SMSC password in the adapter's configuration"),
    CommandStatus.ESME_RINVSYSID: (
        ReasonCode.SMPP_INVALID_SYSTEM_ID,
        "invalid system_id; check the system_id in the adapter's configuration"),
    CommandStatus.ESME_RALYBND: (
        ReasonCode.SMPP_BIND_FAILED,
        "this ESME is already bound; the SMSC may allow one session per system_id"),
}


# ----------------------------------------------------------------------------- events out


@dataclass(frozen=True)
class Bound:
    """The bind was accepted: submits may be sent."""


@dataclass(frozen=True)
class BindRefused:
    """The SMSC refused the bind; close the connection. `detail` is the sentence to show."""

    command_status: int
    reason: ReasonCode
    detail: str


@dataclass(frozen=True)
class SendEnquireLinkResp:
    """The SMSC sent enquire_link: answer with enquire_link_resp carrying `sequence`."""

    sequence: int


@dataclass(frozen=True)
class SendUnbindResp:
    """The SMSC sent unbind: answer with unbind_resp carrying `sequence`, then close."""

    sequence: int


@dataclass(frozen=True)
class EnquireLinkDue:
    """Nothing has come from the SMSC for the enquire_link interval: send an enquire_link."""


@dataclass(frozen=True)
class LinkDead:
    """A response did not come in time: close the connection (then reconnect)."""

    reason: ReasonCode
    detail: str


@dataclass(frozen=True)
class Closed:
    """The session ended cleanly (unbind completed)."""


SessionEvent = Bound | BindRefused | SendEnquireLinkResp | SendUnbindResp | EnquireLinkDue | LinkDead | Closed


def _allowed(state: State, direction: Direction) -> list[str]:
    return sorted({c.value for (s, d, c, _v) in TRANSITIONS if s is state and d is direction})


def next_state(state: State, direction: Direction, command: Command, variant: str | None = None) -> State:
    """The state after a PDU; ProtocolViolation naming the PDU and the state if illegal."""
    try:
        return TRANSITIONS[(state, direction, command, variant)]
    except KeyError:
        allowed = _allowed(state, direction)
        hint = f"allowed now: {', '.join(allowed)}" if allowed else "nothing is allowed in this state"
        if direction is Direction.IN:
            what = f"The SMSC sent {command.value} while the session is {state.name}"
        else:
            what = f"The hub may not send {command.value} while the session is {state.name}"
        raise ProtocolViolation(f"{what}; {hint}.", reason=ReasonCode.ILLEGAL_TRANSITION,
                                field=command.value, value=state.name) from None


# ----------------------------------------------------------------------------- the session


class Session:
    """One connection's ESME session. Create it when the TCP connection is up (OPEN)."""

    def __init__(self, now: float, *, enquire_link_interval: float = 30.0,
                 response_timeout: float = 10.0, system_id: str = "") -> None:
        if enquire_link_interval <= 0 or response_timeout <= 0:
            raise ValueError("enquire_link_interval and response_timeout must be positive")
        self.state = State.OPEN
        self.enquire_link_interval = enquire_link_interval
        self.response_timeout = response_timeout
        self.system_id = system_id
        self.bind_refusal: BindRefused | None = None
        self._last_received = now
        # the session-level request awaiting its response: (command, sequence, sent at)
        self._awaiting: dict[Command, tuple[int, float]] = {}
        self._due_reported_at: float | None = None

    # -- PDUs

    def send(self, command: Command | str, sequence: int, now: float) -> None:
        """Record a PDU about to be written. Raises ProtocolViolation if the state forbids it."""
        command = Command(command)
        new = next_state(self.state, Direction.OUT, command)
        if command in (Command.bind_transceiver, Command.enquire_link, Command.unbind):
            self._awaiting[command] = (sequence, now)
        self.state = new

    def receive(self, command: Command | str, sequence: int, now: float,
                command_status: int = CommandStatus.ESME_ROK) -> list[SessionEvent]:
        """Record a PDU read from the SMSC; returns what the caller must do.

        Raises ProtocolViolation if the state forbids it (answer it with generic_nack).
        """
        command = Command(command)
        variant = None
        if command is Command.bind_transceiver_resp:
            variant = "ok" if command_status == CommandStatus.ESME_ROK else "error"
        new = next_state(self.state, Direction.IN, command, variant)
        self._last_received = now
        self._due_reported_at = None
        out: list[SessionEvent] = []
        if command is Command.bind_transceiver_resp or (
                command is Command.generic_nack and self.state is State.BINDING):
            self._awaiting.pop(Command.bind_transceiver, None)
            if new is State.BOUND_TRX:
                out.append(Bound())
            else:
                self.bind_refusal = self._refusal(command, command_status)
                out.append(self.bind_refusal)
        elif command is Command.enquire_link_resp:
            awaited = self._awaiting.get(Command.enquire_link)
            if awaited is not None and awaited[0] == sequence:
                del self._awaiting[Command.enquire_link]
        elif command is Command.enquire_link:
            out.append(SendEnquireLinkResp(sequence))
        elif command is Command.unbind:
            out.append(SendUnbindResp(sequence))
        elif command is Command.unbind_resp:
            self._awaiting.clear()
            out.append(Closed())
        self.state = new
        return out

    def connection_lost(self) -> None:
        """The TCP connection is gone (legal in every state): CLOSED."""
        self.state = State.CLOSED
        self._awaiting.clear()

    # -- timers

    def poll(self, now: float) -> list[SessionEvent]:
        """Timer events due at `now`: LinkDead when a bind, enquire_link or unbind response
        is overdue; EnquireLinkDue (once per idle spell) when bound and nothing has been
        received for enquire_link_interval and no enquire_link is outstanding."""
        for command, (sequence, sent_at) in self._awaiting.items():
            if now - sent_at >= self.response_timeout:
                return [LinkDead(
                    ReasonCode.PARTNER_TIMEOUT,
                    f"The SMSC did not answer {command.value} (sequence {sequence}) within "
                    f"{self.response_timeout:g} s in state {self.state.name}; close and reconnect.")]
        if (self.state is State.BOUND_TRX and Command.enquire_link not in self._awaiting
                and now - self._last_received >= self.enquire_link_interval
                and self._due_reported_at is None):
            self._due_reported_at = now
            return [EnquireLinkDue()]
        return []

    def next_deadline(self) -> float | None:
        """The next time `poll` may have something to report (None: nothing scheduled)."""
        times = [sent_at + self.response_timeout for _seq, sent_at in self._awaiting.values()]
        if (self.state is State.BOUND_TRX and Command.enquire_link not in self._awaiting
                and self._due_reported_at is None):
            times.append(self._last_received + self.enquire_link_interval)
        return min(times) if times else None

    # -- helpers

    def _refusal(self, command: Command, command_status: int) -> BindRefused:
        who = f" for system_id {self.system_id!r}" if self.system_id else ""
        if command is Command.generic_nack:
            return BindRefused(command_status, ReasonCode.SMPP_BIND_FAILED,
                               f"The SMSC answered bind_transceiver{who} with generic_nack "
                               f"({status_name(command_status)}); it may not support transceiver binds.")
        reason, why = BIND_REFUSALS.get(
            command_status, (ReasonCode.SMPP_BIND_FAILED, "check system_id, password and system_type"))
        return BindRefused(command_status, reason,
                           f"The SMSC refused bind_transceiver{who}: {status_name(command_status)}, {why}.")
