"""protocols/soap and config/soap.yaml without I/O: envelopes, faults, tokens, payloads, config rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from adapters.soap import config as soap_config
from protocols.errors import ReasonCode, RejectedMessage, TransientFailure
from protocols.soap import envelope as soap
from protocols.soap import messages

REPO = Path(__file__).resolve().parents[3]


def test_fault_round_trip_names_the_reason_code_and_blame():
    exc = RejectedMessage("bad", reason=ReasonCode.XSD_INVALID, field="Title")
    root = etree.fromstring(soap.build_fault(exc, messages.refusal(exc, "m1")))
    info = soap.parse_fault(root, messages.INTAKE_NS)
    assert (info.code, info.reason_code, info.retryable) == ("Client", "XSD_INVALID", False)
    assert info.text == "XSD_INVALID: bad"
    busy = TransientFailure("later", reason=ReasonCode.PARTNER_UNAVAILABLE)
    assert soap.parse_fault(etree.fromstring(soap.build_fault(busy)), None).code == "Server"


def test_submit_parsing_and_username_token():
    body = etree.fromstring(soap.build_envelope(messages.submit_response("m9")))
    assert body.findtext(f".//{{{messages.INTAKE_NS}}}Status") == "accepted"
    req = (f'<soap:Envelope xmlns:soap="{soap.SOAP_ENV}"><soap:Header><s:Security xmlns:s="{soap.WSSE}">'
           "<s:UsernameToken><s:Username>u</s:Username><s:Password>p</s:Password></s:UsernameToken></s:Security>"
           f'</soap:Header><soap:Body><Submit xmlns="{messages.INTAKE_NS}"><MessageId>m</MessageId>'
           "<Type>notice.text</Type><Payload>&lt;a/&gt;</Payload></Submit></soap:Body></soap:Envelope>").encode()
    env = soap.parse_envelope(req, "text/xml; charset=UTF-8", max_bytes=10_000)
    assert soap.username_token(env.header) == ("u", "p")
    sub = messages.parse_submit(env.body)
    assert (sub.message_id, sub.type, sub.correlation_id, sub.payload) == ("m", "notice.text", None, "<a/>")
    with pytest.raises(RejectedMessage) as e:
        soap.parse_envelope(req, None, max_bytes=100)
    assert e.value.reason == ReasonCode.OVERSIZE


def test_payload_text_strips_the_declaration_and_keeps_the_characters():
    body = '<?xml version="1.0" encoding="GB18030"?><a>山东</a>'.encode("gb18030")
    assert messages.payload_text(body, "gb18030") == "<a>山东</a>"
    assert messages.payload_tree('<?xml version="1.0" encoding="GBK"?><a>山东</a>', max_bytes=100).text == "山东"
    with pytest.raises(RejectedMessage) as e:
        messages.payload_tree('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', max_bytes=1000)
    assert e.value.reason == ReasonCode.XML_FORBIDDEN


def test_wsdl_address_is_replaced():
    text = messages.wsdl_text("crm", "https://crm.example/x?a=1&b=2")
    assert 'location="https://crm.example/x?a=1&amp;b=2"' in text
    etree.fromstring(text.encode())


@pytest.mark.parametrize("snippet,error", [
    ("nodes: {'44': {}}", "node 44 has neither crm nor intake"),
    ("nodes: {'44': {crm: {address: 'ftp://x'}}}", "should match pattern"),
    ("nodes: {'44': {intake: {username: a}}, '45': {intake: {username: a}}}", "share intake user name 'a'"),
    ("delivery: {operation_timeout_s: 0}", "greater than 0"),
    ("colour: red", "colour"),
])
def test_config_rules(snippet, error):
    with pytest.raises(Exception) as e:
        soap_config.loads(f"version: 1\n{snippet}\n")
    assert error in str(e.value)


def test_config_against_nodes_and_schema(directory):
    with pytest.raises(Exception) as e:
        soap_config.loads("nodes: {'44': {crm: {address: 'http://x'}}}", directory=directory)
    assert "transport amqp" in str(e.value) and "transport: soap" in str(e.value)
    soap_config.load(REPO / "config" / "soap.yaml", directory)
    committed = json.loads((REPO / "docs" / "schemas" / "soap.schema.json").read_text(encoding="utf-8"))
    assert committed == soap_config.schema(), "stale; run `hub soap schema -o docs/schemas/soap.schema.json`"
