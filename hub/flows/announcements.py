"""The announcement flow: nationwide announcements (全网公告共享) kept by the hub (docs/knowledge.md part B).

Owns: judging submissions, returns for modification, publications, replies, returns of
replies and acceptances against the announcement's state with the protocol's state machine
(protocols.announcements.transaction), write-ahead and idempotent by message id like the
knowledge flow; an illegal step is refused to its sender (ILLEGAL_TRANSITION,
UNKNOWN_REFERENCE, SENDER_NOT_PERMITTED) through Pipeline.refuse.
Reply deadlines (config/knowledge.yaml `reply_alarms`): when a published announcement asks
for replies, a durable timer per recipient at its ReplyDeadline (回复时限), in the same
transaction as the publication; a reply cancels the recipient's timer (a reply returned for
modification before the deadline re-arms it); when a timer fires and the recipient still
owes its reply, HQ gets a knowledge.alarm (reply_overdue).
Must not: validate fields (mappings/knowledge.py), choose routes (routes/announcements.yaml)
or publish.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from hub.envelope import Outgoing
from hub.flows.knowledge import ALARM_ZH, alarm_output
from hub.flows.knowledge_settings import KnowledgeSettings, load_knowledge_settings
from hub.pipeline import Outcome, Pipeline, Verdict
from hub.settings import Settings
from hub.store import Store, Timer
from hub.store import knowledge as ks
from protocols import xmlwire
from protocols.announcements import rules, transaction, wire
from protocols.announcements.models import (
    AnnouncementPublish,
    AnnouncementReply,
    AnnouncementSubmission,
    ReplyAccepted,
    ReplyReturn,
    ReturnForModification,
)
from protocols.errors import HubError, ReasonCode, RejectedMessage, TransientFailure
from protocols.knowledge.models import AlarmKind, KnowledgeAlarm

log = logging.getLogger("hub.flows.announcements")

TYPES: dict[str, type] = {
    "announcement.submit": AnnouncementSubmission,
    "announcement.return": ReturnForModification,
    "announcement.publish": AnnouncementPublish,
    "announcement.reply": AnnouncementReply,
    "announcement.reply_return": ReplyReturn,
    "announcement.reply_accepted": ReplyAccepted,
}
REPLY_TIMER = "reply_due"


def reply_timer_key(announcement_id: str, recipient: str) -> str:
    return f"announcements/reply/{announcement_id}/{recipient}"


class AnnouncementFlow:
    """The Flow (hub/flows/__init__.py) of nationwide announcements."""

    name = "announcements"
    types = frozenset(TYPES)

    def __init__(self, settings: Settings, store: Store, pipeline_ref, *,
                 knowledge_settings: KnowledgeSettings | None = None) -> None:
        self.settings = settings
        self.store = store
        self.pipeline_ref = pipeline_ref
        self.config = knowledge_settings or load_knowledge_settings(settings.config_dir)

    def before_publish(self, batch: list[Outcome], now: datetime) -> None:
        work, refusals = [], []
        for o in batch:
            if o.verdict is not Verdict.delivered or o.type not in TYPES:
                continue
            try:
                root, _ = xmlwire.parse(o.incoming.body, o.incoming.props.content_encoding)
                work.append((o, wire.from_xml(root, validate=False)))
            except RejectedMessage as exc:
                refusals.append((o, exc))
        pipeline: Pipeline = self.pipeline_ref()
        if work:
            try:
                with self.store.transaction(write=True) as conn:
                    applied = ks.applied_message_ids(conn, [o.message_id for o, _ in work])
                    steps = []
                    for o, message in work:
                        if o.message_id in applied:
                            continue
                        try:
                            event, state, aid = self._judge(conn, message, now, pipeline)
                        except HubError as exc:
                            refusals.append((o, exc))
                            continue
                        steps.append({"message_id": o.message_id, "subject": f"announcement/{aid}", "event": event,
                                      "state": state, "recorded_at": now})
                    ks.record_steps(conn, steps)
            except IntegrityError as exc:
                raise TransientFailure(f"The announcement records changed under this batch ({exc.orig}).",
                                       reason=ReasonCode.STORE_UNAVAILABLE) from exc
        for o, exc in refusals:
            pipeline.refuse(o, exc, now)
            log.warning("announcement message refused", extra={
                "message_id": o.message_id, "type": o.type, "source": o.source, "reason_code": str(exc.reason),
                "field": exc.field, "error": exc.detail})

    def _judge(self, conn, message, now: datetime, pipeline: Pipeline) -> tuple[str, str, str]:
        aid = (message.announcement.id if isinstance(message, AnnouncementSubmission | AnnouncementPublish)
               else message.announcement_id)
        flow = ks.load_announcement(conn, aid)
        new = flow is None
        if new:
            if not isinstance(message, AnnouncementSubmission | AnnouncementPublish):
                raise RejectedMessage(f"HQ has no announcement {aid}. Check AnnouncementId (公告编号).",
                                      reason=ReasonCode.UNKNOWN_REFERENCE, field="AnnouncementId", value=aid)
            flow = transaction.AnnouncementFlow.for_message(message)
        recipients = None
        if isinstance(message, AnnouncementPublish):
            directory = pipeline.cfg.directory
            recipients = rules.resolve_scope(message.announcement.scope, directory.groups, set(directory.by_code))
        event = transaction.event_for(flow, message, recipients=recipients)
        flow.handle(event)
        ks.save_announcement(conn, flow, now, new=new)
        self._reply_timers(conn, flow, message, now)
        return event.describe(), flow.state.value, aid

    def _reply_timers(self, conn, flow: transaction.AnnouncementFlow, message, now: datetime) -> None:
        """Arm (publication, a reply returned in time) or cancel (a reply) the recipients' reply timers."""
        if not self.config.reply_alarms:
            return
        aid = flow.announcement_id
        due = dict(flow.deadlines()).get(REPLY_TIMER)
        if isinstance(message, AnnouncementPublish):
            codes = list(flow.replies)
        elif isinstance(message, ReplyReturn):
            codes = [message.company_code]
        else:
            if isinstance(message, AnnouncementReply):
                ks.cancel_timers(conn, [reply_timer_key(aid, message.company_code)])
            return
        if due is None or (isinstance(message, ReplyReturn) and due <= now):
            return
        ks.arm_timers(conn, [(reply_timer_key(aid, c), due, {"flow": self.name, "kind": REPLY_TIMER,
                                                             "announcement": aid, "recipient": c})
                             for c in codes], replace=True)

    def after_commit(self, batch: list[Outcome], now: datetime) -> None:
        return None

    def on_timer(self, timer: Timer, now: datetime) -> list[Outgoing]:
        p = timer.payload or {}
        aid, code = str(p.get("announcement", "")), str(p.get("recipient", ""))
        if p.get("kind") != REPLY_TIMER:
            log.error("announcement timer of an unknown kind", extra={"timer": timer.key, "kind": p.get("kind")})
            return []
        with self.store.transaction(write=True) as conn:
            flow = ks.load_announcement(conn, aid)
            if flow is None or code not in flow.overdue_replies(max(now, timer.due_at)):
                log.info("announcement reply timer: nothing missing", extra={"timer": timer.key})
                return []
            alarm = KnowledgeAlarm(kind=AlarmKind.reply_overdue, subject_id=aid, company_code=code,
                                   deadline=flow.announcement.reply_deadline or timer.due_at, raised_at=now)
            mid = f"alarm.{alarm.kind.value}.{aid}.0.{code}"
            if not ks.applied_message_ids(conn, [mid]):
                ks.record_steps(conn, [{"message_id": mid, "subject": f"announcement/{aid}",
                                        "event": f"ReplyOverdue({code})", "state": "ALARMED", "recorded_at": now}])
        log.warning("announcement reply overdue", extra={"message_id": mid, "announcement": aid, "recipient": code})
        text = f"公告回复告警:{code} 未在回复时限内回复公告 {aid}({ALARM_ZH[alarm.kind]})"
        return alarm_output(alarm, self.pipeline_ref().cfg.directory, now, text_zh=text)
