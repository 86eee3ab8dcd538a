"""config/sftp.yaml: SFTP endpoints per node, report types and deadlines, transfer tuning.

Every field is declared once here with its description and example; that declaration drives
validation (file:line:column errors through hub.yamlsource), `schema()` (the JSON schema
for editors, docs/schemas/sftp.schema.json) and the tables of docs/sftp.md.

Owns: the pydantic models of the file, loading it, and the checks against the node list
(every endpoint, sender and expected province is a configured node; HQ is the hq node).
Must not: open connections, read key files or log secrets (the key passphrase is a
SecretStr and is never printed).
"""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub.nodes import Directory, Names
from hub.yamlsource import LocatedValueError, load_model
from protocols.errors import ConfigError
from protocols.files.layout import join
from protocols.files.naming import NamingRule, PeriodKind, ReportRule

FILE_NAME = "sftp.yaml"
#: OpenSSH refuses SFTP packets of 256 KiB or more (sftp-server.c SFTP_MAX_MSG_LENGTH); a write
#: request carries ~40 bytes of header besides its data, so 255 KiB is the largest safe chunk.
MAX_CHUNK_BYTES = 255 * 1024

Code = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{2,8}$", description="Company code (公司编号) of a node",
                            examples=["44"])]


def _remote_path(value: str) -> str:
    if value.startswith("/") and len(value) > 1:
        return "/" + join(value[1:])
    return join(value)


class MirrorFolder(BaseModel):
    """A folder on the server whose files this node receives (downloads and marks)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Folder on the server, relative to the account's start folder or absolute",
                      examples=["down", "up"])
    sender: str = Field(description="Company code of the node that sends into this folder, or \"*\" when the "
                        "folder holds one sub-folder per sending node (HQ's `up/44/...`); a mark naming another "
                        "sender is refused", examples=["00", "*"])

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _remote_path(value)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if value != "*" and not re.fullmatch(r"[0-9A-Za-z]{2,8}", value):
            raise ValueError(f"sender must be a company code such as \"00\" or \"*\", got {value!r}")
        return value


class EndpointDefaults(BaseModel):
    """Values every endpoint takes unless it names its own (usually the one exchange server)."""

    model_config = ConfigDict(extra="forbid")
    host: str | None = Field(None, description="SFTP server host name or address", examples=["sftp.cs-hub.example"])
    port: int | None = Field(None, ge=1, le=65535, description="SSH port of the server", examples=[22])
    known_hosts: Path | None = Field(None, description="OpenSSH known_hosts file pinning the server's host key "
                                     "(lines `[host]:port keytype key` for a port other than 22)",
                                     examples=["/etc/cs-hub/sftp/known_hosts"])
    connect_timeout_s: float | None = Field(None, gt=0, le=300, description="TCP, SSH banner and auth timeout")


class Endpoint(BaseModel):
    """One node's account on an SFTP server, and the node's local folders."""

    model_config = ConfigDict(extra="forbid")
    host: str | None = Field(None, description="SFTP server host name or address (required here or in "
                             "`defaults`)", examples=["sftp.cs-hub.example"])
    port: int = Field(22, ge=1, le=65535, description="SSH port of the server", examples=[22])
    user: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Account on the server", examples=["gd44"])
    key_file: Path = Field(description="Private key for public-key authentication (OpenSSH format; ed25519, "
                           "ecdsa or rsa). Passwords are never used.", examples=["/etc/cs-hub/sftp/id_ed25519_44"])
    key_passphrase: SecretStr | None = Field(None, description="Passphrase of the private key, if it has one; "
                                             "never logged")
    known_hosts: Path | None = Field(None, description="OpenSSH known_hosts file pinning the server's host key "
                                     "(required here or in `defaults`); an unknown or changed key is refused, never "
                                     "added", examples=["/etc/cs-hub/sftp/known_hosts"])
    connect_timeout_s: float = Field(15.0, gt=0, le=300, description="TCP, SSH banner and auth timeout")
    remote_outbox: str = Field(description="Folder on the server this node's files are uploaded into; reports go "
                               "to <remote_outbox>/<period>/, other files to <remote_outbox>/<yyyy-mm-dd>/",
                               examples=["up/44", "down"])
    mirror: list[MirrorFolder] = Field(default_factory=list, description="Folders on the server this node "
                                       "receives files from (download, verify, success mark)")
    outbox: Path = Field(description="Local folder the node's systems drop files into; watched", examples=[
        "var/sftp/44/outbox"])
    inbox: Path = Field(description="Local folder received files are delivered into (same relative layout as "
                        "on the server)", examples=["var/sftp/44/inbox"])

    @field_validator("remote_outbox")
    @classmethod
    def _outbox(cls, value: str) -> str:
        path = _remote_path(value)
        if not path:
            raise ValueError("remote_outbox must name a folder below the account's start folder, e.g. up/44")
        return path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class ReportType(BaseModel):
    """A statistical report provinces deliver to HQ: how it is named and when it is due."""

    model_config = ConfigDict(extra="forbid")
    names: Names
    pattern: str = Field(description="File name pattern; placeholders {province}, {report} (this type's code), "
                         "{yyyymm} (monthly) or {yyyymmdd} (daily)", examples=["{province}_{report}_{yyyymm}.csv"])
    period: PeriodKind = Field(description="Reporting period", examples=["monthly"])
    due_days: int = Field(ge=0, le=31, description="Days after the period ends that the report is due (monthly, 4: "
                          "the 5th of the next month)", examples=[4])
    due_time: time = Field(time(18, 0), description="Time of day (in `timezone`) on the due day", examples=["18:00"])
    expected_from: list[str] = Field(default_factory=lambda: ["provinces"],
                                     description="Nodes or groups that must deliver it (config/nodes.yaml)",
                                     examples=[["provinces"]])


class Tuning(BaseModel):
    """How files are moved; the defaults are what bench/sftp.py measured fastest here."""

    model_config = ConfigDict(extra="forbid")
    chunk_bytes: int = Field(MAX_CHUNK_BYTES, ge=4096, le=MAX_CHUNK_BYTES,
                             description="Bytes per SFTP write/read request; OpenSSH refuses packets of 256 KiB or "
                             "more, so at most 255 KiB")
    window_mib: int = Field(16, ge=2, le=256, description="SSH channel window for the adapter's reads (MiB)")
    progress_every_s: float = Field(5.0, gt=0, le=3600, description="A progress log line at most this often "
                                    "during a long transfer")
    ciphers: list[str] = Field(["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr"],
                               description="SSH ciphers to prefer, in order (others paramiko knows follow); AES-GCM "
                               "is fastest with paramiko", examples=[["aes256-gcm@openssh.com", "aes256-ctr"]])


class SftpFile(BaseModel):
    """config/sftp.yaml."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(1, description="Format version of this file")
    hq: Code = Field("00", description="Company code of HQ, which sets report deadlines and gets late alarms")
    timezone: str = Field("Asia/Shanghai", description="Zone of day folders, periods and deadlines",
                          examples=["Asia/Shanghai"])
    poll_interval_s: float = Field(10.0, gt=0, le=3600, description="How often outboxes and mirrored folders are "
                                   "scanned and deadlines checked")
    settle_s: float = Field(5.0, ge=0, le=3600, description="A file in an outbox is sent once it has not changed "
                            "for this long (its writer is done)")
    max_attempts: int = Field(8, ge=1, le=100, description="Tries of a transfer before it is dead-lettered with an "
                              "alarm; waits between tries follow the hub's retry tiers")
    late_lookback: int = Field(2, ge=1, le=24, description="How many past periods are checked for late reports")
    reports_since: date | None = Field(None, description="First day of the first reporting period checked for "
                                       "lateness (when the exchange went live); earlier periods are never alarmed",
                                       examples=["2026-11-01"])
    defaults: EndpointDefaults = Field(default_factory=EndpointDefaults,
                                       description="Values every endpoint takes unless it names its own")
    endpoints: dict[str, Endpoint] = Field(description="Per node (company code): its account on the server and "
                                           "its local folders")
    report_types: dict[str, ReportType] = Field(default_factory=dict, description="Report types by code (the "
                                                "{report} part of file names)")
    transfer: Tuning = Field(default_factory=Tuning)
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus metrics (/metrics) on "
                                     "this port; none when absent")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics are served on")

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("endpoints"), dict):
            return data
        defaults = {k: v for k, v in (data.get("defaults") or {}).items() if v is not None} \
            if isinstance(data.get("defaults"), dict) else {}
        data = dict(data)
        data["endpoints"] = {code: ({**defaults, **ep} if isinstance(ep, dict) else ep)
                             for code, ep in data["endpoints"].items()}
        return data

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    @field_validator("endpoints")
    @classmethod
    def _codes(cls, endpoints: dict[str, Endpoint]) -> dict[str, Endpoint]:
        for code in endpoints:
            if not re.fullmatch(r"[0-9A-Za-z]{2,8}", str(code)):
                raise LocatedValueError(f"endpoint key {code!r} is not a company code; write it in quotes, "
                                        f"e.g. \"44\"", code)
        return endpoints

    @model_validator(mode="after")
    def _rules(self) -> SftpFile:
        for code, rt in self.report_types.items():
            try:
                NamingRule.compile(rt.pattern, code, rt.period)
            except ValueError as exc:
                raise LocatedValueError(str(exc), "report_types", code, "pattern") from None
            if rt.period is PeriodKind.monthly and rt.due_days > 27:
                raise LocatedValueError(f"report type {code}: due_days of a monthly report is 0..27 (a deadline "
                                        f"inside the next month), got {rt.due_days}", "report_types", code, "due_days")
        outboxes: dict[str, str] = {}
        for code, ep in self.endpoints.items():
            for key in ("host", "known_hosts"):
                if getattr(ep, key) is None:
                    raise LocatedValueError(f"{key} is missing; set it in this endpoint or in `defaults`",
                                            "endpoints", code)
            if ep.remote_outbox in outboxes:
                raise LocatedValueError(f"endpoints {outboxes[ep.remote_outbox]} and {code} share remote_outbox "
                                        f"{ep.remote_outbox!r}; each node sends into its own folder",
                                        "endpoints", code, "remote_outbox")
            outboxes[ep.remote_outbox] = code
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def report_rules(cfg: SftpFile, directory: Directory) -> list[ReportRule]:
    """The report types as protocol rules, groups resolved to company codes."""
    rules = []
    for code, rt in cfg.report_types.items():
        expected: list[str] = []
        for name in rt.expected_from:
            expected += [c for c in directory.members(name) if c not in expected]
        rules.append(ReportRule(code, NamingRule.compile(rt.pattern, code, rt.period), rt.due_days, rt.due_time,
                                cfg.zone, tuple(expected)))
    return rules


def check_against_nodes(cfg: SftpFile, directory: Directory, *, file: str = FILE_NAME) -> None:
    """Every code the file names is a configured node; ConfigError naming the first that is not."""
    known = set(directory.by_code)
    if cfg.hq not in known or directory.by_code[cfg.hq].kind.value != "hq":
        raise ConfigError(f"hq {cfg.hq!r} is not the hq node of config/nodes.yaml ({directory.hq.code})", file=file)
    for code, ep in cfg.endpoints.items():
        if code not in known:
            raise ConfigError(f"endpoint {code!r} is not a node of config/nodes.yaml", file=file)
        for m in ep.mirror:
            if m.sender != "*" and m.sender not in known:
                raise ConfigError(f"endpoint {code}: mirror {m.path!r} names sender {m.sender!r}, which is not a "
                                  f"node of config/nodes.yaml", file=file)
    for rcode, rt in cfg.report_types.items():
        for name in rt.expected_from:
            if name not in directory.groups and name not in known:
                raise ConfigError(f"report type {rcode}: expected_from names {name!r}, which is neither a node nor "
                                  f"a group ({', '.join(sorted(directory.groups))})", file=file)


def load(path: Path | str, directory: Directory | None = None) -> SftpFile:
    """Read and validate config/sftp.yaml; ConfigError(s) name file:line:column."""
    cfg, _marks = load_model(path, SftpFile)
    if directory is not None:
        check_against_nodes(cfg, directory, file=str(path))
    return cfg


def loads(text: str, name: str = FILE_NAME, directory: Directory | None = None) -> SftpFile:
    """Validate YAML text (table tests and `hub sftp lint`)."""
    cfg, _marks = load_model(name, SftpFile, text=text)
    if directory is not None:
        check_against_nodes(cfg, directory, file=name)
    return cfg


def schema() -> dict:
    """The JSON schema of config/sftp.yaml (for editors; `hub sftp schema` writes it)."""
    out = SftpFile.model_json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out
