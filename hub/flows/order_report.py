"""What operators read about orders: the daily statistics and one order's history, as text or JSON.

Owns: turning the tracker's read side (hub/flows/order_tracker.py) into the report the CLI
prints (`hub orders stats`, `hub orders show`) and the JSON the console will show; Chinese
names first, English beside them.
Must not: query anything itself beyond the tracker's functions, or decide what the numbers mean.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.flows import order_tracker as tracker
from hub.flows.orders import RESEND, timer_key
from hub.nodes import Directory
from hub.store import Store
from protocols.orders.models import AlarmKind

#: Most re-send timers an order can have (OrderSettings.resend_backoff allows 10).
_MAX_RESENDS = 10


def show_order(store: Store, company: str, serial: str) -> tracker.OrderView | None:
    """One order with its steps and its durable timers (pending or fired); None when unknown."""
    key = (company, serial)
    view = tracker.get_order(store, key)
    if view is None:
        return None
    kinds = [k.value for k in AlarmKind] + [f"{RESEND}-{n}" for n in range(1, _MAX_RESENDS + 1)]
    for kind in kinds:
        t = store.get_timer(timer_key(key, kind))
        if t is not None:
            view.timers.append({"kind": kind, "key": t.key, "due_at": t.due_at, "fired_at": t.fired_at})
    view.timers.sort(key=lambda t: t["due_at"])
    return view


def stats_report(store: Store, day: date, zone: ZoneInfo, directory: Directory | None = None) -> dict[str, Any]:
    """The statistics of `day` as JSON-ready data: {day, timezone, companies: [...], totals}."""
    rows = tracker.daily_stats(store, day, zone)
    companies = []
    for r in rows:
        item = r.as_dict()
        node = directory.by_code.get(r.company) if directory is not None else None
        item["name_zh"] = node.names.zh if node else None
        item["name_en"] = node.names.en if node else None
        companies.append(item)
    sent = sum(r.sent for r in rows)
    replied = sum(r.final_replied for r in rows)
    totals = {"orders": sent, "final_replied": replied, "overdue": sum(r.overdue for r in rows),
              "reply_rate": round(replied / sent, 4) if sent else None}
    return {"day": day.isoformat(), "timezone": zone.key, "companies": companies, "totals": totals}


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def stats_text(report: dict[str, Any]) -> str:
    head = (f"工单统计 order statistics {report['day']} ({report['timezone']}), orders counted by DispatchTime (派单时间)")
    if not report["companies"]:
        return head + "\nno dispatch orders on this day"
    cols = ("company", "sent 派出", "received 接收", "1st 初复", "final 终复", "reply rate 回复率",
            "avg 1st min 平均初复", "avg final min 平均终复", "overdue 超时")
    lines = [head, "  ".join(cols)]
    for c in report["companies"]:
        name = f"{c['company']} {c['name_zh'] or ''}".strip()
        cells = (name, c["sent"], c["received"], c["first_replied"], c["final_replied"], _rate(c["reply_rate"]),
                 _minutes(c["avg_first_reply_s"]), _minutes(c["avg_final_reply_s"]), c["overdue"])
        lines.append("  ".join(str(v).ljust(len(h)) for v, h in zip(cells, cols, strict=True)).rstrip())
    t = report["totals"]
    lines.append(f"total: {t['orders']} orders, {t['final_replied']} with the final reply "
                 f"({_rate(t['reply_rate'])}), {t['overdue']} overdue")
    return "\n".join(lines)


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return "-" if value is None else value.astimezone(zone).isoformat(timespec="seconds")


def order_text(view: tracker.OrderView, zone: ZoneInfo) -> str:
    o = view.order
    flags = [name for name, on in (("first reply overdue 初步答复超时", o.first_overdue),
                                   ("final reply overdue 最终答复超时", o.final_overdue),
                                   ("success mark missing 未回成功标记", o.receipt_overdue)) if on]
    lines = [
        f"dispatch order 电子派单 {o.originator}/{o.serial} -> {o.receiver}   state {o.state.name}"
        + (f"   OVERDUE: {', '.join(flags)}" if flags else ""),
        f"  message id {o.message_id}, category {o.category}, re-sent {o.resends} time(s)",
        f"  dispatched 派单时间   {_when(o.dispatch_time, zone)}",
        f"  first reply due 初步答复时限 {_when(o.first_deadline, zone)}   replied {_when(o.first_replied_at, zone)}",
        f"  final reply due 最终答复时限 {_when(o.final_deadline, zone)}   replied {_when(o.final_replied_at, zone)}",
        f"  delivered {_when(o.delivered_at, zone)}   received 接收 {_when(o.received_at, zone)}   "
        f"closed {_when(o.closed_at, zone)}" + (f"   refused {_when(o.refused_at, zone)}" if o.refused_at else ""),
        "  steps:",
    ]
    for s in view.steps:
        lines.append(f"    {_when(s.at, zone)}  {s.event:<40} -> {s.state:<13}"
                     + (f"  {s.message_id}" if s.message_id else ""))
    if view.timers:
        lines.append("  timers:")
        for t in view.timers:
            fired = f"fired {_when(t['fired_at'], zone)}" if t["fired_at"] else "pending"
            lines.append(f"    {_when(t['due_at'], zone)}  {t['kind']:<22} {fired}")
    return "\n".join(lines)
