"""Fixtures of the console tests: a real uvicorn on 127.0.0.1 serving the console of a test vhost.

Owns: the users file (viewer, operator, admin with scrypt hashes), the running console, a
logged-in requests session per role, and parking crafted dead letters in hub.dlq exactly
as the hub parks them (hub.failures.dead_letter).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
import uvicorn
from console_support import ARTIFACTS, PASSWORD, park, queue_ids  # noqa: F401 (fixtures use them)
from ports import free_port as _free_port
from waiting import wait_until

from hub.configuration import load_config
from hub.console.access import Role, Users
from hub.console.app import ConsoleConfig, create_app
from hub.flows.order_tracker import ensure_tables
from hub.store import open_store


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
