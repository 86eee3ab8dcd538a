"""The committed JSON schemas (docs/schemas/) are current, and the shipped files satisfy them.

Editors validate with these schemas while people type; if they drifted from the pydantic
models, an editor would accept what the hub refuses (or the reverse).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from hub.schemas_export import MODELS, render

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "docs" / "schemas"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_committed_schema_is_current(name):
    path = SCHEMAS / name
    assert path.exists(), f"{path} is missing; run `hub schema`"
    assert path.read_text(encoding="utf-8") == render(MODELS[name]), f"{path} is stale; run `hub schema`"


SHIPPED = [
    *[(p, "routes.schema.json") for p in sorted((REPO / "routes").glob("*.yaml"))
      if not p.name.endswith(".fixtures.yaml")],
    *[(p, "fixtures.schema.json") for p in sorted((REPO / "routes").glob("*.fixtures.yaml"))],
    (REPO / "config" / "nodes.yaml", "nodes.schema.json"),
    (REPO / "config" / "message_types.yaml", "message_types.schema.json"),
    (REPO / "config" / "hub.yaml", "hub.schema.json"),
    (REPO / "config" / "orders.yaml", "orders.schema.json"),
]


@pytest.mark.parametrize("path,schema", SHIPPED, ids=[p.name for p, _ in SHIPPED])
def test_shipped_files_satisfy_their_schema(path, schema):
    validator = Draft202012Validator(json.loads((SCHEMAS / schema).read_text(encoding="utf-8")))
    # editors read YAML 1.2, where a timestamp is a string; PyYAML (1.1) makes it a datetime
    data = json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=lambda v: v.isoformat()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, "\n".join(errors)


def test_fixture_schema_refuses_what_the_runner_refuses():
    validator = Draft202012Validator(json.loads((SCHEMAS / "fixtures.schema.json").read_text(encoding="utf-8")))
    bad = {"version": 1, "cases": [{"name": "c", "input": {"type": "notice.text", "sender": "44", "body": "<x/>",
                                                            "colour": "red"},
                                    "expect": {"refused": {"reason": "NOT_A_REASON"}}}]}
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert any("colour" in m for m in messages) and any("NOT_A_REASON" in m for m in messages), messages
