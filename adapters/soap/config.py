"""The SOAP adapter's configuration (config/soap.yaml): one pydantic model, every field described.

Owns: per node, the CRM endpoint the hub delivers to (address, timeouts, optional WS-Security
UsernameToken) and the credentials the node uses at the hub's intake; the delivery and
intake settings; and the cross-check against config/nodes.yaml (every node named here has
transport soap). Passwords are SecretStr: never in a repr, a log line or an error. They come
from the environment (HUB_SOAP_CRM_PASSWORD_<CODE>, HUB_SOAP_INTAKE_PASSWORD_<CODE>, which
win) or from the file.
Must not: open connections or read anything but this file and those variables.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hub.nodes import Directory, Transport
from hub.yamlsource import LocatedValueError, load_model
from protocols.errors import ConfigError

FILE_NAME = "soap.yaml"


def _env_name(prefix: str, code: str) -> str:
    return prefix + re.sub(r"[^A-Z0-9]", "_", code.upper())


class WsSecurity(BaseModel):
    """A WS-Security UsernameToken the hub puts in the header of every call to this CRM."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128, description="UsernameToken user name", examples=["cs-hub"])
    password: SecretStr | None = Field(None, description="UsernameToken password; prefer the environment "
                                       "variable HUB_SOAP_CRM_PASSWORD_<CODE>, which wins; never logged")
    digest: bool = Field(False, description="Send a PasswordDigest (with nonce and created time) instead of "
                         "PasswordText")


class CrmEndpoint(BaseModel):
    """The CRM web service (crm.wsdl) the hub calls to deliver this node's messages."""

    model_config = ConfigDict(extra="forbid")
    address: str = Field(pattern=r"^https?://", description="Endpoint URL of the CRM's Deliver service "
                         "(replaces the WSDL's soap:address)", examples=["https://crm.gd.example/cs-hub/deliver"])
    connect_timeout_s: float | None = Field(None, gt=0, le=120, description="TCP/TLS connect timeout; "
                                            "default `delivery.connect_timeout_s`")
    operation_timeout_s: float | None = Field(None, gt=0, le=600, description="Longest wait for the CRM's "
                                              "answer to one Deliver; default `delivery.operation_timeout_s`")
    wsse: WsSecurity | None = Field(None, description="WS-Security UsernameToken, when the CRM wants one")
    verify_tls: bool = Field(True, description="Check the CRM's TLS certificate (https addresses)")


class IntakeAccount(BaseModel):
    """How this node authenticates at the hub's SOAP intake (HTTP Basic or UsernameToken)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128, description="User name the node presents",
                          examples=["crm-44"])
    password: SecretStr | None = Field(None, description="Its password; prefer the environment variable "
                                       "HUB_SOAP_INTAKE_PASSWORD_<CODE>, which wins; never logged")


class SoapNode(BaseModel):
    """One node whose transport is soap."""

    model_config = ConfigDict(extra="forbid")
    crm: CrmEndpoint | None = Field(None, description="Deliver this node's queue (node.<code>) to its CRM")
    intake: IntakeAccount | None = Field(None, description="Let this node submit messages at the hub's intake")


class DeliverySettings(BaseModel):
    """How the delivery side consumes node queues and calls CRMs."""

    model_config = ConfigDict(extra="forbid")
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="Default TCP/TLS connect timeout")
    operation_timeout_s: float = Field(15.0, gt=0, le=600, description="Default longest wait for a CRM's answer; "
                                       "past it the call counts as PARTNER_TIMEOUT and is retried")
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts of a message whose CRM faulted or timed out, "
                              "through the hub's retry tiers, before it is dead-lettered with the last fault")
    prefetch: int = Field(1, ge=1, le=100, description="Messages taken from a node queue ahead of the CRM call "
                          "(calls to one CRM are sequential, so 1 keeps the others in the queue)")


class IntakeSettings(BaseModel):
    """The hub's SOAP endpoint for legacy nodes (intake.wsdl)."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="Address to listen on (put TLS in front: a reverse proxy)",
                      examples=["0.0.0.0"])
    port: int = Field(8089, ge=0, le=65535, description="TCP port (0: any free port, for tests)")
    path: str = Field("/soap/intake", pattern=r"^/[A-Za-z0-9/_.-]*$", description="URL path of the service; "
                      "GET <path>?wsdl returns intake.wsdl")
    public_url: str | None = Field(None, pattern=r"^https?://", description="The address nodes use (written "
                                   "into the served WSDL); default the address the WSDL was asked at")
    max_request_bytes: int = Field(1_048_576, ge=4096, le=16 * 1024 * 1024, description="Largest request body; "
                                   "larger ones are refused with OVERSIZE before they are read")
    read_timeout_s: float = Field(30.0, gt=0, le=600, description="Longest time a request body may take to "
                                  "arrive; a slower client gets an XML_MALFORMED fault and its connection is "
                                  "closed (slow senders cannot hold connections open before authenticating)")
    confirm_timeout_s: float = Field(10.0, gt=0, le=120, description="Longest wait for RabbitMQ's publisher "
                                     "confirm before the node is answered PARTNER_UNAVAILABLE (it may resend: "
                                     "the hub deduplicates by MessageId)")


class SoapFile(BaseModel):
    """config/soap.yaml"""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(1, description="Format version of this file")
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    nodes: dict[str, SoapNode] = Field(default_factory=dict, description="Nodes by company code; each must have "
                                       "transport: soap in config/nodes.yaml")

    @model_validator(mode="after")
    def _rules(self) -> SoapFile:
        users: dict[str, str] = {}
        for code, node in self.nodes.items():
            if node.crm is None and node.intake is None:
                raise LocatedValueError(f"node {code} has neither crm nor intake; give one or remove it",
                                        "nodes", code)
            if node.intake is not None:
                other = users.get(node.intake.username)
                if other is not None:
                    raise LocatedValueError(f"nodes {other} and {code} share intake user name "
                                            f"{node.intake.username!r}; each node needs its own",
                                            "nodes", code, "intake", "username")
                users[node.intake.username] = code
        return self

    def crm_password(self, code: str) -> SecretStr:
        wsse = self.nodes[code].crm.wsse
        return _secret(_env_name("HUB_SOAP_CRM_PASSWORD_", code), wsse.password if wsse else None, code, "crm.wsse")

    def intake_password(self, code: str) -> SecretStr:
        return _secret(_env_name("HUB_SOAP_INTAKE_PASSWORD_", code), self.nodes[code].intake.password, code,
                       "intake")

    def timeouts(self, code: str) -> tuple[float, float]:
        crm = self.nodes[code].crm
        return (crm.connect_timeout_s or self.delivery.connect_timeout_s,
                crm.operation_timeout_s or self.delivery.operation_timeout_s)

    @property
    def crm_nodes(self) -> list[str]:
        return [c for c, n in self.nodes.items() if n.crm is not None]

    @property
    def intake_nodes(self) -> list[str]:
        return [c for c, n in self.nodes.items() if n.intake is not None]


def _secret(env: str, value: SecretStr | None, code: str, where: str) -> SecretStr:
    from_env = os.environ.get(env)
    if from_env:
        return SecretStr(from_env)
    if value is not None:
        return value
    raise ConfigError(f"node {code}: {where} has no password; set {env} (or `password` in config/soap.yaml)",
                      file=FILE_NAME)


def check_against_nodes(cfg: SoapFile, directory: Directory, *, file: str = FILE_NAME) -> None:
    """Every node named is configured with transport soap; ConfigError naming the first that is not."""
    for code in cfg.nodes:
        node = directory.by_code.get(code)
        if node is None:
            raise ConfigError(f"nodes: {code!r} is not a node of config/nodes.yaml", file=file)
        if node.transport != Transport.soap:
            raise ConfigError(f"nodes: {code} has transport {node.transport.value} in config/nodes.yaml; set "
                              "transport: soap there to reach it by SOAP", file=file)


def load(path: Path | str, directory: Directory | None = None) -> SoapFile:
    """Read and validate config/soap.yaml; ConfigError(s) name file:line:column."""
    cfg, _marks = load_model(path, SoapFile)
    if directory is not None:
        check_against_nodes(cfg, directory, file=str(path))
    return cfg


def loads(text: str, name: str = FILE_NAME, directory: Directory | None = None) -> SoapFile:
    """Validate YAML text (table tests and `hub soap lint`)."""
    cfg, _marks = load_model(name, SoapFile, text=text)
    if directory is not None:
        check_against_nodes(cfg, directory, file=name)
    return cfg


def schema() -> dict:
    """The JSON schema of config/soap.yaml (for editors; `hub soap schema` writes it)."""
    out = SoapFile.model_json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out
