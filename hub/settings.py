"""Runtime settings of one hub process (config/hub.yaml), validated by pydantic.

Owns: broker and management endpoints, the state store URL, the hop's window and batch,
retry tiers and delivery limits, the data directory. Environment variables prefixed HUB_
override single values (HUB_AMQP_URL, HUB_VHOST, HUB_STORE_URL, HUB_DATA_DIR, ...), so a
test or a deployment points the same files at another broker without editing them.
Must not: hold business routing (routes/) or the node list (config/nodes.yaml).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class RetryTier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9]+$", description="Tier name, used in the queue name hub.retry.NAME",
                      examples=["5s"])
    delay_ms: int = Field(ge=100, le=24 * 3600 * 1000, description="How long a message waits in this tier")


class HopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefetch: int = Field(2000, ge=1, le=10_000, description="Unacknowledged inputs in flight (the window)")
    lanes: int = Field(4, ge=1, le=16, description="Consuming channels, each committing its own transactions; "
                       "more lanes hide commit latency, one lane keeps strict queue order")
    batch_max: int = Field(500, ge=1, le=5_000, description="Most inputs committed in one broker transaction")
    batch_linger_ms: float = Field(2.0, ge=0, le=1000, description="Longest wait to fill a batch before committing")
    heartbeat_s: int = Field(30, ge=0, le=600, description="AMQP heartbeat; the hop never blocks longer than this")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amqp_url: SecretStr = Field(SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
                                description="Broker URL (the vhost comes from `vhost`)")
    vhost: str = Field("cs-hub", description="RabbitMQ virtual host of this network")
    user_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$",
                             description="Prefix of every AMQP user the topology creates (users are broker-wide, "
                             "vhosts are not: two networks or test runs on one broker need different prefixes)",
                             examples=["staging."])
    management_url: str = Field("http://127.0.0.1:15672", description="RabbitMQ management API base URL")
    management_user: str = Field("guest")
    management_password: SecretStr = Field(SecretStr("guest"))
    store_url: str = Field("sqlite:///var/hub.sqlite3",
                           description="State store: sqlite:///PATH (default) or postgresql+psycopg://...")
    data_dir: Path = Field(Path("var"), description="Where the hub keeps its SQLite file, secrets and spools")
    config_dir: Path = Field(Path("config"), description="Folder of nodes.yaml, message_types.yaml and tables")
    routes_dir: Path = Field(Path("routes"), description="Folder of route files (*.yaml)")
    hop: HopSettings = Field(default_factory=HopSettings)
    retry_tiers: list[RetryTier] = Field(
        default_factory=lambda: [
            RetryTier(name="5s", delay_ms=5_000),
            RetryTier(name="30s", delay_ms=30_000),
            RetryTier(name="5m", delay_ms=300_000),
            RetryTier(name="30m", delay_ms=1_800_000),
        ],
        description="Backoff tiers, shortest first; attempt N waits in tier min(N, len)-1",
    )
    delivery_limit: int = Field(20, ge=1, le=1000,
                                description="Broker-side redelivery limit before a message is parked in hub.dlq")
    max_attempts: int = Field(5, ge=1, le=100, description="Default retries of a transient failure per route")
    metrics_port: int | None = Field(None, ge=1, le=65535,
                                     description="Serve the hop's Prometheus metrics on this port (None: off)")
    metrics_host: str = Field("127.0.0.1", description="Address of the metrics port (keep it off public networks)")

    @field_validator("retry_tiers")
    @classmethod
    def _tiers_sorted(cls, tiers: list[RetryTier]) -> list[RetryTier]:
        if not tiers:
            raise ValueError("at least one retry tier is required")
        if [t.delay_ms for t in tiers] != sorted(t.delay_ms for t in tiers):
            raise ValueError("retry tiers must be listed shortest delay first")
        return tiers

    def broker_user(self, node_user: str) -> str:
        """The broker-wide AMQP user name of a node's logical user (node-44 -> PREFIXnode-44)."""
        return self.user_prefix + node_user

    def node_user(self, broker_user: str | None) -> str | None:
        """The node's logical user from an authenticated broker user; None when not ours."""
        if not broker_user or not broker_user.startswith(self.user_prefix):
            return None
        return broker_user[len(self.user_prefix):]

    def amqp_url_for_vhost(self, user: str | None = None, password: str | None = None) -> str:
        """The broker URL with this settings' vhost (and optionally other credentials)."""
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.amqp_url.get_secret_value())
        netloc = parts.netloc
        if user is not None:
            host = netloc.rsplit("@", 1)[-1]
            netloc = f"{quote(user, safe='')}:{quote(password or '', safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, "/" + quote(self.vhost, safe=""), parts.query, ""))


ENV_KEYS = {
    "HUB_AMQP_URL": "amqp_url",
    "HUB_VHOST": "vhost",
    "HUB_USER_PREFIX": "user_prefix",
    "HUB_MANAGEMENT_URL": "management_url",
    "HUB_STORE_URL": "store_url",
    "HUB_DATA_DIR": "data_dir",
    "HUB_CONFIG_DIR": "config_dir",
    "HUB_ROUTES_DIR": "routes_dir",
    "HUB_METRICS_PORT": "metrics_port",
}


def load_settings(path: str | Path | None = None, **overrides) -> Settings:
    """Settings from a YAML file (optional), then HUB_* environment variables, then overrides."""
    data: dict = {}
    p = Path(path) if path else Path(os.environ.get("HUB_SETTINGS", "config/hub.yaml"))
    if p.exists():
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    for env, key in ENV_KEYS.items():
        if os.environ.get(env):
            data[key] = os.environ[env]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(data)
