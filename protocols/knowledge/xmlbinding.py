"""Binding between frozen pydantic message models and namespace-qualified XML trees.

Owns: the one mapping rule shared by the seed-003 contracts (knowledge and announcements):
an element per model field, named by the field's alias, in field order; a nested model is
a nested element; a tuple is either a wrapper element holding repeated items (`wrapped`:
alias -> item element name) or, for aliases not listed there, the alias element repeated
in place; None is an absent element. XSD validation with refusals that name element and
line (XSD_INVALID), tree <-> model, and bytes <-> model on top of protocols.xmlwire.
Must not: parse raw bytes itself (protocols.xmlwire does, safely), apply business rules,
or change values: text is carried exactly as sent and every timestamp keeps its offset,
so `from_xml(to_xml(m)) == m`.

Rule for empty lists, so that a round trip is lossless: a wrapped tuple is always written
(an empty one as an empty wrapper) unless the value is None; a repeated-in-place tuple
writes nothing when empty. The schemas are written to match.

protocols/orders/wire.py predates this module and keeps its own, flatter code; both give
the same XML conventions (default namespace, `Z` for UTC, text as sent).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from typing import Union, get_args, get_origin

from lxml import etree
from pydantic import BaseModel, ValidationError

from protocols import schemas, xmlwire
from protocols.errors import ReasonCode, RejectedMessage


def local_name(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_datetime(text: str, field: str = "time") -> datetime:
    """An xs:dateTime with its offset kept (2024-07-01T10:00:00+08:00 stays +08:00).

    A naive value parses to a naive datetime: refusing it is the rules' job, so that a
    model built without XML is judged the same way.
    """
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise RejectedMessage(
            f"{field} {text!r} is not a date and time such as 2024-07-01T10:00:00+08:00.",
            reason=ReasonCode.FIELD_INVALID, field=field, value=text,
        ) from None


def format_datetime(value: datetime) -> str:
    """xs:dateTime text with the value's own offset; UTC is written as Z."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(
            f"{value.isoformat()} has no time zone; these messages carry zoned times only "
            "(run the message through the rules first)."
        )
    text = value.isoformat()
    if offset == timedelta(0):
        text = text[: -len("+00:00")] + "Z"
    return text


@dataclass(frozen=True)
class _Slot:
    """How one model field sits in XML."""

    attr: str
    alias: str
    kind: type  # the item type: a BaseModel subclass, datetime, bool, int, an Enum or str
    many: bool  # a tuple of `kind`
    item: str | None  # wrapper's item element name; None for a single value or repeated in place


def _item_type(annotation: object) -> tuple[type, bool]:
    """(item type, is a tuple) of a field annotation such as `tuple[X, ...] | None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation!r}: one type besides None only")
        annotation = args[0]
    if get_origin(annotation) is tuple:
        args = get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple {annotation!r}: use tuple[X, ...]")
        return args[0], True
    return annotation, False  # type: ignore[return-value]


class XmlBinding:
    """The XML wire format of one contract: namespace, schema name and root message types."""

    def __init__(self, *, namespace: str, schema_name: str, messages: Mapping[str, type[BaseModel]],
                 wrapped: Mapping[str, str], title: str) -> None:
        self.namespace = namespace
        self.schema_name = schema_name
        self.messages = dict(messages)
        self.wrapped = dict(wrapped)
        self.title = title  # e.g. "knowledge": used in refusals ("does not match the knowledge schema")

    # ------------------------------------------------------------------------- validation

    def validate_xsd(self, root: etree._Element) -> None:
        """Validate a parsed tree against the schema; refuse with XSD_INVALID naming element and line.

        The first error is reported (the one a sender must fix first), with the number of
        further errors; `field` is the local name of the offending element.
        """
        schema = schemas.compiled(self.schema_name)
        if schema.validate(root):
            return
        errors = list(schema.error_log)
        first = errors[0]
        element = _element_at(root, first.path)
        more = f" ({len(errors) - 1} more schema error(s) follow.)" if len(errors) > 1 else ""
        where = f"line {first.line}" + (f", element {element}" if element else "")
        raise RejectedMessage(
            f"The {local_name(root.tag) or 'message'} does not match the {self.title} schema {self.namespace} "
            f"at {where}: {first.message} Correct the message against protocols/{schemas.SCHEMAS[self.schema_name]} "
            f"and resend.{more}",
            reason=ReasonCode.XSD_INVALID,
            field=element,
        )

    # ------------------------------------------------------------------------- tree -> model

    def from_xml(self, root: etree._Element, *, validate: bool = True) -> BaseModel:
        """Canonical model of a message tree (already parsed by protocols.xmlwire.parse).

        Validates against the XSD first unless `validate=False` (for a tree known to be valid).
        Raises RejectedMessage: XSD_INVALID for a schema violation, UNKNOWN_TYPE for a root
        element that is not one of this contract's messages.
        """
        name = local_name(root.tag)
        if etree.QName(root.tag).namespace != self.namespace or name not in self.messages:
            raise RejectedMessage(
                f"The root element {root.tag!r} is not a {self.title} message; expected one of "
                f"{', '.join(self.messages)} in namespace {self.namespace}.",
                reason=ReasonCode.UNKNOWN_TYPE, value=root.tag,
            )
        if validate:
            self.validate_xsd(root)
        cls = self.messages[name]
        try:
            return cls.model_validate(self._read(root, cls))
        except ValidationError as exc:
            # Only reachable with validate=False: the XSD is stricter than the models.
            err = exc.errors()[0]
            field = "/".join(str(p) for p in err["loc"])
            raise RejectedMessage(
                f"The {name} has an invalid {field}: {err['msg']}.",
                reason=ReasonCode.FIELD_INVALID, field=field,
            ) from None

    def _read(self, element: etree._Element, cls: type[BaseModel]) -> dict[str, object]:
        children: dict[str, list[etree._Element]] = {}
        for child in element:
            if isinstance(child.tag, str):
                children.setdefault(local_name(child.tag), []).append(child)
        data: dict[str, object] = {}
        for slot in self._slots(cls):
            found = children.get(slot.alias)
            if not found:
                continue
            if slot.many and slot.item is not None:
                items = [c for c in found[0] if local_name(c.tag) == slot.item]
                data[slot.alias] = tuple(self._value(c, slot) for c in items)
            elif slot.many:
                data[slot.alias] = tuple(self._value(c, slot) for c in found)
            else:
                data[slot.alias] = self._value(found[0], slot)
        return data

    def _value(self, element: etree._Element, slot: _Slot) -> object:
        if isinstance(slot.kind, type) and issubclass(slot.kind, BaseModel):
            return self._read(element, slot.kind)
        if slot.kind is datetime:
            return parse_datetime(element.text or "", slot.alias)
        return element.text or ""  # pydantic turns "3" into 3 and "true" into True

    # ------------------------------------------------------------------------- model -> tree

    def to_xml(self, model: BaseModel) -> etree._Element:
        """The XML tree of a message, element order as in the schema, default namespace."""
        name = type(model).__name__
        if self.messages.get(name) is not type(model):
            raise TypeError(f"{name} is not a {self.title} message")
        root = etree.Element(self._q(name), nsmap={None: self.namespace})
        self._write(root, model)
        return root

    def _write(self, parent: etree._Element, model: BaseModel) -> None:
        for slot in self._slots(type(model)):
            value = getattr(model, slot.attr)
            if value is None:
                continue
            if slot.many and slot.item is not None:
                wrapper = etree.SubElement(parent, self._q(slot.alias))
                for item in value:
                    self._put(etree.SubElement(wrapper, self._q(slot.item)), item)
            elif slot.many:
                for item in value:
                    self._put(etree.SubElement(parent, self._q(slot.alias)), item)
            else:
                self._put(etree.SubElement(parent, self._q(slot.alias)), value)

    def _put(self, element: etree._Element, value: object) -> None:
        if isinstance(value, BaseModel):
            self._write(element, value)
        elif isinstance(value, datetime):
            element.text = format_datetime(value)
        elif isinstance(value, bool):
            element.text = "true" if value else "false"
        elif isinstance(value, Enum):
            element.text = str(value.value)
        else:
            element.text = str(value)

    # ------------------------------------------------------------------------- bytes

    def loads(self, data: bytes, content_encoding: str | None = None, *,
              max_bytes: int | None = None) -> BaseModel:
        """Wire bytes (UTF-8, GBK or GB18030 as declared) -> validated canonical model."""
        root, _encoding = xmlwire.parse(data, content_encoding, max_bytes=max_bytes)
        return self.from_xml(root)

    def dumps(self, model: BaseModel, encoding: str = "utf-8") -> bytes:
        """Canonical model -> wire bytes in the encoding the destination node wants."""
        return xmlwire.serialise(self.to_xml(model), encoding)

    # ------------------------------------------------------------------------- helpers

    def _q(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}"

    def _slots(self, cls: type[BaseModel]) -> tuple[_Slot, ...]:
        return _slots_of(cls, tuple(sorted(self.wrapped.items())))


@cache
def _slots_of(cls: type[BaseModel], wrapped: tuple[tuple[str, str], ...]) -> tuple[_Slot, ...]:
    items = dict(wrapped)
    slots = []
    for attr, info in cls.model_fields.items():
        alias = info.alias or attr
        kind, many = _item_type(info.annotation)
        slots.append(_Slot(attr, alias, kind, many, items.get(alias) if many else None))
    return tuple(slots)


def _element_at(root: etree._Element, path: str | None) -> str | None:
    """Local name of the element at libxml2's error path (e.g. '/*/*[6]'), found structurally."""
    if not path:
        return None
    try:
        found = root.getroottree().xpath(path)
    except etree.XPathError:
        return None
    if found and isinstance(found[0], etree._Element):
        return local_name(found[0].tag) or None
    return None
