"""The NMS feed against a real interface table (SQLite and PostgreSQL), the real broker and the hub:
faults raised, repeated, updated, cleared and raised again, cut-overs, a bad row; the feed crashing
between the broker's confirms and marking the rows, the feed and the hub restarted in between.
Nothing announced twice, nothing missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from running_hub import HubThread, Node
from sqlalchemy import func, select
from waiting import wait_until

from adapters.nms.config import NmsConfig
from adapters.nms.feed import NmsFeed
from adapters.nms.table import FeedTables
from protocols import xmlwire

T0 = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
ANS = {"a": "urn:cs-hub:announcement:1"}


def rows_of(tables: FeedTables, *rows: tuple) -> None:
    """Insert rows as the NMS would: (fault_id, kind, severity, provinces, title, text, minutes after T0)."""
    with tables.engine.begin() as conn:
        conn.execute(tables.rows.insert(), [
            {"fault_id": f, "kind": k, "severity": s, "province_codes": p, "region_code": "GD-01", "title": t,
             "text": x, "occurred_at": (T0 + timedelta(minutes=m)).replace(tzinfo=None)}
            for f, k, s, p, t, x, m in rows])


def summary(msgs) -> list[tuple[str, str, str]]:
    out = []
    for _m, props, body in msgs:
        root, _ = xmlwire.parse(body, props.content_encoding)
        assert props.type == "announcement.publish"
        out.append((props.message_id, root.findtext("a:Announcement/a:Status", namespaces=ANS),
                    root.findtext("a:Announcement/a:SourceRef", namespaces=ANS)))
    return out


def test_faults_raised_repeated_cleared_across_restarts(settings, nms_topology, nms_engine):
    _, passwords = nms_topology
    config = NmsConfig(database_url="sqlite://", poll_interval_s=0.1)
    tables = FeedTables(nms_engine, config.table, config.state_table)
    tables.create(interface=True)
    hub = HubThread(settings).start()
    nodes = {c: Node(settings, c, passwords[settings.broker_user(f"node-{c}")]) for c in ("44", "11", "99")}
    try:
        # round 1: a fault raised, its alarm repeated, then updated; a second fault in two provinces
        rows_of(tables,
                ("F1", "raised", "critical", "44", "广州基站退服", "天河区 37 个基站退服", 0),
                ("F1", "raised", "critical", "44", "广州基站退服", "天河区 37 个基站退服", 1),
                ("F1", "updated", "critical", "44", "广州基站退服", "天河区 52 个基站退服", 2),
                ("F2", "raised", "major", "11,44", "京广干线光缆中断", "长途业务受影响", 3))
        feed = NmsFeed(settings, config, engine=nms_engine)
        assert feed.poll_once() == 4
        assert feed.stats["skipped"] == 1
        feed.close()

        # round 2 while the hub is down: the feed crashes after the confirms, before marking the rows
        hub.stop()
        rows_of(tables,
                ("F1", "raised", "critical", "44", "广州基站退服", "天河区 52 个基站退服", 4),   # repeat
                ("F2", "cleared", None, None, None, None, 5),
                ("bad id!", "raised", "major", "44", "坏数据", "", 6))

        def crash() -> None:
            raise RuntimeError("killed after the confirms")
        crashing = NmsFeed(settings, config, engine=nms_engine, after_publish=crash)
        with pytest.raises(RuntimeError):
            crashing.poll_once()
        crashing.close()
        with nms_engine.connect() as conn:
            assert conn.execute(select(func.count()).where(tables.rows.c.consumed.is_(False))).scalar() == 3
        feed = NmsFeed(settings, config, engine=nms_engine)        # restarted: the same round again
        assert feed.poll_once() == 3 and feed.stats["refused"] == 1
        feed.close()

        # round 3 with the hub back: the fault cleared, raised again (a new occurrence), a cut-over
        hub = HubThread(settings).start()
        rows_of(tables,
                ("F1", "cleared", None, "44", "", "", 7),
                ("F1", "raised", "minor", "44", "广州基站退服", "再次退服", 8),
                ("F4", "cutover", "warning", "44", "核心网割接", "01:00-03:00 割接", 9),
                ("F9", "cleared", None, "44", "", "", 10))                              # never raised
        feed = NmsFeed(settings, config, engine=nms_engine)
        assert feed.poll_once() == 4
        assert feed.poll_once() == 0
        feed.close()

        got = {c: summary(n.drain({"44": 7, "11": 2, "99": 7}[c])) for c, n in nodes.items()}
        # the repeat of round 2's closing notice reached the hub twice and was delivered once
        wait_until(lambda: hub.proc.worker.stats["duplicate"] >= 1, 15, 0.05, "the repeated notice is dropped")
        for c, n in nodes.items():
            got[c] += summary(n.drain(0, timeout=1))
        for c, msgs in got.items():
            ids = [m for m, _, _ in msgs]
            assert len(ids) == len(set(ids)), f"node {c} was told twice: {ids}"
        # The hub's lanes commit independently, so notices published moments apart may arrive in
        # either order (docs/nms.md: receivers order a fault's notices by their time); the set of
        # notices each province gets is exact.
        assert sorted((s, ref) for _, s, ref in got["44"]) == sorted([
            ("open", "F1"), ("open", "F1"), ("open", "F2"), ("closed", "F2"),
            ("closed", "F1"), ("open", "F1"), ("open", "F4")])
        assert sorted((s, ref) for _, s, ref in got["11"]) == [("closed", "F2"), ("open", "F2")]
        assert sorted(m for m, _, _ in got["99"]) == sorted(m for m, _, _ in got["44"])
        # one announcement id per fault occurrence: F1 (first), F2, F1 (raised again), F4
        assert len({m.split(".")[1] for m, _, _ in got["44"]}) == 4

        with nms_engine.connect() as conn:
            left = conn.execute(select(func.count()).where(tables.rows.c.consumed.is_(False))).scalar()
            notes = dict(conn.execute(select(tables.rows.c.row_id, tables.rows.c.consume_note)).all())
        assert left == 0
        assert notes[2].startswith("skip: repeated alarm") and notes[7].startswith("refused FIELD_INVALID")
        assert notes[11].startswith("skip: clear of a fault that is not open")
        m, props, _ = _dlq_get(settings)
        assert props.headers["x-hub-reason-code"] == "FIELD_INVALID" and props.message_id.endswith(".7")
    finally:
        for n in nodes.values():
            n.close()
        hub.stop()


def _dlq_get(settings):
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        box = []
        wait_until(lambda: box.append(conn.channel().basic_get("hub.dlq", auto_ack=True)) or box[-1][0] is not None,
                   10, 0.05, "the bad row's dead letter is in hub.dlq")
        return box[-1]
    finally:
        conn.close()
