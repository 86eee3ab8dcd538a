"""The knowledge XML wire format: goldens valid and lossless in UTF-8 and GBK, XSD refusals, XSD = models = rules."""

from __future__ import annotations

import copy

import pytest
from knowledge_golden import GOLDEN_FILES, NOW, REPO, golden, golden_bytes, sender_of
from lxml import etree
from pydantic import BaseModel

from protocols import schemas, xmlwire
from protocols.errors import ReasonCode, RejectedMessage
from protocols.knowledge import rules, wire
from protocols.knowledge.models import (
    FIELD_NAMES_ZH,
    MESSAGE_TYPES,
    WRAPPED,
    CatalogDigest,
    Category,
    CategoryTree,
    FeedbackRef,
    ItemRef,
    KnowledgeItem,
    Orphan,
    Tombstone,
)

XS = "{http://www.w3.org/2001/XMLSchema}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _stripped(root: etree._Element) -> bytes:
    """Canonical XML of a tree without indentation, for element-by-element comparison."""
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(etree.tostring(root), parser), method="c14n")


def _tree(name: str) -> etree._Element:
    root, _ = xmlwire.parse(golden_bytes(name))
    return root


# ----------------------------------------------------------------------------- goldens


def test_every_root_element_has_a_golden_message():
    assert set(GOLDEN_FILES.values()) == set(MESSAGE_TYPES)
    assert sorted(p.name for p in (REPO / "tests/protocols/knowledge/golden").glob("*.xml")) == sorted(GOLDEN_FILES)


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
    assert _stripped(again) == _stripped(root)  # same elements, same text, same offsets
    assert wire.from_xml(again) == model
    for encoding in ("utf-8", "gbk", "gb18030"):
        data = wire.dumps(model, encoding)
        assert wire.loads(data, encoding) == model
        assert _stripped(xmlwire.parse(data, encoding)[0]) == _stripped(root)


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_passes_the_rules(name):
    model = golden(name)
    assert rules.validate(model, sender=sender_of(model), now=NOW) == model  # same instants, in UTC


def test_gbk_golden_is_the_utf8_golden_in_gbk_bytes():
    utf8 = golden_bytes("feedback.xml").decode("utf-8")
    expected = utf8.replace('encoding="UTF-8"', 'encoding="GBK"', 1).encode("gbk")
    assert golden_bytes("feedback.gbk.xml") == expected
    assert golden("feedback.gbk.xml") == golden("feedback.xml")


def test_chinese_text_survives_gbk_intact():
    feedback = golden("feedback.gbk.xml")
    assert feedback.text.startswith("知识中“月功能费 19 元”与集团资费批文不符")
    assert "\n" in feedback.text  # multi-line text kept as sent
    data = wire.dumps(golden("delivery_update.xml"), "gbk")
    assert data.startswith(b"<?xml version='1.0' encoding='GBK'?>")
    assert "月功能费 29 元".encode("gbk") in data


def test_gbk_bytes_declared_utf8_are_refused():
    data = golden_bytes("feedback.gbk.xml").replace(b'encoding="GBK"', b'encoding="UTF-8"', 1)
    with pytest.raises(RejectedMessage) as err:
        wire.loads(data)
    assert err.value.reason is ReasonCode.ENCODING_INVALID


def test_scenario_2_goldens_tell_the_story():
    assert golden("review_returned.xml").opinion.startswith("资费说明未写明")
    v1 = golden("delivery_publish.xml").item
    v2 = golden("delivery_update.xml").item
    assert (v1.version, v2.version) == (1, 2)
    assert "月功能费 19 元" in v1.content and "月功能费 29 元" in v2.content
    assert v1.content.replace("19 元", "29 元") == v2.content
    assert len(golden("delivery_publish.xml").recipients) == 32  # 31 provinces + the second-line platform
    assert golden("submission_update.xml").feedback_ref == FeedbackRef(company_code="44", feedback_id="FB-20240703-0007")


def test_to_xml_refuses_what_is_not_a_knowledge_message():
    with pytest.raises(TypeError):
        wire.to_xml(ItemRef(item_id="A", version=1))


def test_empty_lists_travel_as_empty_wrappers():
    response = golden("sync_response.xml").model_copy(update={"items": (), "tombstones": (), "orphans": ()})
    root = wire.to_xml(response)
    assert [len(root.find(f"{{{wire.NS}}}{name}")) for name in ("Items", "Tombstones", "Orphans")] == [0, 0, 0]
    assert wire.from_xml(root) == response
    request = golden("sync_request.xml").model_copy(update={"known": ()})
    assert wire.from_xml(wire.to_xml(request)).known == ()  # an empty Known list, not a missing one


# ----------------------------------------------------------------------------- XSD refusals


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
        ("submission_publish.xml", "SerialNumber", "2024/07/01"),
        ("submission_publish.xml", "Action", "delete"),
        ("submission_publish.xml", "SubmitterCode", "9"),
        ("submission_publish.xml", "SubmittedAt", "2024-07-01T09:30:00"),
        ("submission_publish.xml", "Item/Version", "0"),
        ("submission_publish.xml", "Item/Version", "-1"),
        ("submission_publish.xml", "Item/Version", "v1"),
        ("submission_publish.xml", "Item/Title", " 5G新通话"),
        ("submission_publish.xml", "Item/Title", "题" * 201),
        ("submission_publish.xml", "Item/Content", " \n "),
        ("submission_publish.xml", "Item/CategoryPath/Segment", "新业务"),
        ("submission_publish.xml", "Item/Status", "online"),
        ("submission_publish.xml", "Item/EffectiveDate", "2024-07-10"),
        ("submission_publish.xml", "Item/ExpiryDate", "2025-07-09 23:59:59+08:00"),
        ("submission_publish.xml", "Item/Id", "KN 99"),
        ("review_returned.xml", "Outcome", "rejected"),
        ("review_returned.xml", "ReviewerAtHQ", "王" * 51),
        ("delivery_receipt.xml", "ReceiptStatus", "ok"),
        ("delivery_receipt_stale.xml", "RefusalCode", "stale"),
        ("feedback_reply.xml", "Disposition", "forwarded"),
        ("sync_request_digest.xml", "Digest/Value", "ABC"),
        ("sync_request.xml", "TreeVersion", "-1"),
        ("category_tree.xml", "Category/Code", "全网"),
    ],
)
def test_xsd_refuses_a_bad_field_naming_element_and_line(name, path, text):
    refusal = _xsd_refusal(_set(_tree(name), path, text))
    element = path.split("/")[-1]
    assert refusal.field == element
    assert f"element {element}" in refusal.detail
    assert "line " in refusal.detail
    assert "protocols/knowledge/knowledge.xsd" in refusal.detail


def test_xsd_refuses_a_delivery_with_both_item_and_tombstone():
    root = copy.deepcopy(_tree("delivery_publish.xml"))
    root.append(copy.deepcopy(_tree("delivery_revoke.xml").find(f"{{{wire.NS}}}Tombstone")))
    assert _xsd_refusal(root).field == "Tombstone"


def test_xsd_refuses_a_sync_request_with_both_known_and_digest():
    root = copy.deepcopy(_tree("sync_request.xml"))
    root.append(copy.deepcopy(_tree("sync_request_digest.xml").find(f"{{{wire.NS}}}Digest")))
    assert _xsd_refusal(root).field == "Digest"


def test_xsd_refuses_a_category_path_of_eleven_levels():
    root = copy.deepcopy(_tree("knowledge_item.xml"))
    path = root.find(f"{{{wire.NS}}}CategoryPath")
    for _ in range(8):
        etree.SubElement(path, f"{{{wire.NS}}}Segment").text = "X"
    assert _xsd_refusal(root).field == "Segment"


def test_xsd_refuses_an_unknown_extra_element():
    root = copy.deepcopy(_tree("delivery_receipt.xml"))
    etree.SubElement(root, f"{{{wire.NS}}}Comment").text = "x"
    assert _xsd_refusal(root).field == "Comment"


@pytest.mark.parametrize(
    "xml",
    [
        b"<Knowledge xmlns='urn:cs-hub:knowledge:1'/>",
        b"<KnowledgeItem xmlns='urn:cs-hub:knowledge:2'/>",
        b"<KnowledgeItem/>",
        b"<DispatchOrder xmlns='urn:cs-hub:order:1'/>",
    ],
)
def test_unknown_root_or_namespace_is_an_unknown_type(xml):
    root, _ = xmlwire.parse(xml)
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(root)
    assert err.value.reason is ReasonCode.UNKNOWN_TYPE


def test_unvalidated_tree_with_bad_values_is_a_field_error():
    root = _set(_tree("knowledge_item.xml"), "EffectiveDate", "2024-13-45T99:00:00+08:00")
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(root, validate=False)
    assert (err.value.reason, err.value.field) == (ReasonCode.FIELD_INVALID, "EffectiveDate")
    root = _set(_tree("knowledge_item.xml"), "Version", "two")
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(root, validate=False)
    assert (err.value.reason, err.value.field) == (ReasonCode.FIELD_INVALID, "Version")


# ----------------------------------------------------------------------------- the XSD itself


def _xsd() -> etree._Element:
    return etree.parse(str(schemas.schema_path(wire.SCHEMA_NAME))).getroot()


def test_xsd_namespace_and_qualified_elements():
    xsd = _xsd()
    assert xsd.get("targetNamespace") == wire.NS == "urn:cs-hub:knowledge:1"
    assert xsd.get("elementFormDefault") == "qualified"
    assert schemas.SCHEMAS["knowledge"] == "knowledge/knowledge.xsd"


def test_xsd_root_elements_are_the_message_types():
    roots = [e.get("name") for e in _xsd().findall(f"{XS}element")]
    assert roots == list(MESSAGE_TYPES) == [
        "KnowledgeItem", "KnowledgeSubmission", "ReviewResult", "KnowledgeDelivery", "DeliveryReceipt", "Feedback",
        "FeedbackReply", "FeedbackForward", "SyncRequest", "SyncResponse", "CategoryTree", "KnowledgeAlarm",
    ]


def test_every_xsd_element_and_type_is_documented_in_chinese_and_english():
    xsd = _xsd()
    documented = [*xsd.iter(f"{XS}element"), *xsd.iter(f"{XS}simpleType"), *xsd.iter(f"{XS}complexType")]
    documented = [d for d in documented if d.get("name")]  # anonymous complex types belong to their element
    assert len(documented) > 120
    for decl in documented:
        docs = decl.findall(f"{XS}annotation/{XS}documentation")
        langs = {d.get(XML_LANG): (d.text or "").strip() for d in docs}
        assert set(langs) == {"zh", "en"}, decl.get("name")
        assert all(langs.values()), decl.get("name")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in langs["zh"]), decl.get("name")


def _content(xsd: etree._Element, decl: etree._Element) -> list[str]:
    """Names of the direct child elements of an element or complexType declaration, in order."""
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
    return names


#: Nested models and the named complex type each one is written as.
NESTED_TYPES = {KnowledgeItem: "KnowledgeItemType", Tombstone: "TombstoneType", ItemRef: "ItemRefType",
                FeedbackRef: "FeedbackRefType", Category: "CategoryType", CategoryTree: "CategoryTreeType",
                CatalogDigest: "DigestType", Orphan: "OrphanType"}


@pytest.mark.parametrize("cls", [*MESSAGE_TYPES.values(), *NESTED_TYPES], ids=lambda c: c.__name__)
def test_model_fields_follow_the_xsd_element_order(cls: type[BaseModel]):
    xsd = _xsd()
    if cls in NESTED_TYPES:
        decl = xsd.find(f"{XS}complexType[@name='{NESTED_TYPES[cls]}']")
    else:
        decl = xsd.find(f"{XS}element[@name='{cls.__name__}']")
    assert [info.alias for info in cls.model_fields.values()] == _content(xsd, decl)


def test_wrapped_lists_hold_the_item_element_of_the_xsd():
    xsd = _xsd()
    for wrapper, item in WRAPPED.items():
        decls = [e for e in xsd.iter(f"{XS}element") if e.get("name") == wrapper]
        assert decls, wrapper
        for decl in decls:
            assert _content(xsd, decl) == [item], wrapper


@pytest.mark.parametrize("cls", [*MESSAGE_TYPES.values(), *NESTED_TYPES], ids=lambda c: c.__name__)
def test_model_descriptions_quote_the_chinese_field_names(cls: type[BaseModel]):
    for info in cls.model_fields.values():
        assert info.description.startswith(FIELD_NAMES_ZH[info.alias] + ":"), info.alias


# ----------------------------------------------------------------------------- XSD and rules agree


def _xsd_accepts(name: str, path: str, text: str) -> bool:
    try:
        wire.validate_xsd(_set(_tree(name), path, text))
    except RejectedMessage:
        return False
    return True


def _rule_accepts(check, value) -> bool:
    try:
        check(value)
    except RejectedMessage:
        return False
    return True


F = rules.F
SAMPLES = {
    ("knowledge_item.xml", "Id"): (lambda v: F.identifier(v, "Id"),
                                   ["KN-99-20240701-0001", "A", "A" * 40, "A" * 41, "", "KN_99", "知识1", "KN 1"]),
    ("knowledge_item.xml", "Title"): (lambda v: F.line(v, "Title", rules.TITLE_MAX),
                                      ["资费说明", "题" * 200, "题" * 201, "", " 资费", "资费\t", "资\n费"]),
    ("knowledge_item.xml", "Author"): (lambda v: F.line(v, "Author"),
                                       ["陈思远", "Chen Siyuan", "陈" * 50, "陈" * 51, "", "张\u3000三"]),
    ("knowledge_item.xml", "Content"): (lambda v: F.text(v, "Content", rules.CONTENT_MAX),
                                        ["正文", " 前后有空格 ", "多\n行", "字" * 20000, "字" * 20001, " \n\t "]),
    ("knowledge_item.xml", "OwnerNode"): (lambda v: F.company_code(v, "OwnerNode"),
                                          ["99", "00", "abcdefgh", "abcdefghi", "9", "9-9"]),
    ("knowledge_item.xml", "CategoryPath/Segment"): (lambda v: rules._category_code(v, "Segment"),
                                                     ["TARIFF", "NEW_SERVICE", "a-1", "X" * 32, "X" * 33, "",
                                                      "资费", "A B"]),
    ("feedback.xml", "FeedbackId"): (lambda v: F.serial(v, "FeedbackId"),
                                     ["FB-20240703-0007", "1", "F" * 32, "F" * 33, "", "FB_1"]),
    ("feedback.xml", "Text"): (lambda v: F.text(v, "Text", rules.TEXT_MAX),
                               ["错了", "字" * 2000, "字" * 2001, "  "]),
    ("delivery_receipt_stale.xml", "Reason"): (lambda v: F.text(v, "Reason", rules.REASON_MAX),
                                               ["旧版本", "字" * 500, "字" * 501, " "]),
    ("delivery_receipt_stale.xml", "RefusalCode"): (
        lambda v: F.pattern(v, "RefusalCode", rules.REASON_CODE_RE, "a reason code", ""),
        ["STALE_VERSION", "AB", "A", "stale", "STALE-VERSION", "A" * 40, "A" * 41]),
}


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, (_c, values) in SAMPLES.items() for v in values],
                         ids=lambda x: x[1] if isinstance(x, tuple) else str(x)[:12])
def test_xsd_and_rules_accept_the_same_values(key, value):
    name, path = key
    check = SAMPLES[key][0]
    assert _xsd_accepts(name, path, value) == _rule_accepts(check, value)


# ----------------------------------------------------------------------------- docs


@pytest.mark.parametrize("name", sorted(n for n in GOLDEN_FILES if "gbk" not in n))
def test_docs_quote_the_golden_messages_verbatim(name):
    docs = (REPO / "docs" / "knowledge.md").read_text(encoding="utf-8")
    assert golden_bytes(name).decode("utf-8").rstrip("\n") in docs
