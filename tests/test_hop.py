"""The reliable hop against the real RabbitMQ: delivery, crashes, restarts, poison, refusals."""

from __future__ import annotations

import subprocess
import time

import pika
import pytest
import requests
from lxml import etree
from running_hub import HubSubprocess, HubThread, Node, notice
from waiting import wait_until

from hub.store import JournalStatus, open_store
from mappings import registry
from protocols.errors import ReasonCode, TransientFailure

H = "{urn:cs-hub:hub:1}"


@pytest.fixture
def nodes(settings, applied_topology):
    _, passwords = applied_topology
    made = {}

    def node(code: str) -> Node:
        if code not in made:
            made[code] = Node(settings, code, passwords[settings.broker_user(f"node-{code}")])
        return made[code]
    yield node
    for n in made.values():
        n.close()


@pytest.fixture
def hub(settings, applied_topology):
    h = HubThread(settings).start()
    yield h
    h.stop()


def admin_channel(settings):
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    return conn, conn.channel()


def depth(settings, queue: str) -> int:
    conn, ch = admin_channel(settings)
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def dlq_get(settings, timeout: float = 10.0):
    conn, ch = admin_channel(settings)
    box = []

    def one():
        m, p, b = ch.basic_get("hub.dlq", auto_ack=True)
        if m:
            box.append((p, b))
        return bool(box)
    try:
        wait_until(one, timeout, 0.05, "a message arrives in hub.dlq")
    finally:
        conn.close()
    return box[0]


def test_gbk_province_to_utf8_province_chinese_intact(hub, nodes):
    gd, bj = nodes("44"), nodes("11")
    body = ('<?xml version="1.0" encoding="GBK"?>' + notice("44", "11", "漫游用户投诉:信号差").decode()).encode("gbk")
    gd.publish("notice.text", body, "gd-1", encoding="gbk")
    _, props, got = bj.get()
    assert props.content_encoding == "utf-8"
    assert props.message_id == "gd-1" and props.type == "notice.text"
    assert props.headers["x-hub-source"] == "44"
    root = etree.fromstring(got)
    assert root.findtext(f"{H}Text") == "漫游用户投诉:信号差"
    # and back: UTF-8 Beijing to GBK Guangdong
    bj.publish("notice.text", notice("11", "44", "北京已处理,回复广东"), "bj-1")
    _, props, got = gd.get()
    assert props.content_encoding == "gbk"
    assert got.decode("gbk").count("北京已处理,回复广东") == 1


def test_duplicate_message_id_delivered_once(hub, nodes, settings):
    gd, bj = nodes("44"), nodes("11")
    for _ in range(3):
        gd.publish("notice.text", notice("44", "11"), "same-id")
    gd.publish("notice.text", notice("44", "11"), "other-id")
    msgs = bj.drain(2)
    wait_until(lambda: depth(settings, "hub.in") == 0, 10, description="hub.in is empty")
    msgs += bj.drain(0, timeout=1)
    assert sorted(p.message_id for _, p, _ in msgs) == ["other-id", "same-id"]
    store = open_store(settings.store_url)
    rec = wait_until(lambda: (r := store.get("same-id")) and r.duplicates == 2 and r, 5,
                     description="the journal counts two duplicates")
    assert rec.status == "delivered"
    store.close()


def test_a_message_id_reused_for_another_type_is_refused_with_a_nack(hub, nodes, settings):
    gd, bj = nodes("44"), nodes("11")
    gd.publish("notice.text", notice("44", "11"), "reused-id")
    bj.get()
    sms = ('<SmsSend xmlns="urn:cs-hub:sms:1"><CompanyCode>44</CompanyCode><To>13902001234</To>'
           "<Text>您的投诉已受理。</Text><Purpose>complaint_reply</Purpose></SmsSend>").encode()
    gd.publish("sms.send", sms, "reused-id")
    _, props, body = gd.get()
    assert props.type == "hub.nack" and props.correlation_id == "reused-id"
    nack = etree.fromstring(body)
    assert nack.findtext(f"{H}ReasonCode") == "DUPLICATE"
    assert "already delivered as a notice.text message" in nack.find(f"{H}Reason[@lang='en']").text
    assert nack.find(f"{H}Reason[@lang='zh']").text
    dl_props, dl_body = dlq_get(settings)
    assert dl_props.message_id == "reused-id" and dl_props.headers["x-hub-reason-code"] == "DUPLICATE"
    assert dl_body == sms
    # the same notice again is a re-send: dropped, no nack; the journal keeps the first message
    gd.publish("notice.text", notice("44", "11"), "reused-id")
    store = open_store(settings.store_url)
    try:
        rec = wait_until(lambda: (r := store.get("reused-id")) and r.duplicates == 2 and r, 10,
                         description="the journal counts the refused reuse and the re-send")
        assert rec.status == "delivered" and rec.type == "notice.text"
        assert any(h.status == "duplicate" and "DUPLICATE" in (h.detail or "") for h in rec.hops)
    finally:
        store.close()
    assert gd.drain(0, timeout=1) == [] and bj.drain(0, timeout=1) == []


@pytest.mark.parametrize("case,reason", [
    ("spoofed", ReasonCode.SPOOFED_SENDER),
    ("unknown_type", ReasonCode.UNKNOWN_TYPE),
    ("malformed", ReasonCode.XML_MALFORMED),
    ("xxe", ReasonCode.XML_FORBIDDEN),
    ("mislabelled_gbk", ReasonCode.ENCODING_INVALID),
    ("schema", ReasonCode.XSD_INVALID),
    ("oversize", ReasonCode.OVERSIZE),
    ("unknown_recipient", ReasonCode.UNKNOWN_NODE),
])
def test_refused_message_dead_lettered_and_nacked(hub, nodes, settings, case, reason):
    gd = nodes("44")
    body, type_, enc = notice("44", "11"), "notice.text", "utf-8"
    if case == "spoofed":
        body = notice("11", "31")
    elif case == "unknown_type":
        type_ = "order.teleport"
    elif case == "malformed":
        body = b"<Notice xmlns='urn:cs-hub:hub:1'><CompanyCode>44</CompanyCode>"
    elif case == "xxe":
        body = (b'<?xml version="1.0"?><!DOCTYPE n [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>44</CompanyCode><To>11</To>'
                b"<Title>&x;</Title><Text>t</Text></Notice>")
    elif case == "mislabelled_gbk":
        body = notice("44", "11", "广东").decode().encode("gbk")  # GBK bytes, declared utf-8
    elif case == "schema":
        body = b'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>44</CompanyCode><Title>t</Title></Notice>'
    elif case == "oversize":
        body = notice("44", "11", "x" * 300_000)
    elif case == "unknown_recipient":
        body = notice("44", "77")
    gd.publish(type_, body, f"bad-{case}", encoding=enc)
    _, props, nack = gd.get()
    assert props.type == "hub.nack" and props.correlation_id == f"bad-{case}"
    root = etree.fromstring(nack)
    assert root.findtext(f"{H}ReasonCode") == reason
    assert root.findtext(f"{H}MessageId") == f"bad-{case}"
    assert root.find(f"{H}Reason[@lang='zh']").text  # Chinese first
    assert f"bad-{case}" in root.find(f"{H}Reason[@lang='en']").text
    dprops, dbody = dlq_get(settings)
    assert dprops.message_id == f"bad-{case}"
    assert dprops.headers["x-hub-reason-code"] == reason
    assert dprops.headers["x-hub-origin-user"] == settings.broker_user("node-44")
    assert dbody == body  # the original bytes, untouched, for replay


def test_message_without_user_id_is_dead_lettered(hub, nodes, settings):
    gd = nodes("44")
    gd.publish("notice.text", notice("44", "11"), "anon-1", user_id=None)
    dprops, _ = dlq_get(settings)
    assert dprops.headers["x-hub-reason-code"] == ReasonCode.SENDER_UNAUTHENTICATED
    assert depth(settings, "node.11") == 0


def test_poison_message_retried_then_dead_lettered_with_nack(settings, applied_topology, nodes, monkeypatch,
                                                             tmp_path):
    calls = []

    def flaky_resolver(root, ctx):
        calls.append(time.monotonic())
        raise TransientFailure("CRM of province 11 does not answer", reason=ReasonCode.PARTNER_UNAVAILABLE)

    monkeypatch.setitem(registry.RESOLVERS, "notice_recipient", flaky_resolver)
    h = HubThread(settings).start()
    try:
        gd = nodes("44")
        gd.publish("notice.text", notice("44", "11"), "poison-1")
        dprops, _ = dlq_get(settings, timeout=20)
        assert dprops.headers["x-hub-reason-code"] == ReasonCode.RETRY_EXHAUSTED
        assert "CRM of province 11 does not answer" in dprops.headers["x-hub-reason"]
        assert dprops.headers["x-hub-attempt"] == settings.max_attempts
        assert dprops.headers["x-hub-route"] == "notice"
        assert len(calls) == settings.max_attempts
        assert calls[1] - calls[0] >= 0.2  # waited in the first retry tier (200 ms)
        _, props, nack = gd.get()
        assert props.type == "hub.nack" and props.correlation_id == "poison-1"
        assert etree.fromstring(nack).findtext(f"{H}ReasonCode") == ReasonCode.RETRY_EXHAUSTED
        store = open_store(settings.store_url)
        rec = wait_until(lambda: (r := store.get("poison-1")) and r.status == "dead_lettered" and r, 5,
                         description="the journal shows the dead letter")
        assert rec.attempts == settings.max_attempts
        assert [h.status for h in rec.hops].count("retry") == settings.max_attempts - 1
        store.close()
    finally:
        h.stop()


def _publish_many(settings, password, n, prefix):
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost(settings.broker_user("node-44"), password)))
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("hub.ingress", "notice.text", notice("44", "11", f"第{i}条"), pika.BasicProperties(
            message_id=f"{prefix}-{i}", type="notice.text", user_id=settings.broker_user("node-44"), delivery_mode=2,
            content_type="application/xml", content_encoding="utf-8"))
    conn.close()


def _collect_ids(node: Node, expect: int, timeout: float) -> list[str]:
    ids: list[str] = []

    def more():
        while True:
            m, p, _ = node.ch.basic_get("node.11", auto_ack=True)
            if not m:
                break
            ids.append(p.message_id)
        return len(set(ids)) >= expect
    wait_until(more, timeout, 0.05, f"{expect} distinct messages reach node.11")
    return ids


@pytest.mark.slow
def test_kill9_midstream_every_message_once(settings, applied_topology, nodes, tmp_path):
    """kill -9 the hub in the middle of 10,000 messages, restart: all delivered, none twice."""
    _, passwords = applied_topology
    n = 10_000
    _publish_many(settings, passwords[settings.broker_user("node-44")], n, "k9")
    hub = HubSubprocess(settings, tmp_path, "hub-a").start()
    try:
        wait_until(lambda: depth(settings, "node.11") >= 2_000, 60, description="2,000 messages relayed")
        hub.kill9()
        relayed_before = depth(settings, "node.11")
        assert relayed_before < n, "the hub finished before it could be killed; raise n"
        hub = HubSubprocess(settings, tmp_path, "hub-b").start()
        bj = nodes("11")
        ids = _collect_ids(bj, n, 120)
        wait_until(lambda: depth(settings, "hub.in") == 0, 30, description="hub.in drained")
        ids += _collect_ids(bj, 0, 1)
        assert len(ids) == n, f"{len(ids) - len(set(ids))} duplicates delivered to node 11"
        assert set(ids) == {f"k9-{i}" for i in range(n)}
        assert depth(settings, "hub.dlq") == 0
    finally:
        hub.stop()


@pytest.mark.slow
def test_broker_restart_midstream_nothing_lost(settings, applied_topology, nodes, tmp_path):
    _, passwords = applied_topology
    n = 5_000
    _publish_many(settings, passwords[settings.broker_user("node-44")], n, "br")
    h = HubThread(settings).start()
    try:
        wait_until(lambda: depth(settings, "node.11") >= 500, 60, description="500 messages relayed")
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
        subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, timeout=120)
        bj = nodes("11")
        ids = _collect_ids(bj, n, 120)
        assert set(ids) == {f"br-{i}" for i in range(n)}, "messages were lost across the broker restart"
        assert h.proc.worker.stats["reconnects"] >= 1
    finally:
        h.stop()


def test_sigterm_finishes_in_flight_and_exits_zero(settings, applied_topology, nodes, tmp_path):
    _, passwords = applied_topology
    n = 3_000
    _publish_many(settings, passwords[settings.broker_user("node-44")], n, "st")
    hub = HubSubprocess(settings, tmp_path).start()
    try:
        wait_until(lambda: depth(settings, "node.11") >= 300, 60, description="300 messages relayed")
        assert hub.terminate() == 0, hub.log_text()[-2000:]
        # every message is either delivered or still waiting in hub.in: none lost, none half-done
        # (the broker returns the closed connection's unacked messages to hub.in asynchronously)
        def where():
            out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", settings.vhost, "name",
                                  "messages_ready", "messages_unacknowledged"],
                                 capture_output=True, text=True, timeout=30).stdout
            return "\n".join(line for line in out.splitlines() if not line.endswith("\t0\t0"))
        try:
            wait_until(lambda: depth(settings, "node.11") + depth(settings, "hub.in") == n, 15,
                       description=f"delivered + waiting == {n}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; queues:\n{where()}\nhub log:\n{hub.log_text()[-3000:]}") from None
        # the journal claims exactly what was delivered, and the stop raised no channel error
        with open_store(settings.store_url) as store:
            assert store.count_by_status().get(JournalStatus.delivered, 0) == depth(settings, "node.11")
        assert '"level": "ERROR"' not in hub.log_text(), hub.log_text()[-3000:]
    finally:
        hub.stop()


def test_refused_message_fixed_and_resent_with_the_same_id_is_delivered(hub, nodes, settings):
    gd, bj = nodes("44"), nodes("11")
    gd.publish("notice.text", notice("44", "77"), "fix-me")  # unknown recipient: refused
    _, props, _ = gd.get()
    assert props.type == "hub.nack"
    gd.publish("notice.text", notice("44", "11"), "fix-me")  # fixed, same message id
    _, props, _ = bj.get()
    assert props.message_id == "fix-me"


def test_the_hop_exports_its_own_metrics(settings, applied_topology, nodes, free_tcp_port):
    s = settings.model_copy(update={"metrics_port": free_tcp_port})
    h = HubThread(s).start()
    try:
        gd, bj = nodes("44"), nodes("11")
        gd.publish("notice.text", notice("44", "11"), "m-ok")
        gd.publish("notice.text", notice("44", "77"), "m-refused")  # unknown recipient
        bj.get()
        gd.get()

        def scrape():
            text = requests.get(f"http://127.0.0.1:{free_tcp_port}/metrics", timeout=5).text
            return text if 'verdict="dead_lettered"' in text else None
        text = wait_until(scrape, 10, description="both verdicts counted")
        for line in ('hub_messages_total{route="notice",source="44",type="notice.text",verdict="delivered"} 1.0',
                     'hub_messages_total{route="notice",source="44",type="notice.text",verdict="dead_lettered"} 1.0',
                     'hub_deliveries_total{destination="node.11"} 1.0',
                     'hub_deliveries_total{destination="node.44"} 1.0',  # the nack to the sender
                     'hub_failures_total{reason_code="UNKNOWN_NODE",verdict="dead_lettered"} 1.0',
                     "hub_connected 1.0", "hub_hop_seconds_count 2.0"):
            assert line in text, f"{line!r} not in:\n{text}"
    finally:
        h.stop()
