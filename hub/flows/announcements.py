"""The announcement flow: nationwide announcements (全网公告共享) kept by the hub (docs/knowledge.md part B).

Owns: judging submissions, returns for modification, publications, replies, returns of
replies and acceptances against the announcement's state with the protocol's state machine
(protocols.announcements.transaction), write-ahead and idempotent by message id like the
knowledge flow; an illegal step is refused to its sender (ILLEGAL_TRANSITION,
UNKNOWN_REFERENCE, SENDER_NOT_PERMITTED) through Pipeline.refuse.
Must not: validate fields (mappings/knowledge.py), choose routes (routes/announcements.yaml)
or publish.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from hub.envelope import Outgoing
from hub.pipeline import Outcome, Pipeline, Verdict
from hub.settings import Settings
from hub.store import Store
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

log = logging.getLogger("hub.flows.announcements")

TYPES: dict[str, type] = {
    "announcement.submit": AnnouncementSubmission,
    "announcement.return": ReturnForModification,
    "announcement.publish": AnnouncementPublish,
    "announcement.reply": AnnouncementReply,
    "announcement.reply_return": ReplyReturn,
    "announcement.reply_accepted": ReplyAccepted,
}


class AnnouncementFlow:
    """The Flow (hub/flows/__init__.py) of nationwide announcements."""

    name = "announcements"
    types = frozenset(TYPES)

    def __init__(self, settings: Settings, store: Store, pipeline_ref) -> None:
        self.settings = settings
        self.store = store
        self.pipeline_ref = pipeline_ref

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
        return event.describe(), flow.state.value, aid

    def after_commit(self, batch: list[Outcome], now: datetime) -> None:
        return None

    def on_timer(self, timer, now: datetime) -> list[Outgoing]:
        return []
