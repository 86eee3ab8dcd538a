"""A hostile province against the hub, with plain pika and the credentials a node gets.

One hub for the whole module's probes (each one is a publish and a wait for the verdict), so
the module costs one vhost and one hub start. Every probe that once broke something says what
happened before the fix. The promise under test is docs/contract.md section 4: the sender gets a
hub.nack with a reason code, hub.dlq a record with the reason, and the hub keeps running.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pika
from waiting import wait_until

HUBNS = "{urn:cs-hub:hub:1}"


def notice(text: str = "测试", sender: str = "44") -> bytes:
    return (f'<Notice xmlns="urn:cs-hub:hub:1"><CompanyCode>{sender}</CompanyCode><To>11</To>'
            f"<Title>通知</Title><Text>{text}</Text></Notice>").encode()


def test_hostile_envelopes_are_refused_and_the_hub_survives(settings, applied_topology, connect):
    from running_hub import HubThread

    passwords = applied_topology[1]
    gd_user = settings.broker_user("node-44")
    gd = connect(gd_user, passwords[gd_user])
    ch = gd.channel()
    ch.confirm_delivery()
    bj_user = settings.broker_user("node-11")
    bj = connect(bj_user, passwords[bj_user]).channel()
    dlq = connect().channel()
    hub = HubThread(settings).start()
    try:
        def send(body: bytes | None = None, **props) -> None:
            p = {"message_id": str(uuid.uuid4()), "type": "notice.text", "user_id": gd_user,
                 "content_type": "application/xml", "delivery_mode": 2, **props}
            ch.basic_publish("hub.ingress", "notice.text", notice() if body is None else body,
                             pika.BasicProperties(**p))

        def next_in(channel, queue):
            box = []

            def one():
                m, p, b = channel.basic_get(queue, auto_ack=True)
                if m:
                    box.append((p, b))
                return bool(box)
            wait_until(one, 10, 0.02, f"a message arrives in {queue}")
            return box[0]

        def refused(expected_code: str, **props) -> ET.Element:
            send(**props)
            nprops, body = next_in(ch, "node.44")
            assert nprops.type == "hub.nack" and nprops.correlation_id == props["message_id"]
            assert nprops.headers["x-hub-reason-code"] == expected_code
            dprops, _ = next_in(dlq, "hub.dlq")
            assert dprops.headers["x-hub-reason-code"] == expected_code
            return ET.fromstring(body.decode(nprops.content_encoding))

        # Before: "nack." + a 255-byte id is 260 bytes, which pika cannot encode as a short
        # string: the hop's I/O loop died, and the redelivered message killed it again.
        refused("MISSING_PROPERTY", message_id="a" * 255)
        # 85 characters is a valid id (255 bytes in UTF-8); refused later for its body, same story.
        refused("XSD_INVALID", message_id="中" * 85, body=notice("x").replace(b"<Title>", b"<Titel>")
                .replace(b"</Title>", b"</Titel>"))
        # Before: the control character went into the nack's XML, lxml raised inside pika's
        # callback, the connection dropped, and the redelivery did it again (reconnect loop).
        nack = refused("MISSING_PROPERTY", message_id="ab\x01c")
        assert nack.find(f"{HUBNS}MessageId").text == "ab\ufffdc"
        # Before: an id or type that is not UTF-8 (pika hands it over as bytes) failed with an
        # AttributeError, was retried as PROCESSING_ERROR and ended as RETRY_EXHAUSTED (or, for
        # the type, broke the nack's XML). Now refused at once for what it is.
        refused("MISSING_PROPERTY", message_id=b"ab\xff\xfe")
        refused("UNKNOWN_TYPE", message_id="bad-type-1", type=b"notice.te\xffxt")
        # Before: delivered, decoded by lxml through the second declaration.
        refused("XML_MALFORMED", message_id="two-decls-1",
                body=b"<?xml version='1.0' encoding='utf-8'?><?xml version='1.0' encoding='gbk'?>" + notice())

        # Checked, fine: hub headers from a node do not skip the dedupe of a delivered id.
        send(message_id="once-1")
        props, _ = next_in(bj, "node.11")
        assert props.message_id == "once-1" and props.headers["x-hub-source"] == "44"
        send(message_id="once-1", headers={"x-hub-replay": "forged", "x-hub-attempt": 9, "x-retry-tier": "1s"})
        wait_until(lambda: hub.proc.worker.stats["duplicate"] >= 1, 10, 0.02, "the re-send is a duplicate")

        # Still healthy: a good message after all of that arrives, and the hop never reconnected.
        send(message_id="after-1")
        props, body = next_in(bj, "node.11")
        assert props.message_id == "after-1"
        assert hub.proc.worker.stats["reconnects"] == 0 and hub.thread.is_alive()
    finally:
        hub.stop()


def test_a_node_cannot_forge_the_dead_letter_record_of_its_expired_message(settings, applied_topology, connect):
    """No hub runs, so the publishes expire in hub.in and the broker itself dead-letters them,
    headers and all. Before: the console showed the forged source and reason, and a replay went
    to hub.deliver/node.11 (straight into province 11's queue, no checks) as node 11."""
    from hub.console.deadletters import DeadLetter, replay_properties

    passwords = applied_topology[1]
    gd_user, bj_user = settings.broker_user("node-44"), settings.broker_user("node-11")
    ch = connect(gd_user, passwords[gd_user]).channel()
    ch.confirm_delivery()
    forged = {"x-hub-reason-code": "FAKE", "x-hub-source": "11", "x-hub-origin-user": bj_user,
              "x-hub-original-exchange": "hub.deliver", "x-hub-original-routing-key": "node.11"}
    for mid, user in (("forge-1", gd_user), ("forge-2", None)):
        ch.basic_publish("hub.ingress", "notice.text", notice(sender="11"), pika.BasicProperties(
            message_id=mid, type="notice.text", expiration="1", user_id=user, headers=forged))
    admin = connect().channel()
    got = []

    def both():
        m, p, b = admin.basic_get("hub.dlq", auto_ack=True)
        if m:
            got.append((p, b))
        return len(got) == 2
    wait_until(both, 10, 0.02, "both expired publishes reach hub.dlq")
    for props, body in got:
        letter = DeadLetter.from_delivery(props, body).summary()
        assert (letter["source"], letter["reason_code"], letter["target"]) == (None, "broker:expired",
                                                                                "hub.deliver/hub.in")
        replayed = replay_properties(props, "r-1").headers
        assert not set(replayed) & set(forged) - {"x-hub-origin-user"}
        # The replay enters the hop as whoever the broker vouched for: node 44, or nobody.
        assert replayed.get("x-hub-origin-user") == (gd_user if props.message_id == "forge-1" else None)
