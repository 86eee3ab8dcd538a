"""Benchmark of the queue console: search latency over a big journal, and the journal's cost on the hop.

(a) search: a SQLite journal of 1,000,000 messages (--quick: 100,000; the RESULT line says how
    many) with two hops each, written straight into the tables; the console served by uvicorn
    on 127.0.0.1; a logged-in client asks /api/search for random message ids, business keys
    (order.dispatch:CC:SERIAL, found by serial number too) and correlation ids; p50/p99.
(b) hop: `hub run` drains a preloaded hub.in of GBK notices (as bench/hop.py does) twice in the
    same run, once journaling as usual and once with the journal writer replaced by one that
    writes nothing; ratio = with / without.

    python bench/console.py [--quick] [--rows N] [-n N]
Last line: RESULT console rows=... search_p50_ms=... search_p99_ms=... hop_journal_msg_s=...
           hop_nojournal_msg_s=... ratio=...
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hop import free_port, measure_drain, preload_hub  # noqa: E402

from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import ADAPTER_NAMES, load_config  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.store import open_store  # noqa: E402
from hub.topology import drop_prefixed_users  # noqa: E402

CHILD = r"""
import sys
sys.path.insert(0, sys.argv[2])
from hub import logs
from hub.runtime import HubProcess
from hub.settings import load_settings

class NoJournal:
    def submit(self, entries): pass
    def pending_ids(self, ids): return set()
    def flush(self, timeout=None): return True
    def backlog(self): return 0
    def close(self): pass

logs.setup("WARNING")
proc = HubProcess(load_settings(), watch=False)
if sys.argv[1] == "none":
    proc.worker.journal.close()
    proc.worker.journal = NoJournal()
sys.exit(proc.run())
"""


def progress(msg: str) -> None:
    print(f"[console] {msg}", file=sys.stderr, flush=True)


def _ts(dt: datetime) -> str:
    return dt.replace(tzinfo=None).isoformat(" ", "microseconds")


def fill_journal(store_url: str, rows: int, codes: list[str]) -> None:
    """`rows` journaled messages with two hops each, written in big executemany batches."""
    store = open_store(store_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    statuses = ["delivered"] * 96 + ["dead_lettered", "retrying", "duplicate", "refused"]
    batch = 50_000
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA synchronous=OFF")
        for start in range(0, rows, batch):
            jr, hr = [], []
            for i in range(start, min(rows, start + batch)):
                at = _ts(t0 + timedelta(milliseconds=i * 37))
                cc = codes[i % len(codes)]
                jr.append((f"m-{i:08d}", "order.dispatch", cc, f"order.dispatch:{cc}:S{i:010d}", f"c-{i:08d}",
                           statuses[i % 100], f'["node.{codes[(i + 1) % len(codes)]}"]', "order-dispatch", "v1",
                           1, None, None, 0, 2, at, at))
                hr.append((f"m-{i:08d}", 1, "hub.in", "received", at, None))
                hr.append((f"m-{i:08d}", 2, f"node.{codes[(i + 1) % len(codes)]}", "published", at, None))
            raw.execute("BEGIN")
            raw.executemany("INSERT INTO journal (message_id, type, source, business_key, correlation_id, status, "
                            "destinations, route_id, config_version, attempts, reason_code, error, duplicates, "
                            "hop_count, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", jr)
            raw.executemany("INSERT INTO journal_hops (message_id, seq, destination, status, at, detail) "
                            "VALUES (?,?,?,?,?,?)", hr)
            raw.execute("COMMIT")
            progress(f"journal {min(rows, start + batch)}/{rows}")
        raw.execute("ANALYZE")
    store.close()


def search_latency(settings: Settings, tmp: Path, rows: int, queries: int) -> list[float]:
    import uvicorn

    from hub.console.access import Role, Users
    from hub.console.app import ConsoleConfig, build

    users = tmp / "users.yaml"
    Users(users).put("bench", Role.viewer, "bench-password")
    app, store = build(settings, ConsoleConfig(users_file=users))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    s = requests.Session()
    token = s.get(f"{url}/api/csrf", timeout=10).json()["csrf_token"]
    s.post(f"{url}/login", data={"user": "bench", "password": "bench-password", "csrf_token": token}, timeout=10)
    rnd = random.Random(6)
    lat = []
    try:
        for k in range(queries):
            i = rnd.randrange(rows)
            q = [f"m-{i:08d}", f"S{i:010d}", f"c-{i:08d}"][k % 3]
            t0 = time.perf_counter()
            r = s.get(f"{url}/api/search", params={"q": q}, timeout=30)
            lat.append((time.perf_counter() - t0) * 1000)
            found = r.json()["results"]
            assert r.status_code == 200 and found and found[0]["message_id"] == f"m-{i:08d}", (q, r.text[:300])
    finally:
        server.should_exit = True
        th.join(10)
        store.close()
    return sorted(lat)


def hop_rate(settings: Settings, passwords: dict, tmp: Path, n: int, journal: bool) -> float:
    preload_hub(settings, passwords, n)
    env = dict(os.environ, HUB_VHOST=settings.vhost, HUB_USER_PREFIX=settings.user_prefix, HUB_STORE_URL=settings.store_url, HUB_DATA_DIR=str(tmp),
               HUB_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "journal" if journal else "none", str(ROOT)], cwd=ROOT,
                            env=env)
    try:
        params = pika.URLParameters(settings.amqp_url_for_vhost())
        rate = measure_drain(params, "node.11", n, timeout=300)
    finally:
        proc.terminate()
        proc.wait(30)
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    conn.channel().queue_purge("node.11")
    conn.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, help="journal rows for the search (default 1,000,000; --quick 100,000)")
    ap.add_argument("-n", type=int, help="messages per hop run (default 20,000; --quick 3,000)")
    ap.add_argument("--queries", type=int)
    args = ap.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    n = args.n or (3_000 if args.quick else 20_000)
    queries = args.queries or (150 if args.quick else 600)
    vhost = f"bench-console-{uuid.uuid4().hex[:6]}"
    tmp = Path(f"/tmp/{vhost}")
    tmp.mkdir(parents=True)
    os.environ.setdefault("HUB_CONSOLE_SECRET", uuid.uuid4().hex)
    settings = Settings(vhost=vhost, user_prefix=f"{vhost}.", store_url=f"sqlite:///{tmp}/search.sqlite3", data_dir=tmp,
                        config_dir=ROOT / "config", routes_dir=ROOT / "routes")
    admin = BrokerAdmin.from_settings(settings)
    admin.create_vhost(vhost)
    admin.set_permissions("guest", vhost, ".*", ".*", ".*")
    try:
        cfg = load_config(settings.config_dir, settings.routes_dir)
        codes = [node.code for node in cfg.directory.nodes]
        t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
        passwords = topo.load_or_create_passwords(settings, t.user_names)
        topo.apply(t, settings, passwords)

        t0 = time.perf_counter()
        fill_journal(settings.store_url, rows, codes)
        progress(f"journal of {rows} rows written in {time.perf_counter() - t0:.1f}s")
        lat = search_latency(settings, tmp, rows, queries)
        p50, p99 = statistics.median(lat), lat[max(0, int(len(lat) * 0.99) - 1)]
        progress(f"search: {queries} queries, p50 {p50:.1f} ms, p99 {p99:.1f} ms")

        rates = {}
        for journal in (True, False):
            hop_settings = settings.model_copy(update={"store_url": f"sqlite:///{tmp}/hop-{journal}.sqlite3"})
            rates[journal] = hop_rate(hop_settings, passwords, tmp, n, journal)
            progress(f"hop {'with' if journal else 'without'} journaling: {rates[journal]:.0f} msg/s")
        print(f"RESULT console rows={rows} queries={queries} search_p50_ms={p50:.1f} search_p99_ms={p99:.1f} "
              f"hop_journal_msg_s={rates[True]:.0f} hop_nojournal_msg_s={rates[False]:.0f} "
              f"ratio={rates[True] / rates[False]:.2f} n={n}")
    finally:
        admin.delete_vhost(vhost)
        drop_prefixed_users(admin, settings)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
