"""Micro-benchmark of the state store's hot path: record() of batches of 200 journal entries.

Measures SQLite (a file in a temporary folder) and PostgreSQL (a database created for the
run and dropped after it, on HUB_BENCH_PG_URL or the local test server). Each batch holds
200 new messages with one hop each, then the same 200 updated to delivered with a second
hop, so half the rows are inserts and half upserts of existing ids. Also reports the cost
of one whole hot-path batch (known_message_ids + claim_business_keys + record).

    .venv/bin/python bench/store.py [--quick]

Last line: RESULT store sqlite_rows_per_s=... pg_rows_per_s=... (NA when PostgreSQL is down).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from hub.store import Hop, JournalEntry, JournalStatus, Store, open_store

BATCH = 200
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def batches(n: int, t0: datetime):
    for b in range(n):
        at = t0 + timedelta(seconds=b)
        ids = [f"bench-{b:05d}-{i:03d}-{uuid.uuid4().hex[:8]}" for i in range(BATCH)]
        received = [
            JournalEntry(m, "WorkOrder", "44", JournalStatus.received, at, business_key=f"WO-{m}",
                         correlation_id=m, destinations=["11"], route_id="r1", config_version="v1",
                         hops=[Hop("11", "sent", at)])
            for m in ids
        ]
        delivered = [
            JournalEntry(m, "WorkOrder", "44", JournalStatus.delivered, at, destinations=["11"], attempts=1,
                         hops=[Hop("11", "acked", at)])
            for m in ids
        ]
        yield ids, received, delivered


def run(store: Store, n: int) -> tuple[float, float]:
    """(rows recorded per second, median ms of one hot-path batch).

    A hot-path batch is what the hub does per input batch: known_message_ids, then
    claim_business_keys, then record of the received entries.
    """
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows, spent = 0, 0.0
    hot_ms: list[float] = []
    for ids, received, delivered in batches(n, t0):
        h0 = time.perf_counter()
        store.known_message_ids(ids)
        store.claim_business_keys([(e.business_key, e.message_id) for e in received])
        s0 = time.perf_counter()
        store.record(received)
        s1 = time.perf_counter()
        store.record(delivered)
        s2 = time.perf_counter()
        hot_ms.append((s1 - h0) * 1000)
        spent += s2 - s0
        rows += len(received) + len(delivered)
    return rows / spent, statistics.median(hot_ms)


def bench_sqlite(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/bench.sqlite3")
        try:
            run(store, 3)  # warm-up: page cache, prepared statements
            rate, hot = run(store, n)
        finally:
            store.close()
    print(f"sqlite: record {rate:,.0f} rows/s ({BATCH / rate * 1000:.2f} ms per batch of {BATCH}); "
          f"hot-path batch median {hot:.2f} ms")
    return rate


def bench_pg(n: int, admin_url: str) -> float | None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"hub_store_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        print(f"postgresql: not reachable ({str(exc.orig).strip().splitlines()[0]}); skipped", file=sys.stderr)
        admin.dispose()
        return None
    try:
        store = open_store(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
        try:
            run(store, 3)
            rate, hot = run(store, n)
        finally:
            store.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    print(f"postgresql: record {rate:,.0f} rows/s ({BATCH / rate * 1000:.2f} ms per batch of {BATCH}); "
          f"hot-path batch median {hot:.2f} ms")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 batches instead of 200")
    args = ap.parse_args()
    n = 20 if args.quick else 200
    sqlite_rate = bench_sqlite(n)
    pg_rate = bench_pg(n, os.environ.get("HUB_BENCH_PG_URL", PG_URL))
    pg = "NA" if pg_rate is None else f"{pg_rate:.0f}"
    print(f"RESULT store sqlite_rows_per_s={sqlite_rate:.0f} pg_rows_per_s={pg}")


if __name__ == "__main__":
    main()
