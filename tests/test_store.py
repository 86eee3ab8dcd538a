"""The state store on both databases: journal upserts, dedupe, durable timers, restarts.

Every test runs on SQLite (a file under tmp_path) and on PostgreSQL (a schema of its own in
a database created for this run and dropped after it). PostgreSQL must be running: the tests fail, never skip,
when it is not, so a green run always means both databases were exercised.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from store_support import sqlite_write_lock

import hub.store.engine as store_engine
from hub.store import (
    Hop,
    JournalEntry,
    JournalStatus,
    Store,
    open_store,
    schedule_timers,
)
from protocols.errors import ConfigError, ReasonCode, TransientFailure

T0 = datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def second_store(store_url, store):
    """Another Store on the same database, as a second hub worker process would have."""
    s = open_store(store_url)
    yield s
    s.close()


def entry(message_id: str, status: JournalStatus = JournalStatus.received, when: float = 0, **kw) -> JournalEntry:
    kw.setdefault("type", "WorkOrder")
    kw.setdefault("source", "44")
    return JournalEntry(message_id=message_id, status=status, at=at(when), **kw)


# ---------------------------------------------------------------- journal


def test_record_and_get_round_trip_appends_hops(store: Store):
    store.record([
        entry("m1", business_key="WO-1", correlation_id="c1", destinations=["11", "12"], route_id="r1",
              config_version="v7", hops=[Hop("11", "sent", at(1)), Hop("12", "sent", at(1), "queued")]),
    ])
    store.record([
        entry("m1", JournalStatus.retrying, 5, destinations=["12"], attempts=1, reason_code="PARTNER_TIMEOUT",
              error="Partner 12 did not answer within 30 s.", hops=[Hop("12", "timeout", at(5))]),
    ])
    store.record([entry("m1", JournalStatus.delivered, 9, destinations=["12"], attempts=2,
                        hops=[Hop("12", "acked", at(9))])])

    rec = store.get("m1")
    assert rec is not None
    assert rec.status is JournalStatus.delivered
    assert (rec.type, rec.source, rec.business_key, rec.correlation_id) == ("WorkOrder", "44", "WO-1", "c1")
    assert rec.destinations == ("12",)
    assert rec.attempts == 2 and rec.error is None and rec.reason_code is None
    assert rec.route_id is None and rec.config_version is None  # overwritten by the last entry
    assert [(h.destination, h.status, h.at, h.detail) for h in rec.hops] == [
        ("11", "sent", at(1), None),
        ("12", "sent", at(1), "queued"),
        ("12", "timeout", at(5), None),
        ("12", "acked", at(9), None),
    ]
    assert rec.created_at == at(0) and rec.created_at.tzinfo is UTC
    assert store.get("nope") is None


def test_several_entries_of_one_message_in_one_batch_apply_in_order(store: Store):
    store.record([
        entry("b2", hops=[Hop("11", "sent", at(0))]),
        entry("a1", JournalStatus.delivered),
        entry("b2", JournalStatus.delivered, 1, hops=[Hop("11", "acked", at(1))]),
    ])
    rec = store.get("b2")
    assert rec.status is JournalStatus.delivered
    assert [h.status for h in rec.hops] == ["sent", "acked"]


def test_concurrent_records_of_one_message_number_hops_without_gaps(store: Store, second_store: Store):
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(s: Store, who: str) -> None:
        try:
            barrier.wait(10)
            for i in range(15):
                s.record([entry("m1", JournalStatus.retrying, i, hops=[Hop(who, f"try{i}", at(i))]),
                          entry(f"{who}-{i}", hops=[Hop(who, "sent", at(i))])])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, w)) for s, w in ((store, "a"), (second_store, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    hops = store.get("m1").hops
    assert len(hops) == 30
    for who in ("a", "b"):  # each writer's hops keep their own order
        assert [h.status for h in hops if h.destination == who] == [f"try{i}" for i in range(15)]


def test_upsert_keeps_created_at_and_counts_duplicates(store: Store):
    store.record([entry("m1", JournalStatus.received, 0)])
    store.record([entry("m1", JournalStatus.delivered, 3, attempts=1)])
    store.record([entry("m1", JournalStatus.duplicate, 7, hops=[Hop("-", "duplicate", at(7))])])
    store.record([entry("m1", JournalStatus.duplicate, 8)])
    rec = store.get("m1")
    assert rec.created_at == at(0)
    assert rec.updated_at == at(8)
    assert rec.status is JournalStatus.delivered  # a duplicate never overwrites the original outcome
    assert rec.attempts == 1
    assert rec.duplicates == 2
    assert [h.status for h in rec.hops] == ["duplicate"]

    store.record([entry("m2", JournalStatus.duplicate, 1)])  # first sight of an id judged duplicate
    assert store.get("m2").status is JournalStatus.duplicate and store.get("m2").duplicates == 0


def test_known_message_ids_only_final_statuses(store: Store):
    statuses = {f"id-{s}": s for s in JournalStatus}
    store.record([entry(mid, s) for mid, s in statuses.items()])
    asked = [*statuses, "never-seen", "id-delivered"]
    # a refused or dead-lettered id may be sent again after a fix: not a duplicate
    assert store.known_message_ids(asked) == {"id-delivered", "id-duplicate"}
    assert store.known_message_ids([]) == set()


def test_known_message_ids_chunks_long_lists(store: Store):
    ids = [f"m{i:05d}" for i in range(1_200)]
    for start in range(0, len(ids), 400):
        store.record([entry(m, JournalStatus.delivered) for m in ids[start:start + 400]])
    asked = ids[::2] + [f"x{i}" for i in range(700)]
    assert store.known_message_ids(asked) == set(ids[::2])


def test_claim_business_keys_single_owner_across_two_stores(store: Store, second_store: Store):
    assert store.claim_business_keys([("WO-1", "m1"), ("WO-2", "m2")]) == set()
    assert second_store.claim_business_keys([("WO-1", "m9"), ("WO-3", "m3")]) == {"WO-1"}
    assert store.claim_business_keys([("WO-1", "m1")]) == set()  # the owner's redelivery is no duplicate
    assert second_store.claim_business_key_owners([("WO-1", "m9")]) == {"WO-1": "m1"}


def test_claim_business_keys_race_has_exactly_one_winner_per_key(store: Store, second_store: Store):
    keys = [f"WO-{i}" for i in range(300)]
    barrier = threading.Barrier(2)
    results: dict[str, set[str]] = {}
    errors: list[BaseException] = []

    def claim(s: Store, who: str) -> None:
        try:
            barrier.wait()
            dups: set[str] = set()
            for start in range(0, len(keys), 50):  # many small batches interleave more
                dups |= s.claim_business_keys([(k, f"{who}-{k}") for k in keys[start:start + 50]])
            results[who] = dups
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(s, w)) for s, w in ((store, "a"), (second_store, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    won_a, won_b = set(keys) - results["a"], set(keys) - results["b"]
    assert won_a.isdisjoint(won_b)
    assert won_a | won_b == set(keys)
    owners = store.claim_business_key_owners([(k, "probe") for k in keys])
    assert {k for k, m in owners.items() if m.startswith("a-")} == won_a


def test_claim_business_keys_repeated_key_in_one_call(store: Store):
    # The first pair owns the key; it is not reported, or the caller would drop the original too.
    assert store.claim_business_keys([("WO-1", "a"), ("WO-1", "b")]) == set()
    assert store.claim_business_key_owners([("WO-1", "b")]) == {"WO-1": "a"}


def test_release_business_keys_only_by_their_owner(store: Store):
    # A message claimed its key and was then refused before publishing: its corrected re-send
    # must not be a duplicate. Another message's claim is never released.
    store.claim_business_keys([("WO-1", "a"), ("WO-2", "b")])
    assert store.release_business_keys([("WO-1", "a"), ("WO-2", "not-the-owner")]) == 1
    assert store.claim_business_keys([("WO-1", "c"), ("WO-2", "c")]) == {"WO-2"}


def test_search_by_business_key_and_correlation_id(store: Store):
    store.record([
        entry("m1", JournalStatus.delivered, 1, business_key="WO-7", correlation_id="c-1"),
        entry("m2", JournalStatus.duplicate, 2, business_key="WO-7"),
        entry("m3", JournalStatus.delivered, 3, business_key="WO-8", correlation_id="m1"),
    ])
    assert [r.message_id for r in store.search("WO-7", 10)] == ["m2", "m1"]
    assert [r.message_id for r in store.search("WO-7", 1)] == ["m2"]
    assert [r.message_id for r in store.search("c-1", 10)] == ["m1"]
    assert {r.message_id for r in store.search("m1", 10)} == {"m1", "m3"}  # id of one, correlation of other
    assert store.search("WO", 10) == []  # exact match only


def test_count_by_status(store: Store):
    store.record([entry("a", JournalStatus.delivered), entry("b", JournalStatus.delivered),
                  entry("c", JournalStatus.dead_lettered), entry("d")])
    assert store.count_by_status() == {"delivered": 2, "dead_lettered": 1, "received": 1}


def test_naive_datetimes_are_refused(store: Store):
    with pytest.raises(ValueError, match="timezone-aware"):
        JournalEntry("m", "T", "44", JournalStatus.received, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.schedule("t", datetime(2025, 1, 1), {})


# ---------------------------------------------------------------- timers


def test_schedule_twice_keeps_the_original_unless_replaced(store: Store):
    assert store.schedule("order:1:reply", at(60), {"order": 1}) is True
    assert store.schedule("order:1:reply", at(999), {"order": "other"}) is False
    t = store.get_timer("order:1:reply")
    assert (t.due_at, t.payload) == (at(60), {"order": 1})

    assert store.schedule("order:1:reply", at(120), {"order": 2}, replace=True) is True
    t = store.get_timer("order:1:reply")
    assert (t.due_at, t.payload) == (at(120), {"order": 2})
    assert store.claim_due(at(119), "w1") == []
    assert [t.key for t in store.claim_due(at(120), "w1")] == ["order:1:reply"]


def test_schedule_timers_in_the_callers_transaction(store: Store):
    # A flow stores its state and the timers it needs in one transaction; existing keys stay.
    store.schedule("o/1/final", at(500), {"keep": True})
    with store.transaction(write=True) as conn:
        schedule_timers(conn, [("o/1/first", at(60), {"kind": "first"}), ("o/1/final", at(90), {"keep": False})])
    assert store.get_timer("o/1/final").payload == {"keep": True}
    assert [t.key for t in store.claim_due(at(60), "w")] == ["o/1/first"]
    with pytest.raises(RuntimeError), store.transaction(write=True) as conn:
        schedule_timers(conn, [("o/2/first", at(60), {})])
        raise RuntimeError("the flow's write failed")
    assert store.get_timer("o/2/first") is None


def test_cancel(store: Store):
    store.schedule("k", at(0), {})
    assert store.cancel("k") is True
    assert store.cancel("k") is False
    assert store.claim_due(at(10), "w") == []


def test_claim_due_concurrently_claims_each_timer_once(store: Store, second_store: Store):
    n = 150
    for i in range(n):
        store.schedule(f"t{i:03d}", at(i % 10), {"i": i})
    store.schedule("future", at(3600), {})
    start, first_done = threading.Barrier(2), threading.Barrier(2)
    claimed: dict[str, list[str]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []

    def worker(s: Store, owner: str) -> None:
        try:
            start.wait(10)
            first = True
            while batch := s.claim_due(at(60), owner, limit=7, lease_s=300):
                claimed[owner].extend(t.key for t in batch)
                assert all(t.claimed_by == owner and t.lease_until == at(360) for t in batch)
                if first:  # make sure both really compete instead of one draining the table
                    first_done.wait(10)
                    first = False
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, o)) for s, o in ((store, "w1"), (second_store, "w2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    everything = claimed["w1"] + claimed["w2"]
    assert len(everything) == len(set(everything)) == n
    assert "future" not in everything
    assert claimed["w1"] and claimed["w2"], "both workers should have got some timers"


def test_claim_due_returns_oldest_first_with_payload(store: Store):
    store.schedule("late", at(5), {"x": [1, 2]})
    store.schedule("early", at(1), {"y": "z"})
    got = store.claim_due(at(10), "w", limit=1, lease_s=30)
    assert [(t.key, t.payload, t.claims) for t in got] == [("early", {"y": "z"}, 1)]


def test_fired_timers_never_return_and_expired_leases_are_reclaimed(store: Store, second_store: Store):
    for k in ("a", "b", "c"):
        store.schedule(k, at(0), {"k": k})
    first = store.claim_due(at(1), "w1", limit=10, lease_s=10)
    assert [t.key for t in first] == ["a", "b", "c"]
    assert store.mark_fired(["a"], owner="w1") == {"a"}

    assert second_store.claim_due(at(5), "w2", limit=10, lease_s=10) == []  # leases still held

    # w1 "crashed": its leases on b and c expire at t=11, then w2 takes them over.
    retaken = second_store.claim_due(at(11), "w2", limit=10, lease_s=10)
    assert [(t.key, t.claims) for t in retaken] == [("b", 2), ("c", 2)]
    assert store.mark_fired(["b"], owner="w1") == set()  # w1 learns it lost the lease
    assert second_store.mark_fired(["b", "c", "a"], owner="w2") == {"b", "c"}

    assert store.claim_due(at(10_000), "w3", limit=10, lease_s=10) == []
    assert store.mark_fired(["a"]) == set()  # already fired
    assert store.get_timer("a").fired_at is not None


# ---------------------------------------------------------------- durability and errors


def test_restart_keeps_everything(store_url):
    s = open_store(store_url)
    s.record([entry("m1", JournalStatus.delivered, business_key="WO-1", hops=[Hop("11", "acked", at(1))])])
    s.claim_business_keys([("WO-1", "m1")])
    s.schedule("t1", at(100), {"order": 1})
    s.schedule("t2", at(0), {})
    s.claim_due(at(1), "w1", limit=10, lease_s=10)
    s.mark_fired(["t2"], owner="w1")
    s.close()

    s = open_store(store_url)
    try:
        assert s.get("m1").hops[0].status == "acked"
        assert s.known_message_ids(["m1"]) == {"m1"}
        assert s.claim_business_keys([("WO-1", "m2")]) == {"WO-1"}
        assert [r.message_id for r in s.search("WO-1", 5)] == ["m1"]
        assert s.claim_due(at(50), "w2") == []
        assert [t.key for t in s.claim_due(at(100), "w2")] == ["t1"]
        with s.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM schema_version")).scalars().all() == [1]
    finally:
        s.close()


def test_newer_schema_version_is_refused(store_url):
    s = open_store(store_url)
    with s.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    s.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(store_url)


def test_unreachable_database_is_a_transient_store_failure():
    with pytest.raises(TransientFailure) as info:
        open_store("postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert info.value.reason is ReasonCode.STORE_UNAVAILABLE
    assert info.value.retryable


def test_sqlite_pragmas(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'hub.sqlite3'}")
    try:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        s.close()


def test_locked_sqlite_is_a_transient_store_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "hub.sqlite3"
    s = open_store(f"sqlite:///{path}")
    try:
        with sqlite_write_lock(path):  # another process holding the write lock
            with pytest.raises(TransientFailure) as info:
                s.record([entry("m1")])
            assert info.value.reason is ReasonCode.STORE_UNAVAILABLE
            assert "locked" in info.value.detail
            assert s.known_message_ids(["m1"]) == set()  # readers are not blocked in WAL mode
    finally:
        s.close()


# ---------------------------------------------------------------- retention


def test_prune_removes_old_final_rows_with_their_hops_and_keeps_unfinished_work(store: Store):
    old, new = 10, 10_000
    store.record([entry(f"d{i}", JournalStatus.delivered, old, hops=[Hop("11", "published", at(old))])
                  for i in range(7)])
    store.record([entry("dl", JournalStatus.dead_lettered, old, hops=[Hop("hub.dlq", "dead_lettered", at(old))]),
                  entry("rt", JournalStatus.retrying, old, hops=[Hop("11", "retry", at(old))]),
                  entry("rc", JournalStatus.received, old),
                  entry("fresh", JournalStatus.delivered, new, hops=[Hop("11", "published", at(new))])])
    store.schedule("fired", at(old), {})
    store.mark_fired(["fired"], at=at(old))
    store.schedule("pending", at(old), {})
    cut = at(1000)
    assert store.count_prunable(cut)["journal"] == 8
    seen = []
    pruned = store.prune(cut, batch=3, progress=lambda p: seen.append(p.journal))
    assert pruned.journal == 8 and pruned.hops == 8 and pruned.timers == 1
    assert pruned.by_status == {"delivered": 7, "dead_lettered": 1}
    assert seen[:3] == [3, 6, 8]  # progress after every batch
    assert store.get("d0") is None and store.get("dl") is None
    for kept in ("rt", "rc", "fresh"):  # unfinished work and recent rows stay
        assert store.get(kept) is not None, kept
    assert store.get("fresh").hops
    assert store.get_timer("pending") is not None and store.get_timer("fired") is None
    assert store.known_message_ids(["d0", "fresh"]) == {"fresh"}  # the retention period is the dedupe window
    assert store.prune(cut).total() == 0


def test_prune_refuses_a_naive_cut_off(store: Store):
    with pytest.raises(ValueError, match="aware"):
        store.prune(datetime(2026, 1, 1))


def test_append_hops_adds_steps_without_touching_the_status(store: Store, second_store: Store):
    store.record([entry("s1", JournalStatus.delivered, 1, destinations=["adapter.smpp"],
                        hops=[Hop("adapter.smpp", "published", at(1))])])
    missing = store.append_hops([("s1", Hop("smsc", "submitted", at(2), "smsc id 0A1B")),
                                 ("ghost", Hop("smsc", "submitted", at(2)))])
    assert missing == {"ghost"}
    assert second_store.append_hops([("s1", Hop("smsc", "delivered", at(3), "DELIVRD"))]) == set()
    rec = store.get("s1")
    assert rec.status is JournalStatus.delivered
    assert [(h.destination, h.status, h.detail) for h in rec.hops] == [
        ("adapter.smpp", "published", None), ("smsc", "submitted", "smsc id 0A1B"), ("smsc", "delivered", "DELIVRD")]
    assert store.get("ghost") is None
    store.record([entry("s1", JournalStatus.delivered, 4, hops=[Hop("node.44", "published", at(4))])])
    assert [h.status for h in store.get("s1").hops][-1] == "published" and len(store.get("s1").hops) == 4
