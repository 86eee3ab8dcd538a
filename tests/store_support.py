"""Ways to make the state store misbehave on purpose, shared by the store tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text


@contextmanager
def sqlite_write_lock(path: Path) -> Iterator[Callable[[], None]]:
    """Another process's writer holding the SQLite file's write lock (BEGIN IMMEDIATE) until
    the returned release() is called or the block ends."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    def release() -> None:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
    try:
        yield release
    finally:
        release()
        blocker.close()


def terminate_backend(store, pid: int) -> None:
    """Kill one PostgreSQL session from another (as a database restart or an admin would)."""
    with store.engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
