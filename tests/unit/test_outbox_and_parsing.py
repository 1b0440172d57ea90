"""The pure parts of the bus: a slow client's queue, and reading request frames."""

from __future__ import annotations

import json

import pytest

from kfd.daemon.outbox import ITEM_OVERHEAD, Delivery, Kind, Outbox, Subscriptions, kind_of
from kfd.daemon.requests import Refusal, parse, peek_id, too_deep
from kfd.protocol import MAX_REQUEST_BYTES, SessionGet

TOPIC = b"s" * 20


def marker(topic: bytes, first: int, last: int, deltas: bool) -> bytes:
    return json.dumps(
        {"type": "events.dropped", "first": first, "last": last, "deltas": deltas}
    ).encode()


def delivery(seq: int, kind: Kind, size: int = 1000, topic: bytes = TOPIC) -> Delivery:
    return Delivery(topic, b"x" * size, seq, kind)


def test_event_kinds_follow_the_type_names() -> None:
    assert kind_of("message.delta", True) is Kind.DELTA
    assert kind_of("turn.completed", False) is Kind.LIFECYCLE
    assert kind_of("approval.requested", False) is Kind.LIFECYCLE
    assert kind_of("session.status", False) is Kind.LIFECYCLE
    assert kind_of("tool.completed", False) is Kind.EVENT


def test_a_slow_clients_queue_sheds_deltas_first_and_never_lifecycle_events() -> None:
    box = Outbox(limit=20 * (1000 + ITEM_OVERHEAD), make_marker=marker)
    seq = 0
    for _ in range(30):
        seq += 1
        box.add(delivery(seq, Kind.EVENT))
        box.add(delivery(seq, Kind.DELTA))
    seq += 1
    box.add(delivery(seq, Kind.LIFECYCLE))  # turn.completed, say
    assert box.size <= box.limit
    kinds = [item.kind for item in box.items]
    assert Kind.LIFECYCLE in kinds
    assert Kind.DELTA not in kinds[-5:] or Kind.EVENT in kinds  # deltas went before events
    markers = [json.loads(item.body) for item in box.items if item.kind is Kind.MARKER]
    assert markers and any(m["deltas"] for m in markers)
    assert box.shed_events > 0


def test_lifecycle_events_survive_while_other_events_are_shed() -> None:
    box = Outbox(limit=10 * (1000 + ITEM_OVERHEAD), make_marker=marker)
    for seq in range(1, 101):
        box.add(delivery(seq, Kind.LIFECYCLE if seq % 10 == 0 else Kind.EVENT))
    lifecycle = [item.seq for item in box.items if item.kind is Kind.LIFECYCLE]
    assert lifecycle == list(range(10, 101, 10))
    shed = [json.loads(item.body) for item in box.items if item.kind is Kind.MARKER]
    assert shed and shed[0]["first"] == 1 and not shed[0]["deltas"]


def test_the_queue_is_bounded_even_by_lifecycle_events_alone() -> None:
    box = Outbox(limit=10 * (1000 + ITEM_OVERHEAD), make_marker=marker)
    for seq in range(1, 1000):
        box.add(delivery(seq, Kind.LIFECYCLE))
    assert box.peak <= 4 * box.limit + 1000 + ITEM_OVERHEAD


def test_take_and_put_back_keep_the_order_and_the_size() -> None:
    box = Outbox(limit=10**9, make_marker=marker)
    for seq in range(1, 11):
        box.add(delivery(seq, Kind.EVENT))
    size = box.size
    batch = box.take(3500)
    assert [item.seq for item in batch] == [1, 2, 3]
    box.put_back(batch)
    assert box.size == size
    assert [item.seq for item in box.items] == list(range(1, 11))
    assert [item.seq for item in box.take(10)] == [1]  # at least one, whatever its size


def test_subscriptions_match_exact_topics_and_prefixes_with_counts() -> None:
    subs = Subscriptions(exact_length=20)
    subs.subscribe(b"a", TOPIC)
    subs.subscribe(b"a", TOPIC)
    subs.subscribe(b"b", b"s")
    assert subs.clients(TOPIC) == {b"a", b"b"}
    assert subs.watchers(TOPIC) == 1
    assert subs.unsubscribe(b"a", TOPIC)
    assert subs.clients(TOPIC) == {b"a", b"b"}  # one of two subscriptions is left
    assert subs.forget(b"a") == [TOPIC]
    assert subs.clients(TOPIC) == {b"b"}
    assert not subs.unsubscribe(b"a", TOPIC)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id": "7", "method": "x"}', "7"),
        (b'{"method": "x", "id": "a\\"b"}', 'a"b'),
        (b"garbage", ""),
        (b'{"id": 7}', ""),
        (b'{"id": "' + b"x" * 500 + b'"}', ""),
    ],
)
def test_the_id_is_read_from_any_frame_that_has_one(body: bytes, expected: str) -> None:
    assert peek_id(body) == expected


def test_depth_counts_structure_not_brackets_in_strings() -> None:
    inside_strings = json.dumps({"id": "1", "text": "[" * 10_000}).encode()
    assert not too_deep(inside_strings)
    assert too_deep(b"[" * 40 + b"]" * 40)
    assert not too_deep(b"[" * 20 + b"]" * 20)
    assert too_deep(b'{"a": "\\"", "b": ' + b"[" * 33 + b"]" * 33 + b"}")


def test_parse_gives_a_request_or_a_refusal_with_the_id() -> None:
    assert parse(b'{"id": "1", "method": "session.get", "session": "s"}') == SessionGet(
        id="1", session="s"
    )
    refused = parse(b'{"id": "2", "method": "session.get"}')
    assert isinstance(refused, Refusal) and refused.request_id == "2"
    assert refused.code == "bad_request" and "session" in refused.message
    big = parse(b'{"id": "3", "x": "' + b"y" * MAX_REQUEST_BYTES + b'"}')
    assert isinstance(big, Refusal) and (big.request_id, big.code) == ("3", "too_large")
