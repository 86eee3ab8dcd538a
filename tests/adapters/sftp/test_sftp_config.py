"""config/sftp.yaml: the shipped file is valid, and each mistake gets an error naming line and value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from adapters.sftp import config as sftp_config
from protocols.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]

BASE = """\
version: 1
report_types:
  stats:
    names: {zh: 月报, en: Monthly}
    pattern: "{province}_{report}_{yyyymm}.csv"
    period: monthly
    due_days: 4
defaults:
  host: sftp.example
  known_hosts: /etc/cs-hub/sftp/known_hosts
endpoints:
  "00": {user: hq, key_file: /k/00, remote_outbox: down, mirror: [{path: up, sender: "*"}],
         outbox: /o/00, inbox: /i/00}
  "44": {user: p44, key_file: /k/44, remote_outbox: up/44, mirror: [{path: down, sender: "00"}],
         outbox: /o/44, inbox: /i/44}
"""


def test_the_shipped_file_is_valid(directory):
    cfg = sftp_config.load(REPO / "config" / "sftp.yaml", directory)
    assert cfg.endpoints["44"].remote_outbox == "up/44"
    assert cfg.endpoints["44"].host == "sftp.cs-hub.example"          # from defaults
    assert cfg.transfer.chunk_bytes == 255 * 1024
    assert {r.code for r in sftp_config.report_rules(cfg, directory)} == {"stats", "complaints"}
    rule = next(r for r in sftp_config.report_rules(cfg, directory) if r.code == "stats")
    assert len(rule.expected_from) == 31


def test_the_base_snippet_is_valid(directory):
    cfg = sftp_config.loads(BASE, directory=directory)
    assert cfg.endpoints["00"].mirror[0].sender == "*"
    assert cfg.endpoints["44"].port == 22


@pytest.mark.parametrize(("change", "expected"), [
    (("  host: sftp.example\n", "  host: sftp.example\n  hots: x\n"),
     "sftp.yaml:10:3: unknown key 'hots'; did you mean 'host'?"),
    (('"44": {user: p44,', '44: {user: p44,'),
     "write it in quotes"),
    (("remote_outbox: up/44", "remote_outbox: down"),
     "endpoints 00 and 44 share remote_outbox 'down'"),
    (("remote_outbox: up/44", "remote_outbox: up/../44"),
     "climbs out of its folder"),
    (('pattern: "{province}_{report}_{yyyymm}.csv"', 'pattern: "{province}_{yyyymmdd}.csv"'),
     "sftp.yaml:5:14: report_types.stats.pattern: pattern '{province}_{yyyymmdd}.csv': a monthly report is named "
     "with {yyyymm}, not {yyyymmdd}"),
    (("due_days: 4", "due_days: 30"),
     "due_days of a monthly report is 0..27"),
    (('sender: "00"', 'sender: "x"'),
     'sender must be a company code such as "00" or "*"'),
    (("key_file: /k/44, ", ""),
     "required key 'key_file' is missing (Private key for public-key authentication"),
    (("version: 1\n", "version: 1\nchunk_bytes: 1\n"),
     "unknown key 'chunk_bytes'"),
    (("  host: sftp.example\n", ""),
     "sftp.yaml:11:9: endpoints.00: host is missing; set it in this endpoint or in `defaults`"),
])
def test_mistakes_are_named_with_their_line(change, expected):
    with pytest.raises(ConfigError) as caught:
        sftp_config.loads(BASE.replace(*change))
    assert expected in str(caught.value)


def test_the_chunk_may_not_reach_256_kib():
    text = BASE + "transfer: {chunk_bytes: 262144}\n"
    with pytest.raises(ConfigError) as caught:
        sftp_config.loads(text)
    assert "less than or equal to 261120" in str(caught.value)


def test_codes_are_checked_against_the_nodes(directory):
    with pytest.raises(ConfigError, match="endpoint '77' is not a node"):
        sftp_config.loads(BASE.replace('"44": {user', '"77": {user'), directory=directory)
    with pytest.raises(ConfigError, match="expected_from names 'islands'"):
        sftp_config.loads(BASE.replace("    due_days: 4\n", "    due_days: 4\n    expected_from: [islands]\n"),
                          directory=directory)
    with pytest.raises(ConfigError, match="hq '44' is not the hq node"):
        sftp_config.loads("hq: \"44\"\n" + BASE, directory=directory)


def test_the_passphrase_is_secret_and_never_printed():
    cfg = sftp_config.loads(BASE.replace("user: p44,", "user: p44, key_passphrase: s3cret,"))
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.endpoints["44"])
    assert cfg.endpoints["44"].key_passphrase.get_secret_value() == "s3cret"


def test_schema_is_generated_from_the_model_and_committed():
    schema = sftp_config.schema()
    ep = schema["$defs"]["Endpoint"]
    assert ep["additionalProperties"] is False
    assert "key_file" in ep["required"] and "never added" in ep["properties"]["known_hosts"]["description"]
    committed = json.loads((REPO / "docs" / "schemas" / "sftp.schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(schema)), (
        "docs/schemas/sftp.schema.json is stale; run `hub sftp schema -o docs/schemas/sftp.schema.json`")
    shipped = yaml.safe_load((REPO / "config" / "sftp.yaml").read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(committed).iter_errors(json.loads(json.dumps(shipped)))]
    assert errors == []
