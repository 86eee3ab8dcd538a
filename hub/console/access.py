"""Who may use the console: users and roles from a file, signed expiring sessions, CSRF tokens.

Owns: the users file (YAML: `users: [{name, role, password_hash}]`, roles viewer / operator /
admin), password hashes (hashlib.scrypt, `scrypt$N$r$p$salt$hash`, compared in constant
time), the session cookie (HMAC-SHA256 over a small JSON: user, session id, expiry) and the
CSRF token bound to the session id. The signing key comes from HUB_CONSOLE_SECRET or
<data_dir>/secrets/console-session.key (created 0600).
Must not: log or return passwords, hashes or keys; read the users file anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocols.errors import ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"


#: What each role may do beyond reading.
CAN_ACT = frozenset({Role.operator, Role.admin})


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    role: Role
    password_hash: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$",
                               repr=False)


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[UserEntry] = Field(default_factory=list)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


#: Verified against when the user does not exist, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = hash_password("no such user", salt=b"0" * 16)


class Users:
    """The users file, re-read when it changes (a removed user loses access at the next request)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mtime: float | None = None
        self._users: dict[str, UserEntry] = {}

    def _load(self) -> dict[str, UserEntry]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._mtime, self._users = None, {}
            return self._users
        if mtime != self._mtime:
            raw = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
            try:
                parsed = UsersFile.model_validate(raw)
            except ValidationError as exc:
                # Without the input values: a mistyped entry would otherwise put its password hash
                # into the error, which reaches the logs and the (unauthenticated) 503 answer.
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                     for e in exc.errors(include_input=False, include_url=False))
                raise ConfigError(f"console users file {self.path} is invalid: {problems}",
                                  file=str(self.path)) from None
            self._users = {u.name: u for u in parsed.users}
            self._mtime = mtime
        return self._users

    def get(self, name: str) -> UserEntry | None:
        return self._load().get(name)

    def authenticate(self, name: str, password: str) -> UserEntry | None:
        user = self.get(name)
        ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
        return user if ok and user else None

    def put(self, name: str, role: Role, password: str) -> None:
        """Add or replace a user (the `hub console user` command)."""
        users = dict(self._load())
        users[name] = UserEntry(name=name, role=role, password_hash=hash_password(password))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"users": [u.model_dump(mode="json") for u in users.values()]}
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Console users (hub console user NAME --role ROLE); scrypt password hashes only.\n")
            yaml.safe_dump(data, f, allow_unicode=True, sort_keys=False)
        os.replace(tmp, self.path)
        self._mtime = None


def load_secret(data_dir: Path) -> bytes:
    """The session signing key: HUB_CONSOLE_SECRET, else a random key kept in data_dir/secrets."""
    env = os.environ.get("HUB_CONSOLE_SECRET")
    if env:
        return env.encode("utf-8")
    path = Path(data_dir) / "secrets" / "console-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode("utf-8")


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    expires: float


class Signer:
    """Signs and checks small JSON tokens: base64url(json).base64url(hmac).

    Sessions ended by logout are remembered (in memory, until they would have expired) and
    refused from then on: a copied cookie stops working when its owner logs out.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._revoked: dict[str, float] = {}

    def _mac(self, payload: bytes, purpose: str) -> str:
        mac = hmac.new(self.key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def sign(self, data: dict, purpose: str) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode(), purpose)}"

    def load(self, token: str | None, purpose: str) -> dict | None:
        if not token or token.count(".") != 1:
            return None
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode(), purpose)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or float(data.get("exp", 0)) < time.time():
            return None
        return data

    # sessions
    def new_session(self, user: str, ttl_s: float) -> tuple[str, Session]:
        s = Session(user, secrets.token_urlsafe(16), time.time() + ttl_s)
        return self.sign({"u": s.user, "sid": s.sid, "exp": s.expires}, "session"), s

    def session(self, cookie: str | None) -> Session | None:
        data = self.load(cookie, "session")
        if data is None or str(data.get("sid")) in self._revoked:
            return None
        return Session(str(data["u"]), str(data["sid"]), float(data["exp"]))

    def revoke(self, session: Session) -> None:
        now = time.time()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp >= now}
        self._revoked[session.sid] = session.expires

    # CSRF: bound to the session id, or (before login) to the login nonce of a pre-login cookie,
    # so that a token fetched by another browser (an attacker's) cannot log this one in (login CSRF)
    def csrf_for(self, session: Session | None, login_nonce: str = "") -> str:
        if session is None:
            return self.sign({"login": login_nonce, "exp": time.time() + 3600}, "csrf-login")
        return self._mac(session.sid.encode(), "csrf")

    def check_csrf(self, session: Session | None, token: str | None, login_nonce: str | None = None) -> bool:
        if not token:
            return False
        if session is None:
            data = self.load(token, "csrf-login")
            return (data is not None and bool(login_nonce)
                    and hmac.compare_digest(str(data.get("login", "")), login_nonce or ""))
        return hmac.compare_digest(token, self._mac(session.sid.encode(), "csrf"))


class LoginThrottle:
    """Failed logins counted per (client address, user name) and per client address in a sliding
    window; over the limit, a login is refused without checking the password until the oldest
    failure leaves the window. In memory: the console is one process."""

    def __init__(self, max_failures: int = 5, per_address: int = 20, window_s: float = 300.0,
                 clock=time.monotonic) -> None:
        self.limits = {"pair": max_failures, "addr": per_address}
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple, list[float]] = {}

    def _keys(self, address: str, user: str) -> list[tuple]:
        return [("pair", address, user), ("addr", address)]

    def wait_s(self, address: str, user: str) -> float:
        """0 when a login may be tried now, else the seconds until one may."""
        now, wait = self.clock(), 0.0
        for key in self._keys(address, user):
            recent = [t for t in self._failures.get(key, ()) if now - t < self.window_s]
            if recent:
                self._failures[key] = recent
            else:
                self._failures.pop(key, None)
            if len(recent) >= self.limits[key[0]]:
                wait = max(wait, recent[-self.limits[key[0]]] + self.window_s - now)
        return wait

    def failed(self, address: str, user: str) -> None:
        if len(self._failures) > 100_000:     # a flood of names: forget the oldest entries
            for key in list(self._failures)[:50_000]:
                del self._failures[key]
        for key in self._keys(address, user):
            self._failures.setdefault(key, []).append(self.clock())

    def succeeded(self, address: str, user: str) -> None:
        self._failures.pop(("pair", address, user), None)
