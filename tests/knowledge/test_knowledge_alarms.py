"""The knowledge structure and the sharing flows' overdue alarms, end to end on the real broker.

The hub runs in a thread (tests/knowledge/conftest.py); its durable timers are fired by a
TimerService the test ticks at chosen times (as tests/orders do), so receipts and reply
deadlines are overdue without waiting. Alarms go to HQ as knowledge.alarm (config/knowledge.yaml:
receipts due 2h after hand-over).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmsg
import pytest
from kmsg import PROVINCES

from hub.store import knowledge as ks
from hub.store import open_store
from hub.timer_service import TimerService
from protocols.announcements import wire as awire
from protocols.knowledge import wire
from protocols.knowledge.models import CategoryTree, DeliveryReceipt, ReceiptStatus, SyncRequest

GOLDEN = Path(__file__).resolve().parents[1] / "protocols"


@pytest.fixture
def ticker(settings, hub):
    service = TimerService(settings, hub.proc.store, hub.proc.flows, owner=f"ticker-{uuid.uuid4().hex[:6]}")
    yield service
    service.close()


def tree(version: int) -> CategoryTree:
    t = wire.loads((GOLDEN / "knowledge/golden/category_tree.xml").read_bytes())
    return t.model_copy(update={"version": version, "updated_at": kmsg.now()})


def structure_receipt(code: str, version: int) -> bytes:
    return wire.dumps(DeliveryReceipt(company_code=code, item_id="STRUCTURE", version=version,
                                      receipt_status=ReceiptStatus.accepted, received_at=kmsg.now()))


def sync_request(code: str, tree_version: int, mount_point: str | None) -> bytes:
    return wire.dumps(SyncRequest(company_code=code, serial_number=kmsg.serial(), requested_at=kmsg.now(),
                                  tree_version=tree_version, mount_point=mount_point, known=()))


def empty(n) -> bool:
    method, _, _ = n.ch.basic_get(f"node.{n.code}", auto_ack=True)
    return method is None


def test_structure_mounted_per_recipient_confirmed_stale_refused_synced_and_overdue_alarmed(
        hub, node, settings, ticker):
    hq, gd, sh = node("00"), node("44"), node("31")
    t0 = datetime.now(UTC)
    # Guangdong names its root in a sync request before any structure exists: nothing to send yet
    gd.send("knowledge.sync_request", sync_request("44", 0, "GD-KB-ROOT"))
    assert hq.next()[0].type == "knowledge.sync_request"
    props, body = gd.next()
    assert props.type == "knowledge.sync_response" and wire.loads(body).category_tree is None

    # HQ publishes structure version 3: every province and 99 get it, each under its own root
    hq.send("knowledge.structure", wire.dumps(tree(3)))
    props, body = gd.next()
    got = wire.loads(body)
    assert props.type == "knowledge.structure" and (got.version, got.mount_point) == (3, "GD-KB-ROOT")
    props, body = sh.next()
    assert wire.loads(body).mount_point is None and wire.loads(body).categories == tree(3).categories
    gd.send("knowledge.receipt", structure_receipt("44", 3))
    assert hq.next()[0].type == "knowledge.receipt"

    # an older structure is refused back to HQ; nobody gets it
    hq.send("knowledge.structure", wire.dumps(tree(2)))
    assert hq.nack() == "STALE_VERSION"

    # Shanghai asks for a sync holding no structure: the answer carries version 3 under its root
    sh.send("knowledge.sync_request", sync_request("31", 0, "SH-KB-ROOT"))
    assert hq.next()[0].type == "knowledge.sync_request"
    props, body = sh.next()
    answer = wire.loads(body)
    assert props.type == "knowledge.sync_response"
    assert (answer.category_tree.version, answer.category_tree.mount_point) == (3, "SH-KB-ROOT")

    with open_store(settings.store_url) as store, store.transaction(write=False) as conn:
        held = ks.load_tree_versions(conn, ["44", "31", "99"])
        assert (held["44"].delivered, held["44"].confirmed, held["44"].mount_point) == (3, 3, "GD-KB-ROOT")
        assert (held["31"].delivered, held["31"].confirmed, held["31"].mount_point) == (3, 0, "SH-KB-ROOT")
        assert (held["99"].delivered, held["99"].confirmed) == (3, 0)
        assert ks.load_tree(conn).version == 3

    # Two hours on: every recipient but Guangdong still owes its success mark -> 31 alarms to HQ
    assert ticker.tick(t0 + timedelta(minutes=119)) == 0
    ticker.tick(t0 + timedelta(hours=2, minutes=5))
    alarms = [wire.loads(hq.next()[1]) for _ in range(31)]
    assert {a.kind.value for a in alarms} == {"structure_receipt_overdue"}
    assert sorted(a.company_code for a in alarms) == sorted([c for c in PROVINCES if c != "44"] + ["99"])
    assert all((a.subject_id, a.version) == ("STRUCTURE", 3) for a in alarms)
    assert empty(hq)


def test_an_unconfirmed_delivery_alarms_hq_once_and_a_receipt_cancels_its_timer(hub, node, settings, ticker):
    hq, sl, sh, gd = node("00"), node("99"), node("31"), node("44")
    t0 = datetime.now(UTC)
    item_id = kmsg.new_id()
    body, sub = kmsg.submit(item_id, 1)
    sl.send("knowledge.submit", body)
    assert hq.next()[0].type == "knowledge.submit"
    hq.send("knowledge.review", kmsg.review(sub))
    assert sl.next()[0].type == "knowledge.review"
    hq.send("knowledge.delivery", kmsg.delivery(sub, ("31", "44")))
    assert sh.next()[0].type == "knowledge.delivery" and gd.next()[0].type == "knowledge.delivery"
    sh.send("knowledge.receipt", kmsg.receipt("31", item_id, 1))
    assert hq.next()[0].type == "knowledge.receipt"
    with open_store(settings.store_url) as store:
        assert store.get_timer(f"knowledge/receipt/{item_id}/1/31") is None        # cancelled by the receipt
        assert store.get_timer(f"knowledge/receipt/{item_id}/1/44") is not None

    assert ticker.tick(t0 + timedelta(hours=2, minutes=5)) == 1
    props, body = hq.next()
    alarm = wire.loads(body)
    assert props.type == "knowledge.alarm" and props.headers["x-hub-alarm-kind"] == "receipt_overdue"
    assert "44" in props.headers["x-hub-alarm-zh"]
    assert (alarm.subject_id, alarm.version, alarm.company_code) == (item_id, 1, "44")
    assert props.message_id == f"alarm.receipt_overdue.{item_id}.1.44"
    assert ticker.tick(t0 + timedelta(days=1)) == 0 and empty(hq)             # fired once


def test_announcement_reply_deadline_alarms_hq_for_each_recipient_that_did_not_reply(hub, node, ticker):
    hq, bj, gd = node("00"), node("11"), node("44")
    root = GOLDEN / "announcements/golden"
    now = kmsg.now()
    deadline = now + timedelta(hours=1)
    pub = awire.loads((root / "announcement_publish_cutover.xml").read_bytes())
    aid = f"GG-00-{uuid.uuid4().hex[:12]}"
    ann = pub.announcement.model_copy(update={
        "id": aid, "reply_deadline": deadline,
        "scope": pub.announcement.scope.model_copy(update={"nodes": ("11", "44"), "groups": ()})})
    hq.send("announcement.publish", awire.dumps(pub.model_copy(update={
        "announcement": ann, "originator_code": "00", "published_at": now})))
    assert bj.next()[0].type == "announcement.publish" and gd.next()[0].type == "announcement.publish"
    reply = awire.loads((root / "announcement_reply.xml").read_bytes())
    bj.send("announcement.reply", awire.dumps(reply.model_copy(update={"announcement_id": aid, "replied_at": now})))
    assert hq.next()[0].type == "announcement.reply"

    assert ticker.tick(deadline - timedelta(minutes=1)) == 0
    assert ticker.tick(deadline + timedelta(minutes=1)) == 1                  # Beijing's timer was cancelled
    props, body = hq.next()
    alarm = wire.loads(body)
    assert props.type == "knowledge.alarm" and alarm.kind.value == "reply_overdue"
    assert (alarm.subject_id, alarm.company_code, alarm.version) == (aid, "44", None)
    assert empty(hq)


def test_shipped_knowledge_settings_satisfy_their_schema_and_bad_values_are_refused():
    import json

    import yaml
    from jsonschema import Draft202012Validator

    from hub.flows.knowledge_settings import KnowledgeSettings, load_knowledge_settings
    repo = Path(__file__).resolve().parents[2]
    schema = json.loads((repo / "docs/schemas/knowledge.schema.json").read_text(encoding="utf-8"))
    data = yaml.safe_load((repo / "config/knowledge.yaml").read_text(encoding="utf-8"))
    assert not list(Draft202012Validator(schema).iter_errors(data))
    loaded = load_knowledge_settings(repo / "config")
    assert loaded.receipt_within == timedelta(hours=2) and loaded.reply_alarms
    for bad in ({"receipt_within": "-5m"}, {"receipt_within": "soon"}, {"mount_points": {"44": "bad root!"}},
                {"colour": "red"}):
        with pytest.raises(ValueError):
            KnowledgeSettings.model_validate(bad)
    assert KnowledgeSettings.model_validate({"receipt_within": None}).receipt_within is None
