"""Fixtures of the SMPP adapter tests: a real SMSC (npm `smpp`), the real broker, the adapter.

Owns: wiring only. The SMSC is tests/peers/smsc/smsc.js (installed with `npm ci` when its
node_modules is missing), on loopback ports of its own; the broker is the suite's RabbitMQ
in a fresh vhost with the topology applied, adapter queues included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from smpp_bus import Bus
from smsc_peer import SMSC_PASSWORD, Smsc

from adapters.smpp.adapter import SmppAdapter
from adapters.smpp.config import SmppConfig
from hub.nodes import Directory
from hub.settings import Settings
from hub.topology import apply, build_topology, load_or_create_passwords, password_env_var

#: The nodes these tests send from and to: a topology of 4 nodes instead of 33 keeps each test's
#: vhost small (quorum queues cost the broker seconds to create and delete).
NODES = ("00", "11", "44", "99")


@pytest.fixture
def topology_with_adapters(settings: Settings, directory, monkeypatch: pytest.MonkeyPatch):
    """The hub's topology for NODES and adapter.smpp applied into the test vhost; passwords by user."""
    topology = build_topology(settings, Directory([n for n in directory.nodes if n.code in NODES]), ["smpp"])
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), f"test-password-{user}")
    passwords = load_or_create_passwords(settings, topology.user_names)
    assert apply(topology, settings, passwords) == []
    return topology, passwords


@pytest.fixture
def smscs(tmp_path: Path) -> Iterator[Callable[..., Smsc]]:
    """smscs(name, *options) -> a started test SMSC; all are stopped after the test."""
    made: list[Smsc] = []

    def make(name: str = "smsc-a", *options: str, password: str = SMSC_PASSWORD) -> Smsc:
        s = Smsc(tmp_path / "smsc", name=name, password=password, options=list(options)).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def adapters(settings: Settings, topology_with_adapters, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[Callable[..., SmppAdapter]]:
    """adapters(config, passwords={name: pw}) -> a started SmppAdapter; stopped after the test."""
    made: list[SmppAdapter] = []

    def make(config: SmppConfig, passwords: dict[str, str] | None = None, wait: bool = True) -> SmppAdapter:
        for s in config.smscs:
            monkeypatch.setenv(s.password_env, (passwords or {}).get(s.name, SMSC_PASSWORD))
        adapter = SmppAdapter(settings, config).start()
        made.append(adapter)
        if wait:
            assert adapter.wait_bound(15), f"the adapter did not bind and consume: {adapter.health()}"
        return adapter

    yield make
    for a in made:
        a.stop()


@pytest.fixture
def bus(settings: Settings, topology_with_adapters) -> Iterator[Bus]:
    b = Bus(settings)
    yield b
    b.close()
