"""Golden announcement messages and the fixed clock of the announcement tests (imported by the tests).

Owns: where the golden files live, how a test reads them, the node groups of the tests. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from protocols.announcements import wire

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent / "golden"
#: The hub's clock in the tests: 2024-07-16 12:00 +08:00, after every golden message and
#: before the cut-over announcement's reply deadline (2024-07-18 12:00 +08:00).
NOW = datetime(2024, 7, 16, 4, 0, 0, tzinfo=UTC)
HQ = "00"
FAULT, CUTOVER = "GG-00-20240710-0001", "GG-44-20240715-0002"

PROVINCES = ("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
             "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65")
#: The node groups as hub.nodes.Directory builds them from config/nodes.yaml (kinds -> groups).
GROUPS = {"all": (HQ, "99", *PROVINCES), "hq": (HQ,), "second_line": ("99",), "provinces": PROVINCES}

GOLDEN_FILES = {
    "announcement.xml": "Announcement",
    "announcement_publish_fault.xml": "AnnouncementPublish",
    "announcement_publish_fault_closed.xml": "AnnouncementPublish",
    "announcement_submission.xml": "AnnouncementSubmission",
    "announcement_submission.gbk.xml": "AnnouncementSubmission",
    "return_for_modification.xml": "ReturnForModification",
    "announcement_submission_resubmitted.xml": "AnnouncementSubmission",
    "announcement_publish_cutover.xml": "AnnouncementPublish",
    "announcement_reply.xml": "AnnouncementReply",
    "reply_return.xml": "ReplyReturn",
    "announcement_reply_resubmitted.xml": "AnnouncementReply",
    "reply_accepted.xml": "ReplyAccepted",
}


def golden_bytes(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def golden(name: str):
    return wire.loads(golden_bytes(name))


def sender_of(message) -> str:
    """The authenticated node a golden message comes from."""
    name = type(message).__name__
    if name == "AnnouncementSubmission":
        return message.submitter_code
    if name == "AnnouncementReply":
        return message.company_code
    return HQ


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
