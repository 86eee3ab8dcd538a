"""Checks and resolvers of the knowledge and announcement routes (docs/knowledge.md).

Owns: the ingress checks (`check_knowledge`, `check_announcement`: the protocol rules of
protocols.knowledge.rules / protocols.announcements.rules on the parsed message, with the
authenticated sender and the hub's time) and the resolvers that read an addressee from the
payload (the submitter of a review result, the recipients of a delivery, the province of a
feedback reply, the owner a feedback is forwarded to, the scope of an announcement...).
Must not: look at state (the knowledge and announcement flows in hub/flows/ refuse what
does not fit an item's or an announcement's state), or duplicate a rule of protocols/.
"""

from __future__ import annotations

from protocols.announcements import rules as announcement_rules
from protocols.announcements import wire as announcement_wire
from protocols.announcements.models import AnnouncementPublish
from protocols.knowledge import rules as knowledge_rules
from protocols.knowledge import wire as knowledge_wire
from protocols.knowledge.models import FeedbackForward, FeedbackReply, KnowledgeDelivery, ReviewResult

K = {"k": knowledge_wire.NS}
A = {"a": announcement_wire.NS}


# ----------------------------------------------------------------------------- checks


def check_knowledge(root, ctx) -> None:
    """Every knowledge message: formats, zoned times, who may send it (protocols.knowledge.rules)."""
    message = knowledge_wire.from_xml(root, validate=False)  # the pipeline validated it against the XSD
    knowledge_rules.validate(message, sender=ctx.sender, now=ctx.now, hq=ctx.hq)


def check_announcement(root, ctx) -> None:
    """Every announcement message (protocols.announcements.rules); a publication's scope must resolve."""
    message = announcement_wire.from_xml(root, validate=False)
    announcement_rules.validate(message, sender=ctx.sender, now=ctx.now, hq=ctx.hq)
    if isinstance(message, AnnouncementPublish):
        announcement_rules.resolve_scope(message.announcement.scope, ctx.groups, ctx.nodes)


# ----------------------------------------------------------------------------- resolvers


def _knowledge(root):
    return knowledge_wire.from_xml(root, validate=False)


def knowledge_submitter(root, ctx) -> list[str]:
    """A review result (审批结果通知) goes to the submitter it names."""
    message: ReviewResult = _knowledge(root)
    return [message.submitter_code]


def knowledge_recipients(root, ctx) -> list[str]:
    """A delivery (知识下发) goes to every designated recipient, each once."""
    message: KnowledgeDelivery = _knowledge(root)
    return list(dict.fromkeys(message.recipients))


def knowledge_feedback_province(root, ctx) -> list[str]:
    """A feedback reply (反馈答复) goes to the province that sent the feedback."""
    message: FeedbackReply = _knowledge(root)
    return [message.company_code]


def knowledge_owner(root, ctx) -> list[str]:
    """A forwarded feedback (反馈下发) goes to the item's owner (the second-line platform)."""
    message: FeedbackForward = _knowledge(root)
    return [message.owner_node]


def announcement_submitter(root, ctx) -> list[str]:
    """A return for modification goes to the submitter it names."""
    return [root.findtext("a:SubmitterCode", namespaces=A).strip()]


def announcement_company(root, ctx) -> list[str]:
    """A reply's return or acceptance goes to the replying company it names."""
    return [root.findtext("a:CompanyCode", namespaces=A).strip()]


def announcement_scope(root, ctx) -> list[str]:
    """A publication goes to every node of its Scope (nodes, then the members of its groups)."""
    message: AnnouncementPublish = announcement_wire.from_xml(root, validate=False)
    return list(announcement_rules.resolve_scope(message.announcement.scope, ctx.groups, ctx.nodes))
