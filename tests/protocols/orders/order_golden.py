"""Golden order messages and the fixed clock of the order protocol tests (imported by the tests).

Owns: where the golden files live and how a test reads them. Pure: no broker, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from protocols.orders import wire

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent / "golden"
#: The hub's clock in the tests: five minutes after the golden dispatch (10:00 +08:00).
NOW = datetime(2024, 6, 11, 2, 5, 0, tzinfo=UTC)

#: Every golden file and the message type it holds.
GOLDEN_FILES = {
    "dispatch_order.utf8.xml": "DispatchOrder",
    "dispatch_order.gbk.xml": "DispatchOrder",
    "dispatch_receipt.xml": "DispatchReceipt",
    "return_order_first.xml": "ReturnOrder",
    "return_receipt_first.xml": "ReturnReceipt",
    "return_order_final.xml": "ReturnOrder",
    "return_receipt_final.xml": "ReturnReceipt",
    "order_alarm.xml": "OrderAlarm",
}


def golden_bytes(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def golden(name: str):
    return wire.loads(golden_bytes(name))
