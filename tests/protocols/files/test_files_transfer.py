"""The transfer-with-marks state machine (protocols/files/transfer.py): its table, and a sender and a
receiver wired together through an in-memory "server" (a dict of file names to bytes)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from protocols.errors import ProtocolViolation, ReasonCode, TransientFailure
from protocols.files import marker
from protocols.files.marker import FileKind, Mark, MarkKind
from protocols.files.transfer import (
    TRANSITIONS,
    Fetched,
    FetchInterrupted,
    FetchStarted,
    FileFacts,
    Marked,
    ReceiptMarked,
    Requeued,
    Role,
    SendCompleted,
    SendInterrupted,
    SendStarted,
    State,
    Transfer,
    TransferFailed,
    resume_offset,
)

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
DATA = bytes(range(256)) * 4096           # 1 MiB
SHA = hashlib.sha256(DATA).hexdigest()
FACTS = FileFacts("44_stats_202611.csv", len(DATA), SHA, "44")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_the_table_names_only_states_of_its_role():
    sender = {State.PRODUCED, State.SENDING, State.SENT, State.RECEIVED, State.FAILED}
    receiver = {State.OFFERED, State.FETCHING, State.FETCHED, State.MARKED, State.FAILED}
    for (role, state, _event), new in TRANSITIONS.items():
        allowed = sender if role is Role.SENDER else receiver
        assert state in allowed and new in allowed, (role, state, new)


def test_an_illegal_event_names_the_event_and_the_state_and_changes_nothing():
    t = Transfer(Role.SENDER, FACTS)
    with pytest.raises(ProtocolViolation) as caught:
        t.handle(SendCompleted(at=at(1), size=FACTS.size, sha256=SHA, remote_path="up/44/x"))
    assert caught.value.reason == ReasonCode.ILLEGAL_TRANSITION
    assert "SendCompleted" in caught.value.detail and "PRODUCED" in caught.value.detail
    assert "allowed now: SendStarted, TransferFailed" in caught.value.detail
    assert t.state is State.PRODUCED and t.history == []


def test_a_completion_with_other_bytes_is_a_checksum_mismatch_and_changes_nothing():
    t = Transfer(Role.SENDER, FACTS)
    t.handle(SendStarted(at=at(0)))
    with pytest.raises(TransientFailure) as caught:
        t.handle(SendCompleted(at=at(1), size=FACTS.size, sha256="0" * 64, remote_path="up/44/x"))
    assert caught.value.reason == ReasonCode.SFTP_CHECKSUM_MISMATCH and caught.value.retryable
    assert t.state is State.SENDING


@pytest.mark.parametrize(("partial", "matches", "expected"), [
    (None, True, 0),              # no partial file
    (0, True, 0),
    (4096, True, 4096),           # resume after the verified prefix
    (4096, False, 0),             # other bytes: restart cleanly
    (len(DATA), True, len(DATA)), # everything is there: only the verification remains
    (len(DATA) + 1, True, 0),     # longer than the file: not ours
])
def test_resume_offset(partial, matches, expected):
    assert resume_offset(partial, len(DATA), matches) == expected


class Server:
    """The SFTP server's folder as a dict; `cut_at` drops the link after that many bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def names(self) -> list[str]:
        return sorted(self.files)


def upload(server: Server, t: Transfer, data: bytes, now: datetime, cut_at: int | None = None) -> None:
    part = marker.part_name(t.facts.name)
    have = server.files.get(part)
    prefix_ok = have is not None and data[:len(have)] == have
    offset = resume_offset(len(have) if have is not None else None, len(data), prefix_ok)
    t.handle(SendStarted(at=now, offset=offset))
    body = (have or b"")[:offset]
    end = len(data) if cut_at is None else cut_at
    server.files[part] = body + data[offset:end]
    if cut_at is not None:
        t.handle(SendInterrupted(at=now, reason=ReasonCode.SFTP_UNAVAILABLE, done=cut_at))
        return
    got = server.files.pop(part)
    t.handle(SendCompleted(at=now, size=len(got), sha256=hashlib.sha256(got).hexdigest(), remote_path=t.facts.name))
    server.files[t.facts.name] = got
    server.files[marker.sent_mark_name(t.facts.name)] = marker.render(Mark(
        kind=MarkKind.sent, file=t.facts.name, size=len(got), sha256=hashlib.sha256(got).hexdigest(),
        sender=t.facts.sender, time=now, file_kind=FileKind.report, report="stats", period="202611"))


def test_sender_and_receiver_through_an_in_memory_server_with_a_cut_and_a_resume():
    server = Server()
    sender = Transfer(Role.SENDER, FACTS)

    upload(server, sender, DATA, at(0), cut_at=300_000)      # the link drops
    assert sender.state is State.PRODUCED and sender.last_reason == ReasonCode.SFTP_UNAVAILABLE
    assert server.names() == [".44_stats_202611.csv.part"]   # nothing under the final name
    upload(server, sender, DATA, at(5))                      # the retry resumes
    assert sender.resumed_from == 300_000 and sender.attempts == 2
    assert sender.state is State.SENT
    assert server.names() == ["44_stats_202611.csv", "44_stats_202611.csv.ok"]

    # The receiver sees the sent mark, fetches, verifies and returns its success mark.
    mark = marker.parse(server.files["44_stats_202611.csv.ok"])
    receiver = Transfer(Role.RECEIVER, FileFacts(mark.file, mark.size, mark.sha256, mark.sender))
    assert receiver.state is State.OFFERED
    receiver.handle(FetchStarted(at=at(6)))
    receiver.handle(FetchInterrupted(at=at(6), reason=ReasonCode.SFTP_UNAVAILABLE, done=10))
    receiver.handle(FetchStarted(at=at(7), offset=10))
    copy = server.files[mark.file]
    receiver.handle(Fetched(at=at(7), size=len(copy), sha256=hashlib.sha256(copy).hexdigest()))
    server.files[marker.receipt_mark_name(mark.file, "00")] = marker.render(Mark(
        kind=MarkKind.received, file=mark.file, size=mark.size, sha256=mark.sha256, sender=mark.sender,
        receiver="00", time=at(7), file_kind=mark.file_kind, report=mark.report, period=mark.period))
    receiver.handle(Marked(at=at(7)))
    assert receiver.state is State.MARKED

    # The sender reads the receipt mark: received-marked.
    [(name, code)] = [marker.receipt_of(n) for n in server.names() if marker.receipt_of(n)]
    receipt = marker.parse(server.files[marker.receipt_mark_name(name, code)])
    sender.handle(ReceiptMarked(at=receipt.time, by=code, sha256=receipt.sha256))
    assert sender.state is State.RECEIVED and set(sender.marks) == {"00"}
    assert [type(e).__name__ for e, _ in sender.history] == [
        "SendStarted", "SendInterrupted", "SendStarted", "SendCompleted", "ReceiptMarked"]


def test_a_partial_file_with_other_bytes_is_restarted():
    server = Server()
    server.files[marker.part_name(FACTS.name)] = b"x" * 1000
    sender = Transfer(Role.SENDER, FACTS)
    upload(server, sender, DATA, at(0))
    assert sender.resumed_from == 0 and sender.state is State.SENT
    assert server.files[FACTS.name] == DATA


def test_a_receipt_for_other_bytes_is_refused():
    sender = Transfer(Role.SENDER, FACTS, state=State.SENT)
    with pytest.raises(TransientFailure):
        sender.handle(ReceiptMarked(at=at(1), by="00", sha256="f" * 64))
    assert sender.state is State.SENT


def test_failed_is_left_only_by_a_requeue():
    t = Transfer(Role.SENDER, FACTS)
    t.handle(TransferFailed(at=at(0), reason=ReasonCode.SFTP_HOST_KEY_CHANGED))
    assert t.state is State.FAILED
    with pytest.raises(ProtocolViolation):
        t.handle(SendStarted(at=at(1)))
    t.handle(Requeued(at=at(2)))
    assert t.state is State.PRODUCED and t.last_reason is None
    r = Transfer(Role.RECEIVER, FACTS)
    r.handle(TransferFailed(at=at(0), reason=ReasonCode.SFTP_MARKER_INVALID))
    r.handle(Requeued(at=at(1)))
    assert r.state is State.OFFERED


def test_events_need_aware_times():
    with pytest.raises(ValueError, match="time-zone aware"):
        SendStarted(at=datetime(2026, 12, 3, 10, 0))
