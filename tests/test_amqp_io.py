"""Write coalescing on pika's plaintext transport (hub/amqp_io.py), against the real broker.

The same frames must reach RabbitMQ, in order, in fewer system calls; and the private pika
method replaced must still exist with the attributes the replacement uses, so a pika
upgrade that changes them fails here first.
"""

from __future__ import annotations

import inspect
import socket

import pika
from pika.adapters.utils import io_services_utils as io
from waiting import wait_until

from hub import amqp_io


class _CountingSocket:
    """Wraps the transport's socket to count send() calls."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sends = 0

    def send(self, data):
        self.sends += 1
        return self._sock.send(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _publish_and_read_back(settings, n: int) -> tuple[list[bytes], int]:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url_for_vhost()))
    transport = conn._impl._transport
    counter = _CountingSocket(transport._sock)
    transport._sock = counter
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    before = counter.sends
    for i in range(n):  # through the async channel: BlockingChannel would flush after every publish
        ch._impl.basic_publish("", q, f"message {i:05d} ".encode() * 20)
    conn.process_data_events(time_limit=0)
    wait_until(lambda: conn.process_data_events(time_limit=0.05)
               or ch.queue_declare(q, passive=True).method.message_count >= n, 10,
               description=f"{n} messages in the test queue")
    sends = counter.sends - before
    bodies = []
    for _ in range(n):
        _m, _p, body = ch.basic_get(q, auto_ack=True)
        bodies.append(body)
    conn.close()
    return bodies, sends


def test_coalesced_writes_deliver_every_frame_in_order_in_fewer_sends(settings, vhost):
    n = 300
    expected = [f"message {i:05d} ".encode() * 20 for i in range(n)]
    amqp_io.restore_pika_writes()
    try:
        bodies, plain_sends = _publish_and_read_back(settings, n)
        assert bodies == expected
        amqp_io.coalesce_writes()
        bodies, coalesced_sends = _publish_and_read_back(settings, n)
        assert bodies == expected
    finally:
        amqp_io.coalesce_writes()
    assert plain_sends >= 3 * n  # pika: a send per frame (method, header, body)
    assert coalesced_sends * 10 < plain_sends


def test_a_partial_send_keeps_the_unsent_tail_first():
    class Transport:
        _sigint_safe_send = staticmethod(lambda sock, data: 5)

        def __init__(self):
            import collections
            self._tx_buffers = collections.deque([b"abcdefgh", b"ijkl"])
            self._tx_buffered_byte_count = 12
            self._sock = None

    t = Transport()
    calls = []

    def send(sock, data):
        calls.append(bytes(data))
        if len(calls) == 1:
            return 5
        raise BlockingIOError  # the socket is full: pika waits for writability and calls again
    t._sigint_safe_send = send
    try:
        amqp_io._produce_coalesced(t)
    except BlockingIOError:
        pass
    assert calls[0] == b"abcdefghijkl"
    assert list(t._tx_buffers) == [b"fghijkl"]
    assert t._tx_buffered_byte_count == 7


def test_the_replaced_pika_method_still_has_the_shape_we_rely_on():
    base = io._AsyncTransportBase
    assert callable(base._produce)
    assert callable(base._sigint_safe_send)
    src = inspect.getsource(base._produce)
    for attr in ("_tx_buffers", "_tx_buffered_byte_count", "_sigint_safe_send", "_sock"):
        assert attr in src, f"pika's _produce no longer uses {attr}: re-check hub/amqp_io.py"
