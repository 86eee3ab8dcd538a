"""The file transfer events of the golden XML files in tests/protocols/files/golden/."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from protocols.files.events import FileMarkEvent, ReportLateEvent, TransferAlarm, TransferRequest
from protocols.files.marker import FileKind

BEIJING = timezone(timedelta(hours=8))
SHA = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=BEIJING)


EVENTS = {
    "report_received.xml": FileMarkEvent(
        kind=FileKind.report, company_code="00", sender_code="44", file_name="44_stats_202611.csv",
        path="up/44/202611/44_stats_202611.csv", size=1048576, sha256=SHA, version=1, sent_time=t(3, 10, 15),
        received_time=t(3, 10, 16), report_type="stats", period="202611", deadline=t(5, 18), late=False),
    "document_received.xml": FileMarkEvent(
        kind=FileKind.document, company_code="44", sender_code="00", file_name="全网服务规范.v2.pdf",
        path="down/2026-12-03/全网服务规范.v2.pdf", size=5, sha256=SHA, version=2, sent_time=t(3, 9),
        received_time=t(3, 9, 1)),
    "file_received.xml": FileMarkEvent(
        kind=FileKind.file, company_code="00", sender_code="11", file_name="billing-sms-20261202.dat",
        path="up/11/2026-12-03/billing-sms-20261202.dat", size=1234, sha256=SHA, version=1, sent_time=t(3, 1),
        received_time=t(3, 1, 2)),
    "report_late.xml": ReportLateEvent(
        company_code="00", province="44", report_type="stats", period="202611",
        expected_name="44_stats_202611.csv", deadline=t(5, 18), detected_at=t(5, 18, 1)),
    "transfer_alarm.xml": TransferAlarm(
        company_code="44", endpoint="sftp.cs-hub.example:22", reason_code="SFTP_HOST_KEY_CHANGED",
        reason_zh="SFTP 服务器的主机密钥与登记的不符,已拒绝连接(可能被冒充)",
        reason_en="The SFTP server sftp.cs-hub.example:22 offered another host key; the connection is refused.",
        raised_at=t(3, 10), file_name="44_stats_202611.csv"),
    "transfer_request.xml": TransferRequest(
        node="44", direction="upload", kind=FileKind.report, sender_code="44", base_name="44_stats_202611.csv",
        file_name="44_stats_202611.csv", version=1, size=1048576, sha256=SHA,
        local_path="/var/lib/cs-hub/sftp/44/outbox/44_stats_202611.csv",
        remote_path="up/44/202611/44_stats_202611.csv", report_type="stats", period="202611"),
}
