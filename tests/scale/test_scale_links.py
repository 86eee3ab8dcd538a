"""`hub topology link`: the province broker's definitions, generated without a broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from hub.nodes import Directory, NodesFile
from hub.settings import load_settings
from hub.sites import UPLINK_QUEUE, build_site_link, downlink_shovel, uplink_shovel
from protocols.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path):
    settings = load_settings(REPO / "config/hub.yaml", vhost="cs/hub", data_dir=tmp_path / "var")
    raw = yaml.safe_load((REPO / "config/nodes.yaml").read_text(encoding="utf-8"))
    return settings, Directory(NodesFile.model_validate(raw).nodes)


def test_two_shovels_confirmed_and_authenticated_as_the_node(site):
    settings, directory = site
    defs = build_site_link(settings, directory, "44", hq_url="amqps://hq.example:5671?cacertfile=/etc/ca.pem",
                           local_url="amqp://127.0.0.1:5672", node_password="p@ss:w/rd", link_password="l")
    shovels = {p["name"]: p["value"] for p in defs["parameters"] if p["component"] == "shovel"}
    up, down = shovels[uplink_shovel("44")], shovels[downlink_shovel("44")]
    assert (up["src-queue"], up["dest-exchange"]) == (UPLINK_QUEUE, "hub.ingress")
    assert "dest-exchange-key" not in up, "the message type must stay the routing key"
    assert (down["src-queue"], down["dest-queue"]) == ("node.44", "node.44")
    assert up["ack-mode"] == down["ack-mode"] == "on-confirm"
    hq = urlsplit(up["dest-uri"])
    assert hq.scheme == "amqps" and hq.hostname == "hq.example" and hq.port == 5671
    assert (unquote(hq.username), unquote(hq.password)) == ("node-44", "p@ss:w/rd")
    assert unquote(hq.path[1:]) == "cs/hub" and hq.query == "cacertfile=/etc/ca.pem"
    assert down["src-uri"] == up["dest-uri"]
    assert unquote(urlsplit(up["src-uri"]).username) == "site-link"
    assert {q["name"]: q["arguments"]["x-queue-type"] for q in defs["queues"]} == {UPLINK_QUEUE: "quorum",
                                                                                   "node.44": "quorum"}
    assert defs["bindings"][0]["routing_key"] == "#" and defs["bindings"][0]["destination"] == UPLINK_QUEUE
    perms = {p["user"]: p for p in defs["permissions"]}
    assert perms["node-44"]["configure"] == "^$" and perms["site-link"]["read"] == r"^site\.uplink$"
    assert "p@ss" not in json.dumps(defs["users"]), "users carry salted hashes only"


@pytest.mark.parametrize("code,url,message", [
    ("77", "amqp://hq:5672", "no node '77'"),
    ("00", "amqp://hq:5672", "HQ itself"),
    ("44", "http://hq:5672", "not a broker URL"),
])
def test_bad_link_requests_are_refused_with_a_reason(site, code, url, message):
    settings, directory = site
    with pytest.raises(ConfigError, match=message):
        build_site_link(settings, directory, code, hq_url=url, local_url="amqp://127.0.0.1",
                        node_password="x", link_password="y")


def test_cli_writes_the_definitions_readable_by_the_owner_only(tmp_path):
    out = tmp_path / "province-44.json"
    env = dict(os.environ, HUB_DATA_DIR=str(tmp_path / "var"))
    r = subprocess.run([sys.executable, "-m", "hub.cli", "topology", "link", "--node", "44",
                        "--hq-url", "amqps://hq.example:5671", "-o", str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o077 == 0
    names = [p["name"] for p in json.loads(out.read_text())["parameters"]]
    assert names == [uplink_shovel("44"), downlink_shovel("44")]
