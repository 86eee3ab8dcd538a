"""Sending through a real SMSC: Chinese text arrives intact, receipts come back as sms.status."""

from __future__ import annotations

from smpp_bus import NS, statuses
from smsc_peer import decode_part, reassemble, smpp_config
from waiting import wait_until

from mappings.sms.templates import render
from protocols import xmlwire


def test_short_and_long_chinese_arrive_intact_and_receipts_correlate(smscs, adapters, bus):
    smsc = smscs("smsc-a")
    adapters(smpp_config(smsc))
    short = render("one_time_password", sign="中国移动", code="384912", minutes=5)
    long = render("complaint_reply", sign="中国移动", complaint_date="6月10日", ticket="20240611-000123",
                  result="小区光缆被施工挖断，已于当晚修复，宽带已恢复正常，本月月租按故障天数减免，"
                         "如仍有问题请致电客服热线，我们将安排工程师上门检测 🙏", hotline="10086")
    bus.send("gd-1", "13902001234", short)
    bus.send("gd-2", "13902005678", long)
    got = statuses(bus, "node.44", 2)
    texts = reassemble(smsc.accepted())
    assert short in texts.values() and long in texts.values()
    long_parts = [decode_part(e)[0] for e in smsc.accepted() if e["destination"] == "13902005678"]
    assert len(long_parts) >= 2 and all(p is not None for p in long_parts)
    assert {p[0] for p in long_parts} == {long_parts[0][0]}          # one 16-bit reference
    for ref in ("gd-1", "gd-2"):
        assert got[ref].findtext("s:Status", namespaces=NS) == "delivered"
    assert got["gd-2"].find("s:Parts", NS).get("delivered") == str(len(long_parts))


def test_through_the_hub_a_survey_and_its_reply_find_the_node_that_sent_it(
        settings, smscs, adapters, bus, topology_with_adapters):
    """Guangdong publishes a survey on hub.ingress; the hub routes it to adapter.smpp; the
    status comes back to node.44, and so does the customer's reply (sms.mo, SurveyReply)."""
    from running_hub import HubThread, Node

    _topology, passwords = topology_with_adapters
    smsc = smscs("smsc-a")
    adapter = adapters(smpp_config(smsc))
    hub = HubThread(settings).start()
    node = Node(settings, "44", passwords[settings.broker_user("node-44")])
    try:
        body = ('<SmsSend xmlns="urn:cs-hub:sms:1"><CompanyCode>44</CompanyCode><To>13902007777</To>'
                '<Template name="satisfaction_survey"><Field name="sign">中国移动</Field>'
                '<Field name="ticket">GD-20240611-0009</Field></Template>'
                '<Reference>GD-20240611-0009</Reference></SmsSend>').encode("gbk")
        node.publish("sms.send", b'<?xml version="1.0" encoding="GBK"?>' + body, "gd-survey-9", encoding="gbk")
        _m, props, payload = node.get(timeout=20)
        assert props.type == "sms.status" and props.correlation_id == "gd-survey-9"
        assert props.content_encoding == "gbk"
        root, _ = xmlwire.parse(payload, props.content_encoding)
        assert root.findtext("s:Status", namespaces=NS) == "delivered"
        assert root.findtext("s:Reference", namespaces=NS) == "GD-20240611-0009"
        assert "满意" in next(iter(reassemble(smsc.accepted()).values()))

        smsc.mo("13902007777", "１ 满意")            # full-width digit: still option 1
        _m, props, payload = node.get(timeout=20)
        assert props.type == "sms.mo" and props.correlation_id == "gd-survey-9"
        root, _ = xmlwire.parse(payload, props.content_encoding)
        reply = root.find("s:SurveyReply", NS)
        assert reply.get("inReplyTo") == "gd-survey-9" and reply.get("option") == "1"
        assert reply.get("reference") == "GD-20240611-0009"
        assert root.findtext("s:Text", namespaces=NS) == "１ 满意"
    finally:
        node.close()
        hub.stop()
    # `hub trace gd-survey-9`: the SMSC's acceptance and the receipt follow the hub's own hop.
    store = adapter.store

    def smsc_hops():
        return [h for h in store.get("gd-survey-9").hops if h.destination == "smsc.smsc-a"] or None
    wait_until(lambda: len(smsc_hops() or []) == 2, 10, 0.05, "the SMSC's steps are in the journal")
    submitted, delivered = smsc_hops()
    assert submitted.status == "submitted" and "SMSC smsc-a accepted 2/2 part(s)" in submitted.detail
    assert delivered.status == "delivered" and "stat:DELIVERED" in delivered.detail
    assert store.get("gd-survey-9").hops[0].destination != "smsc.smsc-a"


def test_mo_routed_by_configuration_and_long_mo_reassembled(smscs, adapters, bus):
    smsc = smscs("smsc-a")
    adapters(smpp_config(smsc))
    long_text = "我想咨询一下宽带资费的问题，" * 12 + "谢谢！😀"
    smsc.mo("13800001111", long_text, destination="10086", parts=3, ref_bits=8, reverse=True)
    smsc.mo("13800002222", "二线请回电", destination="100869901", parts=1)
    smsc.mo("13800003333", "另一条长消息" * 20, destination="10086", parts=2, ref_bits=16)
    got: dict[str, list] = {"node.00": [], "node.99": []}

    def arrived():
        for q in got:
            got[q] += bus.take(q)
        return len(got["node.00"]) >= 2 and len(got["node.99"]) >= 1
    wait_until(arrived, 20, 0.05, "the three MO messages arrive")
    texts = {}
    for q, msgs in got.items():
        for props, body in msgs:
            assert props.type == "sms.mo"
            root, _ = xmlwire.parse(body, props.content_encoding)
            texts[root.findtext("s:From", namespaces=NS)] = (q, root.findtext("s:Text", namespaces=NS),
                                                             root.findtext("s:Complete", namespaces=NS))
    assert texts["13800001111"] == ("node.00", long_text, "true")
    assert texts["13800002222"] == ("node.99", "二线请回电", "true")
    assert texts["13800003333"] == ("node.00", "另一条长消息" * 20, "true")


def test_receipt_outcomes_and_smsc_refusals_reach_the_node(smscs, adapters, bus):
    """UNDELIV and EXPIRED receipts carry the SMSC's error; ESME_RINVDSTADR is permanent
    (undeliverable at once, the sms.send parked in hub.dlq with the reason); ESME_RSYSERR is
    retried through the retry tiers and then delivered."""
    smsc = smscs("smsc-a")
    adapters(smpp_config(smsc))
    bus.send("u-1", "13900001234", "测试无法送达")
    bus.send("e-1", "13800001234", "测试过期")
    bus.send("p-1", "0000123", "测试无效号码")
    bus.send("r-1", "13700001234", "测试系统错误后重试")
    got = statuses(bus, "node.44", 4, timeout=30)
    assert got["u-1"].findtext("s:Status", namespaces=NS) == "undeliverable"
    assert got["u-1"].findtext("s:SmscError", namespaces=NS) == "012"
    assert got["e-1"].findtext("s:Status", namespaces=NS) == "expired"
    assert got["e-1"].findtext("s:SmscError", namespaces=NS) == "027"
    assert got["p-1"].findtext("s:Status", namespaces=NS) == "undeliverable"
    assert got["p-1"].findtext("s:ReasonCode", namespaces=NS) == "SMPP_INVALID_DESTINATION"
    assert got["r-1"].findtext("s:Status", namespaces=NS) == "delivered"
    dead = bus.take("hub.dlq")
    assert [(p.message_id, p.headers["x-hub-reason-code"]) for p, _b in dead] == [
        ("p-1", "SMPP_INVALID_DESTINATION")]
    tries = [s for s in smsc.submits() if s["destination"] == "13700001234"]
    assert [s["status"] for s in tries] == [0x08, 0]


def test_metrics_count_what_was_sent_and_show_each_smsc(smscs, adapters, bus):
    import requests
    from ports import free_port
    from prometheus_client.parser import text_string_to_metric_families

    smsc = smscs("smsc-a")
    port = free_port()
    adapters(smpp_config(smsc, metrics_port=port))
    for i in range(3):
        bus.send(f"gd-m{i}", "13902001234", f"您的验证码是 38491{i}")
    statuses(bus, "node.44", 3)

    def scrape() -> dict:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}
    m = wait_until(lambda: (m := scrape()) and m[("smpp_statuses_total", ())] == 3 and m, 10,
                   description="three sms.status counted")
    assert m[("smpp_received_total", ())] == 3
    assert m[("smpp_smsc_bound", (("smsc", "smsc-a"),))] == 1
    assert m[("smpp_smsc_events_total", (("kind", "submits"), ("smsc", "smsc-a")))] == 3
    assert m[("smpp_smsc_events_total", (("kind", "receipts"), ("smsc", "smsc-a")))] == 3
    assert m[("smpp_broker_connected", ())] == 1
    assert m[("smpp_dead_lettered_total", ())] == 0
