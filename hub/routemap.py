"""The effective routing table and the network graph as people read them (`hub routes show|graph`).

Owns: describing a loaded configuration: each route with what it claims, its predicates, steps,
destinations resolved to node codes and queues, retry and file:line; and the graph of senders,
routes, destinations and adapters as text, Mermaid, or the generated page docs/routes.md.
Must not: load files or evaluate messages: callers pass a HubConfig, and a resolver's
destinations are only known per message, so they are shown as the resolver's name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from hub.configuration import ADAPTER_NAMES, HubConfig, LoadedRoute
from hub.nodes import Directory
from hub.routes import Destination


@dataclass
class RouteRow:
    id: str
    type: str
    source: str                 # "any node", "group provinces (31 nodes)", "node 44 (广东)"
    source_nodes: list[str]     # node codes allowed to send; empty = any
    predicates: list[str]       # headers and XPath conditions
    steps: list[str]
    destinations: list[str]     # each resolved: "group provinces -> 11, 12, ... (sender left out)"
    queues: list[str]           # delivery queues known from the configuration alone
    retry: str
    where: str                  # file:line
    description: str | None = None


def _node(directory: Directory, code: str) -> str:
    n = directory.by_code[code]
    return f"{code} ({n.names.zh})" + ("" if n.enabled else " [disabled]")


def _codes(codes: list[str], limit: int = 40) -> str:
    return ", ".join(codes[:limit]) + (f" and {len(codes) - limit} more" if len(codes) > limit else "")


def _destination(cfg: HubConfig, d: Destination) -> tuple[str, list[str]]:
    directory = cfg.directory
    extra = "".join([f", mapped by {d.map}" if d.map else "", f", delivered as {d.type}" if d.type else ""])
    if d.node:
        return f"node {_node(directory, d.node)} -> {directory.by_code[d.node].queue}{extra}", \
            [directory.by_code[d.node].queue]
    if d.group:
        members = directory.members(d.group)
        enabled = [c for c in members if directory.by_code[c].enabled]
        return (f"group {d.group} -> {_codes(enabled)} ({_nodes(len(enabled))}, "
                f"the sender left out){extra}",
                [directory.by_code[c].queue for c in enabled])
    if d.adapter:
        return f"adapter {d.adapter} -> adapter.{d.adapter}{extra}", [f"adapter.{d.adapter}"]
    if d.resolve:
        return f"resolver {d.resolve} -> node codes chosen per message from the payload{extra}", []
    return f"back to the sender -> node.<sender>{extra}", []


def table(cfg: HubConfig, base: Path | None = None) -> list[RouteRow]:
    """The effective routing table, in file order. `base` makes file paths relative to it."""
    rows = []
    directory = cfg.directory
    for lr in cfg.routes:
        r, m = lr.route, lr.route.from_
        if m.source is None:
            source, nodes = "any node", []
        elif m.source in directory.groups:
            nodes = directory.members(m.source)
            source = f"group {m.source} ({_nodes(len(nodes))}: {_codes(nodes, 8)})"
        else:
            nodes = [m.source]
            source = f"node {_node(directory, m.source)}"
        predicates = [f"header {k} = {v!r}" for k, v in sorted(m.headers.items())]
        predicates += [f"xpath {m.xpath}"] if m.xpath else []
        steps = [f"{s.kind} {s.arg}" for s in r.steps]
        dests, queues = [], []
        for d in r.to:
            text, qs = _destination(cfg, d)
            dests.append(text)
            queues += [q for q in qs if q not in queues]
        for s in r.steps:
            if s.kind == "wireTap":
                taps = directory.members(s.arg)
                dests.append(f"wireTap {s.arg} -> {_codes(taps)} (a copy)")
                queues += [directory.by_code[c].queue for c in taps if directory.by_code[c].queue not in queues]
        rows.append(RouteRow(r.id, m.type, source, nodes, predicates, steps, dests, queues,
                             f"{r.retry.max_attempts} attempts, then {r.on_error.replace('_', ' ')}",
                             f"{_shown_path(lr, base)}:{lr.where('id')[0]}", r.description))
    return rows


def _shown_path(lr: LoadedRoute, base: Path | None) -> str:
    path = Path(lr.file)
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def show_text(rows: list[RouteRow]) -> str:
    out = []
    for row in rows:
        out.append(f"{row.id}  ({row.where})")
        if row.description:
            out.append(f"  {row.description}")
        out.append(f"  claims:  {row.type} from {row.source}")
        out.append(f"  when:    {'; '.join(row.predicates) or '(always)'}")
        out.append(f"  steps:   {', '.join(row.steps) or '(none)'}")
        for i, d in enumerate(row.destinations):
            out.append(f"  {'to:' if i == 0 else '':<8} {d}")
        out.append(f"  retry:   {row.retry}")
        out.append("")
    out.append(f"{len(rows)} routes")
    return "\n".join(out)


def show_json(rows: list[RouteRow]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)


# --- graph ---------------------------------------------------------------------------------------

def graph_text(cfg: HubConfig, base: Path | None = None) -> str:
    d = cfg.directory
    out = [f"nodes ({len(d.nodes)}):"]
    out += [f"  {n.code:<4} {n.names.zh} / {n.names.en}  [{n.kind}, {n.encoding}"
            + ("" if n.enabled else ", disabled") + f"]  queue {n.queue}" for n in d.nodes]
    out.append("groups:")
    out += [f"  {g}: {_codes(members)}" for g, members in sorted(d.groups.items())]
    out.append(f"routes ({len(cfg.routes)}):")
    for row in table(cfg, base):
        cond = f" when {'; '.join(row.predicates)}" if row.predicates else ""
        out.append(f"  {row.id}: {row.type} from {row.source}{cond}")
        out += [f"    -> {dest}" for dest in row.destinations]
    out.append(f"adapters: {', '.join(f'{a} (adapter.{a})' for a in ADAPTER_NAMES)}")
    return "\n".join(out)


def _mid(kind: str, name: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def graph_mermaid(cfg: HubConfig) -> str:
    """A Mermaid flowchart: senders -> routes -> destinations; wire taps dotted."""
    d = cfg.directory
    shapes: dict[str, str] = {}
    edges: list[str] = []

    def target(kind: str, name: str) -> str:
        mid = _mid(kind, name)
        if mid not in shapes:
            if kind == "node":
                shapes[mid] = f"{mid}[{_label(f'{name} {d.by_code[name].names.zh}')}]"
            elif kind == "group":
                shapes[mid] = f"{mid}([{_label(_count(name, len(d.members(name))))}])"
            elif kind == "adapter":
                shapes[mid] = f"{mid}[/{_label(f'adapter.{name}')}/]"
            elif kind == "resolve":
                shapes[mid] = f"{mid}{{{{{_label(f'resolver {name}')}}}}}"
            elif kind == "sender":
                shapes[mid] = f"{mid}(({_label('the sender')}))"
            else:
                shapes[mid] = f"{mid}[{_label('any node')}]"
        return mid

    route_lines = []
    for i, lr in enumerate(cfg.routes):
        r, m = lr.route, lr.route.from_
        rid = f"route_{i}"
        route_lines.append(f"    {rid}[{_label(f'{r.id}: {m.type}')}]")
        if m.source is None:
            src = target("any", "any")
        else:
            src = target("group" if m.source in d.groups else "node", m.source)
        cond = "; ".join([*(f"{k}={v}" for k, v in sorted(m.headers.items())), *([m.xpath] if m.xpath else [])])
        edges.append(f"  {src} -->{'|' + _label(cond) + '|' if cond else ''} {rid}")
        for dest in r.to:
            kind = dest.kind
            name = "sender" if kind == "sender" else getattr(dest, kind)
            tid = target(kind, name)
            how = ", ".join(x for x in (f"map {dest.map}" if dest.map else "", f"as {dest.type}" if dest.type else "")
                            if x)
            edges.append(f"  {rid} -->{'|' + _label(how) + '|' if how else ''} {tid}")
        for s in r.steps:
            if s.kind == "wireTap":
                tid = target("group" if s.arg in d.groups else "node", s.arg)
                edges.append(f"  {rid} -.->|{_label('wireTap')}| {tid}")
    for a in ADAPTER_NAMES:
        target("adapter", a)
    lines = ["flowchart LR"]
    lines += [f"  {s}" for k, s in shapes.items() if not k.startswith("adapter_")]
    lines.append(f"  subgraph routes[{_label('routes')}]")
    lines += route_lines
    lines.append("  end")
    lines.append(f"  subgraph adapters[{_label('adapters')}]")
    lines += [f"    {s}" for k, s in shapes.items() if k.startswith("adapter_")]
    lines.append("  end")
    lines += edges
    return "\n".join(lines)


def routes_page(cfg: HubConfig, base: Path | None = None) -> str:
    """docs/routes.md: the graph and the table, generated; CI checks it is current."""
    rows = table(cfg, base)
    out = ["# Routes", "",
           "Generated from `routes/` and `config/` by `hub routes graph --format markdown -o docs/routes.md`;",
           "do not edit by hand (the test suite fails when this page is stale). `hub routes show` prints",
           "the same table in the terminal.", "",
           "```mermaid", graph_mermaid(cfg), "```", "",
           "| route | claims | from | when | steps | to | retry | defined at |",
           "|---|---|---|---|---|---|---|---|"]

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")

    for row in rows:
        cells = [cell(x) for x in (row.id, row.type, row.source, "; ".join(row.predicates) or "always",
                                   ", ".join(row.steps) or "-")]
        cells.append("<br>".join(cell(dest) for dest in row.destinations))
        cells += [cell(row.retry), cell(row.where)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def _nodes(n: int) -> str:
    return f"{n} node{'s' if n != 1 else ''}"


def _count(name: str, n: int) -> str:
    return f"{name} ({_nodes(n)})"
