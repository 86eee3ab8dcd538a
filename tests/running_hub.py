"""Running the real hub for tests: in a thread of the test process, or as its own process.

Owns: starting and stopping a hub against a test vhost, and a minimal pika node client
(publish as a node, collect what a node's queue holds). The process variant is what kill -9
and SIGTERM tests need; it gets its settings through a YAML file named by HUB_SETTINGS and
its passwords through the HUB_PASSWORD_* variables the fixtures set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import yaml
from waiting import wait_until

from hub.runtime import HubProcess
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[1]


class HubThread:
    def __init__(self, settings: Settings, **kw) -> None:
        self.proc = HubProcess(settings, watch=kw.pop("watch", False), **kw)
        self.thread = threading.Thread(target=self.proc.run, kwargs={"install_signals": False}, daemon=True)

    def start(self) -> HubThread:
        self.thread.start()
        assert self.proc.worker.wait_ready(45), "the hub did not start consuming within 45 s"
        return self

    def stop(self) -> None:
        self.proc.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the hub did not stop within 30 s"


def settings_file(settings: Settings, folder: Path) -> Path:
    data = settings.model_dump(mode="json")
    data["amqp_url"] = settings.amqp_url.get_secret_value()
    data["management_password"] = settings.management_password.get_secret_value()
    path = folder / "hub-settings.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class HubSubprocess:
    """`python -m hub.cli run` as a child process (killable with SIGKILL or SIGTERM)."""

    def __init__(self, settings: Settings, folder: Path, name: str = "hub") -> None:
        self.settings = settings
        self.path = settings_file(settings, folder)
        self.log = folder / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> HubSubprocess:
        env = dict(os.environ, HUB_SETTINGS=str(self.path), HUB_LOG_LEVEL="INFO")
        self._logf = open(self.log, "ab")
        self.popen = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--no-watch"], cwd=REPO, env=env,
                                      stdout=self._logf, stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        if getattr(self, "_logf", None):
            self._logf.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Node:
    """A province (or HQ) as a plain pika client with its own AMQP user."""

    def __init__(self, settings: Settings, code: str, password: str) -> None:
        self.code = code
        self.user = settings.broker_user(f"node-{code}")
        self.params = pika.URLParameters(settings.amqp_url_for_vhost(self.user, password))
        self.conn = pika.BlockingConnection(self.params)
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def publish(self, type_: str, body: bytes, message_id: str, *, encoding: str = "utf-8",
                user_id: str | None = "self", headers: dict | None = None, correlation_id: str | None = None,
                confirm: bool = True) -> None:
        props = pika.BasicProperties(message_id=message_id, type=type_, content_type="application/xml",
                                     content_encoding=encoding, delivery_mode=2, headers=headers,
                                     correlation_id=correlation_id, timestamp=int(time.time()),
                                     user_id=self.user if user_id == "self" else user_id)
        self.ch.basic_publish("hub.ingress", type_, body, props)

    def get(self, timeout: float = 10.0):
        """Next message from the node's own queue (method, props, body), acked; AssertionError on timeout."""
        box = []

        def one():
            m, p, b = self.ch.basic_get(f"node.{self.code}", auto_ack=True)
            if m:
                box.append((m, p, b))
            return bool(box)
        wait_until(one, timeout, 0.02, f"a message arrives in node.{self.code}")
        return box[0]

    def drain(self, expect: int, timeout: float = 30.0) -> list:
        """Collect messages from the node's queue until `expect` arrived; more are collected if present."""
        out = []

        def more():
            while True:
                m, p, b = self.ch.basic_get(f"node.{self.code}", auto_ack=True)
                if not m:
                    break
                out.append((m, p, b))
            return len(out) >= expect
        wait_until(more, timeout, 0.05, f"{expect} messages arrive in node.{self.code} (have {len(out)})")
        return out

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


def notice(sender: str, to: str, text: str = "测试通知", title: str = "通知") -> bytes:
    return (f'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>{sender}</CompanyCode><To>{to}</To>'
            f"<Title>{title}</Title><Text>{text}</Text></Notice>").encode()
