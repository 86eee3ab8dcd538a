"""Report naming rules, reporting periods and deadlines: HQ sets formats and deadlines (domain 4).

A report type's file name comes from a pattern in configuration, for example

    {province}_{report}_{yyyymm}.csv      ->  44_stats_202611.csv

Placeholders: {province} (the sending node's company code, required), {report} (the report
type's code), and the period: {yyyymm} for a monthly report, {yyyymmdd} for a daily one
(exactly one, matching the type's period). Everything else is literal and limited to
letters, digits, '.', '_' and '-', so a name is safe on every file system and SFTP server.

A report for period P is due `due_days` days after the period ends, at `due_time` in the
report type's time zone: monthly with due_days 4 and 18:00 means "by the 5th of the next
month, 18:00 Beijing time".

Owns: compiling and validating a pattern (ValueError with a sentence saying what to write
instead), parsing a file name into (province, period) and rendering the expected name,
periods of a date, deadlines, and which (province, period) reports are late at `now`.
Must not: read configuration files, list folders or read the clock (`now` is an argument).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from protocols.files.marker import is_data_name

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"^[A-Za-z0-9._-]*$")
_CODE = r"(?P<province>[0-9A-Za-z]{2,8})"


class PeriodKind(StrEnum):
    monthly = "monthly"
    daily = "daily"


_PERIOD_TOKEN = {PeriodKind.monthly: "yyyymm", PeriodKind.daily: "yyyymmdd"}
_PERIOD_RE = {PeriodKind.monthly: r"(?P<period>\d{6})", PeriodKind.daily: r"(?P<period>\d{8})"}
KNOWN_PLACEHOLDERS = ("province", "report", "yyyymm", "yyyymmdd")


@dataclass(frozen=True)
class NamingRule:
    """A compiled, validated file name pattern of one report type."""

    pattern: str
    report: str
    period: PeriodKind
    regex: re.Pattern[str]

    @classmethod
    def compile(cls, pattern: str, report: str, period: PeriodKind | str) -> NamingRule:
        """Validate `pattern` for report code `report`; ValueError says what is wrong and what is allowed."""
        period = PeriodKind(period)
        if not re.fullmatch(r"[A-Za-z0-9]{1,32}", report or ""):
            raise ValueError(f"report code {report!r} must be 1-32 letters or digits (it is the {{report}} "
                             f"part of file names)")
        want = _PERIOD_TOKEN[period]
        other = next(t for k, t in _PERIOD_TOKEN.items() if k is not period)
        seen: list[str] = []
        parts: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(pattern):
            literal = pattern[pos:m.start()]
            if not _LITERAL.match(literal):
                raise ValueError(f"pattern {pattern!r}: the literal text {literal!r} may only hold letters, "
                                 f"digits, '.', '_' and '-'")
            parts.append(re.escape(literal))
            token = m.group(1)
            if token not in KNOWN_PLACEHOLDERS:
                raise ValueError(f"pattern {pattern!r}: unknown placeholder {{{token}}}; use "
                                 + ", ".join(f"{{{t}}}" for t in KNOWN_PLACEHOLDERS))
            if token in seen:
                raise ValueError(f"pattern {pattern!r}: {{{token}}} appears twice; each placeholder at most once")
            if token == other:
                raise ValueError(f"pattern {pattern!r}: a {period.value} report is named with {{{want}}}, "
                                 f"not {{{other}}}")
            seen.append(token)
            parts.append({"province": _CODE, "report": re.escape(report),
                          want: _PERIOD_RE[period]}[token])
            pos = m.end()
        tail = pattern[pos:]
        if "{" in tail or "}" in tail or not _LITERAL.match(tail):
            raise ValueError(f"pattern {pattern!r}: the literal text {tail!r} may only hold letters, digits, "
                             f"'.', '_' and '-' (braces only around a placeholder)")
        parts.append(re.escape(tail))
        for required in ("province", want):
            if required not in seen:
                raise ValueError(f"pattern {pattern!r} must contain {{{required}}}, e.g. "
                                 f"'{{province}}_{{report}}_{{{want}}}.csv'")
        sample = pattern.replace("{province}", "44").replace("{report}", report).replace(
            "{" + want + "}", "2" * len(want))
        if not is_data_name(sample):
            raise ValueError(f"pattern {pattern!r} gives names like {sample!r}, which are reserved (hidden, a "
                             f"part file or a mark); start with a letter or digit and end with an extension "
                             f"such as .csv")
        if re.search(r"\.v[0-9]+(\.[A-Za-z0-9]+)?$", sample):
            raise ValueError(f"pattern {pattern!r} gives names like {sample!r}, which look like a second "
                             f"version (.vN before the extension is reserved for versions)")
        return cls(pattern, report, period, re.compile("^" + "".join(parts) + "$"))

    def parse(self, name: str) -> tuple[str, str] | None:
        """(province, period) when `name` follows this rule with a real calendar period, else None."""
        m = self.regex.match(name)
        if not m or not valid_period(self.period, m.group("period")):
            return None
        return m.group("province"), m.group("period")

    def render(self, province: str, period: str) -> str:
        if not valid_period(self.period, period):
            raise ValueError(f"{period!r} is not a {self.period.value} period ({_PERIOD_TOKEN[self.period]})")
        return (self.pattern.replace("{province}", province).replace("{report}", self.report)
                .replace("{" + _PERIOD_TOKEN[self.period] + "}", period))


# ----------------------------------------------------------------------------- periods


def valid_period(kind: PeriodKind, period: str) -> bool:
    try:
        period_start(kind, period)
    except ValueError:
        return False
    return True


def period_start(kind: PeriodKind, period: str) -> date:
    """The first day of a period ('202611' -> 2026-11-01); ValueError if it is not one."""
    if kind is PeriodKind.monthly:
        if not re.fullmatch(r"\d{6}", period):
            raise ValueError(f"a monthly period is YYYYMM, got {period!r}")
        return date(int(period[:4]), int(period[4:]), 1)
    if not re.fullmatch(r"\d{8}", period):
        raise ValueError(f"a daily period is YYYYMMDD, got {period!r}")
    return date(int(period[:4]), int(period[4:6]), int(period[6:]))


def period_end(kind: PeriodKind, period: str) -> date:
    """The first day after the period."""
    start = period_start(kind, period)
    if kind is PeriodKind.daily:
        return start + timedelta(days=1)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def period_of(kind: PeriodKind, day: date) -> str:
    return day.strftime("%Y%m") if kind is PeriodKind.monthly else day.strftime("%Y%m%d")


def previous_period(kind: PeriodKind, period: str) -> str:
    start = period_start(kind, period)
    return period_of(kind, start - timedelta(days=1))


@dataclass(frozen=True)
class ReportRule:
    """A report type: its naming rule and deadline, and who must deliver it."""

    code: str
    naming: NamingRule
    due_days: int
    due_time: time
    zone: ZoneInfo
    expected_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        limit = 27 if self.naming.period is PeriodKind.monthly else 31
        if not 0 <= self.due_days <= limit:
            raise ValueError(f"report {self.code}: due_days must be 0..{limit} for a "
                             f"{self.naming.period.value} report, got {self.due_days}")

    @property
    def period(self) -> PeriodKind:
        return self.naming.period

    def deadline(self, period: str) -> datetime:
        """When the report for `period` is due (aware, in the rule's zone)."""
        day = period_end(self.period, period) + timedelta(days=self.due_days)
        return datetime.combine(day, self.due_time, tzinfo=self.zone)

    def periods_due(self, now: datetime, lookback: int = 1) -> list[str]:
        """The `lookback` most recent periods whose deadline has passed at `now`, newest first."""
        if now.utcoffset() is None:
            raise ValueError("now must be time-zone aware")
        period = period_of(self.period, now.astimezone(self.zone).date())
        out: list[str] = []
        for _ in range(lookback + 40):  # bounded: a deadline lies at most 31 days past its period
            if self.deadline(period) <= now:
                out.append(period)
                if len(out) == lookback:
                    break
            period = previous_period(self.period, period)
        return out


@dataclass(frozen=True)
class LateReport:
    """A report that had not arrived when its deadline passed."""

    report: str
    province: str
    period: str
    deadline: datetime
    expected_name: str


def late_reports(rule: ReportRule, received: Iterable[tuple[str, str]], now: datetime, *,
                 lookback: int = 1, since: date | None = None) -> list[LateReport]:
    """Which expected (province, period) reports of `rule` are missing from `received` at `now`.

    `received` holds (province, period) pairs of reports that arrived (verified and marked),
    whenever they arrived; a report that came after its deadline is not late any more.
    Periods starting before `since` (when the exchange began) are not checked.
    """
    have = set(received)
    out = []
    for period in rule.periods_due(now, lookback):
        if since is not None and period_start(rule.period, period) < since:
            continue
        for province in rule.expected_from:
            if (province, period) not in have:
                out.append(LateReport(rule.code, province, period, rule.deadline(period),
                                      rule.naming.render(province, period)))
    return out


def match_report(rules: Iterable[ReportRule], name: str) -> tuple[ReportRule, str, str] | None:
    """(rule, province, period) of the one rule `name` follows; ValueError if several do."""
    found = [(r, *parsed) for r in rules if (parsed := r.naming.parse(name)) is not None]
    if len(found) > 1:
        raise ValueError(f"file name {name!r} follows the rules of several report types "
                         f"({', '.join(r.code for r, _, _ in found)}); make the patterns distinct")
    return found[0] if found else None
