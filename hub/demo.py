"""`hub demo`: the whole network on this machine, telling what happens as it happens.

Applies the topology, starts the hub, and plays HQ, the second-line platform and a few
provinces as plain pika clients with their own AMQP users: a GBK province and UTF-8
provinces exchanging messages through the hub, a broadcast to every province, a
duplicate re-send that is delivered once, and a forged sender refused with a Chinese
negative acknowledgement. Each flow added to the hub adds its scene here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pika
from lxml import etree

from hub import topology as topo
from hub.configuration import ADAPTER_NAMES, load_config
from hub.runtime import HubProcess
from hub.settings import Settings

H = "{urn:cs-hub:hub:1}"
ORDER_NS = "urn:cs-hub:order:1"
CHINA = timezone(timedelta(hours=8))


def _ts(value: datetime) -> str:
    return value.astimezone(CHINA).isoformat(timespec="seconds")


def _order_xml(root: str, encoding: str, fields: list[tuple[str, str]]) -> str:
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields)
    return f'<?xml version="1.0" encoding="{encoding.upper()}"?><{root} xmlns="{ORDER_NS}">{body}</{root}>'


_SAY = threading.Lock()


def say(text: str) -> None:
    with _SAY:  # node threads and the script speak at once; keep lines whole
        print(f"{datetime.now().strftime('%H:%M:%S')}  {text}", flush=True)


class DemoNode:
    def __init__(self, settings: Settings, code: str, name: str, password: str) -> None:
        self.code, self.name = code, name
        self.user = settings.broker_user(f"node-{code}")
        self.params = pika.URLParameters(settings.amqp_url_for_vhost(self.user, password))
        self.pub = pika.BlockingConnection(self.params)
        self.ch = self.pub.channel()
        self.ch.confirm_delivery()
        self.received: list[tuple[str, str, str, float]] = []
        self.sent_at: dict[str, float] = {}
        self._stop = threading.Event()
        self.quiet = False
        self.thread = threading.Thread(target=self._consume, daemon=True)
        self.thread.start()

    def send(self, type_: str, xml: str, encoding: str, message_id: str | None = None) -> str:
        mid = message_id or f"{self.code}-{uuid.uuid4().hex[:10]}"
        self.sent_at.setdefault(mid, time.perf_counter())
        self.ch.basic_publish("hub.ingress", type_, xml.encode(encoding), pika.BasicProperties(
            message_id=mid, type=type_, user_id=self.user, content_type="application/xml",
            content_encoding=encoding, delivery_mode=2, timestamp=int(time.time())))
        return mid

    def notice(self, to: str, title: str, text: str, encoding: str, message_id: str | None = None,
               claimed_sender: str | None = None) -> str:
        xml = (f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
               f'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>{claimed_sender or self.code}</CompanyCode>'
               f"<To>{to}</To><Title>{title}</Title><Text>{text}</Text></Notice>")
        return self.send("notice.text", xml, encoding, message_id)

    def _consume(self) -> None:
        conn = pika.BlockingConnection(self.params)
        ch = conn.channel()
        for m, p, body in ch.consume(f"node.{self.code}", inactivity_timeout=0.2):
            if self._stop.is_set():
                break
            if m is None:
                continue
            root = etree.fromstring(body)
            if self.quiet:
                pass
            elif p.type == "hub.nack":
                text = root.find(f"{H}Reason[@lang='zh']").text
                say(f"  ✗ {self.name}({self.code}) 收到否定确认 NACK [{root.findtext(f'{H}ReasonCode')}] {text}")
            elif root.tag.startswith("{" + ORDER_NS):
                serial = root.findtext(f"{{{ORDER_NS}}}SerialNumber") or root.findtext(f"{{{ORDER_NS}}}DispatchSerialNumber")
                say(f"  ✓ {self.name}({self.code}) 收到 received {p.type} 工单 order {serial} from "
                    f"{(p.headers or {}).get('x-hub-source')} ({p.content_encoding})")
            else:
                title = root.findtext(f"{H}Title") or root.findtext(".//{*}Title") or p.type
                say(f"  ✓ {self.name}({self.code}) 收到 received {p.type} 「{title}」 from "
                    f"{(p.headers or {}).get('x-hub-source')} ({p.content_encoding})")
            self.received.append((p.type, p.message_id, p.content_encoding, time.perf_counter()))
            ch.basic_ack(m.delivery_tag)
        ch.cancel()
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.pub.close()


def run_demo(settings: Settings, seconds: float = 20.0) -> int:
    cfg = load_config(settings.config_dir, settings.routes_dir)
    say(f"配置 configuration {cfg.version}: {len(cfg.directory.nodes)} 个节点 nodes, {len(cfg.routes)} 条路由 routes")
    t = topo.build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
    passwords = topo.load_or_create_passwords(settings, t.user_names)
    drift = topo.apply(t, settings, passwords)
    say(f"拓扑 topology applied on vhost {settings.vhost!r}: {len(t.queues)} queues, {len(t.users)} users"
        + (f" (drift: {drift})" if drift else ""))
    hub = HubProcess(settings, worker_id="demo-hub", watch=False)
    hub_thread = threading.Thread(target=hub.run, kwargs={"install_signals": False}, daemon=True)
    hub_thread.start()
    if not hub.worker.wait_ready(20):
        say("中心未能启动 the hub did not start; is RabbitMQ running?")
        return 2
    say("中心已启动 hub running")
    names = {n.code: n.names.zh for n in cfg.directory.nodes}
    codes = ["00", "99", "11", "31", "44"]
    nodes = {c: DemoNode(settings, c, names[c], passwords[settings.broker_user(f"node-{c}")]) for c in codes}
    enc = {c: cfg.directory.by_code[c].encoding for c in codes}
    try:
        say("场景一 scene 1: 广东(GBK)发通知给北京(UTF-8) Guangdong (GBK) notifies Beijing (UTF-8)")
        nodes["44"].notice("11", "漫游用户投诉", "北京用户在广东漫游,反映信号差,请协助处理。", enc["44"])
        _wait_for(nodes["11"], 1)
        say("场景二 scene 2: 北京回复广东 Beijing answers Guangdong (re-encoded to GBK by the hub)")
        nodes["11"].notice("44", "处理结果", "已联系用户,基站故障已修复。", enc["11"])
        _wait_for(nodes["44"], 1)
        say("场景三 scene 3: 总部广播给所有省 HQ broadcasts to every province")
        nodes["00"].notice("provinces", "全网公告", "新业务今日上线,请各省知悉。", enc["00"])
        for c in ("11", "31", "44"):
            _wait_for(nodes[c], 2 if c in ("11", "44") else 1)
        say("场景四 scene 4: 上海重发同一消息三次,中心只投递一次 Shanghai re-sends one message three times")
        mid = f"31-resend-{uuid.uuid4().hex[:6]}"
        for _ in range(3):
            nodes["31"].notice("99", "故障通告", "浦东基站中断", enc["31"], message_id=mid)
        _wait_for(nodes["99"], 1)
        say("场景五 scene 5: 广东冒充北京发送,被中心拒收 Guangdong pretends to be Beijing: refused")
        before = len(nodes["44"].received)
        nodes["44"].notice("31", "冒充", "伪造的发送方", enc["44"], claimed_sender="11")
        _wait_for(nodes["44"], before + 1)
        _order_scene(nodes, enc)
        _knowledge_scene(nodes, enc)
        say(f"持续流量 steady traffic for {seconds:.0f}s: provinces exchanging notices")
        for n in nodes.values():
            n.quiet = True
        deadline = time.monotonic() + seconds
        sent = 0
        next_report = time.monotonic() + 2
        while time.monotonic() < deadline:
            if time.monotonic() >= next_report:
                next_report += 2
                say(f"  … sent {sent}, hub delivered {hub.worker.stats['delivered']}, "
                    f"commits {hub.worker.stats['commits']}")
            for a, b in (("44", "11"), ("11", "31"), ("31", "44")):
                nodes[a].notice(b, "流量", f"第{sent}条", enc[a])
                sent += 1
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        for n in nodes.values():
            n.close()
        hub.stop()
        hub_thread.join(30)
    got = Counter({c: len(n.received) for c, n in nodes.items()})
    say("节点收到 received per node: " + ", ".join(f"{names[c]}({c})={got[c]}" for c in codes))
    say(f"中心统计 hub stats: {hub.worker.stats}")
    say(f"查询轨迹 trace one: hub trace {mid}   (journal: {settings.store_url})")
    return 0


def _order_scene(nodes: dict[str, DemoNode], enc: dict[str, str]) -> None:
    """Scene 6: an electronic dispatch order across provinces, its marks and both replies (docs/orders.md)."""
    gd, bj, hq = nodes["44"], nodes["11"], nodes["00"]
    serial = f"GD{datetime.now():%Y%m%d}{uuid.uuid4().hex[:6].upper()}"
    now = datetime.now(CHINA)
    say(f"场景六 scene 6: 广东派单给北京 Guangdong dispatches complaint order {serial} to Beijing (copy to HQ)")
    before = {c: len(n.received) for c, n in nodes.items()}
    gd.send("order.dispatch", _order_xml("DispatchOrder", enc["44"], [
        ("CompanyCode", "44"), ("SerialNumber", serial), ("ToCompany", "<Code>11</Code><Name>北京公司</Name>"),
        ("DispatcherName", "李娜"), ("DispatcherPhone", "020-87654321"), ("CustomerMobile", "13901001234"),
        ("ComplainantName", "王建国"), ("ComplainantPhone", "13901001234"), ("ComplaintCategory", "NETWORK_SIGNAL"),
        ("ComplaintIssue", "用户在广州漫游期间手机信号时有时无,通话经常中断。"),
        ("FirstReplyDeadline", _ts(now + timedelta(hours=2))), ("FinalReplyDeadline", _ts(now + timedelta(hours=48))),
        ("DispatchTime", _ts(now))]), enc["44"])
    _wait_for(bj, before["11"] + 1)
    say("  北京回派单成功标记 Beijing sends the dispatch success mark")
    bj.send("order.dispatch_receipt", _order_xml("DispatchReceipt", enc["11"], [
        ("CompanyCode", "11"), ("DispatchCompanyCode", "44"), ("DispatchSerialNumber", serial),
        ("ReceivedTime", _ts(datetime.now(CHINA))), ("Status", "accepted")]), enc["11"])
    _wait_for(gd, before["44"] + 1)
    for kind, result in (("first", "已联系用户,正在排查基站。"), ("final", "基站故障已修复,用户确认恢复正常。")):
        say(f"  北京回单({kind}) Beijing returns its {kind} reply; 广东回成功标记 Guangdong confirms it")
        n44, n11 = len(gd.received), len(bj.received)
        bj.send("order.return", _order_xml("ReturnOrder", enc["11"], [
            ("CompanyCode", "11"), ("DispatchCompanyCode", "44"), ("DispatchSerialNumber", serial),
            ("ReplierName", "张伟"), ("ReplierPhone", "010-12345678"), ("Result", result),
            ("ReplyTime", _ts(datetime.now(CHINA))), ("ReplyKind", kind)]), enc["11"])
        _wait_for(gd, n44 + 1)
        gd.send("order.return_receipt", _order_xml("ReturnReceipt", enc["44"], [
            ("CompanyCode", "44"), ("DispatchCompanyCode", "44"), ("DispatchSerialNumber", serial),
            ("ReplyKind", kind), ("ReceivedTime", _ts(datetime.now(CHINA))), ("Status", "accepted")]), enc["44"])
        _wait_for(bj, n11 + 1)
    _wait_for(hq, before["00"] + 6)
    say(f"  总部收到全部 {len(hq.received) - before['00']} 份抄送 HQ holds a copy of every step; "
        f"see: hub orders show 44 {serial}")


def _knowledge_scene(nodes: dict[str, DemoNode], enc: dict[str, str]) -> None:
    """Scene 7: the second-line platform's knowledge item reviewed by HQ, delivered, confirmed (docs/knowledge.md)."""
    from protocols.knowledge import wire
    from protocols.knowledge.models import (
        Action,
        DeliveryReceipt,
        KnowledgeDelivery,
        KnowledgeItem,
        KnowledgeStatus,
        KnowledgeSubmission,
        ReceiptStatus,
        ReviewOutcome,
        ReviewResult,
    )

    sl, hq = nodes["99"], nodes["00"]
    now = datetime.now(CHINA).replace(microsecond=0) - timedelta(seconds=5)
    item_id = f"KN-99-{uuid.uuid4().hex[:10]}"
    item = KnowledgeItem(id=item_id, version=1, title="5G新通话业务资费说明", content="5G 新通话的资费与开通方式。",
                         category_path=("NATIONWIDE", "NEW_SERVICE"), status=KnowledgeStatus.submitted,
                         effective_date=now, owner_node="99", author="陈思远")
    sub = KnowledgeSubmission(serial_number=uuid.uuid4().hex[:16], action=Action.publish, submitter_code="99",
                              local_reviewer="李明", submitted_at=now, item=item)
    say(f"场景七 scene 7: 二线提交知识 the second-line platform submits knowledge item {item_id} for HQ's review")
    n00, n99 = len(hq.received), len(sl.received)
    sl.send("knowledge.submit", wire.dumps(sub).decode("utf-8"), "utf-8")
    _wait_for(hq, n00 + 1)
    say("  总部审核通过 HQ approves it and delivers it to Beijing, Shanghai and Guangdong")
    hq.send("knowledge.review", wire.dumps(ReviewResult(
        submitter_code="99", submission_serial_number=sub.serial_number, action=Action.publish, item_id=item_id,
        version=1, outcome=ReviewOutcome.approved, reviewer_at_hq="王建华", reviewed_at=now)).decode(), "utf-8")
    _wait_for(sl, n99 + 1)
    recipients = ("11", "31", "44")
    before = {c: len(nodes[c].received) for c in recipients}
    published = item.model_copy(update={"status": KnowledgeStatus.published, "reviewer": "王建华"})
    hq.send("knowledge.delivery", wire.dumps(KnowledgeDelivery(
        action=Action.publish, recipients=recipients, published_at=now, item=published)).decode(), "utf-8")
    n00 = len(hq.received)
    for c in recipients:
        _wait_for(nodes[c], before[c] + 1)
        nodes[c].send("knowledge.receipt", wire.dumps(DeliveryReceipt(
            company_code=c, item_id=item_id, version=1, receipt_status=ReceiptStatus.accepted,
            received_at=now)).decode(), "utf-8")
    _wait_for(hq, n00 + len(recipients))
    say(f"  各省回执已到总部 every receipt is back at HQ; the console's knowledge page shows {item_id} "
        f"delivered and confirmed at 3 recipients")


def _wait_for(node: DemoNode, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(node.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    if len(node.received) < count:
        say(f"  ! {node.name}({node.code}) waited {timeout:.0f}s for message {count}; see the hub log")
