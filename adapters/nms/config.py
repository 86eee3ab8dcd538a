"""The NMS feed's configuration (config/nms.yaml): one pydantic model, every field described.

Owns: where the interface table is (a SQLAlchemy URL, SQLite or PostgreSQL; it may hold a
password, so it is a SecretStr and HUB_NMS_DATABASE_URL overrides it), the table names, the
polling rhythm and batch size, and the optional SMS to the staff on duty.
Must not: connect to anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hub.yamlsource import load_model
from protocols.nms.faults import Severity

ENV_URL = "HUB_NMS_DATABASE_URL"


class OnDutySms(BaseModel):
    """SMS to the staff on duty through the SMPP adapter (sms.send, sent as node NMS)."""

    model_config = ConfigDict(extra="forbid")
    mobiles: list[str] = Field(default_factory=list, description="Mobile numbers of the staff on duty",
                               examples=[["13800138000"]])
    min_severity: Severity = Field(Severity.critical, description="Only faults at least this severe "
                                   "(critical > major > minor > warning) are sent by SMS")


class NmsConfig(BaseModel):
    """config/nms.yaml."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(1, ge=1, le=1, description="Format version of this file")
    database_url: SecretStr = Field(description="SQLAlchemy URL of the database holding the NMS interface table; "
                                    f"{ENV_URL} wins when set", examples=["sqlite:///var/nms.sqlite3"])
    table: str = Field("nms_fault_feed", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                       description="The interface table the NMS fills (docs/nms.md)")
    state_table: str = Field("cs_hub_nms_faults", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                             description="The feed's own table of fault states, beside the interface table, "
                                         "so a row's consumed mark and the fault's new state commit together")
    poll_interval_s: float = Field(2.0, gt=0, le=600, description="Pause between polls when no row is waiting")
    batch_size: int = Field(200, ge=1, le=10_000, description="Rows read and announced per round")
    sms: OnDutySms = Field(default_factory=OnDutySms, description="Optional SMS to the staff on duty")

    def url(self) -> str:
        return os.environ.get(ENV_URL) or self.database_url.get_secret_value()


def load_nms_config(path: Path | str) -> NmsConfig:
    model, _ = load_model(Path(path), NmsConfig)
    return model


def schema() -> str:
    data = NmsConfig.model_json_schema(by_alias=True)
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
