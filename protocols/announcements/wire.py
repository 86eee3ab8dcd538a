"""XML wire format of the announcement messages (urn:cs-hub:announcement:1, announcement.xsd) <-> models.

Owns: validation of a parsed tree against announcement.xsd (compiled once per process through
protocols.schemas), tree <-> canonical model, and `loads`/`dumps` on top of protocols.xmlwire.
The mapping rule is protocols.knowledge.xmlbinding, shared with the knowledge contract.
Must not: parse raw bytes itself, apply business rules (protocols.announcements.rules), or
change values: `from_xml(to_xml(m)) == m` and a golden message comes back element for element.
"""

from __future__ import annotations

from lxml import etree

from protocols.announcements.models import MESSAGE_TYPES, WRAPPED, AnnouncementMessage
from protocols.knowledge.xmlbinding import XmlBinding, format_datetime, parse_datetime

NS = "urn:cs-hub:announcement:1"
SCHEMA_NAME = "announcements"  # the name under which protocols.schemas knows announcement.xsd

BINDING = XmlBinding(namespace=NS, schema_name=SCHEMA_NAME, messages=MESSAGE_TYPES, wrapped=WRAPPED,
                     title="announcement")

__all__ = ["NS", "SCHEMA_NAME", "dumps", "format_datetime", "from_xml", "loads", "parse_datetime", "to_xml",
           "validate_xsd"]


def validate_xsd(root: etree._Element) -> None:
    """Validate a parsed tree against announcement.xsd; refuse with XSD_INVALID naming element and line."""
    BINDING.validate_xsd(root)


def from_xml(root: etree._Element, *, validate: bool = True) -> AnnouncementMessage:
    """Canonical model of an announcement message tree; XSD_INVALID or UNKNOWN_TYPE when it is not one."""
    return BINDING.from_xml(root, validate=validate)  # type: ignore[return-value]


def to_xml(model: AnnouncementMessage) -> etree._Element:
    """The XML tree of an announcement message, element order as in announcement.xsd."""
    return BINDING.to_xml(model)


def loads(data: bytes, content_encoding: str | None = None, *,
          max_bytes: int | None = None) -> AnnouncementMessage:
    """Wire bytes (UTF-8, GBK or GB18030 as declared) -> validated canonical model."""
    return BINDING.loads(data, content_encoding, max_bytes=max_bytes)  # type: ignore[return-value]


def dumps(model: AnnouncementMessage, encoding: str = "utf-8") -> bytes:
    """Canonical model -> wire bytes in the encoding the destination node wants."""
    return BINDING.dumps(model, encoding)
