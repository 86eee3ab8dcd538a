"""The link between a province's own RabbitMQ and HQ's: two dynamic shovels, as definitions.

Why shovels and not federation (docs/scale-out.md says it at length): the link must be a
store-and-forward pipe from one named queue to one named exchange, defined and buffered on
the province side, that keeps the sender's identity. A shovel consumes `site.uplink` on the
province broker and republishes into HQ's `hub.ingress` with publisher confirms, acking the
province copy only after HQ confirmed it (ack-mode on-confirm): while the link is down the
messages stay in the province's quorum queue; after a cut the unconfirmed ones are
republished, and the hub's dedupe by message id drops the copies. It authenticates at HQ
as the province's own node user, so RabbitMQ's validated `user_id` still names the sender
and the hub's least-privilege permissions stay as they are.

Message paths (province broker P, HQ broker H; the province CRM talks only to P):
    CRM --(type)--> P:hub.ingress --#--> P:site.uplink ==shovel site-uplink-XX==> H:hub.ingress
    H:node.XX ==shovel site-downlink-XX==> P:node.XX --> CRM

Owns: the pure derivation of the province broker's definitions (`build_site_link`) for
`rabbitmqctl import_definitions` on the province node.
Must not: talk to a broker or read secrets (passwords come in as arguments).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from hub.broker_admin import HASHING_ALGORITHM, password_hash
from hub.topology import INGRESS, Binding, Exchange, Queue
from protocols.errors import ConfigError

if TYPE_CHECKING:
    from hub.nodes import Directory
    from hub.settings import Settings

#: The province-side queue that buffers everything bound for HQ while the link is down.
UPLINK_QUEUE = "site.uplink"
#: The local user the shovels use on the province broker (never on HQ's).
LINK_USER = "site-link"


def uplink_shovel(code: str) -> str:
    return f"site-uplink-{code}"


def downlink_shovel(code: str) -> str:
    return f"site-downlink-{code}"


def with_credentials(url: str, vhost: str, user: str, password: str) -> str:
    """`url` (scheme, host, port, query such as TLS options) with these credentials and vhost."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigError(f"{url!r} is not a broker URL; write amqp://HOST:PORT or amqps://HOST:PORT")
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(vhost, safe=""), parts.query, ""))


def build_site_link(settings: Settings, directory: Directory, code: str, *, hq_url: str, local_url: str,
                    node_password: str, link_password: str, reconnect_delay_s: int = 5,
                    prefetch: int = 1000) -> dict[str, Any]:
    """Definitions for the province broker of node `code`: its vhost, queues, users and two shovels.

    hq_url, local_url: how the province broker reaches HQ's broker and itself (no credentials;
    amqps:// with TLS options in the query for a real link). node_password: the node's AMQP
    password, the same at HQ and at the province (the CRM's credentials do not change when
    its site gets a broker). link_password: the local shovel user's password.
    """
    node = next((n for n in directory.nodes if n.code == code), None)
    if node is None:
        raise ConfigError(f"no node {code!r} in the directory; the site link is for a province node")
    if node.kind.value == "hq":
        raise ConfigError(f"node {code!r} is HQ itself; generate the link for a province node")
    if reconnect_delay_s < 1 or prefetch < 1:
        raise ConfigError("reconnect_delay_s and prefetch must be at least 1")
    vhost = settings.vhost
    node_user = settings.broker_user(node.amqp_user)
    link_user = settings.broker_user(LINK_USER)
    hq_as_node = with_credentials(hq_url, vhost, node_user, node_password)
    local = with_credentials(local_url, vhost, link_user, link_password)
    quorum = {"x-queue-type": "quorum"}
    queues = [Queue(name=UPLINK_QUEUE, arguments=quorum), Queue(name=node.queue, arguments=quorum)]
    common = {"src-protocol": "amqp091", "dest-protocol": "amqp091", "ack-mode": "on-confirm",
              "reconnect-delay": reconnect_delay_s, "src-prefetch-count": prefetch,
              "src-delete-after": "never"}
    shovels = {
        # The routing key (the message type) and every property, user_id included, are kept.
        uplink_shovel(code): {**common, "src-uri": local, "src-queue": UPLINK_QUEUE,
                              "dest-uri": hq_as_node, "dest-exchange": INGRESS},
        downlink_shovel(code): {**common, "src-uri": hq_as_node, "src-queue": node.queue,
                                "dest-uri": local, "dest-queue": node.queue},
    }
    return {
        "users": [
            {"name": node_user, "password_hash": password_hash(node_password), "hashing_algorithm": HASHING_ALGORITHM,
             "tags": [], "limits": {}},
            {"name": link_user, "password_hash": password_hash(link_password), "hashing_algorithm": HASHING_ALGORITHM,
             "tags": [], "limits": {}},
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": node_user, "vhost": vhost, "configure": "^$", "write": f"^{re.escape(INGRESS)}$",
             "read": f"^{re.escape(node.queue)}$"},
            {"user": link_user, "vhost": vhost, "configure": "^$",
             "write": f"^(amq\\.default|{re.escape(node.queue)})$", "read": f"^{re.escape(UPLINK_QUEUE)}$"},
        ],
        "topic_permissions": [],
        "parameters": [{"vhost": vhost, "component": "shovel", "name": name, "value": value}
                       for name, value in shovels.items()],
        "global_parameters": [],
        "policies": [],
        "queues": [{"vhost": vhost, **q.model_dump()} for q in queues],
        "exchanges": [{"vhost": vhost, **Exchange(name=INGRESS, type="topic").model_dump()}],
        "bindings": [{"vhost": vhost, **Binding(source=INGRESS, destination=UPLINK_QUEUE, routing_key="#").model_dump()}],
    }
