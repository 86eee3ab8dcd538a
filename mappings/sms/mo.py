"""Where a customer's SMS (MO) goes: the rules of the SMPP adapter's `mo_routes`, as a pure function.

Owns: the rule kinds (a reply to a satisfaction survey goes back to the node that sent the
survey; a service number prefix or a keyword goes to a named node; otherwise the default
node) and their order (first rule that matches wins), and reading the survey option.
Must not: remember anything (the adapter keeps the table of who sent the last survey to
which number, and passes the entry in) or read the clock (`now` is an argument).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from mappings.sms.templates import STANDARD


@dataclass(frozen=True)
class MoRule:
    """One rule. `survey_reply`: a reply to a survey sent within `survey_window` goes to the
    survey's sender. Otherwise the rule matches by `to_prefix` (the service number the
    customer wrote to) and/or `keyword` (the first word of the text, any case) and names a
    `node`."""

    node: str | None = None
    to_prefix: str | None = None
    keyword: str | None = None
    survey_reply: bool = False


@dataclass(frozen=True)
class SurveySent:
    """The last survey sent to a number: who sent it, its business id and reference."""

    node: str
    message_id: str
    sent_at: datetime
    reference: str | None = None


@dataclass(frozen=True)
class MoDecision:
    node: str
    rule: int | None                 # index of the rule that matched; None: the default node
    in_reply_to: str | None = None   # the survey's message id
    option: str | None = None        # the survey option the reply chose, if it names one
    reference: str | None = None


def route_mo(text: str, destination: str, rules: list[MoRule], default_node: str, now: datetime,
             survey: SurveySent | None = None, survey_window: timedelta = timedelta(days=3)) -> MoDecision:
    """The node a customer's SMS goes to. A survey reply needs a survey sent to this number
    within `survey_window`; its text need not be a valid option (the node sees the text and
    `option` is None then)."""
    first_word = text.strip().split(maxsplit=1)[0].casefold() if text.strip() else ""
    for i, rule in enumerate(rules):
        if rule.survey_reply:
            if survey is not None and now - survey.sent_at <= survey_window and (
                    rule.to_prefix is None or destination.startswith(rule.to_prefix)):
                survey_template = STANDARD.get("satisfaction_survey")
                # "1", "满意", and also "1 满意" / "１，满意": the first word decides when the whole does not
                option = survey_template.parse_reply(text) or survey_template.parse_reply(
                    re.split(r"[\s,，、.。]+", unicodedata.normalize("NFKC", text).strip(), maxsplit=1)[0])
                return MoDecision(survey.node, i, survey.message_id, option, survey.reference)
            continue
        if rule.to_prefix is not None and not destination.startswith(rule.to_prefix):
            continue
        if rule.keyword is not None and first_word != rule.keyword.casefold():
            continue
        return MoDecision(rule.node or default_node, i)
    return MoDecision(default_node, None)
