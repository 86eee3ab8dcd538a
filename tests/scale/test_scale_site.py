"""HQ and a province, each with its own RabbitMQ, linked by the shovels `hub topology link` generates.

The province broker is a second node started by the fixture (tests/scale/conftest.py). The
link is cut twice while messages flow: the uplink shovel is restarted on the province node
(it reconnects and re-sends what HQ had not confirmed), and it is deleted and re-created
(messages wait in the province's site.uplink meanwhile).
Node 11 at HQ gets every message exactly once; the re-sent copies are the hub's duplicates.
"""

from __future__ import annotations

import json

import pika
import pytest
from running_hub import HubThread, notice
from test_scale_workers import Collector, queue_depth
from waiting import wait_until

from hub.sites import UPLINK_QUEUE, build_site_link, uplink_shovel


class Province:
    """The province CRM of node 44, talking only to its own broker."""

    def __init__(self, settings, site_node, password: str) -> None:
        self.user = settings.broker_user("node-44")
        self.params = pika.URLParameters(
            f"amqp://{self.user}:{password}@127.0.0.1:{site_node.port}/{settings.vhost}")
        self.conn = pika.BlockingConnection(self.params)
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def send(self, ids) -> None:
        for mid in ids:
            self.ch.basic_publish("hub.ingress", "notice.text", notice("44", "11", f"省内 {mid}"), pika.BasicProperties(
                message_id=mid, type="notice.text", user_id=self.user, delivery_mode=2,
                content_type="application/xml", content_encoding="utf-8"))

    def close(self) -> None:
        self.conn.close()


def site_depth(settings, site_node, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{site_node.port}/{settings.vhost}"))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


@pytest.mark.slow
def test_site_link_cut_and_restored_midstream_nothing_lost_nothing_duplicated(
        settings, applied_topology, directory, site_node, tmp_path):
    _, passwords = applied_topology
    node_user = settings.broker_user("node-44")
    defs = json.dumps(build_site_link(settings, directory, "44", hq_url="amqp://127.0.0.1:5672",
                                      local_url=site_node.url, node_password=passwords[node_user],
                                      link_password="test-site-link", reconnect_delay_s=1))
    site_node.import_definitions(defs)
    site_node.ctl("set_permissions", "-p", settings.vhost, "guest", ".*", ".*", ".*")   # the test's own look-ups
    hub = HubThread(settings).start()
    gd = Province(settings, site_node, passwords[node_user])
    bj = Collector(settings, "node.11")
    try:
        first = [f"site-a-{i}" for i in range(2_000)]
        gd.send(first[:1_000])
        wait_until(lambda: (bj.conn.process_data_events(time_limit=0.05), len(bj.ids))[1] >= 100, 60, 0,
                   "the first messages cross the link")
        site_node.ctl("restart_shovel", "-p", settings.vhost, uplink_shovel("44"))   # a flap mid-stream
        gd.send(first[1_000:])
        bj.until(set(first), 60)

        # A real outage: the uplink shovel is gone; the province keeps accepting messages.
        site_node.ctl("clear_parameter", "-p", settings.vhost, "shovel", uplink_shovel("44"))
        second = [f"site-b-{i}" for i in range(1_000)]
        gd.send(second)
        gd.send(first[:50])          # what a shovel re-sends after a cut: same message ids
        assert site_depth(settings, site_node, UPLINK_QUEUE) == 1_050, "messages wait at the province"
        bj.settle()
        assert not set(second) & set(bj.ids), "nothing crosses while the link is down"

        site_node.import_definitions(defs)                               # the link is back
        bj.until(set(first) | set(second), 60)
        wait_until(lambda: site_depth(settings, site_node, UPLINK_QUEUE) == 0, 30,
                   description="the province's queue drained")
        wait_until(lambda: queue_depth(settings, "hub.in") == 0, 30, description="hub.in drained")
        wait_until(lambda: hub.proc.worker.stats["duplicate"] >= 50, 10,
                   description="the re-sent ids counted as duplicates")
        bj.settle()
        got = bj.ids
        assert len(got) == len(set(got)) == 3_000, f"{len(got) - len(set(got))} duplicates reached node 11"
        assert queue_depth(settings, "hub.dlq") == 0

        # The downlink: HQ's node.44 queue is shovelled into the province's own node.44.
        hq = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
        ch = hq.channel()
        ch.confirm_delivery()
        for i in range(100):
            ch.basic_publish("hub.deliver", "node.44", b"<down/>", pika.BasicProperties(message_id=f"down-{i}",
                                                                                        delivery_mode=2))
        hq.close()
        wait_until(lambda: site_depth(settings, site_node, "node.44") == 100, 30,
                   description="HQ's messages for 44 reach the province broker")
    finally:
        bj.close()
        gd.close()
        hub.stop()
        site_node.ctl("delete_vhost", settings.vhost, check=False)
