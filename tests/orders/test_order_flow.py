"""The orders flow and its tracker on SQLite and PostgreSQL, driven like the hop drives them.

No broker: the real pipeline (configuration, checks, routes) and the real OrderFlow on a real
store. Time is passed in, so deadlines and re-sends are exact and nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from lxml import etree
from province import dispatch_receipt_xml, dispatch_xml, encode, return_receipt_xml, return_xml

from hub.envelope import HUB_QUEUE, RETRY_EXCHANGE, Incoming, Props
from hub.flows import order_tracker as tracker
from hub.flows.order_report import show_order, stats_report
from hub.flows.order_settings import OrderSettings
from hub.pipeline import Verdict
from protocols.errors import ReasonCode
from protocols.orders import wire
from protocols.orders.models import AlarmKind, OrderAlarm
from protocols.orders.transaction import State

T0 = datetime(2024, 6, 11, 2, 0, tzinfo=UTC)          # 10:00 in Beijing
FIRST, FINAL = T0 + timedelta(hours=2), T0 + timedelta(hours=24)
SERIAL = "20240611-000123"
KEY = ("44", SERIAL)
H = "{urn:cs-hub:hub:1}"


def dispatch(bench, serial=SERIAL, to="HOME", *, at=T0, first=FIRST, final=FINAL, sender="44", mid=None, **kw):
    enc = "gbk" if sender == "44" else "utf-8"
    xml = dispatch_xml(sender, serial, to, dispatch_time=at, first=first, final=final, **kw)
    return bench.send(sender, "order.dispatch", encode(xml, enc), now=at + timedelta(seconds=5), encoding=enc,
                      message_id=mid)


def receipt(bench, serial=SERIAL, *, at, sender="11", originator="44", status="accepted", reason=None, mid=None):
    return bench.send(sender, "order.dispatch_receipt",
                      dispatch_receipt_xml(sender, originator, serial, at=at, status=status, reason=reason),
                      now=at, message_id=mid)


def reply(bench, kind, serial=SERIAL, *, at, sender="11", originator="44", mid=None, result="已处理完毕。"):
    return bench.send(sender, "order.return", return_xml(sender, originator, serial, at=at, kind=kind, result=result),
                      now=at, message_id=mid)


def mark(bench, kind, serial=SERIAL, *, at, sender="44", status="accepted", reason=None, mid=None):
    xml = return_receipt_xml(sender, serial, kind=kind, at=at, status=status, reason=reason)
    enc = "gbk" if sender == "44" else "utf-8"
    return bench.send(sender, "order.return_receipt", encode(xml, enc), now=at, encoding=enc, message_id=mid)


def refused(o, reason: ReasonCode, field: str | None = None) -> None:
    assert o.verdict is Verdict.dead_lettered, f"{o.message_id} was {o.verdict}, expected a refusal with {reason}"
    assert o.error.reason == reason, f"{o.message_id}: {o.error}"
    if field is not None:
        assert o.error.field == field
    queues = [out.routing_key for out in o.outputs]
    assert queues == ["", f"node.{o.source}"], "dead letter plus a negative acknowledgement to the sender"
    nack = etree.fromstring(o.outputs[1].body)
    assert nack.findtext(f"{H}ReasonCode") == reason
    assert o.message_id in nack.find(f"{H}Reason[@lang='en']").text


def state(bench, key=KEY) -> State:
    view = tracker.get_order(bench.store, key)
    return view.order.state


def test_the_six_steps_are_tracked_to_closed(flow_bench):
    b = flow_bench()
    o = dispatch(b)
    assert o.verdict is Verdict.delivered and sorted(o.destinations) == ["node.00", "node.11"]
    assert state(b) is State.DELIVERED                      # delivered once the batch committed
    r = receipt(b, at=T0 + timedelta(minutes=1))
    assert sorted(r.destinations) == ["node.00", "node.44"]
    assert state(b) is State.RECEIVED
    assert sorted(reply(b, "first", at=T0 + timedelta(minutes=80)).destinations) == ["node.00", "node.44"]
    rr = mark(b, "first", at=T0 + timedelta(minutes=81))
    assert sorted(rr.destinations) == ["node.00", "node.11"], "a ReturnReceipt goes to the replier, found by the tracker"
    assert state(b) is State.FIRST_REPLIED
    reply(b, "final", at=T0 + timedelta(hours=8))
    assert state(b) is State.FINAL_REPLIED
    mark(b, "final", at=T0 + timedelta(hours=8, minutes=1))
    view = show_order(b.store, *KEY)
    o = view.order
    assert o.state is State.CLOSED and o.receiver == "11" and o.category == "NETWORK_SIGNAL"
    assert o.received_at == T0 + timedelta(minutes=1)
    assert o.first_replied_at == T0 + timedelta(minutes=80)
    assert o.final_replied_at == T0 + timedelta(hours=8)
    assert o.closed_at == T0 + timedelta(hours=8, minutes=1)
    assert o.delivered_at is not None and not (o.first_overdue or o.final_overdue or o.receipt_overdue)
    assert [s.event for s in view.steps] == [
        "DispatchSent", "DispatchForwarded", "DispatchReceiptArrived(accepted)", "ReturnSent(first)",
        "ReturnReceiptArrived(first/accepted)", "ReturnSent(final)", "ReturnReceiptArrived(final/accepted)"]
    assert {t["kind"] for t in view.timers} >= {"first_reply_overdue", "final_reply_overdue", "receipt_missing",
                                               "resend-1", "resend-2"}
    # every timer fires into nothing: the order is closed
    assert all(outs == [] for _, outs in b.tick(T0 + timedelta(days=2)))


@pytest.mark.parametrize("case", ["unknown", "closed", "unknown_mark"])
def test_reply_to_an_unknown_or_closed_order_is_unknown_reference(flow_bench, case):
    b = flow_bench()
    if case == "unknown":
        refused(reply(b, "first", serial="20240611-999999", at=T0), ReasonCode.UNKNOWN_REFERENCE,
                "DispatchSerialNumber")
        return
    if case == "unknown_mark":  # refused by the route's resolver: the tracker does not know the order
        refused(mark(b, "final", serial="20240611-999999", at=T0), ReasonCode.UNKNOWN_REFERENCE)
        return
    dispatch(b)
    receipt(b, at=T0 + timedelta(minutes=1))
    reply(b, "final", at=T0 + timedelta(hours=1))
    mark(b, "final", at=T0 + timedelta(hours=1, minutes=1))
    refused(reply(b, "final", at=T0 + timedelta(hours=2)), ReasonCode.UNKNOWN_REFERENCE, "DispatchSerialNumber")
    refused(mark(b, "final", at=T0 + timedelta(hours=2)), ReasonCode.UNKNOWN_REFERENCE)
    # a second success mark of the dispatch order is a duplicate (its business key), never delivered
    assert receipt(b, at=T0 + timedelta(hours=2)).verdict is Verdict.duplicate


def test_illegal_steps_are_refused_and_the_order_carries_on(flow_bench):
    b = flow_bench()
    dispatch(b)
    # a return order before the success mark
    early = reply(b, "first", at=T0 + timedelta(minutes=2))
    refused(early, ReasonCode.ILLEGAL_TRANSITION)
    assert "DELIVERED" in early.error.detail
    # a mark for a reply that was never sent
    refused(mark(b, "first", at=T0 + timedelta(minutes=3)), ReasonCode.ILLEGAL_TRANSITION)
    receipt(b, at=T0 + timedelta(minutes=4))
    assert state(b) is State.RECEIVED
    # the same first reply, now in order: delivered (the refusal did not leave its business key claimed)
    ok = reply(b, "first", at=T0 + timedelta(minutes=2))
    assert ok.verdict is Verdict.delivered
    assert state(b) is State.FIRST_REPLIED


def test_a_reply_that_overtakes_its_mark_is_retried_not_refused(flow_bench):
    """Beijing sends its mark and its reply back to back; another lane judges the reply first."""
    b = flow_bench()
    dispatch(b)
    at = T0 + timedelta(minutes=2)
    xml = return_xml("11", "44", SERIAL, at=at, kind="final", result="已处理完毕。")
    o = b.pipeline.process(Incoming(xml.encode(), Props(message_id="reply-1", type="order.return",
                                                        user_id=b.settings.broker_user("node-11"))), at)
    b.worker._prepare([o])
    assert o.verdict is Verdict.retrying and o.error.reason == ReasonCode.OUT_OF_ORDER
    assert [out.exchange for out in o.outputs] == [RETRY_EXCHANGE]
    receipt(b, at=T0 + timedelta(minutes=1))                      # the mark, from the other lane
    retry = o.outputs[0]
    again = b.pipeline.process(Incoming(retry.body, retry.props, exchange=RETRY_EXCHANGE, routing_key=HUB_QUEUE), at)
    b.worker._prepare([again])
    assert again.verdict is Verdict.delivered and again.attempts == 2
    assert state(b) is State.FINAL_REPLIED


def test_business_rules_that_need_the_order(flow_bench):
    b = flow_bench()
    dispatch(b)                                                   # to HOME: Beijing
    receipt(b, at=T0 + timedelta(minutes=1))
    # Shanghai answers an order that went to Beijing
    refused(reply(b, "first", sender="31", at=T0 + timedelta(minutes=5)), ReasonCode.FIELD_INVALID, "CompanyCode")
    # a reply dated an hour before the dispatch
    refused(reply(b, "first", at=T0 - timedelta(hours=1)), ReasonCode.DEADLINE_ORDER, "ReplyTime")
    # a success mark dated an hour before the dispatch (another order: this one is received)
    dispatch(b, "S2")
    refused(receipt(b, "S2", at=T0 - timedelta(hours=1)), ReasonCode.DEADLINE_ORDER, "ReceivedTime")
    # a second dispatch order under a used serial number, once its business key is gone
    # (a retention job pruned it): the tracker still knows the serial number
    first_id = tracker.get_order(b.store, KEY).order.message_id
    assert b.store.release_business_keys([(f"order.dispatch:44:{SERIAL}", first_id)]) == 1
    refused(dispatch(b, to="11", mid="again"), ReasonCode.DUPLICATE, "SerialNumber")


def test_originator_resend_is_a_duplicate(flow_bench):
    b = flow_bench()
    first = dispatch(b, mid="gd-1")
    again = dispatch(b, mid="gd-1-resent")
    assert first.verdict is Verdict.delivered and again.verdict is Verdict.duplicate and again.outputs == []


def test_originator_resend_in_the_same_batch_is_a_duplicate(flow_bench):
    b = flow_bench()
    body = encode(dispatch_xml("44", SERIAL, "HOME", dispatch_time=T0, first=FIRST, final=FINAL), "gbk")
    batch = [b.pipeline.process(Incoming(body, Props(message_id=mid, type="order.dispatch", content_encoding="gbk",
                                                     user_id=b.settings.broker_user("node-44"))), T0)
             for mid in ("gd-1", "gd-1-resent")]
    b.worker._prepare(batch)
    assert [o.verdict for o in batch] == [Verdict.delivered, Verdict.duplicate]


def test_write_ahead_is_idempotent_per_message_id(flow_bench):
    """A broker commit that failed after the step was written: the message comes back and passes."""
    b = flow_bench()
    dispatch(b)
    xml = dispatch_receipt_xml("11", "44", SERIAL, at=T0 + timedelta(minutes=1))

    def outcome():
        return b.pipeline.process(Incoming(xml.encode(), Props(message_id="mark-1", type="order.dispatch_receipt",
                                                               user_id=b.settings.broker_user("node-11"))),
                                  T0 + timedelta(minutes=1))
    o1 = outcome()
    b.flow.before_publish([o1], T0 + timedelta(minutes=1))      # ... and the broker transaction fails
    o2 = outcome()                                                # redelivered
    b.flow.before_publish([o2], T0 + timedelta(minutes=2))
    assert o2.verdict is Verdict.delivered
    steps = [s.event for s in tracker.get_order(b.store, KEY).steps]
    assert steps.count("DispatchReceiptArrived(accepted)") == 1


def _alarms(fired):
    return [(t.payload["kind"], outs) for t, outs in fired if outs]


def test_overdue_alarms_fire_once_each_across_a_restart(flow_bench):
    settings = OrderSettings(warn_before=timedelta(minutes=30))
    b = flow_bench(settings)
    dispatch(b)
    receipt(b, at=T0 + timedelta(minutes=1))
    assert _alarms(b.tick(FIRST - timedelta(minutes=31))) == []          # re-sends and receipt alarm: nothing missing
    warn = _alarms(b.tick(FIRST - timedelta(minutes=29)))
    assert [k for k, _ in warn] == ["first_reply_warning"]
    first = _alarms(b.tick(FIRST + timedelta(seconds=1)))
    assert [k for k, _ in first] == ["first_reply_overdue"]
    outs = first[0][1]
    assert [(o.routing_key, o.props.content_encoding) for o in outs] == [
        ("node.44", "gbk"), ("node.11", "utf-8"), ("node.00", "utf-8")]
    assert {o.props.message_id for o in outs} == {f"alarm.44.{SERIAL}.first_reply_overdue"}
    alarm = wire.loads(outs[0].body, "gbk")
    assert isinstance(alarm, OrderAlarm) and alarm.kind is AlarmKind.first_reply_overdue
    assert alarm.deadline == FIRST and alarm.parties == ("44", "11", "00")
    assert "初步答复已超时" in outs[0].props.headers["x-hub-alarm-zh"]
    assert _alarms(b.tick(FIRST + timedelta(minutes=5))) == []           # fired once
    # restart: a new store connection and a new flow on the same database
    b2 = flow_bench(settings)
    assert _alarms(b2.tick(FIRST + timedelta(minutes=10))) == []
    reply(b2, "first", at=FIRST + timedelta(minutes=20))                # late, still moves the order on
    assert state(b2) is State.FIRST_REPLIED
    assert [k for k, _ in _alarms(b2.tick(FINAL - timedelta(minutes=29)))] == ["final_reply_warning"]
    assert [k for k, _ in _alarms(b2.tick(FINAL + timedelta(seconds=1)))] == ["final_reply_overdue"]
    assert _alarms(b2.tick(FINAL + timedelta(hours=1))) == []
    view = show_order(b2.store, *KEY)
    assert view.order.first_overdue and view.order.final_overdue and not view.order.receipt_overdue
    assert all(t["fired_at"] is not None for t in view.timers)


def test_no_warning_unless_configured_and_no_alarm_after_the_reply(flow_bench):
    b = flow_bench(OrderSettings(warn_before=None))
    dispatch(b)
    receipt(b, at=T0 + timedelta(minutes=1))
    reply(b, "first", at=T0 + timedelta(minutes=90))
    fired = b.tick(FIRST + timedelta(seconds=1))
    assert "first_reply_warning" not in {t.payload["kind"] for t, _ in fired}
    assert _alarms(fired) == []                      # the first reply came in time


def test_missing_mark_resends_the_same_bytes_then_stops(flow_bench):
    b = flow_bench(OrderSettings(receipt_within=timedelta(minutes=5), resend_backoff=[timedelta(minutes=15)]))
    o = dispatch(b)
    delivered = next(out for out in o.outputs if out.routing_key == "node.11")
    assert b.tick(T0 + timedelta(minutes=4)) == []
    fired = _alarms(b.tick(T0 + timedelta(minutes=6)))
    assert [k for k, _ in fired] == ["resend"]
    (resent,) = fired[0][1]
    assert resent.routing_key == "node.11" and resent.body == delivered.body
    assert resent.props.message_id == delivered.props.message_id and resent.props.headers["x-hub-resend"] == 1
    assert resent.props.content_encoding == "utf-8"           # re-encoded for Beijing, like the original
    receipt(b, at=T0 + timedelta(minutes=7))
    assert _alarms(b.tick(T0 + timedelta(hours=1))) == []     # no receipt_missing: the mark came
    assert show_order(b.store, *KEY).order.resends == 1


def test_a_mark_that_never_comes_ends_in_an_alarm(flow_bench, shipped_order_settings):
    b = flow_bench(shipped_order_settings)                    # 5m, then 15m, 45m: re-sends at +5m, +20m
    dispatch(b)
    kinds = [k for k, _ in _alarms(b.tick(T0 + timedelta(minutes=66)))]
    assert kinds == ["resend", "resend", "receipt_missing"]
    view = show_order(b.store, *KEY)
    assert view.order.resends == 2 and view.order.receipt_overdue and view.order.state is State.DELIVERED


def test_statistics_per_province_and_day(flow_bench):
    b = flow_bench()
    # 44 -> 11 closed: first answer after 60 min, final after 6 h
    dispatch(b, "S1")
    receipt(b, "S1", at=T0 + timedelta(minutes=1))
    reply(b, "first", "S1", at=T0 + timedelta(minutes=60))
    reply(b, "final", "S1", at=T0 + timedelta(hours=6))
    mark(b, "final", "S1", at=T0 + timedelta(hours=6, minutes=1))
    # 44 -> 11, final reply only, after 2 h (the first answer is the final one)
    dispatch(b, "S2")
    receipt(b, "S2", at=T0 + timedelta(minutes=2))
    reply(b, "final", "S2", at=T0 + timedelta(hours=2))
    # 44 -> 11 never answered: overdue
    dispatch(b, "S3")
    receipt(b, "S3", at=T0 + timedelta(minutes=3))
    # 11 -> 44, rejected by Guangdong
    dispatch(b, "S4", to="44", sender="11", to_name="广东")
    receipt(b, "S4", sender="44", originator="11", at=T0 + timedelta(minutes=4), status="rejected",
            reason="不属于本省受理范围")
    # another day (Beijing time): not counted
    dispatch(b, "S5", at=T0 + timedelta(days=1), first=FIRST + timedelta(days=1), final=FINAL + timedelta(days=1))
    b.tick(FIRST + timedelta(seconds=1))
    report = stats_report(b.store, date(2024, 6, 11), b.flow.config.zone, b.pipeline.cfg.directory)
    by = {c["company"]: c for c in report["companies"]}
    assert by["44"]["sent"] == 3 and by["44"]["received"] == 1 and by["44"]["refused"] == 1
    bj = by["11"]
    assert (bj["sent"], bj["received"], bj["first_replied"], bj["final_replied"], bj["closed"]) == (1, 3, 2, 2, 1)
    assert bj["reply_rate"] == round(2 / 3, 4)
    assert bj["avg_first_reply_s"] == (3600 + 7200) / 2
    assert bj["avg_final_reply_s"] == (6 * 3600 + 7200) / 2
    assert bj["overdue"] == 1 and bj["name_zh"] == "北京"
    assert report["totals"] == {"orders": 4, "final_replied": 2, "overdue": 1, "reply_rate": 0.5}
