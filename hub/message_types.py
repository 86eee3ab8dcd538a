"""The catalogue of message types on the bus (config/message_types.yaml).

Owns: per type its root element, schema, the XPath of the business sender (the company
code that must equal the authenticated node), the business key that makes a message a
duplicate, and the namespaces used by XPaths in routes. The wire contract (docs/contract.md,
the AsyncAPI document) is generated from this catalogue, so a new type is one entry here
plus its schema in protocols/.
Must not: route (routes/ do) or hold code (checks and mappings are referred to by name).
"""

from __future__ import annotations

from functools import cached_property

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.nodes import Names
from hub.yamlsource import LocatedValueError
from protocols import schemas


class MessageType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Names
    root: str = Field(description="Root element as prefix:Name, prefix from `namespaces`", examples=["o:DispatchOrder"])
    schema_name: str = Field(alias="schema", description="Schema name registered in protocols/schemas.py",
                             examples=["orders"])
    sender: str | None = Field(None, description="XPath (relative to the root) of the sender's company code; "
                               "refused with SPOOFED_SENDER when it differs from the authenticated node",
                               examples=["o:CompanyCode"])
    business_key: list[str] = Field(default_factory=list,
                                    description="XPaths whose values, joined by ':', identify a business duplicate",
                                    examples=[["o:CompanyCode", "o:SerialNumber"]])
    check: str | None = Field(None, description="Named content check from mappings/registry.py run at ingress")
    produced_by_hub: bool = Field(False, description="Only the hub sends this type; nodes may not")


class TypesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(1)
    namespaces: dict[str, str] = Field(description="XPath prefixes used by types and routes")
    types: dict[str, MessageType]

    @model_validator(mode="after")
    def _known(self) -> TypesFile:
        for name, t in self.types.items():
            prefix = t.root.split(":", 1)[0] if ":" in t.root else None
            if prefix and prefix not in self.namespaces:
                raise LocatedValueError(f"type {name}: root prefix {prefix!r} is not declared in namespaces; "
                                        f"declared: {', '.join(sorted(self.namespaces))}", "types", name, "root")
            if t.schema_name not in schemas.SCHEMAS:
                raise LocatedValueError(f"type {name}: schema {t.schema_name!r} is unknown; "
                                        f"known: {', '.join(sorted(schemas.SCHEMAS))}", "types", name, "schema")
        return self


class Catalogue:
    """Compiled view of the types file: root tags and XPaths ready to evaluate."""

    def __init__(self, spec: TypesFile) -> None:
        self.spec = spec
        self.ns = dict(spec.namespaces)
        self.types = spec.types

    @cached_property
    def _compiled(self) -> dict[str, tuple[str, etree.XPath | None, list[etree.XPath]]]:
        out = {}
        for name, t in self.types.items():
            prefix, _, local = t.root.rpartition(":")
            tag = f"{{{self.ns[prefix]}}}{local}" if prefix else local
            sender = etree.XPath(f"string({t.sender})", namespaces=self.ns) if t.sender else None
            keys = [etree.XPath(f"string({k})", namespaces=self.ns) for k in t.business_key]
            out[name] = (tag, sender, keys)
        return out

    def root_tag(self, type_name: str) -> str:
        return self._compiled[type_name][0]

    def sender_of(self, type_name: str, root) -> str | None:
        xp = self._compiled[type_name][1]
        return xp(root).strip() if xp is not None else None

    def business_key(self, type_name: str, root) -> str | None:
        keys = self._compiled[type_name][2]
        if not keys:
            return None
        return f"{type_name}:" + ":".join(k(root).strip() for k in keys)
