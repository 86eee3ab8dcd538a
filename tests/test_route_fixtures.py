"""Route fixtures: every routes/*.fixtures.yaml passes, every route is covered, and the runner's
own behaviour (order-insensitive matching, counts, diffs that name file:line) holds.

The shipped fixture files are collected when the module is imported, so a fixture file another
engineer adds later runs here without touching this module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli import main
from hub.route_fixtures import fixture_files, run_file, run_fixtures
from hub.runtime import build_pipeline
from hub.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
SHIPPED = fixture_files(REPO / "routes")


@pytest.fixture(scope="module")
def pipeline():
    settings = load_settings(REPO / "config" / "hub.yaml", config_dir=REPO / "config", routes_dir=REPO / "routes")
    return build_pipeline(settings)


def test_fixture_files_are_shipped():
    assert REPO / "routes" / "notices.fixtures.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_fixtures_pass(pipeline, path):
    results = run_file(pipeline, path)
    assert results, f"{path} has no cases"
    failed = [f"{r.where} {r.name}\n{r.report}" for r in results if not r.ok]
    assert not failed, "\n\n".join(failed)


def test_every_route_is_covered_by_a_fixture_case(pipeline):
    run = run_fixtures(pipeline, [REPO / "routes"], require_coverage=True)
    assert not run.errors, "\n".join(str(e) for e in run.errors)
    assert not run.uncovered, ("routes without a fixture case (add one to routes/<name>.fixtures.yaml): "
                               + "; ".join(run.uncovered))


NOTICE = ('<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>{sender}</CompanyCode><To>{to}</To>'
          "<Title>t</Title><Text>{text}</Text></Notice>")


def write(tmp_path: Path, cases: str) -> Path:
    path = tmp_path / "t.fixtures.yaml"
    path.write_text("version: 1\ncases:\n" + cases, encoding="utf-8")
    return path


def case(name: str, sender: str, to: str, expect: str, text: str = "x") -> str:
    body = NOTICE.format(sender=sender, to=to, text=text)
    return (f"  - name: {name}\n    input: {{type: notice.text, sender: \"{sender}\", message_id: m-1, "
            f"body: '{body}'}}\n    expect:\n{expect}")


def test_outputs_match_in_any_order_and_report_the_route(pipeline, tmp_path):
    path = write(tmp_path, case("to the second line and HQ", "44", "hq", "      route: notice\n      outputs:\n"
                                "        - {queue: node.00}\n"))
    [result] = run_file(pipeline, path)
    assert result.ok and result.route_id == "notice" and result.line == 3


def test_a_failing_case_shows_a_unified_diff_and_its_line(pipeline, tmp_path):
    path = write(tmp_path, case("passes", "44", "11", "      outputs: [{queue: node.11}]\n")
                 + case("wrong text", "44", "11", "      outputs:\n        - queue: node.11\n"
                        "          properties: {content_encoding: utf-8}\n"
                        "          xpath: [{xpath: 'h:Text', equals: 'expected words'}]\n", text="actual words"))
    ok, bad = run_file(pipeline, path)
    assert ok.ok and not bad.ok
    assert bad.where == f"{path}:7"
    assert "--- expected\n+++ actual\n" in bad.report
    assert "-    equals: expected words\n+    equals: actual words" in bad.report
    assert "-      content_encoding" not in bad.report  # what matched is not shown as a difference


def test_the_count_of_outputs_must_match(pipeline, tmp_path):
    path = write(tmp_path, case("one of two", "00", "second_line", "      outputs:\n"
                                "        - {queue: node.99}\n        - {queue: node.11}\n"))
    [result] = run_file(pipeline, path)
    assert not result.ok
    assert "+  type: notice.text" not in result.report
    assert "-- queue: node.11" in result.report


def test_a_refusal_where_delivery_was_expected_shows_the_reason(pipeline, tmp_path):
    path = write(tmp_path, case("spoofed", "44", "11", "      outputs: [{queue: node.11}]\n").replace(
        "<CompanyCode>44<", "<CompanyCode>11<"))
    [result] = run_file(pipeline, path)
    assert not result.ok
    assert "expected delivery, the message was dead_lettered" in result.report
    assert "+refused:\n+  reason: SPOOFED_SENDER" in result.report


def test_wrong_refusal_reason_fails(pipeline, tmp_path):
    path = write(tmp_path, case("unknown recipient", "44", "77", "      refused: {reason: NO_ROUTE}\n"))
    [result] = run_file(pipeline, path)
    assert not result.ok and result.route_id == "notice"
    assert "-  reason: NO_ROUTE\n+  reason: UNKNOWN_NODE" in result.report


def test_cli_routes_test(tmp_path, capsys):
    settings = tmp_path / "hub-settings.yaml"
    settings.write_text(f"config_dir: {REPO / 'config'}\nroutes_dir: {REPO / 'routes'}\n")
    assert main(["--settings", str(settings), "routes", "test", str(REPO / "routes" / "notices.fixtures.yaml")]) == 0
    assert capsys.readouterr().out.strip().endswith("0 failed")
    bad = write(tmp_path, case("wrong queue", "44", "11", "      outputs: [{queue: node.12}]\n"))
    assert main(["--settings", str(settings), "routes", "test", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {bad}:3  wrong queue  (route notice, delivered)" in out
    assert "-- queue: node.12\n  +- queue: node.11" in out
    assert out.strip().endswith("0 passed, 1 failed")
    assert main(["--settings", str(settings), "routes", "test", str(tmp_path / "missing.fixtures.yaml")]) == 2
