"""config/smpp.yaml: the shipped file loads, and mistakes are refused at file:line with a sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.smpp.adapter import check_against
from adapters.smpp.config import load_smpp_config
from protocols.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
SMSC = "  - {name: a, host: 127.0.0.1, system_id: cs-hub, source_addr: '10086'}\n"


def test_the_shipped_configuration_loads_and_names_real_nodes(directory, monkeypatch):
    config = load_smpp_config(REPO / "config" / "smpp.yaml")
    check_against(config, directory)
    assert [s.priority for s in config.smscs] == [1, 2]
    assert all(s.password is None for s in config.smscs)       # secrets come from the environment
    monkeypatch.setenv("HUB_SMPP_PASSWORD_SMSC_A", "pw")
    assert config.smscs[0].resolved_password().get_secret_value() == "pw"
    assert "pw" not in repr(config) and "pw" not in str(config.smscs[0].resolved_password())


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("smscs:\n" + SMSC + "prefetch: 5\n", ":3:"),
    ("smscs:\n" + SMSC + "prefetch: 5\n", "below the largest window"),
    ("smscs:\n" + SMSC + SMSC, "used twice"),
    ("smscs:\n" + SMSC + "mo_routes:\n  - {to_prefix: '1008699'}\n", "name the `node`"),
    ("smscs:\n" + SMSC + "mo_routes:\n  - {survey_reply: true, node: '44'}\n", "leave out `node`"),
    ("smscs:\n" + SMSC + "mo_routes:\n  - {node: '44'}\n", "needs to_prefix or keyword"),
    ("smscs:\n  - {name: a, host: h, system_id: cs-hub, source_addr: '1', windw: 5}\n", "windw"),
    ("smscs:\n  - {name: A B, host: h, system_id: cs-hub, source_addr: '1'}\n", "name"),
    ("smscs:\n  - {name: a, host: h, system_id: a-system-id-too-long, source_addr: '1'}\n", "15"),
    ("smscs:\n  - {name: a, host: h, system_id: x, source_addr: '1', reconnect_initial_s: 9, "
     "reconnect_max_s: 1}\n", "reconnect_max_s must not be below"),
    ("smscs: []\n", "smscs"),
])
def test_configuration_mistakes_are_refused_with_their_line(tmp_path, yaml_text, expected):
    path = tmp_path / "smpp.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_smpp_config(path)
    assert expected in str(err.value)


def test_mo_routes_must_name_configured_nodes(tmp_path, directory):
    path = tmp_path / "smpp.yaml"
    path.write_text("smscs:\n" + SMSC + "mo_routes:\n  - {keyword: TD, node: '77'}\nmo_default_node: '88'\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mo_routes\[0\].node '77', mo_default_node '88'"):
        check_against(load_smpp_config(path), directory)


def test_a_missing_password_is_named_without_guessing(monkeypatch, tmp_path):
    path = tmp_path / "smpp.yaml"
    path.write_text("smscs:\n" + SMSC, encoding="utf-8")
    monkeypatch.delenv("HUB_SMPP_PASSWORD_A", raising=False)
    with pytest.raises(ConfigError, match="HUB_SMPP_PASSWORD_A"):
        load_smpp_config(path).smscs[0].resolved_password()


def test_every_configuration_key_is_documented():
    """docs/sms.md section 9 has a row for each key of the model (the model is the authority)."""
    from adapters.smpp.config import MoRouteConfig, SmppConfig, SmscConfig

    doc = (REPO / "docs" / "sms.md").read_text(encoding="utf-8")
    table = doc[doc.index("**Configuration keys**"):doc.index("**Operating it.**")]
    missing = [name for model in (SmppConfig, SmscConfig) for name in model.model_fields
               if name != "version" and f"`{name}`" not in table and f"{name}`" not in table]
    assert missing == []
    assert all(f"`{name}`" in doc for name in MoRouteConfig.model_fields)


def test_the_json_schema_for_editors_is_current():
    """docs/schemas/smpp.schema.json is generated from the model: `hub smpp schema -o ...`."""
    import json

    from adapters.smpp.config import schema

    shipped = json.loads((REPO / "docs" / "schemas" / "smpp.schema.json").read_text(encoding="utf-8"))
    assert shipped == schema(), "stale; run `hub smpp schema -o docs/schemas/smpp.schema.json`"
