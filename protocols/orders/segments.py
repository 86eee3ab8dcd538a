"""Number segments (号段) -> home province: where a dispatch order to HOME must go.

Owns: a validated, immutable table of 7-digit number segments and the lookup of a
customer's home province from a mobile number (domain 10: the first seven digits of an
11-digit mobile number identify the home region).
Must not: read files or know where the table comes from. Real segment tables are operator
data; the caller loads them (config/segments.yaml ships an illustrative one) and passes
the parsed mapping to `SegmentTable.from_mapping`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from protocols.errors import ConfigError, ReasonCode, RejectedMessage

MOBILE_RE = re.compile(r"1[3-9][0-9]{9}")
SEGMENT_RE = re.compile(r"1[3-9][0-9]{5}")
PROVINCE_RE = re.compile(r"[0-9]{2}")
SEGMENT_LENGTH = 7


class SegmentTable:
    """Immutable table: 7-digit segment -> two-digit province code (GB/T 2260)."""

    def __init__(self, segments: Mapping[str, str]) -> None:
        for segment, province in segments.items():
            if not (isinstance(segment, str) and SEGMENT_RE.fullmatch(segment)):
                raise ValueError(f"segment {segment!r} is not 7 digits starting with 13-19")
            if not (isinstance(province, str) and PROVINCE_RE.fullmatch(province)):
                raise ValueError(f"province code {province!r} of segment {segment} is not two digits")
        self._segments: Mapping[str, str] = MappingProxyType(dict(segments))

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, source: str | None = None) -> SegmentTable:
        """Build the table from a parsed document `{version: 1, segments: {"1390100": "11", ...}}`.

        Unquoted YAML numbers are accepted (1390100: 11). Raises ConfigError naming the
        offending segment and `source` (the file name, for the message).
        """
        where = source or "segment table"
        if not isinstance(data, Mapping) or not isinstance(data.get("segments"), Mapping):
            raise ConfigError(
                f"{where} must be a mapping with a 'segments' mapping of segment -> province code.", file=source
            )
        version = data.get("version", 1)
        if version != 1:
            raise ConfigError(f"{where} has version {version!r}; this hub reads version 1.", file=source)
        table: dict[str, str] = {}
        for raw_segment, raw_province in data["segments"].items():
            segment, province = str(raw_segment).strip(), str(raw_province).strip()
            if not SEGMENT_RE.fullmatch(segment):
                raise ConfigError(
                    f"{where}: segment {raw_segment!r} is not 7 digits starting with 13-19; "
                    "write the first seven digits of the mobile numbers it covers.", file=source,
                )
            if not PROVINCE_RE.fullmatch(province):
                raise ConfigError(
                    f"{where}: segment {segment} maps to {raw_province!r}, which is not a two-digit "
                    "province code (GB/T 2260, e.g. \"11\").", file=source,
                )
            if segment in table:
                raise ConfigError(f"{where}: segment {segment} is listed twice.", file=source)
            table[segment] = province
        return cls(table)

    def __len__(self) -> int:
        return len(self._segments)

    def __contains__(self, segment: object) -> bool:
        return segment in self._segments

    def provinces(self) -> frozenset[str]:
        return frozenset(self._segments.values())

    def as_dict(self) -> dict[str, str]:
        """A copy of the table: segment -> province code."""
        return dict(self._segments)

    def home_province(self, mobile: str, *, field: str = "CustomerMobile") -> str:
        """Province code of the mobile number's home region.

        Raises RejectedMessage: FIELD_INVALID when `mobile` is not an 11-digit mobile number,
        UNKNOWN_SEGMENT (naming the segment) when its segment is not in the table.
        """
        if not (isinstance(mobile, str) and MOBILE_RE.fullmatch(mobile)):
            raise RejectedMessage(
                f"{field} (用户手机号) {mobile!r} is not a mobile number: expected 11 digits starting "
                "with 13-19. Correct the number and resend.",
                reason=ReasonCode.FIELD_INVALID, field=field, value=mobile,
            )
        segment = mobile[:SEGMENT_LENGTH]
        try:
            return self._segments[segment]
        except KeyError:
            raise RejectedMessage(
                f"The number segment (号段) {segment} of {field} (用户手机号) {mobile} is not in the "
                "segment table, so the customer's home province is unknown. Send the order to an "
                "explicit ToCompany/Code, or ask HQ to add the segment to the table.",
                reason=ReasonCode.UNKNOWN_SEGMENT, field=field, value=segment,
            ) from None
