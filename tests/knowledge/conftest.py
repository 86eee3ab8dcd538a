"""Fixtures of the knowledge and announcement tests: a hub on the real broker, nodes as plain pika
clients, and an empty state store on SQLite or PostgreSQL (a schema of its own per test)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest
from running_hub import HubThread

HUBNS = "{urn:cs-hub:hub:1}"


class Node:
    """One node: publishes as itself to hub.ingress, reads its own queue node.<code>."""

    def __init__(self, url: str, code: str, user: str) -> None:
        self.code, self.user = code, user
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def send(self, type_: str, body: bytes, *, message_id: str | None = None) -> str:
        message_id = message_id or f"{self.code}-{uuid.uuid4().hex[:12]}"
        self.ch.basic_publish("hub.ingress", type_, body, pika.BasicProperties(
            message_id=message_id, type=type_, user_id=self.user, content_type="application/xml",
            content_encoding="utf-8", delivery_mode=2))
        return message_id

    def next(self, timeout: float = 15.0):
        """(properties, body) of the next message of the node's queue (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = self.ch.basic_get(f"node.{self.code}", auto_ack=True)
            if method:
                return props, body
            self.conn.process_data_events(time_limit=0.02)
        raise AssertionError(f"nothing arrived in node.{self.code} within {timeout}s")

    def nack(self, timeout: float = 15.0) -> str:
        """The reason code of the next message, which must be a hub.nack."""
        from lxml import etree
        props, body = self.next(timeout)
        assert props.type == "hub.nack", (props.type, body[:300])
        return etree.fromstring(body).findtext(HUBNS + "ReasonCode")

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def node(settings, applied_topology) -> Iterator[Callable[[str], Node]]:
    _, passwords = applied_topology
    made: list[Node] = []

    def make(code: str) -> Node:
        user = settings.broker_user(f"node-{code}")
        n = Node(settings.amqp_url_for_vhost(user, passwords[user]), code, user)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


@pytest.fixture
def hub(settings, applied_topology) -> Iterator[HubThread]:
    h = HubThread(settings).start()
    yield h
    if h.thread.is_alive():
        h.stop()


