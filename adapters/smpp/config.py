"""The SMPP adapter's configuration (config/smpp.yaml): one pydantic model, every field described.

Owns: the SMSC connections (address, credentials, priority for failover, TPS, window,
keepalive, reconnect back-off, timeouts), the bus side (prefetch, retry attempts), receipt
and MO handling (grace before a receipt is "unknown", MO routing rules) and the check of
cross-field rules with errors that point at file:line. Passwords are SecretStr: they never
appear in a repr, a log line or an error; they come from the file or, preferably, from the
environment variable HUB_SMPP_PASSWORD_<NAME> (the SMSC's name, upper case, other
characters as '_').
Must not: open connections or read anything but this file and those variables.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hub.yamlsource import LocatedValueError, load_model
from mappings.sms.mo import MoRule
from protocols.errors import ConfigError

DEFAULT_PATH = Path("config/smpp.yaml")


class SmscConfig(BaseModel):
    """One SMS centre the hub binds to as a transceiver (ESME)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Name of this SMSC in logs, health "
                      "and the ledger; also names the password variable HUB_SMPP_PASSWORD_<NAME>",
                      examples=["gd-smsc-1"])
    host: str = Field(description="SMSC host name or address", examples=["10.20.30.40"])
    port: int = Field(2775, ge=1, le=65535, description="SMSC TCP port", examples=[2775])
    system_id: str = Field(min_length=1, max_length=15, description="ESME system_id issued by the SMSC operator "
                           "(SMPP 3.4 section 5.2.1, at most 15 characters)", examples=["cs-hub"])
    password: SecretStr | None = Field(None, description="Bind password (at most 8 characters in SMPP 3.4); "
                                       "prefer the environment variable HUB_SMPP_PASSWORD_<NAME>, which wins")
    system_type: str = Field("", max_length=12, description="system_type of the bind, if the SMSC wants one",
                             examples=["CSHUB"])
    priority: int = Field(1, ge=1, le=100, description="Failover order: submits go to the bound SMSCs of the "
                          "lowest priority number; the next priority takes over while none of them is bound",
                          examples=[1])
    source_addr: str = Field(max_length=20, description="Source address (service number) of submitted SMS",
                             examples=["10086"])
    source_addr_ton: int = Field(0, ge=0, le=6, description="TON of the source address (0 unknown, 1 international, "
                                 "3 network specific, 5 alphanumeric)")
    source_addr_npi: int = Field(0, ge=0, le=18, description="NPI of the source address (0 unknown, 1 E.164)")
    dest_addr_ton: int = Field(1, ge=0, le=6, description="TON of destination numbers (1 international)")
    dest_addr_npi: int = Field(1, ge=0, le=18, description="NPI of destination numbers (1 E.164)")
    tps: float = Field(100.0, gt=0, le=100_000, description="Submits per second the SMSC contract allows "
                       "(token bucket per connection)", examples=[200])
    burst: int | None = Field(None, ge=1, le=100_000, description="Tokens saved up at most (default: a tenth "
                              "of a second's worth, at least 1)")
    window: int = Field(10, ge=1, le=1000, description="submit_sm in flight without submit_sm_resp", examples=[50])
    enquire_link_interval_s: float = Field(30.0, gt=0, le=3600, description="Send enquire_link after this long "
                                           "without traffic from the SMSC")
    response_timeout_s: float = Field(10.0, gt=0, le=300, description="Longest wait for a response (bind, "
                                      "submit_sm, enquire_link); past it the link is closed and re-opened")
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="TCP connect and bind timeout")
    reconnect_initial_s: float = Field(0.5, gt=0, le=600, description="First reconnect delay; doubles per failure")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="Longest reconnect delay")
    throttle_backoff_initial_s: float = Field(0.05, gt=0, le=60, description="Pause after ESME_RTHROTTLED or "
                                              "ESME_RMSGQFUL; doubles while they go on, reset by ESME_ROK")
    throttle_backoff_max_s: float = Field(5.0, gt=0, le=600, description="Longest pause after throttling")
    registered_delivery: bool = Field(True, description="Ask for delivery receipts (registered_delivery 1)")
    enabled: bool = Field(True, description="A disabled SMSC is not connected")

    @model_validator(mode="after")
    def _rules(self) -> SmscConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise LocatedValueError("reconnect_max_s must not be below reconnect_initial_s", "reconnect_max_s")
        if self.throttle_backoff_max_s < self.throttle_backoff_initial_s:
            raise LocatedValueError("throttle_backoff_max_s must not be below throttle_backoff_initial_s",
                                    "throttle_backoff_max_s")
        return self

    @property
    def password_env(self) -> str:
        return "HUB_SMPP_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    def resolved_password(self) -> SecretStr:
        """The bind password: HUB_SMPP_PASSWORD_<NAME>, else the file's; ConfigError when neither."""
        from_env = os.environ.get(self.password_env)
        if from_env:
            return SecretStr(from_env)
        if self.password is not None:
            return self.password
        raise ConfigError(f"SMSC {self.name!r} has no password: set {self.password_env} (or `password` in "
                          "the adapter's configuration)", file="smpp")

    @property
    def effective_burst(self) -> int:
        return self.burst or max(1, int(self.tps / 10))


class MoRouteConfig(BaseModel):
    """A rule for customers' SMS (MO), tried in order: the first that matches names the node."""

    model_config = ConfigDict(extra="forbid")
    survey_reply: bool = Field(False, description="A reply from a number the hub sent a satisfaction survey to "
                               "(within survey_window_h) goes to the node that sent the survey")
    to_prefix: str | None = Field(None, pattern=r"^[0-9]+$", description="Matches when the customer wrote to a "
                                  "service number starting with this", examples=["1008601"])
    keyword: str | None = Field(None, min_length=1, max_length=20, description="Matches when the text's first "
                                "word is this (any case)", examples=["TD"])
    node: str | None = Field(None, description="Node code that receives the matched sms.mo", examples=["44"])

    @model_validator(mode="after")
    def _kind(self) -> MoRouteConfig:
        if self.survey_reply and self.node is not None:
            raise LocatedValueError("a survey_reply rule sends to the survey's sender; leave out `node`", "node")
        if not self.survey_reply and self.node is None:
            raise LocatedValueError("name the `node` that receives messages this rule matches", "node")
        if not self.survey_reply and self.to_prefix is None and self.keyword is None:
            raise LocatedValueError("a rule needs to_prefix or keyword (or survey_reply: true); "
                                    "use mo_default_node for everything else", "node")
        return self

    def rule(self) -> MoRule:
        return MoRule(node=self.node, to_prefix=self.to_prefix, keyword=self.keyword,
                      survey_reply=self.survey_reply)


class SmppConfig(BaseModel):
    """config/smpp.yaml"""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(1, description="Format version of this file")
    smscs: list[SmscConfig] = Field(min_length=1, description="The SMS centres, several for failover")
    prefetch: int = Field(1000, ge=1, le=20_000, description="sms.send messages taken from adapter.smpp before "
                          "their submits are answered; at least the largest window, better twice the sum")
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts of an sms.send that failed with a "
                              "retryable SMSC error, through the hub's retry tiers, before it is dead-lettered")
    receipt_grace_s: float = Field(60.0, gt=0, le=86_400, description="A receipt that matched no submit for "
                                   "this long is listed as unknown (`hub smpp receipts --unknown`)")
    keep_final_s: float = Field(3600.0, ge=0, le=30 * 86_400, description="How long a finished message stays in "
                                "memory, so that late duplicate receipts match it rather than look unknown")
    mo_routes: list[MoRouteConfig] = Field(default_factory=list, description="Rules for customers' SMS, in order")
    mo_default_node: str = Field("00", description="Node that receives sms.mo no rule matched", examples=["00"])
    survey_window_h: float = Field(72.0, gt=0, le=24 * 90, description="How long after a survey a customer's "
                                   "SMS counts as its reply")
    mo_max_pending: int = Field(1000, ge=1, le=1_000_000, description="Incomplete long MO messages held at most")
    mo_max_age_s: float = Field(600.0, gt=0, le=86_400, description="An incomplete long MO message is given up "
                                "(sent as it is, Complete=false) after this long")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus metrics (/metrics) on "
                                     "this port; none when absent")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics are served on")

    @model_validator(mode="after")
    def _rules(self) -> SmppConfig:
        seen: set[str] = set()
        for i, s in enumerate(self.smscs):
            if s.name in seen:
                raise LocatedValueError(f"SMSC name {s.name!r} is used twice; names are unique", "smscs", i, "name")
            seen.add(s.name)
        widest = max(s.window for s in self.smscs)
        if self.prefetch < widest:
            raise LocatedValueError(f"prefetch {self.prefetch} is below the largest window ({widest}): the window "
                                    "could never fill", "prefetch")
        return self

    def mo_rules(self) -> list[MoRule]:
        return [r.rule() for r in self.mo_routes]


def load_smpp_config(path: Path | str = DEFAULT_PATH) -> SmppConfig:
    """Read and validate; ConfigError(Group) naming file:line:column for every problem."""
    model, _marks = load_model(path, SmppConfig)
    return model


def schema() -> dict:
    """The JSON schema of config/smpp.yaml (for editors; `hub smpp schema` writes it)."""
    out = SmppConfig.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out
