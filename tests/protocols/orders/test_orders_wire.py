"""The XML wire format: goldens valid and lossless, GBK = UTF-8, XSD refusals, XSD/model/rules agree."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree
from order_golden import GOLDEN_FILES, NOW, REPO, golden, golden_bytes

from protocols import schemas, xmlwire
from protocols.errors import ReasonCode, RejectedMessage
from protocols.orders import rules, wire
from protocols.orders.models import FIELD_NAMES_ZH, MESSAGE_TYPES, CompanyRef, DispatchOrder

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


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_is_valid_against_the_xsd(name):
    wire.validate_xsd(_tree(name))


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_golden_round_trip_is_lossless(name):
    root = _tree(name)
    model = wire.from_xml(root)
    assert type(model).__name__ == GOLDEN_FILES[name]
    again = wire.to_xml(model)
    wire.validate_xsd(again)
    assert _stripped(again) == _stripped(root)  # same elements, same text, same offsets
    assert wire.from_xml(again) == model
    for encoding in ("utf-8", "gbk", "gb18030"):
        assert wire.loads(wire.dumps(model, encoding), encoding) == model


def test_gbk_golden_is_the_utf8_golden_in_gbk_bytes():
    utf8 = golden_bytes("dispatch_order.utf8.xml").decode("utf-8")
    expected = utf8.replace('encoding="UTF-8"', 'encoding="GBK"', 1).encode("gbk")
    assert golden_bytes("dispatch_order.gbk.xml") == expected
    assert golden("dispatch_order.gbk.xml") == golden("dispatch_order.utf8.xml")


def test_chinese_text_survives_gbk_intact():
    order = golden("dispatch_order.gbk.xml")
    assert order.to_company.name == "用户归属省公司"
    assert order.dispatcher_name == "李娜"
    assert order.complaint_issue.startswith("用户(北京号码)在广州市天河区漫游期间")
    assert "\n" in order.complaint_issue  # multi-line text kept as sent
    data = wire.dumps(order, "gbk")
    assert data.startswith(b"<?xml version='1.0' encoding='GBK'?>")
    assert "天河区".encode("gbk") in data
    assert wire.loads(data, "gbk").complaint_issue == order.complaint_issue


def test_gbk_bytes_declared_utf8_are_refused():
    data = golden_bytes("dispatch_order.gbk.xml").replace(b'encoding="GBK"', b'encoding="UTF-8"', 1)
    with pytest.raises(RejectedMessage) as err:
        wire.loads(data)
    assert err.value.reason is ReasonCode.ENCODING_INVALID


def test_offsets_are_kept_and_utc_is_written_as_z(dispatch):
    assert dispatch.dispatch_time.utcoffset() == timedelta(hours=8)
    assert wire.format_datetime(dispatch.dispatch_time) == "2024-06-11T10:00:00+08:00"
    assert wire.format_datetime(datetime(2024, 6, 11, 2, 0, tzinfo=UTC)) == "2024-06-11T02:00:00Z"
    assert wire.format_datetime(datetime(2024, 6, 11, 2, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-5)))) == (
        "2024-06-11T02:00:00.250000-05:00"
    )
    with pytest.raises(ValueError, match="no time zone"):
        wire.format_datetime(datetime(2024, 6, 11, 10, 0))


def test_a_rules_normalised_order_travels_in_utc(dispatch, categories):
    normalised = rules.validate_dispatch(dispatch, categories=categories, now=NOW)
    root = wire.to_xml(normalised)
    assert root.findtext(f"{{{wire.NS}}}DispatchTime") == "2024-06-11T02:00:00Z"
    assert wire.from_xml(root) == normalised == dispatch  # same instants


def test_to_xml_refuses_what_is_not_an_order_message():
    with pytest.raises(TypeError):
        wire.to_xml(CompanyRef(code="11", name="北京"))


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
    ("path", "text"),
    [
        ("CustomerMobile", "12901001234"),
        ("CustomerMobile", "1390100123"),
        ("SerialNumber", "2024/06/11"),
        ("SerialNumber", "X" * 33),
        ("CompanyCode", "4"),
        ("ToCompany/Code", "北京"),
        ("ToCompany/Name", ""),
        ("ToCompany/Name", " 北京"),
        ("DispatcherName", "李" * 51),
        ("DispatcherPhone", "020 8765 4321"),
        ("DispatcherPhone", "1234"),
        ("ComplainantPhone", "020--87654321"),
        ("ComplaintCategory", "network signal"),
        ("ComplaintIssue", "  \n  "),
        ("ComplaintIssue", "字" * 2001),
        ("DispatchTime", "2024-06-11T10:00:00"),
        ("FirstReplyDeadline", "2024-06-11 12:00:00+08:00"),
        ("FinalReplyDeadline", "tomorrow"),
    ],
)
def test_xsd_refuses_a_bad_field_naming_element_and_line(path, text):
    root = _set(_tree("dispatch_order.utf8.xml"), path, text)
    refusal = _xsd_refusal(root)
    element = path.split("/")[-1]
    assert refusal.field == element
    assert f"element {element}" in refusal.detail
    assert "line " in refusal.detail


def test_xsd_error_names_the_source_line():
    data = golden_bytes("dispatch_order.utf8.xml").replace(b"13901001234</Customer", b"139-0100-1234</Customer")
    root, _ = xmlwire.parse(data)
    refusal = _xsd_refusal(root)
    assert "line 11, element CustomerMobile" in refusal.detail
    assert refusal.field == "CustomerMobile"


def test_xsd_refuses_a_missing_element_and_counts_further_errors():
    root = copy.deepcopy(_tree("return_order_first.xml"))
    root.remove(root.find(f"{{{wire.NS}}}ReplierPhone"))
    refusal = _xsd_refusal(root)
    assert refusal.field == "Result"  # where ReplierPhone was expected
    assert "Expected is ( {urn:cs-hub:order:1}ReplierPhone )" in refusal.detail


def test_xsd_reports_the_first_error_and_counts_the_others():
    root = _set(_tree("dispatch_order.utf8.xml"), "DispatcherPhone", "phone")
    root = _set(root, "CustomerMobile", "mobile")
    refusal = _xsd_refusal(root)
    assert refusal.field == "DispatcherPhone"
    assert "(1 more schema error(s) follow.)" in refusal.detail


def test_xsd_refuses_an_unknown_extra_element():
    root = copy.deepcopy(_tree("dispatch_receipt.xml"))
    etree.SubElement(root, f"{{{wire.NS}}}Comment").text = "x"
    assert _xsd_refusal(root).field == "Comment"


def test_rejected_receipt_reason_is_optional_in_xsd_but_bounded():
    root = _set(_tree("dispatch_receipt.xml"), "Status", "rejected")
    wire.validate_xsd(root)  # the co-constraint (reason required) is a rule, see test_orders_rules
    etree.SubElement(root, f"{{{wire.NS}}}Reason").text = "原" * 501
    assert _xsd_refusal(root).field == "Reason"


@pytest.mark.parametrize(
    "xml",
    [
        b"<Order xmlns='urn:cs-hub:order:1'/>",
        b"<DispatchOrder xmlns='urn:cs-hub:order:2'/>",
        b"<DispatchOrder/>",
    ],
)
def test_unknown_root_or_namespace_is_an_unknown_type(xml):
    root, _ = xmlwire.parse(xml)
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(root)
    assert err.value.reason is ReasonCode.UNKNOWN_TYPE


def test_unvalidated_tree_with_bad_time_is_a_field_error():
    root = _set(_tree("dispatch_order.utf8.xml"), "DispatchTime", "2024-13-45T99:00:00+08:00")
    with pytest.raises(RejectedMessage) as err:
        wire.from_xml(root, validate=False)
    assert (err.value.reason, err.value.field) == (ReasonCode.FIELD_INVALID, "DispatchTime")


# ----------------------------------------------------------------------------- the XSD itself


def _xsd() -> etree._Element:
    return etree.parse(str(schemas.schema_path(wire.SCHEMA_NAME))).getroot()


def test_xsd_namespace_and_qualified_elements():
    xsd = _xsd()
    assert xsd.get("targetNamespace") == wire.NS == "urn:cs-hub:order:1"
    assert xsd.get("elementFormDefault") == "qualified"


def test_xsd_root_elements_are_the_message_types():
    roots = [e.get("name") for e in _xsd().findall(f"{XS}element")]
    assert roots == ["DispatchOrder", "ReturnOrder", "DispatchReceipt", "ReturnReceipt", "OrderAlarm"]
    assert set(roots) == set(MESSAGE_TYPES)


def test_every_xsd_element_is_documented_in_chinese_and_english():
    elements = list(_xsd().iter(f"{XS}element"))
    assert len(elements) > 40
    for element in elements:
        docs = element.findall(f"{XS}annotation/{XS}documentation")
        langs = {d.get(XML_LANG): (d.text or "").strip() for d in docs}
        assert set(langs) == {"zh", "en"}, element.get("name")
        assert all(langs.values()), element.get("name")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in langs["zh"]), element.get("name")


def _xsd_children(xsd: etree._Element, element_name: str) -> list[str]:
    decl = xsd.find(f"{XS}element[@name='{element_name}']")
    return [e.get("name") for e in decl.iter(f"{XS}element") if e is not decl]


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_model_fields_follow_the_xsd_element_order(name):
    xsd = _xsd()
    aliases = [info.alias for info in MESSAGE_TYPES[name].model_fields.values()]
    children = [c for c in _xsd_children(xsd, name) if c not in ("Code", "Name", "Party")]
    assert aliases == children


def test_dispatch_order_has_the_thirteen_seed_fields_in_seed_order():
    aliases = [info.alias for info in DispatchOrder.model_fields.values()]
    assert [FIELD_NAMES_ZH[a] for a in aliases] == [
        "公司编号", "流水号", "派往公司名", "派单人姓名", "派单人联系电话", "用户手机号", "投诉人姓名",
        "投诉人联系电话", "投诉类别", "投诉问题", "初步答复时限要求", "最终答复时限要求", "派单时间",
    ]


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_model_descriptions_quote_the_chinese_field_names(name):
    for info in MESSAGE_TYPES[name].model_fields.values():
        assert info.description.startswith(FIELD_NAMES_ZH[info.alias] + ":"), info.alias
    for info in CompanyRef.model_fields.values():
        assert info.description.startswith(FIELD_NAMES_ZH[f"ToCompany/{info.alias}"] + ":")


# ----------------------------------------------------------------------------- XSD and rules agree


def _xsd_accepts(path: str, text: str) -> bool:
    try:
        wire.validate_xsd(_set(_tree("dispatch_order.utf8.xml"), path, text))
    except RejectedMessage:
        return False
    return True


def _rule_accepts(check, *args) -> bool:
    try:
        check(*args)
    except RejectedMessage:
        return False
    return True


SAMPLES = {
    "CustomerMobile": ["13901001234", "19912345678", "12901001234", "1390100123", "139010012345",
                       "+8613901001234", "１3901001234"],
    "DispatcherPhone": ["10086", "010-12345678", "+86-20-87654321", "1234", "020--87654321", "-02087654321",
                        "020-", "+", "1" * 20, "1" * 21, "020 87654321", "(020)87654321"],
    "SerialNumber": ["1", "20240611-000123", "A" * 32, "A" * 33, "", "2024_06", "序号1"],
    "CompanyCode": ["44", "00", "HQ", "abcdefgh", "abcdefghi", "4", "4-4"],
    "DispatcherName": ["李娜", "Li Na", "李" * 50, "李" * 51, "", " 李娜", "李娜\t", "李\n娜", "张\u3000三"],
    "ComplaintIssue": ["信号差", " 前后有空格 ", "多\n行", "字" * 2000, "字" * 2001, " \n\t "],
}
RULES = {
    "CustomerMobile": lambda v: rules.check_mobile(v),
    "DispatcherPhone": lambda v: rules.check_phone(v, "DispatcherPhone"),
    "SerialNumber": lambda v: rules.check_serial(v),
    "CompanyCode": lambda v: rules.check_company_code(v),
    "DispatcherName": lambda v: rules.check_name(v, "DispatcherName"),
    "ComplaintIssue": lambda v: rules.check_text(v, "ComplaintIssue", rules.ISSUE_MAX),
}


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in SAMPLES.items() for v in values])
def test_xsd_and_rules_accept_the_same_values(field, value):
    assert _xsd_accepts(field, value) == _rule_accepts(RULES[field], value)


# ----------------------------------------------------------------------------- docs


@pytest.mark.parametrize("name", sorted(n for n in GOLDEN_FILES if "gbk" not in n))
def test_docs_quote_the_golden_messages_verbatim(name):
    docs = (REPO / "docs" / "orders.md").read_text(encoding="utf-8")
    assert golden_bytes(name).decode("utf-8").rstrip("\n") in docs
