"""Canonical models of electronic dispatch and return orders (电子派单 / 电子回单).

Owns: the five messages of the dispatch/return transaction (seed 001, 5.1 and 5.4) as
frozen pydantic models, the Chinese names of their fields (FIELD_NAMES_ZH) and the enums
they use. Python attributes are snake_case; each field's alias is its XML element name
(CompanyCode, SerialNumber, ...), so `model_validate(..., by_alias)` and `model_dump(by_alias=True)`
speak the wire vocabulary.
Must not: validate formats or business rules (protocols.orders.rules does, so that every
refusal carries a reason code and a message naming the field in English and Chinese),
touch XML (protocols.orders.wire), or import anything of ours.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal

#: ToCompany/Code value meaning "the customer's home province": the hub resolves it from
#: the number segment (号段) of CustomerMobile.
HOME = "HOME"

#: Chinese name of every wire field (seed 001, 5.4 where the seed names the field). Keys are
#: the XML element names, nested ones as a path. Rules quote these in their messages.
FIELD_NAMES_ZH: dict[str, str] = {
    # 电子派单基本信息 (dispatch order), seed order 1-13
    "CompanyCode": "公司编号",
    "SerialNumber": "流水号",
    "ToCompany": "派往公司名",
    "ToCompany/Code": "派往公司编号",
    "ToCompany/Name": "派往公司名",
    "DispatcherName": "派单人姓名",
    "DispatcherPhone": "派单人联系电话",
    "CustomerMobile": "用户手机号",
    "ComplainantName": "投诉人姓名",
    "ComplainantPhone": "投诉人联系电话",
    "ComplaintCategory": "投诉类别",
    "ComplaintIssue": "投诉问题",
    "FirstReplyDeadline": "初步答复时限要求",
    "FinalReplyDeadline": "最终答复时限要求",
    "DispatchTime": "派单时间",
    # 电子回单基本信息 (return order), seed order 1-7, plus the kind of reply
    "DispatchCompanyCode": "派单公司编号",
    "DispatchSerialNumber": "派单流水号",
    "ReplierName": "回单人姓名",
    "ReplierPhone": "回单人联系电话",
    "Result": "处理结果及答复意见",
    "ReplyTime": "回单时间",
    "ReplyKind": "答复类型",
    # success marks (成功标记)
    "ReceivedTime": "接收时间",
    "Status": "接收状态",
    "Reason": "拒收原因",
    # alarms (工作流监控)
    "Kind": "告警类型",
    "Deadline": "时限",
    "RaisedAt": "告警时间",
    "Parties": "告警通知对象",
}


def zh(field: str) -> str:
    """Chinese name of a wire field (the field name itself when none is known)."""
    return FIELD_NAMES_ZH.get(field, field)


class ReplyKind(StrEnum):
    """First reply (初步答复) or final reply (最终答复)."""

    first = "first"
    final = "final"


class ReceiptStatus(StrEnum):
    """A success mark (成功标记) accepts the message; a rejection must say why."""

    accepted = "accepted"
    rejected = "rejected"


class AlarmKind(StrEnum):
    """What workflow monitoring (工作流监控) reports when a step gets no feedback in time."""

    first_reply_overdue = "first_reply_overdue"
    final_reply_overdue = "final_reply_overdue"
    first_reply_warning = "first_reply_warning"
    final_reply_warning = "final_reply_warning"
    receipt_missing = "receipt_missing"


class _Wire(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_pascal,
        populate_by_name=True,
        str_strip_whitespace=False,  # text is carried as sent; rules refuse blank values
    )


class CompanyRef(_Wire):
    """派往公司: the company an order is sent to, by code and by name."""

    code: str = Field(
        description="派往公司编号: company code of the receiver, or HOME for the customer's home province",
        examples=["11", "HOME"],
    )
    name: str = Field(description="派往公司名: display name of the receiver (routing uses the code)", examples=["北京"])


class DispatchOrder(_Wire):
    """电子派单: a complaint forwarded to the party that must handle it (seed 001, 5.4)."""

    company_code: str = Field(description="公司编号: company code of the originator (sender)", examples=["44"])
    serial_number: str = Field(
        description="流水号: serial number, unique per originator; 1-32 of [0-9A-Za-z-]",
        examples=["20240611-000123"],
    )
    to_company: CompanyRef = Field(description="派往公司名: the company the order is sent to (code and name)")
    dispatcher_name: str = Field(description="派单人姓名: dispatcher's name, at most 50 characters", examples=["李娜"])
    dispatcher_phone: str = Field(description="派单人联系电话: dispatcher's phone", examples=["020-87654321"])
    customer_mobile: str = Field(
        description="用户手机号: the customer's mobile number; its first 7 digits (号段) give the home province",
        examples=["13901001234"],
    )
    complainant_name: str = Field(description="投诉人姓名: complainant's name, at most 50 characters", examples=["王先生"])
    complainant_phone: str = Field(description="投诉人联系电话: complainant's phone", examples=["13901001234"])
    complaint_category: str = Field(
        description="投诉类别: complaint category code (config/complaint_categories.yaml)", examples=["NETWORK_SIGNAL"]
    )
    complaint_issue: str = Field(description="投诉问题: the complaint, at most 2000 characters")
    first_reply_deadline: datetime = Field(
        description="初步答复时限要求: deadline for the first reply, with time zone; later than the dispatch time"
    )
    final_reply_deadline: datetime = Field(
        description="最终答复时限要求: deadline for the final reply, with time zone; not before the first"
    )
    dispatch_time: datetime = Field(description="派单时间: dispatch time, with time zone")

    @property
    def key(self) -> tuple[str, str]:
        """(originator, serial number): the identity of the order and of its transaction."""
        return (self.company_code, self.serial_number)


class ReturnOrder(_Wire):
    """电子回单: the receiver's result or reply to a dispatch order (seed 001, 5.4)."""

    company_code: str = Field(description="公司编号: company code of the replier", examples=["11"])
    dispatch_company_code: str = Field(description="派单公司编号: company code of the originator", examples=["44"])
    dispatch_serial_number: str = Field(
        description="派单流水号: serial number of the dispatch order", examples=["20240611-000123"]
    )
    replier_name: str = Field(description="回单人姓名: replier's name, at most 50 characters", examples=["张伟"])
    replier_phone: str = Field(description="回单人联系电话: replier's phone", examples=["010-12345678"])
    result: str = Field(description="处理结果及答复意见: result and reply, at most 2000 characters")
    reply_time: datetime = Field(description="回单时间: reply time, with time zone")
    reply_kind: ReplyKind = Field(description="答复类型: first (初步答复) or final (最终答复)")

    @property
    def key(self) -> tuple[str, str]:
        return (self.dispatch_company_code, self.dispatch_serial_number)


class DispatchReceipt(_Wire):
    """派单成功标记: the receiver's success mark (or rejection) for a dispatch order (5.1 step 3)."""

    company_code: str = Field(description="公司编号: company code of the party that confirms (the receiver)")
    dispatch_company_code: str = Field(description="派单公司编号: company code of the originator")
    dispatch_serial_number: str = Field(description="派单流水号: serial number of the dispatch order")
    received_time: datetime = Field(description="接收时间: time the order was received, with time zone")
    status: ReceiptStatus = Field(description="接收状态: accepted or rejected")
    reason: str | None = Field(None, description="拒收原因: why the order is rejected; required when rejected")

    @property
    def key(self) -> tuple[str, str]:
        return (self.dispatch_company_code, self.dispatch_serial_number)


class ReturnReceipt(_Wire):
    """回单成功标记: the originator's success mark (or rejection) for a return order (5.1 step 6)."""

    company_code: str = Field(description="公司编号: company code of the party that confirms (the originator)")
    dispatch_company_code: str = Field(description="派单公司编号: company code of the originator")
    dispatch_serial_number: str = Field(description="派单流水号: serial number of the dispatch order")
    reply_kind: ReplyKind = Field(description="答复类型: kind of the return order confirmed (first or final)")
    received_time: datetime = Field(description="接收时间: time the return order was received, with time zone")
    status: ReceiptStatus = Field(description="接收状态: accepted or rejected")
    reason: str | None = Field(None, description="拒收原因: why the return order is rejected; required when rejected")

    @property
    def key(self) -> tuple[str, str]:
        return (self.dispatch_company_code, self.dispatch_serial_number)


class OrderAlarm(_Wire):
    """工单告警: workflow monitoring (工作流监控) found a step without feedback in time."""

    dispatch_company_code: str = Field(description="派单公司编号: company code of the originator")
    dispatch_serial_number: str = Field(description="派单流水号: serial number of the dispatch order")
    kind: AlarmKind = Field(description="告警类型: which time limit is overdue or about to be")
    deadline: datetime = Field(description="时限: the time limit concerned, with time zone")
    raised_at: datetime = Field(description="告警时间: time the alarm was raised, with time zone")
    parties: tuple[str, ...] = Field(
        min_length=1, description="告警通知对象: company codes the alarm is reported to", examples=[("44", "11", "00")]
    )

    @property
    def key(self) -> tuple[str, str]:
        return (self.dispatch_company_code, self.dispatch_serial_number)


#: Every order message, by its XML root element name.
OrderMessage = DispatchOrder | ReturnOrder | DispatchReceipt | ReturnReceipt | OrderAlarm
MESSAGE_TYPES: dict[str, type[OrderMessage]] = {
    cls.__name__: cls for cls in (DispatchOrder, ReturnOrder, DispatchReceipt, ReturnReceipt, OrderAlarm)
}
