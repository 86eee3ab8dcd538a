"""Benchmark of knowledge fan-out and catalog sync through the hub (docs/knowledge.md).

(a) fan-out: the second-line platform (99) submits an item, HQ (00) approves it (not timed),
    then HQ publishes the delivery to the 31 provinces and 99; every recipient confirms with a
    receipt as soon as its copy arrives. Timed: HQ's publish of the delivery .. the 32nd receipt
    in HQ's queue. Repeated; p50 and max reported (target: under 1 s).
(b) sync: a catalog of 10,000 published items designated for Tianjin (12) is seeded in the store
    (hub.store.knowledge.publish_items), Tianjin holds none of it and sends a SyncRequest with an
    empty Known list. Timed: the request's publish .. the last knowledge.sync_response page
    received, with all 10,000 items counted.
`hub run` runs in its own process (SQLite store, quorum queues, the shipped config); the nodes
are plain pika connections in this process.

    python bench/fanout.py [--quick] [-r REPEATS] [--catalog N]
Last line: RESULT fanout fanout_p50_ms=... fanout_max_ms=... repeats=... recipients=32 sync_items=... sync_s=...
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hop import start_hub  # noqa: E402
from orders import wait_consuming  # noqa: E402

from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import ADAPTER_NAMES, load_config  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.store import knowledge as ks  # noqa: E402
from hub.store import open_store  # noqa: E402
from hub.topology import drop_prefixed_users  # noqa: E402
from protocols.knowledge import wire  # noqa: E402
from protocols.knowledge.models import (  # noqa: E402
    Action,
    DeliveryReceipt,
    KnowledgeDelivery,
    KnowledgeItem,
    KnowledgeStatus,
    KnowledgeSubmission,
    ReceiptStatus,
    ReviewOutcome,
    ReviewResult,
    SyncRequest,
)

PROVINCES = ("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
             "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65")
RECIPIENTS = (*PROVINCES, "99")
CONTENT = "5G 新通话业务资费说明:开通方式、计费规则、适用套餐与常见问题解答。" * 8


def progress(msg: str) -> None:
    print(f"[fanout] {msg}", file=sys.stderr, flush=True)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def item(item_id: str, status: str = "submitted", reviewer: str | None = None) -> KnowledgeItem:
    return KnowledgeItem(id=item_id, version=1, title="5G新通话业务资费说明", content=CONTENT,
                         category_path=("NATIONWIDE", "NEW_SERVICE"), status=KnowledgeStatus(status),
                         effective_date=now(), owner_node="99", author="陈思远", reviewer=reviewer)


class Nodes:
    """A publishing channel per node (its own user); one consuming connection for every node queue."""

    def __init__(self, settings: Settings, passwords: dict[str, str]) -> None:
        self.settings = settings
        self.pub: dict[str, tuple[pika.BlockingConnection, object, str]] = {}
        for code in (*RECIPIENTS, "00"):
            user = settings.broker_user(f"node-{code}")
            conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost(user, passwords[user])))
            self.pub[code] = (conn, conn.channel(), user)
        self.conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
        self.ch = self.conn.channel()

    def send(self, code: str, type_: str, body: bytes, mid: str | None = None) -> None:
        _, ch, user = self.pub[code]
        ch.basic_publish("hub.ingress", type_, body, pika.BasicProperties(
            message_id=mid or f"{code}-{uuid.uuid4().hex}", type=type_, user_id=user,
            content_type="application/xml", content_encoding="utf-8", delivery_mode=2))

    def get(self, code: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = self.ch.basic_get(f"node.{code}", auto_ack=True)
            if method:
                return props, body
            self.conn.process_data_events(time_limit=0.005)
        raise SystemExit(f"timeout waiting for node.{code}")

    def close(self) -> None:
        for conn, _, _ in self.pub.values():
            conn.close()
        self.conn.close()


def one_fanout(nodes: Nodes, n: int) -> float:
    item_id = f"KN-99-bench-{n}-{uuid.uuid4().hex[:8]}"
    sub = KnowledgeSubmission(serial_number=uuid.uuid4().hex[:16], action=Action.publish, submitter_code="99",
                              local_reviewer="李明", submitted_at=now(), item=item(item_id))
    nodes.send("99", "knowledge.submit", wire.dumps(sub))
    assert nodes.get("00")[0].type == "knowledge.submit"
    nodes.send("00", "knowledge.review", wire.dumps(ReviewResult(
        submitter_code="99", submission_serial_number=sub.serial_number, action=Action.publish, item_id=item_id,
        version=1, outcome=ReviewOutcome.approved, reviewer_at_hq="王建华", reviewed_at=now())))
    assert nodes.get("99")[0].type == "knowledge.review"
    delivery = wire.dumps(KnowledgeDelivery(action=Action.publish, recipients=RECIPIENTS, published_at=now(),
                                            item=item(item_id, "published", "王建华")))
    receipts = {code: wire.dumps(DeliveryReceipt(company_code=code, item_id=item_id, version=1,
                                                 receipt_status=ReceiptStatus.accepted, received_at=now()))
                for code in RECIPIENTS}
    pending = set(RECIPIENTS)
    got = 0
    t0 = time.perf_counter()
    nodes.send("00", "knowledge.delivery", delivery)
    deadline = time.monotonic() + 30
    while got < len(RECIPIENTS):
        if time.monotonic() > deadline:
            raise SystemExit(f"timeout: {got} receipts, waiting for deliveries to {sorted(pending)}")
        for code in list(pending):
            method, props, _ = nodes.ch.basic_get(f"node.{code}", auto_ack=True)
            if method:
                assert props.type == "knowledge.delivery", props.type
                pending.discard(code)
                nodes.send(code, "knowledge.receipt", receipts[code])
        while True:
            method, props, _ = nodes.ch.basic_get("node.00", auto_ack=True)
            if not method:
                break
            assert props.type == "knowledge.receipt", props.type
            got += 1
        nodes.conn.process_data_events(time_limit=0.001)
    return time.perf_counter() - t0


def sync(nodes: Nodes, code: str, expect: int) -> tuple[float, int, int]:
    request = SyncRequest(company_code=code, serial_number=uuid.uuid4().hex[:16], requested_at=now(),
                          tree_version=0, known=())
    t0 = time.perf_counter()
    nodes.send(code, "knowledge.sync_request", wire.dumps(request))
    items = pages = 0
    while items < expect:
        props, body = nodes.get(code, timeout=120)
        assert props.type == "knowledge.sync_response", props.type
        items += len(wire.loads(body).items)
        pages += 1
    return time.perf_counter() - t0, items, pages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish within a minute")
    ap.add_argument("-r", "--repeats", type=int, help="fan-outs measured")
    ap.add_argument("--catalog", type=int, default=10_000, help="items in the synced catalog")
    args = ap.parse_args()
    repeats = args.repeats or (7 if args.quick else 30)
    vhost = f"bench-fanout-{uuid.uuid4().hex[:6]}"
    tmp = Path(f"/tmp/{vhost}")
    tmp.mkdir(parents=True)
    settings = Settings(vhost=vhost, user_prefix=f"{vhost}.", store_url=f"sqlite:///{tmp}/hub.sqlite3", data_dir=tmp,
                        config_dir=ROOT / "config", routes_dir=ROOT / "routes")
    admin = BrokerAdmin.from_settings(settings)
    admin.create_vhost(vhost)
    admin.set_permissions("guest", vhost, ".*", ".*", ".*")
    hub_proc = nodes = None
    try:
        cfg = load_config(settings.config_dir, settings.routes_dir)
        t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
        passwords = topo.load_or_create_passwords(settings, t.user_names)
        topo.apply(t, settings, passwords)
        progress(f"seeding a catalog of {args.catalog} published items for Tianjin (12)")
        with open_store(settings.store_url) as store, store.transaction(write=True) as conn:
            ks.publish_items(conn, (item(f"KN-99-cat-{i:06d}", "published", "王建华") for i in range(args.catalog)),
                             ["12"], datetime.now(UTC))
        hub_proc = start_hub(settings, tmp)
        wait_consuming(settings)
        nodes = Nodes(settings, passwords)
        one_fanout(nodes, 0)  # warm-up: first connections, caches
        times = [one_fanout(nodes, i) for i in range(1, repeats + 1)]
        p50, worst = statistics.median(times) * 1000, max(times) * 1000
        progress(f"fan-out to {len(RECIPIENTS)} recipients with every receipt back: p50 {p50:.0f} ms, "
                 f"max {worst:.0f} ms over {repeats}")
        sync_s, items, pages = sync(nodes, "12", args.catalog)
        progress(f"sync of {items} items to a recipient holding none: {sync_s:.2f} s in {pages} pages")
        print(f"RESULT fanout fanout_p50_ms={p50:.0f} fanout_max_ms={worst:.0f} repeats={repeats} "
              f"recipients={len(RECIPIENTS)} target_ms=1000 sync_items={items} sync_pages={pages} "
              f"sync_s={sync_s:.2f}")
    finally:
        if nodes is not None:
            nodes.close()
        if hub_proc is not None:
            hub_proc.terminate()
            hub_proc.wait(30)
        admin.delete_vhost(vhost)
        drop_prefixed_users(admin, settings)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
