"""XML wire format of the file transfer events (namespace urn:cs-hub:files:1, files.xsd) <-> records.

Owns: record -> element tree -> bytes in the receiving node's encoding, and bytes -> record
with validation against files.xsd (refusals are XSD_INVALID naming the element).
Must not: parse raw bytes itself (protocols.xmlwire does, safely) or choose recipients.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from protocols import schemas, xmlwire
from protocols.files.events import (
    NS,
    BusEvent,
    Direction,
    FileMarkEvent,
    ReportLateEvent,
    TransferAlarm,
    TransferRequest,
)
from protocols.files.marker import FileKind

SCHEMA_NAME = "files"  # the name under which protocols.schemas knows files.xsd
_KIND_OF_ROOT = {"FileReceived": FileKind.file, "ReportReceived": FileKind.report,
                 "DocumentReceived": FileKind.document}


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _add(parent: etree._Element, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    etree.SubElement(parent, _q(name)).text = text


def to_xml(event: BusEvent) -> etree._Element:
    """The event as an element tree, valid against files.xsd."""
    root = etree.Element(_q(event.root), nsmap={None: NS})
    if isinstance(event, FileMarkEvent):
        for name, value in (("CompanyCode", event.company_code), ("SenderCode", event.sender_code),
                            ("FileName", event.file_name), ("Path", event.path), ("Size", event.size),
                            ("Sha256", event.sha256), ("Version", event.version), ("SentTime", event.sent_time),
                            ("ReceivedTime", event.received_time), ("ReportType", event.report_type),
                            ("Period", event.period), ("Deadline", event.deadline), ("Late", event.late)):
            _add(root, name, value)
    elif isinstance(event, ReportLateEvent):
        for name, value in (("CompanyCode", event.company_code), ("Province", event.province),
                            ("ReportType", event.report_type), ("Period", event.period),
                            ("ExpectedName", event.expected_name), ("Deadline", event.deadline),
                            ("DetectedAt", event.detected_at)):
            _add(root, name, value)
    elif isinstance(event, TransferAlarm):
        _add(root, "CompanyCode", event.company_code)
        _add(root, "Endpoint", event.endpoint)
        _add(root, "ReasonCode", event.reason_code)
        etree.SubElement(root, _q("Reason"), lang="zh").text = event.reason_zh
        etree.SubElement(root, _q("Reason"), lang="en").text = event.reason_en
        _add(root, "FileName", event.file_name)
        _add(root, "RaisedAt", event.raised_at)
    elif isinstance(event, TransferRequest):
        for name, value in (("Node", event.node), ("Direction", event.direction.value),
                            ("Kind", event.kind.value), ("SenderCode", event.sender_code),
                            ("BaseName", event.base_name), ("FileName", event.file_name), ("Version", event.version), ("Size", event.size),
                            ("Sha256", event.sha256), ("LocalPath", event.local_path),
                            ("RemotePath", event.remote_path), ("SentTime", event.sent_time),
                            ("ReportType", event.report_type), ("Period", event.period)):
            _add(root, name, value)
    else:
        raise TypeError(f"not a file transfer event: {type(event).__name__}")
    return root


def dumps(event: BusEvent, encoding: str = "utf-8") -> bytes:
    """Wire bytes in `encoding` (utf-8, gbk or gb18030), validated against files.xsd first."""
    root = to_xml(event)
    schemas.validate(SCHEMA_NAME, root)
    return xmlwire.serialise(root, encoding)


def loads(data: bytes, content_encoding: str | None = None) -> BusEvent:
    root, _enc = xmlwire.parse(data, content_encoding)
    return from_xml(root)


def from_xml(root: etree._Element) -> BusEvent:
    """The record of a valid tree; RejectedMessage(XSD_INVALID) when it breaks files.xsd."""
    schemas.validate(SCHEMA_NAME, root)
    local = etree.QName(root).localname
    v = {etree.QName(c).localname: c.text or "" for c in root if isinstance(c.tag, str)}

    def t(name: str) -> datetime | None:
        return datetime.fromisoformat(v[name]) if name in v else None

    if local in _KIND_OF_ROOT:
        return FileMarkEvent(
            kind=_KIND_OF_ROOT[local], company_code=v["CompanyCode"], sender_code=v["SenderCode"],
            file_name=v["FileName"], path=v["Path"], size=int(v["Size"]), sha256=v["Sha256"],
            version=int(v["Version"]), sent_time=t("SentTime"), received_time=t("ReceivedTime"),
            report_type=v.get("ReportType"), period=v.get("Period"), deadline=t("Deadline"),
            late=(v["Late"] in ("true", "1")) if "Late" in v else None)
    if local == "ReportLate":
        return ReportLateEvent(company_code=v["CompanyCode"], province=v["Province"], report_type=v["ReportType"],
                               period=v["Period"], expected_name=v["ExpectedName"], deadline=t("Deadline"),
                               detected_at=t("DetectedAt"))
    if local == "TransferAlarm":
        reasons = {c.get("lang"): c.text or "" for c in root.iterchildren(_q("Reason"))}
        return TransferAlarm(company_code=v["CompanyCode"], endpoint=v["Endpoint"], reason_code=v["ReasonCode"],
                             reason_zh=reasons.get("zh", ""), reason_en=reasons.get("en", ""),
                             raised_at=t("RaisedAt"), file_name=v.get("FileName"))
    return TransferRequest(
        node=v["Node"], direction=Direction(v["Direction"]), kind=FileKind(v["Kind"]), sender_code=v["SenderCode"],
        base_name=v["BaseName"], file_name=v["FileName"], version=int(v["Version"]), size=int(v["Size"]), sha256=v["Sha256"],
        local_path=v["LocalPath"], remote_path=v["RemotePath"], sent_time=t("SentTime"),
        report_type=v.get("ReportType"), period=v.get("Period"))
