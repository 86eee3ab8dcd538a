"""Single-field checks of the seed-003 contracts, each refusal naming the field in English and Chinese.

Owns: the checks every knowledge and announcement message shares (company codes,
identifiers, names, titles, free texts, zoned times, clock skew, the authenticated sender)
and the normalisation of every timestamp of a message, nested ones included, to UTC. A
`FieldRules` is built once per contract with that contract's Chinese field names, so a
refusal reads "Title (标题) '' is empty. Write the text; ..." in either contract.
Must not: read the clock (`now` is an argument), know any message type, or import a
contract's models (protocols.knowledge.rules and protocols.announcements.rules do).

The patterns are those of knowledge.xsd and announcement.xsd; the wire tests check that
the XSD and these checks accept the same values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from protocols.errors import ReasonCode, RejectedMessage

#: How far in the future a sender's timestamp may lie (clock skew between systems).
DEFAULT_MAX_FUTURE = timedelta(minutes=10)

COMPANY_CODE_RE = re.compile(r"[0-9A-Za-z]{2,8}")
SERIAL_RE = re.compile(r"[0-9A-Za-z-]{1,32}")
ID_RE = re.compile(r"[0-9A-Za-z-]{1,40}")
NAME_MAX = 50
TITLE_MAX = 200
_XS_SPACE = " \t\n\r"  # XML Schema's \s: the same white space for the XSD and for these rules


def aware(now: datetime) -> datetime:
    """`now` in UTC; a naive `now` is a programming error of the caller, not a refusal."""
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError("now must be a time-zone aware datetime (the hub passes UTC)")
    return now.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.isoformat()


class FieldRules:
    """The shared single-field checks, speaking one contract's Chinese field names."""

    def __init__(self, names_zh: Mapping[str, str]) -> None:
        self.names_zh = names_zh

    def zh(self, field: str) -> str:
        """Chinese name of a wire field or path (Item/Title falls back to Title)."""
        return self.names_zh.get(field) or self.names_zh.get(field.rsplit("/", 1)[-1], field)

    def refuse(self, field: str, value: object, problem: str, fix: str,
               reason: ReasonCode = ReasonCode.FIELD_INVALID) -> RejectedMessage:
        return RejectedMessage(f"{field} ({self.zh(field)}) {value!r} {problem}. {fix}",
                               reason=reason, field=field, value=value)

    # ------------------------------------------------------------------------- formats

    def company_code(self, value: object, field: str) -> None:
        if not (isinstance(value, str) and COMPANY_CODE_RE.fullmatch(value)):
            raise self.refuse(field, value, "is not a company code",
                              "Use the node code of config/nodes.yaml: 2-8 letters or digits, e.g. 44 or 99.")

    def serial(self, value: object, field: str) -> None:
        if not (isinstance(value, str) and SERIAL_RE.fullmatch(value)):
            raise self.refuse(field, value, "is not a serial number",
                              "Use 1-32 letters, digits or hyphens, unique per sender, e.g. 20240701-0001.")

    def identifier(self, value: object, field: str) -> None:
        if not (isinstance(value, str) and ID_RE.fullmatch(value)):
            raise self.refuse(field, value, "is not an identifier",
                              "Use 1-40 letters, digits or hyphens, e.g. KN-99-20240701-0001.")

    def line(self, value: object, field: str, max_length: int = NAME_MAX) -> None:
        """A name or title: 1..max_length characters on one line, no surrounding white space."""
        if not isinstance(value, str) or not value or value[0] in _XS_SPACE or value[-1] in _XS_SPACE:
            raise self.refuse(field, value, "is empty or starts or ends with white space",
                              "Send it without surrounding spaces.")
        if "\n" in value or "\r" in value:
            raise self.refuse(field, value, "spans several lines", "Send it on one line.")
        if len(value) > max_length:
            raise self.refuse(field, value, f"has {len(value)} characters, more than {max_length}",
                              f"Shorten it to {max_length} characters.")

    def text(self, value: object, field: str, max_length: int) -> None:
        """A free text: 1..max_length characters (counted as characters, not bytes), not blank."""
        if not isinstance(value, str) or not value.strip(_XS_SPACE):
            raise self.refuse(field, value, "is empty", "Write the text; white space alone is not a text.")
        if len(value) > max_length:
            raise self.refuse(field, f"{value[:20]}...", f"has {len(value)} characters, more than {max_length}",
                              f"Shorten it to {max_length} characters (Chinese characters count one each).")

    def positive(self, value: object, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.refuse(field, value, "is not a positive whole number",
                              "Versions count from 1: the first publication is version 1.")

    def pattern(self, value: object, field: str, regex: re.Pattern[str], what: str, fix: str) -> None:
        if not (isinstance(value, str) and regex.fullmatch(value)):
            raise self.refuse(field, value, f"is not {what}", fix)

    # ------------------------------------------------------------------------- times

    def zoned(self, value: object, field: str) -> datetime:
        """The timestamp in UTC; a naive timestamp is refused (a date without a zone is ambiguous)."""
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise self.refuse(field, value.isoformat() if isinstance(value, datetime) else value,
                              "has no time zone",
                              "Send the time with its offset, e.g. 2024-07-01T10:00:00+08:00 (China) or ...Z (UTC).")
        return value.astimezone(UTC)

    def not_future(self, value: datetime, field: str, *, now: datetime,
                   max_future: timedelta = DEFAULT_MAX_FUTURE) -> None:
        """`value` (aware) may be at most `max_future` after `now`: clock skew, not time travel."""
        now_utc = aware(now)
        if self.zoned(value, field) > now_utc + max_future:
            raise self.refuse(field, iso(value),
                              f"lies more than {max_future.total_seconds() / 60:g} minutes after the hub's "
                              f"time {iso(now_utc)}",
                              "Check the sending system's clock (NTP) and resend.")

    def after(self, later: datetime, later_field: str, earlier: datetime, earlier_field: str,
              fix: str, *, strictly: bool = True) -> None:
        """`later` must come after `earlier` (or at the same instant when not `strictly`): DEADLINE_ORDER."""
        a, b = self.zoned(later, later_field), self.zoned(earlier, earlier_field)
        if a < b or (strictly and a == b):
            word = "later than" if strictly else "at or after"
            raise self.refuse(later_field, iso(later),
                              f"is not {word} {earlier_field} ({self.zh(earlier_field)}) {iso(earlier)}",
                              fix, ReasonCode.DEADLINE_ORDER)

    # ------------------------------------------------------------------------- parties

    def sender_is(self, claimed: str, field: str, sender: str) -> None:
        """The company code in the message must be the authenticated sender's (SPOOFED_SENDER)."""
        if claimed != sender:
            raise self.refuse(field, claimed,
                              f"is not the company code of the authenticated sender {sender!r}",
                              "Send the message as yourself: the code in the message must be your node code.",
                              ReasonCode.SPOOFED_SENDER)

    def from_hq(self, message: str, sender: str, hq: str) -> None:
        """Only HQ (全国客服中心) may send `message` (SENDER_NOT_PERMITTED)."""
        if sender != hq:
            raise RejectedMessage(
                f"{message} comes from {sender!r}; only HQ ({hq}) reviews and publishes. Send the "
                "corresponding request to HQ instead.",
                reason=ReasonCode.SENDER_NOT_PERMITTED, value=sender,
            )


def in_utc(model: BaseModel) -> BaseModel:
    """A copy of `model` with every timestamp, nested ones included, in UTC (values unchanged as instants)."""
    update: dict[str, object] = {}
    for attr in type(model).model_fields:
        value = getattr(model, attr)
        new = _utc_value(value)
        if new is not value:
            update[attr] = new
    return model.model_copy(update=update) if update else model


def _utc_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.utcoffset() is not None else value
    if isinstance(value, BaseModel):
        return in_utc(value)
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel | datetime):
        items = tuple(_utc_value(v) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value
