"""protocols/smpp/text.py: alphabet choice, limits, splitting, UDH bytes, MO decoding, reassembly."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ReasonCode, RejectedMessage
from protocols.smpp.text import (
    ESM_UDHI,
    GSM_BASIC,
    GSM_EXTENSION,
    Concat,
    DataCoding,
    Reassembler,
    choose_data_coding,
    decode,
    decode_text,
    gsm7_septets,
    parse_udh,
    split,
)

CHINESE = "尊敬的客户，您好！您反映的宽带故障已由本地维护人员处理完毕，如仍有问题请拨打客服热线。"


def joined_text(parts) -> str:
    """What a handset shows: each part decoded from its payload, joined in order."""
    return "".join(decode_text(p.payload, p.data_coding) for p in parts)


# ----------------------------------------------------------------------------- alphabet


def test_gsm_table_is_the_03_38_default_alphabet():
    assert len(GSM_BASIC) == 128
    assert GSM_BASIC[0x00] == "@" and GSM_BASIC[0x02] == "$" and GSM_BASIC[0x24] == "¤"
    assert GSM_BASIC[0x5F] == "§" and GSM_BASIC[0x60] == "¿" and GSM_BASIC[0x7F] == "à"
    assert GSM_BASIC[0x41] == "A" and GSM_BASIC[0x61] == "a" and GSM_BASIC[0x30] == "0"


@pytest.mark.parametrize(("text", "coding"), [
    ("Your code is 123456", DataCoding.GSM7),
    ("Price: 5€ {promo} [x] ~ | ^ \\", DataCoding.GSM7),   # extension table
    ("Ça coûte 5 £ à Zürich", DataCoding.UCS2),            # û is not GSM
    ("Grüße aus Köln, Ñoño, Øre, Æble", DataCoding.GSM7),
    ("您的验证码为123456", DataCoding.UCS2),
    ("backtick ` is not GSM", DataCoding.UCS2),
    ("emoji 👍", DataCoding.UCS2),
])
def test_choice_of_data_coding(text, coding):
    assert choose_data_coding(text) is coding


def test_extension_characters_count_two_septets():
    assert gsm7_septets("abc") == 3
    assert gsm7_septets("€{}") == 6
    assert gsm7_septets("汉") is None


# ----------------------------------------------------------------------------- single-part boundaries


def test_gsm7_160_is_one_part_161_is_two():
    one = split("a" * 160, reference=1)
    assert len(one) == 1 and one[0].udh == b"" and one[0].esm_class == 0
    assert one[0].data_coding is DataCoding.GSM7 and one[0].payload == b"a" * 160
    two = split("a" * 161, reference=1)
    assert [len(p.payload) for p in two] == [152, 9]
    assert all(p.esm_class == ESM_UDHI for p in two)


def test_gsm7_extension_characters_count_against_the_160():
    assert len(split("€" * 80, reference=1)) == 1          # 160 septets
    assert len(split("a" + "€" * 80, reference=1)) == 2    # 161 septets


def test_ucs2_70_is_one_part_71_is_two():
    one = split("汉" * 70, reference=1)
    assert len(one) == 1 and one[0].data_coding is DataCoding.UCS2 and len(one[0].payload) == 140
    two = split("汉" * 71, reference=1)
    assert [len(p.payload) // 2 for p in two] == [66, 5]


def test_eight_bit_references_give_153_and_67_per_part():
    assert [len(p.payload) for p in split("a" * 306, 9, reference_bits=8)] == [153, 153]
    assert [len(p.payload) // 2 for p in split("汉" * 134, 9, reference_bits=8)] == [67, 67]


def test_empty_text_is_refused():
    with pytest.raises(RejectedMessage) as err:
        split("", reference=1)
    assert err.value.reason is ReasonCode.FIELD_INVALID


def test_more_than_255_parts_is_oversize():
    assert len(split("汉" * 66 * 255, reference=1)) == 255
    with pytest.raises(RejectedMessage) as err:
        split("汉" * (66 * 255 + 1), reference=1)
    assert err.value.reason is ReasonCode.OVERSIZE


def test_reference_must_fit():
    with pytest.raises(ValueError):
        split("a" * 200, reference=70000)
    with pytest.raises(ValueError):
        split("a" * 200, reference=256, reference_bits=8)


# ----------------------------------------------------------------------------- splitting


def test_long_chinese_text_splits_and_reassembles_exactly():
    text = CHINESE * 5
    parts = split(text, reference=0x1234)
    assert len(parts) == -(-len(text) // 66)
    assert [(p.index, p.total) for p in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    assert all(len(p.payload) <= 132 for p in parts)
    assert joined_text(parts) == text


def test_sixteen_bit_udh_bytes():
    parts = split("汉" * 140, reference=0xBEEF)
    assert [p.udh for p in parts] == [
        bytes.fromhex("060804BEEF0301"), bytes.fromhex("060804BEEF0302"), bytes.fromhex("060804BEEF0303")]
    assert parts[0].short_message == bytes.fromhex("060804BEEF0301") + ("汉" * 66).encode("utf-16-be")
    assert len(parts[0].short_message) == 139   # 7 + 132 <= 140


def test_eight_bit_udh_bytes():
    parts = split("a" * 200, reference=0x7F, reference_bits=8)
    assert [p.udh for p in parts] == [bytes.fromhex("0500037F0201"), bytes.fromhex("0500037F0202")]


def test_emoji_at_a_part_boundary_is_not_split():
    text = "汉" * 65 + "👍" + "汉" * 10      # the pair would straddle units 66/67
    parts = split(text, reference=3)
    assert len(parts[0].payload) == 130      # 65 units: the pair moved to part 2
    assert parts[1].payload[:4] == "👍".encode("utf-16-be")
    for p in parts:                          # every part decodes on its own, strictly
        p.payload.decode("utf-16-be", errors="strict")
    assert joined_text(parts) == text


def test_gsm_escape_at_a_part_boundary_is_not_split():
    text = "a" * 151 + "€" + "b" * 20        # the escape pair would straddle septets 152/153
    parts = split(text, reference=3)
    assert parts[0].payload == b"a" * 151
    assert parts[1].payload.startswith(b"\x1b\x65")
    assert joined_text(parts) == text


def test_gsm7_payload_is_unpacked_septets():
    (part,) = split("@Hi€", reference=0)
    assert part.payload == bytes([0x00, 0x48, 0x69, 0x1B, 0x65])


# ----------------------------------------------------------------------------- decoding MO


def test_decode_gsm7_unpacked():
    assert decode(bytes([0x00, 0x48, 0x69, 0x1B, 0x65, 0x1B, 0x3C]), 0, 0) == (None, "@Hi€[")


def test_decode_unknown_escape_shows_the_base_character_and_bad_octets_are_replaced():
    assert decode_text(bytes([0x1B, 0x41, 0x80]), 0) == "A\ufffd"


def test_decode_latin1_ascii_and_ucs2():
    assert decode("Zürich".encode("latin-1"), 3, 0) == (None, "Zürich")
    assert decode(b"plain", 1, 0) == (None, "plain")
    assert decode("满意👍".encode("utf-16-be"), 8, 0) == (None, "满意👍")


def test_decode_gsm_dcs_forms():
    assert decode_text("汉".encode("utf-16-be"), 0x18) == "汉"    # general group, UCS2, class 0
    assert decode_text(b"\x41", 0xF0) == "A"                       # class group, GSM 7-bit


def test_binary_data_coding_is_refused():
    with pytest.raises(RejectedMessage) as err:
        decode(b"\x01\x02", 0x04, 0)
    assert err.value.reason is ReasonCode.SMPP_DATA_CODING


def test_decode_part_with_8_bit_reference():
    udh = bytes.fromhex("0500032A0302")
    concat, text = decode(udh + "满意".encode("utf-16-be"), 8, ESM_UDHI)
    assert concat == Concat(reference=0x2A, total=3, index=2, reference_bits=8)
    assert text == "满意"


def test_decode_part_with_16_bit_reference_and_another_ie_first():
    # a port-addressing IE (0x05) before the concatenation IE: skipped
    udh = bytes.fromhex("0C" "0504" "0B840000" "0804" "BEEF" "0201")
    concat, text = decode(udh + b"Hi", 0, ESM_UDHI)
    assert concat == Concat(0xBEEF, 2, 1, 16) and text == "Hi"


def test_without_udhi_the_bytes_are_all_text():
    assert decode(bytes.fromhex("0500032A0302"), 3, 0)[0] is None


def test_malformed_udh_is_refused():
    with pytest.raises(RejectedMessage):
        decode(bytes.fromhex("0A0003"), 0, ESM_UDHI)
    with pytest.raises(RejectedMessage):
        parse_udh(bytes.fromhex("05000501"))


# ----------------------------------------------------------------------------- reassembly


def mo_parts(text: str, reference: int, bits: int):
    return [(p.short_message, int(p.data_coding), p.esm_class) for p in split(text, reference, reference_bits=bits)]


@pytest.mark.parametrize("bits", [8, 16])
def test_reassembly_in_any_order(bits):
    text = CHINESE * 4
    parts = mo_parts(text, 200, bits)
    assert len(parts) >= 3
    for order in (list(range(len(parts))), list(reversed(range(len(parts)))), [1, 0] + list(range(2, len(parts)))):
        r = Reassembler()
        results = [r.add("13800138000", *parts[i], now=0.0) for i in order]
        assert results[:-1] == [None] * (len(parts) - 1)
        assert results[-1].complete and results[-1].text == text
        assert len(r) == 0


def test_single_message_passes_straight_through():
    r = Reassembler()
    got = r.add("13800138000", "1".encode("utf-16-be"), 8, 0, now=0.0)
    assert got.text == "1" and got.complete and got.reference is None


def test_same_reference_from_two_senders_does_not_mix():
    r = Reassembler()
    a, b = mo_parts("A" * 200, 5, 8), mo_parts("B" * 200, 5, 8)
    assert r.add("1390000001", *a[0], now=0) is None
    assert r.add("1390000002", *b[1], now=0) is None
    assert r.add("1390000001", *a[1], now=0).text == "A" * 200
    assert r.add("1390000002", *b[0], now=0).text == "B" * 200


def test_repeated_part_is_ignored():
    r = Reassembler()
    a = mo_parts("A" * 200, 5, 16)
    assert r.add("x", *a[0], now=0) is None
    assert r.add("x", *a[0], now=1) is None
    assert r.add("x", *a[1], now=2).text == "A" * 200


def test_a_surrogate_pair_cut_by_the_handset_comes_out_whole():
    # some handsets cut UTF-16 in the middle of a pair; joining octets first repairs it
    payload = ("汉" * 66 + "👍").encode("utf-16-be")
    first, second = payload[:132], payload[132:]
    r = Reassembler()
    assert r.add("x", bytes.fromhex("06080400010201") + first[:130] + payload[130:134], 8, ESM_UDHI, 0) is None
    got = r.add("x", bytes.fromhex("06080400010202") + second[2:], 8, ESM_UDHI, 0)
    assert got.text == "汉" * 65 + "汉👍"


def test_expiry_by_time_returns_the_partial_text():
    r = Reassembler(max_age=60)
    parts = mo_parts("满意" * 40, 9, 16)
    r.add("x", *parts[1], now=100.0)
    assert r.expire(now=159.0) == []
    (gone,) = r.expire(now=160.0)
    assert not gone.complete and gone.received == (2,) and gone.total == 2
    assert gone.text == decode_text(split("满意" * 40, 9)[1].payload, 8)
    assert len(r) == 0


def test_buffer_is_bounded_and_evicts_the_oldest_into_expire():
    r = Reassembler(max_pending=2, max_age=600)
    for ref in (1, 2, 3):
        r.add("x", *mo_parts("a" * 200, ref, 8)[0], now=float(ref))
    assert len(r) == 2
    (evicted,) = r.expire(now=4.0)
    assert evicted.reference == 1 and not evicted.complete


# ----------------------------------------------------------------------------- properties

ALPHABET = st.sampled_from(list("abcXYZ 0123@£ÄΩ\n€{}[]~^|\\") + list("汉字满意您好，。") + ["👍", "😀", "𠀋"])


@settings(max_examples=150, deadline=None)
@given(text=st.text(ALPHABET, min_size=1, max_size=900), reference=st.integers(0, 0xFFFF),
       seed=st.integers(0, 2**16))
def test_split_then_reassemble_in_random_order_is_the_identity(text, reference, seed):
    parts = split(text, reference)
    single = 160 if parts[0].data_coding is DataCoding.GSM7 else 140
    per_part = 152 if parts[0].data_coding is DataCoding.GSM7 else 132
    if len(parts) == 1:
        assert len(parts[0].payload) <= single and parts[0].udh == b""
    else:
        assert all(len(p.payload) <= per_part and len(p.short_message) <= 7 + per_part for p in parts)
    # no part ends inside a surrogate pair or a GSM escape
    for p in parts:
        if p.data_coding is DataCoding.UCS2:
            p.payload.decode("utf-16-be", errors="strict")
        else:
            assert not p.payload.endswith(b"\x1b") or p.payload.endswith(b"\x1b\x1b")
    assert joined_text(parts) == text
    order = list(range(len(parts)))
    random.Random(seed).shuffle(order)
    r = Reassembler()
    results = [r.add("13800138000", parts[i].short_message, parts[i].data_coding, parts[i].esm_class, 0.0)
               for i in order]
    assert results[-1] is not None and results[-1].text == text
    assert all(x is None for x in results[:-1])


@settings(max_examples=100, deadline=None)
@given(text=st.text(ALPHABET, min_size=1, max_size=400))
def test_parts_are_as_full_as_whole_characters_allow(text):
    parts = split(text, 1)
    if len(parts) > 1:
        limit = 152 if parts[0].data_coding is DataCoding.GSM7 else 66
        for p, nxt in zip(parts, parts[1:], strict=False):
            units = len(p.payload) if p.data_coding is DataCoding.GSM7 else len(p.payload) // 2
            first_next = decode_text(nxt.payload, nxt.data_coding)[0]
            width = 2 if (first_next in GSM_EXTENSION or ord(first_next) > 0xFFFF) else 1
            assert units + width > limit   # the next character did not fit
