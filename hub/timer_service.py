"""Durable timers fired once: reply deadlines, warnings, re-sends of unreceipted orders.

Owns: claiming due timers from the store with a lease (so with several hub processes each
timer is fired by one of them, and a timer claimed by a crashed process is fired by
another after the lease), asking the owning flow what to publish, publishing it with
publisher confirms, and only then marking the timer fired.
The window between a confirmed publish and the mark is the only place a timer can fire
twice (a crash exactly there); alarm message ids are deterministic so receivers and the
journal can tell.
Must not: decide what a timer means (flows do) or read the wall clock directly (the clock
is injected, so tests move time instead of sleeping).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from hub.job_bus import Bus
from hub.settings import Settings
from hub.store import Store

log = logging.getLogger("hub.timers")


class TimerService:
    def __init__(self, settings: Settings, store: Store, flows: list, *, owner: str,
                 clock: Callable[[], datetime] | None = None, interval_s: float = 1.0,
                 lease_s: float = 60.0) -> None:
        self.settings = settings
        self.store = store
        self.flows = {f.name: f for f in flows}
        self.owner = owner
        self.clock = clock or (lambda: datetime.now(UTC))
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.fired = 0
        self._stop = threading.Event()
        self.bus = Bus(settings, queue=None, name=f"cs-hub timers {owner}")  # publishes only

    def tick(self, now: datetime | None = None) -> int:
        """Fire every due timer once; returns how many fired."""
        now = now or self.clock()
        count = 0
        while True:
            timers = self.store.claim_due(now, self.owner, limit=100, lease_s=self.lease_s)
            if not timers:
                return count
            done = []
            for t in timers:
                flow = self.flows.get((t.payload or {}).get("flow", ""))
                if flow is None:
                    log.error("timer %s names no known flow; marked fired so it stops", t.key)
                    done.append(t.key)
                    continue
                outs = flow.on_timer(t, now)
                self.bus.publish(outs)   # confirmed, or TransientFailure: the timer is not marked fired
                done.append(t.key)
                log.info("timer fired", extra={"timer": t.key, "published": len(outs)})
            self.store.mark_fired(done, owner=self.owner)
            count += len(done)
            self.fired += len(done)

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("timer pass failed; retried at the next interval")
        self.bus.close()

    def close(self) -> None:
        """Close the broker connection (for a service ticked by hand, not run())."""
        self.bus.close()

    def stop(self) -> None:
        self._stop.set()
