"""XML wire format of the knowledge messages (namespace urn:cs-hub:knowledge:1, knowledge.xsd) <-> models.

Owns: validation of a parsed tree against knowledge.xsd (compiled once per process through
protocols.schemas), the conversion of a valid tree into a canonical model and back, and
the byte-level conveniences `loads`/`dumps` on top of protocols.xmlwire. The mapping rule
itself lives in protocols.knowledge.xmlbinding, shared with the announcements.
Must not: parse raw bytes itself (protocols.xmlwire.parse does that safely: declared
encodings, no DTDs), apply business rules (protocols.knowledge.rules), or change values:
text is carried exactly as sent and every timestamp keeps its offset, so
`from_xml(to_xml(m)) == m` and a golden message comes back element for element.
"""

from __future__ import annotations

from lxml import etree

from protocols.knowledge.models import MESSAGE_TYPES, WRAPPED, KnowledgeMessage
from protocols.knowledge.xmlbinding import XmlBinding, format_datetime, parse_datetime

NS = "urn:cs-hub:knowledge:1"
SCHEMA_NAME = "knowledge"  # the name under which protocols.schemas knows knowledge.xsd

BINDING = XmlBinding(namespace=NS, schema_name=SCHEMA_NAME, messages=MESSAGE_TYPES, wrapped=WRAPPED,
                     title="knowledge")

__all__ = ["NS", "SCHEMA_NAME", "dumps", "format_datetime", "from_xml", "loads", "parse_datetime", "to_xml",
           "validate_xsd"]


def validate_xsd(root: etree._Element) -> None:
    """Validate a parsed tree against knowledge.xsd; refuse with XSD_INVALID naming element and line."""
    BINDING.validate_xsd(root)


def from_xml(root: etree._Element, *, validate: bool = True) -> KnowledgeMessage:
    """Canonical model of a knowledge message tree; XSD_INVALID or UNKNOWN_TYPE when it is not one."""
    return BINDING.from_xml(root, validate=validate)  # type: ignore[return-value]


def to_xml(model: KnowledgeMessage) -> etree._Element:
    """The XML tree of a knowledge message, element order as in knowledge.xsd, default namespace."""
    return BINDING.to_xml(model)


def loads(data: bytes, content_encoding: str | None = None, *, max_bytes: int | None = None) -> KnowledgeMessage:
    """Wire bytes (UTF-8, GBK or GB18030 as declared) -> validated canonical model."""
    return BINDING.loads(data, content_encoding, max_bytes=max_bytes)  # type: ignore[return-value]


def dumps(model: KnowledgeMessage, encoding: str = "utf-8") -> bytes:
    """Canonical model -> wire bytes in the encoding the destination node wants."""
    return BINDING.dumps(model, encoding)
