"""SMS text on the SMPP wire: alphabet choice, splitting with concatenation headers, MO decoding.

Owns: the GSM 03.38 default alphabet and its extension table, the choice of data_coding
(GSM 7-bit when every character is in the GSM alphabet, else UCS2), the split of a long
text into parts with a concatenation user data header (UDH), the decoding of a received
short_message (MO and receipts), and the reassembly of MO parts (`Reassembler`).
Must not: encode PDUs (smpplib does), allocate concatenation references (the adapter does;
they are passed in), read the clock (time is an argument) or keep anything but the
bounded reassembly buffer.

Wire conventions (SMPP 3.4 section 5.2.19 data_coding, 5.2.12 esm_class; 3GPP TS 23.040
section 9.2.3.24 for the UDH; 3GPP TS 23.038 for the alphabets):

- GSM 7-bit text is sent *unpacked*, one septet per octet, as SMPP carries it and as
  smpplib sends it; the SMSC packs it for the air. An extension character (``{ } [ ] ~ \\
  | ^ €`` and form feed) is the escape 0x1B followed by its code: two septets.
- UCS2 is UTF-16BE. A character outside the Basic Multilingual Plane (an emoji) is a
  surrogate pair, two 16-bit units: handsets decode what is in fact UTF-16.
- A part with a UDH has esm_class bit UDHI (0x40) set and short_message = UDH + text.
  Concatenation IEs: 0x00 (8-bit reference, UDH of 6 octets in all) and 0x08 (16-bit
  reference, 7 octets in all). We send 16-bit references: smpplib draws a random 8-bit
  reference, and with 256 values two long messages to one handset soon collide and get
  mixed up. A UDH of 7 octets takes 8 septets (56 bits) of the 140-octet user data, hence
  152 GSM characters per part (153 with the 8-bit header), 66 UCS2 units (67).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum

from protocols.errors import ReasonCode, RejectedMessage

# ----------------------------------------------------------------------------- alphabets

#: GSM 03.38 default alphabet (3GPP TS 23.038 6.2.1), index = septet value. 0x1B is the
#: escape to the extension table, never a character of its own.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
ESCAPE = 0x1B

#: GSM 03.38 extension table (6.2.1.1): character -> code after the escape.
GSM_EXTENSION: dict[str, int] = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}

_GSM_CODE: dict[str, int] = {ch: i for i, ch in enumerate(GSM_BASIC) if i != ESCAPE}
_GSM_EXT_CHAR: dict[int, str] = {code: ch for ch, code in GSM_EXTENSION.items()}


class DataCoding(IntEnum):
    """The data_coding values we send or decode by name (SMPP 3.4 section 5.2.19)."""

    GSM7 = 0x00     # SMSC default alphabet; we mean GSM 03.38 by it
    IA5 = 0x01      # IA5 / ASCII
    LATIN1 = 0x03   # ISO-8859-1
    UCS2 = 0x08     # ISO/IEC 10646, sent and read as UTF-16BE


#: esm_class bit "UDH indicator" (SMPP 3.4 section 5.2.12, GSM specific feature 01xxxxxx).
ESM_UDHI = 0x40

#: Characters (GSM septets or UTF-16 units) in one message without a UDH, and per part.
SINGLE_LIMIT = {DataCoding.GSM7: 160, DataCoding.UCS2: 70}
PART_LIMIT = {  # (data_coding, reference bits) -> units per part
    (DataCoding.GSM7, 16): 152, (DataCoding.GSM7, 8): 153,
    (DataCoding.UCS2, 16): 66, (DataCoding.UCS2, 8): 67,
}
#: The part count is one octet of the concatenation IE.
MAX_PARTS = 255

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


def gsm7_septets(text: str) -> int | None:
    """Septets `text` takes in the GSM alphabet (extension characters count 2); None if any
    character is not in it."""
    count = 0
    for ch in text:
        if ch in _GSM_CODE:
            count += 1
        elif ch in GSM_EXTENSION:
            count += 2
        else:
            return None
    return count


def choose_data_coding(text: str) -> DataCoding:
    """GSM7 when every character is in the GSM alphabet (basic or extension), else UCS2."""
    return DataCoding.GSM7 if gsm7_septets(text) is not None else DataCoding.UCS2


def _gsm7_char(ch: str) -> bytes:
    if ch in _GSM_CODE:
        return bytes((_GSM_CODE[ch],))
    return bytes((ESCAPE, GSM_EXTENSION[ch]))


def _units(ch: str, coding: DataCoding) -> int:
    if coding is DataCoding.GSM7:
        return 1 if ch in _GSM_CODE else 2
    return 2 if ord(ch) > 0xFFFF else 1


def _encode(chars: str, coding: DataCoding) -> bytes:
    if coding is DataCoding.GSM7:
        return b"".join(_gsm7_char(ch) for ch in chars)
    return chars.encode("utf-16-be")


# ----------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Concat:
    """A concatenation IE: this is part `index` (1-based) of `total`, message `reference`."""

    reference: int
    total: int
    index: int
    reference_bits: int = 16

    def udh(self) -> bytes:
        """The whole UDH (UDHL first) carrying only this IE (3GPP TS 23.040 9.2.3.24.1/.8)."""
        if self.reference_bits == 16:
            return bytes((6, IEI_CONCAT_16, 4, self.reference >> 8, self.reference & 0xFF,
                          self.total, self.index))
        return bytes((5, IEI_CONCAT_8, 3, self.reference, self.total, self.index))


@dataclass(frozen=True)
class Part:
    """One submit_sm's worth of text: short_message is `udh + payload`."""

    payload: bytes
    udh: bytes
    data_coding: DataCoding
    esm_class: int
    index: int = 1
    total: int = 1

    @property
    def short_message(self) -> bytes:
        return self.udh + self.payload


def split(text: str, reference: int = 0, *, reference_bits: int = 16) -> list[Part]:
    """The parts to submit for `text`, in order.

    One part without a UDH when the text fits a single message (160 GSM septets, 70 UCS2
    units); otherwise parts carrying a concatenation UDH with `reference` (16-bit unless
    `reference_bits=8`), filled greedily with whole characters: a surrogate pair or a GSM
    escape sequence is never cut, so a part may hold one unit less than the limit.
    Raises RejectedMessage: FIELD_INVALID for an empty text, OVERSIZE beyond 255 parts.
    """
    if reference_bits not in (8, 16):
        raise ValueError(f"reference_bits must be 8 or 16, not {reference_bits!r}")
    if not 0 <= reference < (1 << reference_bits):
        raise ValueError(f"reference {reference!r} does not fit in {reference_bits} bits")
    if not text:
        raise RejectedMessage("The SMS text is empty; give the text to send.",
                              reason=ReasonCode.FIELD_INVALID, field="text", value=text)
    septets = gsm7_septets(text)
    coding = DataCoding.GSM7 if septets is not None else DataCoding.UCS2
    if coding is DataCoding.UCS2:
        payload = text.encode("utf-16-be")
        if len(payload) // 2 <= SINGLE_LIMIT[coding]:   # the common case, without a pass per character
            return [Part(payload=payload, udh=b"", data_coding=coding, esm_class=0)]
    elif septets <= SINGLE_LIMIT[coding]:
        return [Part(payload=_encode(text, coding), udh=b"", data_coding=coding, esm_class=0)]
    units = [_units(ch, coding) for ch in text]
    limit = PART_LIMIT[(coding, reference_bits)]
    chunks: list[str] = []
    start, used = 0, 0
    for i, n in enumerate(units):
        if used + n > limit:
            chunks.append(text[start:i])
            start, used = i, 0
        used += n
    chunks.append(text[start:])
    if len(chunks) > MAX_PARTS:
        raise RejectedMessage(
            f"The SMS text needs {len(chunks)} parts, more than the {MAX_PARTS} a concatenated "
            f"SMS can have ({len(text)} characters, {coding.name}); shorten it.",
            reason=ReasonCode.OVERSIZE, field="text", value=len(text))
    total = len(chunks)
    return [
        Part(payload=_encode(chunk, coding),
             udh=Concat(reference, total, i, reference_bits).udh(),
             data_coding=coding, esm_class=ESM_UDHI, index=i, total=total)
        for i, chunk in enumerate(chunks, start=1)
    ]


# ----------------------------------------------------------------------------- receiving


def parse_udh(udh: bytes) -> Concat | None:
    """The concatenation IE of a UDH (UDHL first), or None when it has none.

    Other IEs (ports, formatting) are skipped. A malformed UDH (an IE running past the
    header) is refused with RejectedMessage(FIELD_INVALID).
    """
    if not udh:
        return None
    end = 1 + udh[0]
    if end > len(udh):
        raise RejectedMessage(f"The UDH says {udh[0]} octets but only {len(udh) - 1} follow.",
                              reason=ReasonCode.FIELD_INVALID, field="short_message", value=udh.hex())
    found = None
    i = 1
    while i + 2 <= end:
        iei, length = udh[i], udh[i + 1]
        data = udh[i + 2:i + 2 + length]
        if len(data) != length:
            raise RejectedMessage(f"UDH element 0x{iei:02x} runs past the header ({udh.hex()}).",
                                  reason=ReasonCode.FIELD_INVALID, field="short_message",
                                  value=udh.hex())
        if iei == IEI_CONCAT_8 and length == 3:
            found = Concat(data[0], data[1], data[2], 8)
        elif iei == IEI_CONCAT_16 and length == 4:
            found = Concat((data[0] << 8) | data[1], data[2], data[3], 16)
        i += 2 + length
    if found is not None and not (found.total >= 1 and 1 <= found.index <= found.total):
        # TS 23.040: a part number of 0 or beyond the total means "ignore the IE".
        return None
    return found


def split_udh(short_message: bytes, esm_class: int) -> tuple[bytes, bytes]:
    """(udh, text octets) of a short_message: the UDH only when esm_class has UDHI (0x40)."""
    if not esm_class & ESM_UDHI or not short_message:
        return b"", short_message
    end = 1 + short_message[0]
    if end > len(short_message):
        raise RejectedMessage(
            f"esm_class sets UDHI but the UDH length {short_message[0]} exceeds the "
            f"{len(short_message)}-octet short_message.",
            reason=ReasonCode.FIELD_INVALID, field="short_message", value=short_message.hex())
    return short_message[:end], short_message[end:]


def _gsm7_decode(octets: bytes) -> str:
    out: list[str] = []
    escape = False
    for b in octets:
        if b > 0x7F:
            out.append("\ufffd")
            escape = False
        elif escape:
            # TS 23.038 6.2.1.1: a code missing from the extension table shows as the
            # character of the default table.
            out.append(_GSM_EXT_CHAR.get(b, GSM_BASIC[b] if b != ESCAPE else " "))
            escape = False
        elif b == ESCAPE:
            escape = True
        else:
            out.append(GSM_BASIC[b])
    if escape:
        out.append(" ")
    return "".join(out)


def _alphabet(data_coding: int) -> str | None:
    """'gsm7' | 'ascii' | 'latin-1' | 'ucs2' for a data_coding, None if not text we read."""
    if data_coding == 0x00:
        return "gsm7"
    if data_coding == 0x01:
        return "ascii"
    if data_coding == 0x03:
        return "latin-1"
    if data_coding == 0x08:
        return "ucs2"
    # Values from 0x10 up follow the GSM data coding scheme (TS 23.038 section 4).
    group = data_coding >> 4
    if 0x1 <= group <= 0x3 and not data_coding & 0x20:   # general group, uncompressed
        return {0: "gsm7", 2: "ucs2"}.get((data_coding >> 2) & 0x03)
    if group in (0xC, 0xD):                               # message waiting, GSM alphabet
        return "gsm7"
    if group == 0xE:                                      # message waiting, UCS2
        return "ucs2"
    if group == 0xF and not data_coding & 0x04:           # data coding/message class, GSM 7
        return "gsm7"
    return None


def decode_text(octets: bytes, data_coding: int) -> str:
    """The text of `octets` (no UDH) in `data_coding`.

    Lenient on purpose, because a customer's reply must not be lost to one bad character:
    an octet outside the alphabet or a broken UTF-16 unit becomes U+FFFD. A data_coding
    that is not text (8-bit binary, compressed, unknown) is refused with
    RejectedMessage(SMPP_DATA_CODING).
    """
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm7":
        return _gsm7_decode(octets)
    if alphabet == "ucs2":
        return octets.decode("utf-16-be", errors="replace")
    if alphabet is not None:
        return octets.decode(alphabet, errors="replace")
    raise RejectedMessage(
        f"data_coding 0x{data_coding:02x} is not a text encoding the hub reads (GSM 7-bit 0x00, "
        "ASCII 0x01, Latin-1 0x03, UCS2 0x08 and their GSM DCS forms); the message is kept as bytes.",
        reason=ReasonCode.SMPP_DATA_CODING, field="data_coding", value=data_coding)


def decode(short_message: bytes, data_coding: int, esm_class: int) -> tuple[Concat | None, str]:
    """(concatenation IE or None, text) of one received short_message (deliver_sm, MO).

    Decodes this part alone; use `Reassembler` to join parts, which decodes the joined
    octets so that a character a handset cut across parts comes out whole.
    """
    udh, octets = split_udh(short_message, esm_class)
    return parse_udh(udh), decode_text(octets, data_coding)


# ----------------------------------------------------------------------------- reassembly


@dataclass(frozen=True)
class Reassembled:
    """A received message: whole (`complete`), or what had arrived when it was given up."""

    source: str
    text: str
    complete: bool
    reference: int | None = None
    total: int = 1
    received: tuple[int, ...] = (1,)  # part numbers that arrived


@dataclass
class _Pending:
    first_at: float
    data_coding: int
    parts: dict[int, bytes]
    codings: dict[int, int]


class Reassembler:
    """Joins MO parts into messages, keyed by (source address, reference bits, reference, total).

    Parts may come in any order and twice (a repeated part is ignored). The buffer is
    bounded: beyond `max_pending` incomplete messages the oldest is given up; a message
    still incomplete `max_age` seconds after its first part is given up by `expire(now)`.
    Given-up messages are returned by `expire` with the parts that came, never dropped
    silently. `now` is any monotonic number of seconds the caller uses consistently.
    """

    def __init__(self, *, max_pending: int = 1000, max_age: float = 600.0) -> None:
        if max_pending < 1 or max_age <= 0:
            raise ValueError("max_pending must be >= 1 and max_age > 0")
        self.max_pending = max_pending
        self.max_age = max_age
        self._pending: OrderedDict[tuple[str, int, int, int], _Pending] = OrderedDict()
        self._given_up: list[Reassembled] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, source: str, short_message: bytes, data_coding: int, esm_class: int,
            now: float) -> Reassembled | None:
        """Feed one deliver_sm; returns the message when it is complete, else None."""
        udh, octets = split_udh(short_message, esm_class)
        concat = parse_udh(udh)
        if concat is None or concat.total == 1:
            return Reassembled(source=source, text=decode_text(octets, data_coding), complete=True,
                               reference=concat.reference if concat else None)
        key = (source, concat.reference_bits, concat.reference, concat.total)
        entry = self._pending.get(key)
        if entry is None:
            decode_text(b"", data_coding)  # refuse an unreadable data_coding before buffering
            while len(self._pending) >= self.max_pending:
                old_key, old = self._pending.popitem(last=False)
                self._given_up.append(self._partial(old_key, old))
            entry = self._pending[key] = _Pending(now, data_coding, {}, {})
        entry.parts.setdefault(concat.index, octets)
        entry.codings.setdefault(concat.index, data_coding)
        if len(entry.parts) < concat.total:
            return None
        del self._pending[key]
        return Reassembled(source=source, text=self._join(entry), complete=True,
                           reference=concat.reference, total=concat.total,
                           received=tuple(range(1, concat.total + 1)))

    def expire(self, now: float) -> list[Reassembled]:
        """Give up messages older than max_age (and those evicted by the bound): partial texts."""
        out, self._given_up = self._given_up, []
        for key in [k for k, e in self._pending.items() if now - e.first_at >= self.max_age]:
            out.append(self._partial(key, self._pending.pop(key)))
        return out

    @staticmethod
    def _join(entry: _Pending) -> str:
        indices = sorted(entry.parts)
        if len({entry.codings[i] for i in indices}) == 1:
            return decode_text(b"".join(entry.parts[i] for i in indices), entry.codings[indices[0]])
        return "".join(decode_text(entry.parts[i], entry.codings[i]) for i in indices)

    def _partial(self, key: tuple[str, int, int, int], entry: _Pending) -> Reassembled:
        source, _bits, reference, total = key
        return Reassembled(source=source, text=self._join(entry), complete=False,
                           reference=reference, total=total, received=tuple(sorted(entry.parts)))
