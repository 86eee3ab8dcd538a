"""The WAP endpoint over real HTTP (requests) against the running hub and a province on the real broker."""

from __future__ import annotations

import time

import requests
from waiting import wait_until
from wap_province import SECRET, text_of

AUTH = ("wap-hall", SECRET)
XML = {"Content-Type": "application/xml; charset=utf-8"}


def query(mobile: str, kind: str = "balance", rid: str = "R-1", month: str | None = None) -> bytes:
    m = f"<Month>{month}</Month>" if month else ""
    return (f'<QueryRequest xmlns="urn:cs-hub:wap:1"><RequestId>{rid}</RequestId><Mobile>{mobile}</Mobile>'
            f"<Kind>{kind}</Kind>{m}</QueryRequest>").encode()


def transaction(mobile: str, rid: str) -> bytes:
    return (f'<TransactionRequest xmlns="urn:cs-hub:wap:1"><RequestId>{rid}</RequestId><Mobile>{mobile}</Mobile>'
            '<Service>DATA10G</Service><Action>subscribe</Action><Parameter name="effective">now</Parameter>'
            "</TransactionRequest>").encode()


def test_queries_answers_refusals_and_timeouts(endpoint, province):
    gd = province("44", "gbk")
    bj = province("11")
    http = requests.Session()
    post = lambda body, auth=AUTH, headers=XML: http.post(endpoint.url, data=body, auth=auth,  # noqa: E731
                                                          headers=headers, timeout=10)

    # success: a Guangdong (GBK) province answers; the WAP system gets UTF-8 with Chinese intact
    r = post(query("13920001234"))
    assert r.status_code == 200, r.text
    assert text_of(r.content, "Result") == "ok"
    assert text_of(r.content, "Message", "zh") == "余额充足"
    assert text_of(r.content, "CompanyCode") == "44"
    # the province's own word that it does not know the customer comes through as its Answer
    r = post(query("13920000000", kind="customer_info"))
    assert r.status_code == 200 and text_of(r.content, "Result") == "unknown_customer"

    # unknown customer: no segment -> the hub refuses it, the endpoint answers 404 at once
    r = post(query("15000001234"))
    assert r.status_code == 404, r.text
    assert text_of(r.content, "ReasonCode") == "UNKNOWN_SEGMENT"
    assert text_of(r.content, "Message", "zh").startswith("未知的号段")

    # a bill summary without a month is refused before it reaches the bus
    r = post(query("13920001234", kind="bill_summary"))
    assert r.status_code == 400 and text_of(r.content, "Field") == "Month"

    # timeout: Beijing takes the query but never answers
    bj.silent = True
    t0 = time.monotonic()
    r = post(query("13901001234", kind="detail_records", month="202501", rid="R-late"))
    took = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert text_of(r.content, "ReasonCode") == "PARTNER_TIMEOUT"
    assert text_of(r.content, "Message", "zh").startswith("用户归属省未在 1.5 秒内应答")
    assert text_of(r.content, "Retryable") == "true"
    assert 1.4 < took < 4.0
    assert "wap.query" in bj.seen

    # transactions: forwarded with receipts; a re-send of the same RequestId gets the receipt again
    r = post(transaction("13920001234", "T-1"))
    assert r.status_code == 200 and text_of(r.content, "Result") == "done"
    r = post(transaction("13920001234", "T-1"))
    assert r.status_code == 200 and text_of(r.content, "Result") == "done"
    # a receipt later than receipt_wait_s: 202 first, then the kept receipt
    gd.delay_s = 1.3
    r = post(transaction("13920001234", "T-2"))
    assert r.status_code == 202, r.text
    gd.delay_s = 0.0
    r = wait_until(lambda: (a := post(transaction("13920001234", "T-2"))).status_code == 200 and a, 10, 0.2,
                   "the re-sent transaction is answered from the kept receipt")
    assert text_of(r.content, "RequestId") == "T-2"
    assert gd.seen.count("wap.transaction") == 2       # T-1 once, T-2 once: re-sends never reached it


def test_hostile_input_credentials_and_rate_limit(endpoint, province):
    http = requests.Session()
    post = lambda body, auth=AUTH, headers=XML: http.post(endpoint.url, data=body, auth=auth,  # noqa: E731
                                                          headers=headers, timeout=10)
    cases = {
        b"<QueryRequest xmlns='urn:cs-hub:wap:1'><RequestId>1</RequestId": "XML_MALFORMED",
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
         b"<QueryRequest xmlns='urn:cs-hub:wap:1'><RequestId>&e;</RequestId></QueryRequest>"): "XML_FORBIDDEN",
        (b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
         b"<QueryRequest xmlns='urn:cs-hub:wap:1'><RequestId>&b;</RequestId></QueryRequest>"): "XML_FORBIDDEN",
        b"<Query xmlns='urn:cs-hub:wap:1'/>": "XSD_INVALID",
        query("1392000123x"): "XSD_INVALID",
        "<QueryRequest xmlns='urn:cs-hub:wap:1'><RequestId>中</RequestId></QueryRequest>".encode("gbk"):
            "ENCODING_INVALID",
    }
    for body, reason in cases.items():
        r = post(body)
        assert r.status_code == 400, (body, r.text)
        assert text_of(r.content, "ReasonCode") == reason, (body, r.text)
    r = post(b"<x>" + b"a" * 70_000 + b"</x>")
    assert r.status_code == 413 and text_of(r.content, "ReasonCode") == "OVERSIZE"

    for auth in (None, ("wap-hall", "wrong"), ("nobody", SECRET)):
        r = post(query("13920001234"), auth=auth)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        assert text_of(r.content, "ReasonCode") == "CLIENT_UNAUTHORIZED"

    # client "slow": burst 2, then 0.5 per second -> the third request at once is refused
    codes = [post(query("15000001234"), auth=("slow", SECRET)).status_code for _ in range(3)]
    assert codes[:2] == [404, 404] and codes[2] == 429
    r = post(query("15000001234"), auth=("slow", SECRET))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert text_of(r.content, "ReasonCode") == "CLIENT_RATE_LIMITED"
    assert endpoint.health()["broker"]["consuming"]
