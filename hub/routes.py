"""The route file model (routes/*.yaml): Camel's vocabulary, as data.

A route reads top to bottom: `id`, `from` (what it claims: type, source node or group,
headers, optional XPath), `steps` (validate, check, map, enrich, wireTap — each a one-key
map naming a schema or a registered function), `to` (nodes, groups, adapters, a named
resolver, or back to the sender), `retry` and `on_error` (dead letter channel).
No expression language hides in strings: checks, mappings and resolvers are referred to
by name (mappings/registry.py); XPath is the one standard predicate language allowed.
Must not: execute anything (hub/router.py does).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Match(BaseModel):
    """What a route claims. A message is claimed by exactly one route."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="Message type (AMQP `type` property)", examples=["order.dispatch"])
    source: str | None = Field(None, description="Node code or group the sender must belong to; any when absent",
                               examples=["provinces"])
    headers: dict[str, str] = Field(default_factory=dict, description="AMQP headers that must be equal")
    xpath: str | None = Field(None, description="Boolean XPath on the payload, prefixes from message_types.yaml",
                              examples=["o:ToCompany/o:Code = 'HOME'"])


class Step(BaseModel):
    """One processing step: exactly one of the keys."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    validate_: str | None = Field(None, alias="validate", description="Schema name to validate the payload against")
    check: str | None = Field(None, description="Named content check (mappings/registry.py CHECKS)")
    map: str | None = Field(None, description="Named mapping (mappings/registry.py MAPPINGS)")
    enrich: str | None = Field(None, description="Named enricher (mappings/registry.py ENRICHERS)")
    wireTap: str | None = Field(None, description="Node code or group that receives a copy as well")

    @model_validator(mode="after")
    def _one_key(self) -> Step:
        keys = [k for k in ("validate_", "check", "map", "enrich", "wireTap") if getattr(self, k) is not None]
        if len(keys) != 1:
            raise ValueError("a step has exactly one key: validate, check, map, enrich or wireTap")
        return self

    @property
    def kind(self) -> str:
        for k in ("validate_", "check", "map", "enrich", "wireTap"):
            if getattr(self, k) is not None:
                return k.rstrip("_")
        raise AssertionError("unreachable")

    @property
    def arg(self) -> str:
        return getattr(self, self.kind + ("_" if self.kind == "validate" else ""))


class Destination(BaseModel):
    """Where the routed message goes: exactly one of node, group, adapter, resolve, sender."""

    model_config = ConfigDict(extra="forbid")
    node: str | None = Field(None, description="A node code", examples=["00"])
    group: str | None = Field(None, description="A node group: all, provinces, hq, second_line, or a custom one")
    adapter: str | None = Field(None, description="An adapter name (adapters/registry.py)", examples=["smpp"])
    resolve: str | None = Field(None, description="Named resolver returning node codes from the payload",
                                examples=["order_recipient"])
    sender: bool | None = Field(None, description="Back to the node that sent the message")
    map: str | None = Field(None, description="Named mapping applied for this destination only")
    type: str | None = Field(None, description="Deliver under another message type (after a mapping)")

    @model_validator(mode="after")
    def _one_target(self) -> Destination:
        keys = [k for k in ("node", "group", "adapter", "resolve", "sender") if getattr(self, k)]
        if len(keys) != 1:
            raise ValueError("a destination names exactly one of node, group, adapter, resolve or sender")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("node", "group", "adapter", "resolve", "sender") if getattr(self, k))


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts of a transient failure before dead letter")


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$", description="Unique route id", examples=["order-dispatch"])
    description: str | None = Field(None, description="What the route is for (Chinese or English)")
    from_: Match = Field(alias="from")
    steps: list[Step] = Field(default_factory=list)
    to: list[Destination] = Field(min_length=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    on_error: Literal["dead_letter"] = Field("dead_letter", description="Dead letter channel: hub.dlq + negative ack")


class RoutesFile(BaseModel):
    """One routes/*.yaml file."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    routes: list[Route]
