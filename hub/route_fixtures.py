"""Route fixture tests (`hub routes test`): YAML cases beside the route files, run without a broker.

Owns: the fixture file model (routes/<name>.fixtures.yaml, validated with positions like every
configuration file), running each case through the real Pipeline built from the configuration
(as if node `sender` had published to hub.ingress), matching the outputs order-insensitively,
and reporting a failure as a unified diff (expected vs actual) with the file:line of the case.
Each result carries the route that handled the message (Outcome.route_id), so the runner can
say which routes no case covers.
Must not: publish, consume or touch the store: fixtures test routing, not delivery.

    version: 1
    cases:
      - name: a notice from Guangdong reaches Beijing
        input: {type: notice.text, sender: "44", message_id: gd-1, body: "<Notice ...>"}
        expect:
          route: notice
          outputs:
            - queue: node.11
              properties: {content_encoding: utf-8, headers: {x-hub-source: "44"}}
              xpath: [{xpath: "h:To", equals: "11"}]
      - name: a spoofed sender is refused
        input: {...}
        expect:
          refused: {reason: SPOOFED_SENDER, field: CompanyCode}
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub import envelope as ev
from hub.configuration import FIXTURES_SUFFIX, HubConfig
from hub.envelope import Incoming, Outgoing, Props
from hub.pipeline import Outcome, Pipeline, Verdict
from hub.yamlsource import ConfigErrorGroup, LocatedValueError, Marks, load_model, position
from protocols import xmlwire
from protocols.errors import ConfigError, HubError, ReasonCode

#: The processing time of a case unless it says otherwise (fixtures must not depend on the clock).
DEFAULT_NOW = datetime(2024, 6, 11, 10, 0, tzinfo=UTC)

HeaderValue = str | int | bool


class CaseInput(BaseModel):
    """The message as node `sender` publishes it to hub.ingress."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="AMQP `type` property (message type)", examples=["notice.text"])
    sender: str = Field(description="Code of the publishing node; the case runs as its AMQP user",
                        examples=["44"])
    message_id: str = Field("fixture-1", description="AMQP `message_id` property")
    correlation_id: str | None = Field(None, description="AMQP `correlation_id` property")
    content_encoding: str | None = Field(None, description="AMQP `content_encoding`; an inline body is "
                                         "encoded in it (utf-8 when absent)", examples=["gbk"])
    headers: dict[str, HeaderValue] = Field(default_factory=dict, description="AMQP headers")
    body: str | None = Field(None, description="The payload, inline")
    body_file: str | None = Field(None, description="The payload's file (raw bytes), relative to this file",
                                  examples=["fixtures/notice-gbk.xml"])
    now: datetime | None = Field(None, description="Processing time (default 2024-06-11T10:00:00Z)")

    @model_validator(mode="after")
    def _one_body(self) -> CaseInput:
        if (self.body is None) == (self.body_file is None):
            raise LocatedValueError("give the payload as exactly one of `body` (inline) or `body_file`")
        return self


class Properties(BaseModel):
    """Properties an output must have; unnamed ones are not compared. `headers` is a subset."""

    model_config = ConfigDict(extra="forbid")
    message_id: str | None = None
    correlation_id: str | None = None
    content_encoding: str | None = Field(None, examples=["utf-8"])
    content_type: str | None = None
    headers: dict[str, HeaderValue] = Field(default_factory=dict, examples=[{"x-hub-source": "44"}])


class XPathAssertion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    xpath: str = Field(description="XPath on the delivered payload, prefixes from config/message_types.yaml; "
                       "its string value is compared", examples=["h:Text"])
    equals: str = Field(description="Expected string value")


class ExpectedOutput(BaseModel):
    """One delivered message. Outputs match in any order; their count must be equal."""

    model_config = ConfigDict(extra="forbid")
    queue: str = Field(pattern=r"^(node|adapter)\.[A-Za-z0-9_-]+$", description="Delivery queue",
                       examples=["node.11", "adapter.smpp"])
    type: str | None = Field(None, description="Message type it is delivered as")
    properties: Properties | None = None
    payload_equal: str | None = Field(None, description="The whole payload, decoded with its content_encoding; "
                                      "XML is compared canonically (declaration and whitespace between "
                                      "elements do not matter)")
    xpath: list[XPathAssertion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_payload_check(self) -> ExpectedOutput:
        if self.payload_equal is not None and self.xpath:
            raise LocatedValueError("check the payload with `payload_equal` or with `xpath`, not both", "xpath")
        return self


class Refusal(BaseModel):
    """The message is refused: dead-lettered, with a negative acknowledgement to the sender."""

    model_config = ConfigDict(extra="forbid")
    reason: ReasonCode = Field(description="Reason code of the refusal", examples=["SPOOFED_SENDER"])
    field: str | None = Field(None, description="The offending field, when the hub names one")


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: str | None = Field(None, description="Id of the route that must handle the message")
    outputs: list[ExpectedOutput] | None = Field(None, description="Every delivered message")
    refused: Refusal | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Expectation:
        if (self.outputs is None) == (self.refused is None):
            raise LocatedValueError("expect exactly one of `outputs` (delivered) or `refused`")
        return self


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="What the case shows", examples=["GBK sender to a UTF-8 receiver"])
    input: CaseInput
    expect: Expectation


class FixturesFile(BaseModel):
    """One routes/<name>.fixtures.yaml file."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(1, description="Format version of this file")
    cases: list[Case] = Field(min_length=1)


# --- loading -------------------------------------------------------------------------------------

def fixture_files(folder: Path | str) -> list[Path]:
    return sorted(Path(folder).glob(f"*{FIXTURES_SUFFIX}"))


def load_fixtures(path: Path | str, cfg: HubConfig | None = None) -> tuple[FixturesFile, Marks]:
    """Read and validate a fixture file; with a configuration, also its references (sender
    codes, route ids, XPath prefixes, body files). Raises ConfigErrorGroup naming file:line:column."""
    spec, marks = load_model(path, FixturesFile)
    if cfg is None:
        return spec, marks
    errors = []

    def err(loc: tuple, detail: str) -> None:
        line, col = position(marks, loc)
        errors.append(ConfigError(detail, file=str(path), line=line, column=col))

    for i, case in enumerate(spec.cases):
        if case.input.sender not in cfg.directory.by_code:
            close = difflib.get_close_matches(case.input.sender, list(cfg.directory.by_code), n=1)
            err(("cases", i, "input", "sender"), f"case {case.name!r}: unknown node code {case.input.sender!r}"
                + (f"; did you mean {close[0]!r}?" if close else "; node codes are listed in config/nodes.yaml"))
        if case.input.body_file is not None and not (Path(path).parent / case.input.body_file).is_file():
            err(("cases", i, "input", "body_file"), f"case {case.name!r}: body file {case.input.body_file!r} "
                f"not found next to {Path(path).name}")
        if case.expect.route is not None and case.expect.route not in {lr.route.id for lr in cfg.routes}:
            err(("cases", i, "expect", "route"), f"case {case.name!r}: no route has id {case.expect.route!r}")
        for j, out in enumerate(case.expect.outputs or []):
            for k, check in enumerate(out.xpath):
                try:
                    etree.XPath(check.xpath, namespaces=cfg.catalogue.ns)(etree.Element("lint"))
                except etree.XPathError as exc:
                    err(("cases", i, "expect", "outputs", j, "xpath", k, "xpath"),
                        f"case {case.name!r}: invalid XPath {check.xpath!r}: {exc}; prefixes: "
                        f"{', '.join(sorted(cfg.catalogue.ns))}")
    if errors:
        raise ConfigErrorGroup(errors)
    return spec, marks


# --- running -------------------------------------------------------------------------------------

@dataclass
class CaseResult:
    file: str
    line: int | None
    name: str
    ok: bool
    route_id: str | None
    verdict: str
    report: str = ""          # the unified diff of a failure

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class FixtureRun:
    results: list[CaseResult] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)      # unreadable or invalid fixture files
    uncovered: list[str] = field(default_factory=list)           # "route X (file:line)" no case reached

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return not self.errors and not self.uncovered and self.failed == 0


def incoming(case: CaseInput, pipeline: Pipeline, folder: Path) -> Incoming:
    """The message as the broker would hand it to the hub after node `sender` published it."""
    if case.body_file is not None:
        body = (folder / case.body_file).read_bytes()
    else:
        body = case.body.encode(xmlwire.SUPPORTED_ENCODINGS.get((case.content_encoding or "utf-8").lower(), "utf-8"))
    props = Props(message_id=case.message_id, type=case.type, correlation_id=case.correlation_id,
                  user_id=pipeline.settings.broker_user(f"node-{case.sender}"), content_type="application/xml",
                  content_encoding=case.content_encoding, headers=dict(case.headers),
                  timestamp=int((case.now or DEFAULT_NOW).timestamp()))
    return Incoming(body, props, exchange=ev.INGRESS_EXCHANGE, routing_key=case.type)


def run_case(pipeline: Pipeline, case: Case, folder: Path) -> tuple[Outcome, list[str]]:
    """Process one case; returns the outcome and the problems (empty when it passed)."""
    outcome = pipeline.process(incoming(case.input, pipeline, folder), case.input.now or DEFAULT_NOW)
    exp = case.expect
    problems = []
    if exp.route is not None and outcome.route_id != exp.route:
        problems.append(f"handled by route {outcome.route_id!r}, expected {exp.route!r}")
    if exp.refused is not None:
        err = outcome.error
        if outcome.verdict != Verdict.dead_lettered or err is None:
            problems.append(f"expected a refusal, the message was {outcome.verdict}")
        elif err.reason != exp.refused.reason or (exp.refused.field is not None and err.field != exp.refused.field):
            problems.append(f"refused with {err.reason} (field {err.field!r})")
        return outcome, problems
    if outcome.verdict != Verdict.delivered:
        problems.append(f"expected delivery, the message was {outcome.verdict}")
        return outcome, problems
    if not _match_all(exp.outputs or [], outcome.outputs, pipeline.cfg.catalogue.ns):
        problems.append("the outputs differ")
    return outcome, problems


def run_file(pipeline: Pipeline, path: Path | str) -> list[CaseResult]:
    """Run every case of one fixture file. Raises ConfigErrorGroup when the file is invalid."""
    path = Path(path)
    spec, marks = load_fixtures(path, pipeline.cfg)
    results = []
    for i, case in enumerate(spec.cases):
        line = position(marks, ("cases", i))[0]
        outcome, problems = run_case(pipeline, case, path.parent)
        report = "" if not problems else "\n".join(
            ["; ".join(problems), *_diff(case, outcome, pipeline.cfg.catalogue.ns)])
        results.append(CaseResult(str(path), line, case.name, not problems, outcome.route_id,
                                  str(outcome.verdict), report))
    return results


def run_fixtures(pipeline: Pipeline, paths: list[Path], *, require_coverage: bool) -> FixtureRun:
    """Run fixture files (folders stand for their *.fixtures.yaml); with require_coverage, every
    route of the configuration must be handled by at least one case."""
    run = FixtureRun()
    files: list[Path] = []
    for p in paths:
        files.extend(fixture_files(p) if p.is_dir() else [p])
    for f in files:
        try:
            run.results.extend(run_file(pipeline, f))
        except ConfigErrorGroup as exc:
            run.errors.extend(exc.errors)
        except ConfigError as exc:
            run.errors.append(exc)
    if require_coverage:
        covered = {r.route_id for r in run.results if r.route_id}
        run.uncovered = [f"route {lr.route.id} ({lr.file}:{lr.where('id')[0]})"
                         for lr in pipeline.cfg.routes if lr.route.id not in covered]
    return run


# --- matching ------------------------------------------------------------------------------------

def _decoded(out: Outgoing) -> str:
    try:
        return xmlwire.decode_text(out.body, out.props.content_encoding)[0]
    except HubError as exc:
        return f"<payload not decodable: {exc.detail}>"


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def _canonical(text: str) -> str | None:
    """C14N 2.0 of an XML text (declaration dropped, whitespace-only text stripped); None if not XML."""
    try:
        return etree.canonicalize(_XML_DECLARATION.sub("", text, count=1), strip_text=True)
    except etree.XMLSyntaxError:
        return None


def _xpath_value(out: Outgoing, expr: str, ns: dict) -> str:
    try:
        root, _ = xmlwire.parse(out.body, out.props.content_encoding)
        return str(etree.XPath(f"string({expr})", namespaces=ns)(root))
    except (HubError, etree.XPathError) as exc:
        return f"<error: {exc}>"


def _project(exp: ExpectedOutput, out: Outgoing, ns: dict) -> dict:
    """The actual output in the shape of an expectation: only what the expectation names."""
    got: dict = {"queue": out.routing_key}
    if exp.type is not None:
        got["type"] = out.props.type
    if exp.properties is not None:
        props = {}
        for key in ("message_id", "correlation_id", "content_encoding", "content_type"):
            if getattr(exp.properties, key) is not None:
                props[key] = getattr(out.props, key)
        if exp.properties.headers:
            headers = out.props.headers or {}
            props["headers"] = {k: headers.get(k, "<absent>") for k in exp.properties.headers}
        got["properties"] = props
    if exp.payload_equal is not None:
        text = _decoded(out)
        got["payload_equal"] = text if _canonical(exp.payload_equal) is None else (_canonical(text) or text)
    if exp.xpath:
        got["xpath"] = [{"xpath": c.xpath, "equals": _xpath_value(out, c.xpath, ns)} for c in exp.xpath]
    return got


def _expected(exp: ExpectedOutput) -> dict:
    data = exp.model_dump(exclude_none=True, exclude_defaults=True)
    data["queue"] = exp.queue
    if exp.properties is not None:
        data["properties"] = {k: ({h: str(v) for h, v in val.items()} if k == "headers" else val)
                              for k, val in data.get("properties", {}).items()}
    if exp.payload_equal is not None:
        data["payload_equal"] = _canonical(exp.payload_equal) or exp.payload_equal
    return data


def _matches(exp: ExpectedOutput, out: Outgoing, ns: dict) -> bool:
    return _normal(_project(exp, out, ns)) == _normal(_expected(exp))


def _normal(data):
    if isinstance(data, dict):
        return {k: _normal(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_normal(v) for v in data]
    return str(data)


def _match_all(expected: list[ExpectedOutput], actual: list[Outgoing], ns: dict) -> bool:
    """A perfect matching of expectations to outputs (Kuhn's augmenting paths; lists are short)."""
    if len(expected) != len(actual):
        return False
    ok = [[_matches(e, a, ns) for a in actual] for e in expected]
    owner: list[int | None] = [None] * len(actual)

    def assign(i: int, seen: set[int]) -> bool:
        for j in range(len(actual)):
            if ok[i][j] and j not in seen:
                seen.add(j)
                if owner[j] is None or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(assign(i, set()) for i in range(len(expected)))


# --- reporting -----------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(data) -> list[str]:
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100).splitlines()


def _diff(case: Case, outcome: Outcome, ns: dict) -> list[str]:
    exp = case.expect
    want: dict = {}
    got: dict = {}
    if exp.route is not None:
        want["route"], got["route"] = exp.route, outcome.route_id
    if exp.refused is not None:
        want["refused"] = exp.refused.model_dump(mode="json", exclude_none=True)
    else:
        want["outputs"] = [_expected(e) for e in sorted(exp.outputs or [], key=lambda e: e.queue)]
    if outcome.verdict == Verdict.dead_lettered and outcome.error is not None:
        got["refused"] = {"reason": str(outcome.error.reason), "field": outcome.error.field}
        if exp.refused is None or exp.refused.field is None:
            got["refused"].pop("field")
        got["detail"] = outcome.error.detail
    elif outcome.verdict != Verdict.delivered:
        got["verdict"] = str(outcome.verdict)
        if outcome.error is not None:
            got["detail"] = f"{outcome.error.reason}: {outcome.error.detail}"
    else:
        got["outputs"] = _paired(exp.outputs or [], outcome.outputs, ns)
    return list(difflib.unified_diff(_yaml(want), _yaml(got), "expected", "actual", lineterm=""))


def _paired(expected: list[ExpectedOutput], actual: list[Outgoing], ns: dict) -> list[dict]:
    """Actual outputs shown in the shape of the expectation for the same queue, so the diff
    shows the difference, not the fields nobody asked about."""
    by_queue: dict[str, list[ExpectedOutput]] = {}
    for e in expected:
        by_queue.setdefault(e.queue, []).append(e)
    shown: list[dict | None] = []
    unpaired: list[tuple[int, Outgoing]] = []
    for out in sorted(actual, key=lambda o: o.routing_key):
        candidates = by_queue.get(out.routing_key)
        if candidates:
            shown.append(_project(candidates.pop(0), out, ns))
        else:
            unpaired.append((len(shown), out))
            shown.append(None)
    left = [e for queue in sorted(by_queue) for e in by_queue[queue]]   # expectations no queue matched
    for i, out in unpaired:
        shown[i] = (_project(left.pop(0), out, ns) if left
                    else {"queue": out.routing_key, "type": out.props.type})
    return shown
