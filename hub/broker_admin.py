"""Client of the RabbitMQ management HTTP API: vhosts, users, permissions, definitions, queue figures.

Owns: the HTTP session to the management plugin, the translation of every HTTP or network failure
into a HubError sentence (in `BrokerAdmin._request`, the only place that talks HTTP), and the
`rabbit_password_hashing_sha256` password hash, so passwords never travel in clear text and never
reach a log line.
Must not: decide what the topology is (hub.topology does) or declare queues and exchanges (AMQP does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from protocols.errors import ConfigError, HubError, ReasonCode, TransientFailure

if TYPE_CHECKING:
    from hub.settings import Settings

log = logging.getLogger(__name__)

#: RabbitMQ's default hashing algorithm; the only one this module produces.
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's stored form of a password: base64(salt4 + sha256(salt4 + utf-8 password))."""
    salt = os.urandom(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError(f"a RabbitMQ password salt is 4 bytes, got {len(salt)}")
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode("ascii")


def password_matches(password: str, stored_hash: str) -> bool:
    """Whether `password` is the one behind a sha256 `stored_hash` (lets apply skip a needless reset)."""
    try:
        raw = base64.b64decode(stored_hash, validate=True)
    except ValueError:
        return False
    if len(raw) != 4 + 32:
        return False
    return hmac.compare_digest(password_hash(password, raw[:4]), stored_hash)


@dataclass(frozen=True)
class QueueFigures:
    """One queue as the console shows it; rates are None until the broker has sampled them."""

    name: str
    type: str
    messages: int
    messages_unacknowledged: int
    consumers: int
    publish_rate: float | None = None
    deliver_rate: float | None = None
    ack_rate: float | None = None


def _rate(stats: dict[str, Any], key: str) -> float | None:
    details = stats.get(f"{key}_details")
    return float(details["rate"]) if isinstance(details, dict) and "rate" in details else None


class BrokerAdmin:
    """A session on the management API; use as a context manager or call close()."""

    def __init__(self, base_url: str, user: str, password: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.timeout = timeout
        self._session = requests.Session()
        self._session.auth = (user, password)
        self._session.headers["content-type"] = "application/json"

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 10.0) -> BrokerAdmin:
        return cls(settings.management_url, settings.management_user,
                   settings.management_password.get_secret_value(), timeout=timeout)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> BrokerAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one place that talks HTTP ---------------------------------------------------------

    def _request(self, method: str, path: str, *, what: str, json: Any = None,
                 missing_ok: bool = False, params: dict[str, str] | None = None) -> Any:
        """Send one request; return the decoded JSON (None for an empty body or an allowed 404).

        `what` names the operation in error sentences ("create vhost 'x'"); bodies are never
        logged or quoted, because user bodies carry password hashes.
        """
        url = f"{self.base_url}/api/{path}"
        try:
            resp = self._session.request(method, url, json=json, params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise TransientFailure(
                f"The RabbitMQ management API at {self.base_url} did not answer within {self.timeout:g}s "
                f"while trying to {what}; check that RabbitMQ and its management plugin are running.",
                reason=ReasonCode.PARTNER_TIMEOUT, value=self.base_url,
            ) from exc
        except requests.RequestException as exc:
            raise TransientFailure(
                f"Cannot reach the RabbitMQ management API at {self.base_url} to {what} "
                f"({type(exc).__name__}); check management_url and that rabbitmq_management is enabled.",
                value=self.base_url,
            ) from exc
        log.debug("management API %s %s -> %s", method, path, resp.status_code)
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code >= 400:
            reason = _reason_text(resp)
            if resp.status_code in (401, 403):
                raise ConfigError(
                    f"The RabbitMQ management API refused user {self.user!r} the right to {what} "
                    f"(HTTP {resp.status_code}: {reason}); check management_user and management_password "
                    f"in config/hub.yaml, and that the user has the administrator tag."
                )
            if resp.status_code >= 500:
                raise TransientFailure(
                    f"The RabbitMQ management API failed to {what} (HTTP {resp.status_code}: {reason}); "
                    f"retry, and look at the RabbitMQ log if it persists.",
                    value=resp.status_code,
                )
            raise HubError(
                f"The RabbitMQ management API rejected the request to {what} "
                f"(HTTP {resp.status_code}: {reason}).",
                reason=ReasonCode.PARTNER_FAULT, value=resp.status_code,
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise HubError(
                f"The RabbitMQ management API answered the request to {what} with something that is not "
                f"JSON (content-type {resp.headers.get('content-type')!r}); is {self.base_url} really "
                f"the management API?",
                reason=ReasonCode.PARTNER_FAULT,
            ) from exc

    # -- vhosts --------------------------------------------------------------------------------

    def vhost_exists(self, vhost: str) -> bool:
        return self._request("GET", f"vhosts/{_q(vhost)}", what=f"read vhost {vhost!r}", missing_ok=True) is not None

    def create_vhost(self, vhost: str, description: str = "") -> None:
        """Create `vhost`; a no-op when it exists already."""
        body = {"description": description} if description else {}
        self._request("PUT", f"vhosts/{_q(vhost)}", what=f"create vhost {vhost!r}", json=body)

    def delete_vhost(self, vhost: str) -> None:
        """Delete `vhost` with everything in it; a no-op when it does not exist."""
        self._request("DELETE", f"vhosts/{_q(vhost)}", what=f"delete vhost {vhost!r}", missing_ok=True)

    def list_vhosts(self) -> list[str]:
        return [v["name"] for v in self._request("GET", "vhosts", what="list vhosts")]

    # -- users ---------------------------------------------------------------------------------

    def get_user(self, name: str) -> dict[str, Any] | None:
        """The user record (name, tags as a list, password_hash, hashing_algorithm) or None."""
        user = self._request("GET", f"users/{_q(name)}", what=f"read user {name!r}", missing_ok=True)
        if user is not None:
            user["tags"] = _tags(user.get("tags"))
        return user

    def list_users(self) -> list[dict[str, Any]]:
        users = self._request("GET", "users", what="list users")
        for u in users:
            u["tags"] = _tags(u.get("tags"))
        return users

    def put_user(self, name: str, password: str, tags: list[str] | tuple[str, ...] = ()) -> None:
        """Create or update a user; the password is sent as a salted hash, never in clear text."""
        self.put_user_hash(name, password_hash(password), tags)

    def put_user_hash(self, name: str, stored_hash: str, tags: list[str] | tuple[str, ...] = ()) -> None:
        body = {"password_hash": stored_hash, "hashing_algorithm": HASHING_ALGORITHM, "tags": ",".join(tags)}
        self._request("PUT", f"users/{_q(name)}", what=f"create or update user {name!r}", json=body)

    def delete_user(self, name: str) -> None:
        """Delete a user; a no-op when it does not exist."""
        self._request("DELETE", f"users/{_q(name)}", what=f"delete user {name!r}", missing_ok=True)

    # -- permissions ---------------------------------------------------------------------------

    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> None:
        self._request("PUT", f"permissions/{_q(vhost)}/{_q(user)}",
                      what=f"set permissions of user {user!r} on vhost {vhost!r}",
                      json={"configure": configure, "write": write, "read": read})

    def clear_permissions(self, user: str, vhost: str) -> None:
        self._request("DELETE", f"permissions/{_q(vhost)}/{_q(user)}",
                      what=f"clear permissions of user {user!r} on vhost {vhost!r}", missing_ok=True)

    def list_permissions(self, vhost: str | None = None) -> list[dict[str, str]]:
        """Permissions on one vhost (or on all vhosts): dicts with user, vhost, configure, write, read."""
        if vhost is None:
            return self._request("GET", "permissions", what="list permissions")
        perms = self._request("GET", f"vhosts/{_q(vhost)}/permissions",
                              what=f"list permissions on vhost {vhost!r}", missing_ok=True)
        return perms or []

    def user_permissions(self, user: str) -> list[dict[str, str]]:
        """Permissions of one user on every vhost (empty when the user does not exist)."""
        perms = self._request("GET", f"users/{_q(user)}/permissions",
                              what=f"list permissions of user {user!r}", missing_ok=True)
        return perms or []

    # -- definitions and figures ---------------------------------------------------------------

    def get_definitions(self, vhost: str) -> dict[str, Any] | None:
        """`GET /api/definitions/{vhost}`: queues, exchanges, bindings, policies; None if no such vhost."""
        return self._request("GET", f"definitions/{_q(vhost)}", what=f"read the definitions of vhost {vhost!r}",
                             missing_ok=True)

    def list_queues(self, vhost: str) -> list[QueueFigures]:
        """Depth, unacknowledged count, consumers and (when sampled) rates of every queue of `vhost`."""
        rows = self._request("GET", f"queues/{_q(vhost)}", what=f"list the queues of vhost {vhost!r}",
                             missing_ok=True) or []
        figures = []
        for q in rows:
            stats = q.get("message_stats") or {}
            figures.append(QueueFigures(
                name=q["name"],
                type=q.get("type", "classic"),
                messages=int(q.get("messages") or 0),
                messages_unacknowledged=int(q.get("messages_unacknowledged") or 0),
                consumers=int(q.get("consumers") or 0),
                publish_rate=_rate(stats, "publish"),
                deliver_rate=_rate(stats, "deliver_get"),
                ack_rate=_rate(stats, "ack"),
            ))
        return figures

    def overview(self) -> dict[str, Any]:
        """`GET /api/overview`; a cheap way to prove the API answers and the credentials work."""
        return self._request("GET", "overview", what="read the broker overview")


def _q(segment: str) -> str:
    """Percent-encode one path segment; vhost names may contain '/' (the default vhost is '/')."""
    return quote(segment, safe="")


def _tags(tags: Any) -> list[str]:
    """Tags come as a list from 3.9+ and as a comma-separated string from older brokers."""
    if isinstance(tags, str):
        return [t for t in tags.split(",") if t]
    return list(tags or [])


def _reason_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or "no reason given"
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("error") or resp.reason)
    return resp.reason or "no reason given"
