"""Settings of the knowledge and announcement flows (config/knowledge.yaml): overdue alarms, mount points.

Owns: the pydantic model of config/knowledge.yaml, with a default for every key (a hub
without the file runs with the defaults), and loading it with file:line errors.
Must not: hold the sharing rules (protocols/knowledge, protocols/announcements) or routing
(routes/knowledge.yaml, routes/announcements.yaml).

Durations are written as in config/orders.yaml: `90s`, `5m`, `2h`, `1d`, `1h30m`, or seconds.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.flows.order_settings import Duration
from hub.yamlsource import load_model

FILE_NAME = "knowledge.yaml"


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("a duration must be positive")
    return value


class KnowledgeSettings(BaseModel):
    """config/knowledge.yaml. Every key has a default; the file may be absent."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(1, description="Format version of this file")
    receipt_within: Duration | None = Field(
        timedelta(hours=2),
        description="A recipient's success mark (下发成功标记) of a delivered knowledge version is due this long "
        "after the hub handed the delivery (or a sync answer carrying it) over; without it the hub sends HQ a "
        "knowledge.alarm (receipt_overdue). A re-send starts the wait again. null: no receipt alarms.",
        examples=["2h"],
    )
    structure_receipt_within: Duration | None = Field(
        timedelta(hours=2),
        description="The same for the knowledge structure (知识结构): a recipient confirms a pushed tree with a "
        "DeliveryReceipt whose ItemId is STRUCTURE; without it within this time HQ gets a knowledge.alarm "
        "(structure_receipt_overdue). null: no structure receipt alarms.",
        examples=["2h"],
    )
    reply_alarms: bool = Field(
        True,
        description="When an announcement asks for replies (RepliesRequired) by its ReplyDeadline (回复时限), alarm "
        "HQ (knowledge.alarm, reply_overdue) for each recipient that has not replied by then.",
    )
    mount_points: dict[str, str] = Field(
        default_factory=dict,
        description="Company code -> the code of its own knowledge-base root (挂载点) under which the hub hangs "
        "a pushed knowledge structure. A recipient not listed gets the MountPoint its last sync request named, "
        "or none.",
        examples=[{"44": "GD-KB-ROOT"}],
    )

    @field_validator("receipt_within", "structure_receipt_within")
    @classmethod
    def _positive_one(cls, v: timedelta | None) -> timedelta | None:
        return _positive(v)

    @field_validator("mount_points")
    @classmethod
    def _codes(cls, v: dict[str, str]) -> dict[str, str]:
        for code, root in v.items():
            if not (code.isascii() and code.isalnum() and 1 <= len(code) <= 8):
                raise ValueError(f"{code!r} is not a company code of config/nodes.yaml")
            if not (1 <= len(root) <= 32) or not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in root):
                raise ValueError(f"mount point {root!r} of {code}: 1-32 letters, digits, underscores or hyphens")
        return v


def load_knowledge_settings(config_dir: Path | str) -> KnowledgeSettings:
    """config/knowledge.yaml, or the defaults when the file does not exist; ConfigError(Group) if invalid."""
    path = Path(config_dir) / FILE_NAME
    if not path.exists():
        return KnowledgeSettings()
    settings, _marks = load_model(path, KnowledgeSettings)
    return settings
