"""The WAP endpoint's configuration (config/wap.yaml): one pydantic model, every field described.

Owns: where the endpoint listens, how long it waits for a province's answer or receipt, the
largest request it reads, and the configured clients (the WAP system, 网上营业厅) with their
credentials and rate limits. Client passwords are never stored: the file holds the SHA-256 of
a random secret of at least 16 characters (`hub wap hash-password` prints it), compared in
constant time. The JSON schema for editors comes from this model (`hub wap schema`).
Must not: open sockets or read anything but this file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.yamlsource import LocatedValueError, load_model


class WapClient(BaseModel):
    """One HTTP client of the endpoint (HTTP Basic authentication)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="User name of the client in HTTP Basic "
                      "authentication; also names it in logs and metrics", examples=["wap-hall"])
    password_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the client's secret, "
                                 "a random string of at least 16 characters (`hub wap hash-password`)",
                                 examples=["5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"])
    rate_per_s: float = Field(20.0, gt=0, le=10_000, description="Requests per second allowed on average "
                              "(token bucket); more are refused with HTTP 429 CLIENT_RATE_LIMITED", examples=[50])
    burst: int = Field(40, ge=1, le=100_000, description="Requests allowed back to back (bucket size)",
                       examples=[100])
    enabled: bool = Field(True, description="A disabled client is refused like a wrong password")

    def password_ok(self, password: str) -> bool:
        digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, self.password_sha256)


class WapConfig(BaseModel):
    """config/wap.yaml."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(1, ge=1, le=1, description="Format version of this file")
    host: str = Field("127.0.0.1", description="Address the HTTP endpoint listens on", examples=["0.0.0.0"])
    port: int = Field(8088, ge=0, le=65535, description="TCP port (0: any free port, for tests)", examples=[8088])
    answer_timeout_s: float = Field(10.0, gt=0, le=120, description="How long a query waits for the province's "
                                    "answer; then HTTP 504 PARTNER_TIMEOUT", examples=[8])
    receipt_wait_s: float = Field(5.0, ge=0, le=120, description="How long a transaction waits for its receipt; "
                                  "then HTTP 202 Accepted (the receipt is kept for `receipts_keep_s`)",
                                  examples=[5])
    receipts_keep_s: float = Field(86_400.0, gt=0, le=30 * 86_400, description="How long a late receipt is kept "
                                   "for the WAP system to fetch by re-sending the transaction")
    max_body_bytes: int = Field(65_536, ge=1024, le=1_048_576, description="Largest request body read; larger "
                                "ones are refused with HTTP 413 OVERSIZE")
    read_timeout_s: float = Field(30.0, gt=0, le=600, description="Longest time a request body may take to "
                                  "arrive once its headers came; a slower client is refused (HTTP 400 "
                                  "XML_MALFORMED) and its connection closed, so slow senders cannot hold "
                                  "connections open", examples=[30])
    max_pending: int = Field(2000, ge=1, le=100_000, description="Requests waiting for an answer at once; more "
                             "are refused with HTTP 503 PARTNER_UNAVAILABLE")
    clients: list[WapClient] = Field(min_length=1, description="The configured HTTP clients")

    @field_validator("clients")
    @classmethod
    def _unique(cls, clients: list[WapClient]) -> list[WapClient]:
        seen: set[str] = set()
        for i, c in enumerate(clients):
            if c.name in seen:
                raise LocatedValueError(f"client name {c.name!r} appears twice", "clients", i, "name")
            seen.add(c.name)
        return clients


def load_wap_config(path: Path | str) -> WapConfig:
    """Raises ConfigError(Group) with file:line:column for every problem."""
    model, _ = load_model(Path(path), WapConfig)
    return model


def schema() -> str:
    data = WapConfig.model_json_schema(by_alias=True)
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def hash_password(secret: str) -> str:
    if len(secret) < 16:
        raise ValueError("use a random secret of at least 16 characters")
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
