"""Fixtures shared by the whole suite: the real RabbitMQ, a fresh vhost per test, settings, nodes, topology.

Owns: the broker availability check (a loud pytest.exit, never a skip: the suite is meant to run
against the real broker that scripts/test installs and starts), per-test vhosts and their cleanup,
and the test Settings (short retry tiers, state under tmp_path).
Must not: hold assertions or test logic; polling lives in tests/waiting.py.

Users are global in RabbitMQ, not per vhost: every applied topology shares node-XX and cs-hub.
So test passwords are fixed per user (HUB_PASSWORD_*), which lets concurrent runs on one broker
agree, and a user is deleted after a test only when it has no permissions left on any vhost.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest
import yaml
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from hub.broker_admin import BrokerAdmin
from hub.nodes import Directory, NodesFile
from hub.settings import Settings, load_settings
from hub.topology import Topology, apply, build_topology, load_or_create_passwords, password_env_var
from protocols.errors import HubError

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "config"
TEST_RETRY_TIERS = [
    {"name": "200ms", "delay_ms": 200},
    {"name": "500ms", "delay_ms": 500},
    {"name": "1s", "delay_ms": 1000},
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the broker, so `-m "not broker"` selects the pure ones."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


def _test_password(user: str) -> str:
    return f"test-password-{user}"


@pytest.fixture(scope="session")
def broker() -> Settings:
    """Base settings (config/hub.yaml + HUB_* env); stops the whole run if RabbitMQ does not answer."""
    base = load_settings(CONFIG_DIR / "hub.yaml")
    amqp = urlsplit(base.amqp_url.get_secret_value())
    host, port = amqp.hostname or "127.0.0.1", amqp.port or 5672
    problems = []
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        problems.append(f"AMQP port {host}:{port} does not answer ({exc})")
    try:
        with BrokerAdmin.from_settings(base, timeout=5) as admin:
            admin.overview()
    except HubError as exc:
        problems.append(f"management API: {exc}")
    if problems:
        bar = "!" * 78
        pytest.exit(
            f"\n{bar}\nRabbitMQ is not available, and these tests need the real broker:\n  - "
            + "\n  - ".join(problems)
            + f"\nRun scripts/test (it installs and starts RabbitMQ with its management plugin), "
              f"not bare pytest.\n{bar}",
            returncode=3,
        )
    return base


@pytest.fixture(scope="session")
def broker_admin(broker: Settings) -> Iterator[BrokerAdmin]:
    with BrokerAdmin.from_settings(broker) as admin:
        yield admin


@pytest.fixture
def new_vhost(broker: Settings, broker_admin: BrokerAdmin) -> Iterator[Callable[..., str]]:
    """new_vhost(create=True) -> a fresh test-<random> vhost name; all are deleted after the test,
    with the users that had permissions there and nowhere else. create=False only reserves the name
    (for a test that makes the vhost itself, e.g. by importing definitions)."""
    admins = {broker.management_user, urlsplit(broker.amqp_url.get_secret_value()).username or ""}
    made: list[str] = []

    def make(create: bool = True) -> str:
        name = f"test-{secrets.token_hex(4)}"
        made.append(name)
        if create:
            broker_admin.create_vhost(name, description="pytest; deleted after the test")
            for user in sorted(admins - {""}):
                broker_admin.set_permissions(user, name, ".*", ".*", ".*")
        return name

    yield make
    for name in made:
        users = {p["user"] for p in broker_admin.list_permissions(name)} - admins
        broker_admin.delete_vhost(name)
        for user in sorted(users):
            if not broker_admin.user_permissions(user):
                broker_admin.delete_user(user)


@pytest.fixture
def vhost(new_vhost: Callable[..., str]) -> str:
    """A fresh, empty vhost for this test only; management and amqp_url users have full permissions."""
    return new_vhost()


@pytest.fixture
def settings(broker: Settings, vhost: str, tmp_path: Path) -> Settings:
    """Settings for this test: its own vhost, state under tmp_path, short retry tiers."""
    return load_settings(
        CONFIG_DIR / "hub.yaml",
        vhost=vhost,
        user_prefix=f"{vhost}.",
        data_dir=tmp_path / "var",
        store_url=f"sqlite:///{tmp_path / 'hub.sqlite3'}",
        config_dir=CONFIG_DIR,
        routes_dir=REPO / "routes",
        retry_tiers=TEST_RETRY_TIERS,
    )


@pytest.fixture(scope="session")
def directory() -> Directory:
    """The real node list of config/nodes.yaml."""
    raw = yaml.safe_load((CONFIG_DIR / "nodes.yaml").read_text(encoding="utf-8"))
    return Directory(NodesFile.model_validate(raw).nodes)


@pytest.fixture
def applied_topology(settings: Settings, directory: Directory,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[Topology, dict[str, str]]:
    """The topology built and applied into the test vhost: (topology, passwords by user)."""
    topology = build_topology(settings, directory)
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), _test_password(user))
    passwords = load_or_create_passwords(settings, topology.user_names)
    drift = apply(topology, settings, passwords)
    assert drift == [], f"apply into a fresh vhost left drift: {drift}"
    return topology, passwords


@pytest.fixture
def amqp_params_for(settings: Settings) -> Callable[[str, str], pika.URLParameters]:
    """amqp_params_for(user, password) -> pika parameters for the test vhost."""

    def params(user: str, password: str) -> pika.URLParameters:
        p = pika.URLParameters(settings.amqp_url_for_vhost(user, password))
        p.connection_attempts = 1
        p.blocked_connection_timeout = 10
        return p

    return params


@pytest.fixture
def connect(settings: Settings, amqp_params_for: Callable[[str, str], pika.URLParameters],
            ) -> Iterator[Callable[..., pika.BlockingConnection]]:
    """connect(user=None, password=None) -> a BlockingConnection to the test vhost (amqp_url's
    credentials by default), closed after the test."""
    conns: list[pika.BlockingConnection] = []

    def open_(user: str | None = None, password: str | None = None) -> pika.BlockingConnection:
        params = (pika.URLParameters(settings.amqp_url_for_vhost()) if user is None
                  else amqp_params_for(user, password or ""))
        conn = pika.BlockingConnection(params)
        conns.append(conn)
        return conn

    yield open_
    for conn in conns:
        if conn.is_open:
            conn.close()


# ----------------------------------------------------------------------------- PostgreSQL

#: The server the PostgreSQL tests use (scripts/test sets it to the database scripts/bootstrap makes).
PG_ADMIN_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _drop_orphaned_test_databases(conn) -> None:
    """Databases left by a test run that was killed (its pid, in the name, is gone)."""
    for (db,) in conn.exec_driver_sql("SELECT datname FROM pg_database WHERE starts_with(datname, 'hub_test_')"):
        pid = db.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database():
    """A database created for this test run and dropped after it; tests get a schema each.
    A missing server fails the tests that need it, loudly: it is never skipped."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"hub_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            _drop_orphaned_test_databases(conn)
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(PG_ADMIN_URL).render_as_string(hide_password=True)} "
            f"({str(exc.orig).strip().splitlines()[0]}). Run scripts/test (it installs and starts it), or "
            "point HUB_TEST_PG_URL at another server.", pytrace=False)
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
def pg_schema_url(pg_database) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own (dropped after it)."""
    url, db = pg_database
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with db.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with db.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> Iterator[str]:
    """An empty state store: a SQLite file, or a PostgreSQL schema made for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    else:
        yield request.getfixturevalue("pg_schema_url")
