"""Standard SMS texts by name: render a template in Chinese (default) or English, read survey replies.

Owns: checking the template data (mappings/sms/texts.py, or any mapping of the same shape
passed to `Templates.from_mapping`), rendering with named fields, and mapping a customer's
reply to a survey option.
Must not: send anything, choose the encoding or split (protocols/smpp/text.py does), or
look anything up: every field value is passed in.

Rendering refuses, with RejectedMessage(FIELD_INVALID) naming the field: a missing field, a
field the template does not use (a misspelt name would otherwise vanish silently), an empty
or multi-line value, and a value that does not match the template's pattern (the one-time
password must be 4-8 digits).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from mappings.sms.texts import TEXTS
from protocols.errors import ReasonCode, RejectedMessage

LANGUAGES = ("zh", "en")
#: Filled from the template's options, never by the caller.
OPTIONS_FIELD = "options"
_OPTION_SEPARATOR = {"zh": "，", "en": ", "}
MAX_FIELD_LENGTH = 200


@dataclass(frozen=True)
class Template:
    name: str
    title: dict[str, str]
    texts: dict[str, str]                                   # language -> text with {fields}
    fields: frozenset[str]                                  # what the caller must give
    patterns: dict[str, re.Pattern] = field(default_factory=dict)
    options: dict[str, dict[str, str]] = field(default_factory=dict)  # reply -> language -> label

    def render(self, lang: str = "zh", **values: object) -> str:
        if lang not in self.texts:
            raise RejectedMessage(
                f"Template {self.name!r} has no {lang!r} text; use one of {', '.join(self.texts)}.",
                reason=ReasonCode.FIELD_INVALID, field="lang", value=lang)
        missing = sorted(self.fields - values.keys())
        if missing:
            raise RejectedMessage(
                f"Template {self.name!r} needs field(s) {', '.join(missing)}; "
                f"it takes {', '.join(sorted(self.fields))}.",
                reason=ReasonCode.FIELD_INVALID, field=missing[0])
        extra = sorted(values.keys() - self.fields)
        if extra:
            raise RejectedMessage(
                f"Template {self.name!r} has no field(s) {', '.join(extra)}; "
                f"it takes {', '.join(sorted(self.fields))}.",
                reason=ReasonCode.FIELD_INVALID, field=extra[0], value=values[extra[0]])
        filled = {name: self._check(name, value) for name, value in values.items()}
        if self.options:
            filled[OPTIONS_FIELD] = _OPTION_SEPARATOR[lang].join(
                f"{key} {labels[lang]}" for key, labels in self.options.items())
        return self.texts[lang].format_map(filled)

    def parse_reply(self, text: str) -> str | None:
        """The option a reply chose ('1'), or None if it names none. Full-width digits,
        spaces and trailing punctuation are tolerated; a label ('满意') counts too."""
        reply = unicodedata.normalize("NFKC", text).strip().strip("。.!！ ").lower()
        for key, labels in self.options.items():
            if reply == key.lower() or reply in (label.lower() for label in labels.values()):
                return key
        return None

    def _check(self, name: str, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RejectedMessage(
                f"Field {name} of template {self.name!r} must be text or a number, not "
                f"{type(value).__name__}.", reason=ReasonCode.FIELD_INVALID, field=name, value=repr(value))
        text = str(value).strip()
        if not text or len(text) > MAX_FIELD_LENGTH or any(
                unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
            raise RejectedMessage(
                f"Field {name} of template {self.name!r} must be one line of 1-{MAX_FIELD_LENGTH} "
                f"characters; got {text[:40]!r}.", reason=ReasonCode.FIELD_INVALID, field=name, value=text[:40])
        pattern = self.patterns.get(name)
        if pattern is not None and not pattern.fullmatch(text):
            raise RejectedMessage(
                f"Field {name} of template {self.name!r} must match {pattern.pattern}; got {text!r}.",
                reason=ReasonCode.FIELD_INVALID, field=name, value=text)
        return text


def _placeholders(name: str, lang: str, text: str) -> frozenset[str]:
    names = set()
    for _literal, fname, spec, conversion in string.Formatter().parse(text):
        if fname is None:
            continue
        if not fname.isidentifier() or spec or conversion:
            raise ValueError(f"template {name!r} ({lang}): placeholder {{{fname}}} must be a plain "
                             "name, without attributes, indexes, format spec or conversion")
        names.add(fname)
    return frozenset(names)


@dataclass(frozen=True)
class Templates:
    """A checked set of templates by name."""

    by_name: dict[str, Template]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Mapping]) -> Templates:
        """Check and build; ValueError naming the template for text that cannot render."""
        out: dict[str, Template] = {}
        for name, spec in data.items():
            texts = {lang: spec[lang] for lang in LANGUAGES if lang in spec}
            if "zh" not in texts:
                raise ValueError(f"template {name!r} has no Chinese (zh) text; Chinese comes first")
            fields = {lang: _placeholders(name, lang, text) for lang, text in texts.items()}
            if len(set(fields.values())) != 1:
                raise ValueError(f"template {name!r}: the languages use different fields: {fields}")
            used = fields["zh"]
            options = {str(k): dict(v) for k, v in spec.get("options", {}).items()}
            if (OPTIONS_FIELD in used) != bool(options):
                raise ValueError(f"template {name!r}: {{{OPTIONS_FIELD}}} and an options list go together")
            for key, labels in options.items():
                if set(labels) != set(texts):
                    raise ValueError(f"template {name!r}: option {key!r} needs a label in {sorted(texts)}")
            patterns = {k: re.compile(p) for k, p in spec.get("patterns", {}).items()}
            if not patterns.keys() <= used:
                raise ValueError(f"template {name!r}: patterns for fields it does not use: "
                                 f"{sorted(patterns.keys() - used)}")
            out[name] = Template(name=name, title=dict(spec.get("title", {})), texts=texts,
                                 fields=used - {OPTIONS_FIELD}, patterns=patterns, options=options)
        return cls(out)

    def get(self, name: str) -> Template:
        try:
            return self.by_name[name]
        except KeyError:
            raise RejectedMessage(
                f"There is no SMS template {name!r}; the templates are {', '.join(sorted(self.by_name))}.",
                reason=ReasonCode.FIELD_INVALID, field="template", value=name) from None

    def render(self, name: str, /, lang: str = "zh", **values: object) -> str:
        return self.get(name).render(lang, **values)


#: The standard texts of mappings/sms/texts.py.
STANDARD = Templates.from_mapping(TEXTS)


def render(name: str, /, lang: str = "zh", **fields: object) -> str:
    """The standard text `name` in `lang` ('zh' first, 'en'), with every field filled.

    Raises RejectedMessage(FIELD_INVALID) naming the offending field (see the module docstring).
    """
    return STANDARD.render(name, lang, **fields)
