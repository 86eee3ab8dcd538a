"""The orders flow: the dispatch/return transaction (电子派单 / 电子回单) kept by the hub.

Owns: judging each reply and success mark against its order's state (the protocol's state
machine, protocols.orders.transaction), recording every step in the order tracker
(hub/flows/order_tracker.py), scheduling the order's durable timers (reply deadlines,
optional warnings, re-sends of an unconfirmed order, the missing-mark alarm), and what a
timer produces: an order.alarm to the originator, the receiver and HQ (工作流监控), or the
byte-identical re-send of the dispatch order. It also answers the routing question only
state can answer: to whom a ReturnReceipt goes (`lookups["order_receiver"]`).
Must not: validate fields (mappings/orders.py at ingress), choose routes (routes/orders.yaml)
or publish (the hop and the timer service do).

Write-ahead: a step is recorded in before_publish, in the same database transaction that
read the order, before its message is published. So a reply can never overtake the record
of what it answers, whichever lane or hub process gets it. If the broker transaction then
fails, the message comes back and is accepted again without a second step (steps are
keyed by message id). after_commit only marks the dispatch order delivered.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from hub.envelope import DELIVER_EXCHANGE, H_SOURCE, Outgoing, Props
from hub.flows import order_tracker as tracker
from hub.flows.order_settings import OrderSettings, load_order_settings
from hub.pipeline import Outcome, Pipeline, Verdict
from hub.settings import Settings
from hub.store import Store, Timer, schedule_timers
from mappings.orders import RECEIVER_LOOKUP, receiver_of
from protocols import xmlwire
from protocols.errors import HubError, ProtocolViolation, ReasonCode, RejectedMessage, TransientFailure
from protocols.orders import wire
from protocols.orders.models import (
    AlarmKind,
    DispatchOrder,
    DispatchReceipt,
    OrderAlarm,
    ReplyKind,
    ReturnOrder,
    ReturnReceipt,
)
from protocols.orders.transaction import (
    TERMINAL,
    DeadlinePassed,
    DispatchForwarded,
    DispatchReceiptArrived,
    DispatchSent,
    Event,
    OrderTransaction,
    ReturnReceiptArrived,
    ReturnSent,
    State,
    deadlines,
    event_for,
    next_state,
)

log = logging.getLogger("hub.flows.orders")

#: The message types of the transaction, and their models.
TYPES: dict[str, type] = {
    "order.dispatch": DispatchOrder,
    "order.dispatch_receipt": DispatchReceipt,
    "order.return": ReturnOrder,
    "order.return_receipt": ReturnReceipt,
}
ALARM_TYPE = "order.alarm"
#: Header of a re-sent dispatch order: 1 for the first re-send, 2 for the second...
H_RESEND = "x-hub-resend"
H_ALARM_KIND = "x-hub-alarm-kind"
H_ALARM_ZH = "x-hub-alarm-zh"
H_ORDER = "x-hub-order"
RESEND = "resend"
_CACHE_SIZE = 100_000

KIND_ZH = {
    AlarmKind.first_reply_overdue: "初步答复已超时",
    AlarmKind.final_reply_overdue: "最终答复已超时",
    AlarmKind.first_reply_warning: "初步答复即将超时",
    AlarmKind.final_reply_warning: "最终答复即将超时",
    AlarmKind.receipt_missing: "接单方未回送派单成功标记",
}


def timer_key(key: tracker.Key, kind: str) -> str:
    return f"orders/{key[0]}/{key[1]}/{kind}"


def alarm_message_id(key: tracker.Key, kind: AlarmKind) -> str:
    """Deterministic, so a timer fired twice (a crash between publish and mark) is recognisable."""
    return f"alarm.{key[0]}.{key[1]}.{AlarmKind(kind).value}"


@dataclass
class _Plan:
    """What one batch does to the tracker, written in one transaction."""

    txs: dict[tracker.Key, OrderTransaction]
    rows: dict[tracker.Key, tracker.TrackedOrder]
    new: dict[tracker.Key, dict[str, Any]] = field(default_factory=dict)
    changes: dict[tracker.Key, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    timers: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)

    def set(self, key: tracker.Key, **columns: Any) -> None:
        target = self.new[key] if key in self.new else self.changes.setdefault(key, {})
        target.update(columns)

    def current(self, key: tracker.Key, column: str) -> Any:
        if key in self.new:
            return self.new[key].get(column)
        if column in self.changes.get(key, {}):
            return self.changes[key][column]
        return getattr(self.rows[key], column)

    def write(self, conn, now: datetime) -> None:
        tracker.insert_orders(conn, list(self.new.values()))
        tracker.update_orders(conn, {k: {**c, "updated_at": now} for k, c in self.changes.items() if c})
        tracker.insert_steps(conn, self.steps)
        schedule_timers(conn, self.timers)


class OrderFlow:
    """The Flow (hub/flows/__init__.py) of electronic dispatch and return orders."""

    name = "orders"
    types = frozenset(TYPES)

    def __init__(self, settings: Settings, store: Store, pipeline_ref, order_settings: OrderSettings | None = None):
        self.settings = settings
        self.store = store
        self.pipeline_ref = pipeline_ref
        self.config = order_settings or load_order_settings(settings.config_dir)
        tracker.ensure_tables(store)
        self._receivers: OrderedDict[tracker.Key, str] = OrderedDict()
        self._lock = threading.Lock()
        self._dispatched: dict[str, tracker.Key] = {}  # message id -> order, between publish and commit
        self._delivered_backlog: list[tuple[tracker.Key, datetime]] = []
        #: Offered to resolvers through RouteContext.lookups (mappings/orders.py order_replier).
        self.lookups = {RECEIVER_LOOKUP: self.receiver_of}

    # --- lookups (called by the pipeline, in the hop's thread) -------------------------
    def receiver_of(self, company: str, serial: str) -> str | None:
        """The company dispatch order company/serial went to; None when the hub does not know it."""
        key = (company, serial)
        with self._lock:
            found = self._receivers.get(key)
        if found is not None:
            return found
        with self.store.transaction(write=False) as conn:
            found = tracker.receiver(conn, key)
        if found is not None:
            self._remember(key, found)
        return found

    def _remember(self, key: tracker.Key, receiver: str) -> None:
        with self._lock:
            self._receivers[key] = receiver
            self._receivers.move_to_end(key)
            while len(self._receivers) > _CACHE_SIZE:
                self._receivers.popitem(last=False)

    # --- before_publish: judge against the state, write ahead ----------------------------
    def before_publish(self, batch: list[Outcome], now: datetime) -> None:
        self._flush_delivered()
        work: list[tuple[Outcome, Any]] = []
        refusals: list[tuple[Outcome, HubError]] = []
        for o in batch:
            if o.verdict is not Verdict.delivered or o.type not in TYPES:
                continue
            try:
                work.append((o, self._parse(o)))
            except RejectedMessage as exc:
                refusals.append((o, exc))
        pipeline: Pipeline = self.pipeline_ref()
        if work:
            plan = self._judge_batch(work, refusals, now, pipeline)
            for key, row in plan.new.items():
                self._remember(key, row["receiver"])
        for o, exc in refusals:
            pipeline.refuse(o, exc, now)
            log.warning("order message refused" if o.verdict is Verdict.dead_lettered else "order message deferred",
                        extra={"message_id": o.message_id, "type": o.type, "source": o.source,
                               "attempt": o.attempts, "reason_code": str(exc.reason), "field": exc.field,
                               "error": exc.detail})

    def _judge_batch(self, work, refusals: list, now: datetime, pipeline: Pipeline) -> _Plan:
        """Read the batch's orders, judge each message in order, write the accepted steps (one transaction)."""
        keys = [m.key for _, m in work]
        try:
            with self.store.transaction(write=True) as conn:
                rows = tracker.load(conn, keys, for_update=True)
                applied = tracker.applied_message_ids(conn, [o.message_id for o, _ in work])
                hq = pipeline.cfg.directory.hq.code
                plan = _Plan({k: r.transaction(hq) for k, r in rows.items()}, rows)
                for o, message in work:
                    if o.message_id in applied:  # its step was written before a failed broker commit
                        log.info("order message accepted again after a failed commit",
                                 extra={"message_id": o.message_id, "order": "/".join(message.key)})
                        continue
                    try:
                        self._judge(plan, o, message, now, pipeline)
                    except (RejectedMessage, TransientFailure) as exc:
                        refusals.append((o, exc))
                    except Exception as exc:  # a bug: retried through the tiers, then dead-lettered
                        log.exception("order flow failed on a message", extra={"message_id": o.message_id})
                        refusals.append((o, HubError(
                            f"The order flow failed on message {o.message_id}: {type(exc).__name__}: {exc}",
                            reason=ReasonCode.PROCESSING_ERROR)))
                plan.write(conn, now)
        except IntegrityError as exc:  # another hub process recorded the same order a moment ago
            raise TransientFailure(f"The order tracker changed under this batch ({exc.orig}); the batch is "
                                   "judged again.", reason=ReasonCode.STORE_UNAVAILABLE) from exc
        return plan

    def _parse(self, o: Outcome):
        root, _ = xmlwire.parse(o.incoming.body, o.incoming.props.content_encoding)
        message = wire.from_xml(root, validate=False)  # the pipeline validated it against order.xsd
        if not isinstance(message, TYPES[o.type]):
            raise RejectedMessage(f"Message {o.message_id} of type {o.type} holds a {type(message).__name__}.",
                                  reason=ReasonCode.UNKNOWN_TYPE, value=o.type)
        return message

    def _judge(self, plan: _Plan, o: Outcome, message, now: datetime, pipeline: Pipeline) -> None:
        if isinstance(message, DispatchOrder):
            self._accept_dispatch(plan, o, message, now, pipeline)
            return
        key = message.key
        tx = plan.txs.get(key)
        if tx is None or tx.state in TERMINAL:
            what = "unknown" if tx is None else tx.state.name.lower()
            raise RejectedMessage(
                f"{type(message).__name__} refers to dispatch order {key[0]}/{key[1]}, "
                f"which is {what}. Check DispatchCompanyCode (派单公司编号) and DispatchSerialNumber (派单流水号).",
                reason=ReasonCode.UNKNOWN_REFERENCE, field="DispatchSerialNumber", value=f"{key[0]}/{key[1]}")
        event = event_for(tx, message, skew=self.config.clock_skew)
        try:
            if isinstance(message, DispatchReceipt) and tx.state is State.DISPATCHED:
                # The mark proves the delivery whose commit this hub has not yet seen confirmed.
                next_state(State.DELIVERED, event)
                self._apply(plan, tx, DispatchForwarded(at=now), now, None)
            self._apply(plan, tx, event, now, o.message_id)
        except ProtocolViolation as exc:
            if o.attempts > 1:
                raise
            # A sender may send its mark and its reply back to back; another lane (or hub
            # process) can hold the first while this one is judged. Retried once through the
            # first retry tier; still illegal then, it is refused with ILLEGAL_TRANSITION.
            raise TransientFailure(f"{exc.detail} It may have overtaken the step it follows; retried once.",
                                   reason=ReasonCode.OUT_OF_ORDER, field=exc.field, value=exc.value) from None

    def _accept_dispatch(self, plan: _Plan, o: Outcome, order: DispatchOrder, now: datetime,
                         pipeline: Pipeline) -> None:
        key = order.key
        if key in plan.txs:
            raise RejectedMessage(
                f"SerialNumber (流水号) {order.serial_number} of {order.company_code} "
                f"was already used for dispatch order message {plan.current(key, 'message_id')}; "
                "give every dispatch order a new serial number.",
                reason=ReasonCode.DUPLICATE, field="SerialNumber", value=order.serial_number)
        directory = pipeline.cfg.directory
        receiver = receiver_of(order, pipeline.table.context(order.company_code, now))
        offsets, alarm_after = self.config.resend_offsets()
        base = max(now, order.dispatch_time)
        receipt_due = base + alarm_after
        tx = OrderTransaction(order=order, receiver=receiver, hq=directory.hq.code,
                              receipt_within=receipt_due - order.dispatch_time)
        queue = directory.by_code[receiver].queue
        sent = next((out for out in o.outputs if out.routing_key == queue), None)
        plan.txs[key] = tx
        plan.new[key] = {
            "originator": key[0], "serial": key[1], "receiver": receiver, "state": State.NEW.value,
            "message_id": o.message_id, "category": order.complaint_category,
            "dispatch_time": order.dispatch_time, "first_deadline": order.first_reply_deadline,
            "final_deadline": order.final_reply_deadline, "receipt_due_at": receipt_due,
            "accepted_at": now, "delivered_at": None, "received_at": None, "first_replied_at": None,
            "final_replied_at": None, "closed_at": None, "refused_at": None, "first_overdue": False,
            "final_overdue": False, "receipt_overdue": False, "resends": 0,
            "order_json": order.model_dump_json(),
            "resend_body": sent.body if sent is not None else None,
            "resend_props": _props_json(sent.props) if sent is not None else None,
            "updated_at": now,
        }
        self._apply(plan, tx, DispatchSent(at=order.dispatch_time), now, o.message_id)
        self._dispatched[o.message_id] = key
        payload = {"flow": self.name, "company": key[0], "serial": key[1]}
        for kind, due in deadlines(order, self.config.warn_before):
            plan.timers.append((timer_key(key, kind.value), due, {**payload, "kind": kind.value}))
        for n, offset in enumerate(offsets, start=1):
            plan.timers.append((timer_key(key, f"{RESEND}-{n}"), base + offset, {**payload, "kind": RESEND, "n": n}))
        plan.timers.append((timer_key(key, AlarmKind.receipt_missing.value), receipt_due,
                            {**payload, "kind": AlarmKind.receipt_missing.value}))

    def _apply(self, plan: _Plan, tx: OrderTransaction, event: Event, now: datetime,
               message_id: str | None) -> None:
        """Feed one event to the order's state machine (raises when illegal) and plan the write."""
        tx.handle(event)
        key = tx.key
        columns: dict[str, Any] = {"state": tx.state.value}
        if isinstance(event, DispatchForwarded):
            if plan.current(key, "delivered_at") is None:
                columns["delivered_at"] = now
        elif isinstance(event, DispatchReceiptArrived):
            columns["received_at" if event.accepted else "refused_at"] = event.at
        elif isinstance(event, ReturnSent):
            if event.kind is ReplyKind.final:
                columns["final_replied_at"] = event.at
            elif plan.current(key, "first_replied_at") is None:
                columns["first_replied_at"] = event.at
        elif isinstance(event, ReturnReceiptArrived) and event.kind is ReplyKind.final:
            if event.accepted:
                columns["closed_at"] = event.at
            else:  # the final reply must come again; until then it does not count as replied
                columns["final_replied_at"] = None
        plan.set(key, **columns)
        plan.steps.append(tracker.step_row(key, event.describe(), tx.state, event.at, now, message_id))

    # --- after_commit: the dispatch order is delivered -----------------------------------
    def after_commit(self, batch: list[Outcome], now: datetime) -> None:
        for o in batch:
            key = self._dispatched.pop(o.message_id, None)
            if key is not None and o.verdict is Verdict.delivered and o.type == "order.dispatch":
                self._delivered_backlog.append((key, now))
        if len(self._dispatched) > 10 * self.settings.hop.prefetch:
            self._dispatched.clear()  # batches dropped with a lost connection; their messages come again
        self._flush_delivered()

    def _flush_delivered(self) -> None:
        """Mark delivered orders DELIVERED (a success mark may have done it already)."""
        if not self._delivered_backlog:
            return
        pending, self._delivered_backlog = self._delivered_backlog, []
        try:
            with self.store.transaction(write=True) as conn:
                rows = tracker.load(conn, [k for k, _ in pending], for_update=True)
                steps, updates = [], {}
                for key, at in pending:
                    row = rows.get(key)
                    if row is None:
                        continue
                    changes: dict[str, Any] = {}
                    if row.delivered_at is None:
                        changes["delivered_at"] = at
                    if row.state is State.DISPATCHED:
                        changes["state"] = State.DELIVERED.value
                        steps.append(tracker.step_row(key, "DispatchForwarded", State.DELIVERED, at, at, None))
                    if changes:
                        updates[key] = {**changes, "updated_at": at}
                tracker.update_orders(conn, updates)
                tracker.insert_steps(conn, steps)
        except HubError:
            self._delivered_backlog = pending + self._delivered_backlog
            raise

    # --- timers --------------------------------------------------------------------------
    def on_timer(self, timer: Timer, now: datetime) -> list[Outgoing]:
        p = timer.payload or {}
        key = (str(p.get("company", "")), str(p.get("serial", "")))
        kind = str(p.get("kind", ""))
        pipeline: Pipeline = self.pipeline_ref()
        directory = pipeline.cfg.directory
        with self.store.transaction(write=True) as conn:
            row = tracker.load(conn, [key], for_update=True).get(key)
            if row is None:
                log.error("order timer for an unknown order", extra={"timer": timer.key, "order": "/".join(key)})
                return []
            tx = row.transaction(directory.hq.code)
            if kind == RESEND:
                return self._resend(conn, row, tx, int(p.get("n", 1)), now, timer)
            try:
                alarm_kind = AlarmKind(kind)
            except ValueError:
                log.error("order timer of an unknown kind", extra={"timer": timer.key, "kind": kind})
                return []
            alarms = tx.handle(DeadlinePassed(at=now, kind=alarm_kind))
            if not alarms:  # the awaited reply or mark came in time
                log.info("order timer: nothing missing", extra={"timer": timer.key, "state": tx.state.name})
                return []
            changes: dict[str, Any] = {"updated_at": now}
            column = tracker.overdue_column(alarm_kind)
            if column:
                changes[column] = True
            tracker.update_order(conn, key, changes)
            mid = alarm_message_id(key, alarm_kind)
            tracker.insert_steps(conn, [tracker.step_row(key, f"DeadlinePassed({alarm_kind.value})", tx.state,
                                                         now, now, mid)])
        alarm = alarms[0].model_copy(update={"parties": self._recipients(row)})
        outs = self._alarm_outputs(alarm, row, now, directory)
        log.warning("order alarm raised", extra={"message_id": mid, "order": "/".join(key), "kind": alarm_kind.value,
                                                 "parties": list(alarm.parties), "deadline": alarm.deadline.isoformat()})
        return outs

    def _resend(self, conn, row: tracker.TrackedOrder, tx: OrderTransaction, n: int, now: datetime,
                timer: Timer) -> list[Outgoing]:
        if tx.state not in (State.DISPATCHED, State.DELIVERED):
            log.info("order re-send not needed: the success mark came",
                     extra={"timer": timer.key, "state": tx.state.name})
            return []
        if row.resend_body is None or not row.resend_props:
            log.error("order cannot be re-sent: the receiver's copy was not kept (receiver disabled?)",
                      extra={"message_id": row.message_id, "order": "/".join(row.key)})
            return []
        tracker.update_order(conn, row.key, {"resends": max(row.resends, n), "updated_at": now})
        tracker.insert_steps(conn, [tracker.step_row(row.key, f"Resent({n})", tx.state, now, now, None)])
        props = Props(**row.resend_props)
        props.headers = {**(props.headers or {}), H_RESEND: n}
        queue = self.pipeline_ref().cfg.directory.by_code[row.receiver].queue
        log.warning("dispatch order re-sent: no success mark yet", extra={
            "message_id": row.message_id, "order": "/".join(row.key), "receiver": row.receiver, "resend": n})
        return [Outgoing(DELIVER_EXCHANGE, queue, props, row.resend_body)]

    def _recipients(self, row: tracker.TrackedOrder) -> tuple[str, ...]:
        hq = self.pipeline_ref().cfg.directory.hq.code
        by_role = {"originator": row.originator, "receiver": row.receiver, "hq": hq}
        return tuple(dict.fromkeys(by_role[r] for r in self.config.alarm_recipients))

    def _alarm_outputs(self, alarm: OrderAlarm, row: tracker.TrackedOrder, now: datetime,
                       directory) -> list[Outgoing]:
        mid = alarm_message_id(row.key, alarm.kind)
        deadline = alarm.deadline.astimezone(self.config.zone).strftime("%Y-%m-%d %H:%M")
        text_zh = (f"工单告警:{row.originator} 派往 {row.receiver} 的电子派单 {row.serial} "
                   f"{KIND_ZH[alarm.kind]}(时限 {deadline})")
        outs = []
        for code in alarm.parties:
            node = directory.by_code.get(code)
            if node is None or not node.enabled:
                continue
            props = Props(message_id=mid, type=ALARM_TYPE, correlation_id=row.message_id,
                          content_type="application/xml", content_encoding=node.encoding, app_id="cs-hub",
                          timestamp=int(now.timestamp()), delivery_mode=2,
                          headers={H_SOURCE: "hub", H_ALARM_KIND: alarm.kind.value, H_ALARM_ZH: text_zh,
                                   H_ORDER: f"{row.originator}/{row.serial}"})
            outs.append(Outgoing(DELIVER_EXCHANGE, node.queue, props, wire.dumps(alarm, node.encoding)))
        return outs


def _props_json(props: Props) -> dict[str, Any]:
    """The properties of a delivered copy as JSON, for a re-send with the same properties."""
    data = {k: getattr(props, k) for k in Props.__dataclass_fields__ if k != "headers"}
    data["headers"] = {str(k): v for k, v in (props.headers or {}).items() if _json_value(v)}
    return data


def _json_value(value: object) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False  # bytes, dates, decimals from a node's own headers: not kept for the re-send

