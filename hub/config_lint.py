"""`hub config lint` / `hub routes lint`: every problem of the configuration, for people and for CI.

Owns: collecting the problems of one configuration (load_config's errors and warnings, and the
fixture files beside the routes), each as file:line:column, severity and message, and
printing them as text (one `file:line:column: severity: message` per line, the form editors and
CI annotate) or JSON. Exit codes: 0 no problem, 1 problems, 2 the settings or folders are
unusable (nothing could be checked).
Must not: change any file or touch the broker.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hub.configuration import HubConfig, load_config
from hub.settings import Settings
from hub.yamlsource import ConfigErrorGroup
from protocols.errors import ConfigError

OK, PROBLEMS, UNUSABLE = 0, 1, 2


@dataclass
class Problem:
    file: str | None
    line: int | None
    column: int | None
    severity: str          # "error" or "warning"
    message: str

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class LintReport:
    problems: list[Problem] = field(default_factory=list)
    config: HubConfig | None = None
    unusable: str | None = None     # why nothing could be checked
    adapter_files: list[str] = field(default_factory=list)  # adapter configuration files checked

    @property
    def exit_code(self) -> int:
        if self.unusable:
            return UNUSABLE
        return PROBLEMS if self.problems else OK

    def text(self) -> str:
        if self.unusable:
            return f"hub: {self.unusable}"
        lines = [str(p) for p in self.problems]
        errors = sum(p.severity == "error" for p in self.problems)
        warnings = len(self.problems) - errors
        if self.problems:
            lines.append(f"{errors} error(s), {warnings} warning(s)")
        else:
            cfg = self.config
            lines.append(f"ok: {len(cfg.directory.nodes)} nodes, {len(cfg.catalogue.types)} message types, "
                         f"{len(cfg.routes)} routes (config version {cfg.version})"
                         + (f"; adapters: {', '.join(self.adapter_files)}" if self.adapter_files else ""))
        return "\n".join(lines)

    def json(self) -> str:
        if self.unusable:
            return json.dumps({"unusable": self.unusable}, ensure_ascii=False)
        return json.dumps([asdict(p) for p in self.problems], ensure_ascii=False, indent=2)


def _problem(exc: ConfigError, severity: str) -> Problem:
    return Problem(exc.file, exc.line, exc.column, severity, exc.detail)


def _flatten(exc: ConfigError) -> list[ConfigError]:
    return list(exc.errors) if isinstance(exc, ConfigErrorGroup) else [exc]


#: The adapters' configuration files and the loader that validates each. hub may not import
#: adapters (the layer contract, protocols -> mappings -> hub -> adapters), so the loaders are
#: named here and resolved at lint time, as `hub smpp|sftp|...` resolve their commands.
ADAPTER_CONFIGS: tuple[tuple[str, str, str, bool], ...] = (
    # file in config_dir, module, loader, whether the loader takes the node directory
    ("smpp.yaml", "adapters.smpp.config", "load_smpp_config", False),
    ("sftp.yaml", "adapters.sftp.config", "load", True),
    ("soap.yaml", "adapters.soap.config", "load", True),
    ("wap.yaml", "adapters.wap.config", "load_wap_config", False),
    ("nms.yaml", "adapters.nms.config", "load_nms_config", False),
)


def lint_adapter_configs(settings: Settings, cfg: HubConfig) -> tuple[list[Problem], list[str]]:
    """Validate every adapter file present in config_dir; (problems, files checked)."""
    import importlib

    problems: list[Problem] = []
    checked: list[str] = []
    for name, module, loader, takes_directory in ADAPTER_CONFIGS:
        path = Path(settings.config_dir) / name
        if not path.exists():
            continue
        try:
            load = getattr(importlib.import_module(module), loader)
        except ImportError as exc:
            problems.append(Problem(str(path), None, None, "warning",
                                    f"cannot check it: the adapter's code does not load ({exc})"))
            continue
        try:
            load(path, cfg.directory) if takes_directory else load(path)
        except ConfigError as exc:
            problems += [_problem(e, "error") for e in _flatten(exc)]
            for p in problems:
                p.file = p.file or str(path)
        checked.append(name)
    return problems, checked


def lint(settings: Settings) -> LintReport:
    """Check the configuration the settings point at, and the fixture files beside the routes."""
    from hub.route_fixtures import fixture_files, load_fixtures

    report = LintReport()
    for folder, what in ((settings.config_dir, "config_dir"), (settings.routes_dir, "routes_dir")):
        if not Path(folder).is_dir():
            report.unusable = (f"{what} {str(folder)!r} is not a folder; run from the repository root or set "
                               f"{what} in the settings (config/hub.yaml, HUB_SETTINGS, HUB_{what.upper()})")
            return report
    try:
        cfg = load_config(settings.config_dir, settings.routes_dir)
    except ConfigError as exc:
        report.problems = [_problem(e, "error") for e in _flatten(exc)]
        return report
    report.config = cfg
    report.problems = [_problem(w, "warning") for w in cfg.warnings]
    for path in fixture_files(settings.routes_dir):
        try:
            load_fixtures(path, cfg)
        except ConfigError as exc:
            report.problems += [_problem(e, "error") for e in _flatten(exc)]
    adapter_problems, report.adapter_files = lint_adapter_configs(settings, cfg)
    report.problems += adapter_problems
    return report
