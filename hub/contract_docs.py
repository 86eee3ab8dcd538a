"""The AsyncAPI 3.0 document of the wire contract, generated from what the hub runs.

Owns: turning the message catalogue (config/message_types.yaml), the node list and the broker
topology (hub/topology.build_topology, the same objects `hub topology apply` declares) into
an AsyncAPI 3.0.0 document written from a node's point of view: a node sends to hub.ingress
and receives from its own queue node.{code} (deliveries, and hub.nack refusals). Payloads are
XML; each message names its root element and XSD. `hub contract asyncapi -o docs/asyncapi.yaml`
writes it and the test suite fails when the committed copy is stale.
Must not: read environment-dependent values (broker host, passwords) into the document: the
same configuration must always give the same bytes.
"""

from __future__ import annotations

from importlib import metadata

import yaml

from hub import envelope as ev
from hub.configuration import ADAPTER_NAMES, HubConfig
from hub.settings import Settings
from hub.topology import INGRESS, build_topology
from protocols import schemas

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING = "0.3.0"
NACK_TYPE = "hub.nack"

#: AMQP basic properties of the contract (not application headers, so not in `headers`).
_PROPERTIES = {
    "message_id": {"type": "string", "minLength": 1, "maxLength": 128,
                   "description": "Unique per sender and never reused: the hub delivers a message_id once "
                                  "(idempotent receiver), and the negative acknowledgement quotes it."},
    "type": {"type": "string", "description": "The message type; also the routing key on hub.ingress."},
    "user_id": {"type": "string", "description": "The publishing node's AMQP user (node-<code>); RabbitMQ "
                                                 "refuses a user_id other than the connection's own, which "
                                                 "is how the hub knows the sender. The hub removes it on "
                                                 "delivery and names the sender in x-hub-source."},
    "content_encoding": {"type": "string", "enum": ["utf-8", "gbk", "gb18030"],
                         "description": "Character encoding of the XML bytes; it must agree with the XML "
                                        "declaration. Deliveries use the receiving node's configured "
                                        "encoding (config/nodes.yaml)."},
    "correlation_id": {"type": "string", "description": "The message_id this message answers (a negative "
                                                        "acknowledgement carries the refused message's id)."},
}


def _version() -> str:
    try:
        return metadata.version("cs-hub")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def _message(cfg: HubConfig, name: str) -> dict:
    t = cfg.catalogue.types[name]
    prefix, _, local = t.root.rpartition(":")
    ns = cfg.catalogue.ns.get(prefix, "")
    xsd = f"protocols/{schemas.SCHEMAS[t.schema_name]}"
    required = ["message_id", "type"] if t.produced_by_hub else ["message_id", "type", "user_id"]
    if t.produced_by_hub:
        headers: dict = {ev.H_SOURCE: {"type": "string", "const": "hub", "description": "The hub sent it."}}
    else:
        headers = {
            ev.H_SOURCE: {"type": "string", "description": "Set by the hub on delivery: the sender's company code."},
            ev.H_ROUTE: {"type": "string", "description": "Set by the hub on delivery: the route that handled it."},
            ev.H_CONFIG: {"type": "string", "description": "Set by the hub on delivery: the configuration version."},
        }
    if name == NACK_TYPE:
        headers[ev.H_REASON_CODE] = {"type": "string", "description": "Reason code of the refusal "
                                                                      "(protocols/errors.py ReasonCode)."}
    msg: dict = {
        "name": name,
        "title": t.description.en,
        "summary": t.description.zh,
        "contentType": "application/xml",
        "headers": {"type": "object", "description": "AMQP application headers (x-hub-* are the hub's: "
                                                     "nodes must not set them).", "properties": headers},
        "payload": {
            "type": "string",
            "contentMediaType": "application/xml",
            "description": f"An XML document with root element `{local}` in namespace `{ns}`, valid against "
                           f"the XML Schema `{xsd}`.",
        },
        "bindings": {"amqp": {"messageType": name, "bindingVersion": AMQP_BINDING}},
        "x-amqp-properties": {"type": "object", "required": required,
                              "properties": {**_PROPERTIES, "type": {**_PROPERTIES["type"], "const": name}}},
        "x-xml-root": f"{{{ns}}}{local}",
        "x-xml-schema": xsd,
    }
    if t.sender:
        msg["description"] = (f"The sender's company code at `{t.sender}` must equal the publishing node "
                              "(else SPOOFED_SENDER).")
    if t.business_key:
        msg["description"] = (msg.get("description", "") + " A repeat with the same "
                              f"{', '.join(t.business_key)} is a business duplicate and is not delivered "
                              "again.").strip()
    if name == NACK_TYPE:
        msg["correlationId"] = {"description": "correlation_id is the message_id of the refused message.",
                                "location": "$message.header#/correlation_id"}
    return msg


def asyncapi(settings: Settings, cfg: HubConfig) -> dict:
    """The AsyncAPI 3.0.0 document as a dict (key order is the order written)."""
    topo = build_topology(settings, cfg.directory, list(ADAPTER_NAMES))
    ingress = next(x for x in topo.exchanges if x.name == INGRESS)
    node_queue = topo.queue(cfg.directory.hq.queue)   # every node queue is declared alike
    types = cfg.catalogue.types
    accepted = [n for n, t in types.items() if not t.produced_by_hub]
    delivered = [n for n in types if n != NACK_TYPE]
    codes = [n.code for n in cfg.directory.nodes]
    node_param = {"$ref": "#/components/parameters/code"}
    queue_binding = {"amqp": {"is": "queue", "queue": {
        "name": "node.{code}", "durable": node_queue.durable, "exclusive": False,
        "autoDelete": node_queue.auto_delete, "vhost": settings.vhost}, "bindingVersion": AMQP_BINDING}}

    def refs(names: list[str]) -> dict:
        return {n: {"$ref": f"#/components/messages/{n}"} for n in names}

    def op_messages(channel: str, names: list[str]) -> list[dict]:
        return [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names]

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "cs-hub: the interface hub of the customer-service network",
            "version": _version(),
            "description": (
                "The wire contract between a node (HQ, the second-line platform, a province) and the hub, "
                "written from the node's point of view: a node publishes to `hub.ingress` and consumes its "
                "own queue `node.{code}`. Payloads are XML documents in UTF-8, GBK or GB18030. A refused "
                "message is answered with a `hub.nack` in the sender's queue.\n\n"
                "Generated by `hub contract asyncapi -o docs/asyncapi.yaml` from config/message_types.yaml, "
                "config/nodes.yaml and the broker topology (hub/topology.py); do not edit by hand."),
        },
        "defaultContentType": "application/xml",
        "servers": {
            "broker": {
                "host": "{host}:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": "/{vhost}",
                "description": "The network's RabbitMQ; one virtual host per network.",
                "variables": {
                    "host": {"description": "Broker host name, from the operator.", "default": "127.0.0.1"},
                    "vhost": {"description": "Virtual host of the network.", "default": settings.vhost},
                },
                "security": [{"$ref": "#/components/securitySchemes/nodeUser"}],
            },
        },
        "channels": {
            "ingress": {
                "address": INGRESS,
                "title": "Ingress exchange",
                "description": "Every node publishes here, routing key = message type. Nodes may write only "
                               "to this exchange.",
                "messages": refs(accepted),
                "bindings": {"amqp": {"is": "routingKey", "exchange": {
                    "name": ingress.name, "type": ingress.type, "durable": ingress.durable,
                    "autoDelete": ingress.auto_delete, "vhost": settings.vhost}, "bindingVersion": AMQP_BINDING}},
            },
            "nodeQueue": {
                "address": "node.{code}",
                "title": "A node's delivery queue",
                "description": "The messages routed to the node, in its configured encoding. Only the node "
                               "may read its queue (a quorum queue; messages wait while the node is away).",
                "parameters": {"code": node_param},
                "messages": refs(delivered),
                "bindings": queue_binding,
            },
            "nack": {
                "address": "node.{code}",
                "title": "Negative acknowledgements (hub.nack)",
                "description": "A refused message is dead-lettered at the hub and answered with a hub.nack in "
                               "the sender's own queue: reason code, field, and the reason in Chinese and "
                               "English; correlation_id is the refused message's message_id.",
                "parameters": {"code": node_param},
                "messages": refs([NACK_TYPE]),
                "bindings": queue_binding,
            },
        },
        "operations": {
            "publishToHub": {
                "action": "send",
                "channel": {"$ref": "#/channels/ingress"},
                "title": "Publish a message to the hub",
                "description": "Publish persistent (delivery_mode 2) with publisher confirms, user_id set to "
                               "your node's AMQP user and a message_id that you never reuse.",
                "messages": op_messages("ingress", accepted),
                "bindings": {"amqp": {"deliveryMode": 2, "timestamp": True, "bindingVersion": AMQP_BINDING}},
            },
            "receiveDeliveries": {
                "action": "receive",
                "channel": {"$ref": "#/channels/nodeQueue"},
                "title": "Consume the node's queue",
                "description": "Acknowledge after the message is stored; an unacknowledged message comes back.",
                "messages": op_messages("nodeQueue", delivered),
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
            },
            "receiveNacks": {
                "action": "receive",
                "channel": {"$ref": "#/channels/nack"},
                "title": "Receive refusals of the node's messages",
                "messages": op_messages("nack", [NACK_TYPE]),
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
            },
        },
        "components": {
            "parameters": {
                "code": {"description": "Company code (公司编号) of the node: config/nodes.yaml.",
                         "enum": codes, "examples": [codes[0]]},
            },
            "securitySchemes": {
                "nodeUser": {"type": "userPassword",
                             "description": "Each node has its own AMQP user node-<code> (with the network's "
                                            "prefix), created by `hub topology apply`; it may write "
                                            "hub.ingress and read node.<code>, nothing else."},
            },
            "messages": {name: _message(cfg, name) for name in types},
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # shared sub-objects are written out, not as &anchors
        return True


def render(settings: Settings, cfg: HubConfig) -> str:
    """The document as YAML text (stable: the same configuration gives the same bytes)."""
    header = "# Generated by `hub contract asyncapi -o docs/asyncapi.yaml`; do not edit by hand.\n"
    return header + yaml.dump(asyncapi(settings, cfg), Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                              width=110)
