"""The standard SMS texts (domain 7; seed 001 5.3, seed 003), Chinese first, English available.

Plain data, checked and rendered by mappings/sms/templates.py. Placeholders are `{name}`
and nothing else (no attribute access, no format specs). `{options}` is filled from the
template's `options`, so the survey text and the reply parser cannot disagree.
`{sign}` is the operator's signature (短信签名), required in Chinese SMS.
"""

from __future__ import annotations

TEXTS: dict[str, dict] = {
    "payment_reminder": {
        "title": {"zh": "缴费提醒", "en": "Payment reminder before suspension"},
        "zh": "【{sign}】尊敬的客户，您的号码{number}截至{as_of}余额{balance}元，已低于停机额度。"
              "为免停机影响使用，请于{due_date}前缴费，如已缴费请忽略。咨询请拨{hotline}。",
        "en": "[{sign}] Dear customer, the balance of {number} was {balance} yuan on {as_of}, below "
              "the suspension threshold. To avoid suspension please pay before {due_date}; ignore "
              "this if you have paid. Questions: call {hotline}.",
    },
    "one_time_password": {
        "title": {"zh": "随机密码（验证码）", "en": "One-time password for identity checks"},
        "zh": "【{sign}】您的验证码为{code}，{minutes}分钟内有效，仅用于客服身份验证。"
              "工作人员不会向您索取验证码，请勿告知他人。",
        "en": "[{sign}] Your verification code is {code}, valid for {minutes} minutes, for identity "
              "checks by customer service only. Our staff never ask for it: do not tell anyone.",
        "patterns": {"code": r"[0-9]{4,8}", "minutes": r"[0-9]{1,3}"},
    },
    "complaint_reply": {
        "title": {"zh": "投诉处理回复通知", "en": "Complaint reply notice"},
        "zh": "【{sign}】尊敬的客户，您于{complaint_date}反映的问题（工单号{ticket}）已处理：{result}。"
              "如有疑问请拨{hotline}。",
        "en": "[{sign}] Dear customer, the problem you reported on {complaint_date} (ticket {ticket}) "
              "has been handled: {result}. Questions: call {hotline}.",
    },
    "satisfaction_survey": {
        "title": {"zh": "满意度调查", "en": "Satisfaction survey"},
        "zh": "【{sign}】尊敬的客户，您对本次服务（工单号{ticket}）是否满意？请回复数字：{options}。回复免费。",
        "en": "[{sign}] Dear customer, how satisfied are you with our service (ticket {ticket})? "
              "Reply with a number: {options}. Replies are free.",
        "options": {
            "1": {"zh": "满意", "en": "satisfied"},
            "2": {"zh": "基本满意", "en": "fairly satisfied"},
            "3": {"zh": "不满意", "en": "dissatisfied"},
        },
    },
}
