"""Report naming rules, periods, deadlines and late reports (protocols/files/naming.py, layout.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from protocols.files import layout
from protocols.files.marker import FileKind
from protocols.files.naming import (
    NamingRule,
    PeriodKind,
    ReportRule,
    late_reports,
    match_report,
    period_end,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONTHLY = NamingRule.compile("{province}_{report}_{yyyymm}.csv", "stats", "monthly")
DAILY = NamingRule.compile("{province}_{report}_{yyyymmdd}.csv", "complaints", "daily")
STATS = ReportRule("stats", MONTHLY, 4, time(18, 0), SHANGHAI, ("11", "44"))


@pytest.mark.parametrize(("pattern", "period", "error"), [
    ("{province}.csv", "monthly", "must contain {yyyymm}"),
    ("{report}_{yyyymm}.csv", "monthly", "must contain {province}"),
    ("{province}_{yyyymmdd}.csv", "monthly", "a monthly report is named with {yyyymm}, not {yyyymmdd}"),
    ("{province}_{yyyymm}.csv", "daily", "a daily report is named with {yyyymmdd}, not {yyyymm}"),
    ("{prov}_{yyyymm}.csv", "monthly", "unknown placeholder {prov}; use {province}, {report}, {yyyymm}, {yyyymmdd}"),
    ("{province}_{province}_{yyyymm}.csv", "monthly", "{province} appears twice"),
    ("reports/{province}_{yyyymm}.csv", "monthly", "may only hold letters, digits"),
    ("{province} {yyyymm}.csv", "monthly", "may only hold letters, digits"),
    ("{province}_{yyyymm}.csv}", "monthly", "braces only around a placeholder"),
    (".{province}_{yyyymm}.csv", "monthly", "which are reserved"),
    ("{province}_{yyyymm}.csv.ok", "monthly", "which are reserved"),
    ("{province}_{yyyymm}.v2.csv", "monthly", "reserved for versions"),
])
def test_a_bad_pattern_is_refused_saying_what_to_write(pattern, period, error):
    with pytest.raises(ValueError) as caught:
        NamingRule.compile(pattern, "stats", period)
    assert error in str(caught.value)


def test_report_code_must_be_a_plain_word():
    with pytest.raises(ValueError, match="1-32 letters or digits"):
        NamingRule.compile("{province}_{report}_{yyyymm}.csv", "st-ats", "monthly")


@pytest.mark.parametrize(("name", "parsed"), [
    ("44_stats_202611.csv", ("44", "202611")),
    ("11_stats_202612.csv", ("11", "202612")),
    ("44_stats_202613.csv", None),          # no 13th month
    ("44_stats_2026111.csv", None),
    ("44_STATS_202611.csv", None),
    ("44_stats_202611.csv.ok", None),
    ("44_complaints_20261130.csv", None),
])
def test_names_are_parsed_into_province_and_period(name, parsed):
    assert MONTHLY.parse(name) == parsed


def test_render_and_match():
    assert MONTHLY.render("44", "202611") == "44_stats_202611.csv"
    assert DAILY.parse("44_complaints_20261130.csv") == ("44", "20261130")
    assert DAILY.parse("44_complaints_20261131.csv") is None
    rules = [STATS, ReportRule("complaints", DAILY, 0, time(10), SHANGHAI)]
    rule, province, period = match_report(rules, "44_complaints_20261130.csv")
    assert (rule.code, province, period) == ("complaints", "44", "20261130")
    assert match_report(rules, "billing-sms-20261202.dat") is None


def test_deadlines_follow_the_end_of_the_period():
    assert period_end(PeriodKind.monthly, "202612") == date(2027, 1, 1)
    assert STATS.deadline("202611") == datetime(2026, 12, 5, 18, 0, tzinfo=SHANGHAI)
    assert STATS.deadline("202612") == datetime(2027, 1, 5, 18, 0, tzinfo=SHANGHAI)
    daily = ReportRule("complaints", DAILY, 0, time(10), SHANGHAI)
    assert daily.deadline("20261231") == datetime(2027, 1, 1, 10, 0, tzinfo=SHANGHAI)
    with pytest.raises(ValueError, match="due_days must be 0..27"):
        ReportRule("stats", MONTHLY, 28, time(18), SHANGHAI)


def test_late_reports_at_the_deadline_once_it_has_passed():
    before = datetime(2026, 12, 5, 9, 59, tzinfo=UTC)      # 17:59 in Beijing
    after = datetime(2026, 12, 5, 10, 1, tzinfo=UTC)
    since = date(2026, 11, 1)
    assert late_reports(STATS, set(), before, since=since) == []
    late = late_reports(STATS, {("11", "202611")}, after, since=since)
    assert [(r.province, r.period, r.expected_name) for r in late] == [("44", "202611", "44_stats_202611.csv")]
    assert late[0].deadline == datetime(2026, 12, 5, 18, 0, tzinfo=SHANGHAI)
    assert late_reports(STATS, {("11", "202611"), ("44", "202611")}, after, since=since) == []
    # Without `since`, earlier periods within the lookback are checked too.
    older = late_reports(STATS, {("11", "202611"), ("44", "202611")}, after, lookback=2)
    assert {(r.province, r.period) for r in older} == {("11", "202610"), ("44", "202610")}


def test_layout_of_the_server():
    at = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)           # already 12-04 in Beijing
    assert layout.remote_folder("up/44", FileKind.report, period="202611", at=at, zone=SHANGHAI) == "up/44/202611"
    assert layout.remote_folder("down", FileKind.document, period=None, at=at, zone=SHANGHAI) == "down/2026-12-04"
    assert layout.owner_of("44/202611/44_stats_202611.csv", "*") == "44"
    assert layout.owner_of("stray.csv", "*") is None
    assert layout.owner_of("2026-12-04/doc.pdf", "00") == "00"
    with pytest.raises(ValueError, match="climbs out"):
        layout.join("up/44", "../../etc")
