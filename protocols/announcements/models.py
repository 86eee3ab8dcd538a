"""Canonical models of nationwide announcement sharing (全网公告共享, seed 003 2.3.2).

Owns: the seven messages of the announcement flows as frozen pydantic models (the
announcement itself, its submission to HQ, return for modification, publication, replies,
the return and the acceptance of a reply), the Chinese names of their fields
(FIELD_NAMES_ZH) and the enums they use. Aliases are the XML element names.
Must not: validate formats or business rules (protocols.announcements.rules), touch XML
(protocols.announcements.wire), or import anything of ours.

Fault notices from network management (故障信息通告) and planned cut-overs (割接) are
announcements of Kind fault and cutover; their closing notice (结束通告) is the same
announcement published again with Status closed and its EndTime (domain 6, scenario 3).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal

#: Company code of HQ (全国客服中心), which reviews and publishes nationwide announcements.
HQ_CODE = "00"

FIELD_NAMES_ZH: dict[str, str] = {
    # 公告 (announcement)
    "Id": "公告编号",
    "AnnouncementId": "公告编号",
    "Title": "标题",
    "Content": "内容",
    "Urgency": "紧急程度",
    "Scope": "发布范围",
    "Node": "节点编码",
    "Group": "节点组",
    "RepliesRequired": "是否需要回复",
    "ReplyDeadline": "回复时限",
    "Kind": "公告类型",
    "Status": "公告状态",
    "SourceRef": "来源编号",
    "StartTime": "开始时间",
    "EndTime": "结束时间",
    # 提交 (submission), 退回 (return for modification), 发布 (publication)
    "SerialNumber": "流水号",
    "SubmitterCode": "提交方公司编号",
    "LocalReviewer": "本地审核人",
    "SubmittedAt": "提交时间",
    "Announcement": "公告",
    "SubmissionSerialNumber": "提交流水号",
    "Opinion": "审核意见",
    "Reviewer": "总部审核人",
    "ReturnedAt": "退回时间",
    "OriginatorCode": "发起方公司编号",
    "PublishedAt": "发布时间",
    # 回复 (reply)
    "CompanyCode": "回复方公司编号",
    "Replier": "回复人",
    "RepliedAt": "回复时间",
    "ReplySerialNumber": "回复流水号",
    "AcceptedAt": "确认时间",
}


def zh(field: str) -> str:
    """Chinese name of a wire field or path (the field name itself when none is known)."""
    return FIELD_NAMES_ZH.get(field) or FIELD_NAMES_ZH.get(field.rsplit("/", 1)[-1], field)


class Urgency(StrEnum):
    """紧急程度: normal 一般, urgent 紧急, critical 特急."""

    normal = "normal"
    urgent = "urgent"
    critical = "critical"


class AnnouncementKind(StrEnum):
    """公告类型: general 一般公告, fault 故障通告, cutover 割接公告."""

    general = "general"
    fault = "fault"
    cutover = "cutover"


class AnnouncementStatus(StrEnum):
    """公告状态: open 生效中, closed 已结束 (the closing notice)."""

    open = "open"
    closed = "closed"


class _Wire(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_pascal,
        populate_by_name=True,
        str_strip_whitespace=False,
    )


class Scope(_Wire):
    """发布范围: the nodes and node groups an announcement is for (config/nodes.yaml)."""

    nodes: tuple[str, ...] = Field((), alias="Node", description="节点编码: company codes, each once",
                                   examples=[("31", "00")])
    groups: tuple[str, ...] = Field((), alias="Group", description="节点组: groups of config/nodes.yaml such as "
                                    "provinces, second_line, all", examples=[("provinces",)])


class Announcement(_Wire):
    """公告: a nationwide announcement (seed 003 2.3.2)."""

    id: str = Field(description="公告编号: 1-40 letters, digits or hyphens, unique in the network",
                    examples=["GG-00-20240710-0001"])
    title: str = Field(description="标题: 1-200 characters on one line")
    content: str = Field(description="内容: the announcement text, 1-4000 characters, may span lines")
    urgency: Urgency = Field(description="紧急程度: normal, urgent or critical")
    scope: Scope = Field(description="发布范围: at least one node or group")
    replies_required: bool = Field(description="是否需要回复: whether recipients must reply")
    reply_deadline: datetime | None = Field(
        None, description="回复时限: when replies are due, with time zone; required exactly when replies are")
    kind: AnnouncementKind = Field(description="公告类型: general, fault or cutover")
    status: AnnouncementStatus = Field(description="公告状态: open, or closed by the closing notice")
    source_ref: str | None = Field(None, description="来源编号: the NMS fault or cut-over ticket it comes from; "
                                                     "repeated alarms of one fault share it",
                                   examples=["NMS-31-20240710-000457"])
    start_time: datetime | None = Field(None, description="开始时间: when the fault began or the cut-over starts")
    end_time: datetime | None = Field(None, description="结束时间: when the fault was cleared or the cut-over ends; "
                                                        "required when a fault is closed")


class AnnouncementSubmission(_Wire):
    """公告提交: a province or the second-line platform submits an announcement to HQ (2.3.2 item 2)."""

    serial_number: str = Field(description="流水号: unique per submitter; a resubmission uses a new one")
    submitter_code: str = Field(description="提交方公司编号: company code of the sender")
    local_reviewer: str = Field(description="本地审核人: the administrator who reviewed it locally")
    submitted_at: datetime = Field(description="提交时间: with time zone")
    announcement: Announcement = Field(description="公告: the announcement as proposed, Status open")

    @property
    def key(self) -> tuple[str, str]:
        return (self.submitter_code, self.serial_number)


class ReturnForModification(_Wire):
    """退回修改: HQ returns a submitted announcement to its submitter with an opinion."""

    submitter_code: str = Field(description="提交方公司编号: the submitter (the addressee)")
    submission_serial_number: str = Field(description="提交流水号: SerialNumber of the submission returned")
    announcement_id: str = Field(description="公告编号: the announcement")
    opinion: str = Field(description="审核意见: what to modify, 1-2000 characters")
    reviewer: str = Field(description="总部审核人: HQ administrator who returned it")
    returned_at: datetime = Field(description="退回时间: with time zone")

    @property
    def submission_key(self) -> tuple[str, str]:
        return (self.submitter_code, self.submission_serial_number)


class AnnouncementPublish(_Wire):
    """公告发布: HQ publishes an announcement (or its closing notice) to the nodes in its scope."""

    originator_code: str = Field(description="发起方公司编号: who raised it: the submitter, or HQ (00) for its own "
                                             "and for network-management faults")
    reviewer: str | None = Field(None, description="总部审核人: HQ administrator who approved a submitted "
                                                    "announcement; absent for announcements raised automatically")
    published_at: datetime = Field(description="发布时间: with time zone")
    announcement: Announcement = Field(description="公告: the announcement as published")


class AnnouncementReply(_Wire):
    """公告回复: a recipient's reply to an announcement that asks for one (2.3.2 item 4)."""

    company_code: str = Field(description="回复方公司编号: the replying node (the sender)")
    serial_number: str = Field(description="流水号: unique per replier; a resubmitted reply uses a new one")
    announcement_id: str = Field(description="公告编号: the announcement replied to")
    content: str = Field(description="内容: the reply, 1-2000 characters")
    replier: str = Field(description="回复人: who wrote it")
    local_reviewer: str = Field(description="本地审核人: the administrator who reviewed it locally")
    replied_at: datetime = Field(description="回复时间: with time zone")

    @property
    def key(self) -> tuple[str, str]:
        return (self.company_code, self.serial_number)


class ReplyReturn(_Wire):
    """回复退回: HQ returns a reply to its sender for modification."""

    company_code: str = Field(description="回复方公司编号: the replier (the addressee)")
    reply_serial_number: str = Field(description="回复流水号: SerialNumber of the reply returned")
    announcement_id: str = Field(description="公告编号: the announcement")
    opinion: str = Field(description="审核意见: what to modify, 1-2000 characters")
    reviewer: str = Field(description="总部审核人: HQ administrator who returned it")
    returned_at: datetime = Field(description="退回时间: with time zone")

    @property
    def reply_key(self) -> tuple[str, str]:
        return (self.company_code, self.reply_serial_number)


class ReplyAccepted(_Wire):
    """回复确认: HQ accepts a reply; the recipient's obligation is fulfilled."""

    company_code: str = Field(description="回复方公司编号: the replier (the addressee)")
    reply_serial_number: str = Field(description="回复流水号: SerialNumber of the reply accepted")
    announcement_id: str = Field(description="公告编号: the announcement")
    reviewer: str = Field(description="总部审核人: HQ administrator who accepted it")
    accepted_at: datetime = Field(description="确认时间: with time zone")

    @property
    def reply_key(self) -> tuple[str, str]:
        return (self.company_code, self.reply_serial_number)


AnnouncementMessage = (Announcement | AnnouncementSubmission | ReturnForModification | AnnouncementPublish
                       | AnnouncementReply | ReplyReturn | ReplyAccepted)
MESSAGE_TYPES: dict[str, type[AnnouncementMessage]] = {
    cls.__name__: cls for cls in (Announcement, AnnouncementSubmission, ReturnForModification, AnnouncementPublish,
                                  AnnouncementReply, ReplyReturn, ReplyAccepted)
}

#: No wrapped lists: Scope repeats its Node and Group elements in place.
WRAPPED: dict[str, str] = {}
