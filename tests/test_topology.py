"""Topology as code against the real RabbitMQ: apply, export/import, diff, and the paths it promises.

Each broker test runs in its own vhost (fixtures in conftest.py); nothing here sleeps and hopes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pika
import pika.exceptions
import pytest
from waiting import wait_until

from hub.broker_admin import BrokerAdmin, password_hash, password_matches
from hub.nodes import Directory, Limits, Names, Node, NodeKind
from hub.settings import Settings
from hub.topology import (
    DELIVER,
    DLQ,
    HUB_IN,
    HUB_USER,
    INGRESS,
    RETRY,
    RETRY_TIER_HEADER,
    apply,
    build_topology,
    diff,
    export_definitions,
    load_or_create_passwords,
    password_env_var,
    retry_queue,
)
from protocols.errors import ConfigError, TransientFailure

# -- helpers -----------------------------------------------------------------------------------


def depth(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def take(ch, queue: str):
    """basic_get one message (acked) as (method, properties, body), or None when the queue is empty."""
    method, props, body = ch.basic_get(queue, auto_ack=True)
    return None if method is None else (method, props, body)


def consume_one(conn, ch, queue: str, *, ack: bool = True, timeout: float = 5.0):
    """Consume from `queue` until one message arrives; returns (method, properties, body)."""
    got = []
    ch.basic_consume(queue, lambda _ch, m, p, b: got.append((m, p, b)), auto_ack=False)

    def arrived():
        conn.process_data_events(time_limit=0.05)
        return got

    wait_until(arrived, timeout, interval=0, description=f"a message is consumed from {queue}")
    method, props, body = got[0]
    if ack:
        ch.basic_ack(method.delivery_tag)
    return method, props, body


def pure_settings(**kw) -> Settings:
    return Settings(vhost="pure", retry_tiers=[{"name": "1s", "delay_ms": 1000}, {"name": "9s", "delay_ms": 9000}],
                    delivery_limit=7, **kw)


def small_directory() -> Directory:
    return Directory([
        Node(code="00", kind=NodeKind.hq, names=Names(zh="总部", en="HQ")),
        Node(code="44", kind=NodeKind.province, names=Names(zh="广东", en="Guangdong"),
             limits=Limits(max_queue_length=5000)),
    ])


# -- pure ----------------------------------------------------------------------------------------


def test_build_topology_names_arguments_and_permissions():
    topo = build_topology(pure_settings(), small_directory(), adapters=["sms"])
    assert topo.vhost == "pure"
    assert [q.name for q in topo.queues] == [HUB_IN, "node.00", "node.44", "adapter.sms",
                                             "hub.retry.1s", "hub.retry.9s", DLQ]
    consumer = {"x-queue-type": "quorum", "x-delivery-limit": 7, "x-dead-letter-exchange": "hub.dlx",
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    assert topo.queue(HUB_IN).arguments == consumer
    assert topo.queue("node.00").arguments == consumer
    assert topo.queue("node.44").arguments == {**consumer, "x-max-length": 5000}
    assert topo.queue("hub.retry.1s").arguments == {
        "x-queue-type": "quorum", "x-message-ttl": 1000, "x-dead-letter-exchange": "hub.requeue",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    assert topo.queue(DLQ).arguments == {"x-queue-type": "quorum"}
    assert {x.name: x.arguments for x in topo.exchanges}[DELIVER] == {"alternate-exchange": "hub.unroutable"}

    keys = {(b.source, b.destination, b.routing_key) for b in topo.bindings}
    for q in (HUB_IN, "node.00", "node.44", "adapter.sms"):
        assert (DELIVER, q, q) in keys and ("hub.requeue", q, q) in keys
    assert (INGRESS, HUB_IN, "#") in keys
    assert ("hub.unroutable", DLQ, "") in keys and ("hub.dlx", DLQ, "") in keys
    retry = [b for b in topo.bindings if b.source == RETRY]
    assert [b.arguments[RETRY_TIER_HEADER] for b in retry] == ["1s", "9s"]

    perms = {p.user: p for p in topo.permissions}
    assert (perms["node-44"].configure, perms["node-44"].write, perms["node-44"].read) == (
        "^$", r"^hub\.ingress$", r"^node\.44$")
    assert (perms[HUB_USER].configure, perms[HUB_USER].write, perms[HUB_USER].read) == (".*", ".*", ".*")
    assert {u.name: u.tags for u in topo.users} == {HUB_USER: ["management"], "node-00": [], "node-44": []}
    assert build_topology(pure_settings(), small_directory(), adapters=["sms"]) == topo


def test_bad_adapter_name_is_a_config_error():
    with pytest.raises(ConfigError, match="'SMS gateway'"):
        build_topology(pure_settings(), small_directory(), adapters=["SMS gateway"])


def test_password_hash_is_rabbitmq_sha256_format():
    stored = password_hash("s3cret", salt=b"\x01\x02\x03\x04")
    raw = base64.b64decode(stored)
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04" + b"s3cret").digest()
    assert password_matches("s3cret", password_hash("s3cret"))
    assert not password_matches("other", stored)


def test_passwords_are_created_once_with_mode_0600_and_env_wins(tmp_path: Path, monkeypatch):
    s = pure_settings(data_dir=tmp_path)
    monkeypatch.delenv(password_env_var("node-44"), raising=False)
    monkeypatch.setenv(password_env_var("cs-hub"), "from-env")
    assert password_env_var("cs-hub") == "HUB_PASSWORD_CS_HUB"
    first = load_or_create_passwords(s, ["node-44", "cs-hub"])
    assert first["cs-hub"] == "from-env"
    path = tmp_path / "secrets" / "node-44.password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "secrets" / "cs-hub.password").exists()
    assert load_or_create_passwords(s, ["node-44"]) == {"node-44": first["node-44"]}


# -- against the broker --------------------------------------------------------------------------


def test_apply_creates_everything_and_a_second_apply_changes_nothing(applied_topology, settings, broker_admin):
    topology, passwords = applied_topology
    assert diff(topology, settings) == []
    defs = broker_admin.get_definitions(settings.vhost)
    assert {q["name"] for q in defs["queues"]} == {q.name for q in topology.queues}
    assert len(defs["queues"]) == 1 + 35 + 3 + 1  # hub.in, 35 nodes (33 + systems WAP, NMS), 3 test tiers, hub.dlq
    hashes = {u: broker_admin.get_user(u)["password_hash"] for u in topology.user_names}

    assert apply(topology, settings, passwords) == []

    assert diff(topology, settings) == []
    assert broker_admin.get_definitions(settings.vhost) == defs
    assert {u: broker_admin.get_user(u)["password_hash"] for u in topology.user_names} == hashes


def test_export_is_accepted_by_rabbitmqctl_import_definitions(applied_topology, settings, new_vhost):
    topology, passwords = applied_topology
    target = new_vhost(create=False)
    doc = json.loads(json.dumps(export_definitions(topology, passwords)).replace(
        json.dumps(settings.vhost), json.dumps(target)))
    assert {v["name"] for v in doc["vhosts"]} == {target}

    fd, path = tempfile.mkstemp(prefix="hub-definitions-", suffix=".json", dir="/tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.chmod(path, 0o644)  # Debian's rabbitmqctl runs as the rabbitmq user
        run = subprocess.run(["rabbitmqctl", "import_definitions", path], capture_output=True, text=True,
                             timeout=120)
    finally:
        os.unlink(path)
    assert run.returncode == 0, f"rabbitmqctl import_definitions failed:\n{run.stdout}\n{run.stderr}"

    imported = topology.model_copy(update={"vhost": target})
    assert diff(imported, settings.model_copy(update={"vhost": target})) == []


def test_node_user_publishes_to_ingress_and_consumes_its_own_queue(applied_topology, connect, settings):
    _, passwords = applied_topology
    node = connect(settings.broker_user("node-11"), passwords[settings.broker_user("node-11")])
    nch = node.channel()
    nch.confirm_delivery()
    nch.basic_publish(INGRESS, "WorkOrder", b"<order/>", pika.BasicProperties(user_id=settings.broker_user("node-11")), mandatory=True)

    hub = connect().channel()
    got = wait_until(lambda: take(hub, HUB_IN), description="the node's message reaches hub.in")
    assert got[0].routing_key == "WorkOrder" and got[1].user_id == settings.broker_user("node-11") and got[2] == b"<order/>"

    hub.confirm_delivery()
    hub.basic_publish(DELIVER, "node.11", b"<for-11/>", mandatory=True)
    _, _, body = consume_one(node, nch, "node.11")
    assert body == b"<for-11/>"


def test_node_user_may_not_read_another_node_or_publish_deliveries(applied_topology, connect, settings):
    _, passwords = applied_topology
    node = connect(settings.broker_user("node-11"), passwords[settings.broker_user("node-11")])
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        node.channel().basic_consume("node.12", lambda *a: None)
    assert refused.value.reply_code == 403 and "ACCESS_REFUSED" in refused.value.reply_text

    ch = node.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        ch.basic_publish(DELIVER, "node.12", b"forged delivery")
    assert refused.value.reply_code == 403 and "ACCESS_REFUSED" in refused.value.reply_text


def test_forged_user_id_closes_the_channel(applied_topology, connect, settings):
    _, passwords = applied_topology
    ch = connect(settings.broker_user("node-11"), passwords[settings.broker_user("node-11")]).channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        ch.basic_publish(INGRESS, "WorkOrder", b"<order/>", pika.BasicProperties(user_id=settings.broker_user("node-12")))
    assert refused.value.reply_code == 406 and "PRECONDITION_FAILED" in refused.value.reply_text


def test_expired_retry_goes_back_to_the_queue_of_its_routing_key(applied_topology, settings, connect):
    shortest, *longer = settings.retry_tiers
    ch = connect().channel()
    ch.confirm_delivery()
    ch.basic_publish(RETRY, "node.11", b"<again/>",
                     pika.BasicProperties(headers={RETRY_TIER_HEADER: shortest.name}), mandatory=True)
    # only the named tier holds it (a plain x-match=all would copy it into every tier)
    assert [depth(ch, retry_queue(t.name)) for t in longer] == [0] * len(longer)

    got = wait_until(lambda: take(ch, "node.11"), timeout=5, description="the retried message is back in node.11")
    assert got[2] == b"<again/>"
    death = got[1].headers["x-death"][0]
    assert (death["queue"], death["reason"]) == (retry_queue(shortest.name), "expired")
    assert depth(ch, HUB_IN) == 0 and depth(ch, DLQ) == 0


def test_message_rejected_by_a_node_is_dead_lettered(applied_topology, connect, settings):
    _, passwords = applied_topology
    hub = connect().channel()
    hub.confirm_delivery()
    hub.basic_publish(DELIVER, "node.11", b"<bad/>", mandatory=True)

    node = connect(settings.broker_user("node-11"), passwords[settings.broker_user("node-11")])
    nch = node.channel()
    method, _, _ = consume_one(node, nch, "node.11", ack=False)
    nch.basic_reject(method.delivery_tag, requeue=False)

    got = wait_until(lambda: take(hub, DLQ), description="the rejected message reaches hub.dlq")
    assert got[2] == b"<bad/>"
    death = got[1].headers["x-death"][0]
    assert (death["queue"], death["reason"]) == ("node.11", "rejected")


def test_unroutable_delivery_lands_in_the_dead_letter_queue(applied_topology, connect):
    ch = connect().channel()
    ch.confirm_delivery()
    ch.basic_publish(DELIVER, "node.nowhere", b"<lost/>", mandatory=True)
    got = wait_until(lambda: take(ch, DLQ), description="the unroutable message reaches hub.dlq")
    assert (got[0].exchange, got[0].routing_key, got[2]) == (DELIVER, "node.nowhere", b"<lost/>")


def test_diff_reports_a_queue_deleted_behind_the_hubs_back(applied_topology, settings, connect):
    topology, passwords = applied_topology
    connect().channel().queue_delete("node.12")
    drift = diff(topology, settings)
    assert "queue 'node.12' is missing" in drift
    assert any("binding hub.deliver -> queue node.12" in line for line in drift)

    assert apply(topology, settings, passwords) == []  # a missing queue is safe to re-create
    assert diff(topology, settings) == []


def test_apply_reports_a_queue_with_other_arguments_instead_of_crashing(applied_topology, settings, connect):
    topology, passwords = applied_topology
    ch = connect().channel()
    ch.queue_delete("node.13")
    ch.queue_declare("node.13", durable=True, arguments={**topology.queue("node.13").arguments,
                                                         "x-delivery-limit": 3})
    drift = apply(topology, settings, passwords)
    assert len(drift) == 1, drift
    assert "queue 'node.13'" in drift[0] and "x-delivery-limit=3" in drift[0]
    assert f"wants {settings.delivery_limit}" in drift[0]
    assert diff(topology, settings) == [f"queue 'node.13' has argument x-delivery-limit=3 on the broker, "
                                        f"the topology wants {settings.delivery_limit}"]


def test_apply_creates_a_missing_vhost(settings, directory, new_vhost, monkeypatch):
    fresh = settings.model_copy(update={"vhost": new_vhost(create=False)})
    topology = build_topology(fresh, directory)
    for user in topology.user_names:
        monkeypatch.setenv(password_env_var(user), f"test-password-{user}")
    assert apply(topology, fresh, load_or_create_passwords(fresh, topology.user_names)) == []
    assert diff(topology, fresh) == []


def test_list_queues_reports_depth_of_every_queue(applied_topology, settings, broker_admin, connect):
    topology, _ = applied_topology
    ch = connect().channel()
    ch.confirm_delivery()
    ch.basic_publish(DELIVER, "node.11", b"<x/>", mandatory=True)
    assert {f.name for f in broker_admin.list_queues(settings.vhost)} == {q.name for q in topology.queues}

    def node_11_depth():
        figures = {f.name: f for f in broker_admin.list_queues(settings.vhost)}
        return figures["node.11"].messages == 1 and figures["node.11"]

    # the management plugin samples queue figures every few seconds
    figures = wait_until(node_11_depth, timeout=15, interval=0.5, description="node.11 shows 1 message")
    assert (figures.type, figures.consumers, figures.messages_unacknowledged) == ("quorum", 0, 0)


def test_management_errors_are_sentences(settings):
    with BrokerAdmin(settings.management_url, "guest", "wrong-password") as admin:
        with pytest.raises(ConfigError, match="refused user 'guest'.*management_password"):
            admin.list_vhosts()
    with BrokerAdmin("http://127.0.0.1:9", "guest", "guest", timeout=2) as admin:
        with pytest.raises(TransientFailure, match=r"Cannot reach .*127\.0\.0\.1:9"):
            admin.overview()


def test_drop_prefixed_users_only_touches_its_own_prefix(settings, broker_admin):
    from hub.topology import drop_prefixed_users

    mine, other = settings.broker_user("bench-x"), "other-network-user-kept"
    broker_admin.put_user(mine, "pw")
    broker_admin.put_user(other, "pw")
    try:
        assert drop_prefixed_users(broker_admin, settings) >= 1
        names = {u["name"] for u in broker_admin.list_users()}
        assert mine not in names and other in names
        with pytest.raises(ValueError, match="user_prefix"):
            drop_prefixed_users(broker_admin, settings.model_copy(update={"user_prefix": ""}))
    finally:
        broker_admin.delete_user(other)
