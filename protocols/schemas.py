"""XML Schemas of the wire contract, by name, compiled once per process.

Owns: the registry of schema names -> XSD files under protocols/, and validation that
turns schema errors into RejectedMessage(XSD_INVALID) naming the element and line.
Must not: read anything but the XSD files shipped in this package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from protocols.errors import ReasonCode, RejectedMessage

_HERE = Path(__file__).parent

#: Schema name -> XSD path relative to protocols/. Add a line here for a new schema.
SCHEMAS: dict[str, str] = {
    "hub": "hubmsg/hub.xsd",
    "orders": "orders/order.xsd",
    "knowledge": "knowledge/knowledge.xsd",
    "announcements": "announcements/announcement.xsd",
    "files": "files/files.xsd",
    "sms": "sms/sms.xsd",
    "wap": "wap/wap.xsd",
}


def schema_path(name: str) -> Path:
    return _HERE / SCHEMAS[name]


@cache
def compiled(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(schema_path(name)), parser))


def validate(name: str, root) -> None:
    schema = compiled(name)
    if schema.validate(root):
        return
    err = schema.error_log.last_error
    raise RejectedMessage(
        f"The payload does not match schema {name!r}: {err.message} (line {err.line}).",
        reason=ReasonCode.XSD_INVALID, field=_element_name(root, err.path),
    )


def _element_name(root, path: str | None) -> str | None:
    """Local name of the element at libxml2's error path; namespaced elements appear there as
    '*' ('/*/*[6]'), so the path is evaluated on the tree rather than read as text."""
    if not path:
        return None
    try:
        found = root.getroottree().xpath(path)
    except etree.XPathError:
        found = None
    if found and isinstance(found[0], etree._Element):
        return etree.QName(found[0]).localname or None
    last = path.rsplit("/", 1)[-1]
    return last.split("}")[-1].split("[")[0] or None
