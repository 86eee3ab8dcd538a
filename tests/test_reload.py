"""Reload without restart, against the real broker: the configuration changes under a stream of
messages, a broken change is refused with its lint message, and nothing is lost or doubled.

The hub watches copies of config/ and routes/ in tmp_path. A publisher thread sends 5,000
notices from Guangdong (44) to Beijing (11); it pauses at three gates until the main thread has
made each change and seen the hub take it (or refuse it), so which configuration version may
route which message is known exactly, without sleeping and hoping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pika
from running_hub import HubThread, notice, settings_file
from waiting import wait_until

from hub.configuration import load_config
from hub.settings import load_settings
from hub.store import open_store

REPO = Path(__file__).resolve().parents[1]
N = 5_000
# (node.11 depth that triggers a change, index at which the publisher waits for that change)
CHANGES = [(500, 1_250), (1_500, 2_250), (2_500, 3_250)]


def replace_file(path: Path, old: str, new: str) -> None:
    """Edit a watched file atomically (the watcher never reads half a file)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text.replace(old, new, 1), encoding="utf-8")
    os.replace(tmp, path)


def queue_depth(settings, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


class Publisher(threading.Thread):
    """Publishes N notices as node 44 with confirms; waits at each gate until it is opened."""

    def __init__(self, settings, password: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.password = settings, password
        self.gates = {at: threading.Event() for _, at in CHANGES}
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            user = self.settings.broker_user("node-44")
            conn = pika.BlockingConnection(pika.URLParameters(self.settings.amqp_url_for_vhost(user, self.password)))
            ch = conn.channel()
            ch.confirm_delivery()
            for i in range(N):
                if i in self.gates and not self.gates[i].wait(60):
                    raise TimeoutError(f"gate {i} was never opened")
                ch.basic_publish("hub.ingress", "notice.text", notice("44", "11", f"第{i}条"), pika.BasicProperties(
                    message_id=f"rl-{i}", type="notice.text", user_id=user, delivery_mode=2,
                    content_type="application/xml", content_encoding="utf-8"))
                self.published = i + 1
            conn.close()
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def test_reload_while_messages_flow(settings, applied_topology, tmp_path):
    _, passwords = applied_topology
    config_dir, routes_dir = tmp_path / "config", tmp_path / "routes"
    shutil.copytree(REPO / "config", config_dir)
    shutil.copytree(REPO / "routes", routes_dir)
    s = settings.model_copy(update={"config_dir": config_dir, "routes_dir": routes_dir})
    notices = routes_dir / "notices.yaml"
    v0 = load_config(config_dir, routes_dir).version
    hub = HubThread(s, watch=True).start()
    publisher = Publisher(s, passwords[s.broker_user("node-44")])
    versions = [v0]
    try:
        assert hub.proc.pipeline.table.version == v0
        publisher.start()

        def when_flowing(depth: int) -> None:
            wait_until(lambda: publisher.error or queue_depth(s, "node.11") >= depth, 60, 0.05,
                       f"{depth} messages reach node.11")
            assert publisher.error is None, publisher.error

        def took(version: str) -> bool:
            return hub.proc.worker.pipeline.table.version == version

        # 1. a valid change: the route gets its own retry policy
        when_flowing(CHANGES[0][0])
        replace_file(notices, "      - resolve: notice_recipient\n",
                     "      - resolve: notice_recipient\n    retry: {max_attempts: 3}\n")
        versions.append(load_config(config_dir, routes_dir).version)
        wait_until(lambda: took(versions[1]), 20, 0.05, "the hub routes with the first change")
        assert hub.proc.last_reload_error is None
        publisher.gates[CHANGES[0][1]].set()

        # 2. a broken change: refused with the lint message, the running configuration stays
        when_flowing(CHANGES[1][0])
        replace_file(notices, "resolve: notice_recipient", "resolve: notice_recipent")
        line = notices.read_text(encoding="utf-8").splitlines().index("      - resolve: notice_recipent") + 1
        wait_until(lambda: hub.proc.last_reload_error, 20, 0.05, "the hub refuses the broken change")
        error = hub.proc.last_reload_error
        assert f"{notices}:{line}:18: route notice: unknown resolver 'notice_recipent'" in error, error
        assert "did you mean 'notice_recipient'?" in error
        assert took(versions[1]) and hub.proc.pipeline.table.version == versions[1]
        publisher.gates[CHANGES[1][1]].set()

        # 3. a valid change to both folders: a new city node, and the typo fixed with another retry policy
        when_flowing(CHANGES[2][0])
        replace_file(config_dir / "nodes.yaml", '  - code: "45"\n',
                     '  - code: "4401"\n    kind: city\n    parent: "44"\n    names: {zh: 广州, en: Guangzhou}\n'
                     '    encoding: gbk\n  - code: "45"\n')
        replace_file(notices, "resolve: notice_recipent\n    retry: {max_attempts: 3}",
                     "resolve: notice_recipient\n    retry: {max_attempts: 4}")
        versions.append(load_config(config_dir, routes_dir).version)
        assert len(set(versions)) == 3
        wait_until(lambda: took(versions[2]), 20, 0.05, "the hub routes with the third change")
        assert hub.proc.last_reload_error is None
        assert "4401" in hub.proc.pipeline.cfg.directory.by_code
        publisher.gates[CHANGES[2][1]].set()

        publisher.join(120)
        assert not publisher.is_alive() and publisher.error is None, publisher.error
        assert publisher.published == N

        # every message exactly once at the receiving node
        conn = pika.BlockingConnection(pika.URLParameters(s.amqp_url_for_vhost()))
        ch = conn.channel()
        ids: list[str] = []

        def collect() -> bool:
            while True:
                method, props, _ = ch.basic_get("node.11", auto_ack=True)
                if method is None:
                    return len(set(ids)) >= N
                ids.append(props.message_id)
        wait_until(collect, 120, 0.05, f"{N} messages reach node.11")
        wait_until(lambda: ch.queue_declare("hub.in", passive=True).method.message_count == 0, 30,
                   description="hub.in is drained")
        collect()
        conn.close()
        assert len(ids) == N, f"{len(ids) - len(set(ids))} messages were delivered twice"
        assert set(ids) == {f"rl-{i}" for i in range(N)}
        assert queue_depth(s, "hub.dlq") == 0

        # the journal says which configuration routed each message
        store = open_store(s.store_url)
        try:
            wait_until(lambda: store.count_by_status().get("delivered", 0) >= N, 30,
                       description="every message is journaled")
            routed_by = [store.get(f"rl-{i}").config_version for i in range(N)]
        finally:
            store.close()
    finally:
        for gate in publisher.gates.values():
            gate.set()
        hub.stop()

    v0, v1, v3 = versions
    assert set(routed_by) <= {v0, v1, v3}
    order = [versions.index(v) for v in routed_by]
    assert order == sorted(order), "a message was routed by an older configuration than one before it"
    assert set(routed_by[:CHANGES[0][0]]) == {v0}           # delivered before the first change was written
    assert set(routed_by[CHANGES[0][1]:CHANGES[2][0]]) == {v1}  # published after it took, delivered before change 3
    assert set(routed_by[CHANGES[2][1]:]) == {v3}           # published after the third change took
    assert len(set(routed_by)) == 3


def test_run_refuses_an_invalid_route_file_naming_file_and_line(tmp_path):
    routes_dir = tmp_path / "routes"
    shutil.copytree(REPO / "routes", routes_dir)
    replace_file(routes_dir / "notices.yaml", "      - resolve: notice_recipient\n",
                 "      - resolve: notice_recipient\n        colour: red\n")
    settings = load_settings(REPO / "config" / "hub.yaml", config_dir=REPO / "config", routes_dir=routes_dir,
                             data_dir=tmp_path / "var", store_url=f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    env = dict(os.environ, HUB_SETTINGS=str(settings_file(settings, tmp_path)))
    done = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--no-watch"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "configuration refused" in done.stderr
    assert (f"{routes_dir / 'notices.yaml'}:11:9: unknown key 'colour'; valid keys here: node, group, adapter, "
            "resolve, sender, map, type") in done.stderr
