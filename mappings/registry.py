"""Named checks, mappings, enrichers and resolvers that routes refer to.

One plain registry (grep finds them all; nothing registers itself on import). Each entry
is a pure function:
- CHECKS[name](root, ctx) -> None, raising RejectedMessage with a reason code;
- MAPPINGS[name](root, ctx) -> new root (never mutates its input);
- ENRICHERS[name](root, ctx) -> dict of headers to add;
- RESOLVERS[name](root, ctx) -> list of node codes.
`ctx` is a mappings.context.RouteContext: the sender, the node codes and groups, the
number-segment table and the time, passed in by the hub.
"""

from __future__ import annotations

from collections.abc import Callable

from mappings import knowledge, nms, notices, orders, wap
from mappings.sms import sending as sms_sending

CHECKS: dict[str, Callable] = {
    # electronic dispatch and return orders (docs/orders.md section 4)
    "order_dispatch": orders.check_dispatch,
    "order_return": orders.check_return,
    "order_dispatch_receipt": orders.check_dispatch_receipt,
    "order_return_receipt": orders.check_return_receipt,
    # SMS through the SMS centre (docs/sms.md): the text renders and fits 255 parts
    "sms_send": sms_sending.check_send,
    # WAP business hall (docs/wap.md): a month for bills and detail records, none in the future
    "wap_query": wap.check_query,
    # NMS fault notices (docs/nms.md): announcement rules with HQ as publisher, Kind fault/cutover
    "nms_notice": nms.check_notice,
    # knowledge and announcement sharing (docs/knowledge.md): the protocol rules at ingress
    "knowledge_message": knowledge.check_knowledge,
    "announcement_message": knowledge.check_announcement,
}
MAPPINGS: dict[str, Callable] = {}
ENRICHERS: dict[str, Callable] = {}
RESOLVERS: dict[str, Callable] = {
    "notice_recipient": notices.recipient,
    "order_receiver": orders.order_receiver,
    "order_originator": orders.order_originator,
    "order_replier": orders.order_replier,
    "wap_home_province": wap.home_province,
    # knowledge and announcement sharing (routes/knowledge.yaml, routes/announcements.yaml)
    "knowledge_submitter": knowledge.knowledge_submitter,
    "knowledge_recipients": knowledge.knowledge_recipients,
    "knowledge_feedback_province": knowledge.knowledge_feedback_province,
    "knowledge_owner": knowledge.knowledge_owner,
    "announcement_submitter": knowledge.announcement_submitter,
    "announcement_company": knowledge.announcement_company,
    "announcement_scope": knowledge.announcement_scope,
}
