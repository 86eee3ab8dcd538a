"""Fixtures of the order protocol tests: the shipped code lists and the golden dispatch order."""

from __future__ import annotations

import pytest
import yaml
from order_golden import REPO, golden

from protocols.orders.categories import ComplaintCategories
from protocols.orders.models import DispatchOrder
from protocols.orders.segments import SegmentTable


@pytest.fixture(scope="session")
def categories() -> ComplaintCategories:
    data = yaml.safe_load((REPO / "config" / "complaint_categories.yaml").read_text(encoding="utf-8"))
    return ComplaintCategories.from_mapping(data, source="config/complaint_categories.yaml")


@pytest.fixture(scope="session")
def segments() -> SegmentTable:
    data = yaml.safe_load((REPO / "config" / "segments.yaml").read_text(encoding="utf-8"))
    return SegmentTable.from_mapping(data, source="config/segments.yaml")


@pytest.fixture
def dispatch() -> DispatchOrder:
    """The golden dispatch order: Guangdong (44) to HOME for a Beijing (11) customer."""
    return golden("dispatch_order.utf8.xml")
