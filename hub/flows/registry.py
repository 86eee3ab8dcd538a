"""The flows a hub process runs, in one plain list (grep finds them all)."""

from __future__ import annotations

from collections.abc import Callable

from hub.flows.announcements import AnnouncementFlow
from hub.flows.knowledge import KnowledgeFlow
from hub.flows.orders import OrderFlow
from hub.settings import Settings
from hub.store import Store


def build_flows(settings: Settings, store: Store, pipeline_ref) -> list:
    """Instantiate every flow; `pipeline_ref()` returns the current Pipeline (it changes on reload)."""
    return [
        OrderFlow(settings, store, pipeline_ref),  # electronic dispatch and return orders (docs/orders.md)
        KnowledgeFlow(settings, store, pipeline_ref),  # knowledge sharing and version sync (docs/knowledge.md)
        AnnouncementFlow(settings, store, pipeline_ref),  # announcements (docs/knowledge.md part B)
    ]


def flow_lookups(flows: list) -> dict[str, Callable]:
    """The state lookups the flows offer to resolvers (mappings.context.RouteContext.lookups)."""
    lookups: dict[str, Callable] = {}
    for flow in flows:
        for name, fn in getattr(flow, "lookups", {}).items():
            if name in lookups:
                raise ValueError(f"flows {flow.name} and another both offer the lookup {name!r}")
            lookups[name] = fn
    return lookups
