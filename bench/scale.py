"""Scale-out benchmark: the hub hop with 1, 2 and 3 workers, and the site link, against the raw relay.

(a) raw: bench/hop.py's pipelined pika relay (consume, publish with confirms, ack on
    confirm) on quorum queues — the baseline, in the same run.
(b) workers: k = 1, 2, 3 `hub run` processes compete for a preloaded hub.in, sharing one
    PostgreSQL store (a fresh schema per k); rate from first to last message in node.11.
(c) link: a second RabbitMQ node as a province broker (tests/scale/site_node.py); n
    messages wait in its site.uplink, then the `hub topology link` shovel moves them into
    HQ's hub.in (ack-mode on-confirm); rate from first to last arrival.
All on this 2-core machine: broker, PostgreSQL and workers share the cores.

    python bench/scale.py [--quick] [-n N]
Last line: RESULT scale raw_msg_s=... w1_msg_s=... w2_msg_s=... w3_msg_s=... link_msg_s=... ratio=...
(ratio = best worker count / raw relay).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "scale")]

from hop import depth, measure_drain, raw_relay, sample_body  # noqa: E402
from site_node import SiteNode  # noqa: E402

from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import ADAPTER_NAMES, load_config  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.sites import build_site_link  # noqa: E402
from hub.topology import drop_prefixed_users  # noqa: E402

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://cshub:cshub@127.0.0.1:5432/cshub_test")  # scripts/bootstrap makes it


def progress(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


def publish(url: str, user: str, n: int, prefix: str, wait_queue: tuple[str, str] | None = None) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for i in range(n):
        ch.basic_publish("hub.ingress", "notice.text", sample_body(i), pika.BasicProperties(
            message_id=f"{prefix}-{i}", type="notice.text", user_id=user, content_type="application/xml",
            content_encoding="gbk", delivery_mode=2))
    if wait_queue:
        while depth(ch, wait_queue[0]) < n:
            time.sleep(0.05)
    conn.close()


def workers_round(settings: Settings, passwords: dict, k: int, n: int, tmp: Path, pg) -> float:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with pg.connect() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    store_url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)
    user = settings.broker_user("node-44")
    publish(settings.amqp_url_for_vhost(user, passwords[user]), user, n, f"w{k}",
            ("hub.in", "hub.in"))
    env = dict(os.environ, HUB_VHOST=settings.vhost, HUB_USER_PREFIX=settings.user_prefix, HUB_STORE_URL=store_url, HUB_DATA_DIR=str(tmp),
               HUB_LOG_LEVEL="WARNING")
    procs = [subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--no-watch", "--worker-id", f"bench-{i}"],
                              cwd=ROOT, env=env) for i in range(k)]
    admin = pika.URLParameters(settings.amqp_url_for_vhost())
    try:
        return measure_drain(admin, "node.11", n, timeout=300)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        conn = pika.BlockingConnection(admin)
        conn.channel().queue_purge("node.11")
        conn.close()
        with pg.connect() as c:
            c.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


def link_round(settings: Settings, directory, passwords: dict, n: int) -> float:
    node = SiteNode(f"hubbench{os.getpid()}")
    try:
        node.start()
        defs = build_site_link(settings, directory, "44", hq_url="amqp://127.0.0.1:5672", local_url=node.url,
                               node_password=passwords[settings.broker_user("node-44")], link_password=uuid.uuid4().hex,
                               reconnect_delay_s=1)
        shovels = defs.pop("parameters")
        node.import_definitions(json.dumps(defs))               # queues first, the link later
        node.ctl("set_permissions", "-p", settings.vhost, "guest", ".*", ".*", ".*")
        user = settings.broker_user("node-44")
        publish(f"amqp://{user}:{passwords[user]}@127.0.0.1:{node.port}/{settings.vhost}", user, n,
                "link")
        guest = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{node.port}/{settings.vhost}")
        conn = pika.BlockingConnection(guest)
        while depth(conn.channel(), "site.uplink") < n:
            time.sleep(0.05)
        conn.close()
        node.import_definitions(json.dumps({**{k: [] for k in defs}, "parameters": shovels[:1]}))
        return measure_drain(pika.URLParameters(settings.amqp_url_for_vhost()), "hub.in", n, timeout=300)
    finally:
        node.stop()


def main() -> None:
    # A SIGTERM (`timeout`, a CI runner) must still run the finally blocks: they stop the
    # second RabbitMQ node this benchmark starts, which would otherwise run on.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int)
    args = ap.parse_args()
    n = args.n or (2_000 if args.quick else 20_000)
    vhost = f"bench-scale-{uuid.uuid4().hex[:6]}"
    tmp = Path(f"/tmp/{vhost}")
    tmp.mkdir(parents=True)
    settings = Settings(vhost=vhost, user_prefix=f"{vhost}.", data_dir=tmp, config_dir=ROOT / "config", routes_dir=ROOT / "routes")
    admin = BrokerAdmin.from_settings(settings)
    admin.create_vhost(vhost)
    admin.set_permissions("guest", vhost, ".*", ".*", ".*")
    pg = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        body = sample_body(0)
        progress(f"{len(body)}-byte GBK XML messages, n={n}, {os.cpu_count()} cores")
        raw = raw_relay(settings.amqp_url_for_vhost(), n, body, prefetch=settings.hop.prefetch)
        progress(f"raw relay: {raw:.0f} msg/s")
        cfg = load_config(settings.config_dir, settings.routes_dir)
        t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
        passwords = topo.load_or_create_passwords(settings, t.user_names)
        topo.apply(t, settings, passwords)
        rates = {}
        for k in (1, 2, 3):
            rates[k] = workers_round(settings, passwords, k, n, tmp, pg)
            progress(f"{k} worker(s), PostgreSQL store: {rates[k]:.0f} msg/s")
        link = link_round(settings, cfg.directory, passwords, n)
        progress(f"site link (shovel, on-confirm): {link:.0f} msg/s")
        best = max(rates.values())
        print(f"RESULT scale raw_msg_s={raw:.0f} w1_msg_s={rates[1]:.0f} w2_msg_s={rates[2]:.0f} "
              f"w3_msg_s={rates[3]:.0f} link_msg_s={link:.0f} ratio={best / max(raw, 1):.2f} "
              f"link_ratio={link / max(raw, 1):.2f} n={n} cores={os.cpu_count()}")
    finally:
        pg.dispose()
        admin.delete_vhost(vhost)
        drop_prefixed_users(admin, settings)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
