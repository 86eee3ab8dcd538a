"""The NMS feed's loop: read unconsumed interface rows, announce, wait for confirms, mark consumed.

Owns: one round (`poll_once`): the oldest unconsumed rows in row order, each fed through the
fault state machine (protocols.nms.faults.step), the announcements (and optional SMS to the
staff on duty) published as node NMS through hub.in (x-hub-origin-user, so the hop checks and
routes them with routes/nms.yaml), a dead letter for a row the feed cannot read, and only
after the broker confirmed every publication of the round, one database transaction that
stores the new fault states and marks the rows consumed. A crash between the confirms and
that transaction repeats the round with the same message ids; the hub's idempotent receiver
drops the repeats, so nobody is told twice. Also drains node.NMS (the hub's negative
acknowledgements of refused notices) into the log.
Must not: decide what a row means (protocols.nms.faults) or let a row be marked before its
announcement is confirmed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from adapters.nms.config import NmsConfig
from adapters.nms.table import FeedTables
from hub import envelope as ev
from hub import failures
from hub.envelope import Incoming, Outgoing, Props
from hub.job_bus import Bus
from hub.settings import Settings
from protocols import xmlwire
from protocols.announcements import wire as announcement_wire
from protocols.errors import HubError, RejectedMessage, TransientFailure
from protocols.nms import faults
from protocols.nms.faults import Action, Decision, FaultState, Severity
from protocols.sms.wire import SmsSend, send_tree

log = logging.getLogger("adapters.nms")

NODE = "NMS"
QUEUE = f"node.{NODE}"
SEVERITY_ORDER = [Severity.warning, Severity.minor, Severity.major, Severity.critical]


class NmsFeed:
    def __init__(self, settings: Settings, config: NmsConfig, *, engine: Engine | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 after_publish: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.config = config
        self._own_engine = engine is None
        self.engine = engine or create_engine(config.url())
        self.tables = FeedTables(self.engine, config.table, config.state_table)
        self.tables.create()
        self.clock = clock
        self.after_publish = after_publish    # a test seam: simulate a crash after the confirms
        self.origin_user = settings.broker_user(f"node-{NODE}")
        self.bus = Bus(settings, queue=QUEUE, name="cs-hub nms")  # QUEUE: the feed's node queue, for nacks
        self.stats = {"rows": 0, "announced": 0, "closed": 0, "skipped": 0, "refused": 0, "nacks": 0}
        self._stop = threading.Event()

    def health(self) -> dict:
        return {"adapter": "nms", "connected": self.bus.health["connected"], **self.stats}

    # -- one round ----------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Announce and mark the oldest unconsumed rows; returns how many rows were consumed."""
        self._drain_nacks()
        raw = self.tables.unconsumed(self.config.batch_size)
        if not raw:
            return 0
        now = self.clock()
        states = self.tables.load(str(r.get("fault_id") or "").strip() for r in raw)
        known = set(states)
        changed: dict[str, FaultState] = {}
        outs: list[Outgoing] = []
        marks: list[tuple[int, str]] = []
        for r in raw:
            try:
                row = faults.parse_row(r)
            except RejectedMessage as exc:
                outs.append(self._dead_letter(r, exc, now))
                marks.append((r["row_id"], f"refused {exc.reason}: {exc.detail}"))
                self.stats["refused"] += 1
                log.error("NMS row refused", extra={"row_id": r["row_id"], "reason": str(exc.reason)})
                continue
            current = changed.get(row.fault_id, states.get(row.fault_id))
            decision = faults.step(row, current)
            if decision.state is not None and decision.state is not current:
                changed[row.fault_id] = decision.state
            if decision.action is not Action.skip:
                outs.append(self._announcement(decision))
                outs.extend(self._sms(decision))
            self.stats[{"announce": "announced", "close": "closed", "skip": "skipped"}[decision.action.value]] += 1
            marks.append((row.row_id, f"{decision.action.value}: {decision.note}"
                          + (f" ({decision.message_id})" if decision.message_id else "")))
            log.info("NMS row", extra={"row_id": row.row_id, "fault_id": row.fault_id,
                                       "action": decision.action.value, "message_id": decision.message_id})
        self.bus.publish(outs)
        if self.after_publish is not None:
            self.after_publish()
        self.tables.commit(changed, known, marks, now)
        self.stats["rows"] += len(marks)
        return len(marks)

    def _announcement(self, d: Decision) -> Outgoing:
        body = announcement_wire.dumps(faults.notice(d.state), "utf-8")
        props = Props(message_id=d.message_id, type=d.type, content_type="application/xml",
                      content_encoding="utf-8", app_id="cs-hub nms", timestamp=int(self.clock().timestamp()),
                      delivery_mode=2, headers={ev.H_ORIGIN_USER: self.origin_user})
        return Outgoing(ev.DELIVER_EXCHANGE, ev.HUB_QUEUE, props, body)

    def _sms(self, d: Decision) -> list[Outgoing]:
        sms = self.config.sms
        s = d.state
        if not sms.mobiles or SEVERITY_ORDER.index(s.severity) < SEVERITY_ORDER.index(sms.min_severity):
            return []
        where = "、".join(s.provinces) or "全网"
        text = (f"【故障恢复】{s.title}(网管编号 {s.fault_id})" if d.action is Action.close
                else f"【网管故障·{faults.SEVERITY_ZH[s.severity]}】{s.title},影响 {where}(网管编号 {s.fault_id})")
        outs = []
        for i, mobile in enumerate(sms.mobiles):
            tree = send_tree(SmsSend(company_code=NODE, to=mobile, text=text[:300], purpose="other",
                                     reference=s.fault_id[:64]))
            props = Props(message_id=f"{d.message_id}.sms{i}", type="sms.send", content_type="application/xml",
                          content_encoding="utf-8", app_id="cs-hub nms", delivery_mode=2,
                          headers={ev.H_ORIGIN_USER: self.origin_user})
            outs.append(Outgoing(ev.DELIVER_EXCHANGE, ev.HUB_QUEUE, props, xmlwire.serialise(tree, "utf-8")))
        return outs

    def _dead_letter(self, raw: dict, exc: HubError, now: datetime) -> Outgoing:
        body = json.dumps(raw, ensure_ascii=False, default=str).encode("utf-8")
        mid = f"nms.row.{self.config.table}.{raw['row_id']}"
        msg = Incoming(body, Props(message_id=mid, type="nms.row", content_type="application/json"),
                       exchange="nms", routing_key=self.config.table)
        return failures.dead_letter(msg, exc, now, message_id=mid, attempts=1, stage="adapter.nms", source=NODE)

    def _drain_nacks(self, limit: int = 100) -> None:
        for _ in range(limit):
            msg = self.bus.get()
            if msg is None:
                return
            self._on_node_message(msg.props)
            self.bus.ack(msg)

    def _on_node_message(self, props) -> None:
        if props.type != "hub.nack":   # anything else is not for the feed
            log.info("ignored a %s on %s", props.type, QUEUE, extra={"message_id": props.message_id})
            return
        self.stats["nacks"] += 1
        reason = (props.headers or {}).get(ev.H_REASON_CODE)
        log.error("the hub refused an NMS notice; it is in hub.dlq",
                  extra={"message_id": props.correlation_id, "reason": reason, "type": props.type})

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        backoff = self.config.poll_interval_s
        while not self._stop.is_set():
            try:
                busy = self.poll_once() >= self.config.batch_size
                backoff = self.config.poll_interval_s
            except TransientFailure as exc:
                log.warning("NMS feed round failed: %s", exc)
                busy, backoff = False, min(backoff * 2, 60.0)
            except Exception:
                log.exception("NMS feed round failed; retrying")
                busy, backoff = False, min(backoff * 2, 60.0)
            if not busy:
                self._stop.wait(backoff)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.bus.close()
        if self._own_engine:
            self.engine.dispose()
