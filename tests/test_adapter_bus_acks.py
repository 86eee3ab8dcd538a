"""The adapter bus's ack bookkeeping (hub/adapter_bus.py `AckFloor`) against RabbitMQ's rules.

The fake channel applies acks the way RabbitMQ 3.10 does (rabbit_channel collect_acks): a
`multiple` ack must name a tag that is still unacked and takes every unacked tag up to it;
any other tag closes the channel with PRECONDITION_FAILED "unknown delivery tag". Engines
finish deliveries in any order; whatever the order, every delivery must be acked exactly
once and the channel must stay open.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.adapter_bus import AckFloor


class RabbitChannel:
    def __init__(self, n: int) -> None:
        self.unacked = list(range(1, n + 1))
        self.acked: list[int] = []
        self.is_open = True

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        if tag not in self.unacked:
            self.is_open = False
            raise AssertionError(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
        taken = [t for t in self.unacked if t <= tag] if multiple else [tag]
        self.unacked = [t for t in self.unacked if t not in taken]
        self.acked += taken


def finish(floor: AckFloor, ch: RabbitChannel, tags: list[int]) -> None:
    for tag, multiple in floor.done(tags):
        ch.basic_ack(tag, multiple=multiple)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_acks_in_any_order_and_grouping_ack_each_delivery_once(data):
    n = data.draw(st.integers(1, 40))
    order = data.draw(st.permutations(list(range(1, n + 1))))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, n - 1)), max_size=n)))
    rounds = [order[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True) if order[a:b]]
    ch, floor = RabbitChannel(n), AckFloor()
    for done in rounds:
        finish(floor, ch, done)
    assert ch.is_open
    assert sorted(ch.acked) == list(range(1, n + 1))


def test_the_case_seen_in_ci_a_single_ack_then_the_floor_reaching_it():
    ch, floor = RabbitChannel(22), AckFloor()
    finish(floor, ch, list(range(1, 20)))
    finish(floor, ch, [21])         # done before 20: acked singly
    finish(floor, ch, [20])         # the floor reaches 21, which is no longer unacked
    finish(floor, ch, [22])
    assert ch.is_open and sorted(ch.acked) == list(range(1, 23))


def test_a_tag_finished_twice_is_acked_once():
    ch, floor = RabbitChannel(3), AckFloor()
    finish(floor, ch, [2])
    finish(floor, ch, [2, 1])
    finish(floor, ch, [1, 3])
    assert ch.is_open and sorted(ch.acked) == [1, 2, 3]


def test_acks_of_an_older_channel_are_ignored():
    from hub.adapter_bus import Bus

    ch = RabbitChannel(3)
    bus = Bus.__new__(Bus)  # only the ack path, no connection
    bus._ch, bus._generation, bus._acks = ch, 1, AckFloor()
    bus._ack([(0, 1), (1, 1)])
    assert ch.acked == [1]
