"""The SMPP adapter as one object: configuration, ledger, engine and bus wired together.

Owns: checking the configuration against the node directory (MO routes name real nodes),
resolving the SMSC passwords (never logged), starting the engine and bus threads, the
graceful stop (stop consuming, let the window drain, commit, unbind, close), `health()`
and the health file `hub smpp status` reads (<data_dir>/smpp-health.json, rewritten
every second while the adapter runs).
Must not: process messages (engine.py) or speak SMPP (link.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from adapters.smpp import metrics
from adapters.smpp.config import SmppConfig
from adapters.smpp.engine import QUEUE, Engine
from adapters.smpp.ledger import Ledger
from hub.adapter_bus import Bus
from hub.hop_journal import HopJournal
from hub.metrics import serve_collector
from hub.nodes import Directory, NodesFile
from hub.settings import Settings
from hub.store import Store, open_store
from hub.yamlsource import load_model
from protocols.errors import ConfigError

log = logging.getLogger("adapters.smpp")

HEALTH_FILE = "smpp-health.json"


def load_directory(settings: Settings) -> Directory:
    nodes, _ = load_model(Path(settings.config_dir) / "nodes.yaml", NodesFile)
    return Directory(nodes.nodes)


def check_against(config: SmppConfig, directory: Directory) -> None:
    """ConfigError naming every MO route or default node that is not a configured node."""
    bad = [f"mo_routes[{i}].node {r.node!r}" for i, r in enumerate(config.mo_routes)
           if r.node is not None and r.node not in directory.by_code]
    if config.mo_default_node not in directory.by_code:
        bad.append(f"mo_default_node {config.mo_default_node!r}")
    if bad:
        raise ConfigError(f"{', '.join(bad)} name(s) no node of config/nodes.yaml", file="smpp")


class SmppAdapter:
    def __init__(self, settings: Settings, config: SmppConfig, *, store: Store | None = None,
                 directory: Directory | None = None) -> None:
        self.settings = settings
        self.config = config
        self.directory = directory or load_directory(settings)
        check_against(config, self.directory)
        passwords = {s.name: s.resolved_password() for s in config.smscs if s.enabled}
        self._own_store = store is None
        self.store = store or open_store(settings.store_url)
        self.ledger = Ledger(self.store)
        self.hop_journal = HopJournal(self.store, name="smpp")
        self.bus = Bus(settings, queue=QUEUE, prefetch=config.prefetch,
                       on_delivery=lambda msg, tag: self.engine.deliver(msg, tag),
                       on_confirmed=lambda keys: self.engine.confirmed(keys))
        self.engine = Engine(config, self.ledger, self.directory, self.bus, passwords=passwords,
                             retry_tiers=[t.name for t in settings.retry_tiers], hop_journal=self.hop_journal)
        self.health_path = Path(settings.data_dir) / HEALTH_FILE
        self._stop = threading.Event()
        self._metrics_server = None
        self._threads: list[threading.Thread] = []

    def health(self) -> dict:
        """Bound or not per SMSC, the broker connection, and the engine's counters."""
        h = self.engine.health()
        h["broker"] = dict(self.bus.health)
        return h

    def start(self) -> SmppAdapter:
        engine = threading.Thread(target=self.engine.run, name="smpp-engine", daemon=True)
        engine.start()
        self.engine.ready.wait(30)       # restored from the ledger before anything is consumed
        bus = threading.Thread(target=self.bus.run, name="smpp-bus", daemon=True)
        bus.start()
        self._threads = [engine, bus]
        if self.config.metrics_port:
            self._metrics_server = serve_collector(metrics.SmppCollector(self.health), self.config.metrics_port,
                                                  self.config.metrics_host)
        return self

    def wait_bound(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health()["bound"] and self.bus.health["consuming"]:
                return True
            time.sleep(0.02)
        return False

    def run(self) -> int:
        """Blocks until stop(); writes the health file every second."""
        self.start()
        while not self._stop.wait(1.0):
            if not all(t.is_alive() for t in self._threads):
                log.error("an SMPP adapter thread died (see the error above); stopping with exit code 1")
                return 1
            self.write_health()
        return 0

    def write_health(self) -> None:
        try:
            self.health_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.health_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "at": datetime.now(UTC).isoformat(), **self.health()},
                                      ensure_ascii=False, default=str), encoding="utf-8")
            tmp.replace(self.health_path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.health_path, exc)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop consuming, let in-flight submits be answered, commit, unbind, close."""
        self.bus.stop_consuming()
        self.engine.stop()
        self.engine.wait_stopped(timeout)
        time.sleep(0.2)          # the last acks are queued on the bus loop before it closes
        self.bus.stop()
        for t in self._threads:
            t.join(timeout)
        self._stop.set()
        self.health_path.unlink(missing_ok=True)
        self.hop_journal.close(5.0)
        self.engine.ledger.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._own_store:
            self.store.close()
