"""Fixtures of the SFTP adapter tests: OpenSSH's sshd, keys, the adapter's config, the adapter on
the real RabbitMQ (a fresh vhost with the adapter.sftp queue), an injectable clock, queue readers.

Owns: wiring only. sshd must be installed (scripts/bootstrap installs openssh-server): a
missing sshd stops the run loudly, it never skips.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
from sftp_peer import SSHD, SshServer, keygen

from adapters.sftp import config as sftp_config
from adapters.sftp.service import SftpAdapter
from hub.nodes import Directory
from hub.settings import Settings
from hub.store import open_store
from hub.topology import apply, build_topology, load_or_create_passwords, password_env_var


def pytest_configure(config) -> None:
    if not os.path.exists(SSHD):
        pytest.exit(f"OpenSSH's sshd ({SSHD}) is missing; the SFTP tests need it. Run scripts/test (scripts/bootstrap "
                    f"installs openssh-server), or: apt-get install -y openssh-server", returncode=3)


class Clock:
    """A settable clock: tests move business time instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def client_key(tmp_path_factory) -> Path:
    return keygen(tmp_path_factory.mktemp("sftp-keys") / "id_ed25519")


@pytest.fixture
def sshd(client_key: Path) -> Iterator[SshServer]:
    server = SshServer(client_key.with_suffix(".pub")).start()
    yield server
    server.cleanup()


@pytest.fixture
def known_hosts(sshd: SshServer, tmp_path: Path) -> Path:
    return sshd.write_known_hosts(tmp_path / "known_hosts")


def endpoint(sshd: SshServer, client_key: Path, known_hosts: Path, folder: Path, code: str) -> dict:
    """A node's endpoint on the test server (every account is the server's one user)."""
    province = code not in ("00",)
    return {"host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "key_file": str(client_key),
            "known_hosts": str(known_hosts), "connect_timeout_s": 5,
            "remote_outbox": f"up/{code}" if province else "down",
            "mirror": [{"path": "down", "sender": "00"}] if province else [{"path": "up", "sender": "*"}],
            "outbox": str(folder / code / "outbox"), "inbox": str(folder / code / "inbox")}


@pytest.fixture
def sftp_cfg(sshd: SshServer, client_key: Path, known_hosts: Path, tmp_path: Path) -> sftp_config.SftpFile:
    """HQ and provinces 44 (Guangdong, GBK) and 11 (Beijing) on the test server; settle 0 (files count at once)."""
    data = {
        "version": 1, "hq": "00", "timezone": "Asia/Shanghai", "settle_s": 0, "max_attempts": 5, "late_lookback": 1,
        "reports_since": "2026-11-01",
        "report_types": {"stats": {"names": {"zh": "客服月度统计报表", "en": "Monthly statistics"},
                                   "pattern": "{province}_{report}_{yyyymm}.csv", "period": "monthly",
                                   "due_days": 4, "due_time": "18:00", "expected_from": ["44", "11"]}},
        "transfer": {"progress_every_s": 0.05},
        "endpoints": {code: endpoint(sshd, client_key, known_hosts, tmp_path / "nodes", code)
                      for code in ("00", "44", "11")},
    }
    cfg = sftp_config.SftpFile.model_validate(data)
    for ep in cfg.endpoints.values():
        ep.outbox.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture
def sftp_topology(settings: Settings, directory: Directory, monkeypatch: pytest.MonkeyPatch):
    """The topology with the adapter.sftp queue, applied into the test vhost."""
    topology = build_topology(settings, directory, ["sftp"])
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), f"test-password-{user}")
    passwords = load_or_create_passwords(settings, topology.user_names)
    assert apply(topology, settings, passwords) == []
    return topology


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 3, 2, 0, tzinfo=UTC))   # 2026-12-03 10:00 Beijing time


@pytest.fixture
def make_adapter(settings: Settings, directory: Directory, sftp_topology, sftp_cfg, clock: Clock
                 ) -> Iterator[Callable[..., SftpAdapter]]:
    """make_adapter(cfg=None, **kw) -> an SftpAdapter on the test vhost and a store under tmp_path."""
    made: list[SftpAdapter] = []
    store = open_store(settings.store_url)

    def make(cfg: sftp_config.SftpFile | None = None, **kw) -> SftpAdapter:
        kw.setdefault("clock", clock)
        adapter = SftpAdapter(cfg or sftp_cfg, settings, store, directory, **kw)
        made.append(adapter)
        return adapter

    yield make
    for a in made:
        a.close()
    store.close()


@pytest.fixture
def queue_reader(connect) -> Callable[[str], list[tuple]]:
    """read(queue) -> every message now in `queue` as (properties, body), acked."""
    conn = connect()
    ch = conn.channel()

    def read(queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        out = []
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    return read
