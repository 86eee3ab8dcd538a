"""The hop's held-connection store calls (hub/store/hot_path.py) on SQLite and PostgreSQL.

They must behave exactly like the Store's own calls (same rows, same hop numbering, same
dedupe answers), leave no transaction open, roll back a failed batch whole, and come back
by themselves after the database was unavailable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from store_support import sqlite_write_lock, terminate_backend

import hub.store.engine as store_engine
from hub.store import Hop, JournalEntry, JournalStatus, open_store
from protocols.errors import ReasonCode, TransientFailure

T0 = datetime(2026, 5, 1, 8, 0, 0, 250000, tzinfo=UTC)


def entry(mid: str, status=JournalStatus.delivered, seconds: float = 0, dest: str = "node.11") -> JournalEntry:
    at = T0 + timedelta(seconds=seconds)
    return JournalEntry(message_id=mid, type="notice.text", source="44", status=status, destinations=[dest],
                        at=at, hops=[Hop(destination=dest, status="published", at=at)])


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def test_hot_path_writes_and_reads_what_the_store_does(store):
    hot = store.hot_path()
    try:
        hot.record([entry("a"), entry("b", JournalStatus.retrying)])
        hot.record([entry("b", seconds=5)])  # the retry delivered later: its second hop is numbered 2
        store.record([entry("c")])
        assert hot.known_message_ids(["a", "b", "c", "d"]) == {"a", "b", "c"}
        assert store.known_message_ids(["a", "b", "c", "d"]) == {"a", "b", "c"}
        b = store.get("b")
        assert b.status is JournalStatus.delivered
        assert [h.at for h in b.hops] == [T0, T0 + timedelta(seconds=5)]
        assert b.created_at == T0
    finally:
        hot.close()


def test_a_failed_batch_is_rolled_back_whole_and_the_connection_stays_usable(store):
    hot = store.hot_path()
    naive = entry("zz-naive")
    # A hop time that slipped past the constructor's check: the journal rows are written, then
    # the hops statement fails, and the rows must go with it.
    object.__setattr__(naive.hops[0], "at", datetime(2026, 5, 1, 8, 0))
    try:
        with pytest.raises(ValueError, match="naive"):
            hot.record([entry("first"), naive])  # "first" sorts before and is written before the failure
        assert store.get("first") is None
        hot.record([entry("second")])
        assert hot.known_message_ids(["first", "second"]) == {"second"}
    finally:
        hot.close()


def test_a_locked_sqlite_is_transient_and_the_hot_path_recovers(tmp_path, monkeypatch):
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "hub.sqlite3"
    store = open_store(f"sqlite:///{path}")
    hot = store.hot_path()
    try:
        with sqlite_write_lock(path) as release:
            with pytest.raises(TransientFailure) as info:
                hot.record([entry("m1")])
            assert info.value.reason is ReasonCode.STORE_UNAVAILABLE
            assert "locked" in info.value.detail
            assert hot.known_message_ids(["m1"]) == set()  # WAL: readers are not blocked
            release()
            hot.record([entry("m1")])
        assert store.known_message_ids(["m1"]) == {"m1"}
    finally:
        hot.close()
        store.close()


@pytest.mark.postgres
def test_postgresql_look_ups_leave_no_transaction_open_and_survive_a_killed_session(pg_schema_url):
    store = open_store(pg_schema_url)
    hot = store.hot_path()
    try:
        hot.record([entry("p1")])
        assert hot.known_message_ids(["p1", "p2"]) == {"p1"}
        pid = hot._connection().info.backend_pid
        with store.engine.connect() as conn:
            state = conn.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).scalar()
            assert state == "idle"  # not "idle in transaction": no snapshot or lock held between batches
        terminate_backend(store, pid)
        with pytest.raises(TransientFailure) as info:
            hot.known_message_ids(["p1"])
        assert info.value.reason is ReasonCode.STORE_UNAVAILABLE
        assert hot.known_message_ids(["p1"]) == {"p1"}  # a new connection, by itself
        hot.record([entry("p2")])
        assert store.known_message_ids(["p1", "p2"]) == {"p1", "p2"}
    finally:
        hot.close()
        store.close()


@pytest.mark.postgres
def test_a_held_write_connection_recovers_after_its_session_was_killed(pg_schema_url):
    store = open_store(pg_schema_url)
    held = store.held()
    try:
        with held.transaction() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS held_probe (n int)"))
            conn.execute(text("INSERT INTO held_probe VALUES (1)"))
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        terminate_backend(store, pid)
        with pytest.raises(TransientFailure) as info, held.transaction() as conn:
            conn.execute(text("INSERT INTO held_probe VALUES (2)"))
        assert info.value.reason is ReasonCode.STORE_UNAVAILABLE
        with held.transaction() as conn:  # a new connection, by itself
            conn.execute(text("INSERT INTO held_probe VALUES (3)"))
        with store.engine.connect() as other:
            assert [r[0] for r in other.execute(text("SELECT n FROM held_probe ORDER BY n"))] == [1, 3]
    finally:
        held.close()
        store.close()


def test_a_held_write_connection_rolls_back_a_failed_transaction(store):
    held = store.held()
    try:
        with pytest.raises(RuntimeError), held.transaction() as conn:
            conn.execute(text("CREATE TABLE held_probe (n int)"))
            raise RuntimeError("the caller failed half-way")
        with held.transaction() as conn:
            conn.execute(text("CREATE TABLE held_probe (n int)"))  # the first one was rolled back
            conn.execute(text("INSERT INTO held_probe VALUES (7)"))
        with store.engine.connect() as other:
            assert other.execute(text("SELECT n FROM held_probe")).scalar() == 7
    finally:
        held.close()
