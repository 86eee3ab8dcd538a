"""The WAP endpoint against misbehaving HTTP clients over raw sockets and requests: a chunked
body over the limit, a body that trickles in or stops, and caching of customer data."""

from __future__ import annotations

import base64
import logging
import socket
import time

import pytest
import requests
from waiting import wait_until
from wap_province import SECRET, text_of

from adapters.wap.config import WapClient, WapConfig, hash_password
from adapters.wap.service import WapEndpoint

AUTH = base64.b64encode(f"wap-hall:{SECRET}".encode()).decode()


@pytest.fixture
def bare_endpoint(settings, wap_topology):
    """The endpoint on the real broker, without a hub behind it (these requests never get that far)."""
    config = WapConfig(host="127.0.0.1", port=0, read_timeout_s=1.0,
                       clients=[WapClient(name="wap-hall", password_sha256=hash_password(SECRET))])
    ep = WapEndpoint(settings, config).start()
    yield ep
    ep.stop()


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_body_limits_hold_on_the_stream_and_slow_clients_are_cut_off(bare_endpoint, caplog):
    ep = bare_endpoint
    # chunked, no Content-Length: the limit is counted on the stream
    r = requests.post(ep.url, data=(b"<!--" + b"a" * 8192 + b"-->" for _ in range(16)), auth=("wap-hall", SECRET),
                      headers={"Content-Type": "application/xml"}, timeout=10)
    assert r.status_code == 413 and text_of(r.content, "ReasonCode") == "OVERSIZE"
    assert "transfer-encoding" not in r.request.headers or "content-length" not in r.request.headers

    # a body that trickles: refused after read_timeout_s and the connection closed; others are served meanwhile
    slow = socket.create_connection(("127.0.0.1", ep.port))
    t0 = time.monotonic()
    slow.sendall(f"POST /wap HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {AUTH}\r\nContent-Type: application/xml\r\n"
                 "Content-Length: 500\r\n\r\n<QueryRequest".encode())
    other = requests.post(ep.url, data=b"<x/>", auth=("wap-hall", "wrong"), timeout=10)
    assert other.status_code == 401 and other.headers["Cache-Control"] == "no-store"
    answer = read_all(slow)
    assert answer.startswith(b"HTTP/1.1 400") and b"XML_MALFORMED" in answer, answer[:300]
    assert 0.9 < time.monotonic() - t0 < 5
    slow.close()

    # a client that goes away mid-body is a refusal, not an application error with a traceback
    refused = ep.stats["refused"]
    gone = socket.create_connection(("127.0.0.1", ep.port))
    gone.sendall(f"POST /wap HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {AUTH}\r\nContent-Length: 500\r\n\r\n<Q"
                 .encode())
    gone.close()
    wait_until(lambda: ep.stats["refused"] > refused, 5, 0.02, "the endpoint notices the client left")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
