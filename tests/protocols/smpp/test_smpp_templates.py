"""mappings/sms/templates.py: the standard texts, Chinese first, and their refusals."""

from __future__ import annotations

import pytest

from mappings.sms.templates import STANDARD, Templates, render
from protocols.errors import ReasonCode, RejectedMessage
from protocols.smpp.text import DataCoding, split

FIELDS = {
    "payment_reminder": dict(sign="中国移动", number="13800138000", as_of="6月11日", balance="3.50",
                             due_date="6月15日", hotline="10086"),
    "one_time_password": dict(sign="中国移动", code="604213", minutes=5),
    "complaint_reply": dict(sign="中国移动", complaint_date="6月10日", ticket="20240611-000123",
                            result="已为您恢复宽带业务", hotline="10086"),
    "satisfaction_survey": dict(sign="中国移动", ticket="20240611-000123"),
}


def test_the_four_standard_texts_exist_with_chinese_titles():
    assert set(STANDARD.by_name) == set(FIELDS)
    assert STANDARD.get("payment_reminder").title["zh"] == "缴费提醒"
    assert "验证码" in STANDARD.get("one_time_password").title["zh"]
    assert STANDARD.get("complaint_reply").title["zh"] == "投诉处理回复通知"
    assert STANDARD.get("satisfaction_survey").title["zh"] == "满意度调查"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_chinese_is_the_default_and_english_is_available(name):
    zh = render(name, **FIELDS[name])
    en = render(name, lang="en", **FIELDS[name])
    assert zh.startswith("【中国移动】") and en.startswith("[中国移动]")
    assert "{" not in zh and "{" not in en
    assert split(zh, 1)[0].data_coding is DataCoding.UCS2


def test_one_time_password_text():
    assert render("one_time_password", **FIELDS["one_time_password"]) == (
        "【中国移动】您的验证码为604213，5分钟内有效，仅用于客服身份验证。"
        "工作人员不会向您索取验证码，请勿告知他人。")
    assert len(split(render("one_time_password", **FIELDS["one_time_password"]), 1)) == 1


def test_survey_lists_the_reply_options_and_reads_replies():
    text = render("satisfaction_survey", **FIELDS["satisfaction_survey"])
    assert "1 满意，2 基本满意，3 不满意" in text
    survey = STANDARD.get("satisfaction_survey")
    assert [survey.parse_reply(r) for r in ("1", " ２ ", "3。", "满意", "Dissatisfied", "4", "好")] == [
        "1", "2", "3", "1", "3", None, None]


def test_missing_field_is_refused_naming_it():
    fields = dict(FIELDS["payment_reminder"])
    del fields["due_date"]
    with pytest.raises(RejectedMessage) as err:
        render("payment_reminder", **fields)
    assert err.value.reason is ReasonCode.FIELD_INVALID and err.value.field == "due_date"
    assert "due_date" in str(err.value)


@pytest.mark.parametrize(("name", "change", "field"), [
    ("payment_reminder", {"dueDate": "6月15日"}, "dueDate"),        # misspelt extra field
    ("one_time_password", {"code": "12ab"}, "code"),                # not 4-8 digits
    ("one_time_password", {"minutes": ""}, "minutes"),              # empty
    ("complaint_reply", {"result": "第一行\n第二行"}, "result"),    # multi-line
    ("complaint_reply", {"result": None}, "result"),                # not text
])
def test_bad_fields_are_refused(name, change, field):
    with pytest.raises(RejectedMessage) as err:
        render(name, **{**FIELDS[name], **change})
    assert err.value.reason is ReasonCode.FIELD_INVALID and err.value.field == field


def test_unknown_template_and_language():
    with pytest.raises(RejectedMessage) as err:
        render("birthday_greeting", sign="x")
    assert err.value.field == "template" and "payment_reminder" in str(err.value)
    with pytest.raises(RejectedMessage) as err:
        render("satisfaction_survey", lang="fr", **FIELDS["satisfaction_survey"])
    assert err.value.field == "lang"


@pytest.mark.parametrize(("data", "words"), [
    ({"t": {"en": "hi"}}, "no Chinese"),
    ({"t": {"zh": "你好{a}", "en": "hi {b}"}}, "different fields"),
    ({"t": {"zh": "你好{a.b}"}}, "plain name"),
    ({"t": {"zh": "你好{a:>10}"}}, "plain name"),
    ({"t": {"zh": "请回复{options}"}}, "go together"),
    ({"t": {"zh": "你好{a}", "patterns": {"b": "x"}}}, "patterns for fields"),
])
def test_template_data_is_checked(data, words):
    with pytest.raises(ValueError) as err:
        Templates.from_mapping(data)
    assert words in str(err.value)
