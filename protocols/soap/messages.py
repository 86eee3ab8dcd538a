"""The bodies of the hub's two SOAP operations, and the WSDL files that describe them.

Owns: reading a Submit request (intake.wsdl) into a SubmitRequest, the SubmitResponse and
the Refusal fault detail, the Deliver outcome of a CRM (crm.wsdl) as a DeliverAck, and how a
hub message travels as the Payload string both ways: the message's text with its XML
declaration stripped (the SOAP envelope's own encoding carries it), parsed back with the same
safety rules as any message on the bus.
Must not: authenticate, publish, or know which message types exist (the caller checks the
type against config/message_types.yaml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lxml import etree

from protocols import xmlwire
from protocols.errors import HubError, ReasonCode, RejectedMessage

_HERE = Path(__file__).parent
CRM_NS = "urn:cs-hub:soap:crm:1"
INTAKE_NS = "urn:cs-hub:soap:intake:1"
WSDL_FILES = {"crm": _HERE / "crm.wsdl", "intake": _HERE / "intake.wsdl"}
MAX_ID = 128
_ADDRESS = re.compile(r'(<soap:address\s+location=")[^"]*(")')
_DECL = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


def wsdl_path(name: str) -> Path:
    return WSDL_FILES[name]


def wsdl_text(name: str, address: str | None = None) -> str:
    """The WSDL named `name` (crm or intake), its soap:address set to `address` when given."""
    text = WSDL_FILES[name].read_text(encoding="utf-8")
    if address is not None:
        escaped = address.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        text = _ADDRESS.sub(lambda m: m.group(1) + escaped + m.group(2), text, count=1)
    return text


# --- intake: Submit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitRequest:
    message_id: str
    type: str
    correlation_id: str | None
    payload: str


def parse_submit(body: etree._Element) -> SubmitRequest:
    """The Submit operation of a parsed body entry; RejectedMessage naming the missing field."""
    if body.tag != f"{{{INTAKE_NS}}}Submit":
        raise RejectedMessage(f"Unknown operation {body.tag}; the intake offers Submit in namespace {INTAKE_NS}.",
                              reason=ReasonCode.UNKNOWN_TYPE, field="Body", value=str(body.tag)[:120])

    def text(name: str, required: bool) -> str | None:
        el = body.find(f"{{{INTAKE_NS}}}{name}")
        value = None if el is None else (el.text or "")
        if el is not None and len(el):
            raise RejectedMessage(f"{name} must be text; send the message as an escaped string (or CDATA), "
                                  "not as child elements.", reason=ReasonCode.FIELD_INVALID, field=name)
        if required and (value is None or not value.strip()):
            raise RejectedMessage(f"Submit has no {name}; it is required (intake.wsdl).",
                                  reason=ReasonCode.MISSING_PROPERTY, field=name)
        return value

    mid = text("MessageId", True).strip()
    if len(mid) > MAX_ID or not mid.isprintable():
        raise RejectedMessage(f"MessageId must be 1-{MAX_ID} printable characters.",
                              reason=ReasonCode.MISSING_PROPERTY, field="MessageId", value=mid[:MAX_ID])
    corr = text("CorrelationId", False)
    return SubmitRequest(mid, text("Type", True).strip(), corr.strip() or None if corr is not None else None,
                         text("Payload", True))


def submit_response(message_id: str) -> etree._Element:
    root = etree.Element(f"{{{INTAKE_NS}}}SubmitResponse", nsmap={None: INTAKE_NS})
    etree.SubElement(root, f"{{{INTAKE_NS}}}Status").text = "accepted"
    etree.SubElement(root, f"{{{INTAKE_NS}}}MessageId").text = message_id
    return root


def refusal(exc: HubError, message_id: str | None = None) -> etree._Element:
    """The fault detail of a refused Submit: reason code, field, Chinese then English, retryable."""
    root = etree.Element(f"{{{INTAKE_NS}}}Refusal", nsmap={None: INTAKE_NS})
    etree.SubElement(root, f"{{{INTAKE_NS}}}ReasonCode").text = str(exc.reason)
    if exc.field:
        etree.SubElement(root, f"{{{INTAKE_NS}}}Field").text = exc.field
    etree.SubElement(root, f"{{{INTAKE_NS}}}Reason", lang="zh").text = exc.text_zh()
    etree.SubElement(root, f"{{{INTAKE_NS}}}Reason", lang="en").text = exc.detail
    etree.SubElement(root, f"{{{INTAKE_NS}}}Retryable").text = "true" if exc.retryable else "false"
    if message_id:
        etree.SubElement(root, f"{{{INTAKE_NS}}}MessageId").text = message_id
    return root


def payload_tree(payload: str, *, max_bytes: int):
    """The hub message carried as text in Payload, parsed with the bus's safety rules.

    The text was already decoded from the envelope, so any declaration it carries is dropped
    (it may name GBK while the envelope was UTF-8); DTDs, entities and oversize are refused.
    """
    body = _DECL.sub("", payload, count=1).encode("utf-8")
    root, _ = xmlwire.parse(body, "utf-8", max_bytes=max_bytes)
    return root


# --- delivery: Deliver --------------------------------------------------------------------------


class DeliverStatus(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"
    refused = "refused"


@dataclass(frozen=True)
class DeliverAck:
    status: DeliverStatus
    reason_code: str | None = None
    reason: str | None = None


def payload_text(body: bytes, content_encoding: str | None) -> str:
    """A bus message's bytes as the Payload string: decoded strictly, declaration stripped."""
    text, _ = xmlwire.decode_text(body, content_encoding)
    return _DECL.sub("", text, count=1)


def deliver_ack(status: str | None, reason_code: str | None = None, reason: str | None = None) -> DeliverAck:
    """A CRM's DeliverResponse; an unknown Status is the CRM's protocol error (retried as a fault)."""
    try:
        value = DeliverStatus((status or "").strip().lower())
    except ValueError:
        raise HubError(f"The CRM answered Status {status!r}; crm.wsdl allows accepted, duplicate or refused.",
                       reason=ReasonCode.PARTNER_FAULT, field="Status", value=status) from None
    return DeliverAck(value, (reason_code or "").strip() or None, (reason or "").strip() or None)
