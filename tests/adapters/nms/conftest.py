"""Fixtures of the NMS feed tests: the real broker, the hub in a thread, the interface table on
SQLite or PostgreSQL (HUB_TEST_PG_URL; a schema per test, dropped after it; PostgreSQL must run).

Owns: wiring only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from hub.nodes import Directory
from hub.settings import Settings
from hub.topology import apply, build_topology, load_or_create_passwords, password_env_var

NODES = ("00", "11", "44", "99", "NMS", "WAP")
PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    schema = f"nms_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {make_url(PG_URL).render_as_string(hide_password=True)} "
                    f"({str(exc.orig).strip().splitlines()[0]}); start it or set HUB_TEST_PG_URL.", pytrace=False)
    engine = create_engine(make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
