"""A province implemented from docs/contract.md alone, with plain pika.

Nothing from the project is imported here: the vendor's view. The fixtures (from
conftest.py) only start the hub and hand over the broker URL, the vhost and the node's
credentials, as an operator would.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET

import pika
import pytest
from waiting import wait_until

HUBNS = "{urn:cs-hub:hub:1}"


@pytest.fixture
def hub_running(settings, applied_topology):
    from running_hub import HubThread  # test infrastructure, not the vendor's code

    h = HubThread(settings).start()
    yield settings, applied_topology[1]
    h.stop()


def _connect(settings, code, passwords):
    user = settings.broker_user(f"node-{code}")
    url = settings.amqp_url_for_vhost(user, passwords[user])
    return user, pika.BlockingConnection(pika.URLParameters(url))


def _next(ch, queue, timeout=10.0):
    def one():
        m, p, b = ch.basic_get(queue, auto_ack=False)
        if m:
            ch.basic_ack(m.delivery_tag)
            return p, b
    return wait_until(one, timeout, 0.02, f"a message arrives in {queue}")


def test_plain_pika_provinces_exchange_a_notice_and_get_a_nack(hub_running):
    settings, passwords = hub_running
    gd_user, gd = _connect(settings, "44", passwords)
    bj_user, bj = _connect(settings, "11", passwords)
    gch, bch = gd.channel(), bj.channel()
    gch.confirm_delivery()  # the contract: publish with confirms, persistent

    body = ('<?xml version="1.0" encoding="GBK"?>'
            '<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>44</CompanyCode><To>11</To>'
            '<Title>漫游投诉</Title><Text>北京用户在广东漫游,信号差。</Text></Notice>').encode("gbk")
    mid = str(uuid.uuid4())
    gch.basic_publish("hub.ingress", "notice.text", body, pika.BasicProperties(
        message_id=mid, type="notice.text", user_id=gd_user, content_type="application/xml",
        content_encoding="gbk", delivery_mode=2, timestamp=int(time.time())))

    props, got = _next(bch, "node.11")
    assert props.message_id == mid and props.type == "notice.text"
    assert props.content_encoding == "utf-8"
    assert ET.fromstring(got).find(f"{HUBNS}Text").text == "北京用户在广东漫游,信号差。"

    # A refused message comes back as hub.nack, correlated to the message id.
    bad = str(uuid.uuid4())
    gch.basic_publish("hub.ingress", "notice.text", b"<Notice", pika.BasicProperties(
        message_id=bad, type="notice.text", user_id=gd_user, content_type="application/xml",
        content_encoding="utf-8", delivery_mode=2))
    nprops, nack = _next(gch, "node.44")
    assert nprops.type == "hub.nack" and nprops.correlation_id == bad
    root = ET.fromstring(nack.decode(nprops.content_encoding))  # ElementTree cannot parse GBK bytes itself
    assert root.find(f"{HUBNS}ReasonCode").text == "XML_MALFORMED"
    assert root.find(f"{HUBNS}Reason[@lang='zh']").text

    # The broker itself refuses a forged user_id and a read of another province's queue.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as forged:
        ch = gd.channel()
        ch.confirm_delivery()
        ch.basic_publish("hub.ingress", "notice.text", body, pika.BasicProperties(user_id=bj_user))
    assert forged.value.reply_code == 406
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as other:
        gd.channel().basic_get("node.11")
    assert other.value.reply_code == 403
    gd.close()
    bj.close()
