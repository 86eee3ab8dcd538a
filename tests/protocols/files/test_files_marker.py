"""Mark files (NAME.ok, NAME.CODE.ack): the golden text, strict parsing, and the names around a file."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from protocols.errors import ReasonCode, RejectedMessage
from protocols.files import marker
from protocols.files.marker import FileKind, Mark, MarkKind

GOLDEN = Path(__file__).parent / "golden"
BEIJING = timezone(timedelta(hours=8))
SHA = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def sent_mark() -> Mark:
    return Mark(kind=MarkKind.sent, file="44_stats_202611.csv", size=1048576, sha256=SHA, sender="44",
                time=datetime(2026, 12, 3, 10, 15, tzinfo=BEIJING), file_kind=FileKind.report, report="stats",
                period="202611")


def test_the_sent_mark_is_the_golden_text_and_parses_back():
    data = marker.render(sent_mark())
    assert data == (GOLDEN / "44_stats_202611.csv.ok").read_bytes()
    assert marker.parse(data) == sent_mark()


def test_a_receipt_mark_names_its_receiver():
    m = Mark(kind=MarkKind.received, file="doc.pdf", size=3, sha256=SHA, sender="00", receiver="44",
             time=datetime(2026, 12, 3, 10, 15, tzinfo=BEIJING), file_kind=FileKind.document)
    text = marker.render(m).decode()
    assert "mark: received\n" in text and "receiver: 44\n" in text
    assert marker.parse(text.encode()) == m
    with pytest.raises(ValueError, match="names its receiver"):
        Mark(kind=MarkKind.received, file="doc.pdf", size=3, sha256=SHA, sender="00",
             time=datetime(2026, 12, 3, tzinfo=BEIJING))


def test_unknown_keys_of_a_later_format_are_kept():
    data = marker.render(sent_mark()) + b"compression: none\n"
    assert marker.parse(data).extra == {"compression": "none"}


GOOD = marker.render(sent_mark()).decode()


@pytest.mark.parametrize(("text", "message", "field"), [
    (GOOD.replace("sha256: ", "sha256: X"), "64 lower-case hex digits", None),
    (GOOD.replace("size: 1048576", "size: lots"), "size must be a whole number", "size"),
    (GOOD.replace("sender: 44\n", ""), "required key(s) sender missing", "sender"),
    (GOOD + "size: 1\n", "key 'size' appears twice", "size"),
    (GOOD.replace("mark: sent", "mark: maybe"), "mark must be one of sent, received", "mark"),
    (GOOD.replace("kind: report", "kind: movie"), "kind must be one of report, document, file", "kind"),
    (GOOD.replace("time: 2026-12-03T10:15:00+08:00", "time: yesterday"), "ISO 8601 time", "time"),
    (GOOD + "this line has no colon\n", "is not 'key: value'", None),
])
def test_a_broken_mark_is_refused_naming_the_key(text, message, field):
    with pytest.raises(RejectedMessage) as caught:
        marker.parse(text.encode(), where="up/44/202611/44_stats_202611.csv.ok")
    assert caught.value.reason == ReasonCode.SFTP_MARKER_INVALID
    assert message in caught.value.detail and "up/44/202611/44_stats_202611.csv.ok" in caught.value.detail
    assert caught.value.field == field


def test_a_mark_must_be_utf8_and_small():
    with pytest.raises(RejectedMessage, match="not UTF-8"):
        marker.parse("mark: sent\nfile: 报表.csv\n".encode("gbk"))
    with pytest.raises(RejectedMessage, match="more than 8192"):
        marker.parse(b"#" * 9000)


def test_the_names_around_a_data_file():
    name = "44_stats_202611.csv"
    assert marker.part_name(name) == ".44_stats_202611.csv.part"
    assert marker.sent_mark_name(name) == "44_stats_202611.csv.ok"
    assert marker.receipt_mark_name(name, "00") == "44_stats_202611.csv.00.ack"
    assert marker.data_name_of_sent_mark("44_stats_202611.csv.ok") == name
    assert marker.data_name_of_sent_mark(".44_stats_202611.csv.ok.part") is None
    assert marker.receipt_of("44_stats_202611.csv.00.ack") == (name, "00")
    assert marker.receipt_of("44_stats_202611.csv.ok") is None
    assert [n for n in (name, ".x.part", "x.ok", "x.00.ack", "a/b", "") if marker.is_data_name(n)] == [name]


@pytest.mark.parametrize(("name", "version", "server_name"), [
    ("44_stats_202611.csv", 1, "44_stats_202611.csv"),
    ("44_stats_202611.csv", 2, "44_stats_202611.v2.csv"),
    ("全网服务规范.pdf", 3, "全网服务规范.v3.pdf"),
    ("README", 2, "README.v2"),
])
def test_versions_go_before_the_extension_and_back(name, version, server_name):
    assert marker.versioned_name(name, version) == server_name
    assert marker.split_version(server_name) == (name, version)
