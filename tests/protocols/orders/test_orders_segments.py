"""Number segments (号段) and complaint categories: the shipped tables, lookups and table errors."""

from __future__ import annotations

from collections import Counter

import pytest

from protocols.errors import ConfigError, ReasonCode, RejectedMessage
from protocols.orders.categories import ComplaintCategories
from protocols.orders.segments import SegmentTable

#: Domain section 10: the 31 province codes (GB/T 2260).
PROVINCES = {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
             "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"}


def test_shipped_table_covers_every_province(segments):
    assert segments.provinces() == PROVINCES
    per_province = Counter(segments.as_dict().values())
    for busy in ("11", "31", "44"):
        assert per_province[busy] >= 3, busy


@pytest.mark.parametrize(
    ("mobile", "province"),
    [("13901001234", "11"), ("13800138000", "11"), ("13920001234", "44"), ("13816001234", "31"),
     ("13707550000", "44"), ("13999100001", "65")],
)
def test_home_province(segments, mobile, province):
    assert segments.home_province(mobile) == province


def test_unknown_segment_is_refused_naming_the_segment(segments):
    with pytest.raises(RejectedMessage) as err:
        segments.home_province("19912345678")
    assert (err.value.reason, err.value.field, err.value.value) == (
        ReasonCode.UNKNOWN_SEGMENT, "CustomerMobile", "1991234")
    assert "1991234" in err.value.detail and "号段" in err.value.detail
    assert err.value.text_zh().startswith("未知的号段")


@pytest.mark.parametrize("mobile", ["1390100123", "23901001234", "139-0100-1234", "", "139010012345"])
def test_a_malformed_mobile_is_a_field_error_not_a_segment_error(segments, mobile):
    with pytest.raises(RejectedMessage) as err:
        segments.home_province(mobile)
    assert (err.value.reason, err.value.field) == (ReasonCode.FIELD_INVALID, "CustomerMobile")


def test_table_content_is_passed_in_and_yaml_numbers_are_accepted():
    table = SegmentTable.from_mapping({"version": 1, "segments": {1390100: 11, "1381600": "31"}})
    assert len(table) == 2 and "1390100" in table
    assert table.home_province("13901009999") == "11"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"segments": {"139010": "11"}}, "segment '139010' is not 7 digits"),
        ({"segments": {"1290100": "11"}}, "segment '1290100' is not 7 digits"),
        ({"segments": {"1390100": "Beijing"}}, "segment 1390100 maps to 'Beijing'"),
        ({"segments": {"1390100": "11", 1390100: "11"}}, "segment 1390100 is listed twice"),
        ({"segments": ["1390100"]}, "must be a mapping with a 'segments' mapping"),
        ({}, "must be a mapping with a 'segments' mapping"),
        ({"version": 2, "segments": {}}, "has version 2"),
    ],
)
def test_bad_segment_table_is_a_config_error(data, message):
    with pytest.raises(ConfigError) as err:
        SegmentTable.from_mapping(data, source="segments.yaml")
    assert message in err.value.detail
    assert str(err.value).startswith("segments.yaml: ")


def test_shipped_complaint_categories(categories):
    assert len(categories) == 10
    signal = categories.get("NETWORK_SIGNAL")
    assert (signal.zh, signal.display("en")) == ("网络信号", "Network signal and coverage")
    assert {c.zh for c in categories} >= {"网络信号", "计费争议", "服务质量", "业务办理", "资费", "漫游", "短信",
                                         "数据业务", "营业厅", "其他"}
    assert "WEATHER" not in categories


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"categories": []}, "non-empty 'categories' list"),
        ({"categories": [{"code": "network", "zh": "网络", "en": "Network"}]}, "has code 'network'"),
        ({"categories": [{"code": "SMS", "zh": "短信"}]}, "exactly the keys code, zh and en"),
        ({"categories": [{"code": "SMS", "zh": " ", "en": "SMS"}]}, "needs non-empty zh and en"),
        ({"categories": [{"code": "SMS", "zh": "短信", "en": "SMS"}] * 2}, "category SMS is listed twice"),
        ({"version": 3, "categories": [{"code": "SMS", "zh": "短信", "en": "SMS"}]}, "has version 3"),
    ],
)
def test_bad_category_list_is_a_config_error(data, message):
    with pytest.raises(ConfigError) as err:
        ComplaintCategories.from_mapping(data)
    assert message in err.value.detail
