"""The bus events of file transfer as XML (files.xsd, urn:cs-hub:files:1): golden messages both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from files_golden import EVENTS, SHA
from lxml import etree

from protocols import schemas
from protocols.errors import ReasonCode, RejectedMessage
from protocols.files import wire
from protocols.files.events import MESSAGE_TYPES
from protocols.files.marker import FileKind

GOLDEN = Path(__file__).parent / "golden"


def pretty(data: bytes) -> bytes:
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_golden_messages_both_ways(name):
    event = EVENTS[name]
    golden = (GOLDEN / name).read_bytes()
    assert pretty(wire.dumps(event)) == golden
    assert wire.loads(golden) == event
    assert MESSAGE_TYPES[event.type_name] == event.root


def test_a_mark_in_gbk_for_a_gbk_province():
    event = EVENTS["document_received.xml"]
    data = wire.dumps(event, "gbk")
    assert data.startswith(b"<?xml version='1.0' encoding='GBK'?>")
    assert "全网服务规范".encode("gbk") in data
    assert wire.loads(data, "gbk") == event


@pytest.mark.parametrize(("change", "element"), [
    (("<Sha256>" + SHA, "<Sha256>" + SHA.upper()), "Sha256"),
    (("<Period>202611</Period>", "<Period>2026-11</Period>"), "Period"),
    (("<Late>false</Late>", ""), "ReportReceived"),
])
def test_a_broken_event_is_refused_naming_the_element(change, element):
    golden = (GOLDEN / "report_received.xml").read_text(encoding="utf-8").replace(*change)
    with pytest.raises(RejectedMessage) as caught:
        wire.loads(golden.encode())
    assert caught.value.reason == ReasonCode.XSD_INVALID and caught.value.field == element


def test_report_fields_belong_to_reports_only():
    import dataclasses
    with pytest.raises(ValueError, match="carries report_type"):
        dataclasses.replace(EVENTS["report_received.xml"], late=None)
    with pytest.raises(ValueError, match="carries no report fields"):
        dataclasses.replace(EVENTS["file_received.xml"], period="202611")
    assert EVENTS["file_received.xml"].kind is FileKind.file


def test_the_schema_is_registered():
    assert schemas.schema_path("files").name == "files.xsd"
    schemas.compiled("files")
