"""adapters/smpp/link.py without an SMSC: the stream is cut into PDUs, and what the link packs
itself is byte for byte what smpplib would write."""

from __future__ import annotations

import socket

import pytest
import smpplib.client
import smpplib.smpp

from adapters.smpp.config import SmscConfig
from adapters.smpp.link import _FIXED_BODY, Link, LinkError, SubmitSmResp
from protocols.smpp.codes import Command
from protocols.smpp.session import Session

CFG = SmscConfig(name="a", host="127.0.0.1", system_id="cs-hub", source_addr="10086")
CLIENT = smpplib.client.Client("x", 1, allow_unknown_opt_params=True)


def _pdu(command: str, sequence: int, status: int = 0, **params) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=CLIENT, sequence=sequence, **params)
    pdu.sequence, pdu.status = sequence, status
    return pdu.generate()


@pytest.fixture
def link():
    ours, theirs = socket.socketpair()
    lk = Link(CFG)
    session = Session(0.0)
    session.send(Command.bind_transceiver, 1, 0.0)
    session.receive(Command.bind_transceiver_resp, 1, 0.0)
    lk.sock, lk.session = ours, session
    yield lk, theirs
    ours.close()
    theirs.close()


def test_fixed_responses_are_what_smpplib_writes(link):
    lk, theirs = link
    for i, command in enumerate(_FIXED_BODY, start=7):
        if command in (Command.unbind_resp, Command.data_sm_resp):
            continue
        lk.queue_response(command.value, i, 0.0, status=0x45)
        lk.flush()
        assert theirs.recv(100) == _pdu(command.value, i, 0x45)


def test_the_stream_is_cut_into_pdus_whatever_the_recv_boundaries(link):
    lk, theirs = link
    resp_ok = _pdu("submit_sm_resp", 5, message_id="0000018C2A3B4C5D")
    resp_err = _pdu("submit_sm_resp", 6, 0x58)
    deliver = _pdu("deliver_sm", 9, source_addr="13902001234", destination_addr="10086", esm_class=4,
                   short_message=b"id:1 stat:DELIVRD err:000", receipted_message_id="0000018C2A3B4C5D")
    stream = resp_ok + resp_err + deliver
    theirs.sendall(stream[:40])          # the first PDU and part of the second
    first = lk.read()
    assert first == [SubmitSmResp(5, 0, b"0000018C2A3B4C5D")]
    theirs.sendall(stream[40:])
    rest = lk.read()
    assert rest[0] == SubmitSmResp(6, 0x58, b"")
    parsed = lk.parse(rest[1])
    assert (parsed.command, parsed.sequence, parsed.receipted_message_id) == ("deliver_sm", 9, b"0000018C2A3B4C5D")
    smpplib_view = smpplib.smpp.parse_pdu(resp_ok, client=CLIENT, allow_unknown_opt_params=True)
    assert (smpplib_view.sequence, smpplib_view.status, smpplib_view.message_id) == (5, 0, b"0000018C2A3B4C5D")


def test_a_broken_stream_or_a_closed_connection_is_a_link_error(link):
    lk, theirs = link
    theirs.sendall(b"\x00\x00\x00\x05garbage")
    with pytest.raises(LinkError, match="not a valid SMPP PDU"):
        lk.read()
    theirs.close()
    with pytest.raises(LinkError):
        lk.read()


def test_deliver_sm_parsed_into_a_blank_copy_equals_smpplibs_own_parse(link):
    """Link.parse fills a copy of one blank DeliverSM; nothing of a previous PDU may remain."""
    lk, _theirs = link
    first = _pdu("deliver_sm", 3, source_addr="13902001234", destination_addr="10086", esm_class=4,
                 short_message=b"id:1 stat:DELIVRD", receipted_message_id="00A1", message_state=2)
    second = _pdu("deliver_sm", 4, source_addr="13902005678", destination_addr="1008699", esm_class=0x40,
                  data_coding=8, short_message=bytes((5, 0, 3, 7, 2, 1)) + "你好".encode("utf-16-be"))
    for raw in (first, second, first):
        ours = lk.parse(raw)
        theirs = smpplib.smpp.parse_pdu(raw, client=CLIENT, allow_unknown_opt_params=True)
        def fields(p):
            return {k: v for k, v in vars(p).items() if k not in ("_client", "client") and v is not None}
        assert fields(ours) == fields(theirs)
    assert getattr(lk.parse(second), "receipted_message_id", None) is None


def test_submit_sm_bytes_are_smpplibs_and_the_reused_pdu_carries_nothing_over(link):
    lk, theirs = link
    sent = [("13902001234", "你好".encode("utf-16-be"), 0, 8),
            ("13902005678", bytes((6, 8, 4, 1, 2, 2, 1)) + b"\x00A" * 66, 0x40, 8),
            ("8613902009999", b"hello", 0, 0)]
    for destination, short_message, esm_class, data_coding in sent:
        pdu = lk.submit_sm(destination, short_message, esm_class, data_coding)
        expected = smpplib.smpp.make_pdu(
            "submit_sm", client=CLIENT, sequence=pdu.sequence, service_type="", source_addr_ton=0,
            source_addr_npi=0, source_addr="10086", dest_addr_ton=1, dest_addr_npi=1, destination_addr=destination,
            short_message=short_message, esm_class=esm_class, registered_delivery=1, data_coding=data_coding)
        expected.sequence = pdu.sequence
        lk.queue(pdu, 0.0)
        lk.flush()
        assert theirs.recv(1000) == expected.generate()
