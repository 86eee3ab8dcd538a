"""Writes the message journal off the hop's event loop.

Why a thread: a journal write is a database transaction (SQLite fsyncs at checkpoints,
PostgreSQL is a network round trip); done inside the broker loop, its slow moments stall
every lane and show up as latency spikes. The hop hands entries over and goes on; until
an entry is written, the hop keeps its message id in memory so the idempotent-receiver
check still sees it (`pending_types`). A failed write is kept and retried with backoff:
the messages are delivered already, only their record waits.
Must not: decide anything about messages; it only records.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from hub.store import FINAL_STATUSES, JournalEntry, Store
from protocols.errors import HubError

log = logging.getLogger("hub.journal")


class JournalWriter:
    def __init__(self, store: Store, *, max_batch: int = 2000, gather_s: float = 0.02) -> None:
        self.store = store
        self._hot = store.hot_path()  # used by the writer thread only
        self.max_batch = max_batch
        #: After the first entries arrive, wait this long for more before writing: at low rates
        #: every write would otherwise be a transaction of a few rows, and the per-transaction
        #: cost (Python and SQLite) is what takes the CPU, and with it the hop's GIL.
        self.gather_s = gather_s
        self._q: queue.Queue[list[JournalEntry] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}   # message id -> entries not yet written
        self._final: dict[str, str] = {}     # ids among them recorded as delivered -> type (dedupe must see them)
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def submit(self, entries: list[JournalEntry]) -> None:
        if not entries:
            return
        with self._lock:
            for e in entries:
                self._pending[e.message_id] = self._pending.get(e.message_id, 0) + 1
                if e.status in FINAL_STATUSES:
                    self._final.setdefault(e.message_id, e.type)
        self._q.put(entries)

    def pending_types(self, ids: set[str]) -> dict[str, str]:
        """Which of these ids are delivered but not yet written (a retrying one is not), with their type."""
        with self._lock:
            return {m: self._final[m] for m in ids if m in self._final}

    def backlog(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait (bounded) until everything submitted so far is written; used on stop."""
        deadline = time.monotonic() + timeout
        while self.backlog() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.backlog() == 0

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.2
        while True:
            item = self._q.get()
            if item is None:
                self._hot.close()
                return
            batch = list(item)
            # Sleep through the gathering time instead of waking for every submit: each wake-up
            # is a context switch and a GIL hand-off taken from the hop's event loop.
            time.sleep(self.gather_s)
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.extend(nxt)
            while batch:
                try:
                    self._hot.record(batch)
                    backoff = 0.2
                    break
                except HubError as exc:
                    log.error("journal write failed; %d entries kept for retry: %s", len(batch), exc)
                    threading.Event().wait(backoff)
                    backoff = min(backoff * 2, 10.0)
            with self._lock:
                for e in batch:
                    n = self._pending.get(e.message_id, 0) - 1
                    if n <= 0:
                        self._pending.pop(e.message_id, None)
                        self._final.pop(e.message_id, None)
                    else:
                        self._pending[e.message_id] = n
