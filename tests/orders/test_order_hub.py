"""Dispatch and return orders end to end: the real hub on the real RabbitMQ, a fresh vhost per test.

Guangdong (44, a GBK CRM), Beijing (11, UTF-8) and HQ (00) are played by tests/orders/province.py,
plain pika that imports nothing from the project. Timers are ticked by the test at chosen times
(TimerService.tick(now)), so deadlines and re-sends need no sleeping; "nothing else arrived" is
checked after something that was published in the same broker transaction (a negative
acknowledgement, a delivery) or after a tick, whose publishes are confirmed when it returns.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from broker_probe import dlq_messages, now_s, queue_depth
from province import dispatch_receipt_xml, dispatch_xml, encode, return_receipt_xml, return_xml
from running_hub import HubThread
from waiting import wait_until

from hub.flows.order_report import show_order
from protocols.orders.transaction import State

ISSUE = "用户(北京号码)在广州市天河区漫游期间手机信号时有时无,通话经常中断,已持续三天。"
FIRST_RESULT = "已受理。经初步核查,用户号码状态正常,漫游权限已开通;已联系广东公司核查基站覆盖情况。"
FINAL_RESULT = "处理完毕。天河区一处基站间歇退服,已修复;已致电用户致歉并减免当月语音功能费 10 元。"


@pytest.fixture
def start_hub(settings, applied_topology):
    hubs: list[HubThread] = []

    def start(store_url: str | None = None) -> HubThread:
        s = settings if store_url is None else settings.model_copy(update={"store_url": store_url})
        h = HubThread(s).start()
        hubs.append(h)
        return h

    yield start
    for h in hubs:
        if h.thread.is_alive():
            h.stop()


def serial() -> str:
    return f"GD-{uuid.uuid4().hex[:12]}"


def assert_quiet(settings, *codes: str) -> None:
    pending = {c: queue_depth(settings, f"node.{c}") for c in codes}
    assert not any(pending.values()), f"unexpected messages waiting: {pending}"


def assert_alarm(got, kind: str, sn: str, encoding: str) -> None:
    assert got.props.type == "order.alarm"
    assert got.props.message_id == f"alarm.44.{sn}.{kind}"
    assert got.props.content_encoding == encoding
    assert got.find("Kind") == kind and got.find("DispatchSerialNumber") == sn
    assert [p.text for p in got.root.iter("{urn:cs-hub:order:1}Party")] == ["44", "11", "00"]
    assert "工单告警" in got.props.headers["x-hub-alarm-zh"]


def test_the_six_steps_between_guangdong_and_beijing_through_hq(start_hub, crm, settings, ticker):
    hub = start_hub()
    gd, bj, hq = crm("44"), crm("11"), crm("00")
    t0, sn = now_s(), serial()

    # 1-2: Guangdong's GBK CRM dispatches a roaming Beijing customer's complaint to HOME
    did = gd.send("order.dispatch", dispatch_xml("44", sn, "HOME", dispatch_time=t0, first=t0 + timedelta(hours=2),
                                                 final=t0 + timedelta(hours=24), issue=ISSUE))
    got = bj.next()
    assert (got.props.type, got.props.message_id, got.props.content_encoding) == ("order.dispatch", did, "utf-8")
    assert got.props.headers["x-hub-source"] == "44"
    assert got.find("ComplaintIssue") == ISSUE and got.find("SerialNumber") == sn
    copies = [hq.next()]
    assert copies[0].props.message_id == did and copies[0].find("ComplaintIssue") == ISSUE

    # 3: Beijing's success mark goes back to Guangdong, in GBK
    bj.send("order.dispatch_receipt", dispatch_receipt_xml("11", "44", sn, at=t0 + timedelta(seconds=1)),
            correlation_id=did)
    got = gd.next()
    assert (got.props.type, got.props.content_encoding, got.props.correlation_id) == (
        "order.dispatch_receipt", "gbk", did)
    assert got.body.startswith(b"<?xml version='1.0' encoding='GBK'?>") and got.find("Status") == "accepted"
    copies.append(hq.next())

    # 4-5: first reply, then Guangdong's mark for it, which goes to the replier (the tracker knows it)
    bj.send("order.return", return_xml("11", "44", sn, at=t0 + timedelta(seconds=2), kind="first",
                                       result=FIRST_RESULT))
    got = gd.next()
    assert got.props.content_encoding == "gbk" and got.find("Result") == FIRST_RESULT
    assert got.body.decode("gbk").count(FIRST_RESULT) == 1
    copies.append(hq.next())
    gd.send("order.return_receipt", return_receipt_xml("44", sn, kind="first", at=t0 + timedelta(seconds=3)))
    got = bj.next()
    assert got.props.type == "order.return_receipt" and got.props.content_encoding == "utf-8"
    copies.append(hq.next())

    # 4-6 again for the final reply; Guangdong's mark closes the order
    bj.send("order.return", return_xml("11", "44", sn, at=t0 + timedelta(seconds=4), kind="final",
                                       result=FINAL_RESULT))
    got = gd.next()
    assert got.find("ReplyKind") == "final" and got.find("Result") == FINAL_RESULT
    copies.append(hq.next())
    gd.send("order.return_receipt", return_receipt_xml("44", sn, kind="final", at=t0 + timedelta(seconds=5)))
    assert bj.next().find("ReplyKind") == "final"
    copies.append(hq.next())

    assert [c.props.type for c in copies] == ["order.dispatch", "order.dispatch_receipt", "order.return",
                                              "order.return_receipt", "order.return", "order.return_receipt"]
    assert all(c.props.content_encoding == "utf-8" for c in copies)
    view = wait_until(lambda: (v := show_order(hub.proc.store, "44", sn)) and v.order.state is State.CLOSED and v,
                      10, description="the tracker shows the order closed")
    assert view.order.receiver == "11" and view.order.delivered_at is not None
    # every timer of the order fires into nothing: it was answered in time and closed
    ticker(hub).tick(t0 + timedelta(days=3))
    assert_quiet(settings, "44", "11", "00")


def test_a_missing_mark_resends_the_same_order_until_it_comes(start_hub, crm, settings, ticker):
    hub = start_hub()
    gd, bj, hq = crm("44"), crm("11"), crm("00")
    t0, sn = now_s(), serial()
    xml = dispatch_xml("44", sn, "11", dispatch_time=t0, first=t0 + timedelta(hours=2), final=t0 + timedelta(hours=24),
                       to_name="北京", issue=ISSUE)
    did = gd.send("order.dispatch", xml)
    first = bj.next()          # Beijing's CRM takes it in but never confirms (it crashed before the mark)
    hq.next()
    tk = ticker(hub)
    tk.tick(t0 + timedelta(minutes=4))
    assert_quiet(settings, "11")
    tk.tick(t0 + timedelta(minutes=6))                   # receipt_within (5m) has passed: re-send 1
    again = bj.next()
    assert again.body == first.body, "the re-send is byte-identical to the first delivery"
    assert again.props.message_id == did and again.props.headers["x-hub-resend"] == 1
    assert again.find("SerialNumber") == sn and again.find("ComplaintIssue") == ISSUE
    assert_quiet(settings, "00", "44")                    # HQ saw the order once; the re-send is Beijing's only

    bj.send("order.dispatch_receipt", dispatch_receipt_xml("11", "44", sn, at=t0 + timedelta(seconds=30)))
    assert gd.next().props.type == "order.dispatch_receipt"
    hq.next()
    tk.tick(t0 + timedelta(hours=1, minutes=10))          # re-send 2 (+20m) and the mark's alarm (+65m) are due
    assert_quiet(settings, "11", "44", "00")

    # Guangdong's CRM re-sends its own order (a new message id, the same serial number): a duplicate
    again_id = gd.send("order.dispatch", xml)
    wait_until(lambda: (r := hub.proc.store.get(again_id)) and r.status == "duplicate", 10,
               description="the hub judged the originator's re-send a duplicate")
    assert_quiet(settings, "11", "00")
    assert show_order(hub.proc.store, "44", sn).order.resends == 1


def test_a_mark_that_never_comes_raises_an_alarm_after_the_resends(start_hub, crm, settings, ticker):
    hub = start_hub()
    gd, bj, hq = crm("44"), crm("11"), crm("00")
    t0, sn = now_s(), serial()
    gd.send("order.dispatch", dispatch_xml("44", sn, "HOME", dispatch_time=t0, first=t0 + timedelta(hours=2),
                                           final=t0 + timedelta(hours=24)))
    bj.next()
    hq.next()
    tk = ticker(hub)
    tk.tick(t0 + timedelta(minutes=21))                     # re-sends at +5m and +20m
    assert [bj.next().props.headers["x-hub-resend"] for _ in range(2)] == [1, 2]
    tk.tick(t0 + timedelta(minutes=66))                     # after the last wait (45m): the alarm
    assert_alarm(gd.next(), "receipt_missing", sn, "gbk")
    assert_alarm(bj.next(), "receipt_missing", sn, "utf-8")
    assert_alarm(hq.next(), "receipt_missing", sn, "utf-8")
    tk.tick(t0 + timedelta(minutes=80))                     # before the first-reply warning (+1h30m)
    assert_quiet(settings, "11", "44", "00")


def test_mislabelled_encodings_are_refused_never_delivered(start_hub, crm, settings):
    start_hub()
    gd = crm("44")
    t0 = now_s()
    xml = dispatch_xml("44", serial(), "11", dispatch_time=t0, first=t0 + timedelta(hours=2),
                       final=t0 + timedelta(hours=24), to_name="北京", issue=ISSUE)
    cases = [("ENCODING_INVALID", xml.encode("gbk"), "utf-8"),          # GBK bytes labelled UTF-8
             ("ENCODING_MISMATCH", encode(xml, "utf-8"), "gbk")]         # declared UTF-8 in XML, GBK in AMQP
    for reason, body, declared in cases:
        mid = gd.send("order.dispatch", "", body=body, declared=declared)
        nack = gd.next()
        assert nack.props.type == "hub.nack" and nack.props.correlation_id == mid
        assert nack.nack_reason() == reason
        assert nack.root.find("{urn:cs-hub:hub:1}Reason[@lang='zh']").text
    dead = wait_until(lambda: (d := dlq_messages(settings)) and d, 10, description="the refusals are dead-lettered")
    assert [p.headers["x-hub-reason-code"] for p, _ in dead] == ["ENCODING_INVALID", "ENCODING_MISMATCH"]
    assert [b for _, b in dead] == [body for _, body, _ in cases], "the original bytes are kept for a replay"
    assert_quiet(settings, "11", "00")


def test_reply_deadlines_alarm_once_each_across_a_hub_restart(store_url, start_hub, crm, settings, ticker):
    """On SQLite and on PostgreSQL (store_url is parametrised; it is set up first, torn down last)."""
    hub = start_hub(store_url)
    gd, bj, hq = crm("44"), crm("11"), crm("00")
    t0, sn = now_s(), serial()
    first, final = t0 + timedelta(hours=2), t0 + timedelta(hours=24)
    gd.send("order.dispatch", dispatch_xml("44", sn, "HOME", dispatch_time=t0, first=first, final=final))
    bj.next()
    hq.next()
    bj.send("order.dispatch_receipt", dispatch_receipt_xml("11", "44", sn, at=t0 + timedelta(seconds=1)))
    gd.next()
    hq.next()

    tk = ticker(hub)
    tk.tick(first - timedelta(minutes=29))                   # config/orders.yaml: warn_before 30m
    for node, enc in ((gd, "gbk"), (bj, "utf-8"), (hq, "utf-8")):
        assert_alarm(node.next(), "first_reply_warning", sn, enc)
    tk.tick(first + timedelta(minutes=1))
    for node, enc in ((gd, "gbk"), (bj, "utf-8"), (hq, "utf-8")):
        got = node.next()
        assert_alarm(got, "first_reply_overdue", sn, enc)
    assert "初步答复已超时" in got.props.headers["x-hub-alarm-zh"]
    tk.tick(first + timedelta(minutes=2))
    assert_quiet(settings, "44", "11", "00")

    hub.stop()                                               # restart on the same store
    hub = start_hub(store_url)
    tk = ticker(hub)
    tk.tick(first + timedelta(minutes=3))
    assert_quiet(settings, "44", "11", "00")                 # the first-reply alarm does not come again
    bj.send("order.return", return_xml("11", "44", sn, at=now_s(), kind="first", result=FIRST_RESULT))
    assert gd.next().find("Result") == FIRST_RESULT          # late, but it still moves the order on
    hq.next()
    tk.tick(final - timedelta(minutes=29))
    for node, enc in ((gd, "gbk"), (bj, "utf-8"), (hq, "utf-8")):
        assert_alarm(node.next(), "final_reply_warning", sn, enc)
    tk.tick(final + timedelta(minutes=1))
    for node, enc in ((gd, "gbk"), (bj, "utf-8"), (hq, "utf-8")):
        assert_alarm(node.next(), "final_reply_overdue", sn, enc)
    tk.tick(final + timedelta(hours=1))
    assert_quiet(settings, "44", "11", "00")
    view = show_order(hub.proc.store, "44", sn)
    assert view.order.first_overdue and view.order.final_overdue and view.order.state is State.FIRST_REPLIED


@pytest.mark.parametrize("reason,field,kw", [
    ("DEADLINE_ORDER", "FirstReplyDeadline", {"first": "before"}),
    ("UNKNOWN_SEGMENT", "CustomerMobile", {"to": "HOME", "mobile": "19999999999"}),
    ("FIELD_INVALID", "ComplaintCategory", {"category": "WEATHER"}),
    ("XSD_INVALID", "CustomerMobile", {"mobile": "1390100"}),
])
def test_invalid_dispatch_orders_are_refused_with_their_reason(start_hub, crm, settings, reason, field, kw):
    start_hub()
    gd = crm("44")
    t0 = now_s()
    args = {"to": "11", "first": t0 + timedelta(hours=2), **kw}
    if args["first"] == "before":
        args["first"] = t0 - timedelta(hours=1)
    body = dispatch_xml("44", serial(), args.pop("to"), dispatch_time=t0, final=t0 + timedelta(hours=24), **args)
    mid = gd.send("order.dispatch", body)
    nack = gd.next()
    assert nack.props.correlation_id == mid and nack.nack_reason() == reason
    assert nack.root.findtext("{urn:cs-hub:hub:1}Field") == field
    assert mid in nack.root.find("{urn:cs-hub:hub:1}Reason[@lang='en']").text
    (dead,) = wait_until(lambda: dlq_messages(settings), 10, description="the refusal is dead-lettered")
    assert dead[0].message_id == mid and dead[0].headers["x-hub-reason-code"] == reason
    assert_quiet(settings, "11", "00")


def test_replies_that_do_not_fit_the_order_are_refused(start_hub, crm, settings):
    start_hub()
    gd, bj, hq = crm("44"), crm("11"), crm("00")
    t0, sn = now_s(), serial()

    # a return order for a dispatch order nobody sent
    mid = bj.send("order.return", return_xml("11", "44", "GD-NO-SUCH-ORDER", at=t0, kind="first", result="已处理"))
    nack = bj.next()
    assert (nack.props.correlation_id, nack.nack_reason()) == (mid, "UNKNOWN_REFERENCE")
    assert nack.root.findtext("{urn:cs-hub:hub:1}Field") == "DispatchSerialNumber"
    (dead,) = wait_until(lambda: dlq_messages(settings), 10, description="the refusal is dead-lettered")
    assert dead[0].headers["x-hub-reason-code"] == "UNKNOWN_REFERENCE"

    # a return order before the success mark, then the same reply once the mark is in
    gd.send("order.dispatch", dispatch_xml("44", sn, "11", dispatch_time=t0, first=t0 + timedelta(hours=2),
                                           final=t0 + timedelta(hours=24), to_name="北京"))
    bj.next()
    hq.next()
    reply = return_xml("11", "44", sn, at=t0 + timedelta(seconds=2), kind="first", result=FIRST_RESULT)
    early = bj.send("order.return", reply)
    nack = bj.next()
    assert (nack.props.correlation_id, nack.nack_reason()) == (early, "ILLEGAL_TRANSITION")
    assert_quiet(settings, "44", "00")
    bj.send("order.dispatch_receipt", dispatch_receipt_xml("11", "44", sn, at=t0 + timedelta(seconds=1)))
    gd.next()
    hq.next()
    bj.send("order.return", reply)                         # the refused reply, sent again in order
    assert gd.next().find("Result") == FIRST_RESULT
