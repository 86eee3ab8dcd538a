"""SOAP 1.1 envelopes and faults, built and parsed without I/O.

Owns: the envelope (SOAP 1.1 section 4), the Fault with the hub's reason code in its detail
(section 4.4: faultcode, faultstring, detail), reading a WS-Security UsernameToken from a
header (OASIS WSS UsernameToken Profile 1.0, PasswordText), and the safe parsing of request
bytes: protocols/xmlwire.py refuses DTDs and entities, undeclared or mismatched encodings and
oversize bodies; lxml never touches the network.
Must not: authenticate (it only reads what the token says), or decide what a reason means.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from protocols import xmlwire
from protocols.errors import HubError, ReasonCode, RejectedMessage

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = ("http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
                 "#PasswordText")
#: Content type of SOAP 1.1 over HTTP (SOAP 1.1 section 6.1.1).
CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class Envelope:
    """A parsed request: the header element (or None) and the one body entry."""

    header: etree._Element | None
    body: etree._Element
    encoding: str


@dataclass(frozen=True)
class FaultInfo:
    """What a Fault says: SOAP faultcode (Client or Server), faultstring and our detail, if any."""

    code: str
    text: str
    reason_code: str | None = None
    retryable: bool | None = None


def charset_of(content_type: str | None) -> str | None:
    """The charset parameter of an HTTP Content-Type, or None."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def parse_envelope(data: bytes, content_type: str | None = None, *, max_bytes: int) -> Envelope:
    """Parse SOAP 1.1 request bytes safely; RejectedMessage with a reason code otherwise."""
    root, enc = xmlwire.parse(data, charset_of(content_type), max_bytes=max_bytes)
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise RejectedMessage("This is a SOAP 1.2 envelope; the hub's intake speaks SOAP 1.1 "
                              f"(namespace {SOAP_ENV}).", reason=ReasonCode.UNSUPPORTED_VERSION, field="Envelope")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise RejectedMessage(f"The request is not a SOAP 1.1 envelope (root element {root.tag}); wrap the "
                              f"operation in soap:Envelope/soap:Body ({SOAP_ENV}).",
                              reason=ReasonCode.XML_MALFORMED, field="Envelope", value=str(root.tag)[:100])
    header = root.find(f"{{{SOAP_ENV}}}Header")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise RejectedMessage("The envelope has no soap:Body.", reason=ReasonCode.XML_MALFORMED, field="Body")
    entries = [e for e in body if isinstance(e.tag, str)]
    if len(entries) != 1:
        raise RejectedMessage(f"soap:Body must hold exactly one operation element, found {len(entries)}.",
                              reason=ReasonCode.XML_MALFORMED, field="Body", value=len(entries))
    return Envelope(header, entries[0], enc)


def username_token(header: etree._Element | None) -> tuple[str, str] | None:
    """(username, password) of a wsse:UsernameToken with a PasswordText password, or None.

    A PasswordDigest token is refused: the hub keeps no plain passwords to digest against
    at the door (use PasswordText over TLS, or HTTP Basic).
    """
    if header is None:
        return None
    token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if token is None:
        return None
    user = token.findtext(f"{{{WSSE}}}Username")
    pw = token.find(f"{{{WSSE}}}Password")
    if user is None or pw is None:
        raise RejectedMessage("The UsernameToken needs a Username and a Password.",
                              reason=ReasonCode.SENDER_UNAUTHENTICATED, field="UsernameToken")
    if pw.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT:
        raise RejectedMessage("Only PasswordText UsernameTokens are accepted; send the password as text over TLS "
                              "or use HTTP Basic.", reason=ReasonCode.SENDER_UNAUTHENTICATED, field="Password",
                              value=pw.get("Type"))
    return user.strip(), pw.text or ""


def build_envelope(body: etree._Element, header: list[etree._Element] | None = None) -> bytes:
    """A SOAP 1.1 envelope around `body` (UTF-8 with declaration)."""
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    if header:
        h = etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
        h.extend(header)
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(body)
    return etree.tostring(env, encoding="UTF-8", xml_declaration=True)


def fault_code(exc: HubError) -> str:
    """SOAP 1.1 section 4.4.1: Client when the request is wrong, Server when trying later may work."""
    return "Server" if exc.retryable else "Client"


def build_fault(exc: HubError, detail: etree._Element | None = None) -> bytes:
    """A SOAP 1.1 Fault envelope: faultcode soap:Client|soap:Server, faultstring in English
    with the reason code first, `detail` holding the caller's structured refusal."""
    fault = etree.Element(f"{{{SOAP_ENV}}}Fault", nsmap={"soap": SOAP_ENV})
    # faultcode and faultstring are unqualified (SOAP 1.1 section 4.4).
    etree.SubElement(fault, "faultcode").text = f"soap:{fault_code(exc)}"
    etree.SubElement(fault, "faultstring").text = f"{exc.reason}: {exc.detail}"
    if detail is not None:
        etree.SubElement(fault, "detail").append(detail)
    return build_envelope(fault)


def parse_fault(root: etree._Element, detail_ns: str | None = None) -> FaultInfo | None:
    """The Fault of a parsed response envelope, or None when it holds none."""
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if fault is None:
        return None
    code = (fault.findtext("faultcode") or "").strip()
    code = code.split(":", 1)[-1]
    reason = retry = None
    if detail_ns:
        reason = fault.findtext(f"detail/{{{detail_ns}}}Refusal/{{{detail_ns}}}ReasonCode")
        flag = fault.findtext(f"detail/{{{detail_ns}}}Refusal/{{{detail_ns}}}Retryable")
        retry = None if flag is None else flag.strip() == "true"
    return FaultInfo(code=code, text=(fault.findtext("faultstring") or "").strip(), reason_code=reason,
                     retryable=retry)
