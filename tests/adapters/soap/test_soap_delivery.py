"""Delivery to a province CRM by SOAP: the spyne CRM receives through the adapter from the real
broker, survives faults and timeouts with nothing lost and nothing duplicated, and what it
refuses or keeps failing ends in hub.dlq with the fault text."""

from __future__ import annotations

import pika
import pytest
from running_hub import HubThread, Node, notice
from waiting import wait_until

from adapters.soap import records
from adapters.soap.config import SoapFile
from adapters.soap.delivery import DeliveryService
from hub import envelope as ev
from hub.store import open_store


def _cfg(crm, **delivery) -> SoapFile:
    return SoapFile.model_validate({
        "delivery": {"connect_timeout_s": 1, "operation_timeout_s": 0.4, **delivery},
        "nodes": {"44": {"crm": {"address": crm.address, "wsse": {"username": "cs-hub", "password": "crm-secret"}}}},
    })


@pytest.fixture
def delivery(settings, soap_topology, crm):
    crm.state.wsse = ("cs-hub", "crm-secret")
    store = open_store(settings.store_url)
    made = []

    def start(**kw) -> DeliveryService:
        svc = DeliveryService(_cfg(crm, **kw), settings, store).start()
        assert svc.wait_ready(15), "the SOAP delivery did not start consuming within 15 s"
        made.append(svc)
        return svc
    yield start, store
    for svc in made:
        svc.stop(15)
    store.close()


def _depth(settings, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def _dead_letters(settings) -> list:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    out = []
    try:
        ch = conn.channel()
        while True:
            m, p, b = ch.basic_get(ev.DLQ, auto_ack=True)
            if m is None:
                return out
            out.append((p, b))
    finally:
        conn.close()


def test_crm_receives_through_the_running_hub_and_recovers_from_faults_and_timeouts(settings, soap_topology,
                                                                                     delivery, crm):
    start, store = delivery
    _topology, passwords = soap_topology
    crm.state.faults_left = 3          # soap:Server faults
    crm.state.hangs_left = 2           # no answer within the 0.4 s operation timeout
    svc = start(max_attempts=5)
    hub = HubThread(settings).start()
    hq = Node(settings, "00", passwords[settings.broker_user("node-00")])
    try:
        ids = [f"soap-k-{i}" for i in range(6)]
        for i, mid in enumerate(ids):
            hq.publish("notice.text", notice("00", "44", text=f"知识更新 {i}"), mid)
        wait_until(lambda: set(crm.state.held) == set(ids), 30, 0.05,
                   f"the CRM holds all of {ids} (holds {sorted(crm.state.held)})")
        wait_until(lambda: _depth(settings, "node.44") == 0, 5, 0.05, "node.44 is empty")
    finally:
        hq.close()
        hub.stop()
    held = crm.state.held
    assert len(held) == 6, "each message is held once (nothing duplicated)"
    assert all(held[m]["type"] == "notice.text" and held[m]["source"] == "00" for m in ids)
    assert "知识更新 3" in held[ids[3]]["payload"] and not held[ids[3]]["payload"].startswith("<?xml")
    assert len(crm.state.calls) >= 6 + 5, "every fault and timeout was retried"
    assert set(crm.state.tokens) == {("cs-hub", "crm-secret")}, "every call carried the UsernameToken"
    assert _dead_letters(settings) == []
    stats = svc.health()["44"]
    assert stats["delivered"] + stats["duplicate"] == 6 and stats["retrying"] == 5 and stats["dead_lettered"] == 0
    rows = [r for m in ids for r in records.of_message(store, m)]
    assert {r.reason_code for r in rows if r.outcome == "retrying"} == {"PARTNER_FAULT", "PARTNER_TIMEOUT"}
    assert sum(r.outcome in ("delivered", "duplicate") for r in rows) == 6
    # `hub trace ID`: every CRM call is a hop of the message's journey, after the hub's own.
    def crm_hops():
        got = {m: [h for h in store.get(m).hops if h.destination == "crm.44"] for m in ids}
        return got if sum(len(h) for h in got.values()) == len(rows) else None
    wait_until(crm_hops, 10, 0.05, "every CRM call is in the journal")
    hops = crm_hops()
    assert all(h[-1].status in ("crm_accepted", "crm_duplicate") for h in hops.values())
    assert {h.status for m in ids for h in hops[m][:-1]} == {"crm_fault", "crm_timeout"}
    assert any("CRM database unavailable (test)" in (h.detail or "") for m in ids for h in hops[m])
    assert store.get(ids[0]).hops[0].destination != "crm.44", "the hub's hop comes first"


def test_refusals_and_exhausted_retries_are_dead_lettered_with_the_fault_text(settings, soap_topology, delivery,
                                                                              crm):
    start, store = delivery
    crm.state.refuse_types = {"hub.nack"}
    crm.state.faults_left = 3
    start(max_attempts=3)
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    ch = conn.channel()
    ch.confirm_delivery()

    def put(mid: str, type_: str, body: bytes) -> None:
        ch.basic_publish(ev.DELIVER_EXCHANGE, "node.44", body, pika.BasicProperties(
            message_id=mid, type=type_, content_type="application/xml", content_encoding="utf-8", delivery_mode=2,
            headers={ev.H_SOURCE: "00"}))
    try:
        put("soap-refused", "hub.nack", b'<Nack xmlns="urn:cs-hub:hub:1"/>')
        put("soap-exhausted", "notice.text", notice("00", "44"))
        wait_until(lambda: len(crm.state.calls) >= 4, 15, 0.05, "the CRM was called four times")
        crm.state.faults_left = 0
        put("soap-after", "notice.text", notice("00", "44", text="恢复后"))
        wait_until(lambda: "soap-after" in crm.state.held, 15, 0.05, "the CRM holds the message after recovery")
        dead = {}
        wait_until(lambda: dead.update({p.message_id: p for p, _b in _dead_letters(settings)}) or len(dead) == 2,
                   10, 0.05, "two dead letters in hub.dlq")
    finally:
        conn.close()
    refused, exhausted = dead["soap-refused"].headers, dead["soap-exhausted"].headers
    assert refused[ev.H_REASON_CODE] == "PARTNER_REFUSED" and "TYPE_NOT_SUPPORTED" in refused[ev.H_REASON]
    assert exhausted[ev.H_REASON_CODE] == "RETRY_EXHAUSTED" and exhausted[ev.H_ATTEMPT] == 3
    assert "CRM database unavailable (test)" in exhausted[ev.H_REASON]
    assert exhausted[ev.H_STAGE] == "adapter.soap" and exhausted[ev.H_ORIG_RK] == "node.44"
    assert crm.state.calls.count("soap-refused") == 1, "a refusal is not retried"
    assert [r.outcome for r in records.of_message(store, "soap-exhausted")] == ["retrying", "retrying",
                                                                              "dead_lettered"]
    assert set(crm.state.held) == {"soap-after"}
