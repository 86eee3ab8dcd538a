"""The pure parts together, as the adapter will drive them: a scripted conversation, no I/O.

A long Chinese reminder is split, submitted through the session and the window, the SMSC
answers out of order with hex ids and sends decimal receipts (one before its resp), the
connection drops with one part unanswered, and that part alone is re-sent after the
reconnect with the same business id and UDH.
"""

from __future__ import annotations

from mappings.sms.templates import render
from protocols.smpp.codes import Command
from protocols.smpp.receipts import Matched, Pending, ReceiptCorrelator, SmsStatus, receipt_from_deliver_sm
from protocols.smpp.session import Bound, Session, State
from protocols.smpp.text import Reassembler, split
from protocols.smpp.window import Outcome, Sequencer, TokenBucket, Window


def receipt_for(message_id_hex: str, stat: str = "DELIVRD"):
    decimal = int(message_id_hex, 16)
    return receipt_from_deliver_sm(0x04, f"id:{decimal:010d} sub:001 dlvrd:001 stat:{stat} err:000".encode())


def connect(now: float, seq: Sequencer) -> Session:
    session = Session(now, system_id="cs-hub")
    n = seq.next_sequence()
    session.send(Command.bind_transceiver, n, now)
    assert session.receive(Command.bind_transceiver_resp, n, now) == [Bound()]
    return session


def test_long_message_with_a_connection_drop_is_delivered_once_per_part():
    text = render("complaint_reply", sign="中国移动", complaint_date="6月10日", ticket="20240611-000123",
                  result="小区光缆被施工挖断，已于当晚修复，宽带已恢复正常，本月月租按故障天数减免",
                  hotline="10086")
    parts = split(text, reference=0x0102)
    assert len(parts) == 2
    now, seq = 0.0, Sequencer()
    bucket, window, correlator = TokenBucket(tps=100, burst=2), Window(size=10), ReceiptCorrelator()
    session = connect(now, seq)

    sent: dict[int, object] = {}
    for part in parts:
        assert bucket.take(now) == 0.0 and window.can_send()
        n = seq.next_sequence()
        session.send(Command.submit_sm, n, now)
        window.on_sent(n, ("sms-1", part), now)
        sent[part.index] = n

    # The SMSC answers part 2 first (hex id) and sends part 2's receipt in decimal.
    session.receive(Command.submit_sm_resp, sent[2], now + 0.01)
    ev = window.on_resp(sent[2], 0)
    assert ev.outcome is Outcome.SUBMITTED
    assert correlator.on_submit_resp(sent[2], "0000A2F1", "sms-1", 2, 2) == []
    session.receive(Command.deliver_sm, 900, now + 0.02)
    assert correlator.on_receipt(receipt_for("A2F1"), now + 0.02).event is None   # 1 of 2

    # The connection drops before part 1's resp: its fate is unknown.
    session.connection_lost()
    assert session.state is State.CLOSED
    lost = window.on_connection_lost()
    assert [item for _, item in lost] == [("sms-1", parts[0])]

    # Reconnect and re-send exactly that part, same business id, same UDH.
    now = 5.0
    session = connect(now, seq)
    for _, (business_ref, part) in lost:
        n = seq.next_sequence()
        session.send(Command.submit_sm, n, now)
        window.on_sent(n, (business_ref, part), now)
        assert part.udh == bytes.fromhex("06080401020201")
        # its receipt overtakes its resp
        early = correlator.on_receipt(receipt_for("A2F5"), now + 0.01)
        assert isinstance(early, Pending)
        session.receive(Command.submit_sm_resp, n, now + 0.02)
        assert window.on_resp(n, 0).outcome is Outcome.SUBMITTED
        (matched,) = correlator.on_submit_resp(n, "a2f5", business_ref, part.index, part.total)
        assert isinstance(matched, Matched)
        assert matched.event.status is SmsStatus.delivered
        assert matched.event.message_ids == ("a2f5", "0000A2F1")

    assert correlator.pending() == [] and correlator.unknown() == []

    # What the handset would show: the two parts reassembled.
    phone = Reassembler()
    results = [phone.add("106588", p.short_message, p.data_coding, p.esm_class, now) for p in reversed(parts)]
    assert results[-1].text == text
