"""Business flows that keep state across messages (orders, later knowledge sync).

A flow plugs into the hop at three points, all batched and all in the hub's one thread:
- `before_publish(batch, now)`: look at routed outcomes of its types before they are
  published; may refuse one with `Pipeline.refuse(outcome, error, now)` (e.g. a return
  order for an unknown or closed dispatch), using the store. A flow whose messages answer
  each other records its steps here, ahead of the publish and idempotently per message id
  (the orders flow does): with several lanes or hub processes a reply can otherwise reach
  another lane before the step it answers is recorded. Raising HubError (the store is
  down) holds the batch and retries it.
- `after_commit(batch, now)`: the batch is delivered; record what needs the delivery
  confirmed (and schedule timers, for a flow that does not write ahead).
- `on_timer(timer, now) -> list[Outgoing]`: a durable timer of this flow is due (a reply
  deadline, a re-send); returns what to publish. Timers fire once across restarts and
  workers (hub/timer_service.py claims them with a lease).
A flow may also offer `lookups` (name -> function) that resolvers get through
mappings.context.RouteContext.lookups, for routing that only its state can answer.
Flows are listed in one plain registry (hub/flows/registry.py), not registered on import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from hub.envelope import Outgoing
from hub.pipeline import Outcome
from hub.store import Timer


class Flow(Protocol):
    name: str
    types: frozenset[str]

    def before_publish(self, batch: list[Outcome], now: datetime) -> None: ...

    def after_commit(self, batch: list[Outcome], now: datetime) -> None: ...

    def on_timer(self, timer: Timer, now: datetime) -> list[Outgoing]: ...
