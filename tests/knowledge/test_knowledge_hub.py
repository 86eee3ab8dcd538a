"""Knowledge and announcement sharing end to end: the real hub on the real RabbitMQ, a fresh vhost per
test, nodes played by plain pika clients (tests/knowledge/conftest.py). No sleeping: each step waits
for the message it produces."""

from __future__ import annotations

import kmsg
from kmsg import PROVINCES

from hub.store import knowledge as ks
from hub.store import open_store
from protocols.announcements import wire as awire
from protocols.knowledge import wire

ALL = (*PROVINCES, "99")


def types_of(node, n: int) -> list[str]:
    return [node.next()[0].type for _ in range(n)]


def publish(hq, sl, item_id: str, recipients, nodes=None) -> None:
    """99 submits version 1, HQ approves and delivers it; each recipient's copy is read (if given)."""
    body, sub = kmsg.submit(item_id, 1)
    sl.send("knowledge.submit", body)
    assert hq.next()[0].type == "knowledge.submit"
    hq.send("knowledge.review", kmsg.review(sub))
    assert sl.next()[0].type == "knowledge.review"
    hq.send("knowledge.delivery", kmsg.delivery(sub, recipients))
    for n in nodes or ():
        props, body = n.next()
        assert props.type == "knowledge.delivery"


def update(hq, sl, item_id: str, version: int, recipients, *, action: str = "update", feedback=None):
    body, sub = kmsg.submit(item_id, version, action, feedback=feedback)
    sl.send("knowledge.submit", body)
    assert hq.next()[0].type == "knowledge.submit"
    hq.send("knowledge.review", kmsg.review(sub))
    assert sl.next()[0].type == "knowledge.review"
    hq.send("knowledge.delivery", kmsg.delivery(sub, recipients))
    return sub


def test_publish_returned_resubmitted_approved_fans_out_to_31_provinces_and_99_with_every_receipt(
        hub, node, settings):
    hq, sl = node("00"), node("99")
    provinces = {c: node(c) for c in PROVINCES}
    item_id = kmsg.new_id()

    # 99 submits; HQ returns it with an opinion; 99 modifies and resubmits under a new serial
    body, first = kmsg.submit(item_id, 1)
    sl.send("knowledge.submit", body)
    assert hq.next()[0].type == "knowledge.submit"
    # a second publish while the first awaits review: ILLEGAL_TRANSITION back to 99
    sl.send("knowledge.submit", kmsg.submit(item_id, 1)[0])
    assert sl.nack() == "ILLEGAL_TRANSITION"
    hq.send("knowledge.review", kmsg.review(first, "returned", "请补充资费生效时间。"))
    props, got = sl.next()
    assert props.type == "knowledge.review" and wire.loads(got).outcome.value == "returned"
    body, sub = kmsg.submit(item_id, 1)
    sl.send("knowledge.submit", body)
    assert hq.next()[0].type == "knowledge.submit"
    hq.send("knowledge.review", kmsg.review(sub))
    assert wire.loads(sl.next()[1]).outcome.value == "approved"

    # HQ delivers to the 31 provinces and the second-line platform; each receives and confirms
    hq.send("knowledge.delivery", kmsg.delivery(sub, ALL))
    for code, n in [*provinces.items(), ("99", sl)]:
        props, got = n.next()
        assert props.type == "knowledge.delivery" and wire.loads(got).item.id == item_id
        n.send("knowledge.receipt", kmsg.receipt(code, item_id, 1))
    assert sorted(types_of(hq, 32)) == ["knowledge.receipt"] * 32

    with open_store(settings.store_url) as store, store.transaction(write=False) as conn:
        cells = ks.sync_matrix(conn, item_ids=[item_id])
        assert len(cells) == 32
        assert all((c.delivered, c.confirmed, c.receipt, c.outstanding) == (1, 1, "CONFIRMED", False) for c in cells)
        assert ks.outstanding_receipts(conn) == {}
        events = [e for _, e, _ in ks.steps_of(conn, f"item/{item_id}")]
    assert events[:5] == ["Submit(publish)", "Return", "Submit(publish)", "Approve", "Publish"]


def test_feedback_reaches_the_owner_which_starts_an_update(hub, node, settings):
    hq, sl, gd, bj = node("00"), node("99"), node("44"), node("11")
    item_id = kmsg.new_id()
    publish(hq, sl, item_id, ("44", "11"), (gd, bj))

    gd.send("knowledge.feedback", kmsg.feedback("44", "FB-1", item_id, 1))
    assert hq.next()[0].type == "knowledge.feedback"
    # feedback on an item HQ never published is refused to the province
    gd.send("knowledge.feedback", kmsg.feedback("44", "FB-2", "KN-99-nonexistent", 1))
    assert gd.nack() == "UNKNOWN_REFERENCE"
    # HQ cannot forward before it replied
    hq.send("knowledge.feedback_forward", kmsg.feedback_forward("44", "FB-1", item_id, 1))
    hq.send("knowledge.feedback_reply", kmsg.feedback_reply("44", "FB-1", item_id))
    assert gd.next()[0].type == "knowledge.feedback_reply"
    # the early forward was retried once (OUT_OF_ORDER) and now fits: it reaches the owner
    props, got = sl.next(timeout=30)
    assert props.type == "knowledge.feedback_forward" and wire.loads(got).feedback_id == "FB-1"

    # the owner answers with an update naming the feedback; HQ approves and delivers version 2
    update(hq, sl, item_id, 2, ("44", "11"), feedback=("44", "FB-1"))
    for n in (gd, bj):
        props, got = n.next()
        assert props.type == "knowledge.delivery" and wire.loads(got).item.version == 2
    with open_store(settings.store_url) as store, store.transaction(write=False) as conn:
        thread = ks.load_feedback(conn, ("44", "FB-1"))
    assert thread.state.value == "UPDATE_STARTED" and thread.update_version == 2


def test_version_sync_reorder_stale_catch_up_and_tombstone(hub, node, settings):
    hq, sl, bj, sh = node("00"), node("99"), node("11"), node("31")
    item_id = kmsg.new_id()
    publish(hq, sl, item_id, ("11", "31"), (bj, sh))
    sh.send("knowledge.receipt", kmsg.receipt("31", item_id, 1))
    assert hq.next()[0].type == "knowledge.receipt"

    # versions 2 and 3; Shanghai misses both (its CRM was down: it drops them unread)
    for v in (2, 3):
        update(hq, sl, item_id, v, ("11", "31"))
        assert bj.next()[0].type == "knowledge.delivery"
        assert sh.next()[0].type == "knowledge.delivery"

    # a stale update (version 3 again) is refused to the second-line platform
    body, _ = kmsg.submit(item_id, 3, "update")
    sl.send("knowledge.submit", body)
    assert sl.nack() == "STALE_VERSION"

    # Beijing's receipts arrive reordered (3 before 2): its confirmed version stays 3
    bj.send("knowledge.receipt", kmsg.receipt("11", item_id, 3))
    bj.send("knowledge.receipt", kmsg.receipt("11", item_id, 2))
    assert types_of(hq, 2) == ["knowledge.receipt"] * 2
    with open_store(settings.store_url) as store, store.transaction(write=False) as conn:
        cells = {c.recipient: c for c in ks.sync_matrix(conn, item_ids=[item_id])}
    assert (cells["11"].confirmed, cells["11"].outstanding) == (3, False)
    assert (cells["31"].delivered, cells["31"].confirmed, cells["31"].outstanding) == (3, 1, True)

    # Shanghai asks for a sync holding version 1: the answer re-sends version 3
    sh.send("knowledge.sync_request", kmsg.sync_request("31", {item_id: 1}))
    assert hq.next()[0].type == "knowledge.sync_request"
    props, got = sh.next()
    answer = wire.loads(got)
    assert props.type == "knowledge.sync_response" and answer.sync_status.value == "difference"
    assert [(i.id, i.version) for i in answer.items] == [(item_id, 3)]
    sh.send("knowledge.receipt", kmsg.receipt("31", item_id, 3))
    assert hq.next()[0].type == "knowledge.receipt"

    # revocation: the tombstone reaches both; the item never comes back
    update(hq, sl, item_id, 4, ("11", "31"), action="revoke")
    for n in (bj, sh):
        assert wire.loads(n.next()[1]).tombstone.version == 4
    body, _ = kmsg.submit(item_id, 5, "update")
    sl.send("knowledge.submit", body)
    assert sl.nack() == "ITEM_REVOKED"
    _, sub3 = kmsg.submit(item_id, 3, "update")
    hq.send("knowledge.delivery", kmsg.delivery(sub3, ("11", "31")))
    assert hq.nack() in ("ITEM_REVOKED", "STALE_VERSION")
    sh.send("knowledge.sync_request", kmsg.sync_request("31", {item_id: 3}))
    assert hq.next()[0].type == "knowledge.sync_request"
    answer = wire.loads(sh.next()[1])
    assert answer.items == () and [(t.item_id, t.version) for t in answer.tombstones] == [(item_id, 4)]
    # and a recipient that holds nothing is not sent the revoked item either
    bj.send("knowledge.sync_request", kmsg.sync_request("11", {}))
    assert hq.next()[0].type == "knowledge.sync_request"
    answer = wire.loads(bj.next()[1])
    assert answer.items == () and answer.sync_status.value == "in_sync"


ANN = "tests/protocols/announcements/golden/"


def test_announcement_submit_return_publish_reply_return_accept(hub, node):
    from pathlib import Path

    from protocols.announcements.models import AnnouncementReply, AnnouncementSubmission
    from protocols.knowledge.machine import utc

    root = Path(__file__).resolve().parents[2] / ANN
    now = kmsg.now()
    later = now.replace(year=now.year + 1)

    def shift(name: str, **times):
        m = awire.loads((root / name).read_bytes())
        return m.model_copy(update=times)

    hq, gd, bj = node("00"), node("44"), node("11")
    sub = shift("announcement_submission.xml", submitted_at=now)
    sub = sub.model_copy(update={"announcement": sub.announcement.model_copy(update={"reply_deadline": later})})
    assert isinstance(sub, AnnouncementSubmission)
    gd.send("announcement.submit", awire.dumps(sub))
    assert hq.next()[0].type == "announcement.submit"
    # a reply before publication is illegal
    rep = shift("announcement_reply.xml", replied_at=now)
    assert isinstance(rep, AnnouncementReply)
    bj.send("announcement.reply", awire.dumps(rep))
    assert bj.nack() == "ILLEGAL_TRANSITION"
    hq.send("announcement.return", awire.dumps(shift("return_for_modification.xml", returned_at=now)))
    assert gd.next()[0].type == "announcement.return"
    resub = sub.model_copy(update={"serial_number": "20240715-0003"})
    gd.send("announcement.submit", awire.dumps(resub))
    assert hq.next()[0].type == "announcement.submit"
    pub = shift("announcement_publish_cutover.xml", published_at=now)
    pub = pub.model_copy(update={"announcement": resub.announcement})
    hq.send("announcement.publish", awire.dumps(pub))
    assert gd.next()[0].type == "announcement.publish" and bj.next()[0].type == "announcement.publish"
    bj.send("announcement.reply", awire.dumps(rep))
    assert hq.next()[0].type == "announcement.reply"
    hq.send("announcement.reply_return", awire.dumps(shift("reply_return.xml", returned_at=now)))
    assert bj.next()[0].type == "announcement.reply_return"
    rep2 = shift("announcement_reply_resubmitted.xml", replied_at=now)
    bj.send("announcement.reply", awire.dumps(rep2))
    assert hq.next()[0].type == "announcement.reply"
    hq.send("announcement.reply_accepted", awire.dumps(shift("reply_accepted.xml", accepted_at=now)))
    assert bj.next()[0].type == "announcement.reply_accepted"
    assert utc(now, "now")
