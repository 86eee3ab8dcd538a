"""Fixtures for scale-out: a second RabbitMQ node (a province's own broker) and a PostgreSQL store.

Owns: the second node's lifetime for the run (tests/scale/site_node.py starts and stops it),
and a PostgreSQL schema per test shared by several hub processes.
Must not: hold test logic.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from site_node import SiteNode
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_ADMIN_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def site_node(broker) -> Iterator[SiteNode]:
    """A province's own broker, started once for the run and stopped at its end."""
    node = SiteNode(f"hubsite{os.getpid()}")
    try:
        node.start()
    except BaseException:
        node.stop()
        raise
    yield node
    node.stop()


@pytest.fixture(scope="session")
def scale_pg_database():
    """A PostgreSQL database for this run, dropped afterwards; fails the test when PG is missing."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"hub_scale_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {make_url(PG_ADMIN_URL).render_as_string(hide_password=True)} "
                    f"({str(exc.orig).strip().splitlines()[0]}); several hub workers share it. Run scripts/test, "
                    "or point HUB_TEST_PG_URL at a server.", pytrace=False)
    url = make_url(PG_ADMIN_URL).set(database=name)
    db = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        yield url, db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def pg_store_url(scale_pg_database) -> Iterator[str]:
    """A PostgreSQL schema of this test's own, as a store URL every hub process of the test uses."""
    url, db = scale_pg_database
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with db.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with db.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
