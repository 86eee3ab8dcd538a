"""Content-based router: which route claims a message, and where the message goes.

Owns: the compiled routing table (routes indexed by message type, so matching costs the
same with 10 or 1,000 routes), predicate evaluation (source, headers, XPath), running a
route's steps and resolving its destinations to delivery queues.
Must not: talk to the broker or the store; it returns what to publish.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from hub.configuration import HubConfig, LoadedRoute
from mappings import registry
from mappings.context import RouteContext
from protocols import schemas
from protocols.errors import ReasonCode, RejectedMessage


@dataclass
class Delivery:
    """One output of a routed message: a queue, the type to deliver as, and the tree."""

    queue: str            # node.CODE or adapter.NAME
    node: str | None      # node code when the target is a node
    type: str
    root: object          # lxml element (shared between deliveries unless a mapping made a new one)


class CompiledRoute:
    def __init__(self, lr: LoadedRoute, cfg: HubConfig) -> None:
        self.loaded = lr
        self.route = r = lr.route
        self.id = r.id
        m = r.from_
        self.type = m.type
        self.sources = frozenset(cfg.directory.members(m.source)) if m.source else None
        self.headers = dict(m.headers)
        self.xpath = etree.XPath(f"boolean({m.xpath})", namespaces=cfg.catalogue.ns) if m.xpath else None
        self.steps = [(s.kind, s.arg) for s in r.steps]
        self.max_attempts = r.retry.max_attempts

    def matches(self, sender: str, headers: dict, root) -> bool:
        if self.sources is not None and sender not in self.sources:
            return False
        for k, v in self.headers.items():
            if str(headers.get(k)) != v:
                return False
        return True


class RouteTable:
    """Routes of one configuration version, ready to match."""

    def __init__(self, cfg: HubConfig) -> None:
        self.cfg = cfg
        self.version = cfg.version
        self.by_type: dict[str, tuple[list[CompiledRoute], list[CompiledRoute]]] = {}
        self.by_id: dict[str, CompiledRoute] = {}
        for lr in cfg.routes:
            cr = CompiledRoute(lr, cfg)
            self.by_id[cr.id] = cr
            specific, fallback = self.by_type.setdefault(cr.type, ([], []))
            (specific if cr.xpath is not None else fallback).append(cr)
        d = cfg.directory
        self._nodes = frozenset(d.by_code)
        self._groups = {g: list(m) for g, m in d.groups.items()}

    def context(self, sender: str, now, lookups=None) -> RouteContext:
        return RouteContext(sender=sender, hq=self.cfg.directory.hq.code, nodes=self._nodes,
                            groups=self._groups, now=now, tables=self.cfg.tables, lookups=lookups or {})

    def match(self, type_name: str, sender: str, headers: dict, root) -> CompiledRoute:
        specific, fallback = self.by_type.get(type_name, ((), ()))
        hits = [r for r in specific if r.matches(sender, headers, root) and r.xpath(root)]
        if not hits:
            hits = [r for r in fallback if r.matches(sender, headers, root)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise RejectedMessage(
                f"No route accepts a {type_name} message from node {sender}; ask the hub's integrators "
                "to add one or check the message type.", reason=ReasonCode.NO_ROUTE, value=type_name)
        raise RejectedMessage(
            f"Routes {', '.join(r.id for r in hits)} all claim this {type_name} message; the configuration "
            "must be fixed.", reason=ReasonCode.ROUTE_AMBIGUOUS, value=type_name)

    def run(self, route: CompiledRoute, root, ctx: RouteContext) -> tuple[object, list[Delivery], dict]:
        """Apply the steps, then resolve destinations. Returns (root, deliveries, extra headers)."""
        extra_headers: dict = {}
        taps: list[str] = []
        for kind, arg in route.steps:
            if kind == "validate":
                schemas.validate(arg, root)
            elif kind == "check":
                registry.CHECKS[arg](root, ctx)
            elif kind == "map":
                root = registry.MAPPINGS[arg](root, ctx)
            elif kind == "enrich":
                extra_headers.update(registry.ENRICHERS[arg](root, ctx))
            elif kind == "wireTap":
                taps.append(arg)
        deliveries: list[Delivery] = []
        seen: set[str] = set()
        directory = self.cfg.directory

        def add(queue: str, node: str | None, dest_type: str, tree) -> None:
            if queue not in seen:
                seen.add(queue)
                deliveries.append(Delivery(queue, node, dest_type, tree))

        for d in route.route.to:
            tree = registry.MAPPINGS[d.map](root, ctx) if d.map else root
            dest_type = d.type or route.type
            if d.adapter:
                add(f"adapter.{d.adapter}", None, dest_type, tree)
                continue
            if d.node:
                codes = [d.node]
            elif d.group:
                codes = [c for c in directory.members(d.group) if c != ctx.sender]
            elif d.sender:
                codes = [ctx.sender]
            else:
                codes = registry.RESOLVERS[d.resolve](root, ctx)
            for code in codes:
                node = directory.by_code.get(code)
                if node is None:
                    raise RejectedMessage(f"Destination {code!r} is not a configured node.",
                                          reason=ReasonCode.UNKNOWN_NODE, value=code)
                if node.enabled:
                    add(node.queue, code, dest_type, tree)
        for tap in taps:
            for code in directory.members(tap):
                if code != ctx.sender:
                    add(directory.by_code[code].queue, code, route.type, root)
        if not deliveries:
            raise RejectedMessage(f"Route {route.id} produced no destination for this message.",
                                  reason=ReasonCode.NO_DESTINATION)
        return root, deliveries, extra_headers
