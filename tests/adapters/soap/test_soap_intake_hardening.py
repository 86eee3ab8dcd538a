"""The SOAP intake against misbehaving HTTP clients, before they authenticate: a chunked body over
the limit, a body that trickles in, a client that leaves mid-body."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import requests
from test_soap_intake import envelope, fault_of
from waiting import wait_until

from adapters.soap.config import SoapFile
from adapters.soap.intake import Intake, IntakeServer
from hub.configuration import load_config


@pytest.fixture
def server(settings, soap_topology, soap_directory):
    _topology, passwords = soap_topology
    cfg = SoapFile.model_validate({"intake": {"port": 0, "max_request_bytes": 8192, "read_timeout_s": 1.0},
                                   "nodes": {"13": {"intake": {"username": "crm-13", "password": "intake-pw-13"}}}})
    catalogue = load_config(settings.config_dir, settings.routes_dir).catalogue
    s = IntakeServer(Intake(cfg, settings, soap_directory, catalogue, passwords)).start()
    yield s
    s.stop()


def test_unauthenticated_clients_cannot_stream_past_the_limit_or_hold_connections(server, caplog):
    url = f"http://127.0.0.1:{server.port}/soap/intake"
    body = envelope("x" * 20_000).encode()
    r = requests.post(url, data=(body[i:i + 1000] for i in range(0, len(body), 1000)), timeout=10,
                      headers={"Content-Type": "text/xml; charset=utf-8"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 500 and fault_of(r)[1] == "OVERSIZE"

    slow = socket.create_connection(("127.0.0.1", server.port))
    t0 = time.monotonic()
    slow.sendall(b"POST /soap/intake HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 900\r\n\r\n<soap")
    assert requests.get(url + "?wsdl", timeout=10).status_code == 200        # others are served meanwhile
    slow.settimeout(10)
    answer = b""
    while chunk := slow.recv(65536):
        answer += chunk
    slow.close()
    assert answer.startswith(b"HTTP/1.1 500") and b"XML_MALFORMED" in answer, answer[:300]
    assert 0.9 < time.monotonic() - t0 < 5

    caplog.set_level(logging.INFO, "adapters.soap.intake")
    gone = socket.create_connection(("127.0.0.1", server.port))
    gone.sendall(b"POST /soap/intake HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n<soap")
    gone.close()
    wait_until(lambda: any("closed the connection" in r.getMessage() for r in caplog.records), 5, 0.02,
               "the intake notices the client left")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
