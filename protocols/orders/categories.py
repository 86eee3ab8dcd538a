"""Complaint categories (投诉类别): the code list a dispatch order's ComplaintCategory must use.

Owns: the validated, immutable code list with Chinese and English names.
Must not: read files. The caller parses config/complaint_categories.yaml (or the
operator's own list) and passes the mapping to `ComplaintCategories.from_mapping`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from protocols.errors import ConfigError

CATEGORY_CODE_RE = re.compile(r"[A-Z][A-Z0-9_]{1,31}")  # same pattern as CategoryCodeType in order.xsd


@dataclass(frozen=True)
class ComplaintCategory:
    code: str
    zh: str
    en: str

    def display(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en


class ComplaintCategories:
    """The known complaint categories, by code, in the order of the configuration."""

    def __init__(self, categories: list[ComplaintCategory]) -> None:
        self._by_code = {c.code: c for c in categories}
        if len(self._by_code) != len(categories):
            raise ValueError("complaint category codes must be unique")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, source: str | None = None) -> ComplaintCategories:
        """Build the list from `{version: 1, categories: [{code, zh, en}, ...]}`; ConfigError otherwise."""
        where = source or "complaint category list"
        items = data.get("categories") if isinstance(data, Mapping) else None
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{where} must have a non-empty 'categories' list of {{code, zh, en}}.", file=source)
        version = data.get("version", 1)
        if version != 1:
            raise ConfigError(f"{where} has version {version!r}; this hub reads version 1.", file=source)
        seen: dict[str, ComplaintCategory] = {}
        for index, item in enumerate(items, start=1):
            if not isinstance(item, Mapping) or set(item) != {"code", "zh", "en"}:
                raise ConfigError(
                    f"{where}: entry {index} must have exactly the keys code, zh and en; got {item!r}.", file=source
                )
            code, name_zh, name_en = (item["code"], item["zh"], item["en"])
            if not (isinstance(code, str) and CATEGORY_CODE_RE.fullmatch(code)):
                raise ConfigError(
                    f"{where}: entry {index} has code {code!r}; a code is 2-32 upper-case letters, digits "
                    "or underscores starting with a letter (e.g. NETWORK_SIGNAL).", file=source,
                )
            if not (isinstance(name_zh, str) and name_zh.strip() and isinstance(name_en, str) and name_en.strip()):
                raise ConfigError(f"{where}: category {code} needs non-empty zh and en names.", file=source)
            if code in seen:
                raise ConfigError(f"{where}: category {code} is listed twice.", file=source)
            seen[code] = ComplaintCategory(code, name_zh, name_en)
        return cls(list(seen.values()))

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[ComplaintCategory]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> ComplaintCategory | None:
        return self._by_code.get(code)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self._by_code)
