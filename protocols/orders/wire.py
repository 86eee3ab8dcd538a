"""XML wire format of the order messages (namespace urn:cs-hub:order:1, order.xsd) <-> models.

Owns: validation of a parsed tree against order.xsd (compiled once per process through
protocols.schemas), the conversion of a valid tree into a canonical model and back, and
the two byte-level conveniences `loads`/`dumps` on top of protocols.xmlwire.
Must not: parse raw bytes itself (protocols.xmlwire.parse does that safely: declared
encodings, no DTDs), apply business rules (protocols.orders.rules), or change values:
text is carried exactly as sent and every timestamp keeps its offset, so
`from_xml(to_xml(m)) == m` and a golden message comes back element for element.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from lxml import etree
from pydantic import BaseModel, ValidationError

from protocols import schemas, xmlwire
from protocols.errors import ReasonCode, RejectedMessage
from protocols.orders.models import MESSAGE_TYPES, OrderMessage

NS = "urn:cs-hub:order:1"
SCHEMA_NAME = "orders"  # the name under which protocols.schemas knows order.xsd

#: Repeated child element of a list-valued element.
_ITEM_ELEMENT = {"Parties": "Party"}


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


# ----------------------------------------------------------------------------- validation


def validate_xsd(root: etree._Element) -> None:
    """Validate a parsed tree against order.xsd; refuse with XSD_INVALID naming element and line.

    The first error is reported (the one a sender must fix first), with the number of
    further errors; `field` is the local name of the offending element.
    """
    schema = schemas.compiled(SCHEMA_NAME)
    if schema.validate(root):
        return
    errors = list(schema.error_log)
    first = errors[0]
    element = _element_at(root, first.path)
    more = f" ({len(errors) - 1} more schema error(s) follow.)" if len(errors) > 1 else ""
    where = f"line {first.line}" + (f", element {element}" if element else "")
    raise RejectedMessage(
        f"The {_local(root.tag) or 'message'} does not match the order schema {NS} at {where}: "
        f"{first.message} Correct the message against protocols/orders/order.xsd and resend.{more}",
        reason=ReasonCode.XSD_INVALID,
        field=element,
    )


def _element_at(root: etree._Element, path: str | None) -> str | None:
    """Local name of the element at libxml2's error path (e.g. '/*/*[6]'), found structurally."""
    if not path:
        return None
    try:
        found = root.getroottree().xpath(path)
    except etree.XPathError:
        return None
    if found and isinstance(found[0], etree._Element):
        return _local(found[0].tag) or None
    return None


# ----------------------------------------------------------------------------- tree -> model


def from_xml(root: etree._Element, *, validate: bool = True) -> OrderMessage:
    """Canonical model of an order message tree (already parsed by protocols.xmlwire.parse).

    Validates against the XSD first unless `validate=False` (for a tree known to be valid).
    Raises RejectedMessage: XSD_INVALID for a schema violation, UNKNOWN_TYPE for a root
    element that is not an order message.
    """
    name = _local(root.tag)
    if etree.QName(root.tag).namespace != NS or name not in MESSAGE_TYPES:
        raise RejectedMessage(
            f"The root element {root.tag!r} is not an order message; expected one of "
            f"{', '.join(MESSAGE_TYPES)} in namespace {NS}.",
            reason=ReasonCode.UNKNOWN_TYPE, value=root.tag,
        )
    if validate:
        validate_xsd(root)
    cls = MESSAGE_TYPES[name]
    try:
        return cls.model_validate(_read(root, cls))
    except ValidationError as exc:
        # Only reachable with validate=False: the XSD is stricter than the models.
        err = exc.errors()[0]
        field = "/".join(str(p) for p in err["loc"])
        raise RejectedMessage(
            f"The {name} has an invalid {field}: {err['msg']}.",
            reason=ReasonCode.FIELD_INVALID, field=field,
        ) from None


def _read(element: etree._Element, cls: type[BaseModel]) -> dict[str, object]:
    children = {_local(c.tag): c for c in element if isinstance(c.tag, str)}
    data: dict[str, object] = {}
    for attr, info in cls.model_fields.items():
        alias = info.alias or attr
        child = children.get(alias)
        if child is None:
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            data[alias] = _read(child, annotation)
        elif alias in _ITEM_ELEMENT:
            data[alias] = tuple((item.text or "") for item in child if _local(item.tag) == _ITEM_ELEMENT[alias])
        elif annotation is datetime:
            data[alias] = parse_datetime(child.text or "", alias)
        else:
            data[alias] = child.text or ""
    return data


def parse_datetime(text: str, field: str = "time") -> datetime:
    """An xs:dateTime with its offset kept (2024-06-11T10:00:00+08:00 stays +08:00).

    A naive value parses to a naive datetime: refusing it is the rules' job, so that a
    model built without XML is judged the same way.
    """
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise RejectedMessage(
            f"{field} {text!r} is not a date and time such as 2024-06-11T10:00:00+08:00.",
            reason=ReasonCode.FIELD_INVALID, field=field, value=text,
        ) from None


# ----------------------------------------------------------------------------- model -> tree


def to_xml(model: OrderMessage) -> etree._Element:
    """The XML tree of an order message, element order as in order.xsd, default namespace."""
    name = type(model).__name__
    if MESSAGE_TYPES.get(name) is not type(model):
        raise TypeError(f"{name} is not an order message")
    root = etree.Element(_q(name), nsmap={None: NS})
    _write(root, model)
    return root


def _write(parent: etree._Element, model: BaseModel) -> None:
    for attr, info in type(model).model_fields.items():
        alias = info.alias or attr
        value = getattr(model, attr)
        if value is None:
            continue
        child = etree.SubElement(parent, _q(alias))
        if isinstance(value, BaseModel):
            _write(child, value)
        elif alias in _ITEM_ELEMENT:
            for item in value:
                etree.SubElement(child, _q(_ITEM_ELEMENT[alias])).text = item
        elif isinstance(value, datetime):
            child.text = format_datetime(value)
        elif isinstance(value, StrEnum):
            child.text = value.value
        else:
            child.text = value


def format_datetime(value: datetime) -> str:
    """xs:dateTime text with the value's own offset; UTC is written as Z."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(
            f"{value.isoformat()} has no time zone; order messages carry zoned times only "
            "(run the message through protocols.orders.rules first)."
        )
    text = value.isoformat()
    if offset == timedelta(0):
        text = text[: -len("+00:00")] + "Z"
    return text


# ----------------------------------------------------------------------------- bytes


def loads(data: bytes, content_encoding: str | None = None, *, max_bytes: int | None = None) -> OrderMessage:
    """Wire bytes (UTF-8, GBK or GB18030 as declared) -> validated canonical model."""
    root, _encoding = xmlwire.parse(data, content_encoding, max_bytes=max_bytes)
    return from_xml(root)


def dumps(model: OrderMessage, encoding: str = "utf-8") -> bytes:
    """Canonical model -> wire bytes in the encoding the destination node wants."""
    return xmlwire.serialise(to_xml(model), encoding)
