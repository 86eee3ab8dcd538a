"""Adapters' later steps of a journaled message (SMSC accepted, receipt, CRM answer), written off their loops.

Why a thread: an adapter's own work (submit_sm, a CRM call, acks) must never wait for, or
fail because of, the journal. The adapter hands over (message id, Hop) pairs and goes on;
this writer appends them with Store.append_hops in small transactions.
Why it waits for ids: the hop that routed a message journals it after its broker commit,
from its own journal thread (hub/journal_writer.py), so an adapter can be faster than the
message's journal row. Hops are written once their id has a delivered row (a read, no write
lock); the others wait, in order, until `grace_s` has passed, are then tried once, and what
still has no row is dropped with a warning naming the ids (a message sent straight to the
adapter, not through the hub, never gets a row).
Why small transactions: SQLite has one writer; `chunk` bounds how long this thread holds the
write lock that the adapter's own store writes and the hub's journal also need (append_hops
of 50 ids ~3 ms, 500 ~12 ms measured here).
Must not: decide anything, raise into the adapter, or grow without bound (`max_backlog`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from hub.store import Hop, Store

log = logging.getLogger("hub.hop_journal")


#: Seconds after its first hop at which a message without a journal row is looked up again.
RECHECK_S = (0.2, 1.0, 3.0, 10.0, 30.0)


class HopJournal:
    """`add()` from any thread; one daemon thread writes. `close()` flushes (bounded) and stops."""

    def __init__(self, store: Store, *, name: str, grace_s: float = 60.0, chunk: int = 50,
                 max_backlog: int = 200_000, gather_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.name = name
        self.grace_s = grace_s
        self.chunk = chunk
        self.max_backlog = max_backlog
        self.gather_s = gather_s
        self.clock = clock
        self._new: deque[tuple[str, Hop]] = deque()
        #: id -> [give up at, next check at, hops in order]: no journal row yet. Re-checked on a
        #: growing interval (RECHECK_S), not on every pass: an adapter sending thousands of
        #: messages a second that the hub never journals (sent straight to its queue) must not
        #: make this thread re-query all of them each time (that took the adapter's GIL).
        self._waiting: dict[str, list] = {}
        self._lookups = None  # the writer thread's HotPath, opened on its first pass
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.stats = {"written": 0, "dropped_no_row": 0, "dropped_backlog": 0, "failures": 0, "passes": 0}
        self._thread = threading.Thread(target=self._run, name=f"hop-journal-{name}", daemon=True)
        self._thread.start()

    def add(self, hops: Iterable[tuple[str, Hop]]) -> None:
        """Queue hops to append (never blocks, never raises)."""
        self._new.extend(hops)
        excess = len(self._new) - self.max_backlog
        if excess > 0:
            dropped = []
            for _ in range(excess):
                try:
                    dropped.append(self._new.popleft()[0])
                except IndexError:   # the writer took them meanwhile
                    break
            self.stats["dropped_backlog"] += excess
            log.error("hop journal backlog full; %d hops dropped", excess,
                      extra={"adapter": self.name, "message_ids": dropped[:20]})
        self._wake.set()

    def backlog(self) -> int:
        return len(self._new) + sum(len(w[2]) for w in list(self._waiting.values()))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`), then stop; hops still without a row are dropped."""
        deadline = self.clock() + timeout
        while self._new and self.clock() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(0.01)
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - self.clock()) + 1.0)
        if self._lookups is not None and not self._thread.is_alive():
            self._lookups.close()
        left = [m for m, _ in self._new] + list(self._waiting)
        if left:
            log.warning("hop journal stopped with %d hops unwritten (no journal row yet or store down)",
                        len(left), extra={"adapter": self.name, "message_ids": left[:20]})

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            self._wake.wait(0.5 if self._waiting else None)
            self._wake.clear()
            try:
                self._write_all()
                self.stats["passes"] += 1
                backoff = 0.2
            except Exception as exc:  # the store is down or broken: keep the hops, try again later
                self.stats["failures"] += 1
                log.error("hop journal write failed; %d hops kept for retry: %s", self.backlog(), exc,
                          extra={"adapter": self.name,
                                 "message_ids": [m for m, _ in list(self._new)[:20]]})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                self._wake.set()
            self._stop.wait(self.gather_s)  # gather: one pass per interval, not one per add()

    def _write_all(self) -> None:
        now = self.clock()
        arrived: dict[str, list[Hop]] = {}
        while self._new:
            m, h = self._new.popleft()
            if m in self._waiting:
                self._waiting[m][2].append(h)   # after that id's earlier hops
            else:
                arrived.setdefault(m, []).append(h)
        # Which ids to ask about now: the new ones, and waiting ones whose re-check is due.
        due = [m for m, w in self._waiting.items() if w[1] <= now]
        asking = list(arrived) + due
        # A read (no write lock) tells which ids have a journal row: only those are written now.
        if self._lookups is None:
            self._lookups = self.store.hot_path()  # this writer thread's own connection
        known = self._lookups.known_message_ids(asking) if asking else set()
        ready: list[tuple[str, Hop]] = []
        for m in due:
            w = self._waiting[m]
            if m in known or w[0] <= now:
                ready += [(m, h) for h in w[2]]
                del self._waiting[m]
            else:
                age = now - (w[0] - self.grace_s)
                w[1] = now + next((r for r in RECHECK_S if r > age), RECHECK_S[-1])
        for m, hops in arrived.items():
            if m in known:
                ready += [(m, h) for h in hops]
            else:
                self._waiting[m] = [now + self.grace_s, now + RECHECK_S[0], hops]
        self._trim_waiting()
        done = 0
        missing: set[str] = set()
        try:
            while done < len(ready):
                part = ready[done:done + self.chunk]
                missing |= self.store.append_hops(part)
                done += len(part)
                if done < len(ready):
                    self._stop.wait(0.002)   # let the adapter's and the hub's writers have the lock
        except Exception:
            # Put back what was not written, in order, before newer arrivals.
            self._new.extendleft(reversed(ready[done:]))
            raise
        self.stats["written"] += sum(1 for m, _ in ready if m not in missing)
        if missing:
            self.stats["dropped_no_row"] += sum(1 for m, _ in ready if m in missing)
            log.warning("journal has no row for %d message(s) after %.0f s; their %s hops are not traced",
                        len(missing), self.grace_s, self.name,
                        extra={"adapter": self.name, "message_ids": sorted(missing)[:20]})

    def _trim_waiting(self) -> None:
        excess = len(self._waiting) - self.max_backlog
        if excess <= 0:
            return
        dropped = []
        for m in list(self._waiting)[:excess]:   # oldest first (insertion order)
            dropped.append(m)
            del self._waiting[m]
        self.stats["dropped_backlog"] += len(dropped)
        log.error("hop journal: %d messages waited for their journal row beyond the backlog; dropped",
                  len(dropped), extra={"adapter": self.name, "message_ids": dropped[:20]})
