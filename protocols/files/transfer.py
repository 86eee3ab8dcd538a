"""The file transfer with success marks (seed 001, 5.1) as a sans-I/O state machine, both roles.

Seed 001, 5.1: "(1) the province produces the file, (2) sends it and marks it sent, (3) HQ
receives it and returns a success mark to the province; download is the mirror image."

    sender:   PRODUCED --SendStarted--> SENDING --SendCompleted--> SENT --ReceiptMarked--> RECEIVED
                 ^                         |
                 +------SendInterrupted----+        (a retry resumes or restarts the upload)
    receiver: OFFERED --FetchStarted--> FETCHING --Fetched--> FETCHED --Marked--> MARKED
                 ^                         |
                 +-----FetchInterrupted----+
    either:   any unfinished state --TransferFailed--> FAILED --Requeued--> PRODUCED / OFFERED

SENT means: the data file is under its final name on the server, its size and SHA-256 were
verified there, and the sender's mark (`NAME.ok`, protocols/files/marker.py) is beside it.
RECEIVED (the sender's "received-marked") means the receiver's mark came back. On the
receiving side FETCHED means the copy is verified against the sender's mark and MARKED that
the receipt mark (`NAME.CODE.ack`) and the bus event went out.

Owns: the states, the events, ONE transition table (TRANSITIONS, keyed by role, state and
event type), the per-file record (Transfer) with the facts every later event must agree
with (size, SHA-256), and the resume decision (`resume_offset`).
Must not: touch files or sockets, read the clock (events carry `at`), or decide retry
versus give-up (the reason code of the error does, hub/failures.py carries it out).

Like h11, an event the table does not list is an error that names the event and the state,
and the record does not change. Unlike h11 there is no ERROR state: an interrupted transfer
goes back to where it can be tried again, and FAILED is left only by an operator's re-queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from protocols.errors import ProtocolViolation, ReasonCode, TransientFailure

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Role(Enum):
    SENDER = "sender"      # uploads the file and writes the sent mark
    RECEIVER = "receiver"  # mirrors the file and returns the success mark


class State(Enum):
    # sender
    PRODUCED = "produced"    # the file is complete in the sender's outbox (step 1)
    SENDING = "sending"      # an upload is under way under the temporary name
    SENT = "sent"            # verified, renamed into place, sent mark written (step 2)
    RECEIVED = "received"    # the receiver's success mark came back (step 3)
    # receiver
    OFFERED = "offered"      # the sender's mark is on the server, the file is not fetched yet
    FETCHING = "fetching"    # a download is under way under the temporary name
    FETCHED = "fetched"      # the local copy matches the sender's mark
    MARKED = "marked"        # receipt mark written and the mark event published (step 3)
    # either
    FAILED = "failed"        # given up; an operator re-queues it


DONE = frozenset({State.SENT, State.RECEIVED, State.MARKED})


def _utc(at: datetime, what: str) -> datetime:
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise ValueError(f"{what}.at must be a time-zone aware datetime, got {at!r}")
    return at.astimezone(UTC)


def check_sha256(value: str, what: str = "sha256") -> str:
    """A lower-case hex SHA-256 digest, or ValueError naming the value."""
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValueError(f"{what} must be 64 lower-case hex digits (a SHA-256 digest), got {value!r}")
    return value


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of the transfer's events; `at` is when it happened (aware, stored as UTC)."""

    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at, type(self).__name__))


@dataclass(frozen=True, kw_only=True)
class SendStarted(Event):
    """An upload began at byte `offset` (0, or the size of a partial file whose prefix matched)."""

    offset: int = 0


@dataclass(frozen=True, kw_only=True)
class SendInterrupted(Event):
    """The upload stopped (link dropped, server gone, checksum mismatch); `done` bytes are on the server."""

    reason: ReasonCode
    done: int = 0


@dataclass(frozen=True, kw_only=True)
class SendCompleted(Event):
    """Verified on the server (`size`, `sha256` read back), renamed into place, sent mark written."""

    size: int
    sha256: str
    remote_path: str


@dataclass(frozen=True, kw_only=True)
class ReceiptMarked(Event):
    """The receiver `by` returned its success mark for the file with `sha256`."""

    by: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class FetchStarted(Event):
    """A download began at byte `offset` of the local partial copy."""

    offset: int = 0


@dataclass(frozen=True, kw_only=True)
class FetchInterrupted(Event):
    reason: ReasonCode
    done: int = 0


@dataclass(frozen=True, kw_only=True)
class Fetched(Event):
    """The local copy is complete: its `size` and `sha256` as computed locally."""

    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Marked(Event):
    """The receipt mark is on the server and the mark event was published."""


@dataclass(frozen=True, kw_only=True)
class TransferFailed(Event):
    """Given up: a permanent error, or the retries are exhausted."""

    reason: ReasonCode


@dataclass(frozen=True, kw_only=True)
class Requeued(Event):
    """An operator (or `hub sftp send`) asked for a failed transfer to be tried again."""


# ----------------------------------------------------------------------------- the table

R, S = Role, State

#: (role, state, event type) -> new state. Anything missing is illegal.
TRANSITIONS: dict[tuple[Role, State, type[Event]], State] = {
    (R.SENDER, S.PRODUCED, SendStarted): S.SENDING,
    (R.SENDER, S.SENDING, SendInterrupted): S.PRODUCED,
    (R.SENDER, S.SENDING, SendCompleted): S.SENT,
    # A process that died mid-upload left the record in SENDING; the retry starts again.
    (R.SENDER, S.SENDING, SendStarted): S.SENDING,
    (R.SENDER, S.SENT, ReceiptMarked): S.RECEIVED,
    # A document goes to many receivers: each mark is recorded, the state stays.
    (R.SENDER, S.RECEIVED, ReceiptMarked): S.RECEIVED,
    (R.SENDER, S.PRODUCED, TransferFailed): S.FAILED,
    (R.SENDER, S.SENDING, TransferFailed): S.FAILED,
    (R.SENDER, S.FAILED, Requeued): S.PRODUCED,
    (R.RECEIVER, S.OFFERED, FetchStarted): S.FETCHING,
    (R.RECEIVER, S.FETCHING, FetchStarted): S.FETCHING,
    (R.RECEIVER, S.FETCHING, FetchInterrupted): S.OFFERED,
    (R.RECEIVER, S.FETCHING, Fetched): S.FETCHED,
    (R.RECEIVER, S.FETCHED, Marked): S.MARKED,
    # The mark could not be written or published (server or broker gone): fetch again later;
    # the verified local copy is found and kept (adapters/sftp checks it before fetching).
    (R.RECEIVER, S.FETCHED, FetchInterrupted): S.OFFERED,
    (R.RECEIVER, S.OFFERED, TransferFailed): S.FAILED,
    (R.RECEIVER, S.FETCHING, TransferFailed): S.FAILED,
    (R.RECEIVER, S.FETCHED, TransferFailed): S.FAILED,
    (R.RECEIVER, S.FAILED, Requeued): S.OFFERED,
}


def next_state(role: Role, state: State, event: Event) -> State:
    """The state after `event`; ProtocolViolation(ILLEGAL_TRANSITION) naming both if illegal."""
    try:
        return TRANSITIONS[(role, state, type(event))]
    except KeyError:
        allowed = sorted(e.__name__ for (r, s, e) in TRANSITIONS if r is role and s is state)
        hint = f"allowed now: {', '.join(allowed)}" if allowed else "the transfer takes no further events"
        raise ProtocolViolation(
            f"{type(event).__name__} is not allowed for the {role.value} of a file transfer in state "
            f"{state.name}; {hint}.",
            reason=ReasonCode.ILLEGAL_TRANSITION, value=state.name,
        ) from None


# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class FileFacts:
    """What both sides agree a file is: its name on the server, size, SHA-256 and sender."""

    name: str
    size: int
    sha256: str
    sender: str

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"size must be a non-negative integer, got {self.size!r}")
        check_sha256(self.sha256)


@dataclass
class Transfer:
    """One file's transfer as one side sees it. Feed events with `handle`."""

    role: Role
    facts: FileFacts
    state: State | None = None
    done: int = 0                       # bytes known to be at the far side (sender) or local (receiver)
    attempts: int = 0                   # SendStarted / FetchStarted seen
    resumed_from: int = 0               # offset of the last (re)start
    last_reason: ReasonCode | None = None
    marks: dict[str, datetime] = field(default_factory=dict)   # receiver code -> when it marked
    history: list[tuple[Event, State]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = State.PRODUCED if self.role is Role.SENDER else State.OFFERED

    def handle(self, event: Event) -> State:
        """Apply one event and return the new state.

        Raises ProtocolViolation for an event the table does not allow in this state and
        TransientFailure(SFTP_CHECKSUM_MISMATCH) for a completion whose size or digest differs
        from the facts (the far side holds other bytes: restart cleanly); the record is
        unchanged after either.
        """
        new = next_state(self.role, self.state, event)
        if isinstance(event, (SendCompleted, Fetched)):
            self._check_same_file(event.size, event.sha256)
        if isinstance(event, ReceiptMarked) and event.sha256 != self.facts.sha256:
            raise TransientFailure(
                f"{event.by} marked {self.facts.name} as received with SHA-256 {event.sha256}, but the file "
                f"sent has {self.facts.sha256}; the receiver must fetch it again.",
                reason=ReasonCode.SFTP_CHECKSUM_MISMATCH, field="sha256", value=event.sha256,
            )
        if isinstance(event, (SendStarted, FetchStarted)):
            if not 0 <= event.offset <= self.facts.size:
                raise ValueError(f"offset {event.offset} is outside 0..{self.facts.size} of {self.facts.name}")
            self.attempts += 1
            self.resumed_from = event.offset
            self.done = event.offset
        elif isinstance(event, (SendInterrupted, FetchInterrupted)):
            self.done = max(0, min(event.done, self.facts.size))
            self.last_reason = event.reason
        elif isinstance(event, (SendCompleted, Fetched)):
            self.done = self.facts.size
        elif isinstance(event, ReceiptMarked):
            self.marks.setdefault(event.by, event.at)
        elif isinstance(event, TransferFailed):
            self.last_reason = event.reason
        elif isinstance(event, Requeued):
            self.last_reason = None
        self.state = new
        self.history.append((event, new))
        return new

    def _check_same_file(self, size: int, sha256: str) -> None:
        if size != self.facts.size or sha256 != self.facts.sha256:
            raise TransientFailure(
                f"{self.facts.name}: the copy has {size} bytes and SHA-256 {sha256}, the file has "
                f"{self.facts.size} bytes and {self.facts.sha256}; it is transferred again from the start.",
                reason=ReasonCode.SFTP_CHECKSUM_MISMATCH, field="sha256", value=sha256,
            )


def resume_offset(partial_size: int | None, total_size: int, prefix_matches: bool) -> int:
    """Where an upload or download continues: the partial copy's size when it is no longer than
    the file and its bytes equal the file's first bytes, else 0 (restart cleanly)."""
    if partial_size is None or partial_size <= 0 or partial_size > total_size or not prefix_matches:
        return 0
    return partial_size
