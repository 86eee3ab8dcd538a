"""Fixtures of the WAP endpoint tests: the real broker and hub, a province played by plain pika.

Owns: wiring only. The topology holds the few nodes these tests use (quorum queues cost the
broker time to create and delete), the hub runs in a thread, the endpoint on 127.0.0.1:<free port>.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from running_hub import HubThread
from wap_province import SECRET, WapProvince

from adapters.wap.config import WapClient, WapConfig, hash_password
from adapters.wap.service import WapEndpoint
from hub.nodes import Directory
from hub.settings import Settings
from hub.topology import apply, build_topology, load_or_create_passwords, password_env_var

NODES = ("00", "11", "44", "99", "WAP", "NMS")


@pytest.fixture
def wap_topology(settings: Settings, directory, monkeypatch: pytest.MonkeyPatch):
    topology = build_topology(settings, Directory([n for n in directory.nodes if n.code in NODES]))
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), f"test-password-{user}")
    passwords = load_or_create_passwords(settings, topology.user_names)
    assert apply(topology, settings, passwords) == []
    return topology, passwords


@pytest.fixture
def wap_hub(settings: Settings, wap_topology) -> Iterator[HubThread]:
    hub = HubThread(settings).start()
    yield hub
    hub.stop()


def wap_config(**changes) -> WapConfig:
    data = dict(host="127.0.0.1", port=0, answer_timeout_s=1.5, receipt_wait_s=1.0,
                clients=[WapClient(name="wap-hall", password_sha256=hash_password(SECRET), rate_per_s=500, burst=500),
                         WapClient(name="slow", password_sha256=hash_password(SECRET), rate_per_s=0.5, burst=2)])
    data.update(changes)
    return WapConfig(**data)


@pytest.fixture
def endpoint(settings: Settings, wap_hub) -> Iterator[WapEndpoint]:
    ep = WapEndpoint(settings, wap_config()).start()
    yield ep
    ep.stop()


@pytest.fixture
def province(settings: Settings, wap_topology) -> Iterator:
    made = []

    def make(code: str, encoding: str = "utf-8") -> WapProvince:
        _, passwords = wap_topology
        user = settings.broker_user(f"node-{code}")
        p = WapProvince(settings.amqp_url_for_vhost(user, passwords[user]), code, user, encoding=encoding).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
