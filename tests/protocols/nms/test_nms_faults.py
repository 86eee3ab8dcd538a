"""The fault state machine: rows in, decisions and announcements out (pure, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocols.announcements import rules, wire
from protocols.errors import ReasonCode, RejectedMessage
from protocols.nms.faults import Action, parse_row, step

T = "2026-01-10T02:00:00+00:00"


def row(i: int, kind: str = "raised", fault: str = "F1", severity: str = "major", provinces: str = "44",
        title: str = "基站退服", text: str = "37 个基站退服", at: str = T):
    return parse_row({"row_id": i, "fault_id": fault, "kind": kind, "severity": severity,
                      "province_codes": provinces, "title": title, "text": text, "occurred_at": at})


def run(*rows):
    state, out = None, []
    for r in rows:
        d = step(r, state)
        state = d.state if d.state is not None else state
        out.append((d.action, d.message_id))
    return out, state


def test_raise_repeat_update_clear_raise_again():
    out, state = run(row(1), row(2), row(3, "updated", text="52 个基站退服"), row(4, "updated", text="52 个基站退服"),
                     row(5, "cleared", at="2026-01-10T03:00:00+00:00"), row(6, "cleared"), row(7))
    actions = [a for a, _ in out]
    assert actions == [Action.announce, Action.skip, Action.announce, Action.skip, Action.close, Action.skip,
                       Action.announce]
    ids = [m for _, m in out if m]
    assert len(ids) == len(set(ids)) == 4
    assert ids[0].endswith("-1.r1") and ids[1].endswith("-1.r2") and ids[2].endswith("-1.closed")
    assert ids[3].endswith("-2.r1") and state.open and state.occurrence == 2


def test_the_same_rows_give_the_same_message_ids():
    assert run(row(1), row(2, "cleared"))[0] == run(row(1), row(2, "cleared"))[0]


def test_notices_pass_the_announcement_rules_and_name_affected_provinces_and_99():
    d1 = step(row(1, provinces="44,45", severity="critical"), None)
    d2 = step(row(2, "cleared", at="2026-01-10T05:00:00+00:00"), d1.state)
    from protocols.nms.faults import notice
    now = datetime(2026, 1, 10, 6, tzinfo=UTC)
    for d in (d1, d2):
        pub = notice(d.state)
        rules.validate_publish(pub, sender="00", now=now)
        assert wire.from_xml(wire.to_xml(pub)) == pub
    assert notice(d1.state).announcement.scope.nodes == ("44", "45", "99")
    assert notice(d2.state).announcement.status.value == "closed"
    assert notice(step(row(3, fault="F2", provinces=""), None).state).announcement.scope.groups == (
        "provinces", "second_line")


def test_cutover_is_announced_as_kind_cutover():
    from protocols.nms.faults import notice
    d = step(row(1, "cutover", severity="warning"), None)
    assert d.action is Action.announce and notice(d.state).announcement.kind.value == "cutover"


@pytest.mark.parametrize("changes, field", [
    ({"fault_id": "a b"}, "fault_id"), ({"kind": "exploded"}, "kind"), ({"severity": "huge"}, "severity"),
    ({"province_codes": "44,GD"}, "province_codes"), ({"title": ""}, "title"), ({"occurred_at": "yesterday"},
                                                                                  "occurred_at")])
def test_bad_rows_are_refused_naming_the_column(changes, field):
    raw = {"row_id": 1, "fault_id": "F1", "kind": "raised", "severity": "major", "province_codes": "44",
           "title": "t", "text": "x", "occurred_at": T, **changes}
    with pytest.raises(RejectedMessage) as info:
        parse_row(raw)
    assert info.value.reason == ReasonCode.FIELD_INVALID and info.value.field == field
