"""The announcement XML wire format: goldens valid and lossless in UTF-8 and GBK, XSD refusals, XSD = models."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from announcement_golden import GOLDEN_FILES, NOW, REPO, golden, golden_bytes, sender_of
from lxml import etree

from protocols import schemas, xmlwire
from protocols.announcements import rules, wire
from protocols.announcements.models import FIELD_NAMES_ZH, MESSAGE_TYPES, Announcement, Scope
from protocols.errors import ReasonCode, RejectedMessage

XS = "{http://www.w3.org/2001/XMLSchema}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _stripped(root: etree._Element) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(etree.tostring(root), parser), method="c14n")


def _tree(name: str) -> etree._Element:
    return xmlwire.parse(golden_bytes(name))[0]


def test_every_root_element_has_a_golden_message():
    assert set(GOLDEN_FILES.values()) == set(MESSAGE_TYPES)
    assert sorted(p.name for p in (REPO / "tests/protocols/announcements/golden").glob("*.xml")) == sorted(GOLDEN_FILES)


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_is_valid_against_the_xsd(name):
    wire.validate_xsd(_tree(name))


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_round_trip_is_lossless_in_utf8_and_gbk(name):
    root = _tree(name)
    model = wire.from_xml(root)
    assert type(model).__name__ == GOLDEN_FILES[name]
    again = wire.to_xml(model)
    wire.validate_xsd(again)
    assert _stripped(again) == _stripped(root)
    assert wire.from_xml(again) == model
    for encoding in ("utf-8", "gbk", "gb18030"):
        data = wire.dumps(model, encoding)
        assert wire.loads(data, encoding) == model
        assert _stripped(xmlwire.parse(data, encoding)[0]) == _stripped(root)


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_passes_the_rules(name):
    model = golden(name)
    assert rules.validate(model, sender=sender_of(model), now=NOW) == model


def test_gbk_golden_is_the_utf8_golden_in_gbk_bytes():
    utf8 = golden_bytes("announcement_submission.xml").decode("utf-8")
    assert golden_bytes("announcement_submission.gbk.xml") == utf8.replace(
        'encoding="UTF-8"', 'encoding="GBK"', 1).encode("gbk")
    assert golden("announcement_submission.gbk.xml") == golden("announcement_submission.xml")
    assert golden("announcement_submission.gbk.xml").announcement.title == "广东公司计费系统割接公告"


def test_scenario_3_fault_notice_and_its_closing_notice():
    fault = golden("announcement_publish_fault.xml").announcement
    closed = golden("announcement_publish_fault_closed.xml").announcement
    assert fault == golden("announcement.xml")
    assert (fault.kind.value, fault.urgency.value, fault.scope) == ("fault", "critical", Scope(nodes=("31", "00")))
    assert (fault.id, fault.source_ref) == (closed.id, closed.source_ref)
    assert (fault.status.value, closed.status.value) == ("open", "closed")
    assert closed.end_time - fault.start_time == timedelta(hours=1)  # the clear event an hour later
    assert "故障已恢复" in closed.content


def test_scope_nodes_and_groups_keep_their_order():
    scope = golden("announcement_publish_cutover.xml").announcement.scope
    assert scope == Scope(nodes=("99",), groups=("provinces",))
    only_groups = Scope(groups=("provinces", "second_line"))
    ann = golden("announcement.xml").model_copy(update={"scope": only_groups})
    assert wire.from_xml(wire.to_xml(ann)).scope == only_groups


def test_to_xml_refuses_what_is_not_an_announcement_message():
    with pytest.raises(TypeError):
        wire.to_xml(Scope(nodes=("31",)))


def _set(root: etree._Element, path: str, text: str | None) -> etree._Element:
    root = copy.deepcopy(root)
    element = root
    for step in path.split("/"):
        element = element.find(f"{{{wire.NS}}}{step}")
    element.text = text
    return root


def _xsd_refusal(root: etree._Element) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(root)
    assert err.value.reason is ReasonCode.XSD_INVALID
    return err.value


@pytest.mark.parametrize(
    ("name", "path", "text"),
    [
        ("announcement.xml", "Id", "GG 1"),
        ("announcement.xml", "Title", "标" * 201),
        ("announcement.xml", "Content", "字" * 4001),
        ("announcement.xml", "Urgency", "high"),
        ("announcement.xml", "Scope/Node", "上海"),
        ("announcement.xml", "RepliesRequired", "yes"),
        ("announcement.xml", "Kind", "outage"),
        ("announcement.xml", "Status", "cleared"),
        ("announcement.xml", "SourceRef", "NMS 31"),
        ("announcement.xml", "StartTime", "2024-07-10T14:20:00"),
        ("announcement_publish_cutover.xml", "Announcement/Scope/Group", "Provinces"),
        ("announcement_publish_cutover.xml", "Announcement/ReplyDeadline", "2024-07-18"),
        ("announcement_publish_cutover.xml", "OriginatorCode", "4"),
        ("announcement_reply.xml", "Content", " "),
        ("announcement_reply.xml", "Replier", ""),
        ("reply_return.xml", "ReplySerialNumber", "2024/07/16"),
        ("reply_accepted.xml", "AcceptedAt", "today"),
        ("return_for_modification.xml", "Opinion", "意" * 2001),
    ],
)
def test_xsd_refuses_a_bad_field_naming_element_and_line(name, path, text):
    refusal = _xsd_refusal(_set(_tree(name), path, text))
    element = path.split("/")[-1]
    assert refusal.field == element and f"element {element}" in refusal.detail and "line " in refusal.detail
    assert "protocols/announcements/announcement.xsd" in refusal.detail


def test_xsd_refuses_an_empty_scope():
    root = copy.deepcopy(_tree("announcement.xml"))
    scope = root.find(f"{{{wire.NS}}}Scope")
    for child in list(scope):
        scope.remove(child)
    assert _xsd_refusal(root).field == "Scope"


def test_xsd_refuses_groups_before_nodes():
    root = copy.deepcopy(_tree("announcement_publish_cutover.xml"))
    scope = root.find(f"{{{wire.NS}}}Announcement/{{{wire.NS}}}Scope")
    scope.append(scope[0])  # Node after Group
    assert _xsd_refusal(root).field == "Node"


@pytest.mark.parametrize("xml", [b"<Notice xmlns='urn:cs-hub:announcement:1'/>",
                                 b"<Announcement xmlns='urn:cs-hub:knowledge:1'/>", b"<Announcement/>"])
def test_unknown_root_or_namespace_is_an_unknown_type(xml):
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(xmlwire.parse(xml)[0])
    assert err.value.reason is ReasonCode.UNKNOWN_TYPE


def _xsd() -> etree._Element:
    return etree.parse(str(schemas.schema_path(wire.SCHEMA_NAME))).getroot()


def test_xsd_namespace_and_root_elements():
    xsd = _xsd()
    assert xsd.get("targetNamespace") == wire.NS == "urn:cs-hub:announcement:1"
    assert xsd.get("elementFormDefault") == "qualified"
    assert [e.get("name") for e in xsd.findall(f"{XS}element")] == list(MESSAGE_TYPES) == [
        "Announcement", "AnnouncementSubmission", "ReturnForModification", "AnnouncementPublish",
        "AnnouncementReply", "ReplyReturn", "ReplyAccepted"]


def test_every_xsd_element_and_type_is_documented_in_chinese_and_english():
    xsd = _xsd()
    documented = [d for d in (*xsd.iter(f"{XS}element"), *xsd.iter(f"{XS}simpleType"),
                              *xsd.iter(f"{XS}complexType")) if d.get("name")]
    assert len(documented) > 60
    for decl in documented:
        langs = {d.get(XML_LANG): (d.text or "").strip() for d in decl.findall(f"{XS}annotation/{XS}documentation")}
        assert set(langs) == {"zh", "en"} and all(langs.values()), decl.get("name")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in langs["zh"]), decl.get("name")


def _content(xsd: etree._Element, decl: etree._Element) -> list[str]:
    if decl.tag == f"{XS}element" and decl.get("type"):
        decl = xsd.find(f"{XS}complexType[@name='{decl.get('type')}']")
    elif decl.tag == f"{XS}element":
        decl = decl.find(f"{XS}complexType")
    names = []
    for e in decl.iter(f"{XS}element"):
        parent = e.getparent()
        while parent.tag in (f"{XS}sequence", f"{XS}choice"):
            parent = parent.getparent()
        if parent is decl:
            names.append(e.get("name"))
    return list(dict.fromkeys(names))


@pytest.mark.parametrize("cls", [*MESSAGE_TYPES.values(), Scope], ids=lambda c: c.__name__)
def test_model_fields_follow_the_xsd_element_order(cls):
    xsd = _xsd()
    if cls is Scope:
        decl = xsd.find(f"{XS}complexType[@name='ScopeType']")
    elif cls is Announcement:
        decl = xsd.find(f"{XS}complexType[@name='AnnouncementType']")
    else:
        decl = xsd.find(f"{XS}element[@name='{cls.__name__}']")
    assert [info.alias for info in cls.model_fields.values()] == _content(xsd, decl)


@pytest.mark.parametrize("cls", [*MESSAGE_TYPES.values(), Scope], ids=lambda c: c.__name__)
def test_model_descriptions_quote_the_chinese_field_names(cls):
    for info in cls.model_fields.values():
        assert info.description.startswith(FIELD_NAMES_ZH[info.alias] + ":"), info.alias


F = rules.F
SAMPLES = {
    ("announcement_publish_cutover.xml", "Announcement/Scope/Group"): (lambda v: F.pattern(v, "Group", rules.GROUP_RE, "", ""),
                    ["provinces", "second_line", "all", "a", "g1", "Provinces", "1abc", "south-east", "a" * 32,
                     "a" * 33]),
    ("announcement.xml", "SourceRef"): (lambda v: F.pattern(v, "SourceRef", rules.SOURCE_REF_RE, "", ""),
                  ["NMS-31-20240710-000457", "a:b.c_d", "X" * 64, "X" * 65, "", "NMS 31", "故障1"]),
    ("announcement.xml", "Title"): (lambda v: F.line(v, "Title", rules.TITLE_MAX), ["故障通告", "标" * 200, "标" * 201, " 标", "标\n题"]),
    ("announcement.xml", "Content"): (lambda v: F.text(v, "Content", rules.CONTENT_MAX), ["内容", "字" * 4000, "字" * 4001, "\n"]),
}


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, (_c, vs) in SAMPLES.items() for v in vs],
                         ids=lambda x: "/".join(x)[-30:] if isinstance(x, tuple) else str(x)[:12])
def test_xsd_and_rules_accept_the_same_values(key, value):
    name, path = key
    try:
        wire.validate_xsd(_set(_tree(name), path, value))
        xsd_ok = True
    except RejectedMessage:
        xsd_ok = False
    try:
        SAMPLES[key][0](value)
        rule_ok = True
    except RejectedMessage:
        rule_ok = False
    assert xsd_ok == rule_ok


@pytest.mark.parametrize("name", sorted(n for n in GOLDEN_FILES if "gbk" not in n))
def test_docs_quote_the_golden_messages_verbatim(name):
    docs = (REPO / "docs" / "knowledge.md").read_text(encoding="utf-8")
    assert golden_bytes(name).decode("utf-8").rstrip("\n") in docs
