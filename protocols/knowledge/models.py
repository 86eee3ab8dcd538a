"""Canonical models of nationwide knowledge sharing (全网知识共享, seed 003 2.3.1 and 3.1.1).

Owns: the eleven messages of the knowledge flows as frozen pydantic models (publish,
update and revoke submissions, HQ's approval result notification, deliveries with their
receipts, feedback with reply and forward, version sync, the knowledge structure), the
Chinese names of their fields (FIELD_NAMES_ZH) and the enums they use. Python attributes
are snake_case; each field's alias is its XML element name, so `model_validate(...)` with
aliases and `model_dump(by_alias=True)` speak the wire vocabulary.
Must not: validate formats or business rules (protocols.knowledge.rules does, so every
refusal carries a reason code and names the field in English and Chinese), touch XML
(protocols.knowledge.wire), or import anything of ours.

Versions (版本号) count the changes of an item: the first publication is version 1, every
approved update adds one, and the revocation adds one more: the tombstone (撤销记录) is
the item's last and highest version. docs/knowledge.md explains why.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal

#: Company code of HQ (全国客服中心), the reviewer and publisher of nationwide knowledge.
HQ_CODE = "00"

#: Chinese name of every wire field. Keys are XML element names; nested fields are quoted by
#: their leaf name (Item/Title is 标题). Rules quote these in their messages.
FIELD_NAMES_ZH: dict[str, str] = {
    # 知识 (knowledge item)
    "Id": "知识编号",
    "ItemId": "知识编号",
    "Version": "版本号",
    "Title": "标题",
    "Content": "内容",
    "CategoryPath": "知识分类路径",
    "Segment": "分类编码",
    "Status": "知识状态",
    "EffectiveDate": "生效时间",
    "ExpiryDate": "失效时间",
    "OwnerNode": "归属节点",
    "Author": "撰写人",
    "Reviewer": "审核人",
    # 提交 (submission) and 审批结果通知 (approval result notification)
    "SerialNumber": "流水号",
    "Action": "操作类型",
    "SubmitterCode": "提交方公司编号",
    "LocalReviewer": "本地审核人",
    "SubmittedAt": "提交时间",
    "Note": "说明",
    "FeedbackRef": "关联反馈",
    "Item": "知识",
    "SubmissionSerialNumber": "提交流水号",
    "Outcome": "审批结果",
    "Opinion": "审核意见",
    "ReviewerAtHQ": "总部审核人",
    "ReviewedAt": "审核时间",
    # 下发 (delivery) and 成功标记 (receipt)
    "Recipients": "接收方",
    "Recipient": "接收方公司编号",
    "PublishedAt": "发布时间",
    "Tombstone": "撤销记录",
    "RevokedAt": "撤销时间",
    "CompanyCode": "公司编号",
    "ReceiptStatus": "接收状态",
    "RefusalCode": "拒收原因代码",
    "Reason": "拒收原因",
    "ReceivedAt": "接收时间",
    # 反馈 (feedback), 回复 (reply), 下发给归属二线 (forward)
    "FeedbackId": "反馈编号",
    "Text": "反馈内容",
    "Disposition": "处理结论",
    "ReplyText": "答复内容",
    "Replier": "答复人",
    "RepliedAt": "答复时间",
    "ForwardedBy": "转派人",
    "ForwardedAt": "转派时间",
    # 版本同步 (version sync)
    "RequestedAt": "请求时间",
    "TreeVersion": "知识结构版本号",
    "MountPoint": "挂载点",
    "Known": "已有知识列表",
    "ItemRef": "知识版本",
    "Digest": "目录摘要",
    "Value": "摘要值",
    "ItemCount": "知识条数",
    "RequestSerialNumber": "请求流水号",
    "SyncStatus": "同步结果",
    "RespondedAt": "应答时间",
    "Items": "待更新知识",
    "KnowledgeItem": "知识",
    "Tombstones": "撤销记录列表",
    "Orphans": "中心未知的知识",
    "Orphan": "中心未知的知识",
    "Problem": "问题类型",
    # 知识结构 (category tree)
    "CategoryTree": "知识结构",
    "Category": "知识分类",
    "Code": "分类编码",
    "Name": "分类名称",
    "UpdatedAt": "更新时间",
    # 告警 (the hub's overdue alarms to HQ)
    "KnowledgeAlarm": "知识共享告警",
    "Kind": "告警类型",
    "SubjectId": "对象编号",
    "Deadline": "时限",
    "RaisedAt": "告警时间",
}


def zh(field: str) -> str:
    """Chinese name of a wire field or path (the field name itself when none is known)."""
    return FIELD_NAMES_ZH.get(field) or FIELD_NAMES_ZH.get(field.rsplit("/", 1)[-1], field)


class Action(StrEnum):
    """What a submission or delivery does: 发布 publish, 更新 update, 撤销 revoke."""

    publish = "publish"
    update = "update"
    revoke = "revoke"


class KnowledgeStatus(StrEnum):
    """知识状态: the item's place in its lifecycle at the sender (seed 003 2.3.1 item 7)."""

    draft = "draft"          # 草稿
    submitted = "submitted"  # 待审核
    returned = "returned"    # 已退回
    approved = "approved"    # 已审核
    published = "published"  # 已发布
    revoked = "revoked"      # 已撤销


class ReviewOutcome(StrEnum):
    """审批结果: HQ approved the submission or returned it for modification (退回)."""

    approved = "approved"
    returned = "returned"


class ReceiptStatus(StrEnum):
    """接收状态: a success mark (成功标记) accepts the delivery; a rejection must say why."""

    accepted = "accepted"
    rejected = "rejected"


class Disposition(StrEnum):
    """处理结论 of a feedback: answered as is, or the knowledge must change (sent to its owner)."""

    answered = "answered"
    change_required = "change_required"


class SyncStatus(StrEnum):
    """同步结果: nothing to do, the difference follows, or the recipient must send its list."""

    in_sync = "in_sync"
    difference = "difference"
    list_required = "list_required"


class OrphanProblem(StrEnum):
    """Why HQ lists an item the recipient reported: unknown to HQ, or a version HQ never issued."""

    unknown_item = "unknown_item"
    version_ahead = "version_ahead"


class AlarmKind(StrEnum):
    """告警类型 of a KnowledgeAlarm: what a recipient has not done in time."""

    receipt_overdue = "receipt_overdue"                      # 下发成功标记超时未回
    structure_receipt_overdue = "structure_receipt_overdue"  # 知识结构成功标记超时未回
    reply_overdue = "reply_overdue"                          # 公告回复超过回复时限


class _Wire(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_pascal,
        populate_by_name=True,
        str_strip_whitespace=False,  # text is carried as sent; rules refuse blank values
    )


# ----------------------------------------------------------------------------- building blocks


class KnowledgeItem(_Wire):
    """知识: one version of a nationwide knowledge item (seed 003 3.1.1)."""

    id: str = Field(description="知识编号: identifier of the item, 1-40 letters, digits or hyphens, "
                                "unique in the network", examples=["KN-99-20240701-0001"])
    version: int = Field(description="版本号: positive whole number; 1 at publication, +1 per approved change")
    title: str = Field(description="标题: 1-200 characters on one line", examples=["5G新通话业务资费说明"])
    content: str = Field(description="内容: the knowledge text, 1-20000 characters, may span lines")
    category_path: tuple[str, ...] = Field(
        description="知识分类路径: category codes from the root of HQ's knowledge structure (知识结构) "
                    "down to the item's category, 1-10 segments", examples=[("NATIONWIDE", "NEW_SERVICE", "TARIFF")]
    )
    status: KnowledgeStatus = Field(description="知识状态: the item's lifecycle state at the sender")
    effective_date: datetime = Field(description="生效时间: from when the knowledge applies, with time zone")
    expiry_date: datetime | None = Field(
        None, description="失效时间: until when it applies, with time zone, later than the effective date; "
                          "absent when open-ended")
    owner_node: str = Field(description="归属节点: company code of the node that owns the item "
                                        "(the second-line platform 99, or HQ 00)", examples=["99"])
    author: str = Field(description="撰写人: author's name, 1-50 characters", examples=["陈思远"])
    reviewer: str | None = Field(
        None, description="审核人: the HQ reviewer who approved this version; absent until approved")


class Tombstone(_Wire):
    """撤销记录: a revoked item's last version; it wins over every version of the item."""

    item_id: str = Field(description="知识编号: the revoked item")
    version: int = Field(description="版本号: the tombstone's version, one more than the last published version")
    owner_node: str = Field(description="归属节点: company code of the node that owned the item")
    revoked_at: datetime = Field(description="撤销时间: when HQ published the revocation, with time zone")
    note: str | None = Field(None, description="说明: why the item was revoked, 1-2000 characters")


class ItemRef(_Wire):
    """知识版本: an item and a version."""

    item_id: str = Field(description="知识编号: the item")
    version: int = Field(description="版本号: the version")


class FeedbackRef(_Wire):
    """关联反馈: the feedback an update answers (seed 003 3.1.1.4)."""

    company_code: str = Field(description="公司编号: the province that sent the feedback")
    feedback_id: str = Field(description="反馈编号: the feedback's serial number at that province")


class Category(_Wire):
    """知识分类: one node of the knowledge structure, with its sub-categories."""

    code: str = Field(description="分类编码: 1-32 letters, digits, underscores or hyphens, unique in the tree",
                      examples=["TARIFF"])
    name: str = Field(description="分类名称: display name, 1-50 characters", examples=["资费"])
    children: tuple[Category, ...] = Field((), alias="Category",
                                           description="知识分类: the sub-categories, in display order")


class CategoryTree(_Wire):
    """知识结构: HQ's category tree, mounted under a province's own knowledge-base root (2.3.1 item 8)."""

    version: int = Field(description="版本号: the tree's version, +1 per change of the structure")
    mount_point: str | None = Field(
        None, description="挂载点: code of the recipient's own knowledge-base root the tree hangs under; "
                          "absent in HQ's own copy", examples=["SH-KB-ROOT"])
    updated_at: datetime = Field(description="更新时间: when HQ last changed the structure, with time zone")
    categories: tuple[Category, ...] = Field(alias="Category", description="知识分类: the top-level categories")


class CatalogDigest(_Wire):
    """目录摘要: a fingerprint of the (item, version) pairs a node holds (protocols.knowledge.versions)."""

    value: str = Field(description="摘要值: SHA-256 in lower-case hex of the sorted 'ItemId:Version' lines")
    item_count: int = Field(description="知识条数: how many items the fingerprint covers")


class Orphan(_Wire):
    """中心未知的知识: an item a recipient reported that HQ cannot account for."""

    item_id: str = Field(description="知识编号: the item as the recipient reported it")
    version: int = Field(description="版本号: the version the recipient reported")
    problem: OrphanProblem = Field(description="问题类型: unknown_item or version_ahead")


# ----------------------------------------------------------------------------- messages


class KnowledgeSubmission(_Wire):
    """知识提交: publish, update or revoke, reviewed locally, submitted to HQ (3.1.1.1-3.1.1.3)."""

    serial_number: str = Field(description="流水号: unique per submitter, 1-32 letters, digits or hyphens",
                               examples=["20240701-0001"])
    action: Action = Field(description="操作类型: publish, update or revoke")
    submitter_code: str = Field(description="提交方公司编号: company code of the sender", examples=["99"])
    local_reviewer: str = Field(description="本地审核人: the administrator who reviewed it before submission")
    submitted_at: datetime = Field(description="提交时间: submission time, with time zone")
    note: str | None = Field(None, description="说明: what changed (update) or why (revoke; required), "
                                               "1-2000 characters")
    feedback_ref: FeedbackRef | None = Field(None, description="关联反馈: the feedback an update answers")
    item: KnowledgeItem = Field(description="知识: the item as proposed, with the version it will have when approved")

    @property
    def key(self) -> tuple[str, str]:
        return (self.submitter_code, self.serial_number)


class ReviewResult(_Wire):
    """审批结果通知: HQ's decision on a submission, sent to the submitter (2.3.1 item 9)."""

    submitter_code: str = Field(description="提交方公司编号: the submitter the notification goes to")
    submission_serial_number: str = Field(description="提交流水号: SerialNumber of the submission decided")
    action: Action = Field(description="操作类型: the submission's action")
    item_id: str = Field(description="知识编号: the item")
    version: int = Field(description="版本号: the version decided")
    outcome: ReviewOutcome = Field(description="审批结果: approved, or returned for modification (退回)")
    opinion: str | None = Field(None, description="审核意见: HQ's opinion, 1-2000 characters; required when returned")
    reviewer_at_hq: str = Field(alias="ReviewerAtHQ", description="总部审核人: HQ administrator who decided")
    reviewed_at: datetime = Field(description="审核时间: decision time, with time zone")

    @property
    def submission_key(self) -> tuple[str, str]:
        return (self.submitter_code, self.submission_serial_number)


class KnowledgeDelivery(_Wire):
    """知识下发: HQ publishes, updates or revokes an approved item at the designated recipients."""

    action: Action = Field(description="操作类型: publish, update or revoke")
    recipients: tuple[str, ...] = Field(description="接收方: company codes of all designated recipients")
    published_at: datetime = Field(description="发布时间: when HQ published this version, with time zone")
    item: KnowledgeItem | None = Field(None, description="知识: the published version (publish and update)")
    tombstone: Tombstone | None = Field(None, description="撤销记录: the revocation (revoke)")

    @property
    def item_id(self) -> str:
        return self.item.id if self.item is not None else self.tombstone.item_id  # type: ignore[union-attr]

    @property
    def version(self) -> int:
        return self.item.version if self.item is not None else self.tombstone.version  # type: ignore[union-attr]


class DeliveryReceipt(_Wire):
    """下发成功标记: a recipient confirms (or rejects) one delivered version."""

    company_code: str = Field(description="公司编号: company code of the recipient (the sender)")
    item_id: str = Field(description="知识编号: the item delivered")
    version: int = Field(description="版本号: the version delivered")
    receipt_status: ReceiptStatus = Field(description="接收状态: accepted or rejected")
    refusal_code: str | None = Field(
        None, description="拒收原因代码: a reason code of protocols/errors.py when rejected, "
                          "e.g. STALE_VERSION or ITEM_REVOKED")
    reason: str | None = Field(None, description="拒收原因: why it was rejected, 1-500 characters; "
                                                 "required when rejected")
    received_at: datetime = Field(description="接收时间: when the recipient received it, with time zone")


class Feedback(_Wire):
    """知识反馈: a province's feedback on a published item, reviewed locally, sent to HQ (3.1.1.4)."""

    company_code: str = Field(description="公司编号: the province sending the feedback", examples=["44"])
    feedback_id: str = Field(description="反馈编号: serial number unique per province", examples=["FB-20240703-0007"])
    item_id: str = Field(description="知识编号: the item the feedback is about")
    version: int = Field(description="版本号: the version the province saw")
    text: str = Field(description="反馈内容: what is wrong or missing, 1-2000 characters")
    author: str = Field(description="撰写人: the user who wrote the feedback")
    local_reviewer: str = Field(description="本地审核人: the province administrator who reviewed it")
    submitted_at: datetime = Field(description="提交时间: submission time, with time zone")

    @property
    def key(self) -> tuple[str, str]:
        return (self.company_code, self.feedback_id)


class FeedbackReply(_Wire):
    """反馈答复: HQ's reply to the province that sent a feedback."""

    company_code: str = Field(description="公司编号: the province that sent the feedback (the addressee)")
    feedback_id: str = Field(description="反馈编号: the feedback answered")
    item_id: str = Field(description="知识编号: the item the feedback is about")
    disposition: Disposition = Field(description="处理结论: answered, or change_required (sent to the owner)")
    reply_text: str = Field(description="答复内容: HQ's answer, 1-2000 characters")
    replier: str = Field(description="答复人: HQ administrator who answered")
    replied_at: datetime = Field(description="答复时间: reply time, with time zone")

    @property
    def key(self) -> tuple[str, str]:
        return (self.company_code, self.feedback_id)


class FeedbackForward(_Wire):
    """反馈下发: HQ sends a feedback that needs the knowledge changed to the item's owner."""

    owner_node: str = Field(description="归属节点: the owner of the item (the addressee)", examples=["99"])
    company_code: str = Field(description="公司编号: the province that sent the feedback")
    feedback_id: str = Field(description="反馈编号: the feedback")
    item_id: str = Field(description="知识编号: the item to change")
    version: int = Field(description="版本号: the version the feedback is about")
    text: str = Field(description="反馈内容: the province's feedback, as sent")
    opinion: str = Field(description="审核意见: what HQ wants changed, 1-2000 characters")
    forwarded_by: str = Field(description="转派人: HQ administrator who sent it down")
    forwarded_at: datetime = Field(description="转派时间: when, with time zone")

    @property
    def key(self) -> tuple[str, str]:
        return (self.company_code, self.feedback_id)


class SyncRequest(_Wire):
    """版本同步请求: a recipient asks HQ for what it is missing (2.3.1 item 6)."""

    company_code: str = Field(description="公司编号: the recipient asking (the sender)")
    serial_number: str = Field(description="流水号: unique per sender")
    requested_at: datetime = Field(description="请求时间: with time zone")
    tree_version: int = Field(description="知识结构版本号: version of the knowledge structure it holds; 0 for none")
    mount_point: str | None = Field(None, description="挂载点: code of its own knowledge-base root")
    known: tuple[ItemRef, ...] | None = Field(
        None, description="已有知识列表: every item it holds with its version (or Digest instead)")
    digest: CatalogDigest | None = Field(None, description="目录摘要: a fingerprint of what it holds (or Known)")


class SyncResponse(_Wire):
    """版本同步应答: the difference between HQ's catalog for the recipient and what it holds."""

    company_code: str = Field(description="公司编号: the recipient answered (the addressee)")
    request_serial_number: str = Field(description="请求流水号: SerialNumber of the request")
    sync_status: SyncStatus = Field(description="同步结果: in_sync, difference or list_required")
    responded_at: datetime = Field(description="应答时间: with time zone")
    digest: CatalogDigest = Field(description="目录摘要: fingerprint of HQ's catalog for the recipient; "
                                              "after applying the difference the recipient has the same")
    items: tuple[KnowledgeItem, ...] = Field((), description="待更新知识: versions to apply, by item id")
    tombstones: tuple[Tombstone, ...] = Field((), description="撤销记录列表: items to remove, by item id")
    orphans: tuple[Orphan, ...] = Field((), description="中心未知的知识: reported items HQ cannot account for")
    category_tree: CategoryTree | None = Field(
        None, description="知识结构: the whole tree, mounted at the request's MountPoint, when the recipient's "
                          "is older")


class KnowledgeAlarm(_Wire):
    """知识共享告警: the hub tells HQ a recipient did not confirm a delivery or reply to an announcement in time."""

    kind: AlarmKind = Field(description="告警类型: receipt_overdue, structure_receipt_overdue or reply_overdue")
    subject_id: str = Field(description="对象编号: the item (知识编号), STRUCTURE for the knowledge structure, or "
                                        "the announcement (公告编号)", examples=["KN-99-20240701-0001"])
    version: int | None = Field(None, description="版本号: the version awaited (items and the structure)")
    company_code: str = Field(description="公司编号: the recipient that is late")
    deadline: datetime = Field(description="时限: when the receipt or reply was due, with time zone")
    raised_at: datetime = Field(description="告警时间: when the hub raised the alarm, with time zone")


#: Every knowledge message, by its XML root element name.
KnowledgeMessage = (KnowledgeItem | KnowledgeSubmission | ReviewResult | KnowledgeDelivery | DeliveryReceipt
                    | Feedback | FeedbackReply | FeedbackForward | SyncRequest | SyncResponse | CategoryTree
                    | KnowledgeAlarm)
MESSAGE_TYPES: dict[str, type[KnowledgeMessage]] = {
    cls.__name__: cls for cls in (KnowledgeItem, KnowledgeSubmission, ReviewResult, KnowledgeDelivery,
                                  DeliveryReceipt, Feedback, FeedbackReply, FeedbackForward, SyncRequest,
                                  SyncResponse, CategoryTree, KnowledgeAlarm)
}

#: List-valued elements written as a wrapper holding repeated items: wrapper -> item element.
#: Any other tuple field repeats its own element in place (Category inside Category).
WRAPPED: dict[str, str] = {
    "CategoryPath": "Segment",
    "Recipients": "Recipient",
    "Known": "ItemRef",
    "Items": "KnowledgeItem",
    "Tombstones": "Tombstone",
    "Orphans": "Orphan",
}
