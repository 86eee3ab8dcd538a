"""A RabbitMQ node of its own on this machine, for a province's broker (tests and bench/scale.py).

Owns: starting and stopping the node (its own node name, ports, data and log folders under a
temporary folder, the shovel plugin enabled through its own enabled_plugins file, the
machine's Erlang cookie). Debian's wrappers run RabbitMQ as the `rabbitmq` user, so the
folder is made in /tmp (pytest's tmp_path is private to root) and handed to that user.
Must not: touch the main node's plugins or application state.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SiteNode:
    """A RabbitMQ node of its own on this machine: `rabbitmq-server -detached` with its own env."""

    def __init__(self, name: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hub-site-", dir="/tmp"))
        self.node = f"{name}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        for sub in ("mnesia", "log"):
            (self.folder / sub).mkdir()
        (self.folder / "enabled_plugins").write_text("[rabbitmq_shovel].\n")
        # The machine's rabbitmq.conf pins the main node's listener; this node gets its own file.
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        self.folder.chmod(0o755)
        shutil.chown(self.folder, "rabbitmq", "rabbitmq")
        for p in self.folder.rglob("*"):
            shutil.chown(p, "rabbitmq", "rabbitmq")
        self.env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(self.dist_port), RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
                        RABBITMQ_LOG_BASE=str(self.folder / "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(self.folder / "enabled_plugins"),
                        RABBITMQ_CONFIG_FILE=str(self.folder / "rabbitmq.conf"),
                        RABBITMQ_PID_FILE=str(self.folder / "pid"))

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.port}"

    def start(self) -> SiteNode:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, timeout=30)
        self.ctl("wait", str(self.folder / "pid"), "--timeout", "60", timeout=90)
        return self

    def ctl(self, *args: str, timeout: float = 30, check: bool = True) -> str:
        # This node's env: the CLI finds the shovel commands through its enabled_plugins file.
        r = subprocess.run(["rabbitmqctl", "-q", "-n", self.node, *args], capture_output=True, text=True,
                           timeout=timeout, env=self.env)
        assert r.returncode == 0 or not check, f"rabbitmqctl {' '.join(args)} on {self.node}: {r.stdout}{r.stderr}"
        return r.stdout

    def import_definitions(self, text: str) -> None:
        path = self.folder / f"defs-{uuid.uuid4().hex[:6]}.json"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)   # read by the rabbitmq user
        self.ctl("import_definitions", str(path))

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.node, "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
