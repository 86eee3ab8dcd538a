"""Benchmark of the hub hop against a raw pika relay on the same broker, same run.

(a) raw: a pipelined pika relay (consume q1, publish q2 with publisher confirms, ack on
    confirm) on quorum queues — the baseline.
(b) hub: `hub run` in its own process doing its real work on each ~1 KB XML message:
    authenticate, decode GBK, parse safely, XSD-validate, check the sender, route,
    re-encode for the destination, publish and ack in one transaction, journal to SQLite.
Both drain a preloaded queue; the rate is measured from the first to the last delivered
message by polling queue depths. Then latency: a node publishes at a steady 1,000 msg/s
while another node consumes; p50/p99 from publish to receipt.

    python bench/hop.py [--quick] [-n N]
Latency phases run --repeat times (3) on each side and the phase with the median p99 counts;
p99_ms_max is the worst phase. The same load generator then times the raw relay at the same
rate (raw_p50_ms, raw_p99_ms):
what the broker and the generator cost by themselves on this machine. hub_cpu_us_msg is the
hub process's CPU time per message during its latency phase (steadier than latency on a
shared 2-core machine).
Last line: RESULT hop raw_msg_s=... hub_msg_s=... ratio=... p50_ms=... p99_ms=... raw_p50_ms=...
raw_p99_ms=... hub_cpu_us_msg=... offered=...
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import ADAPTER_NAMES, load_config  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.topology import drop_prefixed_users as drop_bench_users  # noqa: E402

QQ = {"x-queue-type": "quorum"}


def sample_body(i: int) -> bytes:
    text = ("广东用户在北京漫游时反映信号差,请协助处理。" * 12)[:300]
    xml = (f'<?xml version="1.0" encoding="GBK"?><Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>44</CompanyCode>'
           f"<To>11</To><Title>网络信号投诉转派 {i}</Title><Text>{text}</Text></Notice>")
    return xml.encode("gbk")


def progress(msg: str) -> None:
    print(f"[hop] {msg}", file=sys.stderr, flush=True)


def depth(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def measure_drain(params, queue: str, n: int, timeout: float) -> float:
    """Messages/s from the first to the last message arriving in `queue`."""
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    t_first = c_first = None
    deadline = time.time() + timeout
    c = 0
    while time.time() < deadline:
        c = depth(ch, queue)
        now = time.perf_counter()
        if c > 0 and t_first is None:
            t_first, c_first = now, c
        if c >= n:
            conn.close()
            return (n - c_first) / max(now - t_first, 1e-6)
        time.sleep(0.01)
    conn.close()
    raise SystemExit(f"timeout: {queue} reached {c} of {n}")


# ---------------------------------------------------------------- raw baseline
RAW_RELAY = r'''
import pika, sys
params = pika.URLParameters(sys.argv[1]); prefetch = int(sys.argv[2])
state = {"seq": 0, "unconf": {}}
def on_open(conn): conn.channel(on_open_callback=on_channel)
def on_channel(ch):
    state["ch"] = ch
    ch.basic_qos(prefetch_count=prefetch, callback=lambda f: ch.confirm_delivery(on_confirm, callback=lambda f: ch.basic_consume("bench.q1", on_msg)))
def on_msg(ch, m, p, body):
    ch.basic_publish("", "bench.q2", body, p)
    state["seq"] += 1; state["unconf"][state["seq"]] = m.delivery_tag
def on_confirm(f):
    tag, mult = f.method.delivery_tag, f.method.multiple
    ks = [k for k in state["unconf"] if (k <= tag if mult else k == tag)]
    if not ks: return
    last = max(state["unconf"][k] for k in ks)
    for k in ks: del state["unconf"][k]
    state["ch"].basic_ack(last, multiple=True)
c = pika.SelectConnection(params, on_open_callback=on_open); c.ioloop.start()
'''


def raw_relay(url: str, n: int, body: bytes, prefetch: int) -> float:
    params = pika.URLParameters(url)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    for q in ("bench.q1", "bench.q2"):
        ch.queue_declare(q, durable=True, arguments=QQ)
    props = pika.BasicProperties(delivery_mode=2, content_type="application/xml", message_id="x")
    for _ in range(n):
        ch.basic_publish("", "bench.q1", body, props)
    while depth(ch, "bench.q1") < n:
        time.sleep(0.05)
    conn.close()
    proc = subprocess.Popen([sys.executable, "-c", RAW_RELAY, url, str(prefetch)])
    try:
        return measure_drain(params, "bench.q2", n, timeout=120)
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------- hub hop
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def histogram_buckets(text: str, name: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of a Prometheus histogram in exposition text (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(float(s.labels["le"]), s.value)
            for family in text_string_to_metric_families(text) if family.name == name
            for s in family.samples if s.name == f"{name}_bucket"]


def histogram_quantile(after: str, name: str, q: float, before: str = "") -> float:
    """The q-quantile (ms) of what a histogram counted between two scrapes, by bucket interpolation."""
    old = dict(histogram_buckets(before, name)) if before else {}
    buckets = [(le, n - old.get(le, 0.0)) for le, n in histogram_buckets(after, name)]
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total, prev_le, prev_n = buckets[-1][1], 0.0, 0.0
    for le, n in buckets:
        if n >= q * total:
            if le == float("inf"):
                return prev_le * 1000
            return (prev_le + (le - prev_le) * ((q * total - prev_n) / max(n - prev_n, 1e-9))) * 1000
        prev_le, prev_n = le, n
    return float("nan")


def start_hub(settings: Settings, tmp: Path, metrics_port: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, HUB_VHOST=settings.vhost, HUB_USER_PREFIX=settings.user_prefix, HUB_STORE_URL=settings.store_url,
               HUB_DATA_DIR=str(tmp), HUB_LOG_LEVEL="WARNING")
    if metrics_port:
        env["HUB_METRICS_PORT"] = str(metrics_port)
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--no-watch"], cwd=ROOT, env=env)


def preload_hub(settings: Settings, passwords: dict, n: int) -> None:
    url = settings.amqp_url_for_vhost(settings.broker_user("node-44"), passwords[settings.broker_user("node-44")])
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for i in range(n):
        ch.basic_publish("hub.ingress", "notice.text", sample_body(i), pika.BasicProperties(
            message_id=f"b-{i}", type="notice.text", user_id=settings.broker_user("node-44"), content_type="application/xml",
            content_encoding="gbk", delivery_mode=2))
        if i and i % 5000 == 0:
            progress(f"preloaded {i}/{n}")
    conn.close()
    admin_conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    ach = admin_conn.channel()
    while depth(ach, "hub.in") < n:
        time.sleep(0.05)
    admin_conn.close()


def offered_load(publisher: pika.URLParameters, publish: Callable, consumer: pika.URLParameters, queue: str,
                 rate: int, seconds: float) -> list[float]:
    """Publish `rate` msg/s for `seconds` and time each message to its arrival in `queue` (ms).

    One thread, one pika IOLoop for both connections: the load generator shares the two cores
    with the broker and the hub, so it must cost as little as it can and must not add a GIL
    hand-off between a publishing and a consuming thread to the figures it measures. The
    timestamp travels in the x-sent-ns header, taken just before each publish.
    """
    loop = IOLoop()
    total = int(rate * seconds)
    lat: list[float] = []
    st: dict = {"sent": 0, "ch": None, "start": 0.0, "conns": []}

    def finish() -> None:
        for c in st["conns"]:
            if c.is_open:
                c.close()
        loop.call_later(0.2, loop.stop)

    def on_message(_ch, _m, props, _body) -> None:
        sent = (props.headers or {}).get("x-sent-ns")
        if sent is not None:
            lat.append((time.time_ns() - int(sent)) / 1e6)
        if len(lat) >= total:
            finish()

    def tick() -> None:
        due = min(total, int((time.perf_counter() - st["start"]) * rate) + 1)
        while st["sent"] < due:
            publish(st["ch"], st["sent"])
            st["sent"] += 1
        if st["sent"] < total:
            loop.call_later(0.001, tick)

    def publisher_ready(ch) -> None:
        st["ch"], st["start"] = ch, time.perf_counter()
        tick()

    def consumer_ready(ch) -> None:
        ch.basic_consume(queue, on_message, auto_ack=True)
        st["conns"].append(SelectConnection(
            publisher, custom_ioloop=loop,
            on_open_callback=lambda c: c.channel(on_open_callback=publisher_ready)))

    st["conns"].append(SelectConnection(
        consumer, custom_ioloop=loop,
        on_open_callback=lambda c: c.channel(on_open_callback=lambda ch: ch.basic_qos(
            prefetch_count=500, callback=lambda _f: consumer_ready(ch)))))
    loop.call_later(seconds + 60, finish)  # bounded: a stalled hub ends the phase, short of samples
    loop.start()
    return lat


def latency(settings: Settings, passwords: dict, rate: int, seconds: float, run: int = 0) -> list[float]:
    """The hub's latency: node 44 publishes notices to node 11 through hub.ingress."""
    def user_params(code: str) -> pika.URLParameters:
        user = settings.broker_user(f"node-{code}")
        return pika.URLParameters(settings.amqp_url_for_vhost(user, passwords[user]))

    def publish(ch, i: int) -> None:
        ch.basic_publish("hub.ingress", "notice.text", sample_body(i), pika.BasicProperties(
            message_id=f"lat-{run}-{i}", type="notice.text", user_id=settings.broker_user("node-44"),
            content_type="application/xml", content_encoding="gbk", delivery_mode=2,
            headers={"x-sent-ns": time.time_ns()}))

    return offered_load(user_params("44"), publish, user_params("11"), "node.11", rate, seconds)


def raw_latency(url: str, rate: int, seconds: float, prefetch: int) -> list[float]:
    """The baseline's latency with the same load generator: q1 -> raw relay -> q2."""
    params = pika.URLParameters(url)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_purge("bench.q2")
    proc = subprocess.Popen([sys.executable, "-c", RAW_RELAY, url, str(prefetch)])
    try:
        deadline = time.time() + 30  # the relay's start-up must not count as latency
        while ch.queue_declare("bench.q1", passive=True).method.consumer_count == 0:
            if time.time() > deadline:
                raise SystemExit("the raw relay did not start consuming within 30 s")
            time.sleep(0.05)
        conn.close()
        def publish(ch, i: int) -> None:
            ch.basic_publish("", "bench.q1", sample_body(i), pika.BasicProperties(
                delivery_mode=2, content_type="application/xml", message_id=f"lat-{i}",
                headers={"x-sent-ns": time.time_ns()}))
        return offered_load(params, publish, params, "bench.q2", rate, seconds)
    finally:
        proc.terminate()
        proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The (p50, p99) of the phase with the median p99."""
    return sorted(runs, key=lambda r: r[1])[len(runs) // 2]


def percentiles(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    if not lat:
        return float("nan"), float("nan")
    return statistics.median(lat), lat[max(0, int(len(lat) * 0.99) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="latency phases per side; the median phase counts (this machine's load varies)")
    args = ap.parse_args()
    n = args.n or (5_000 if args.quick else 30_000)
    seconds = 5 if args.quick else 20
    vhost = f"bench-hop-{uuid.uuid4().hex[:6]}"
    tmp = Path(f"/tmp/{vhost}")
    tmp.mkdir(parents=True)
    settings = Settings(vhost=vhost, user_prefix=f"{vhost}.", store_url=f"sqlite:///{tmp}/hub.sqlite3", data_dir=tmp,
                        config_dir=ROOT / "config", routes_dir=ROOT / "routes")
    admin = BrokerAdmin.from_settings(settings)
    admin.create_vhost(vhost)
    admin.set_permissions("guest", vhost, ".*", ".*", ".*")
    hub_proc = None
    try:
        body = sample_body(0)
        progress(f"{len(body)}-byte GBK XML messages, n={n}")
        progress("raw pika relay (confirms, pipelined)")
        raw = raw_relay(settings.amqp_url_for_vhost(), n, body, prefetch=settings.hop.prefetch)
        progress(f"raw relay: {raw:.0f} msg/s")

        cfg = load_config(settings.config_dir, settings.routes_dir)
        t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
        passwords = topo.load_or_create_passwords(settings, t.user_names)
        topo.apply(t, settings, passwords)
        progress("preloading hub.in")
        preload_hub(settings, passwords, n)
        metrics_port = free_port()
        hub_proc = start_hub(settings, tmp, metrics_port)
        admin_params = pika.URLParameters(settings.amqp_url_for_vhost())
        hub_rate = measure_drain(admin_params, "node.11", n, timeout=300)
        progress(f"hub hop: {hub_rate:.0f} msg/s")
        conn = pika.BlockingConnection(admin_params)
        conn.channel().queue_purge("node.11")
        conn.close()

        import requests

        before = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        cpu_before = cpu_seconds(hub_proc.pid)
        hub_runs = []
        for r in range(args.repeat):
            progress(f"latency at {args.rate} msg/s for {seconds}s (phase {r + 1} of {args.repeat})")
            lat = latency(settings, passwords, args.rate, seconds, run=r)
            hub_runs.append(percentiles(lat))
            progress(f"latency: {len(lat)} messages, p50 {hub_runs[-1][0]:.1f} ms, p99 {hub_runs[-1][1]:.1f} ms")
        hub_cpu_us = (cpu_seconds(hub_proc.pid) - cpu_before) * 1e6 / (args.repeat * args.rate * seconds)
        p50, p99 = median_run(hub_runs)
        progress(f"hub: median phase p50 {p50:.1f} ms, p99 {p99:.1f} ms (p99 of each phase: "
                 f"{', '.join(f'{x[1]:.0f}' for x in hub_runs)}); hub CPU {hub_cpu_us:.0f} us a message")
        # Where it goes, from the hub's own histograms over the latency phase only.
        after = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        inside = {(k, q): histogram_quantile(after, f"hub_{k}_seconds", q, before)
                  for k in ("hop", "commit", "loop_lag") for q in (0.5, 0.99)}
        progress(f"inside the hub: arrival to commit-ok p50 {inside['hop', 0.5]:.1f} ms p99 "
                 f"{inside['hop', 0.99]:.1f} ms; tx.commit round trip p50 {inside['commit', 0.5]:.1f} ms "
                 f"p99 {inside['commit', 0.99]:.1f} ms; event-loop lag p50 {inside['loop_lag', 0.5]:.1f} ms "
                 f"p99 {inside['loop_lag', 0.99]:.1f} ms")
        hub_proc.terminate()
        hub_proc.wait(20)
        hub_proc = None
        raw_runs = []
        for r in range(args.repeat):
            progress(f"raw relay latency at {args.rate} msg/s, same load generator (phase {r + 1} of {args.repeat})")
            raw_runs.append(percentiles(raw_latency(settings.amqp_url_for_vhost(), args.rate, seconds,
                                                    settings.hop.prefetch)))
        raw_p50, raw_p99 = median_run(raw_runs)
        progress(f"raw relay: median phase p50 {raw_p50:.1f} ms, p99 {raw_p99:.1f} ms (p99 of each phase: "
                 f"{', '.join(f'{x[1]:.0f}' for x in raw_runs)})")
        print(f"RESULT hop raw_msg_s={raw:.0f} hub_msg_s={hub_rate:.0f} ratio={hub_rate / raw:.2f} "
              f"p50_ms={p50:.1f} p99_ms={p99:.1f} raw_p50_ms={raw_p50:.1f} raw_p99_ms={raw_p99:.1f} "
              f"p99_ms_max={max(x[1] for x in hub_runs):.1f} hub_cpu_us_msg={hub_cpu_us:.0f} offered={args.rate} "
              f"repeat={args.repeat} n={n} bytes={len(body)}")
    finally:
        if hub_proc is not None:
            hub_proc.terminate()
            hub_proc.wait(20)
        admin.delete_vhost(vhost)
        drop_bench_users(admin, settings)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
