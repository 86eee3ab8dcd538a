"""Bytes <-> XML trees for every XML message on the bus, safely and without mojibake.

Owns: honouring the declared character encoding (AMQP content_encoding and the XML
declaration), refusing bytes that do not match it, refusing DTDs and entities (XXE,
billion laughs), and serialising a tree in the encoding a destination node wants.
Must not: recover broken XML (lxml's recover mode silently drops data), fetch anything
from the network, or guess an encoding that was not declared.
"""

from __future__ import annotations

import re

from lxml import etree

from protocols.errors import ReasonCode, RejectedMessage

#: Encodings the hub accepts on the wire (GBK is common in legacy province systems).
SUPPORTED_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "gb18030": "gb18030"}

_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DOCTYPE = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    recover=False,
    remove_blank_text=False,
)


def normalise_encoding(name: str | None) -> str | None:
    """Canonical name of a declared encoding, or None when nothing was declared."""
    if name is None or not name.strip():
        return None
    key = name.strip().lower()
    if key not in SUPPORTED_ENCODINGS:
        raise RejectedMessage(
            f"Encoding {name!r} is not supported; use one of utf-8, gbk, gb18030.",
            reason=ReasonCode.ENCODING_INVALID, field="content_encoding", value=name,
        )
    return SUPPORTED_ENCODINGS[key]


def declared_xml_encoding(data: bytes) -> str | None:
    m = _DECL.match(data[:200])
    return m.group(1).decode("ascii") if m else None


def decode_text(data: bytes, content_encoding: str | None) -> tuple[str, str]:
    """Decode message bytes strictly; returns (text, canonical encoding).

    The AMQP content_encoding and the XML declaration must agree when both are given;
    without either, XML's default UTF-8 applies. Bytes that are valid UTF-8 but declared
    GBK are refused too: GBK would decode them into mojibake without an error.
    """
    prop = normalise_encoding(content_encoding)
    # The declaration follows a byte order mark: read it there too, or a BOM would hide a
    # declared GBK from the mismatch checks below.
    decl = normalise_encoding(declared_xml_encoding(data.removeprefix(b"\xef\xbb\xbf")))
    if prop and decl and prop != decl:
        raise RejectedMessage(
            f"content_encoding says {prop} but the XML declaration says {decl}; declare one encoding.",
            reason=ReasonCode.ENCODING_MISMATCH, field="content_encoding", value=content_encoding,
        )
    enc = prop or decl or "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        if enc != "utf-8":
            raise RejectedMessage(
                f"The payload starts with a UTF-8 byte order mark but is declared {enc}.",
                reason=ReasonCode.ENCODING_MISMATCH, field="content_encoding", value=enc,
            )
        data = data[3:]
    try:
        text = data.decode(enc, errors="strict")
    except UnicodeDecodeError as exc:
        raise RejectedMessage(
            f"The payload is not valid {enc}: byte {data[exc.start:exc.start + 1].hex()} at offset "
            f"{exc.start}. Send the bytes in the encoding you declare.",
            reason=ReasonCode.ENCODING_INVALID, field="content_encoding", value=enc,
        ) from None
    if enc != "utf-8" and not text.isascii():
        try:
            data.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            pass
        else:
            raise RejectedMessage(
                f"The payload is declared {enc} but its bytes are UTF-8; declare utf-8 or send {enc} bytes.",
                reason=ReasonCode.ENCODING_MISMATCH, field="content_encoding", value=enc,
            )
    return text, enc


def parse(data: bytes, content_encoding: str | None = None, *, max_bytes: int | None = None):
    """Parse wire bytes into an lxml element; returns (root, canonical encoding)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise RejectedMessage(
            f"The payload has {len(data)} bytes; the limit for this sender is {max_bytes}.",
            reason=ReasonCode.OVERSIZE, value=len(data),
        )
    text, enc = decode_text(data, content_encoding)
    if _DOCTYPE.search(text):
        raise RejectedMessage(
            "The payload contains a DOCTYPE or ENTITY declaration; DTDs and entities are not allowed.",
            reason=ReasonCode.XML_FORBIDDEN,
        )
    # Parse the already-decoded text re-encoded as UTF-8 without its declaration, so that
    # lxml never applies a second, possibly different, decoding.
    body = _DECL_TEXT.sub("", text, count=1)
    if _ANOTHER_DECL.match(body):
        # A second declaration would become the first for lxml, which would then decode the
        # UTF-8 we hand it as whatever that one names: other text than the one checked here.
        raise RejectedMessage(
            "The payload has more than one XML declaration; only one, at the very start, is allowed.",
            reason=ReasonCode.XML_MALFORMED,
        )
    try:
        root = etree.fromstring(body.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RejectedMessage(
            f"The payload is not well-formed XML: {exc.msg} (line {exc.lineno}).",
            reason=ReasonCode.XML_MALFORMED,
        ) from None
    return root, enc


_DECL_TEXT = re.compile(r"^\s*<\?xml[^>]*\?>")
_ANOTHER_DECL = re.compile(r"\s*<\?xml\s")  # not <?xml-stylesheet ...?>, a legitimate PI


#: Characters XML 1.0 cannot carry at all (section 2.2 "Char"), not even as references.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def safe_text(value) -> str:
    """`value` as element text that lxml accepts: a sender's message_id or type may hold control
    characters or undecodable bytes (pika hands invalid UTF-8 over as bytes); each such
    character becomes U+FFFD instead of failing the whole refusal."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return _NOT_XML_CHAR.sub("\ufffd", str(value))


def serialise(root, encoding: str = "utf-8") -> bytes:
    """XML bytes in the wire encoding a destination expects, with a matching declaration."""
    enc = normalise_encoding(encoding) or "utf-8"
    return etree.tostring(root, encoding=enc.upper(), xml_declaration=True)
