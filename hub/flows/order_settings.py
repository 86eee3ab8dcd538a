"""Settings of the orders flow (config/orders.yaml): re-sends, warnings, alarm recipients, statistics.

Owns: the pydantic model of config/orders.yaml, with a default for every key (a hub without
the file runs with the defaults), and loading it with file:line errors.
Must not: hold the order rules (protocols/orders) or routing (routes/orders.yaml).

Durations are written `90s`, `5m`, `2h`, `1d`, `1h30m`, or as seconds (a number).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from hub.yamlsource import load_model

FILE_NAME = "orders.yaml"

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def _duration(value: object) -> object:
    """'5m' -> timedelta(minutes=5); numbers are seconds; anything else goes to pydantic."""
    if isinstance(value, str):
        text = value.strip()
        m = _DURATION.fullmatch(text)
        if text and m and any(m.groups()):
            d, h, mi, s = (int(g or 0) for g in m.groups())
            return timedelta(days=d, hours=h, minutes=mi, seconds=s)
        if not text.upper().startswith("P"):  # ISO 8601 (PT5M) is left to pydantic
            raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 5m, 2h, 1d or 1h30m")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration must be positive")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Role = Literal["originator", "receiver", "hq"]


class OrderSettings(BaseModel):
    """config/orders.yaml. Every key has a default; the file may be absent."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(1, description="Format version of this file")
    receipt_within: Duration = Field(
        timedelta(minutes=5),
        description="The receiver's success mark (派单成功标记) is due this long after the hub delivered "
        "the dispatch order; without it the hub re-sends the order (same message_id and serial number).",
        examples=["5m"],
    )
    resend_backoff: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=15), timedelta(minutes=45)],
        description="Waits after each re-send while the success mark is still missing: one re-send per "
        "entry. When the last wait runs out the hub stops re-sending and raises a receipt_missing alarm. "
        "Empty: no re-send, the alarm comes at receipt_within.",
        examples=[["15m", "45m"]],
    )
    warn_before: Duration | None = Field(
        None,
        description="Warn (first_reply_warning / final_reply_warning) this long before each reply "
        "deadline while the reply is still missing; null: no warnings.",
        examples=["30m"],
    )
    alarm_recipients: list[Role] = Field(
        default_factory=lambda: ["originator", "receiver", "hq"],
        min_length=1,
        description="Who receives an order.alarm (workflow monitoring, 工作流监控): the originator, the "
        "receiver and HQ by default (seed 001, 6.7: the department and its superiors).",
        examples=[["originator", "receiver", "hq"]],
    )
    clock_skew: Duration = Field(
        timedelta(minutes=10),
        description="How far a reply or mark may be dated before the dispatch time (clock difference "
        "between two CRMs) before it is refused with DEADLINE_ORDER.",
        examples=["10m"],
    )
    stats_timezone: str = Field(
        "Asia/Shanghai",
        description="Time zone whose calendar days the statistics count (`hub orders stats --date`).",
        examples=["Asia/Shanghai"],
    )

    @field_validator("receipt_within", "clock_skew")
    @classmethod
    def _positive_one(cls, v: timedelta) -> timedelta:
        return _positive(v)

    @field_validator("warn_before")
    @classmethod
    def _positive_optional(cls, v: timedelta | None) -> timedelta | None:
        return None if v is None else _positive(v)

    @field_validator("resend_backoff")
    @classmethod
    def _positive_all(cls, v: list[timedelta]) -> list[timedelta]:
        if len(v) > 10:
            raise ValueError("at most 10 re-sends; a receiver that never confirms needs people, not more re-sends")
        return [_positive(d) for d in v]

    @field_validator("alarm_recipients")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("list each recipient once")
        return v

    @field_validator("stats_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone name such as Asia/Shanghai") from None
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.stats_timezone)

    def resend_offsets(self) -> tuple[list[timedelta], timedelta]:
        """(offsets of each re-send after delivery, offset of the receipt_missing alarm)."""
        offsets, at = [], self.receipt_within
        for wait in self.resend_backoff:
            offsets.append(at)
            at = at + wait
        return offsets, at


def load_order_settings(config_dir: Path | str) -> OrderSettings:
    """config/orders.yaml, or the defaults when the file does not exist; ConfigError(Group) if invalid."""
    path = Path(config_dir) / FILE_NAME
    if not path.exists():
        return OrderSettings()
    settings, _marks = load_model(path, OrderSettings)
    return settings
