"""protocols/smpp/receipts.py: receipt parsing, id normalisation, correlation in both orders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import RejectedMessage
from protocols.smpp.receipts import (
    MessageState,
    Pending,
    Receipt,
    ReceiptCorrelator,
    SmsStatus,
    message_id_forms,
    normalise_message_id,
    parse_receipt_date,
    parse_receipt_text,
    receipt_from_deliver_sm,
)

SPEC_TEXT = (b"id:0123456789 sub:001 dlvrd:001 submit date:2406111000 done date:2406111001 "
             b"stat:DELIVRD err:000 Text:Your code is 1234")


# ----------------------------------------------------------------------------- parsing


def test_appendix_b_text():
    r = receipt_from_deliver_sm(0x04, SPEC_TEXT)
    assert r == Receipt(message_id="0123456789", state=MessageState.DELIVERED, stat="DELIVRD",
                        error="000", submitted=1, delivered=1, submit_date="2406111000",
                        done_date="2406111001", text="Your code is 1234")


@pytest.mark.parametrize(("text", "message_id", "state", "error"), [
    # upper-case keys and stat, as several SMSCs send them
    (b"ID:7F3A2B SUB:001 DLVRD:000 SUBMIT DATE:2406111000 DONE DATE:2406111005 STAT:UNDELIV ERR:011 TEXT:",
     "7F3A2B", MessageState.UNDELIVERABLE, "011"),
    # hex id in lower case, seconds in dates, underscores in keys
    (b"id:0a1b2c3d sub:001 dlvrd:001 submit_date:240611100000 done_date:240611100130 stat:delivrd err:0",
     "0a1b2c3d", MessageState.DELIVERED, "0"),
    # decimal id with leading zeros, fields missing, text containing look-alike keys
    (b"id:0000012345 stat:EXPIRED text:id:999 stat:DELIVRD", "0000012345", MessageState.EXPIRED, None),
    # long spellings
    (b"id:42 stat:REJECTED err:088", "42", MessageState.REJECTED, "088"),
    (b"id:42 stat:ACCEPTD", "42", MessageState.ACCEPTED, None),
    (b"id:42 stat:weird", "42", MessageState.UNKNOWN, None),
])
def test_real_world_text_variants(text, message_id, state, error):
    r = receipt_from_deliver_sm(0x04, text)
    assert (r.message_id, r.state, r.error) == (message_id, state, error)


def test_text_after_text_key_is_kept_whole():
    assert parse_receipt_text("id:1 stat:DELIVRD text:id:2 stat:UNDELIV")["text"] == "id:2 stat:UNDELIV"


def test_tlvs_win_and_the_text_id_is_kept_as_an_alternative():
    r = receipt_from_deliver_sm(
        0x04, b"id:439041101 sub:001 dlvrd:001 stat:DELIVRD err:000",
        {"receipted_message_id": b"1a2b3c4d\x00", "message_state": 5, "network_error_code": b"\x03\x00\x22"})
    assert r.message_id == "1a2b3c4d" and r.other_ids == ("439041101",)
    assert r.state is MessageState.UNDELIVERABLE      # the TLV, not the text's DELIVRD
    assert r.error == "000"                            # err: from the text


def test_tlvs_only():
    r = receipt_from_deliver_sm(0x04, b"", {"receipted_message_id": "ABC", "message_state": 3,
                                            "network_error_code": b"\x03\x00\x22"})
    assert (r.message_id, r.state, r.error, r.other_ids) == ("ABC", MessageState.EXPIRED, "3/34", ())


@pytest.mark.parametrize(("value", "state"), [
    (1, MessageState.ENROUTE), (2, MessageState.DELIVERED), (3, MessageState.EXPIRED),
    (4, MessageState.DELETED), (5, MessageState.UNDELIVERABLE), (6, MessageState.ACCEPTED),
    (7, MessageState.UNKNOWN), (8, MessageState.REJECTED), (b"\x02", MessageState.DELIVERED),
])
def test_message_state_tlv_values(value, state):
    assert receipt_from_deliver_sm(0x04, b"", {"receipted_message_id": "1", "message_state": value}).state is state


def test_an_mo_message_is_not_a_receipt():
    assert receipt_from_deliver_sm(0x00, "满意".encode("utf-16-be")) is None
    assert receipt_from_deliver_sm(0x00, b"1") is None


def test_receipt_text_without_the_esm_class_flag_is_still_a_receipt():
    assert receipt_from_deliver_sm(0x00, b"id:5 stat:DELIVRD").message_id == "5"


def test_a_receipt_without_any_id_is_refused():
    with pytest.raises(RejectedMessage) as err:
        receipt_from_deliver_sm(0x04, b"stat:DELIVRD")
    assert err.value.field == "receipted_message_id"


def test_receipt_dates():
    assert parse_receipt_date("2406111001").isoformat() == "2024-06-11T10:01:00"
    assert parse_receipt_date("240611100130").isoformat() == "2024-06-11T10:01:30"
    assert parse_receipt_date("24061") is None and parse_receipt_date("2413991001") is None


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize(("raw", "canonical"), [
    ("0A1B", "a1b"), ("a1b", "a1b"), ("  00042\x00", "42"), (b"00FF\x00", "ff"), ("0000", "0"),
])
def test_normalise_message_id(raw, canonical):
    assert normalise_message_id(raw) == canonical


def test_message_id_forms():
    assert message_id_forms("00A1B2") == ("a1b2", "41394")
    assert message_id_forms("41394") == ("41394", "267156", "a1b2")
    assert message_id_forms("msg-17") == ("msg-17",)
    with pytest.raises(ValueError):
        normalise_message_id(" \x00")


@pytest.mark.parametrize(("submitted", "reported"), [
    ("1A2B3C4D", "439041101"),      # resp hex, receipt decimal
    ("439041101", "1a2b3c4d"),      # resp decimal, receipt hex
    ("0001a2b3c4d", "1A2B3C4D"),    # leading zeros, case
    ("00439041101", "439041101"),
    ("f4240", "0001000000"),        # hex 0xF4240 = 1000000 with leading zeros in decimal
])
def test_a_receipt_matches_whatever_the_representation(submitted, reported):
    c = ReceiptCorrelator()
    c.on_submit_resp(1, submitted, "sms-1", 1, 1)
    m = c.on_receipt(receipt_from_deliver_sm(0x04, f"id:{reported} stat:DELIVRD err:000".encode()), now=0)
    assert m.event.status is SmsStatus.delivered and m.business_ref == "sms-1"


# ----------------------------------------------------------------------------- correlation


def rcpt(message_id: str, stat: str = "DELIVRD", err: str = "000") -> Receipt:
    return receipt_from_deliver_sm(0x04, f"id:{message_id} sub:001 dlvrd:001 stat:{stat} err:{err}".encode())


def test_resp_then_receipt():
    c = ReceiptCorrelator()
    assert c.on_submit_resp(7, "ab12", "sms-1", 1, 1) == []
    m = c.on_receipt(rcpt("AB12"), now=1.0)
    assert m.event.business_ref == "sms-1" and m.event.status is SmsStatus.delivered
    assert m.event.message_ids == ("ab12",) and m.event.error == "000"
    assert c.status_of("sms-1") == m.event


def test_receipt_before_resp_is_matched_when_the_resp_comes():
    c = ReceiptCorrelator()
    early = c.on_receipt(rcpt("439041101"), now=1.0)
    assert isinstance(early, Pending) and c.pending() == [early]
    (m,) = c.on_submit_resp(7, "1A2B3C4D", "sms-1", 1, 1)
    assert m.event.status is SmsStatus.delivered and m.event.business_ref == "sms-1"
    assert c.pending() == [] and c.unknown() == []


def test_unknown_receipts_are_kept_and_listed_and_still_match_late():
    c = ReceiptCorrelator()
    c.on_receipt(rcpt("dead01"), now=0.0)
    assert c.settle(now=10.0, grace=30.0) == []
    (moved,) = c.settle(now=30.0, grace=30.0)
    assert moved.receipt.message_id == "dead01"
    assert c.unknown() == [moved] and c.pending() == []
    (m,) = c.on_submit_resp(1, "DEAD01", "sms-late", 1, 1)   # a very late resp still matches
    assert m.business_ref == "sms-late" and c.unknown() == []


def test_multipart_delivered_only_when_all_parts_are():
    c = ReceiptCorrelator()
    for i, mid in enumerate(("a1", "a2", "a3"), start=1):
        c.on_submit_resp(i, mid, "sms-long", i, 3)
    assert c.on_receipt(rcpt("a2"), 0).event is None
    assert c.on_receipt(rcpt("a1"), 0).event is None
    done = c.on_receipt(rcpt("a3"), 0).event
    assert done.status is SmsStatus.delivered and done.parts_delivered == 3 and done.total_parts == 3
    assert done.message_ids == ("a1", "a2", "a3")


@pytest.mark.parametrize(("stat", "status"), [
    ("UNDELIV", SmsStatus.undeliverable), ("EXPIRED", SmsStatus.expired),
    ("REJECTD", SmsStatus.undeliverable), ("DELETED", SmsStatus.undeliverable),
])
def test_multipart_fails_as_soon_as_one_part_fails(stat, status):
    c = ReceiptCorrelator()
    for i in (1, 2, 3):
        c.on_submit_resp(i, f"b{i}", "sms-long", i, 3)
    assert c.on_receipt(rcpt("b1"), 0).event is None
    failed = c.on_receipt(rcpt("b2", stat, "034"), 0).event
    assert failed.status is status and failed.error == "034" and failed.parts_delivered == 1
    later = c.on_receipt(rcpt("b3"), 0)             # matched, but the status is already final
    assert later.business_ref == "sms-long" and later.event is None
    assert c.status_of("sms-long") == failed


def test_intermediate_states_are_not_final():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "c1", "sms-1", 1, 1)
    for stat in ("ENROUTE", "ACCEPTD", "UNKNOWN"):
        assert c.on_receipt(rcpt("c1", stat), 0).event is None
    assert c.on_receipt(rcpt("c1"), 0).event.status is SmsStatus.delivered


def test_one_final_status_even_if_the_receipt_is_repeated():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "d1", "sms-1", 1, 1)
    assert c.on_receipt(rcpt("d1"), 0).event is not None
    assert c.on_receipt(rcpt("d1"), 0).event is None


def test_exact_match_wins_then_the_smscs_habit_decides():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "10", "sms-ten", 1, 1)      # could be ten, or sixteen in hex
    c.on_submit_resp(2, "16", "sms-sixteen", 1, 1)
    assert c.on_receipt(rcpt("10"), 0).business_ref == "sms-ten"
    # an SMSC that has shown it reports hex resps in decimal is read that way
    c2 = ReceiptCorrelator()
    c2.on_submit_resp(1, "1a2b3c4d", "first", 1, 1)
    c2.on_receipt(rcpt("439041101"), 0)
    c2.on_submit_resp(2, "10", "sms-ten", 1, 1)
    c2.on_submit_resp(3, "16", "sms-sixteen", 1, 1)
    assert c2.on_receipt(rcpt("16"), 0).business_ref == "sms-ten"


def test_ambiguous_receipt_is_kept_not_guessed():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "0016", "sms-a", 1, 1)
    c.on_submit_resp(2, "16", "sms-b", 1, 1)        # same canonical id: the SMSC reused it
    kept = c.on_receipt(rcpt("16"), 0)
    assert isinstance(kept, Pending) and kept.ambiguous == ("sms-a", "sms-b")
    assert c.pending() == [kept]


def test_a_resubmitted_part_matches_either_id():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "e1", "sms-1", 1, 2)
    c.on_submit_resp(2, "e2", "sms-1", 2, 2)
    c.on_submit_resp(9, "e2b", "sms-1", 2, 2)       # part 2 re-sent after a reconnect
    c.on_receipt(rcpt("e1"), 0)
    assert c.on_receipt(rcpt("e2b"), 0).event.status is SmsStatus.delivered


def test_forget_makes_later_receipts_unknown():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "f1", "sms-1", 1, 1)
    c.forget("sms-1")
    assert isinstance(c.on_receipt(rcpt("f1"), 0), Pending)


def test_inconsistent_part_counts_are_a_programming_error():
    c = ReceiptCorrelator()
    c.on_submit_resp(1, "g1", "sms-1", 1, 2)
    with pytest.raises(ValueError):
        c.on_submit_resp(2, "g2", "sms-1", 2, 3)
    with pytest.raises(ValueError):
        c.on_submit_resp(3, "g3", "sms-2", 3, 2)


def test_several_early_receipts_are_matched_in_arrival_order():
    c = ReceiptCorrelator()
    c.on_receipt(rcpt("99", "ENROUTE"), now=0)
    c.on_receipt(rcpt("other"), now=0)
    c.on_receipt(rcpt("099", "DELIVRD"), now=1)
    first, second = c.on_submit_resp(1, "0099", "sms-1", 1, 1)
    assert first.event is None and second.event.status is SmsStatus.delivered
    assert [p.receipt.message_id for p in c.pending()] == ["other"]


@given(st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]),
       st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=20),
       st.one_of(st.none(), st.text(max_size=40)))
def test_the_fast_path_for_the_standard_layout_agrees_with_the_general_scan(stat, mid, tail):
    from protocols.smpp.receipts import _scan_receipt_text

    text = f"id:{mid} sub:001 dlvrd:001 submit date:2611220557 done date:2611220558 stat:{stat} err:000"
    if tail is not None:
        text += f" text:{tail}"
    assert parse_receipt_text(text) == _scan_receipt_text(text)
