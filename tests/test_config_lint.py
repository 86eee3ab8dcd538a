"""`hub config lint` as table tests: a YAML snippet and the problem it must produce, file:line:column.

Each case writes route files (and, where the case needs it, edits a copy of config/) in a temporary
folder and lints it. The expected text is the start of the problem line: position, severity and
the message up to the point where lists of known names begin (those grow with the configuration).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub.cli import main
from hub.config_lint import lint
from hub.settings import load_settings

REPO = Path(__file__).resolve().parents[1]

ROUTE = """\
version: 1
routes:
  - id: r1
    from:
      type: notice.text
    to:
      - resolve: notice_recipient
"""


def workspace(tmp_path: Path, files: dict[str, str], edits: dict[str, tuple[str, str]] | None = None):
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "routes").mkdir()
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    for name, (old, new) in (edits or {}).items():
        path = tmp_path / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"the test's edit of {name} no longer applies: {old!r} is not in the file"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_settings(REPO / "config" / "hub.yaml", config_dir=tmp_path / "config",
                         routes_dir=tmp_path / "routes", data_dir=tmp_path / "var")


def problems(tmp_path: Path, files: dict[str, str], edits=None) -> list[str]:
    report = lint(workspace(tmp_path, files, edits))
    assert report.unusable is None, report.unusable
    return [str(p).replace(f"{tmp_path}/", "") for p in report.problems]


CASES = [
    ("unknown key, with the close spelling and the valid keys",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      type: notice.text\n      sourc: provinces\n")},
     None,
     ["routes/r.yaml:6:7: error: unknown key 'sourc'; did you mean 'source'? "
      "valid keys here: type, source, headers, xpath"]),
    ("duplicate key",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      type: notice.text\n      type: order.dispatch\n")},
     None,
     ["routes/r.yaml:6:7: error: duplicate key 'type' (first at line 5); a YAML mapping may name a key once"]),
    ("YAML syntax error",
     {"routes/r.yaml": ROUTE.replace("type: notice.text", "type: [notice.text")},
     None,
     ["routes/r.yaml:6:7: error: not valid YAML: expected ',' or ']', but got ':'"]),
    ("unknown node code as destination",
     {"routes/r.yaml": ROUTE.replace("resolve: notice_recipient", 'node: "4x"')},
     None,
     ["routes/r.yaml:7:15: error: route r1: unknown node code '4x'; "]),
    ("a node code YAML reads as a number",
     {"routes/r.yaml": ROUTE.replace("resolve: notice_recipient", "node: 11")},
     None,
     ["routes/r.yaml:7:15: error: routes.0.to.0.node: Input should be a valid string (got 11); "
      "write it in quotes: YAML reads unquoted digits as a number (00 becomes 0)"]),
    ("unknown resolver, with the close spelling",
     {"routes/r.yaml": ROUTE.replace("notice_recipient", "notice_recipent")},
     None,
     ["routes/r.yaml:7:18: error: route r1: unknown resolver 'notice_recipent'; did you mean 'notice_recipient'? "]),
    ("unknown mapping, schema, check and wire-tap target in steps",
     {"routes/r.yaml": ROUTE.replace("    to:\n", "    steps:\n      - map: upper_title\n      - validate: hubb\n"
                                     "      - check: no_such_check\n      - wireTap: provinse\n    to:\n")},
     None,
     ["routes/r.yaml:7:14: error: route r1: unknown mapping 'upper_title'; ",
      "routes/r.yaml:8:19: error: route r1: unknown schema 'hubb'; did you mean 'hub'? ",
      "routes/r.yaml:9:16: error: route r1: unknown check 'no_such_check'; ",
      "routes/r.yaml:10:18: error: route r1: unknown node or group 'provinse'; did you mean 'provinces'? "]),
    ("unknown message type",
     {"routes/r.yaml": ROUTE.replace("type: notice.text", "type: notice.txt")},
     None,
     ["routes/r.yaml:5:13: error: route r1: unknown message type 'notice.txt'; did you mean 'notice.text'? "]),
    ("unknown source group",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      type: notice.text\n      source: provences\n")},
     None,
     ["routes/r.yaml:6:15: error: route r1: unknown node or group 'provences'; did you mean 'provinces'? "]),
    ("a destination with two targets (cross-field rule)",
     {"routes/r.yaml": ROUTE.replace("- resolve: notice_recipient", '- {node: "11", group: hq}')},
     None,
     ["routes/r.yaml:7:9: error: routes.0.to.0: a destination names exactly one of node, group, adapter, "
      "resolve or sender"]),
    ("a step with two keys (cross-field rule)",
     {"routes/r.yaml": ROUTE.replace("    to:\n", "    steps:\n      - {validate: hub, wireTap: hq}\n    to:\n")},
     None,
     ["routes/r.yaml:7:9: error: routes.0.steps.0: a step has exactly one key: validate, check, map, enrich "
      "or wireTap"]),
    ("delivering as a type with another root needs a mapping (cross-field rule)",
     {"routes/r.yaml": ROUTE.replace("- resolve: notice_recipient", "- {resolve: notice_recipient, type: order.dispatch}")},
     None,
     ["routes/r.yaml:7:43: error: route r1: delivers a notice.text message as 'order.dispatch' without a mapping, "
      "but order.dispatch has root o:DispatchOrder and notice.text has h:Notice; add `map:` to this destination"]),
    ("invalid XPath syntax",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      type: notice.text\n      xpath: \"h:To = = '11'\"\n")},
     None,
     ["routes/r.yaml:6:14: error: route r1: invalid XPath \"h:To = = '11'\": Invalid expression; "
      "prefixes declared in config/message_types.yaml: "]),
    ("XPath with an undeclared prefix",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      type: notice.text\n      xpath: \"x:To = '11'\"\n")},
     None,
     ["routes/r.yaml:6:14: error: route r1: invalid XPath \"x:To = '11'\": Undefined namespace prefix; "]),
    ("two routes claiming the same message",
     {"routes/r.yaml": ROUTE + ROUTE.split("routes:\n")[1].replace("id: r1", "id: r2")},
     None,
     ["routes/r.yaml:9:5: error: route r2: claims the same notice.text messages as route r1 (routes/r.yaml:4); "
      "narrow `from` by source, headers or xpath"]),
    ("duplicate route id across files",
     {"routes/a.yaml": ROUTE, "routes/b.yaml": ROUTE.replace("      type: notice.text\n",
                                                               "      type: notice.text\n      xpath: h:To\n")},
     None,
     ["routes/b.yaml:3:9: error: route r1: id 'r1' is already used at routes/a.yaml:3; route ids are unique "
      "across all route files"]),
    ("unreachable: a type only the hub produces",
     {"routes/r.yaml": ROUTE.replace("type: notice.text", "type: hub.nack")},
     None,
     ["routes/r.yaml:5:13: error: route r1: unreachable: type 'hub.nack' is produced by the hub only, so no node "
      "can send a message this route would claim"]),
    ("unreachable: an empty group as source",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      type: notice.text\n      source: cities\n")},
     None,
     ["routes/r.yaml:6:15: error: route r1: unreachable: group 'cities' has no nodes (no node of that kind in "
      "config/nodes.yaml); add nodes to it or name another group"]),
    ("unreachable: a disabled node as the only source (a warning: the hub still runs)",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", '      type: notice.text\n      source: "45"\n')},
     {"config/nodes.yaml": ('names: {zh: 广西, en: Guangxi}\n    encoding: gbk\n',
                            'names: {zh: 广西, en: Guangxi}\n    encoding: gbk\n    enabled: false\n')},
     ["routes/r.yaml:6:15: warning: route r1: unreachable: every node of '45' is disabled (45), so no message "
      "can match this route"]),
    ("a .yml route file would be ignored",
     {"routes/r.yaml": ROUTE, "routes/extra.yml": ROUTE},
     None,
     ["routes/extra.yml:1:1: error: route files end in .yaml; this file is ignored until it is renamed to "
      "extra.yaml"]),
    ("a required key is missing, with what it is for",
     {"routes/r.yaml": ROUTE.replace("      type: notice.text\n", "      source: hq\n")},
     None,
     ["routes/r.yaml:5:7: error: routes.0.from: required key 'type' is missing (Message type (AMQP `type` "
      "property))"]),
    ("a value outside its allowed set",
     {"routes/r.yaml": ROUTE + "    on_error: drop\n"},
     None,
     ["routes/r.yaml:8:15: error: routes.0.on_error: Input should be 'dead_letter' (got 'drop')"]),
    ("duplicate node code in config/nodes.yaml points at the second one",
     {"routes/r.yaml": ROUTE},
     {"config/nodes.yaml": ('  - code: "12"\n', '  - code: "11"\n')},
     ["config/nodes.yaml:18:11: error: nodes.3.code: node code '11' appears twice; each company code must be "
      "unique"]),
    ("a message type's unknown check in config/message_types.yaml",
     {"routes/r.yaml": ROUTE},
     {"config/message_types.yaml": ("    sender: h:CompanyCode\n", "    sender: h:CompanyCode\n    check: nope\n")},
     ["config/message_types.yaml:24:12: error: type notice.text: unknown check 'nope'; "]),
    ("a message type's root prefix that is not declared",
     {"routes/r.yaml": ROUTE},
     {"config/message_types.yaml": ("root: h:Notice", "root: x:Notice")},
     ["config/message_types.yaml:21:11: error: types.notice.text.root: type notice.text: root prefix 'x' is not "
      "declared in namespaces; declared: "]),
    ("a fixture file naming an unknown sender",
     {"routes/r.yaml": ROUTE,
      "routes/r.fixtures.yaml": "version: 1\ncases:\n  - name: c\n    input: {type: notice.text, sender: \"4x\", "
                                "body: <x/>}\n    expect: {refused: {reason: XSD_INVALID}}\n"},
     None,
     ["routes/r.fixtures.yaml:4:40: error: case 'c': unknown node code '4x'"]),
    ("a fixture case expecting both outputs and a refusal",
     {"routes/r.yaml": ROUTE,
      "routes/r.fixtures.yaml": "version: 1\ncases:\n  - name: c\n    input: {type: notice.text, sender: \"44\", "
                                "body: <x/>}\n    expect:\n      refused: {reason: XSD_INVALID}\n"
                                "      outputs: []\n"},
     None,
     ["routes/r.fixtures.yaml:6:7: error: cases.0.expect: expect exactly one of `outputs` (delivered) or "
      "`refused`"]),
]


@pytest.mark.parametrize("name,files,edits,expected", CASES, ids=[c[0] for c in CASES])
def test_lint_reports(tmp_path, name, files, edits, expected):
    got = problems(tmp_path, files, edits)
    assert len(got) == len(expected), "\n".join(got)
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want), f"\n got: {line}\nwant: {want}..."


def test_every_problem_of_a_file_in_one_run(tmp_path):
    """An invalid route file does not hide the cross-file problems of its valid routes."""
    bad = ROUTE + "  - id: Bad Id\n    from: {type: notice.text}\n    to: []\n"
    got = problems(tmp_path, {"routes/r.yaml": bad.replace("notice_recipient", "notice_recipent")})
    assert [g.split(": error: ")[1].split(";")[0] for g in got] == [
        "routes.1.id: String should match pattern '^[a-z0-9][a-z0-9._-]{1,63}$' (got 'Bad Id')",
        "routes.1.to: List should have at least 1 item after validation, not 0",
        "route r1: unknown resolver 'notice_recipent'",
    ]


def test_shipped_configuration_is_clean():
    report = lint(load_settings(REPO / "config" / "hub.yaml", config_dir=REPO / "config",
                                routes_dir=REPO / "routes"))
    assert report.problems == [] and report.exit_code == 0


def _settings_yaml(tmp_path: Path, config_dir: Path, routes_dir: Path) -> Path:
    path = tmp_path / "hub-settings.yaml"
    path.write_text(f"config_dir: {config_dir}\nroutes_dir: {routes_dir}\ndata_dir: {tmp_path / 'var'}\n")
    return path


def test_cli_exit_codes_and_json(tmp_path, capsys):
    workspace(tmp_path, {"routes/r.yaml": ROUTE.replace("notice_recipient", "notice_recipent")})
    settings = _settings_yaml(tmp_path, tmp_path / "config", tmp_path / "routes")
    assert main(["--settings", str(settings), "routes", "lint", "--format", "json"]) == 1
    [problem] = json.loads(capsys.readouterr().out)
    assert problem["file"].endswith("routes/r.yaml")
    assert (problem["line"], problem["column"], problem["severity"]) == (7, 18, "error")
    assert problem["message"].startswith("route r1: unknown resolver 'notice_recipent'")

    (tmp_path / "routes" / "r.yaml").write_text(ROUTE)
    assert main(["--settings", str(settings), "config", "lint"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    assert main(["--settings", str(settings), "config", "lint", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    missing = _settings_yaml(tmp_path, tmp_path / "config", tmp_path / "no-such-routes")
    assert main(["--settings", str(missing), "config", "lint"]) == 2
    assert "routes_dir" in capsys.readouterr().err

    broken = tmp_path / "broken-settings.yaml"
    broken.write_text("hop: {prefetch: 0}\n")
    assert main(["--settings", str(broken), "config", "lint"]) == 2
    assert "prefetch" in capsys.readouterr().err


def test_adapter_files_are_checked_with_their_line(tmp_path):
    got = problems(tmp_path, {"routes/r.yaml": ROUTE}, {
        "config/sftp.yaml": ("chunk_bytes: 261120", "chunk_bytes: 999999999"),
        "config/smpp.yaml": ("version: 1", "version: 1\nbogus_key: 1"),
    })
    assert any(g.startswith("config/sftp.yaml:") and "chunk_bytes" in g and "261120" in g for g in got), got
    assert any(g.startswith("config/smpp.yaml:") and "unknown key 'bogus_key'" in g for g in got), got
    shipped = lint(load_settings(REPO / "config" / "hub.yaml", config_dir=REPO / "config",
                                 routes_dir=REPO / "routes"))
    assert shipped.adapter_files == ["smpp.yaml", "sftp.yaml", "soap.yaml", "wap.yaml", "nms.yaml"]
    assert "adapters: smpp.yaml, sftp.yaml" in shipped.text()
