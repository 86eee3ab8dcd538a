"""Fixtures of the console tests: a real uvicorn on 127.0.0.1 serving the console of a test vhost.

Owns: the users file (viewer, operator, admin with scrypt hashes), the running console, a
logged-in requests session per role, and parking crafted dead letters in hub.dlq exactly
as the hub parks them (hub.failures.dead_letter).
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
import requests
import uvicorn
from waiting import wait_until

from hub import failures
from hub.configuration import load_config
from hub.console.access import Role, Users
from hub.console.app import ConsoleConfig, create_app
from hub.envelope import INGRESS_EXCHANGE, Incoming, Props
from hub.flows.order_tracker import ensure_tables
from hub.store import open_store
from hub.worker import to_pika
from protocols.errors import ReasonCode, TransientFailure

PASSWORD = "correct horse 1"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def notice_xml(sender: str, to: str, text: str) -> bytes:
    return ('<?xml version="1.0" encoding="GBK"?>'
            f'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>{sender}</CompanyCode><To>{to}</To>'
            f"<Title>通知</Title><Text>{text}</Text></Notice>").encode("gbk")


def park(settings, message_id: str, *, sender: str = "44", to: str = "11", text: str = "漫游用户投诉:信号差") -> None:
    """A dead letter of a valid GBK notice whose delivery gave up (as the hub makes it), in hub.dlq."""
    msg = Incoming(notice_xml(sender, to, text),
                   Props(message_id=message_id, type="notice.text", content_type="application/xml",
                         content_encoding="gbk", user_id=settings.broker_user(f"node-{sender}")),
                   exchange=INGRESS_EXCHANGE, routing_key="notice.text")
    exc = TransientFailure("province 11 did not answer through all retries", reason=ReasonCode.RETRY_EXHAUSTED)
    out = failures.dead_letter(msg, exc, datetime.now(UTC), message_id=message_id, attempts=5, stage="deliver",
                               route="notice-to-province", source=sender)
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(out.exchange, out.routing_key, out.body, to_pika(out.props))
    finally:
        conn.close()


def queue_ids(settings, queue: str) -> list[str]:
    """Message ids in `queue`, read without consuming (the channel closes unacked)."""
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        ch = conn.channel()
        ids = []
        while True:
            m, p, _ = ch.basic_get(queue, auto_ack=False)
            if m is None:
                return ids
            ids.append(p.message_id)
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningConsole:
    def __init__(self, settings, users_file: Path, session_ttl_s: float = 3600) -> None:
        self.store = open_store(settings.store_url)
        ensure_tables(self.store)
        cfg = load_config(settings.config_dir, settings.routes_dir)
        self.app = create_app(settings, self.store, cfg.directory,
                              ConsoleConfig(users_file=users_file, session_ttl_s=session_ttl_s))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> RunningConsole:
        self.thread.start()
        wait_until(lambda: self.server.started, 15, 0.02, "uvicorn serves the console")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.store.close()

    def login(self, user: str, password: str = PASSWORD) -> requests.Session:
        s = requests.Session()
        token = s.get(f"{self.url}/api/csrf", timeout=10).json()["csrf_token"]
        r = s.post(f"{self.url}/login", data={"user": user, "password": password, "csrf_token": token},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 303, r.text
        s.headers["X-CSRF-Token"] = s.get(f"{self.url}/api/csrf", timeout=10).json()["csrf_token"]
        return s


@pytest.fixture(scope="session")
def users_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("console") / "console-users.yaml"
    users = Users(path)
    for name, role in (("viewer1", Role.viewer), ("operator1", Role.operator), ("admin1", Role.admin)):
        users.put(name, role, PASSWORD)
    return path


@pytest.fixture
def console(settings, applied_topology, users_file, monkeypatch):
    monkeypatch.setenv("HUB_CONSOLE_SECRET", "test-secret-not-for-production")
    c = RunningConsole(settings, users_file).start()
    yield c
    c.stop()
