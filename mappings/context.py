"""What a check, mapping or resolver may know besides the payload: passed in, never looked up."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RouteContext:
    sender: str                       # company code of the authenticated sender
    hq: str                           # HQ's company code
    nodes: frozenset[str]             # every configured node code
    groups: dict[str, list[str]]      # group name -> node codes
    now: datetime                     # the time of processing (UTC), for rules that need it
    tables: dict[str, Any] = field(default_factory=dict)  # data tables (e.g. "segments")
    # State a flow answers for, by name (e.g. "order_receiver": the company a dispatch order
    # went to, which a ReturnReceipt does not name). Functions passed in by the hub; empty
    # when no flow runs (a resolver that needs one refuses the message and says so).
    lookups: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
