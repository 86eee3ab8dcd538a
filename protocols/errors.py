"""The hub's error tree and reason codes: one place for every way a message can fail.

Every error carries a ReasonCode. The code, never the message text, decides retry versus
dead letter, fills the negative acknowledgement sent back to the sender and labels metrics.

    HubError                      base; .reason (ReasonCode), .detail (English sentence),
    |                             .field (offending field, if any), .value
    +-- RejectedMessage           the sender's message is wrong; never retried:
    |                             dead letter + negative acknowledgement to the sender
    +-- TransientFailure          a partner or resource is unavailable now; retried through
    |                             the backoff tiers, dead-lettered when the route's limit is hit
    +-- ConfigError               a configuration file is invalid; names file, line, column
    +-- ProtocolViolation         a conversation step is illegal in the current state
                                  (a RejectedMessage subclass: the peer broke the protocol)

Messages are sentences: what happened, the offending value, what to do. Chinese text for
each reason lives in REASON_TEXT_ZH so that negative acknowledgements and the console
speak Chinese first (the operator's requirement) with English available.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    # envelope and transport
    MISSING_PROPERTY = "MISSING_PROPERTY"
    SENDER_UNAUTHENTICATED = "SENDER_UNAUTHENTICATED"
    UNKNOWN_NODE = "UNKNOWN_NODE"
    SPOOFED_SENDER = "SPOOFED_SENDER"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    OVERSIZE = "OVERSIZE"
    DUPLICATE = "DUPLICATE"
    # bytes and XML
    ENCODING_INVALID = "ENCODING_INVALID"
    ENCODING_MISMATCH = "ENCODING_MISMATCH"
    XML_MALFORMED = "XML_MALFORMED"
    XML_FORBIDDEN = "XML_FORBIDDEN"
    XSD_INVALID = "XSD_INVALID"
    # business content
    FIELD_INVALID = "FIELD_INVALID"
    DEADLINE_ORDER = "DEADLINE_ORDER"
    UNKNOWN_SEGMENT = "UNKNOWN_SEGMENT"
    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    STALE_VERSION = "STALE_VERSION"
    ITEM_REVOKED = "ITEM_REVOKED"
    SENDER_NOT_PERMITTED = "SENDER_NOT_PERMITTED"
    # routing
    NO_ROUTE = "NO_ROUTE"
    ROUTE_AMBIGUOUS = "ROUTE_AMBIGUOUS"
    NO_DESTINATION = "NO_DESTINATION"
    # partners and resources (transient)
    PARTNER_TIMEOUT = "PARTNER_TIMEOUT"
    PARTNER_UNAVAILABLE = "PARTNER_UNAVAILABLE"
    PARTNER_FAULT = "PARTNER_FAULT"
    # the partner answered that it will never take this message (a CRM's Deliver refused, a
    # soap:Client fault): dead-lettered at once, not retried
    PARTNER_REFUSED = "PARTNER_REFUSED"
    SMPP_THROTTLED = "SMPP_THROTTLED"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    PROCESSING_ERROR = "PROCESSING_ERROR"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    RETRY_EXHAUSTED = "RETRY_EXHAUSTED"
    DELIVERY_LIMIT = "DELIVERY_LIMIT"
    # configuration
    CONFIG_INVALID = "CONFIG_INVALID"
    # SMPP (SMS centre): submit_sm_resp command_status classes, bind refusals, MO decoding.
    # SMPP_THROTTLED (above) is ESME_RTHROTTLED; protocols/smpp/window.py maps every
    # command_status of SMPP 3.4 section 5.1.3 to one of these.
    SMPP_QUEUE_FULL = "SMPP_QUEUE_FULL"
    SMPP_SYSTEM_ERROR = "SMPP_SYSTEM_ERROR"
    SMPP_NOT_BOUND = "SMPP_NOT_BOUND"
    SMPP_SUBMIT_FAILED = "SMPP_SUBMIT_FAILED"
    SMPP_UNKNOWN_STATUS = "SMPP_UNKNOWN_STATUS"
    SMPP_INVALID_DESTINATION = "SMPP_INVALID_DESTINATION"
    SMPP_INVALID_SOURCE = "SMPP_INVALID_SOURCE"
    SMPP_INVALID_PDU = "SMPP_INVALID_PDU"
    SMPP_REJECTED = "SMPP_REJECTED"
    SMPP_BIND_FAILED = "SMPP_BIND_FAILED"
    SMPP_INVALID_PASSWORD = "SMPP_INVALID_PASSWORD"
    SMPP_INVALID_SYSTEM_ID = "SMPP_INVALID_SYSTEM_ID"
    SMPP_DATA_CODING = "SMPP_DATA_CODING"
    # SFTP file transfer (adapters/sftp, protocols/files). Host key and authentication
    # refusals are never retried: an operator must fix known_hosts or the key (docs/sftp.md).
    SFTP_HOST_KEY_UNKNOWN = "SFTP_HOST_KEY_UNKNOWN"
    SFTP_HOST_KEY_CHANGED = "SFTP_HOST_KEY_CHANGED"
    SFTP_AUTH_FAILED = "SFTP_AUTH_FAILED"
    SFTP_UNAVAILABLE = "SFTP_UNAVAILABLE"
    SFTP_CHECKSUM_MISMATCH = "SFTP_CHECKSUM_MISMATCH"
    SFTP_REMOTE_REFUSED = "SFTP_REMOTE_REFUSED"
    SFTP_NAME_INVALID = "SFTP_NAME_INVALID"
    SFTP_MARKER_INVALID = "SFTP_MARKER_INVALID"
    SFTP_FILE_CHANGED = "SFTP_FILE_CHANGED"
    # HTTP clients of the hub (adapters/wap, docs/wap.md): refused credentials, over the rate.
    CLIENT_UNAUTHORIZED = "CLIENT_UNAUTHORIZED"
    CLIENT_RATE_LIMITED = "CLIENT_RATE_LIMITED"


#: Reasons that are worth retrying: the same message may succeed later.
TRANSIENT_REASONS = frozenset(
    {
        ReasonCode.PARTNER_TIMEOUT,
        ReasonCode.PARTNER_UNAVAILABLE,
        ReasonCode.PARTNER_FAULT,
        ReasonCode.SMPP_THROTTLED,
        ReasonCode.SMPP_QUEUE_FULL,
        ReasonCode.SMPP_SYSTEM_ERROR,
        ReasonCode.SMPP_NOT_BOUND,
        ReasonCode.SMPP_SUBMIT_FAILED,
        ReasonCode.SMPP_UNKNOWN_STATUS,
        ReasonCode.STORE_UNAVAILABLE,
        ReasonCode.PROCESSING_ERROR,
        # A conversation step that came before the step it follows (sent back to back, taken
        # by another lane or hub process): retried once, then refused as ILLEGAL_TRANSITION.
        ReasonCode.OUT_OF_ORDER,
        # The SFTP server is down or the link dropped: the transfer resumes on retry; a
        # checksum mismatch restarts the transfer cleanly.
        ReasonCode.SFTP_UNAVAILABLE,
        ReasonCode.SFTP_CHECKSUM_MISMATCH,
    }
)

REASON_TEXT_ZH: dict[ReasonCode, str] = {
    ReasonCode.MISSING_PROPERTY: "消息缺少必需的属性",
    ReasonCode.SENDER_UNAUTHENTICATED: "无法确认发送方身份(缺少 user_id)",
    ReasonCode.UNKNOWN_NODE: "未知的节点",
    ReasonCode.SPOOFED_SENDER: "报文中的公司编号与认证的发送节点不符",
    ReasonCode.UNKNOWN_TYPE: "未知的消息类型",
    ReasonCode.UNSUPPORTED_VERSION: "不支持的报文版本",
    ReasonCode.OVERSIZE: "消息超过大小限制",
    ReasonCode.DUPLICATE: "重复消息",
    ReasonCode.ENCODING_INVALID: "报文字节不符合声明的字符编码",
    ReasonCode.ENCODING_MISMATCH: "声明的字符编码前后不一致",
    ReasonCode.XML_MALFORMED: "XML 格式错误",
    ReasonCode.XML_FORBIDDEN: "XML 含有禁止的内容(DTD/实体)",
    ReasonCode.XSD_INVALID: "报文不符合 XML Schema",
    ReasonCode.FIELD_INVALID: "字段取值不合法",
    ReasonCode.DEADLINE_ORDER: "时限先后顺序不合法",
    ReasonCode.UNKNOWN_SEGMENT: "未知的号段",
    ReasonCode.UNKNOWN_REFERENCE: "引用的单据不存在或已关闭",
    ReasonCode.ILLEGAL_TRANSITION: "当前状态下不允许此操作",
    ReasonCode.STALE_VERSION: "版本过旧",
    ReasonCode.ITEM_REVOKED: "知识已撤销,不能再发布或更新",
    ReasonCode.SENDER_NOT_PERMITTED: "发送方无权发送此消息或执行此操作",
    ReasonCode.NO_ROUTE: "没有匹配的路由",
    ReasonCode.ROUTE_AMBIGUOUS: "多条路由同时匹配",
    ReasonCode.NO_DESTINATION: "路由没有得到任何目的节点",
    ReasonCode.PARTNER_TIMEOUT: "对端系统超时",
    ReasonCode.PARTNER_UNAVAILABLE: "对端系统不可用",
    ReasonCode.PARTNER_FAULT: "对端系统返回错误",
    ReasonCode.PARTNER_REFUSED: "对端系统拒收该消息(不再重试)",
    ReasonCode.SMPP_THROTTLED: "短信中心限流",
    ReasonCode.STORE_UNAVAILABLE: "状态库不可用",
    ReasonCode.PROCESSING_ERROR: "处理时发生内部错误",
    ReasonCode.OUT_OF_ORDER: "消息先于其前序步骤到达,稍后重试",
    ReasonCode.RETRY_EXHAUSTED: "重试次数已用完",
    ReasonCode.DELIVERY_LIMIT: "投递次数超过上限",
    ReasonCode.CONFIG_INVALID: "配置无效",
    ReasonCode.SMPP_QUEUE_FULL: "短信中心消息队列已满",
    ReasonCode.SMPP_SYSTEM_ERROR: "短信中心系统错误",
    ReasonCode.SMPP_NOT_BOUND: "与短信中心的连接未绑定",
    ReasonCode.SMPP_SUBMIT_FAILED: "短信中心提交失败",
    ReasonCode.SMPP_UNKNOWN_STATUS: "短信中心返回未知的状态码",
    ReasonCode.SMPP_INVALID_DESTINATION: "短信目的号码无效",
    ReasonCode.SMPP_INVALID_SOURCE: "短信源号码无效",
    ReasonCode.SMPP_INVALID_PDU: "短信中心认为提交的报文不合法",
    ReasonCode.SMPP_REJECTED: "短信中心拒绝了该短信",
    ReasonCode.SMPP_BIND_FAILED: "短信中心拒绝绑定",
    ReasonCode.SMPP_INVALID_PASSWORD: "短信中心拒绝绑定:密码错误",
    ReasonCode.SMPP_INVALID_SYSTEM_ID: "短信中心拒绝绑定:系统标识(system_id)错误",
    ReasonCode.SMPP_DATA_CODING: "不支持的短信编码(data_coding)",
    ReasonCode.SFTP_HOST_KEY_UNKNOWN: "SFTP 服务器的主机密钥未登记(known_hosts 中没有),已拒绝连接",
    ReasonCode.SFTP_HOST_KEY_CHANGED: "SFTP 服务器的主机密钥与登记的不符,已拒绝连接(可能被冒充)",
    ReasonCode.SFTP_AUTH_FAILED: "SFTP 服务器拒绝了密钥认证",
    ReasonCode.SFTP_UNAVAILABLE: "无法连接 SFTP 服务器或传输中断,稍后续传",
    ReasonCode.SFTP_CHECKSUM_MISMATCH: "文件校验和(SHA-256)或大小不一致,将重新传输",
    ReasonCode.SFTP_REMOTE_REFUSED: "SFTP 服务器拒绝了文件操作(权限、路径或空间)",
    ReasonCode.SFTP_NAME_INVALID: "文件名不符合命名规则",
    ReasonCode.SFTP_MARKER_INVALID: "标记文件格式错误或与数据文件不符",
    ReasonCode.SFTP_FILE_CHANGED: "待发送的文件在排队期间已被修改,按新版本重新发送",
    ReasonCode.CLIENT_UNAUTHORIZED: "客户端认证失败(用户名或密码错误)",
    ReasonCode.CLIENT_RATE_LIMITED: "请求过于频繁,超过该客户端的速率限制",
}


class HubError(Exception):
    """Base of every error the hub raises on purpose; carries a reason code."""

    reason: ReasonCode = ReasonCode.PROCESSING_ERROR

    def __init__(
        self,
        detail: str,
        *,
        reason: ReasonCode | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        super().__init__(detail)
        if reason is not None:
            self.reason = reason
        self.detail = detail
        self.field = field
        self.value = value

    @property
    def retryable(self) -> bool:
        return self.reason in TRANSIENT_REASONS

    def text_zh(self) -> str:
        base = REASON_TEXT_ZH.get(self.reason, str(self.reason))
        if self.field:
            return f"{base}:字段 {self.field}" + (f",取值 {self.value!r}" if self.value is not None else "")
        return base

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


class RejectedMessage(HubError):
    """The sender's message is wrong and will stay wrong: dead letter and negative ack."""

    reason = ReasonCode.FIELD_INVALID


class ProtocolViolation(RejectedMessage):
    """A conversation step that the current state does not allow (the peer's fault)."""

    reason = ReasonCode.ILLEGAL_TRANSITION


class TransientFailure(HubError):
    """A partner or resource is unavailable now; the message is retried later."""

    reason = ReasonCode.PARTNER_UNAVAILABLE


class ConfigError(HubError):
    """A configuration file is invalid. Raised at load, lint and reload; never at runtime."""

    reason = ReasonCode.CONFIG_INVALID

    def __init__(self, detail: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(detail)
        self.file, self.line, self.column = file, line, column

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.detail}"
