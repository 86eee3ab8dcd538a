"""XML of the SMS messages on the bus (urn:cs-hub:sms:1, sms.xsd) <-> plain data.

Owns: reading an SmsSend tree into `SmsSend`, and writing `SmsStatus` and `SmsMo` as trees
valid against sms.xsd (checked by the tests, not on every message: the hub produces them).
Must not: render templates (mappings/sms does), decide routing, or parse raw bytes
(protocols.xmlwire.parse does that safely).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from protocols.errors import ReasonCode, RejectedMessage

NS = "urn:cs-hub:sms:1"
SCHEMA_NAME = "sms"
SEND_TYPE = "sms.send"
STATUS_TYPE = "sms.status"
MO_TYPE = "sms.mo"


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


@dataclass(frozen=True)
class SmsSend:
    """What a node asked to send. Exactly one of `text` and `template` is set."""

    company_code: str
    to: str
    text: str | None = None
    template: str | None = None
    lang: str = "zh"
    fields: dict[str, str] = field(default_factory=dict)
    purpose: str | None = None
    reference: str | None = None


def read_send(root: etree._Element) -> SmsSend:
    """The SmsSend of a (schema-valid) tree; RejectedMessage(XSD_INVALID) for another root."""
    if root.tag != _q("SmsSend"):
        raise RejectedMessage(f"An sms.send message must have root element {_q('SmsSend')}, not {root.tag}.",
                              reason=ReasonCode.XSD_INVALID, field="root", value=str(root.tag))

    values: dict[str, str] = {}
    template_el = None
    ns_len = len(NS) + 2
    for el in root:                       # one pass: the adapter reads one of these per SMS
        tag = el.tag
        if not isinstance(tag, str) or not tag.startswith("{" + NS + "}"):
            continue
        name = tag[ns_len:]
        if name == "Template":
            template_el = el
        else:
            values.setdefault(name, el.text or "")
    template, lang, fields = None, "zh", {}
    if template_el is not None:
        template = template_el.get("name")
        lang = template_el.get("lang", "zh")
        fields = {f.get("name"): (f.text or "") for f in template_el.iterchildren(_q("Field"))}
    return SmsSend(company_code=values.get("CompanyCode", "").strip(), to=values.get("To", "").strip(),
                   text=values.get("Text"), template=template, lang=lang, fields=fields,
                   purpose=values.get("Purpose"), reference=values.get("Reference"))


def send_tree(msg: SmsSend) -> etree._Element:
    """The SmsSend tree of `msg` (for nodes, tests and the benchmark)."""
    root = etree.Element(_q("SmsSend"), nsmap={None: NS})
    etree.SubElement(root, _q("CompanyCode")).text = msg.company_code
    etree.SubElement(root, _q("To")).text = msg.to
    if msg.template is not None:
        t = etree.SubElement(root, _q("Template"), name=msg.template, lang=msg.lang)
        for name, value in msg.fields.items():
            etree.SubElement(t, _q("Field"), name=name).text = value
    else:
        etree.SubElement(root, _q("Text")).text = msg.text or ""
    if msg.purpose:
        etree.SubElement(root, _q("Purpose")).text = msg.purpose
    if msg.reference:
        etree.SubElement(root, _q("Reference")).text = msg.reference
    return root


@dataclass(frozen=True)
class SmsStatusMessage:
    """The final status of one sms.send, for the node that asked."""

    message_id: str
    to: str
    status: str                         # delivered | undeliverable | expired
    at: datetime
    total_parts: int
    parts_delivered: int = 0
    reason: str | None = None           # a ReasonCode when the SMSC refused the submit
    smsc_state: str | None = None       # MessageState name of the deciding receipt
    smsc_error: str | None = None       # err: of the receipt, or network_error_code
    detail: str | None = None
    smsc_message_ids: tuple[str, ...] = ()
    reference: str | None = None
    smsc: str | None = None


def status_tree(s: SmsStatusMessage) -> etree._Element:
    root = etree.Element(_q("SmsStatus"), nsmap={None: NS})
    etree.SubElement(root, _q("MessageId")).text = s.message_id
    etree.SubElement(root, _q("To")).text = s.to
    etree.SubElement(root, _q("Status")).text = s.status
    for name, value in (("ReasonCode", s.reason), ("SmscState", s.smsc_state), ("SmscError", s.smsc_error),
                        ("Detail", s.detail)):
        if value:
            etree.SubElement(root, _q(name)).text = value
    etree.SubElement(root, _q("Parts"), total=str(s.total_parts), delivered=str(s.parts_delivered))
    for mid in s.smsc_message_ids:
        etree.SubElement(root, _q("SmscMessageId")).text = mid
    if s.reference:
        etree.SubElement(root, _q("Reference")).text = s.reference
    if s.smsc:
        etree.SubElement(root, _q("Smsc")).text = s.smsc
    etree.SubElement(root, _q("At")).text = s.at.astimezone(UTC).isoformat()
    return root


@dataclass(frozen=True)
class SmsMoMessage:
    """A customer's SMS, reassembled; `in_reply_to` when it answers a survey."""

    source: str
    destination: str
    text: str
    received_at: datetime
    complete: bool = True
    total_parts: int = 1
    parts_received: int = 1
    in_reply_to: str | None = None
    survey_option: str | None = None
    survey_reference: str | None = None
    smsc: str | None = None


def mo_tree(m: SmsMoMessage) -> etree._Element:
    root = etree.Element(_q("SmsMo"), nsmap={None: NS})
    etree.SubElement(root, _q("From")).text = m.source
    etree.SubElement(root, _q("To")).text = m.destination
    # XML 1.0 cannot carry most control characters; a customer's text keeps the rest.
    etree.SubElement(root, _q("Text")).text = "".join(
        ch if ch in "\t\n\r" or ord(ch) >= 0x20 else "\ufffd" for ch in m.text)
    etree.SubElement(root, _q("Complete")).text = "true" if m.complete else "false"
    etree.SubElement(root, _q("Parts"), total=str(m.total_parts), received=str(m.parts_received))
    if m.in_reply_to:
        reply = etree.SubElement(root, _q("SurveyReply"), inReplyTo=m.in_reply_to)
        if m.survey_option:
            reply.set("option", m.survey_option)
        if m.survey_reference:
            reply.set("reference", m.survey_reference)
    if m.smsc:
        etree.SubElement(root, _q("Smsc")).text = m.smsc
    etree.SubElement(root, _q("ReceivedAt")).text = m.received_at.astimezone(UTC).isoformat()
    return root


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def _x(value: object) -> str:
    """Text for XML 1.0: escaped, and characters XML cannot carry shown as U+FFFD."""
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch in "\t\n\r" else "\ufffd" for ch in text)
    return text.translate(_ESCAPES)


def status_xml(s: SmsStatusMessage, encoding: str = "utf-8") -> bytes:
    """The bytes of `status_tree(s)` serialised in `encoding` (with its declaration), written
    directly: the adapter sends one per SMS, and building a tree costs ten times more.
    Characters the encoding lacks become character references."""
    out = [f"<?xml version='1.0' encoding='{encoding.upper()}'?>\n",
           f'<SmsStatus xmlns="{NS}"><MessageId>{_x(s.message_id)}</MessageId><To>{_x(s.to)}</To>',
           f"<Status>{_x(s.status)}</Status>"]
    for name, value in (("ReasonCode", s.reason), ("SmscState", s.smsc_state), ("SmscError", s.smsc_error),
                        ("Detail", s.detail)):
        if value:
            out.append(f"<{name}>{_x(value)}</{name}>")
    out.append(f'<Parts total="{s.total_parts}" delivered="{s.parts_delivered}"/>')
    out.extend(f"<SmscMessageId>{_x(mid)}</SmscMessageId>" for mid in s.smsc_message_ids)
    if s.reference:
        out.append(f"<Reference>{_x(s.reference)}</Reference>")
    if s.smsc:
        out.append(f"<Smsc>{_x(s.smsc)}</Smsc>")
    out.append(f"<At>{s.at.astimezone(UTC).isoformat()}</At></SmsStatus>")
    return "".join(out).encode(encoding, "xmlcharrefreplace")
