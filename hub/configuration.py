"""Loading the whole configuration (nodes, message types, routes, tables) as one version.

Owns: reading config/ and routes/ into validated models, the cross-file checks (unknown
node codes, unknown types, unknown checks/mappings/resolvers/schemas, invalid XPaths,
duplicate route ids, two routes claiming the same message, unreachable routes), and the
configuration version (a hash of every file's bytes) that the journal records per routed
message. A load either yields a complete HubConfig or raises ConfigErrorGroup with every
problem, file:line:column, the offending value and what would be valid; the running hub
keeps its old HubConfig when a reload fails.

Errors make a configuration unusable. Warnings (`HubConfig.warnings`, see `unreachable`)
do not stop the hub, because they follow from operational state such as a disabled node,
but `hub config lint` reports them as problems.
Must not: touch the broker or the store.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from pydantic import ValidationError

from hub.message_types import Catalogue, TypesFile
from hub.nodes import KIND_GROUPS, Directory, NodesFile
from hub.routes import Route, RoutesFile
from hub.yamlsource import ConfigErrorGroup, Marks, load_model, load_text, position
from mappings import registry
from protocols import schemas
from protocols.errors import ConfigError

#: Adapter names a route may deliver to (each has an adapter.NAME queue).
ADAPTER_NAMES = ("smpp", "sftp", "soap", "wap", "nms")

#: Files in routes/ that are not route files: fixture tests live beside the routes they test.
FIXTURES_SUFFIX = ".fixtures.yaml"


@dataclass
class LoadedRoute:
    route: Route
    file: str
    marks: Marks
    index: int

    def where(self, *path) -> tuple[int | None, int | None]:
        return position(self.marks, ("routes", self.index, *path))

    def where_key(self, *path) -> tuple[int | None, int | None]:
        """Position of the key itself (`from:`), rather than of its value."""
        return self.marks.get(("routes", self.index, *path, "__key__")) or self.where(*path)


@dataclass
class HubConfig:
    directory: Directory
    catalogue: Catalogue
    routes: list[LoadedRoute]
    tables: dict = field(default_factory=dict)
    version: str = ""
    files: list[str] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)


def route_files(routes_dir: Path | str) -> list[Path]:
    """The route files of a folder: *.yaml except the fixture files beside them."""
    return sorted(p for p in Path(routes_dir).glob("*.yaml") if not p.name.endswith(FIXTURES_SUFFIX))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"file is not UTF-8 (byte offset {exc.start}); save it as UTF-8", file=str(path)) from None


def load_config(config_dir: Path | str, routes_dir: Path | str) -> HubConfig:
    """Load and cross-check everything; raises ConfigErrorGroup listing every problem."""
    config_dir, routes_dir = Path(config_dir), Path(routes_dir)
    errors: list[ConfigError] = []
    digest = hashlib.sha256()
    files: list[str] = []

    def text_of(path: Path) -> str | None:
        try:
            text = _read(path)
        except ConfigError as exc:
            errors.append(exc)
            return None
        digest.update(path.name.encode() + b"\0" + text.encode())
        files.append(str(path))
        return text

    def model(path: Path, cls):
        text = text_of(path)
        if text is None:
            return None, {}
        try:
            return load_model(path, cls, text=text)
        except ConfigErrorGroup as exc:
            errors.extend(exc.errors)
        except ConfigError as exc:
            errors.append(exc)
        return None, {}

    for folder, what in ((config_dir, "configuration"), (routes_dir, "routes")):
        if not folder.is_dir():
            errors.append(ConfigError(f"the {what} folder does not exist; check config_dir and routes_dir "
                                      "in the settings (config/hub.yaml, HUB_CONFIG_DIR, HUB_ROUTES_DIR)",
                                      file=str(folder)))
    if errors:
        raise ConfigErrorGroup(errors)

    nodes, _ = model(config_dir / "nodes.yaml", NodesFile)
    types_path = config_dir / "message_types.yaml"
    types, type_marks = model(types_path, TypesFile)
    tables: dict = {}
    for name, key, table in (("segments.yaml", "segments", "segments"),
                             ("complaint_categories.yaml", "categories", "complaint_categories")):
        path = config_dir / name
        if not path.exists():
            continue
        text = text_of(path)
        if text is None:
            continue
        try:
            data, _ = load_text(text, str(path))
        except ConfigError as exc:
            errors.append(exc)
            continue
        if data is not None and not isinstance(data, dict):
            errors.append(ConfigError(f"expected a mapping with key {key!r}", file=str(path), line=1, column=1))
            continue
        tables[table] = (data or {}).get(key, {} if key == "segments" else [])
        if key == "segments":
            tables["segments_file"] = str(path)

    loaded: list[LoadedRoute] = []
    for path in sorted(routes_dir.glob("*.yml")):
        errors.append(ConfigError(f"route files end in .yaml; this file is ignored until it is renamed "
                                  f"to {path.with_suffix('.yaml').name}", file=str(path), line=1, column=1))
    for path in route_files(routes_dir):
        text = text_of(path)
        if text is not None:
            loaded.extend(_load_routes(path, text, errors))

    if nodes is None or types is None:
        raise ConfigErrorGroup(errors)
    directory, catalogue = Directory(nodes.nodes), Catalogue(types)
    errors.extend(check_types(catalogue, str(types_path), type_marks))
    errors.extend(cross_check(directory, catalogue, loaded))
    if errors:
        raise ConfigErrorGroup(errors)
    return HubConfig(directory, catalogue, loaded, tables, digest.hexdigest()[:12], files,
                     warnings=unreachable(directory, catalogue, loaded))


def _load_routes(path: Path, text: str, errors: list[ConfigError]) -> list[LoadedRoute]:
    """The routes of one file. When the file is invalid, its valid routes are still returned
    (and cross-checked), so one lint run reports every problem, not the first layer only."""
    try:
        rf, marks = load_model(path, RoutesFile, text=text)
        return [LoadedRoute(r, str(path), marks, i) for i, r in enumerate(rf.routes)]
    except ConfigErrorGroup as exc:
        errors.extend(exc.errors)
    except ConfigError as exc:
        errors.append(exc)
        return []
    data, marks = load_text(text, str(path))
    items = data.get("routes") if isinstance(data, dict) else None
    out = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        try:
            out.append(LoadedRoute(Route.model_validate(item), str(path), marks, i))
        except ValidationError:
            pass  # already reported by the file's validation
    return out


def _known(names, limit: int = 12) -> str:
    names = sorted(names)
    if not names:
        return "(none)"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _valid(value: str, names, what: str) -> str:
    """'did you mean X?' when a close spelling exists, else the list of what is valid."""
    close = difflib.get_close_matches(str(value), [str(n) for n in names], n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}? ({what}: {_known(names)})"
    return f"{what}: {_known(names)}"


def _compile_xpath(expr: str, ns: dict[str, str]) -> str | None:
    """None when the XPath compiles with the declared prefixes, else the reason. lxml finds an
    undeclared prefix only when evaluating, so the XPath is also run once on an empty element."""
    try:
        etree.XPath(expr, namespaces=ns)(etree.Element("lint"))
    except etree.XPathError as exc:
        return f"{exc}; prefixes declared in config/message_types.yaml: {_known(ns)}"
    return None


def check_types(catalogue: Catalogue, file: str, marks: Marks) -> list[ConfigError]:
    """Rules of message_types.yaml that need more than its model: XPaths and named checks."""
    errors = []

    def err(path: tuple, detail: str) -> None:
        line, col = position(marks, path)
        errors.append(ConfigError(detail, file=file, line=line, column=col))

    for name, t in catalogue.types.items():
        for key, expr in ([("sender", t.sender)] if t.sender else []) + [
                (("business_key", i), k) for i, k in enumerate(t.business_key)]:
            path = ("types", name, *(key if isinstance(key, tuple) else (key,)))
            problem = _compile_xpath(expr, catalogue.ns)
            if problem:
                err(path, f"type {name}: invalid XPath {expr!r}: {problem}")
        if t.check is not None and t.check not in registry.CHECKS:
            err(("types", name, "check"), f"type {name}: unknown check {t.check!r}; "
                f"{_valid(t.check, registry.CHECKS, 'registered checks (mappings/registry.py)')}")
    return errors


def _err(lr: LoadedRoute, path: tuple, detail: str) -> ConfigError:
    line, col = lr.where(*path)
    return ConfigError(f"route {lr.route.id}: {detail}", file=lr.file, line=line, column=col)


def _target_ok(directory: Directory, name: str) -> bool:
    return name in directory.by_code or name in directory.groups


def _unknown_target(directory: Directory, name: str) -> str:
    if name in KIND_GROUPS.values():
        return (f"unreachable: group {name!r} has no nodes (no node of that kind in config/nodes.yaml); "
                "add nodes to it or name another group")
    return (f"unknown node or group {name!r}; "
            f"{_valid(name, [*directory.groups, *directory.by_code], 'groups and node codes')}")


def cross_check(directory: Directory, catalogue: Catalogue, routes: list[LoadedRoute]) -> list[ConfigError]:
    """Rules that span files; each error points at the offending line of a route file."""
    errors: list[ConfigError] = []
    seen_ids: dict[str, LoadedRoute] = {}
    codes = list(directory.by_code)
    for lr in routes:
        r = lr.route
        if r.id in seen_ids:
            first = seen_ids[r.id]
            errors.append(_err(lr, ("id",), f"id {r.id!r} is already used at {first.file}:{first.where('id')[0]}; "
                               "route ids are unique across all route files"))
        seen_ids.setdefault(r.id, lr)
        m = r.from_
        if m.type not in catalogue.types:
            errors.append(_err(lr, ("from", "type"), f"unknown message type {m.type!r}; "
                               f"{_valid(m.type, catalogue.types, 'known types (config/message_types.yaml)')}"))
        elif catalogue.types[m.type].produced_by_hub:
            errors.append(_err(lr, ("from", "type"), f"unreachable: type {m.type!r} is produced by the hub only, "
                               "so no node can send a message this route would claim"))
        if m.source is not None and not _target_ok(directory, m.source):
            errors.append(_err(lr, ("from", "source"), _unknown_target(directory, m.source)))
        if m.xpath is not None:
            problem = _compile_xpath(f"boolean({m.xpath})", catalogue.ns)
            if problem:
                errors.append(_err(lr, ("from", "xpath"), f"invalid XPath {m.xpath!r}: {problem}"))
        for i, step in enumerate(r.steps):
            kind, arg = step.kind, step.arg
            table = {"check": registry.CHECKS, "map": registry.MAPPINGS, "enrich": registry.ENRICHERS}.get(kind)
            if kind == "validate" and arg not in schemas.SCHEMAS:
                errors.append(_err(lr, ("steps", i, "validate"), f"unknown schema {arg!r}; "
                                   f"{_valid(arg, schemas.SCHEMAS, 'schemas (protocols/schemas.py)')}"))
            elif table is not None and arg not in table:
                noun = {"check": "check", "map": "mapping", "enrich": "enricher"}[kind]
                errors.append(_err(lr, ("steps", i, kind), f"unknown {noun} {arg!r}; "
                                   f"{_valid(arg, table, f'registered {noun}s (mappings/registry.py)')}"))
            elif kind == "wireTap" and not _target_ok(directory, arg):
                errors.append(_err(lr, ("steps", i, kind), _unknown_target(directory, arg)))
        for i, d in enumerate(r.to):
            if d.node is not None and d.node not in directory.by_code:
                errors.append(_err(lr, ("to", i, "node"), f"unknown node code {d.node!r}; "
                                   f"{_valid(d.node, codes, 'node codes (config/nodes.yaml)')}"))
            if d.group is not None and d.group not in directory.groups:
                errors.append(_err(lr, ("to", i, "group"), _unknown_target(directory, d.group)))
            if d.adapter is not None and d.adapter not in ADAPTER_NAMES:
                errors.append(_err(lr, ("to", i, "adapter"), f"unknown adapter {d.adapter!r}; "
                                   f"{_valid(d.adapter, ADAPTER_NAMES, 'adapters')}"))
            if d.resolve is not None and d.resolve not in registry.RESOLVERS:
                errors.append(_err(lr, ("to", i, "resolve"), f"unknown resolver {d.resolve!r}; "
                                   f"{_valid(d.resolve, registry.RESOLVERS, 'resolvers (mappings/registry.py)')}"))
            if d.map is not None and d.map not in registry.MAPPINGS:
                errors.append(_err(lr, ("to", i, "map"), f"unknown mapping {d.map!r}; "
                                   f"{_valid(d.map, registry.MAPPINGS, 'mappings (mappings/registry.py)')}"))
            if d.type is not None and d.type not in catalogue.types:
                errors.append(_err(lr, ("to", i, "type"), f"unknown message type {d.type!r}; "
                                   f"{_valid(d.type, catalogue.types, 'known types')}"))
            elif (d.type is not None and m.type in catalogue.types and d.map is None
                  and not any(s.kind == "map" for s in r.steps)
                  and catalogue.types[d.type].root != catalogue.types[m.type].root):
                errors.append(_err(lr, ("to", i, "type"), f"delivers a {m.type} message as {d.type!r} without a "
                                   f"mapping, but {d.type} has root {catalogue.types[d.type].root} and "
                                   f"{m.type} has {catalogue.types[m.type].root}; add `map:` to this destination"))
    errors.extend(_overlaps(directory, routes))
    return errors


def unreachable(directory: Directory, catalogue: Catalogue, routes: list[LoadedRoute]) -> list[ConfigError]:
    """Warnings: routes no message can reach because every node of their source is disabled.
    The hub runs with them (disabling a node must not block a reload); lint reports them.
    An empty source group is an error instead (cross_check): it names nothing at all."""
    warnings = []
    for lr in routes:
        source = lr.route.from_.source
        if source is None:
            continue
        members = sorted(_members(directory, source))
        if members and not any(directory.by_code[c].enabled for c in members):
            warnings.append(_err(lr, ("from", "source"), f"unreachable: every node of {source!r} is disabled "
                                 f"({', '.join(members)}), so no message can match this route"))
    return warnings


def _overlaps(directory: Directory, routes: list[LoadedRoute]) -> list[ConfigError]:
    """Two routes claim the same message when type, source and headers overlap and their
    XPaths cannot tell them apart. A route with an XPath is the specific case of one
    without (the router tries XPath routes first); two different XPaths are taken as
    disjoint, and the router refuses a message both claim (ROUTE_AMBIGUOUS)."""
    errors = []
    by_type: dict[str, list[LoadedRoute]] = {}
    for lr in routes:
        by_type.setdefault(lr.route.from_.type, []).append(lr)
    for group in by_type.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if _may_overlap(directory, a.route, b.route):
                    line, col = b.where_key("from")
                    errors.append(ConfigError(
                        f"route {b.route.id}: claims the same {b.route.from_.type} messages as route {a.route.id} "
                        f"({a.file}:{a.where_key('from')[0]}); narrow `from` by source, headers or xpath",
                        file=b.file, line=line, column=col))
    return errors


def _members(directory: Directory, name: str) -> set[str]:
    return set(directory.groups.get(name) or ([name] if name in directory.by_code else []))


def _may_overlap(directory: Directory, a: Route, b: Route) -> bool:
    ma, mb = a.from_, b.from_
    if ma.source and mb.source and not _members(directory, ma.source) & _members(directory, mb.source):
        return False
    for k in set(ma.headers) & set(mb.headers):
        if ma.headers[k] != mb.headers[k]:
            return False
    if ma.xpath != mb.xpath and ma.xpath is not None and mb.xpath is not None:
        return False  # distinct predicates: treated as disjoint, runtime refuses a double claim
    if (ma.xpath is None) != (mb.xpath is None):
        return False  # the one with the XPath is the specific case; the other is the fallback
    return True
