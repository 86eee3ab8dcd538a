"""`hub routes show` and `hub routes graph` mention every route, and docs/routes.md is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import routemap
from hub.cli import main
from hub.configuration import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return load_config(REPO / "config", REPO / "routes")


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "hub-settings.yaml"
    path.write_text(f"config_dir: {REPO / 'config'}\nroutes_dir: {REPO / 'routes'}\n")
    return str(path)


def test_show_lists_every_route_with_its_place(cfg, settings_file, capsys):
    assert main(["--settings", settings_file, "routes", "show"]) == 0
    out = capsys.readouterr().out
    for lr in cfg.routes:
        assert f"{lr.route.id}  ({lr.file}:{lr.where('id')[0]})" in out
    assert "claims:  notice.text from any node" in out
    assert "resolver notice_recipient" in out
    assert out.strip().endswith(f"{len(cfg.routes)} routes")


def test_show_resolves_groups_to_node_codes(cfg):
    from hub.routes import Destination

    text, queues = routemap._destination(cfg, Destination(group="second_line"))
    assert text.startswith("group second_line -> 99 (1 node, the sender left out)")
    assert queues == ["node.99"]


@pytest.mark.parametrize("fmt", ["text", "mermaid", "markdown"])
def test_graph_mentions_every_route_and_adapter(cfg, settings_file, capsys, fmt):
    assert main(["--settings", settings_file, "routes", "graph", "--format", fmt]) == 0
    out = capsys.readouterr().out
    for lr in cfg.routes:
        assert f"{lr.route.id}: {lr.route.from_.type}" in out
    for adapter in ("smpp", "sftp", "soap", "wap", "nms"):
        assert f"adapter.{adapter}" in out
    if fmt != "text":
        assert "flowchart LR" in out


def test_routes_page_is_current(cfg):
    page = REPO / "docs" / "routes.md"
    assert page.read_text(encoding="utf-8") == routemap.routes_page(cfg, REPO), (
        "docs/routes.md is stale; run `hub routes graph --format markdown -o docs/routes.md`")
