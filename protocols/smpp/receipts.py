"""Delivery receipts: parsing, message-id normalisation and correlation to the business message.

Owns: reading a receipt out of a deliver_sm (the TLVs receipted_message_id, message_state
and network_error_code of SMPP 3.4 sections 5.3.2.12, 5.3.2.35 and 5.3.2.31, or the text
of Appendix B), the canonical forms of a message id, and `ReceiptCorrelator`, the
in-memory index that turns receipts into one status per business message.
Must not: persist anything (the adapter stores what the correlator holds and feeds it back
after a restart), read the clock (`now` is an argument) or decide retries.

Why id normalisation: the top complaint against existing SMS gateways is receipts lost on
id mismatches. SMSCs give the message_id in submit_sm_resp in hex and report it in the
receipt in decimal (or the other way round), with varying case and leading zeros, and an
SMSC that sends both the TLV and the text may write them differently. A receipt id matches
a submit id at one of three levels (MATCH_LEVELS): the same canonical form; the receipt's
decimal value written in hex equals the submit's form; the receipt's hex value written in
decimal does. Short ids can match at several levels ('10' is ten, or sixteen in hex): the
correlator then takes the level this SMSC's receipts have matched at most often, the exact
one on a tie. When two different submits match at the chosen level the receipt is kept
(Pending, `ambiguous`), never given to the wrong message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

from protocols.errors import ReasonCode, RejectedMessage

# ----------------------------------------------------------------------------- receipts


class MessageState(IntEnum):
    """message_state, SMPP 3.4 section 5.3.2.35."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


#: Appendix B "stat" words (7 characters in the spec) and the spellings met in the wild.
STAT_WORDS: dict[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED, "DELIVERED": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE, "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVERED": MessageState.UNDELIVERABLE, "FAILED": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED, "ACCEPTED": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED, "REJECTED": MessageState.REJECTED,
}

#: esm_class message types (bits 5-2, SMPP 3.4 section 5.2.12) that carry a receipt.
ESM_SMSC_RECEIPT = 0x04
ESM_INTERMEDIATE_NOTIFICATION = 0x20
_ESM_TYPE_MASK = 0x3C


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt as the SMSC sent it; ids raw, `state` normalised."""

    message_id: str                       # receipted_message_id TLV, else the text's id
    state: MessageState
    stat: str = ""                        # the raw stat word or TLV value
    error: str | None = None              # text err:, else network_error_code "type/code"
    other_ids: tuple[str, ...] = ()       # the text's id when it differs from the TLV's
    submitted: int | None = None          # sub:
    delivered: int | None = None          # dlvrd:
    submit_date: str | None = None        # YYMMDDhhmm[ss], the SMSC's local time
    done_date: str | None = None
    text: str | None = None               # the first characters of the message, if sent

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.message_id, *self.other_ids)


def is_receipt_esm_class(esm_class: int) -> bool:
    """True when esm_class marks an SMSC delivery receipt or an intermediate notification."""
    return (esm_class & _ESM_TYPE_MASK) in (ESM_SMSC_RECEIPT, ESM_INTERMEDIATE_NOTIFICATION)


_KEY = re.compile(r"(?i)(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text)\s*:")


#: Appendix B's layout exactly (what most SMSCs send): one anchored match instead of the general scan.
_STANDARD = re.compile(
    r"(?i)id:(?P<id>\S*) sub:(?P<sub>\S*) dlvrd:(?P<dlvrd>\S*) submit date:(?P<submit_date>\S*) "
    r"done date:(?P<done_date>\S*) stat:(?P<stat>\S*) err:(?P<err>\S*)(?: text:(?P<text>.*))?\s*\Z", re.S)


def parse_receipt_text(text: str) -> dict[str, str]:
    """The Appendix B fields of a receipt text, keys lower-case with '_' ('submit_date').

    `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E Text: ...`; keys in any case and order, any missing; everything after `text:` is
    the text, even if it looks like more fields.
    """
    m = _STANDARD.match(text)
    if m is not None:  # the common case, ~5x cheaper than the scan
        return {k: v.strip() for k, v in m.groupdict().items() if v is not None}
    return _scan_receipt_text(text)


def _scan_receipt_text(text: str) -> dict[str, str]:
    """The general parse: keys in any case and order, any missing."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower().replace(" ", "_")
        if key == "text":
            fields.setdefault("text", text[m.end():].strip())
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields.setdefault(key, text[m.end():end].strip())
    return fields


def parse_receipt_date(value: str | None) -> datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss as a naive datetime (the SMSC's local time), None if unreadable."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        return datetime.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M")
    except ValueError:
        return None


def _str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _state_from_tlv(value: object) -> MessageState | None:
    if isinstance(value, bytes | bytearray) and len(value) == 1:
        value = value[0]
    try:
        return MessageState(int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _state_from_stat(stat: str | None) -> MessageState | None:
    if not stat:
        return None
    word = stat.strip().upper()
    if word in STAT_WORDS:
        return STAT_WORDS[word]
    if word.isdigit():
        try:
            return MessageState(int(word))
        except ValueError:
            return None
    return None


def _network_error(value: object) -> str | None:
    # network_error_code: network type (1 octet) + error code (2 octets), 5.3.2.31.
    if isinstance(value, bytes | bytearray) and len(value) == 3:
        return f"{value[0]}/{int.from_bytes(value[1:], 'big')}"
    return _str(value)


def receipt_from_deliver_sm(esm_class: int, short_message: bytes | str,
                            tlvs: Mapping[str, object] | None = None) -> Receipt | None:
    """The receipt a deliver_sm carries, or None when it is not a receipt (an MO message).

    A deliver_sm is a receipt when esm_class says so (0x04 or 0x20), when it has a
    receipted_message_id TLV, or when its text reads like Appendix B (has `id:` and
    `stat:`). The TLVs win over the text; the text fills what they lack, and a text id
    that differs from the TLV id is kept in `other_ids` (both are tried when matching).
    Raises RejectedMessage(FIELD_INVALID) for a receipt without any message id.
    """
    tlvs = tlvs or {}
    raw = short_message.decode("latin-1") if isinstance(short_message, bytes | bytearray) else short_message
    fields = parse_receipt_text(raw or "")
    tlv_id = _str(tlvs.get("receipted_message_id"))
    text_id = _str(fields.get("id"))
    looks_like_text = text_id is not None and "stat" in fields
    if not (is_receipt_esm_class(esm_class) or tlv_id or looks_like_text):
        return None
    message_id = tlv_id or text_id
    if message_id is None:
        raise RejectedMessage(
            f"A delivery receipt (esm_class 0x{esm_class:02x}) has neither a receipted_message_id "
            f"nor an id: field, so it cannot be matched; text was {raw[:80]!r}.",
            reason=ReasonCode.FIELD_INVALID, field="receipted_message_id", value=raw[:80])
    other = (text_id,) if tlv_id and text_id and text_id != tlv_id else ()
    tlv_state = tlvs.get("message_state")
    state = _state_from_tlv(tlv_state) if tlv_state is not None else None
    stat = fields.get("stat")
    if state is None:
        state = _state_from_stat(stat) or MessageState.UNKNOWN
    error = _str(fields.get("err"))
    if error is None and tlvs.get("network_error_code") is not None:
        error = _network_error(tlvs["network_error_code"])
    return Receipt(
        message_id=message_id, state=state,
        stat=stat if stat is not None else (str(tlv_state) if tlv_state is not None else ""),
        error=error, other_ids=other,
        submitted=_int(fields.get("sub")), delivered=_int(fields.get("dlvrd")),
        submit_date=fields.get("submit_date") or None, done_date=fields.get("done_date") or None,
        text=fields.get("text"),
    )


# ----------------------------------------------------------------------------- id normalisation

_HEX = re.compile(r"[0-9a-f]+")
_DEC = re.compile(r"[0-9]+")


def normalise_message_id(raw: str | bytes) -> str:
    """The canonical form of a message id: trimmed (spaces, NULs), lower-case, without
    leading zeros ('0' if it was all zeros). Raises ValueError for an empty id."""
    text = _str(raw)
    if text is None:
        raise ValueError(f"message id {raw!r} is empty")
    text = text.lower()
    stripped = text.lstrip("0")
    return stripped if stripped else "0"


def message_id_forms(raw: str | bytes) -> tuple[str, ...]:
    """Every canonical form `raw` may stand for, the exact one first.

    The canonical form; if it is all hex digits, its value written in decimal; if it is
    all decimal digits, its value written in hex. '00A1B2' -> ('a1b2', '41394');
    '41394' -> ('41394', '267156', 'a1b2') (decimal digits are hex digits too).
    """
    canonical = normalise_message_id(raw)
    forms = [canonical]
    if _HEX.fullmatch(canonical):
        forms.append(str(int(canonical, 16)))
    if _DEC.fullmatch(canonical):
        forms.append(format(int(canonical, 10), "x"))
    return tuple(dict.fromkeys(forms))


# ----------------------------------------------------------------------------- correlation


class SmsStatus(StrEnum):
    """What the node that asked for the SMS is told (sms.status)."""

    delivered = "delivered"
    undeliverable = "undeliverable"
    expired = "expired"


#: How a part's final state counts for the business message. ENROUTE, ACCEPTED and UNKNOWN
#: are not final for us: ACCEPTED means read by customer service on the subscriber's behalf
#: (5.3.2.35), UNKNOWN means the SMSC does not know yet; a later receipt settles them.
PART_OUTCOME: dict[MessageState, SmsStatus] = {
    MessageState.DELIVERED: SmsStatus.delivered,
    MessageState.EXPIRED: SmsStatus.expired,
    MessageState.UNDELIVERABLE: SmsStatus.undeliverable,
    MessageState.REJECTED: SmsStatus.undeliverable,
    MessageState.DELETED: SmsStatus.undeliverable,
}


@dataclass(frozen=True)
class StatusEvent:
    """The business message reached a final status: send it as sms.status."""

    business_ref: str
    status: SmsStatus
    state: MessageState            # the SMSC's state of the part that decided it
    error: str | None              # the SMSC's error code for that part
    message_ids: tuple[str, ...]   # the submit ids of all parts, in part order
    parts_delivered: int
    total_parts: int


@dataclass(frozen=True)
class Matched:
    """A receipt matched a submitted part; `event` when the business status became final."""

    receipt: Receipt
    business_ref: str
    part_index: int
    event: StatusEvent | None


@dataclass(frozen=True)
class Pending:
    """A receipt that matched nothing (yet): kept, and matched when the submit_sm_resp comes.

    `ambiguous` names the business refs when two submits matched equally well.
    """

    receipt: Receipt
    received_at: float
    ambiguous: tuple[str, ...] = ()


@dataclass
class _PartRecord:
    business_ref: str
    part_index: int
    seq: int
    message_id: str


@dataclass
class _Message:
    business_ref: str
    total_parts: int
    message_ids: dict[int, str] = field(default_factory=dict)
    part_states: dict[int, MessageState] = field(default_factory=dict)
    final: StatusEvent | None = None
    keys: set[str] = field(default_factory=set)     # canonical ids of its parts


#: How a receipt id can match a submit id, most natural first: the same canonical form;
#: the receipt in decimal and the resp in hex; the receipt in hex and the resp in decimal.
MATCH_LEVELS = ("exact", "receipt_decimal", "receipt_hex")


def _submit_keys(receipt_id: str) -> dict[str, str]:
    """level -> the canonical submit id that would match `receipt_id` at that level."""
    canonical = normalise_message_id(receipt_id)
    keys = {"exact": canonical}
    if _DEC.fullmatch(canonical):   # the receipt wrote in decimal what the resp wrote in hex
        keys["receipt_decimal"] = format(int(canonical, 10), "x")
    if _HEX.fullmatch(canonical):   # the receipt wrote in hex what the resp wrote in decimal
        keys["receipt_hex"] = str(int(canonical, 16))
    return keys


def _receipt_keys(receipt: Receipt) -> set[str]:
    keys: set[str] = set()
    for raw in receipt.ids:
        try:
            keys.update(_submit_keys(raw).values())
        except ValueError:
            continue
    return keys


class ReceiptCorrelator:
    """Receipts to business messages, in either order; pure and in memory.

    Feed `on_submit_resp` for every accepted part (ESME_ROK) and `on_receipt` for every
    receipt. A receipt whose submit is not known yet is kept as Pending and matched by the
    `on_submit_resp` that brings its id. Pending receipts older than a grace period move
    to the unknown list by `settle(now, grace)`; they are still matched if their submit
    turns up, and are listed by `unknown()` — never dropped.

    Multipart: the business message is delivered when every part is delivered; it is
    undeliverable or expired as soon as one part fails, with that part's error. One final
    status per business message; later receipts match but produce no event.

    Every operation is a few dictionary look-ups: waiting receipts are indexed by the
    submit ids that could match them, so a resp never scans the waiting lists.
    """

    def __init__(self) -> None:
        self._messages: dict[str, _Message] = {}
        self._by_id: dict[str, list[_PartRecord]] = {}   # canonical submit id -> parts
        self._tokens = 0                                 # arrival order of waiting receipts
        self._pending: dict[int, Pending] = {}
        self._unknown: dict[int, Pending] = {}
        self._waiting_by_key: dict[str, set[int]] = {}   # submit id that would match -> tokens
        # How this SMSC's receipts have matched so far, by level (see _match).
        self.matches_by_level: dict[str, int] = dict.fromkeys(MATCH_LEVELS, 0)

    # -- inputs

    def on_submit_resp(self, seq: int, message_id: str, business_ref: str, part_index: int,
                       total_parts: int) -> list[Matched]:
        """Record an accepted part; returns the waiting receipts it matched (in arrival order)."""
        if not 1 <= part_index <= total_parts:
            raise ValueError(f"part {part_index} of {total_parts} is out of range for {business_ref!r}")
        msg = self._messages.get(business_ref)
        if msg is None:
            msg = self._messages[business_ref] = _Message(business_ref, total_parts)
        elif msg.total_parts != total_parts:
            raise ValueError(f"{business_ref!r} was recorded with {msg.total_parts} parts, "
                             f"now {total_parts}: a business message keeps one split")
        key = normalise_message_id(message_id)
        msg.message_ids[part_index] = message_id
        msg.keys.add(key)
        self._by_id.setdefault(key, []).append(_PartRecord(business_ref, part_index, seq, message_id))
        out: list[Matched] = []
        for token in sorted(self._waiting_by_key.get(key, ())):
            waiting = self._pending.get(token) or self._unknown[token]
            matched = self._match(waiting.receipt)
            if isinstance(matched, Matched):
                self._unwait(token, waiting)
                out.append(matched)
        return out

    def on_receipt(self, receipt: Receipt, now: float) -> Matched | Pending:
        """Match a receipt; when nothing matches it is kept as Pending (it may be early)."""
        result = self._match(receipt)
        if isinstance(result, Matched):
            return result
        waiting = Pending(receipt, now, result)
        self._tokens += 1
        self._pending[self._tokens] = waiting
        for key in _receipt_keys(receipt):
            self._waiting_by_key.setdefault(key, set()).add(self._tokens)
        return waiting

    def settle(self, now: float, grace: float) -> list[Pending]:
        """Move receipts pending for `grace` seconds or more to the unknown list; returns them."""
        moved = [(t, p) for t, p in self._pending.items() if now - p.received_at >= grace]
        for token, waiting in moved:
            del self._pending[token]
            self._unknown[token] = waiting
        return [p for _, p in moved]

    # -- views

    def pending(self) -> list[Pending]:
        return list(self._pending.values())

    def unknown(self) -> list[Pending]:
        """Receipts that matched no submit within the grace period (kept for inspection)."""
        return list(self._unknown.values())

    def status_of(self, business_ref: str) -> StatusEvent | None:
        msg = self._messages.get(business_ref)
        return msg.final if msg else None

    def forget(self, business_ref: str) -> None:
        """Drop a business message the adapter has finished with (its late receipts will be unknown)."""
        msg = self._messages.pop(business_ref, None)
        if msg is None:
            return
        for key in msg.keys:
            kept = [r for r in self._by_id.get(key, []) if r.business_ref != business_ref]
            if kept:
                self._by_id[key] = kept
            else:
                self._by_id.pop(key, None)

    def _unwait(self, token: int, waiting: Pending) -> None:
        self._pending.pop(token, None)
        self._unknown.pop(token, None)
        for key in _receipt_keys(waiting.receipt):
            tokens = self._waiting_by_key.get(key)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._waiting_by_key[key]

    # -- matching

    def _candidates(self, receipt: Receipt) -> dict[str, dict[tuple[str, int], _PartRecord]]:
        found: dict[str, dict[tuple[str, int], _PartRecord]] = {level: {} for level in MATCH_LEVELS}
        for raw in receipt.ids:
            try:
                keys = _submit_keys(raw)
            except ValueError:
                continue
            for level, key in keys.items():
                for r in self._by_id.get(key, []):
                    found[level][(r.business_ref, r.part_index)] = r
        return {level: parts for level, parts in found.items() if parts}

    def _match(self, receipt: Receipt) -> Matched | tuple[str, ...]:
        candidates = self._candidates(receipt)
        if not candidates:
            return ()
        # Several levels can match when ids are short ('10' is ten, or sixteen in hex):
        # take the level this SMSC has used most, exact first on a tie.
        level = min(candidates, key=lambda lv: (-self.matches_by_level[lv], MATCH_LEVELS.index(lv)))
        parts = candidates[level]
        if len(parts) > 1:
            return tuple(sorted({ref for ref, _ in parts}))
        (record,) = parts.values()
        self.matches_by_level[level] += 1
        return self._apply(receipt, record)

    def _apply(self, receipt: Receipt, record: _PartRecord) -> Matched:
        msg = self._messages[record.business_ref]
        msg.part_states[record.part_index] = receipt.state
        event = None
        if msg.final is None:
            outcome = PART_OUTCOME.get(receipt.state)
            delivered = sum(1 for s in msg.part_states.values() if s is MessageState.DELIVERED)
            if outcome in (SmsStatus.undeliverable, SmsStatus.expired) or (
                    outcome is SmsStatus.delivered and delivered == msg.total_parts):
                msg.final = event = StatusEvent(
                    business_ref=msg.business_ref, status=outcome, state=receipt.state,
                    error=receipt.error,
                    message_ids=tuple(msg.message_ids[i] for i in sorted(msg.message_ids)),
                    parts_delivered=delivered, total_parts=msg.total_parts)
        return Matched(receipt, record.business_ref, record.part_index, event)
