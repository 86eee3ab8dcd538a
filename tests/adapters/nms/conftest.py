"""Fixtures of the NMS feed tests: the real broker, the hub in a thread, the interface table on
SQLite or PostgreSQL (tests/conftest.py's pg_schema_url: a schema per test; PostgreSQL must run).

Owns: wiring only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from hub.nodes import Directory
from hub.settings import Settings
from hub.topology import apply, build_topology, load_or_create_passwords, password_env_var

NODES = ("00", "11", "44", "99", "NMS", "WAP")


@pytest.fixture
def nms_topology(settings: Settings, directory, monkeypatch: pytest.MonkeyPatch):
    topology = build_topology(settings, Directory([n for n in directory.nodes if n.code in NODES]))
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), f"test-password-{user}")
    passwords = load_or_create_passwords(settings, topology.user_names)
    assert apply(topology, settings, passwords) == []
    return topology, passwords


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def nms_engine(request, tmp_path) -> Iterator:
    """The NMS database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'nms.sqlite3'}")
        yield engine
        engine.dispose()
        return
    engine = create_engine(request.getfixturevalue("pg_schema_url"))
    yield engine
    engine.dispose()
