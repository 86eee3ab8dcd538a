"""Every text of the console in Chinese (first, the default) and English: one catalogue.

Owns: MESSAGES, `text(lang, key)` and the choice of language from a cookie or query.
A missing English text falls back to Chinese, a missing key shows the key itself (so a
typo is visible on the page, never an exception).
"""

from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

MESSAGES: dict[str, dict[str, str]] = {
    "app.title": {"zh": "客服网络接口枢纽 · 队列控制台", "en": "Customer-service hub · queue console"},
    "nav.overview": {"zh": "总览", "en": "Overview"},
    "nav.queues": {"zh": "队列", "en": "Queues"},
    "nav.dlq": {"zh": "死信", "en": "Dead letters"},
    "nav.search": {"zh": "消息查询", "en": "Search"},
    "nav.orders": {"zh": "工单", "en": "Orders"},
    "nav.knowledge": {"zh": "知识同步", "en": "Knowledge sync"},
    "nav.audit": {"zh": "操作审计", "en": "Audit"},
    "nav.logout": {"zh": "退出", "en": "Log out"},
    "nav.lang": {"zh": "English", "en": "中文"},
    "login.title": {"zh": "登录", "en": "Log in"},
    "login.user": {"zh": "用户名", "en": "User"},
    "login.password": {"zh": "密码", "en": "Password"},
    "login.submit": {"zh": "登录", "en": "Log in"},
    "login.failed": {"zh": "用户名或密码错误", "en": "Wrong user or password"},
    "login.expired": {"zh": "会话已过期,请重新登录", "en": "Your session expired; log in again"},
    "role": {"zh": "角色", "en": "Role"},
    "ov.nodes": {"zh": "RabbitMQ 节点", "en": "RabbitMQ nodes"},
    "ov.node": {"zh": "节点", "en": "Node"},
    "ov.running": {"zh": "运行中", "en": "Running"},
    "ov.alarms": {"zh": "告警", "en": "Alarms"},
    "ov.no_alarms": {"zh": "无告警", "en": "No alarms"},
    "ov.blocked": {"zh": "被阻塞的连接", "en": "Blocked connections"},
    "ov.connections": {"zh": "省份/节点连接", "en": "Node connections"},
    "ov.connected": {"zh": "已连接", "en": "connected"},
    "ov.disconnected": {"zh": "未连接", "en": "not connected"},
    "ov.rates": {"zh": "消息速率 (条/秒)", "en": "Message rates (msg/s)"},
    "ov.publish": {"zh": "发布", "en": "Publish"},
    "ov.deliver": {"zh": "投递", "en": "Deliver"},
    "ov.ack": {"zh": "确认", "en": "Ack"},
    "ov.database": {"zh": "数据库", "en": "Database"},
    "ov.journal": {"zh": "消息日志 (按状态)", "en": "Journal by status"},
    "ov.broker": {"zh": "消息中间件", "en": "Broker"},
    "ok": {"zh": "正常", "en": "OK"},
    "fail": {"zh": "异常", "en": "Failing"},
    "q.name": {"zh": "队列", "en": "Queue"},
    "q.kind": {"zh": "类别", "en": "Kind"},
    "q.depth": {"zh": "积压", "en": "Depth"},
    "q.unacked": {"zh": "未确认", "en": "Unacked"},
    "q.consumers": {"zh": "消费者", "en": "Consumers"},
    "q.in_rate": {"zh": "入速率", "en": "In/s"},
    "q.out_rate": {"zh": "出速率", "en": "Out/s"},
    "kind.hub": {"zh": "枢纽", "en": "hub"},
    "kind.node": {"zh": "节点", "en": "node"},
    "kind.adapter": {"zh": "适配器", "en": "adapter"},
    "kind.retry": {"zh": "重试层", "en": "retry tier"},
    "kind.dlq": {"zh": "死信", "en": "dead letters"},
    "kind.other": {"zh": "其他", "en": "other"},
    "dlq.count": {"zh": "死信数", "en": "Dead letters"},
    "dlq.message_id": {"zh": "消息编号", "en": "Message id"},
    "dlq.type": {"zh": "消息类型", "en": "Type"},
    "dlq.source": {"zh": "来源", "en": "Source"},
    "dlq.reason": {"zh": "原因", "en": "Reason"},
    "dlq.attempts": {"zh": "尝试次数", "en": "Attempts"},
    "dlq.route": {"zh": "路由", "en": "Route"},
    "dlq.target": {"zh": "重放目标", "en": "Replay target"},
    "dlq.dead_at": {"zh": "进入死信时间", "en": "Dead-lettered at"},
    "dlq.headers": {"zh": "消息头", "en": "Headers"},
    "dlq.payload": {"zh": "报文内容", "en": "Payload"},
    "dlq.encoding": {"zh": "编码", "en": "Encoding"},
    "dlq.replay": {"zh": "重放", "en": "Replay"},
    "dlq.replay_selected": {"zh": "重放所选", "en": "Replay selected"},
    "dlq.replay_all": {"zh": "全部重放", "en": "Replay all"},
    "dlq.discard": {"zh": "丢弃", "en": "Discard"},
    "dlq.discard_reason": {"zh": "丢弃原因", "en": "Reason for discarding"},
    "dlq.empty": {"zh": "死信队列为空", "en": "The dead-letter queue is empty"},
    "dlq.not_found": {"zh": "死信队列中没有该消息", "en": "No such message in the dead-letter queue"},
    "dlq.done": {"zh": "完成", "en": "Done"},
    "dlq.replayed": {"zh": "已重放", "en": "replayed"},
    "dlq.discarded": {"zh": "已丢弃", "en": "discarded"},
    "dlq.no_route": {"zh": "无原始路由,无法重放", "en": "no original route; cannot replay"},
    "dlq.viewer_only": {"zh": "只读角色不能重放或丢弃", "en": "Viewers cannot replay or discard"},
    "search.placeholder": {"zh": "消息编号 / 流水号 / 关联编号 / 用户号码",
                           "en": "message id / serial number / correlation id / customer number"},
    "search.submit": {"zh": "查询", "en": "Search"},
    "search.none": {"zh": "未找到记录", "en": "Nothing found"},
    "search.journey": {"zh": "消息轨迹", "en": "Journey"},
    "search.status": {"zh": "状态", "en": "Status"},
    "search.time": {"zh": "时间", "en": "Time"},
    "search.destination": {"zh": "目的地", "en": "Destination"},
    "search.detail": {"zh": "详情", "en": "Detail"},
    "search.business_key": {"zh": "业务键", "en": "Business key"},
    "search.correlation": {"zh": "关联编号", "en": "Correlation id"},
    "search.error": {"zh": "错误", "en": "Error"},
    "orders.stats": {"zh": "今日工单统计 (按省)", "en": "Today's order statistics by province"},
    "orders.in_flight": {"zh": "在途工单", "en": "Orders in flight"},
    "orders.overdue": {"zh": "超时工单", "en": "Overdue orders"},
    "orders.company": {"zh": "公司", "en": "Company"},
    "orders.sent": {"zh": "派出", "en": "Sent"},
    "orders.received": {"zh": "接收", "en": "Received"},
    "orders.final": {"zh": "终复", "en": "Final replies"},
    "orders.rate": {"zh": "回复率", "en": "Reply rate"},
    "orders.serial": {"zh": "流水号", "en": "Serial"},
    "orders.state": {"zh": "状态", "en": "State"},
    "orders.receiver": {"zh": "接单方", "en": "Receiver"},
    "orders.deadline": {"zh": "最终答复时限", "en": "Final reply due"},
    "orders.none": {"zh": "无", "en": "None"},
    "knowledge.placeholder": {
        "zh": "知识同步数据不可用(此数据库中尚无知识同步表)。",
        "en": "Knowledge sync data is not available (this store has no knowledge sync tables yet)."},
    "knowledge.published": {"zh": "总部版本", "en": "HQ version"},
    "knowledge.receipt": {"zh": "回执状态", "en": "Receipt"},
    "knowledge.item": {"zh": "知识条目", "en": "Item"},
    "knowledge.recipient": {"zh": "接收方", "en": "Recipient"},
    "knowledge.delivered": {"zh": "已送达版本", "en": "Version delivered"},
    "knowledge.confirmed": {"zh": "已确认版本", "en": "Version confirmed"},
    "knowledge.outstanding": {"zh": "待回执", "en": "Outstanding receipts"},
    "audit.who": {"zh": "操作人", "en": "Who"},
    "audit.when": {"zh": "时间", "en": "When"},
    "audit.action": {"zh": "操作", "en": "Action"},
    "audit.outcome": {"zh": "结果", "en": "Outcome"},
    "live": {"zh": "实时刷新", "en": "Live"},
    "err.forbidden": {"zh": "权限不足", "en": "Not allowed for your role"},
    "err.csrf": {"zh": "CSRF 校验失败,请刷新页面重试", "en": "CSRF check failed; reload the page and retry"},
    "err.unavailable": {"zh": "暂不可用", "en": "unavailable"},
    "err.throttled": {"zh": "登录失败次数过多,请稍后再试", "en": "Too many failed logins; try again later"},
}


def text(lang: str, key: str) -> str:
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get(DEFAULT_LANG) or key


def pick_lang(query: str | None, cookie: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate
    return DEFAULT_LANG
