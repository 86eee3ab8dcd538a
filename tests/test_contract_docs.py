"""The AsyncAPI document (docs/asyncapi.yaml) is current and valid AsyncAPI 3.0.0.

Validity is checked against the official JSON Schema from the @asyncapi/specs package
(tests/data/asyncapi-3.0.0.json, see the NOTICE beside it); currency by generating the document
again from the configuration and the topology and comparing bytes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from hub import contract_docs
from hub.configuration import load_config
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def generated() -> str:
    settings = Settings.model_validate(yaml.safe_load((REPO / "config" / "hub.yaml").read_text(encoding="utf-8")))
    return contract_docs.render(settings, load_config(REPO / "config", REPO / "routes"))


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    return Draft7Validator(json.loads((REPO / "tests" / "data" / "asyncapi-3.0.0.json").read_text(encoding="utf-8")))


def test_committed_document_is_current(generated):
    assert DOC.read_text(encoding="utf-8") == generated, (
        "docs/asyncapi.yaml is stale; run `hub contract asyncapi -o docs/asyncapi.yaml`")


def test_document_is_valid_asyncapi_3(generated, validator):
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(yaml.safe_load(generated))]
    assert not errors, "\n".join(errors)


def test_the_schema_catches_mistakes(generated, validator):
    """The validator really descends into channels, bindings and operations (it is not vacuous)."""
    doc = yaml.safe_load(generated)
    for path, value in ((("channels", "ingress", "bindings", "amqp", "is"), "exchange"),
                        (("operations", "publishToHub", "action"), "publish"),
                        (("components", "messages", "notice.text", "bindings", "amqp", "bindingVersion"), "9.9.9")):
        bad = copy.deepcopy(doc)
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert list(validator.iter_errors(bad)), f"setting {'.'.join(path)} = {value!r} was not caught"


def test_document_describes_the_running_contract(generated):
    doc = yaml.safe_load(generated)
    cfg = load_config(REPO / "config", REPO / "routes")
    accepted = {n for n, t in cfg.catalogue.types.items() if not t.produced_by_hub}
    assert set(doc["channels"]["ingress"]["messages"]) == accepted
    assert doc["channels"]["ingress"]["address"] == "hub.ingress"
    assert doc["channels"]["nodeQueue"]["address"] == "node.{code}"
    assert doc["components"]["parameters"]["code"]["enum"] == [n.code for n in cfg.directory.nodes]
    assert list(doc["channels"]["nack"]["messages"]) == ["hub.nack"]
    assert {op["action"] for op in doc["operations"].values()} == {"send", "receive"}
    notice = doc["components"]["messages"]["notice.text"]
    assert notice["x-xml-schema"] == "protocols/hubmsg/hub.xsd"
    assert (REPO / notice["x-xml-schema"]).is_file()
    assert set(notice["x-amqp-properties"]["properties"]) == {
        "message_id", "type", "user_id", "content_encoding", "correlation_id"}
    assert notice["bindings"]["amqp"] == {"messageType": "notice.text", "bindingVersion": "0.3.0"}
