"""AMQP messages as plain data, independent of the client library.

Incoming is what the hub consumed (with the exchange it was published to, which tells a
node's publish from the hub's own retry or replay); Outgoing is what it will publish. The
worker converts to and from pika; the pipeline, the fixture runner and the console work on
these alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INGRESS_EXCHANGE = "hub.ingress"
DELIVER_EXCHANGE = "hub.deliver"
RETRY_EXCHANGE = "hub.retry"
DLX_EXCHANGE = "hub.dlx"
HUB_QUEUE = "hub.in"
DLQ = "hub.dlq"

#: Headers only the hub may set; stripped from anything a node publishes.
H_ORIGIN_USER = "x-hub-origin-user"
H_SOURCE = "x-hub-source"
H_ROUTE = "x-hub-route"
H_CONFIG = "x-hub-config"
H_ATTEMPT = "x-hub-attempt"
H_REASON_CODE = "x-hub-reason-code"
H_REASON = "x-hub-reason"
H_REASON_ZH = "x-hub-reason-zh"
H_STAGE = "x-hub-stage"
H_DEAD_AT = "x-hub-dead-lettered-at"
H_ORIG_EXCHANGE = "x-hub-original-exchange"
H_ORIG_RK = "x-hub-original-routing-key"
H_RETRY_TIER = "x-retry-tier"
H_REPLAY = "x-hub-replay"


@dataclass
class Props:
    """The AMQP basic properties the contract uses."""

    message_id: str | None = None
    type: str | None = None
    user_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    timestamp: int | None = None
    app_id: str | None = None
    delivery_mode: int | None = 2
    headers: dict = field(default_factory=dict)

    def copy(self, **changes) -> Props:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["headers"] = dict(self.headers or {})
        data.update(changes)
        return Props(**data)


@dataclass
class Incoming:
    body: bytes
    props: Props
    exchange: str = INGRESS_EXCHANGE
    routing_key: str = ""
    redelivered: bool = False
    delivery_tag: int = 0

    @property
    def from_node_publish(self) -> bool:
        """True when a node published it (nodes may only write to hub.ingress)."""
        return self.exchange == INGRESS_EXCHANGE


@dataclass
class Outgoing:
    exchange: str
    routing_key: str
    props: Props
    body: bytes
