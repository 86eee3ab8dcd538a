"""Benchmark of the WAP endpoint and the NMS feed through the real hub.

(a) WAP: `hub run` in its own process (SQLite store, quorum queues, the shipped config), the
    WAP endpoint in this process on 127.0.0.1 (uvicorn), Guangdong (44, a GBK CRM) played by a
    plain pika client answering every wap.query at once. C client threads (requests, keep-alive)
    send balance queries for Guangdong numbers; each round trip is HTTP -> wap.query -> hub hop
    -> node.44 -> wap.answer -> hub hop -> node.WAP -> HTTP answer. Reported: round trips/s and
    p50/p99 latency. Baseline in the same run: GET /wap/health with the same clients (the HTTP
    stack alone); ratio = WAP round trips/s / baseline requests/s.
(b) NMS: an interface table (SQLite file) filled with R rows (each fault raised, repeated once,
    cleared: 2 of 3 rows become announcements to 44 and 99); the feed reads, publishes as node
    NMS with publisher confirms and marks rows consumed. Reported: rows/s and confirmed
    announcements/s of the feed, and announcements/s until the hub delivered all to node.99.

    python bench/feeds.py [--quick]
Last line: RESULT feeds wap_rt_s=... wap_p50_ms=... wap_p99_ms=... http_baseline_s=... ratio=... nms_rows_s=...
"""

from __future__ import annotations

import argparse
import os
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
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.nms.config import NmsConfig  # noqa: E402
from adapters.nms.feed import NmsFeed  # noqa: E402
from adapters.nms.table import FeedTables  # noqa: E402
from adapters.wap.config import WapClient, WapConfig, hash_password  # noqa: E402
from adapters.wap.service import WapEndpoint  # noqa: E402
from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import load_config  # noqa: E402
from hub.nodes import Directory  # noqa: E402
from hub.settings import Settings  # noqa: E402
from protocols import xmlwire  # noqa: E402
from protocols.wap import wire  # noqa: E402

NODES = ("00", "11", "44", "99", "WAP", "NMS")
SECRET = "bench-wap-secret-000001"


def progress(msg: str) -> None:
    print(f"[feeds] {msg}", file=sys.stderr, flush=True)


def province(url: str, user: str, stop: threading.Event, ready: threading.Event) -> None:
    """Guangdong's CRM: answers every wap.query at once (GBK), acks in batches."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=300)
    ns = {"w": wire.NS}

    def on(c, m, p, b):
        root, _ = xmlwire.parse(b, p.content_encoding)
        if p.type == wire.QUERY_TYPE:
            reply = wire.answer_tree("44", root.findtext("w:RequestId", namespaces=ns),
                                     root.findtext("w:Mobile", namespaces=ns), "balance", "ok",
                                     wire.balance("58.30", datetime.now(UTC)), "余额充足", "ok")
            c.basic_publish("hub.ingress", wire.ANSWER_TYPE, xmlwire.serialise(reply, "gbk"), pika.BasicProperties(
                message_id=uuid.uuid4().hex, type=wire.ANSWER_TYPE, correlation_id=p.message_id, user_id=user,
                content_type="application/xml", content_encoding="gbk", delivery_mode=2))
        c.basic_ack(m.delivery_tag)
    ch.basic_consume("node.44", on)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.05)
    conn.close()


def http_load(url: str, n: int, clients: int, body: bytes | None) -> tuple[float, list[float], int]:
    """n requests over `clients` keep-alive sessions: (requests/s, latencies s, failures)."""
    lat: list[float] = []
    bad = [0]
    per = n // clients

    def worker() -> None:
        s = requests.Session()
        s.auth = ("wap-hall", SECRET)
        for i in range(per):
            t = time.perf_counter()
            if body is None:
                r = s.get(url + "/health", timeout=30)
            else:
                r = s.post(url, data=body.replace(b"RID", f"R{i}".encode()), timeout=30,
                           headers={"Content-Type": "application/xml"})
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                bad[0] += 1
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * clients / (time.perf_counter() - t0), lat, bad[0]


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] * 1000 if len(values) > 1 else 0.0


def nms_run(settings: Settings, tmp: Path, faults: int) -> tuple[float, float, float, int]:
    engine = create_engine(f"sqlite:///{tmp / 'nms.sqlite3'}")
    config = NmsConfig(database_url="sqlite://", batch_size=500)
    tables = FeedTables(engine, config.table, config.state_table)
    tables.create(interface=True)
    t0 = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    rows = []
    for i in range(faults):
        f = f"B-{i}"
        rows += [{"fault_id": f, "kind": k, "severity": "major", "province_codes": "44", "title": f"故障 {i}",
                  "text": "基站退服", "occurred_at": t0 + timedelta(seconds=i + j)}
                 for j, k in enumerate(("raised", "raised", "cleared"))]
    rows.sort(key=lambda r: r["occurred_at"])
    with engine.begin() as conn:
        conn.execute(tables.rows.insert(), rows)
    feed = NmsFeed(settings, config, engine=engine)
    start = time.perf_counter()
    done = 0
    while done < len(rows):
        done += feed.poll_once()
    took = time.perf_counter() - start
    announced = feed.stats["announced"] + feed.stats["closed"]
    feed.close()
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    ch = conn.channel()
    deadline = time.time() + 120
    while ch.queue_declare("node.99", passive=True).method.message_count < announced and time.time() < deadline:
        time.sleep(0.02)
    delivered_took = time.perf_counter() - start
    got = ch.queue_declare("node.99", passive=True).method.message_count
    conn.close()
    engine.dispose()
    return len(rows) / took, announced / took, got / delivered_took, got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish within a minute")
    args = ap.parse_args()
    n_wap, clients, faults = (1_200, 16, 600) if args.quick else (10_000, 32, 5_000)
    vhost = f"bench-feeds-{uuid.uuid4().hex[:6]}"
    tmp = Path(f"/tmp/{vhost}")
    tmp.mkdir(parents=True)
    settings = Settings(vhost=vhost, user_prefix=f"{vhost}.", store_url=f"sqlite:///{tmp}/hub.sqlite3",
                        data_dir=tmp, config_dir=ROOT / "config", routes_dir=ROOT / "routes")
    admin = BrokerAdmin.from_settings(settings)
    admin.create_vhost(vhost)
    admin.set_permissions("guest", vhost, ".*", ".*", ".*")
    hub_proc = endpoint = None
    stop = threading.Event()
    t = None
    try:
        cfg = load_config(settings.config_dir, settings.routes_dir)
        t = topo.build_topology(settings, Directory([n for n in cfg.directory.nodes if n.code in NODES]))
        passwords = topo.load_or_create_passwords(settings, t.user_names)
        topo.apply(t, settings, passwords)
        env = dict(os.environ, HUB_VHOST=vhost, HUB_USER_PREFIX=f"{vhost}.", HUB_STORE_URL=settings.store_url,
                   HUB_DATA_DIR=str(tmp), HUB_LOG_LEVEL="WARNING")
        hub_proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--no-watch"], cwd=ROOT, env=env)
        user44 = settings.broker_user("node-44")
        ready = threading.Event()
        threading.Thread(target=province, args=(settings.amqp_url_for_vhost(user44, passwords[user44]), user44,
                                                stop, ready), daemon=True).start()
        ready.wait(30)
        config = WapConfig(port=0, answer_timeout_s=10, clients=[
            WapClient(name="wap-hall", password_sha256=hash_password(SECRET), rate_per_s=10_000, burst=10_000)])
        endpoint = WapEndpoint(settings, config).start()
        body = (b'<QueryRequest xmlns="urn:cs-hub:wap:1"><RequestId>RID</RequestId><Mobile>13920001234</Mobile>'
                b"<Kind>balance</Kind></QueryRequest>")
        deadline = time.time() + 60      # the hub process is consuming when a query comes back
        while requests.post(endpoint.url, data=body, auth=("wap-hall", SECRET), timeout=15).status_code != 200:
            if time.time() > deadline:
                raise SystemExit("the hub did not answer a WAP query within 60 s")
        progress(f"HTTP baseline: {n_wap} GET /wap/health over {clients} clients")
        base_s, _, _ = http_load(endpoint.url, n_wap, clients, None)
        progress(f"WAP: {n_wap} balance queries over {clients} clients, answered by Guangdong through the hub")
        wap_s, lat, bad = http_load(endpoint.url, n_wap, clients, body)
        p50, p99 = pct(lat, 50), pct(lat, 99)
        progress(f"WAP {wap_s:.0f} round trips/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, failures {bad}; "
                 f"HTTP alone {base_s:.0f}/s")
        progress(f"NMS: {faults} faults x (raised, repeated, cleared) = {3 * faults} rows")
        rows_s, ann_s, delivered_s, delivered = nms_run(settings, tmp, faults)
        progress(f"NMS {rows_s:.0f} rows/s, {ann_s:.0f} confirmed announcements/s, {delivered_s:.0f}/s delivered "
                 f"to node.99 ({delivered} of {2 * faults})")
        print(f"RESULT feeds wap_rt_s={wap_s:.0f} wap_p50_ms={p50:.1f} wap_p99_ms={p99:.1f} "
              f"http_baseline_s={base_s:.0f} ratio={wap_s / base_s:.2f} wap_failures={bad} clients={clients} "
              f"nms_rows_s={rows_s:.0f} nms_announcements_s={ann_s:.0f} nms_delivered_s={delivered_s:.0f} "
              f"nms_delivered={delivered} n_wap={n_wap} nms_rows={3 * faults}")
    finally:
        stop.set()
        if endpoint is not None:
            endpoint.stop()
        if hub_proc is not None:
            hub_proc.terminate()
            hub_proc.wait(30)
        admin.delete_vhost(vhost)
        if t is not None:
            for user in t.user_names:
                if user.startswith(f"{vhost}."):
                    try:
                        admin.delete_user(user)
                    except Exception:
                        pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
