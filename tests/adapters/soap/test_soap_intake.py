"""A legacy node submits through the hub's SOAP endpoint with a plain HTTP client: a valid
submission reaches its destination through the running hub; malformed and hostile XML,
wrong credentials, unknown types and missing fields are answered with SOAP 1.1 faults
naming the hub's reason code, and none of them is published."""

from __future__ import annotations

import base64

import pytest
import requests
from lxml import etree
from running_hub import HubThread, Node, notice

from adapters.soap.config import SoapFile
from adapters.soap.intake import Intake, IntakeServer
from hub.configuration import load_config
from protocols.soap.envelope import SOAP_ENV, parse_fault
from protocols.soap.messages import INTAKE_NS

PASSWORD = "intake-secret-13"


def envelope(payload: str, *, mid: str = "soap-in-1", type_: str = "notice.text", header: str = "",
             extra: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:i="{INTAKE_NS}">{header}<soap:Body><i:Submit>'
            + (f"<i:MessageId>{mid}</i:MessageId>" if mid else "")
            + f"<i:Type>{type_}</i:Type><i:Payload>{payload}</i:Payload>{extra}</i:Submit></soap:Body>"
            "</soap:Envelope>")


def escaped(xml: bytes | str) -> str:
    text = xml.decode() if isinstance(xml, bytes) else xml
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def token(user: str, password: str) -> str:
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    return (f'<soap:Header><wsse:Security xmlns:wsse="{wsse}"><wsse:UsernameToken><wsse:Username>{user}'
            f"</wsse:Username><wsse:Password>{password}</wsse:Password></wsse:UsernameToken></wsse:Security>"
            "</soap:Header>")


@pytest.fixture
def intake(settings, soap_topology, soap_directory):
    _topology, passwords = soap_topology
    cfg = SoapFile.model_validate({"intake": {"port": 0, "max_request_bytes": 8192},
                                   "nodes": {"13": {"intake": {"username": "crm-13", "password": PASSWORD}}}})
    catalogue = load_config(settings.config_dir, settings.routes_dir).catalogue
    server = IntakeServer(Intake(cfg, settings, soap_directory, catalogue, passwords)).start()
    yield f"http://127.0.0.1:{server.port}{cfg.intake.path}", passwords
    server.stop()


def post(url: str, body: str | bytes, *, auth=("crm-13", PASSWORD), content_type="text/xml; charset=utf-8"):
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.post(url, data=data, auth=auth, timeout=10,
                         headers={"Content-Type": content_type, "SOAPAction": "Submit"})


def fault_of(resp) -> tuple[str, str, str]:
    root = etree.fromstring(resp.content)
    info = parse_fault(root, INTAKE_NS)
    assert info is not None, resp.text
    zh = root.findtext(f".//{{{INTAKE_NS}}}Reason[@lang='zh']")
    assert zh, "the refusal speaks Chinese first"
    return info.code, info.reason_code, info.text


def test_a_legacy_node_submits_and_hostile_xml_is_answered_with_faults(settings, soap_topology, intake):
    url, passwords = intake
    hub = HubThread(settings).start()
    hq = Node(settings, "00", passwords[settings.broker_user("node-00")])
    try:
        wsdl = requests.get(url + "?wsdl", timeout=10)
        assert wsdl.status_code == 200 and url in wsdl.text and "Submit" in wsdl.text

        ok = post(url, envelope(escaped(notice("13", "00", text="遗留系统提交"))))
        assert ok.status_code == 200, ok.text
        resp = etree.fromstring(ok.content)
        assert resp.findtext(f".//{{{INTAKE_NS}}}Status") == "accepted"
        _m, props, body = hq.get(timeout=15)
        assert props.message_id == "soap-in-1" and props.headers["x-hub-source"] == "13"
        assert "遗留系统提交" in body.decode("utf-8")

        by_token = post(url, envelope(escaped(notice("13", "00")), mid="soap-in-2", header=token("crm-13", PASSWORD)),
                        auth=None)
        assert by_token.status_code == 200, by_token.text
        assert hq.get(timeout=15)[1].message_id == "soap-in-2"

        bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>&lol2;</soap:Body></soap:Envelope>')
        xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
               + envelope("&xxe;").split("?>", 1)[1])
        cases = [
            ("no credentials", post(url, envelope("x"), auth=None), 401, "SENDER_UNAUTHENTICATED"),
            ("wrong password", post(url, envelope("x"), auth=("crm-13", "guess")), 401, "SENDER_UNAUTHENTICATED"),
            ("unknown user", post(url, envelope("x"), auth=("crm-99", PASSWORD)), 401, "SENDER_UNAUTHENTICATED"),
            ("entity bomb", post(url, bomb), 500, "XML_FORBIDDEN"),
            ("XXE", post(url, xxe), 500, "XML_FORBIDDEN"),
            ("malformed", post(url, envelope("x").replace("</soap:Body>", "")), 500, "XML_MALFORMED"),
            ("wrong encoding", post(url, envelope("中文").encode("gbk")), 500, "ENCODING_INVALID"),
            ("encoding mismatch", post(url, envelope("x").replace("UTF-8", "GBK"),
                                       content_type="text/xml; charset=utf-8"), 500, "ENCODING_MISMATCH"),
            ("oversize", post(url, envelope("x" * 9000)), 500, "OVERSIZE"),
            ("SOAP 1.2", post(url, envelope("x").replace(SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope")),
             500, "UNSUPPORTED_VERSION"),
            ("unknown type", post(url, envelope(escaped(notice("13", "00")), type_="no.such")), 500, "UNKNOWN_TYPE"),
            ("hub-only type", post(url, envelope(escaped(notice("13", "00")), type_="hub.nack")), 500,
             "UNKNOWN_TYPE"),
            ("missing MessageId", post(url, envelope(escaped(notice("13", "00")), mid="")), 500, "MISSING_PROPERTY"),
            ("DTD inside the payload", post(url, envelope(escaped('<!DOCTYPE n [<!ENTITY e "x">]>'
                                                                  + notice("13", "00").decode()))),
             500, "XML_FORBIDDEN"),
            ("payload not XML", post(url, envelope("not xml")), 500, "XML_MALFORMED"),
            ("payload against the schema", post(url, envelope(escaped('<Notice xmlns="urn:cs-hub:hub:1"/>'))),
             500, "XSD_INVALID"),
            ("spoofed sender", post(url, envelope(escaped(notice("44", "00")))), 500, "SPOOFED_SENDER"),
        ]
        for name, resp, status, reason in cases:
            assert resp.status_code == status, f"{name}: {resp.status_code} {resp.text[:300]}"
            code, got, text = fault_of(resp)
            assert (got, code) == (reason, "Client"), f"{name}: {got} {code} {text}"
            assert "passwd" not in resp.text and "root:" not in resp.text
        assert resp.headers["content-type"].startswith("text/xml")
        assert basic_header_is_refused(url)
        # The spoofed one passed no check that publishes; had any been published, the hub would have
        # delivered or refused it to node.00 / node.13 by the time a fresh notice arrives after it.
        assert post(url, envelope(escaped(notice("13", "00")), mid="soap-in-last")).status_code == 200
        assert [p.message_id for _m, p, _b in hq.drain(1, timeout=15)] == ["soap-in-last"]
    finally:
        hq.close()
        hub.stop()


def basic_header_is_refused(url: str) -> bool:
    """A Bearer (or any non-Basic) scheme is refused, not ignored."""
    r = requests.post(url, data=envelope("x").encode(), timeout=10,
                      headers={"Content-Type": "text/xml", "Authorization": "Bearer " + base64.b64encode(b"x").decode()})
    return r.status_code == 401 and fault_of(r)[1] == "SENDER_UNAUTHENTICATED"
