"""Benchmark of whole dispatch/return transactions through the hub, against the raw pika relay.

A transaction is the four messages of seed 001 5.1 that cross the hub:
  1. DispatchOrder   Guangdong 44 (GBK)  -> hub -> Beijing 11 (UTF-8)  + copy to HQ 00
  2. DispatchReceipt Beijing 11          -> hub -> Guangdong 44 (GBK)  + copy to HQ 00
  3. ReturnOrder     Beijing 11 (final)  -> hub -> Guangdong 44 (GBK)  + copy to HQ 00
  4. ReturnReceipt   Guangdong 44 (GBK)  -> hub -> Beijing 11          + copy to HQ 00
How hops are counted: one hub hop is one message consumed from hub.in and published, with
its acknowledgement, in one broker transaction; every transaction is 4 hub hops, each
publishing 2 deliveries (the receiver's and HQ's copy, each re-encoded for its node), so 8
deliveries. Each hop also does the orders flow's work: the tracker read and write-ahead,
the business-key claim, 7 durable timers scheduled per order, the journal.

(a) raw: bench/hop.py's raw_relay - a pipelined pika relay on quorum queues (consume q1,
    publish q2 with publisher confirms, ack on confirm) - moves the same ~1 KB GBK dispatch
    order one hop; raw_tx_s = raw_msg_s / 4 is what the raw relay would give for 4 hops.
(b) hub: `hub run` in its own process (SQLite store, quorum queues, the shipped config)
    while three plain pika processes play Guangdong, Beijing and HQ. Guangdong publishes N
    dispatch orders at once; Beijing returns its success mark on arrival and its final
    reply 50 ms later (a reply sent in the same instant as the mark may overtake it in
    another lane and costs a retry tier, which is not what a CRM does); Guangdong confirms
    each reply; HQ drains its copies. hub_tx_s = N / (first dispatch published .. last
    ReturnReceipt received by Beijing). The province clients publish without confirms so
    that they are not the bottleneck.

    python bench/orders.py [--quick] [-n N]
Last line: RESULT orders raw_msg_s=... raw_tx_s=... hub_tx_s=... ratio=... hub_hops_s=... n=... nacks=... dlq=...
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hop import depth, raw_relay, start_hub  # noqa: E402  (the core benchmark's baseline and hub start)

from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import ADAPTER_NAMES, load_config  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.topology import drop_prefixed_users  # noqa: E402

CHINA = timezone(timedelta(hours=8))
NS = "urn:cs-hub:order:1"
ISSUE = "用户(北京号码)在广州市天河区漫游期间手机信号时有时无,通话经常中断,已持续三天。用户要求归属省核查其号码状态并答复处理结果。"
SERIAL_RE = re.compile(rb"<DispatchSerialNumber>([^<]+)</DispatchSerialNumber>|<SerialNumber>([^<]+)</SerialNumber>")


def progress(msg: str) -> None:
    print(f"[orders] {msg}", file=sys.stderr, flush=True)


def _ts(t: datetime) -> str:
    return t.astimezone(CHINA).isoformat(timespec="seconds")


def dispatch_body(serial: str, now: datetime) -> bytes:
    xml = (f'<?xml version="1.0" encoding="GBK"?>\n<DispatchOrder xmlns="{NS}"><CompanyCode>44</CompanyCode>'
           f"<SerialNumber>{serial}</SerialNumber><ToCompany><Code>HOME</Code><Name>用户归属省公司</Name></ToCompany>"
           "<DispatcherName>李娜</DispatcherName><DispatcherPhone>020-87654321</DispatcherPhone>"
           "<CustomerMobile>13901001234</CustomerMobile><ComplainantName>王建国</ComplainantName>"
           "<ComplainantPhone>13901001234</ComplainantPhone><ComplaintCategory>NETWORK_SIGNAL</ComplaintCategory>"
           f"<ComplaintIssue>{ISSUE}</ComplaintIssue>"
           f"<FirstReplyDeadline>{_ts(now + timedelta(hours=2))}</FirstReplyDeadline>"
           f"<FinalReplyDeadline>{_ts(now + timedelta(hours=24))}</FinalReplyDeadline>"
           f"<DispatchTime>{_ts(now)}</DispatchTime></DispatchOrder>")
    return xml.encode("gbk")


def receipt_body(serial: str, now: datetime) -> bytes:
    return (f'<DispatchReceipt xmlns="{NS}"><CompanyCode>11</CompanyCode><DispatchCompanyCode>44</DispatchCompanyCode>'
            f"<DispatchSerialNumber>{serial}</DispatchSerialNumber><ReceivedTime>{_ts(now)}</ReceivedTime>"
            "<Status>accepted</Status></DispatchReceipt>").encode()


def return_body(serial: str, now: datetime) -> bytes:
    return (f'<ReturnOrder xmlns="{NS}"><CompanyCode>11</CompanyCode><DispatchCompanyCode>44</DispatchCompanyCode>'
            f"<DispatchSerialNumber>{serial}</DispatchSerialNumber><ReplierName>张伟</ReplierName>"
            "<ReplierPhone>010-12345678</ReplierPhone><Result>处理完毕。基站故障已修复,已致电用户致歉。</Result>"
            f"<ReplyTime>{_ts(now)}</ReplyTime><ReplyKind>final</ReplyKind></ReturnOrder>").encode()


def return_receipt_body(serial: str, now: datetime) -> bytes:
    xml = (f'<?xml version="1.0" encoding="GBK"?>\n<ReturnReceipt xmlns="{NS}"><CompanyCode>44</CompanyCode>'
           f"<DispatchCompanyCode>44</DispatchCompanyCode><DispatchSerialNumber>{serial}</DispatchSerialNumber>"
           f"<ReplyKind>final</ReplyKind><ReceivedTime>{_ts(now)}</ReceivedTime><Status>accepted</Status>"
           "</ReturnReceipt>")
    return xml.encode("gbk")


def _serial(body: bytes) -> str:
    m = SERIAL_RE.search(body)
    return (m.group(1) or m.group(2)).decode()


def _publish(ch, user: str, type_: str, body: bytes, encoding: str) -> None:
    ch.basic_publish("hub.ingress", type_, body, pika.BasicProperties(
        message_id=str(uuid.uuid4()), type=type_, user_id=user, content_type="application/xml",
        content_encoding=encoding, delivery_mode=2))


# ---------------------------------------------------------------- the three node processes
def guangdong(url: str, user: str, n: int, run: str, out: mp.Queue, timeout: float) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=500)
    state = {"marks": 0, "replies": 0, "nacks": 0}

    def on_msg(_ch, _m, p, body):
        if p.type == "order.return":
            _publish(ch, user, "order.return_receipt", return_receipt_body(_serial(body), datetime.now(UTC)), "gbk")
            state["replies"] += 1
        elif p.type == "order.dispatch_receipt":
            state["marks"] += 1
        elif p.type == "hub.nack":
            state["nacks"] += 1

    ch.basic_consume("node.44", on_msg, auto_ack=True)
    t_start = time.time()
    now = datetime.now(UTC)
    for i in range(n):
        _publish(ch, user, "order.dispatch", dispatch_body(f"B{run}-{i:06d}", now), "gbk")
    deadline = time.time() + timeout
    while state["replies"] < n and time.time() < deadline:
        conn.process_data_events(time_limit=0.05)
    conn.process_data_events(time_limit=0.2)  # flush the last publishes
    conn.close()
    out.put(("44", t_start, state))


def beijing_and_hq(url_bj: str, user_bj: str, url_hq: str, n: int, out: mp.Queue, timeout: float) -> None:
    """Beijing's CRM and HQ's, in one process: Beijing answers finally once HQ's copy of its
    success mark shows the hub recorded it (the order's state allows the reply from then on)."""
    bj_conn = pika.BlockingConnection(pika.URLParameters(url_bj))
    hq_conn = pika.BlockingConnection(pika.URLParameters(url_hq))
    bj, hq = bj_conn.channel(), hq_conn.channel()
    bj.basic_qos(prefetch_count=500)
    hq.basic_qos(prefetch_count=1000)
    state = {"orders": 0, "closed": 0, "nacks": 0, "copies": 0, "t_end": None}

    def on_beijing(_ch, _m, p, body):
        if p.type == "order.dispatch":
            _publish(bj, user_bj, "order.dispatch_receipt", receipt_body(_serial(body), datetime.now(UTC)), "utf-8")
            state["orders"] += 1
        elif p.type == "order.return_receipt":
            state["closed"] += 1
            if state["closed"] == n:
                state["t_end"] = time.time()
        elif p.type == "hub.nack":
            state["nacks"] += 1

    def on_hq(_ch, _m, p, body):
        state["copies"] += 1
        if p.type == "order.dispatch_receipt":
            _publish(bj, user_bj, "order.return", return_body(_serial(body), datetime.now(UTC)), "utf-8")

    bj.basic_consume("node.11", on_beijing, auto_ack=True)
    hq.basic_consume("node.00", on_hq, auto_ack=True)
    out.put(("ready", None, None))
    deadline = time.time() + timeout
    while (state["closed"] < n or state["copies"] < 4 * n) and time.time() < deadline:
        bj_conn.process_data_events(time_limit=0.002)
        hq_conn.process_data_events(time_limit=0.002)
    bj_conn.close()
    hq_conn.close()
    out.put(("11", state["t_end"], state))


def hub_transactions(settings: Settings, passwords: dict[str, str], n: int, timeout: float) -> tuple[float, dict]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    run = uuid.uuid4().hex[:6]

    def url(code: str) -> str:
        user = settings.broker_user(f"node-{code}")
        return settings.amqp_url_for_vhost(user, passwords[user])

    procs = [ctx.Process(target=beijing_and_hq, args=(url("11"), settings.broker_user("node-11"), url("00"), n,
                                                      out, timeout))]
    procs[0].start()
    assert out.get(timeout=60)[0] == "ready"  # consumers attached before the first order is published
    procs.append(ctx.Process(target=guangdong, args=(url("44"), settings.broker_user("node-44"), n, run, out,
                                                     timeout)))
    procs[-1].start()
    results = {}
    for _ in procs:
        code, t, state = out.get(timeout=timeout + 30)
        results[code] = (t, state)
    for p in procs:
        p.join(10)
    t_start, t_end = results["44"][0], results["11"][0]
    if t_end is None:
        raise SystemExit(f"timeout: only {results['11'][1]['closed']} of {n} transactions closed: {results}")
    return n / (t_end - t_start), {code: state for code, (_t, state) in results.items()}


def wait_consuming(settings: Settings, timeout: float = 60) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    ch = conn.channel()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if ch.queue_declare("hub.in", passive=True).method.consumer_count >= settings.hop.lanes:
                return
            conn.process_data_events(time_limit=0.1)
        raise SystemExit("the hub did not start consuming hub.in")
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish within a minute")
    ap.add_argument("-n", type=int, help="transactions through the hub")
    args = ap.parse_args()
    n = args.n or (600 if args.quick else 5_000)
    n_raw = 4_000 if args.quick else 30_000
    vhost = f"bench-orders-{uuid.uuid4().hex[:6]}"
    tmp = Path(f"/tmp/{vhost}")
    tmp.mkdir(parents=True)
    settings = Settings(vhost=vhost, user_prefix=f"{vhost}.", store_url=f"sqlite:///{tmp}/hub.sqlite3", data_dir=tmp,
                        config_dir=ROOT / "config", routes_dir=ROOT / "routes")
    admin = BrokerAdmin.from_settings(settings)
    admin.create_vhost(vhost)
    admin.set_permissions("guest", vhost, ".*", ".*", ".*")
    hub_proc = None
    try:
        body = dispatch_body("B0-000000", datetime.now(UTC))
        progress(f"raw pika relay of the {len(body)}-byte GBK dispatch order, n={n_raw}")
        raw = raw_relay(settings.amqp_url_for_vhost(), n_raw, body, prefetch=settings.hop.prefetch)
        progress(f"raw relay: {raw:.0f} msg/s = {raw / 4:.0f} four-hop transactions/s")

        cfg = load_config(settings.config_dir, settings.routes_dir)
        t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
        passwords = topo.load_or_create_passwords(settings, t.user_names)
        topo.apply(t, settings, passwords)
        hub_proc = start_hub(settings, tmp)
        wait_consuming(settings)
        progress(f"{n} transactions (dispatch, mark, final reply, mark) through `hub run`")
        hub_tx, states = hub_transactions(settings, passwords, n, timeout=300)
        admin_conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
        dlq = depth(admin_conn.channel(), "hub.dlq")
        admin_conn.close()
        nacks = states["44"]["nacks"] + states["11"]["nacks"]
        copies = states["11"]["copies"]
        progress(f"hub: {hub_tx:.0f} transactions/s = {4 * hub_tx:.0f} hub hops/s = {8 * hub_tx:.0f} deliveries/s; "
                 f"HQ copies {copies} of {4 * n}; nacks {nacks}; dead letters {dlq}")
        print(f"RESULT orders raw_msg_s={raw:.0f} raw_tx_s={raw / 4:.0f} hub_tx_s={hub_tx:.0f} "
              f"ratio={hub_tx / (raw / 4):.2f} hub_hops_s={4 * hub_tx:.0f} n={n} nacks={nacks} dlq={dlq} "
              f"hq_copies={copies}")
    finally:
        if hub_proc is not None:
            hub_proc.terminate()
            hub_proc.wait(30)
        admin.delete_vhost(vhost)
        drop_prefixed_users(admin, settings)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
