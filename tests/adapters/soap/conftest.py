"""Fixtures of the SOAP adapter tests: the real broker, a spyne CRM, the adapter's two sides.

Owns: wiring only. Nodes 44 (a province with a CRM reached by SOAP) and 13 (a legacy node
submitting by SOAP) get transport soap; the topology holds NODES only (a small vhost is
quick for the broker to create and delete).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from crm_peer import CrmServer

from hub.nodes import Directory, Transport
from hub.settings import Settings
from hub.topology import apply, build_topology, load_or_create_passwords, password_env_var

NODES = ("00", "13", "44", "99")
SOAP_NODES = ("13", "44")


@pytest.fixture
def soap_directory(directory: Directory) -> Directory:
    return Directory([n.model_copy(update={"transport": Transport.soap}) if n.code in SOAP_NODES else n
                      for n in directory.nodes if n.code in NODES])


@pytest.fixture
def soap_topology(settings: Settings, soap_directory: Directory, monkeypatch: pytest.MonkeyPatch):
    """The hub's topology for NODES applied into the test vhost; passwords by broker user."""
    topology = build_topology(settings, soap_directory, ["soap"])
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), f"test-password-{user}")
    passwords = load_or_create_passwords(settings, topology.user_names)
    assert apply(topology, settings, passwords) == []
    return topology, passwords


@pytest.fixture
def crm() -> Iterator[CrmServer]:
    server = CrmServer().start()
    yield server
    server.stop()
