"""The NMS fault feed as a state machine: interface-table rows in, fault notices out.

Owns: reading one row of the operator's NMS interface table (docs/nms.md) into an `NmsRow`
(refusing bad values with a reason code), the per-fault state (`FaultState`) and the
transition table `step(row, state) -> Decision`: a raised fault opens, a repeated alarm with
nothing new is swallowed, an update that changes severity, title, text or provinces is
re-announced, a clear closes the open fault (a clear of a fault that is not open is
swallowed), a planned cut-over is announced like a fault of kind cutover. The announcement of
each decision in the announcement wire format (protocols/announcements, AnnouncementPublish
with Kind fault/cutover, Status open/closed), and deterministic message ids, so a row processed
twice (a crash between the broker's confirm and marking the row consumed) yields the same
message, which the hub's idempotent receiver drops.
Must not: read the database or the clock, publish, or log.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from protocols.announcements.models import (
    Announcement,
    AnnouncementKind,
    AnnouncementPublish,
    AnnouncementStatus,
    Scope,
    Urgency,
)
from protocols.announcements.rules import CONTENT_MAX, SOURCE_REF_RE, TITLE_MAX
from protocols.errors import ReasonCode, RejectedMessage

HQ = "00"
SECOND_LINE = "99"
FAULT_TYPE = "nms.fault"
CLEAR_TYPE = "nms.clear"
_PROVINCE = re.compile(r"[0-9]{2}")


class RowKind(StrEnum):
    raised = "raised"
    updated = "updated"
    cleared = "cleared"
    cutover = "cutover"


class Severity(StrEnum):
    critical = "critical"
    major = "major"
    minor = "minor"
    warning = "warning"


SEVERITY_ZH = {Severity.critical: "严重", Severity.major: "重要", Severity.minor: "次要", Severity.warning: "提示"}
URGENCY = {Severity.critical: Urgency.critical, Severity.major: Urgency.urgent,
           Severity.minor: Urgency.normal, Severity.warning: Urgency.normal}


class Action(StrEnum):
    announce = "announce"   # open notice (new fault, changed fault, cut-over)
    close = "close"         # closing notice of an open fault
    skip = "skip"           # nothing to tell anyone (repeat, clear of a fault not open)


@dataclass(frozen=True)
class NmsRow:
    row_id: int
    fault_id: str
    kind: RowKind
    severity: Severity
    provinces: tuple[str, ...]      # empty: nationwide
    title: str
    text: str
    occurred_at: datetime           # aware, UTC


@dataclass(frozen=True)
class FaultState:
    """What the feed remembers per fault id (persisted by the adapter beside the interface table)."""

    fault_id: str
    occurrence: int                 # 1 for the first raise; +1 each time it is raised again after a clear
    revision: int                   # announcements of this occurrence so far
    open: bool
    kind: RowKind
    severity: Severity
    provinces: tuple[str, ...]
    title: str
    text: str
    started_at: datetime
    ended_at: datetime | None = None

    @property
    def announcement_id(self) -> str:
        """1-40 letters, digits, hyphens (the announcement Id rule); stable per fault occurrence."""
        digest = hashlib.sha1(self.fault_id.encode()).hexdigest()[:12]
        return f"NMS-{digest}-{self.occurrence}"

    def digest(self) -> tuple:
        return (self.severity, self.provinces, self.title, self.text)


@dataclass(frozen=True)
class Decision:
    action: Action
    note: str                       # why, for the row's consume note and the logs
    state: FaultState | None        # the state after the row (None: unchanged and unknown)
    message_id: str | None = None
    type: str | None = None


def parse_row(raw: Mapping) -> NmsRow:
    """One interface-table row (column -> value) -> NmsRow; FIELD_INVALID naming the column."""
    def bad(col: str, value, what: str) -> RejectedMessage:
        return RejectedMessage(f"NMS row {raw.get('row_id')}: column {col} {value!r} {what}.",
                               reason=ReasonCode.FIELD_INVALID, field=col, value=value)
    fault_id = str(raw.get("fault_id") or "").strip()
    if not SOURCE_REF_RE.fullmatch(fault_id):
        raise bad("fault_id", fault_id, "is not 1-64 letters, digits, _ - : or .")
    try:
        kind = RowKind(str(raw.get("kind") or "").strip().lower())
    except ValueError:
        raise bad("kind", raw.get("kind"), "is not raised, updated, cleared or cutover") from None
    try:
        severity = Severity(str(raw.get("severity") or "major").strip().lower())
    except ValueError:
        raise bad("severity", raw.get("severity"), "is not critical, major, minor or warning") from None
    provinces = tuple(dict.fromkeys(p.strip() for p in str(raw.get("province_codes") or "").replace(";", ",")
                                    .split(",") if p.strip()))
    for p in provinces:
        if not _PROVINCE.fullmatch(p):
            raise bad("province_codes", p, "is not a two-digit province code (GB/T 2260)")
    title = " ".join(str(raw.get("title") or "").split())
    if not title and kind is not RowKind.cleared:
        raise bad("title", raw.get("title"), "is empty")
    occurred = raw.get("occurred_at")
    if isinstance(occurred, str):
        try:
            occurred = datetime.fromisoformat(occurred)
        except ValueError:
            raise bad("occurred_at", occurred, "is not an ISO date and time") from None
    if not isinstance(occurred, datetime):
        raise bad("occurred_at", occurred, "is missing")
    if occurred.tzinfo is None:   # the interface table stores UTC (docs/nms.md)
        occurred = occurred.replace(tzinfo=UTC)
    return NmsRow(int(raw["row_id"]), fault_id, kind, severity, provinces, title[:TITLE_MAX - 10],
                  str(raw.get("text") or "").strip()[:CONTENT_MAX - 200], occurred.astimezone(UTC))


def step(row: NmsRow, state: FaultState | None) -> Decision:
    """The transition of one row; the only place that decides what is announced."""
    if row.kind is RowKind.cleared:
        if state is None or not state.open:
            return Decision(Action.skip, "clear of a fault that is not open", state)
        closed = replace(state, open=False, ended_at=max(row.occurred_at, state.started_at),
                         revision=state.revision + 1)
        return Decision(Action.close, "fault cleared: closing notice", closed,
                        f"nms.{closed.announcement_id}.closed", CLEAR_TYPE)
    kind = RowKind.cutover if row.kind is RowKind.cutover else RowKind.raised
    if state is not None and state.open:
        merged = replace(state, severity=row.severity, provinces=row.provinces or state.provinces,
                         title=row.title or state.title, text=row.text or state.text)
        if merged.digest() == state.digest():
            return Decision(Action.skip, "repeated alarm: nothing new", state)
        merged = replace(merged, revision=state.revision + 1)
        return Decision(Action.announce, "fault changed: updated notice", merged,
                        f"nms.{merged.announcement_id}.r{merged.revision}", FAULT_TYPE)
    occurrence = state.occurrence + 1 if state is not None else 1
    new = FaultState(row.fault_id, occurrence, 1, True, kind, row.severity, row.provinces, row.title,
                     row.text, row.occurred_at)
    note = "planned cut-over notice" if kind is RowKind.cutover else "fault raised"
    return Decision(Action.announce, note, new, f"nms.{new.announcement_id}.r1", FAULT_TYPE)


def scope_of(state: FaultState) -> Scope:
    """The affected provinces and the second-line platform; every province when none is named."""
    if state.provinces:
        return Scope(nodes=(*state.provinces, SECOND_LINE))
    return Scope(groups=("provinces", "second_line"))


def notice(state: FaultState) -> AnnouncementPublish:
    """The announcement of a decision's state: open (fault / cut-over) or its closing notice."""
    kind = AnnouncementKind.cutover if state.kind is RowKind.cutover else AnnouncementKind.fault
    label = "割接通告" if kind is AnnouncementKind.cutover else "故障通告"
    closed = not state.open
    prefix = f"【{label}·已结束】" if closed else f"【{label}·{SEVERITY_ZH[state.severity]}】"
    where = "、".join(state.provinces) if state.provinces else "全网"
    lines = [state.text or state.title, f"影响范围 / affected: {where}",
             f"网管编号 / NMS ticket: {state.fault_id}"]
    if closed:
        lines.insert(0, "该故障已恢复。/ The fault has been cleared.")
    ann = Announcement(id=state.announcement_id, title=(prefix + state.title)[:TITLE_MAX],
                       content="\n".join(lines)[:CONTENT_MAX], urgency=URGENCY[state.severity],
                       scope=scope_of(state), replies_required=False, kind=kind,
                       status=AnnouncementStatus.closed if closed else AnnouncementStatus.open,
                       source_ref=state.fault_id, start_time=state.started_at,
                       end_time=state.ended_at if closed else None)
    published = state.ended_at if closed and state.ended_at else state.started_at
    return AnnouncementPublish(originator_code=HQ, published_at=published, announcement=ann)
