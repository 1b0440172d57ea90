"""What waits to go to each client, and who wants which topic. Pure: no sockets.

The bus (`kfd.daemon.bus`) sends each client its events itself, one batch
per wake-up of the event loop, rather than leaving fan-out to a PUB socket
that drops silently when a client falls behind. When a client stops reading
(a REPL in a suspended terminal), its events wait here, within a bound; past
the bound they are shed in this order:

1. streamed pieces (``message.delta``, ``tool.output`` and other ephemeral
   events): the completed message and output follow in durable events, and
   the snapshot of a re-attach fills what a client missed;
2. other durable events: the client re-reads them from the log;
3. never lifecycle events (``turn.*``, ``approval.*``, ``session.*``), unless
   they alone pass four times the bound (a client gone for days): memory
   stays bounded whatever happens.

Where anything of a session was shed, the client gets an ``events.dropped``
marker (the seq range, and whether streamed pieces went too) and re-syncs
from the log by itself (`kfd.client.Attachment`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

LIFECYCLE_PREFIXES = ("turn.", "approval.", "session.")
"""Event types never shed from a live queue (within the hard bound)."""

ITEM_OVERHEAD = 96
"""Bytes of bookkeeping counted per queued event besides its body."""

HARD_FACTOR = 4
"""Lifecycle events are shed only past this many times the bound."""


class Kind(IntEnum):
    """How an event may be shed (lowest first)."""

    DELTA = 0
    EVENT = 1
    LIFECYCLE = 2
    MARKER = 3


def kind_of(event_type: str, ephemeral: bool) -> Kind:
    """The `Kind` of an event of ``event_type``."""
    if ephemeral:
        return Kind.DELTA
    if event_type.startswith(LIFECYCLE_PREFIXES):
        return Kind.LIFECYCLE
    return Kind.EVENT


class Delivery(NamedTuple):
    """One event on its way: its topic, its bytes, its seq and its `Kind`."""

    topic: bytes
    body: bytes
    seq: int
    kind: Kind


@dataclass(slots=True)
class _Shed:
    """What was shed of one topic in one pass."""

    first: int = 0
    last: int = 0
    deltas: bool = False
    position: int = -1


MarkerMaker = Callable[[bytes, int, int, bool], bytes]
"""(topic, first seq, last seq, streamed pieces shed) -> an ``events.dropped`` body."""


@dataclass(slots=True)
class Outbox:
    """One client's queue of events, bounded in bytes."""

    limit: int
    make_marker: MarkerMaker
    items: deque[Delivery] = field(default_factory=deque)
    size: int = 0
    shed_events: int = 0
    """Events shed so far (streamed pieces included)."""
    peak: int = 0

    def add(self, delivery: Delivery) -> None:
        self.items.append(delivery)
        self.size += len(delivery.body) + ITEM_OVERHEAD
        if self.size > self.limit:
            self._shed()
        self.peak = max(self.peak, self.size)

    def take(self, max_bytes: int) -> list[Delivery]:
        """The next events to send together: at least one, up to ``max_bytes``."""
        batch: list[Delivery] = []
        taken = 0
        while self.items and (not batch or taken + len(self.items[0].body) <= max_bytes):
            item = self.items.popleft()
            taken += len(item.body)
            self.size -= len(item.body) + ITEM_OVERHEAD
            batch.append(item)
        return batch

    def put_back(self, batch: Iterable[Delivery]) -> None:
        """Return a batch that could not be sent to the front, in order."""
        for item in reversed(list(batch)):
            self.items.appendleft(item)
            self.size += len(item.body) + ITEM_OVERHEAD

    def _shed(self) -> None:
        # Shed down to three quarters of the bound, so a client that stays
        # behind costs one pass over its queue now and then, not one per event.
        target = self.limit * 3 // 4
        for kind in (Kind.DELTA, Kind.EVENT):
            if self.size <= target:
                return
            self._shed_kind(kind, target)
        if self.size > self.limit * HARD_FACTOR:
            self._shed_kind(Kind.LIFECYCLE, target)

    def _shed_kind(self, kind: Kind, target: int) -> None:
        shed: dict[bytes, _Shed] = {}
        kept: list[Delivery] = []
        for item in self.items:
            if self.size > target and item.kind == kind:
                self.size -= len(item.body) + ITEM_OVERHEAD
                self.shed_events += 1
                mark = shed.get(item.topic)
                if mark is None:
                    mark = shed[item.topic] = _Shed(position=len(kept))
                    kept.append(Delivery(item.topic, b"", 0, Kind.MARKER))
                if kind == Kind.DELTA:
                    mark.deltas = True
                else:
                    mark.first = mark.first or item.seq
                    mark.last = item.seq
                continue
            kept.append(item)
        for topic, mark in shed.items():
            body = self.make_marker(topic, mark.first, mark.last, mark.deltas)
            kept[mark.position] = Delivery(topic, body, mark.last, Kind.MARKER)
            self.size += len(body) + ITEM_OVERHEAD
        self.items = deque(kept)


class Subscriptions:
    """Which client wants which topics: exact session ids, or prefixes of them."""

    def __init__(self, exact_length: int) -> None:
        self._exact_length = exact_length
        self._exact: dict[bytes, Counter[bytes]] = {}
        self._prefixes: dict[bytes, Counter[bytes]] = {}
        self._of_client: dict[bytes, Counter[bytes]] = {}

    def subscribe(self, client: bytes, topic: bytes) -> None:
        table = self._exact if len(topic) == self._exact_length else self._prefixes
        table.setdefault(topic, Counter())[client] += 1
        self._of_client.setdefault(client, Counter())[topic] += 1

    def unsubscribe(self, client: bytes, topic: bytes) -> bool:
        """False if the client had no such subscription."""
        mine = self._of_client.get(client)
        if not mine or mine[topic] <= 0:
            return False
        mine[topic] -= 1
        if mine[topic] <= 0:
            del mine[topic]
        if not mine:
            del self._of_client[client]
        table = self._exact if len(topic) == self._exact_length else self._prefixes
        holders = table[topic]
        holders[client] -= 1
        if holders[client] <= 0:
            del holders[client]
        if not holders:
            del table[topic]
        return True

    def forget(self, client: bytes) -> list[bytes]:
        """Drop every subscription of ``client``; the exact topics it had."""
        topics = list(self._of_client.get(client, Counter()).elements())
        for topic in topics:
            self.unsubscribe(client, topic)
        return sorted({t for t in topics if len(t) == self._exact_length})

    def count(self, client: bytes) -> int:
        return sum(self._of_client.get(client, Counter()).values())

    def clients(self, topic: bytes) -> set[bytes]:
        """The clients that want ``topic``."""
        found = set(self._exact.get(topic, ()))
        for prefix, holders in self._prefixes.items():
            if topic.startswith(prefix):
                found.update(holders)
        return found

    def watchers(self, topic: bytes) -> int:
        """Clients subscribed to exactly ``topic`` (attached to that session)."""
        return len(self._exact.get(topic, ()))

    def known(self, client: bytes) -> bool:
        return client in self._of_client
