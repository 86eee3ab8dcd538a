"""Benchmark of the SMPP adapter against a raw smpplib windowed client, same SMSC, same run.

(a) raw: smpplib's Client, bound as transceiver with TCP_NODELAY, a window of 100 submit_sm
    (send_message does not wait; read_once reads one PDU and answers deliver_sm), counting
    until every receipt is in — the baseline, no bus, no ledger.
(b) hub: `hub smpp run` in its own process, window 100, doing its real work: consume
    sms.send from adapter.smpp (quorum queue), parse the XML, split, submit, record every
    accepted part in the ledger (SQLite), ack; parse each receipt, correlate it
    (hex / decimal / padded ids, rotating), record it, publish sms.status to node.44 with
    publisher confirms through the outbox, answer deliver_sm after the commit.
The sms.send messages are published into adapter.smpp beforehand (as the hub delivers
them); the rate is measured from the first to the last sms.status arriving in node.44.
Both are measured against the npm `smpp` SMSC (tests/peers/smsc/smsc.js, not recording, so
that the peer is as fast as it gets), then again with 10 ms of SMSC latency per
submit_sm_resp; raw and hub alternate, and the best of each counts (--repeat, 2 with
--quick, 3 otherwise): the machine's other load varies.

    python bench/smpp.py [--quick] [-n N] [--repeat K]
Last line: RESULT smpp hub_msg_s=... raw_msg_s=... ratio=... hub_msg_s_10ms=... raw_msg_s_10ms=... ratio_10ms=...
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika
from hop import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub import topology as topo  # noqa: E402
from hub.broker_admin import BrokerAdmin  # noqa: E402
from hub.configuration import ADAPTER_NAMES, load_config  # noqa: E402
from hub.envelope import DELIVER_EXCHANGE, H_SOURCE  # noqa: E402
from hub.settings import load_settings  # noqa: E402
from mappings.sms.templates import render  # noqa: E402
from protocols import xmlwire  # noqa: E402
from protocols.sms.wire import SmsSend, send_tree  # noqa: E402

SMSC_DIR = ROOT / "tests" / "peers" / "smsc"
WINDOW = 100
TEXT = render("one_time_password", sign="中国移动", code="384912", minutes=5)


def progress(msg: str) -> None:
    print(f"[smpp] {msg}", file=sys.stderr, flush=True)


class Smsc:
    def __init__(self, latency_ms: int) -> None:
        if not (SMSC_DIR / "node_modules" / "smpp").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(SMSC_DIR)], check=True,
                           capture_output=True)
        self.port = free_port()
        args = ["node", "smsc.js", "--port", str(self.port), "--system-id", "cs-hub", "--password", "secret",
                "--no-record"]
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        self.proc = subprocess.Popen(args, cwd=SMSC_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the test SMSC did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


# ---------------------------------------------------------------- raw baseline
RAW_CLIENT = r'''
import socket, sys, time, smpplib.client
port, n, window, text = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = smpplib.client.Client("127.0.0.1", port, timeout=30, allow_unknown_opt_params=True)
c.connect()
c._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.bind_transceiver(system_id="cs-hub", password="secret")
state = {"in_flight": 0, "receipts": 0}
def sent(pdu): state["in_flight"] -= 1
def received(pdu): state["receipts"] += 1
c.set_message_sent_handler(sent)
c.set_message_received_handler(received)
payload = text.encode("utf-16-be")
t0 = time.perf_counter(); sent_n = 0
while state["receipts"] < n:
    while state["in_flight"] < window and sent_n < n:
        c.send_message(source_addr="10086", destination_addr="13902001234", short_message=payload,
                       data_coding=8, registered_delivery=1, dest_addr_ton=1, dest_addr_npi=1)
        state["in_flight"] += 1; sent_n += 1
    c.read_once()
print(n / (time.perf_counter() - t0))
c.unbind(); c.disconnect()
'''


def run_raw(port: int, n: int) -> float:
    out = subprocess.run([sys.executable, "-c", RAW_CLIENT, str(port), str(n), str(WINDOW), TEXT],
                         capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- hub
def preload(params, n: int, run: str) -> None:
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    body = xmlwire.serialise(send_tree(SmsSend(company_code="44", to="13902001234", text=TEXT)), "utf-8")
    for i in range(n):
        props = pika.BasicProperties(message_id=f"{run}-{i}", type="sms.send", content_type="application/xml",
                                     content_encoding="utf-8", delivery_mode=2, app_id="cs-hub",
                                     headers={H_SOURCE: "44"})
        ch.basic_publish(DELIVER_EXCHANGE, "adapter.smpp", body, props)
    deadline = time.time() + 120
    while ch.queue_declare("adapter.smpp", passive=True).method.message_count < n:
        if time.time() > deadline:
            raise SystemExit("the preloaded sms.send did not all reach adapter.smpp")
        time.sleep(0.05)
    conn.close()


def measure(params, queue: str, n: int, timeout: float) -> float:
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    t_first = c_first = None
    deadline = time.time() + timeout
    c = 0
    while time.time() < deadline:
        c = ch.queue_declare(queue, passive=True).method.message_count
        now = time.perf_counter()
        if c > 0 and t_first is None:
            t_first, c_first = now, c
        if c >= n:
            conn.close()
            return (n - c_first) / max(now - t_first, 1e-6)
        time.sleep(0.01)
    conn.close()
    raise SystemExit(f"timeout: {queue} reached {c} of {n} sms.status")


def run_hub(settings, folder: Path, port: int, n: int, run: str) -> float:
    params = pika.URLParameters(settings.amqp_url_for_vhost())
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_purge("node.44")
    conn.close()
    preload(params, n, run)
    config = folder / f"smpp-{run}.yaml"
    config.write_text(json.dumps({
        "smscs": [{"name": "bench", "host": "127.0.0.1", "port": port, "system_id": "cs-hub",
                   "source_addr": "10086", "tps": 100000, "window": WINDOW, "response_timeout_s": 30}],
        "prefetch": 2000, "mo_default_node": "00"}), encoding="utf-8")
    data = settings.model_dump(mode="json")
    data.update(amqp_url=settings.amqp_url.get_secret_value(),
                management_password=settings.management_password.get_secret_value())
    settings_file = folder / "hub.yaml"
    settings_file.write_text(json.dumps(data), encoding="utf-8")
    env = dict(os.environ, HUB_SETTINGS=str(settings_file), HUB_SMPP_PASSWORD_BENCH="secret",
               HUB_LOG_LEVEL="WARNING")
    log = open(folder / f"adapter-{run}.log", "wb")
    cmd = [sys.executable, "-m", "hub.cli", "smpp", "run", "--config", str(config)]
    proc = subprocess.Popen(cmd, cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        return measure(params, "node.44", n, timeout=max(120, n / 100))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages; within a minute")
    ap.add_argument("-n", type=int, help="messages per measurement")
    ap.add_argument("--repeat", type=int, help="measurements of each kind, alternated; the best counts")
    args = ap.parse_args()
    n = args.n or (4000 if args.quick else 20000)
    repeat = args.repeat or (2 if args.quick else 3)

    base = load_settings(ROOT / "config" / "hub.yaml")
    vhost = f"bench-smpp-{secrets.token_hex(3)}"
    folder = Path(tempfile.mkdtemp(prefix="bench-smpp-"))
    settings = base.model_copy(update={"vhost": vhost, "user_prefix": f"{vhost}.", "data_dir": folder / "var",
                                       "store_url": f"sqlite:///{folder / 'hub.sqlite3'}"})
    cfg = load_config(ROOT / "config", ROOT / "routes")
    t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
    with BrokerAdmin.from_settings(settings) as admin:
        admin.create_vhost(vhost, description="bench/smpp.py; deleted after the run")
        admin.set_permissions(settings.management_user, vhost, ".*", ".*", ".*")
        amqp_user = pika.URLParameters(settings.amqp_url.get_secret_value()).credentials.username
        admin.set_permissions(amqp_user, vhost, ".*", ".*", ".*")
    figures: dict[str, float] = {}
    try:
        for name in t.user_names:
            os.environ[topo.password_env_var(name)] = f"bench-{name}"
        topo.apply(t, settings, topo.load_or_create_passwords(settings, t.user_names))
        for latency in (0, 10):
            suffix = "_10ms" if latency else ""
            smsc = Smsc(latency)
            raws, hubs = [], []
            try:
                # Alternated and the best of each kept: the machine's other load varies from
                # second to second, and both sides should be measured at their best.
                for attempt in range(repeat):
                    progress(f"raw smpplib client, window {WINDOW}, {n} messages, latency {latency} ms")
                    raws.append(run_raw(smsc.port, n))
                    progress(f"  raw: {raws[-1]:.0f} msg/s")
                    progress(f"hub smpp adapter, window {WINDOW}, {n} messages, latency {latency} ms")
                    hubs.append(run_hub(settings, folder, smsc.port, n, f"l{latency}-{attempt}"))
                    progress(f"  hub: {hubs[-1]:.0f} msg/s (bus -> SMSC -> receipt -> sms.status)")
            finally:
                smsc.stop()
            figures[f"hub_msg_s{suffix}"] = max(hubs)
            figures[f"raw_msg_s{suffix}"] = max(raws)
            figures[f"ratio{suffix}"] = max(hubs) / max(raws)
    finally:
        with BrokerAdmin.from_settings(settings) as admin:
            admin.delete_vhost(vhost)
            for name in t.user_names:
                if not admin.user_permissions(name):
                    admin.delete_user(name)
        shutil.rmtree(folder, ignore_errors=True)
    print("RESULT smpp " + " ".join(
        f"{k}={v:.2f}" if k.startswith("ratio") else f"{k}={v:.0f}"
        for k, v in (("hub_msg_s", figures["hub_msg_s"]), ("raw_msg_s", figures["raw_msg_s"]),
                     ("ratio", figures["ratio"]), ("hub_msg_s_10ms", figures["hub_msg_s_10ms"]),
                     ("raw_msg_s_10ms", figures["raw_msg_s_10ms"]), ("ratio_10ms", figures["ratio_10ms"]))))


if __name__ == "__main__":
    main()
