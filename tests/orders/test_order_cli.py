"""`hub orders stats` and `hub orders show` on a store the orders flow filled (no broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml
from province import dispatch_receipt_xml, dispatch_xml, encode, return_xml

from hub.cli import main

T0 = datetime(2024, 6, 11, 2, 0, tzinfo=UTC)


def test_orders_stats_and_show(flow_bench, bench_settings, tmp_path, capsys):
    b = flow_bench()
    xml = dispatch_xml("44", "20240611-000123", "HOME", dispatch_time=T0, first=T0 + timedelta(hours=2),
                       final=T0 + timedelta(hours=24))
    b.send("44", "order.dispatch", encode(xml, "gbk"), now=T0, encoding="gbk", message_id="gd-1")
    b.send("11", "order.dispatch_receipt", dispatch_receipt_xml("11", "44", "20240611-000123", at=T0),
           now=T0 + timedelta(minutes=1))
    b.send("11", "order.return", return_xml("11", "44", "20240611-000123", at=T0 + timedelta(minutes=30),
                                            kind="final", result="已处理"), now=T0 + timedelta(minutes=30))
    path = tmp_path / "hub.yaml"
    data = bench_settings.model_dump(mode="json")
    data["amqp_url"] = bench_settings.amqp_url.get_secret_value()
    data["management_password"] = bench_settings.management_password.get_secret_value()
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    assert main(["--settings", str(path), "orders", "stats", "--date", "2024-06-11", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    bj = next(c for c in report["companies"] if c["company"] == "11")
    assert (bj["received"], bj["final_replied"], bj["reply_rate"], bj["avg_final_reply_s"]) == (1, 1, 1.0, 1800.0)
    assert report["timezone"] == "Asia/Shanghai"

    assert main(["--settings", str(path), "orders", "stats", "--date", "2024-06-11"]) == 0
    text = capsys.readouterr().out
    assert "11 北京" in text and "100.0%" in text

    assert main(["--settings", str(path), "orders", "show", "44", "20240611-000123"]) == 0
    text = capsys.readouterr().out
    assert "state FINAL_REPLIED" in text and "ReturnSent(final)" in text and "first_reply_overdue" in text

    assert main(["--settings", str(path), "orders", "show", "44", "20240611-000123", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["order"]["receiver"] == "11" and shown["steps"][0]["message_id"] == "gd-1"

    assert main(["--settings", str(path), "orders", "show", "44", "NOPE"]) == 1
    assert main(["--settings", str(path), "orders", "stats", "--date", "11/06/2024"]) == 2
