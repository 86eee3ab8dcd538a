"""The mark files beside a data file on the SFTP server, and the names of the files around it.

Every party of the exchange may be a plain SFTP user with any vendor's client (domain 2), so
the marks are small UTF-8 text files of `key: value` lines that a person can read with
`get` and a script can parse, never a database row only the hub can see:

    NAME            the data file, under its final name only once it is complete and verified
    .NAME.part      the upload in progress (hidden by the leading dot; resumed or replaced)
    NAME.ok         the sender's mark: "sent" (size, SHA-256, sender, time), written after NAME
    NAME.CODE.ack   the success mark of receiver CODE (seed 001, 5.1 step 3), one per receiver

Example of NAME.ok:

    # cs-hub file mark 1 (文件标记); see docs/sftp.md
    mark: sent
    file: 44_stats_202611.csv
    size: 1048576
    sha256: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
    sender: 44
    time: 2026-12-03T10:15:00+08:00
    kind: report
    report: stats
    period: 202611
    version: 1

Owns: rendering and strict parsing of the marks (unknown keys are kept for later versions,
missing or malformed required keys are refused with SFTP_MARKER_INVALID naming the key),
and the naming of parts, marks and versions.
Must not: read or write files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from protocols.errors import ReasonCode, RejectedMessage
from protocols.files.transfer import check_sha256

FORMAT_LINE = "# cs-hub file mark 1 (文件标记); see docs/sftp.md"
SENT_SUFFIX = ".ok"
RECEIPT_SUFFIX = ".ack"
PART_SUFFIX = ".part"
#: A mark is a few hundred bytes; anything much larger is not one of ours.
MAX_MARK_BYTES = 8192

_CODE = re.compile(r"^[0-9A-Za-z]{2,8}$")
_KEY = re.compile(r"^[a-z][a-z0-9-]*$")
_VERSION = re.compile(r"^(?P<stem>.+?)\.v(?P<n>[1-9][0-9]{0,4})(?P<ext>\.[A-Za-z0-9]+)?$")
_REQUIRED = ("mark", "file", "size", "sha256", "sender", "time")


class MarkKind(StrEnum):
    sent = "sent"          # written by the sender after the verified upload
    received = "received"  # written by a receiver after the verified download (success mark)


class FileKind(StrEnum):
    report = "report"      # a province's statistical report, named by a report type's rule
    document = "document"  # HQ's standard, specification or business document
    file = "file"          # any other data file (SMS or WAP billing data, ...)


@dataclass(frozen=True)
class Mark:
    """The content of NAME.ok (kind sent) or NAME.CODE.ack (kind received)."""

    kind: MarkKind
    file: str
    size: int
    sha256: str
    sender: str
    time: datetime
    receiver: str | None = None            # received marks: who marks
    file_kind: FileKind = FileKind.file
    report: str | None = None
    period: str | None = None
    version: int = 1
    extra: dict[str, str] = field(default_factory=dict)   # keys of a later format, kept as read

    def __post_init__(self) -> None:
        check_sha256(self.sha256)
        if self.size < 0:
            raise ValueError(f"size must not be negative, got {self.size}")
        if self.time.utcoffset() is None:
            raise ValueError(f"time must be time-zone aware, got {self.time!r}")
        if self.kind is MarkKind.received and not self.receiver:
            raise ValueError("a received mark names its receiver")
        for code in filter(None, (self.sender, self.receiver)):
            if not _CODE.match(code):
                raise ValueError(f"company code {code!r} is not 2-8 letters or digits")


def render(mark: Mark) -> bytes:
    """The mark file's bytes: UTF-8, LF line ends, keys in a fixed order."""
    lines = [FORMAT_LINE, f"mark: {mark.kind.value}", f"file: {mark.file}", f"size: {mark.size}",
             f"sha256: {mark.sha256}", f"sender: {mark.sender}"]
    if mark.receiver:
        lines.append(f"receiver: {mark.receiver}")
    lines += [f"time: {mark.time.isoformat()}", f"kind: {mark.file_kind.value}"]
    if mark.report:
        lines.append(f"report: {mark.report}")
    if mark.period:
        lines.append(f"period: {mark.period}")
    lines.append(f"version: {mark.version}")
    lines += [f"{k}: {v}" for k, v in sorted(mark.extra.items())]
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"a mark value may not contain a line break: {line!r}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse(data: bytes, *, where: str = "mark") -> Mark:
    """A Mark from a mark file's bytes; RejectedMessage(SFTP_MARKER_INVALID) naming the problem."""

    def bad(detail: str, key: str | None = None, value: object = None) -> RejectedMessage:
        return RejectedMessage(f"{where} is not a valid file mark: {detail}. The sender must write it again "
                               f"in the format of docs/sftp.md.", reason=ReasonCode.SFTP_MARKER_INVALID,
                               field=key, value=value)

    if len(data) > MAX_MARK_BYTES:
        raise bad(f"it has {len(data)} bytes, more than {MAX_MARK_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"byte {exc.start} is not UTF-8") from None
    values: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            raise bad(f"line {n} is not 'key: value'", value=raw)
        if key in values:
            raise bad(f"key {key!r} appears twice (line {n})", key)
        values[key] = value
    missing = [k for k in _REQUIRED if not values.get(k)]
    if missing:
        raise bad(f"required key(s) {', '.join(missing)} missing", missing[0])
    try:
        kind = MarkKind(values["mark"])
    except ValueError:
        raise bad(f"mark must be one of {', '.join(MarkKind)}", "mark", values["mark"]) from None
    try:
        file_kind = FileKind(values.get("kind", "file"))
    except ValueError:
        raise bad(f"kind must be one of {', '.join(FileKind)}", "kind", values["kind"]) from None
    if not values["size"].isdigit():
        raise bad("size must be a whole number of bytes", "size", values["size"])
    version = values.get("version", "1")
    if not version.isdigit() or int(version) < 1:
        raise bad("version must be a whole number from 1", "version", version)
    try:
        time = datetime.fromisoformat(values["time"])
    except ValueError:
        raise bad("time must be an ISO 8601 time with its UTC offset", "time", values["time"]) from None
    known = {"mark", "file", "size", "sha256", "sender", "receiver", "time", "kind", "report", "period", "version"}
    try:
        return Mark(kind=kind, file=values["file"], size=int(values["size"]), sha256=values["sha256"],
                    sender=values["sender"], time=time, receiver=values.get("receiver"), file_kind=file_kind,
                    report=values.get("report"), period=values.get("period"), version=int(version),
                    extra={k: v for k, v in values.items() if k not in known})
    except ValueError as exc:
        raise bad(str(exc)) from None


# ----------------------------------------------------------------------------- names


def part_name(name: str) -> str:
    """The hidden name an upload or download is written under until it is verified."""
    return f".{name}{PART_SUFFIX}"


def sent_mark_name(name: str) -> str:
    return f"{name}{SENT_SUFFIX}"


def receipt_mark_name(name: str, receiver: str) -> str:
    return f"{name}.{receiver}{RECEIPT_SUFFIX}"


def data_name_of_sent_mark(mark_name: str) -> str | None:
    """NAME for 'NAME.ok', else None."""
    if mark_name.endswith(SENT_SUFFIX) and not mark_name.startswith("."):
        return mark_name[: -len(SENT_SUFFIX)] or None
    return None


def receipt_of(mark_name: str) -> tuple[str, str] | None:
    """(NAME, CODE) for 'NAME.CODE.ack', else None."""
    if not mark_name.endswith(RECEIPT_SUFFIX):
        return None
    stem = mark_name[: -len(RECEIPT_SUFFIX)]
    name, dot, code = stem.rpartition(".")
    if not dot or not name or not _CODE.match(code):
        return None
    return name, code


def is_data_name(name: str) -> bool:
    """True for a name a data file may have: not hidden, not a part, not a mark."""
    return bool(name) and not name.startswith(".") and not name.endswith(
        (SENT_SUFFIX, RECEIPT_SUFFIX, PART_SUFFIX)) and "/" not in name and name not in (".", "..")


def versioned_name(name: str, version: int) -> str:
    """The server name of version `version` of `name`: v1 is the name itself, later versions
    carry .vN before the extension (44_stats_202611.csv -> 44_stats_202611.v2.csv), so a
    changed file never silently replaces what a receiver may already have fetched."""
    if version < 1:
        raise ValueError(f"version must be 1 or more, got {version}")
    if version == 1:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}.v{version}"
    return f"{stem}.v{version}.{ext}"


def split_version(name: str) -> tuple[str, int]:
    """(base name, version) of a server name: '44_stats_202611.v2.csv' -> ('44_stats_202611.csv', 2)."""
    m = _VERSION.match(name)
    if not m:
        return name, 1
    return m.group("stem") + (m.group("ext") or ""), int(m.group("n"))
