"""What an sms.send asks for: its text (rendered from a standard template or given), its
purpose, and the ingress check that refuses an unsendable one before it reaches the adapter.

Owns: `check_send` (registered as the check `sms_send` of config/message_types.yaml, so a
bad template field or an impossible text is answered with hub.nack at ingress), and
`text_of` / `purpose_of`, which the SMPP adapter uses to turn the message into SMS text.
Must not: send, split for the wire (protocols/smpp/text.py does) or look anything up.
"""

from __future__ import annotations

from mappings.context import RouteContext
from mappings.sms.templates import STANDARD
from protocols.errors import ReasonCode, RejectedMessage
from protocols.smpp.text import split
from protocols.sms.wire import SmsSend, read_send

#: The purpose of free text without <Purpose>.
DEFAULT_PURPOSE = "other"
SURVEY = "satisfaction_survey"


def text_of(msg: SmsSend) -> str:
    """The SMS text: the given text, or the template rendered (RejectedMessage(FIELD_INVALID)
    naming the field when the template or a field is wrong)."""
    if msg.template is not None:
        return STANDARD.render(msg.template, msg.lang, **msg.fields)
    if not msg.text or not msg.text.strip():
        raise RejectedMessage("The SMS text is empty; give <Text> or a <Template>.",
                              reason=ReasonCode.FIELD_INVALID, field="Text")
    return msg.text


def purpose_of(msg: SmsSend) -> str:
    """<Purpose> when given, else the template's name, else 'other'."""
    return msg.purpose or msg.template or DEFAULT_PURPOSE


def check_send(root, ctx: RouteContext) -> None:
    """Ingress check of sms.send: the text renders and fits a concatenated SMS (255 parts),
    and a <Purpose> does not contradict the template."""
    msg = read_send(root)
    text = text_of(msg)
    split(text, 0)  # RejectedMessage(OVERSIZE) beyond 255 parts
    if msg.template is not None and msg.purpose and msg.purpose != msg.template and msg.purpose != DEFAULT_PURPOSE:
        raise RejectedMessage(
            f"<Purpose> {msg.purpose!r} contradicts template {msg.template!r}; leave <Purpose> out "
            "(the template names it) or make them agree.",
            reason=ReasonCode.FIELD_INVALID, field="Purpose", value=msg.purpose)
