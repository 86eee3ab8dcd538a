"""The bus events of file transfer (namespace urn:cs-hub:files:1, files.xsd) as frozen records.

    file.received           FileReceived      success mark of a data file, to its sender
    file.report_received    ReportReceived    HQ's success mark of a province's report, to the province
    file.document_received  DocumentReceived  a province's success mark of an HQ document, to HQ
    file.report_late        ReportLate        HQ's alarm: a report missed its deadline (to HQ and the province)
    file.alarm              TransferAlarm     a transfer was refused or gave up (host key, auth, retries)
    file.transfer           TransferRequest   a job on the adapter's own queue adapter.sftp

Owns: the records, their message type names and root elements.
Must not: serialise (wire.py does), or decide who receives an event (the adapter does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from protocols.files.marker import FileKind
from protocols.files.transfer import check_sha256

NS = "urn:cs-hub:files:1"

MARK_TYPES: dict[FileKind, tuple[str, str]] = {
    FileKind.file: ("file.received", "FileReceived"),
    FileKind.report: ("file.report_received", "ReportReceived"),
    FileKind.document: ("file.document_received", "DocumentReceived"),
}
REPORT_LATE_TYPE = "file.report_late"
ALARM_TYPE = "file.alarm"
TRANSFER_TYPE = "file.transfer"

#: Message type -> root element (local name in NS); config/message_types.yaml lists the same.
MESSAGE_TYPES: dict[str, str] = {
    **dict(MARK_TYPES.values()),
    REPORT_LATE_TYPE: "ReportLate",
    ALARM_TYPE: "TransferAlarm",
    TRANSFER_TYPE: "TransferRequest",
}


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{what} must be time-zone aware, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class FileMarkEvent:
    """A receiver's success mark: the file `file_name` from `sender_code` arrived intact at `company_code`."""

    kind: FileKind
    company_code: str
    sender_code: str
    file_name: str
    path: str
    size: int
    sha256: str
    version: int
    sent_time: datetime
    received_time: datetime
    report_type: str | None = None
    period: str | None = None
    deadline: datetime | None = None
    late: bool | None = None

    def __post_init__(self) -> None:
        check_sha256(self.sha256)
        _aware(self.sent_time, "sent_time")
        _aware(self.received_time, "received_time")
        _aware(self.deadline, "deadline")
        is_report = self.kind is FileKind.report
        report_fields = (self.report_type, self.period, self.deadline, self.late)
        if is_report and any(v is None for v in report_fields):
            raise ValueError("a report mark carries report_type, period, deadline and late")
        if not is_report and any(v is not None for v in report_fields):
            raise ValueError(f"a {self.kind.value} mark carries no report fields")

    @property
    def type_name(self) -> str:
        return MARK_TYPES[self.kind][0]

    @property
    def root(self) -> str:
        return MARK_TYPES[self.kind][1]


@dataclass(frozen=True, kw_only=True)
class ReportLateEvent:
    company_code: str      # who waits for the report (HQ)
    province: str
    report_type: str
    period: str
    expected_name: str
    deadline: datetime
    detected_at: datetime

    type_name = REPORT_LATE_TYPE
    root = "ReportLate"

    def __post_init__(self) -> None:
        _aware(self.deadline, "deadline")
        _aware(self.detected_at, "detected_at")


@dataclass(frozen=True, kw_only=True)
class TransferAlarm:
    company_code: str      # the node whose transfer it was
    endpoint: str          # host:port of the SFTP server
    reason_code: str
    reason_zh: str
    reason_en: str
    raised_at: datetime
    file_name: str | None = None

    type_name = ALARM_TYPE
    root = "TransferAlarm"

    def __post_init__(self) -> None:
        _aware(self.raised_at, "raised_at")


class Direction(StrEnum):
    upload = "upload"      # from the node's local outbox to the server
    download = "download"  # from the server into the node's local inbox


@dataclass(frozen=True, kw_only=True)
class TransferRequest:
    """One file to move for `node`; the facts (size, SHA-256) are the ones the job was made for."""

    node: str
    direction: Direction
    kind: FileKind
    sender_code: str
    base_name: str         # the name as produced; file_name is version `version` of it
    file_name: str
    version: int
    size: int
    sha256: str
    local_path: str
    remote_path: str
    sent_time: datetime | None = None
    report_type: str | None = None
    period: str | None = None

    type_name = TRANSFER_TYPE
    root = "TransferRequest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "kind", FileKind(self.kind))
        check_sha256(self.sha256)
        _aware(self.sent_time, "sent_time")
        if self.version < 1 or self.size < 0:
            raise ValueError(f"version must be >= 1 and size >= 0, got {self.version}, {self.size}")

    @property
    def key(self) -> str:
        """The transfer this job belongs to: an upload is one content under one name (its version and
        folder may still change), a download is one file on the server."""
        if self.direction is Direction.upload:
            return transfer_key_upload(self.node, self.base_name, self.sha256)
        return transfer_key_download(self.node, self.remote_path)


def transfer_key_upload(node: str, base_name: str, sha256: str) -> str:
    return f"upload:{node}:{base_name}:{sha256}"


def transfer_key_download(node: str, remote_path: str) -> str:
    return f"download:{node}:{remote_path}"


BusEvent = FileMarkEvent | ReportLateEvent | TransferAlarm | TransferRequest
