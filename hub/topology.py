"""The broker topology as code: exchanges, queues, bindings, users and permissions of one vhost.

Owns: the names every other module uses to reach the broker (hub.ingress, hub.deliver, hub.retry, ...),
the pure derivation of the topology from Settings and the node Directory (`build_topology`), and
the three ways to meet a broker with it: `apply` (idempotent declare), `export_definitions` (JSON
for `rabbitmqctl import_definitions`) and `diff` (human-readable drift). Also the node passwords'
storage (`load_or_create_passwords`).
Must not: route or touch messages, and never delete anything on the broker: apply creates and
corrects what it safely can, and reports the rest as drift for an operator to decide.

Message paths:
    node --(type)--> hub.ingress (topic) --#--> hub.in
    hub --(queue name)--> hub.deliver (direct, AE hub.unroutable) --> node.<code> | adapter.<name> | hub.in
    unroutable --> hub.unroutable (fanout) --> hub.dlq;  dead letters --> hub.dlx (fanout) --> hub.dlq
    retry: hub --(queue name, header x-retry-tier)--> hub.retry (headers) --> hub.retry.<tier>
           --TTL--> hub.requeue (direct, original routing key) --> the queue it came from
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import pika
import pika.exceptions
from pydantic import BaseModel, ConfigDict, Field

from hub.broker_admin import HASHING_ALGORITHM, BrokerAdmin, password_hash, password_matches
from protocols.errors import ConfigError, HubError, ReasonCode, TransientFailure

if TYPE_CHECKING:
    from hub.nodes import Directory
    from hub.settings import Settings

log = logging.getLogger(__name__)

INGRESS = "hub.ingress"
HUB_IN = "hub.in"
DELIVER = "hub.deliver"
UNROUTABLE = "hub.unroutable"
DLX = "hub.dlx"
DLQ = "hub.dlq"
RETRY = "hub.retry"
REQUEUE = "hub.requeue"
HUB_USER = "cs-hub"
#: Header that picks the retry tier of a message published to hub.retry.
RETRY_TIER_HEADER = "x-retry-tier"
#: RabbitMQ's headers exchange ignores binding keys starting with "x-" under plain "all"
#: (every tier would get every message); "all-with-x" makes x-retry-tier count.
RETRY_MATCH = "all-with-x"

_ADAPTER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def retry_queue(tier: str) -> str:
    return f"hub.retry.{tier}"


def adapter_queue(name: str) -> str:
    return f"adapter.{name}"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Exchange(_Frozen):
    name: str
    type: Literal["direct", "topic", "fanout", "headers"]
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)


class Queue(_Frozen):
    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)


class Binding(_Frozen):
    source: str
    destination: str
    destination_type: Literal["queue", "exchange"] = "queue"
    routing_key: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.source, self.destination_type, self.destination, self.routing_key,
                json.dumps(self.arguments, sort_keys=True))

    def describe(self) -> str:
        args = f", arguments {json.dumps(self.arguments, sort_keys=True)}" if self.arguments else ""
        return (f"binding {self.source} -> {self.destination_type} {self.destination} "
                f"(routing key {self.routing_key!r}{args})")


class User(_Frozen):
    name: str
    tags: list[str] = Field(default_factory=list)


class Permission(_Frozen):
    user: str
    configure: str
    write: str
    read: str


class Topology(_Frozen):
    """Everything the hub needs in its vhost; equal inputs give an equal Topology."""

    vhost: str
    exchanges: list[Exchange]
    queues: list[Queue]
    bindings: list[Binding]
    users: list[User]
    permissions: list[Permission]

    @property
    def user_names(self) -> list[str]:
        return [u.name for u in self.users]

    def queue(self, name: str) -> Queue:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)


# -- the pure part ---------------------------------------------------------------------------------


def build_topology(settings: Settings, directory: Directory, adapters: Sequence[str] = ()) -> Topology:
    """Derive the topology of `settings.vhost` from the settings, the nodes and the adapter names."""
    for name in adapters:
        if not _ADAPTER_NAME.match(name):
            raise ConfigError(f"adapter name {name!r} cannot name a queue; use lower-case letters, digits, "
                              f"'-' or '_' (it becomes the queue {adapter_queue(name)!r})")
    if len(set(adapters)) != len(adapters):
        raise ConfigError(f"adapter names must be unique, got {list(adapters)}")

    def consumer_args(max_length: int | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.delivery_limit,
            "x-dead-letter-exchange": DLX,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        if max_length is not None:
            args["x-max-length"] = max_length
        return args

    exchanges = [
        Exchange(name=INGRESS, type="topic"),
        Exchange(name=DELIVER, type="direct", arguments={"alternate-exchange": UNROUTABLE}),
        Exchange(name=UNROUTABLE, type="fanout"),
        Exchange(name=DLX, type="fanout"),
        Exchange(name=RETRY, type="headers"),
        Exchange(name=REQUEUE, type="direct"),
    ]
    consumers = [Queue(name=HUB_IN, arguments=consumer_args())]
    consumers += [Queue(name=n.queue, arguments=consumer_args(n.limits.max_queue_length)) for n in directory.nodes]
    consumers += [Queue(name=adapter_queue(a), arguments=consumer_args()) for a in adapters]
    tiers = [
        Queue(name=retry_queue(t.name), arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": t.delay_ms,
            "x-dead-letter-exchange": REQUEUE,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
        for t in settings.retry_tiers
    ]
    queues = [*consumers, *tiers, Queue(name=DLQ, arguments={"x-queue-type": "quorum"})]

    bindings = [Binding(source=INGRESS, destination=HUB_IN, routing_key="#")]
    bindings += [Binding(source=DELIVER, destination=q.name, routing_key=q.name) for q in consumers]
    bindings += [Binding(source=UNROUTABLE, destination=DLQ), Binding(source=DLX, destination=DLQ)]
    bindings += [Binding(source=RETRY, destination=retry_queue(t.name),
                         arguments={"x-match": RETRY_MATCH, RETRY_TIER_HEADER: t.name})
                 for t in settings.retry_tiers]
    bindings += [Binding(source=REQUEUE, destination=q.name, routing_key=q.name) for q in consumers]

    users = [User(name=settings.broker_user(HUB_USER), tags=["management"])]
    permissions = [Permission(user=settings.broker_user(HUB_USER), configure=".*", write=".*", read=".*")]
    for n in directory.nodes:
        users.append(User(name=settings.broker_user(n.amqp_user)))
        permissions.append(Permission(user=settings.broker_user(n.amqp_user), configure="^$", write=f"^{re.escape(INGRESS)}$",
                                      read=f"^{re.escape(n.queue)}$"))
    return Topology(vhost=settings.vhost, exchanges=exchanges, queues=queues, bindings=bindings,
                    users=users, permissions=permissions)


def export_definitions(topology: Topology, passwords: dict[str, str]) -> dict[str, Any]:
    """A definitions document for `rabbitmqctl import_definitions` (users carry salted hashes)."""
    _require_passwords(topology, passwords)
    vhost = topology.vhost
    return {
        "users": [{"name": u.name, "password_hash": password_hash(passwords[u.name]),
                   "hashing_algorithm": HASHING_ALGORITHM, "tags": list(u.tags), "limits": {}}
                  for u in topology.users],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": p.user, "vhost": vhost, "configure": p.configure, "write": p.write,
                         "read": p.read} for p in topology.permissions],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "queues": [{"vhost": vhost, **q.model_dump()} for q in topology.queues],
        "exchanges": [{"vhost": vhost, **x.model_dump()} for x in topology.exchanges],
        "bindings": [{"vhost": vhost, **b.model_dump()} for b in topology.bindings],
    }


# -- passwords -------------------------------------------------------------------------------------


def drop_prefixed_users(admin, settings: Settings) -> int:
    """Delete the broker users of a throw-away network (a benchmark's or a demo's own prefix).

    Users are broker-wide: a run that applied its topology with the default (empty) prefix
    would have reset the passwords of the real network's users. Refuses an empty prefix.
    """
    if not settings.user_prefix:
        raise ValueError("refusing to delete users without a user_prefix: they may be a real network's")
    gone = 0
    for u in admin.list_users():
        if u["name"].startswith(settings.user_prefix):
            admin.delete_user(u["name"])
            gone += 1
    return gone


def password_env_var(user: str) -> str:
    """HUB_PASSWORD_<USER>: upper case, every character that is not a letter or digit becomes '_'."""
    return "HUB_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", user.upper())


def load_or_create_passwords(settings: Settings, users: Iterable[str]) -> dict[str, str]:
    """Password of each user: env HUB_PASSWORD_<USER>, else <data_dir>/secrets/<user>.password,
    else a new random one written there with mode 0600 (so a re-run keeps the same password)."""
    folder = Path(settings.data_dir) / "secrets"
    passwords: dict[str, str] = {}
    for user in users:
        from_env = os.environ.get(password_env_var(user))
        if from_env:
            passwords[user] = from_env
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", user):
            raise ConfigError(f"user name {user!r} cannot name a secrets file; use letters, digits, '.', '-', '_'")
        path = folder / f"{user}.password"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; read theirs below
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(secrets.token_urlsafe(24) + "\n")
                log.info("created a password for user %s in %s", user, path)
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("password file %s is readable by others; run: chmod 600 %s", path, path)
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise ConfigError(f"password file {path} is empty; delete it to have a new password created, "
                              f"or write the password into it")
        passwords[user] = value
    return passwords


def _require_passwords(topology: Topology, passwords: dict[str, str]) -> None:
    missing = [u for u in topology.user_names if not passwords.get(u)]
    if missing:
        raise ConfigError(f"no password for user(s) {', '.join(missing)}; build the passwords with "
                          f"load_or_create_passwords(settings, topology.user_names)")


# -- I/O: apply ------------------------------------------------------------------------------------


def apply(topology: Topology, settings: Settings, passwords: dict[str, str]) -> list[str]:
    """Create or correct the topology on the broker; safe to repeat, a no-op when nothing drifted.

    Returns the drift apply could not fix without destroying something (a queue or exchange that
    exists with other arguments); an empty list means the broker now matches the topology.
    Extra objects on the broker are left alone; `diff` lists them.
    """
    _require_passwords(topology, passwords)
    vhost = topology.vhost
    with BrokerAdmin.from_settings(settings) as admin:
        if not admin.vhost_exists(vhost):
            admin.create_vhost(vhost, description="customer-service interface hub (hub.topology)")
            log.info("created vhost %s", vhost)
        for user in topology.users:
            have = admin.get_user(user.name)
            if (have is None or sorted(have["tags"]) != sorted(user.tags)
                    or have.get("hashing_algorithm") != HASHING_ALGORITHM
                    or not password_matches(passwords[user.name], have.get("password_hash", ""))):
                admin.put_user(user.name, passwords[user.name], user.tags)
                log.info("%s user %s", "created" if have is None else "updated", user.name)
        current = {p["user"]: p for p in admin.list_permissions(vhost)}
        for perm in topology.permissions:
            have_p = current.get(perm.user)
            if have_p is None or any(have_p[k] != getattr(perm, k) for k in ("configure", "write", "read")):
                admin.set_permissions(perm.user, vhost, perm.configure, perm.write, perm.read)
                log.info("set permissions of %s on %s", perm.user, vhost)
        return _declare(topology, settings, admin)


def _declare(topology: Topology, settings: Settings, admin: BrokerAdmin) -> list[str]:
    drift: list[str] = []
    broker: dict[str, Any] | None = None

    def explain(kind: str, name: str, error: pika.exceptions.ChannelClosedByBroker) -> list[str]:
        nonlocal broker
        broker = broker or admin.get_definitions(topology.vhost) or {}
        if kind == "exchange":
            want_x = next(x for x in topology.exchanges if x.name == name)
            lines = _exchange_drift(want_x, _by_name(broker.get("exchanges", [])).get(name))
        else:
            want_q = topology.queue(name)
            lines = _queue_drift(want_q, _by_name(broker.get("queues", [])).get(name))
        lines = lines or [f"{kind} {name!r} differs from the topology"]
        return [f"{line}; apply left it as it is ({error.reply_text}). To fix it, delete and re-create the "
                f"{kind} (messages in it are lost) or change the topology" for line in lines]

    conn = _connect(settings, topology.vhost)
    try:
        ch = conn.channel()
        for x in topology.exchanges:
            try:
                ch.exchange_declare(x.name, x.type, durable=x.durable, auto_delete=x.auto_delete,
                                    internal=x.internal, arguments=dict(x.arguments))
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 406:
                    raise _channel_error(exc, f"declare exchange {x.name!r}") from exc
                drift += explain("exchange", x.name, exc)
                ch = conn.channel()
        for q in topology.queues:
            try:
                ch.queue_declare(q.name, durable=q.durable, auto_delete=q.auto_delete, arguments=dict(q.arguments))
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 406:
                    raise _channel_error(exc, f"declare queue {q.name!r}") from exc
                drift += explain("queue", q.name, exc)
                ch = conn.channel()
        for b in topology.bindings:
            try:
                if b.destination_type == "queue":
                    # routing_key must be explicit: pika turns None into the queue's name
                    ch.queue_bind(b.destination, b.source, routing_key=b.routing_key, arguments=dict(b.arguments))
                else:
                    ch.exchange_bind(b.destination, b.source, routing_key=b.routing_key,
                                     arguments=dict(b.arguments))
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise _channel_error(exc, f"create the {b.describe()}") from exc
    finally:
        if conn.is_open:
            conn.close()
    for line in drift:
        log.warning("topology drift: %s", line)
    return drift


def _connect(settings: Settings, vhost: str) -> pika.BlockingConnection:
    """A connection to `vhost` with the settings' AMQP credentials; errors name host and vhost, never the password."""
    url = settings.model_copy(update={"vhost": vhost}).amqp_url_for_vhost()
    where = f"{urlsplit(url).hostname}:{urlsplit(url).port or 5672} (vhost {vhost!r})"
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": "hub.topology"}
    try:
        return pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise ConfigError(f"RabbitMQ at {where} refused the login of amqp_url; check the user and "
                          f"password in amqp_url (config/hub.yaml or HUB_AMQP_URL)") from exc
    except pika.exceptions.ProbableAccessDeniedError as exc:
        raise ConfigError(f"the amqp_url user has no access to vhost {vhost!r} at {where}; grant it "
                          f"permissions there (the management user gets them when apply creates the vhost)") from exc
    except pika.exceptions.AMQPConnectionError as exc:
        raise TransientFailure(f"cannot connect to RabbitMQ at {where} ({type(exc).__name__}); "
                               f"check that the broker is running and amqp_url is right") from exc


def _channel_error(exc: pika.exceptions.ChannelClosedByBroker, what: str) -> HubError:
    return HubError(f"RabbitMQ refused to {what}: {exc.reply_code} {exc.reply_text}",
                    reason=ReasonCode.PARTNER_FAULT, value=exc.reply_code)


# -- I/O: diff -------------------------------------------------------------------------------------


def diff(topology: Topology, settings: Settings) -> list[str]:
    """Human-readable differences between the broker and the topology; empty when they match.

    Users and permissions of the settings' own administrative identities (management_user and the
    user of amqp_url) are not drift: they are how the hub reaches the broker, not part of the network.
    """
    vhost = topology.vhost
    lines: list[str] = []
    with BrokerAdmin.from_settings(settings) as admin:
        broker = admin.get_definitions(vhost)
        users = {u["name"]: u for u in admin.list_users()}
        perms = admin.list_permissions(vhost) if broker is not None else []
    if broker is None:
        lines.append(f"vhost {vhost!r} is missing")
        broker = {}

    have_x = {n: x for n, x in _by_name(broker.get("exchanges", [])).items() if n and not n.startswith("amq.")}
    want_x = {x.name: x for x in topology.exchanges}
    for name, want in want_x.items():
        lines += _exchange_drift(want, have_x.get(name))
    lines += [f"extra exchange {n!r} ({have_x[n].get('type')}) is not in the topology"
              for n in sorted(have_x.keys() - want_x.keys())]

    have_q = {n: q for n, q in _by_name(broker.get("queues", [])).items() if not n.startswith("amq.")}
    want_q = {q.name: q for q in topology.queues}
    for name, want in want_q.items():
        lines += _queue_drift(want, have_q.get(name))
    extra_q = sorted(have_q.keys() - want_q.keys())
    lines += [f"extra queue {n!r} is not in the topology" for n in extra_q]

    have_b = {}
    for b in broker.get("bindings", []):
        bound = Binding(source=b["source"], destination=b["destination"], destination_type=b["destination_type"],
                        routing_key=b["routing_key"], arguments=b.get("arguments") or {})
        have_b[bound.key] = bound
    want_b = {b.key: b for b in topology.bindings}
    lines += [f"{want_b[k].describe()} is missing" for k in want_b if k not in have_b]
    lines += [f"extra {have_b[k].describe()} is not in the topology" for k in have_b
              if k not in want_b and have_b[k].source in want_x
              and not (have_b[k].destination_type == "queue" and have_b[k].destination in extra_q)]

    for user in topology.users:
        have_u = users.get(user.name)
        if have_u is None:
            lines.append(f"user {user.name!r} is missing")
        elif sorted(have_u["tags"]) != sorted(user.tags):
            lines.append(f"user {user.name!r} has tags {sorted(have_u['tags'])} on the broker, "
                         f"the topology wants {sorted(user.tags)}")
    have_p = {p["user"]: p for p in perms}
    want_p = {p.user: p for p in topology.permissions}
    for user, want in want_p.items():
        got = have_p.get(user)
        if got is None:
            lines.append(f"permissions of user {user!r} on vhost {vhost!r} are missing")
            continue
        for kind in ("configure", "write", "read"):
            if got[kind] != getattr(want, kind):
                lines.append(f"user {user!r} may {kind} {got[kind]!r} on vhost {vhost!r}, "
                             f"the topology wants {getattr(want, kind)!r}")
    admins = _admin_users(settings)
    lines += [f"user {u!r} has permissions on vhost {vhost!r} but is not in the topology"
              for u in sorted(have_p.keys() - want_p.keys() - admins)]
    return lines


def _admin_users(settings: Settings) -> set[str]:
    amqp_user = urlsplit(settings.amqp_url.get_secret_value()).username
    return {settings.management_user, *([amqp_user] if amqp_user else [])}


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in items}


def _exchange_drift(want: Exchange, have: dict[str, Any] | None) -> list[str]:
    if have is None:
        return [f"exchange {want.name!r} is missing"]
    lines = [f"exchange {want.name!r} is {field} {have.get(field)!r} on the broker, the topology wants "
             f"{getattr(want, field)!r}"
             for field in ("type", "durable", "auto_delete", "internal") if have.get(field) != getattr(want, field)]
    return lines + _argument_drift("exchange", want.name, want.arguments, have.get("arguments") or {})


def _queue_drift(want: Queue, have: dict[str, Any] | None) -> list[str]:
    if have is None:
        return [f"queue {want.name!r} is missing"]
    lines = [f"queue {want.name!r} is {field} {have.get(field)!r} on the broker, the topology wants "
             f"{getattr(want, field)!r}"
             for field in ("durable", "auto_delete") if have.get(field) != getattr(want, field)]
    return lines + _argument_drift("queue", want.name, want.arguments, have.get("arguments") or {})


def _argument_drift(kind: str, name: str, want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    lines = []
    for arg in sorted(want.keys() | have.keys()):
        if arg not in have:
            lines.append(f"{kind} {name!r} lacks argument {arg}; the topology wants {want[arg]!r}")
        elif arg not in want:
            lines.append(f"{kind} {name!r} has argument {arg}={have[arg]!r} that the topology does not set")
        elif have[arg] != want[arg]:
            lines.append(f"{kind} {name!r} has argument {arg}={have[arg]!r} on the broker, "
                         f"the topology wants {want[arg]!r}")
    return lines
