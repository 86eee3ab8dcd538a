"""The nodes of the network (HQ, second-line platform, provinces, adapters) as validated data.

Owns: the pydantic model of config/nodes.yaml and the lookups the runtime needs (by code,
by AMQP user, by group). Adding a province is an edit of that file, never of this one.
Must not: open connections or read secrets' values (secrets are resolved by the runtime).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.yamlsource import LocatedValueError

NodeCode = Annotated[
    str,
    Field(pattern=r"^[0-9A-Za-z]{2,8}$", description="Company code (公司编号) of the node", examples=["44"]),
]


class NodeKind(StrEnum):
    hq = "hq"
    province = "province"
    second_line = "second_line"
    city = "city"
    system = "system"


class Transport(StrEnum):
    amqp = "amqp"
    soap = "soap"
    sftp = "sftp"


class Names(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str = Field(description="Chinese display name (shown first)", examples=["广东"])
    en: str = Field(description="English display name", examples=["Guangdong"])


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_message_bytes: int = Field(
        262_144, ge=1024, le=16 * 1024 * 1024,
        description="Largest payload accepted from this node; larger ones are refused with OVERSIZE.",
    )
    max_queue_length: int | None = Field(
        None, ge=1,
        description="Optional cap on the node's delivery queue (messages); the hub is refused past it.",
    )


class Node(BaseModel):
    """One party on the bus."""

    model_config = ConfigDict(extra="forbid")
    code: NodeCode
    kind: NodeKind = Field(description="Role of the node in the tree (hq, province, second_line, city, system)")
    names: Names
    transport: Transport = Field(Transport.amqp, description="How the hub reaches the node")
    encoding: Literal["utf-8", "gbk", "gb18030"] = Field(
        "utf-8", description="Wire encoding the node sends and wants to receive"
    )
    groups: list[str] = Field(default_factory=list, description="Extra groups the node belongs to", examples=[["south"]])
    parent: str | None = Field(None, description="Code of the province a city node reports through")
    limits: Limits = Field(default_factory=Limits)
    enabled: bool = Field(True, description="A disabled node keeps its queue but receives no new routing")

    @property
    def amqp_user(self) -> str:
        return f"node-{self.code}"

    @property
    def queue(self) -> str:
        return f"node.{self.code}"

    def display(self, lang: str = "zh") -> str:
        return self.names.zh if lang == "zh" else self.names.en


#: Groups every node belongs to implicitly, by kind.
KIND_GROUPS = {
    NodeKind.hq: "hq",
    NodeKind.province: "provinces",
    NodeKind.second_line: "second_line",
    NodeKind.city: "cities",
    NodeKind.system: "systems",
}


class NodesFile(BaseModel):
    """config/nodes.yaml."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(1, description="Format version of this file")
    nodes: list[Node]

    @field_validator("nodes")
    @classmethod
    def _unique_codes(cls, nodes: list[Node]) -> list[Node]:
        seen: set[str] = set()
        for i, n in enumerate(nodes):
            if n.code in seen:
                raise LocatedValueError(f"node code {n.code!r} appears twice; each company code must be unique",
                                        i, "code")
            seen.add(n.code)
        return nodes

    @model_validator(mode="after")
    def _one_hq(self) -> NodesFile:
        hqs = [i for i, n in enumerate(self.nodes) if n.kind == NodeKind.hq]
        if len(hqs) != 1:
            where = ("nodes", hqs[1], "kind") if hqs else ("nodes",)
            raise LocatedValueError(f"exactly one node of kind hq is required, found {len(hqs)}: "
                                    f"{[self.nodes[i].code for i in hqs]}", *where)
        codes = {n.code for n in self.nodes}
        for i, n in enumerate(self.nodes):
            if n.parent is not None and n.parent not in codes:
                raise LocatedValueError(f"node {n.code}: parent {n.parent!r} is not a known node code",
                                        "nodes", i, "parent")
        return self


class Directory:
    """Read-only lookups over the configured nodes."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = list(nodes)
        self.by_code = {n.code: n for n in self.nodes}
        self.by_user = {n.amqp_user: n for n in self.nodes}
        # "all" is every business party; system nodes (the WAP endpoint, the NMS feed) are
        # machines that talk to the hub, not recipients of broadcasts and announcements.
        groups: dict[str, list[str]] = {"all": [n.code for n in self.nodes if n.kind != NodeKind.system]}
        for n in self.nodes:
            for g in [KIND_GROUPS[n.kind], *n.groups]:
                groups.setdefault(g, []).append(n.code)
        self.groups = groups

    @property
    def hq(self) -> Node:
        return next(n for n in self.nodes if n.kind == NodeKind.hq)

    def members(self, group_or_code: str) -> list[str]:
        """Codes named by a group name or a single node code."""
        if group_or_code in self.groups:
            return list(self.groups[group_or_code])
        if group_or_code in self.by_code:
            return [group_or_code]
        raise KeyError(group_or_code)
