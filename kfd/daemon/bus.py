"""The bus: the only module of the daemon that touches ZeroMQ sockets.

Two sockets, bound as ``ipc://`` files in the private runtime directory:

- ``rpc.sock`` (ROUTER): requests in, one reply out per request, and each
  client's session events out, batched (``[EVENTS_FRAME, topic, body, topic,
  body, ...]``). Every request gets a reply carrying its id, refusals
  included: a request that cannot be parsed is answered with whatever id can
  be read from it (`kfd.daemon.requests`), and a request past
  `MAX_IN_FLIGHT` gets ``overloaded`` (the client retries after a pause).
  Frames past `HARD_FRAME_BYTES` are dropped by ZeroMQ itself (``MAXMSGSIZE``);
  between `MAX_REQUEST_BYTES` and that they get ``too_large``.
- ``events.sock`` (XPUB): presence and daemon-wide events. Each client
  subscribes to ``~client.<its id>`` while connected; ZeroMQ tells us when it
  goes (``XPUB_VERBOSER``), which is how the daemon forgets a client's
  subscriptions and queue. The ``global`` topic carries daemon-wide events.

Session events go to each client from its own queue (`kfd.daemon.outbox`),
sent once per turn of the event loop: all that a client should get from one
burst travels as one message, and a client that stops reading is told what it
missed (``events.dropped``) instead of silently losing it, within a bounded
memory per client (``[daemon] client_queue_kib``).

With ``[bus] listen``, both sockets are bound to TCP too, CURVE-encrypted
and authenticated (`kfd.daemon.bus_tcp`): one bus, so remote clients get
exactly what local ones get, queues, limits and the slow-consumer policy
included.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import msgspec
import zmq
import zmq.asyncio

from kfd import paths
from kfd.client.socket_reader import SocketReader
from kfd.config import BusConfig
from kfd.daemon.bus_tcp import Peer, TcpListeners
from kfd.daemon.outbox import Delivery, Kind, Outbox, Subscriptions
from kfd.ids import ID_LENGTH
from kfd.protocol import MAX_REQUEST_BYTES, EventsDropped

log = logging.getLogger(__name__)

SYNC_PREFIX = b"~sync."
"""A client subscribes to ``~sync.<token>`` after its presence topic; the bus
answers on that topic at once, so the client knows its presence is seen."""

CLIENT_TOPIC = b"~client."
"""Each client subscribes to ``~client.<its id>`` while connected: presence."""

EVENTS_FRAME = b"\x00events"
"""First frame of a batch of session events on the request socket."""

MAX_IN_FLIGHT = 512
"""Requests handled concurrently before new ones are answered ``overloaded``."""

HARD_FRAME_BYTES = 4 * MAX_REQUEST_BYTES
"""Frames larger than this are dropped unread by ZeroMQ (the connection with them)."""

BATCH_BYTES = 64 * 1024
"""Most event bytes in one batch (a single larger event travels alone)."""

COPY_THRESHOLD = 64 * 1024
"""Messages with a frame this large are sent without copying it."""

SEND_HWM = 64
"""Messages ZeroMQ queues per client before the daemon keeps the rest itself.
With `BATCH_BYTES`, at most ~4 MiB per client sit in ZeroMQ's pipe."""

RETRY_BLOCKED_S = 0.02
"""How soon a client whose pipe was full is tried again."""

FLUSH_EVERY_S = 0.002
"""Under load, batches leave at most this often (one message per client each
time); when the bus has been quiet they leave at once."""

MAX_TOPICS_PER_CLIENT = 10_000

_marker_encoder = msgspec.json.Encoder()

Decoded = tuple[Any, bytes | None]
"""(request, None) or (None, an error reply)."""


class RequestHandler(Protocol):
    """What the bus needs of the request handler (`kfd.daemon.rpc.RpcHandler`)."""

    def decode(self, identity: bytes, body: bytes) -> Decoded:
        """Parse a small request at once; an error reply for what cannot be parsed."""

    async def answer(self, identity: bytes, body: bytes, request: Any) -> bytes:
        """The reply to a request (``request`` None: parse ``body`` first, off the loop)."""

    def refusal(self, body: bytes, code: str, message: str) -> bytes:
        """An error reply carrying whatever id ``body`` lets us read."""


DECODE_INLINE_BYTES = 64 * 1024
"""Larger requests are parsed off the event loop."""


def _marker(topic: bytes, first: int, last: int, deltas: bool) -> bytes:
    session = topic.decode("ascii", "replace")
    return _marker_encoder.encode(
        EventsDropped(
            session=session,
            seq=last,
            ephemeral=True,
            first_seq=first,
            last_seq=last,
            deltas=deltas,
        )
    )


class Bus:
    """The daemon's sockets. `bind`, then `serve` until cancelled, then `close`."""

    def __init__(
        self,
        runtime_dir: Path,
        *,
        client_queue_bytes: int = 4 * 1024 * 1024,
        tcp: BusConfig | None = None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.client_queue_bytes = client_queue_bytes
        self._context = zmq.asyncio.Context()
        self._rpc = self._context.socket(zmq.ROUTER)
        # The same socket, without pyzmq's asyncio layer: every request and
        # every batch of events goes through it. The layer's future per call
        # (and its re-check of the socket's state after each send) cost more
        # than the send itself, thousands of times a second under load.
        # The event loop watches its file descriptor instead (`kfd.client.socket_reader`).
        self._raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._rpc.underlying)
        self._handler: RequestHandler | None = None
        self._closed = False
        self._events = self._context.socket(zmq.XPUB)
        self.subscriptions = Subscriptions(ID_LENGTH)
        self.tcp = TcpListeners(self._context, tcp) if tcp is not None and tcp.listen else None
        # Over TCP, frames are not copied: `_read` reads their properties.
        self._reader = SocketReader(
            self._raw, self._arrived, self._reading, batch=256, copy=self.tcp is None
        )
        """The TCP listeners (None: local sockets only)."""
        self._peers: dict[bytes, Peer] = {}
        self.on_subscription: Callable[[bytes, int], None] | None = None
        """Called with (session topic, clients attached) when that count changes."""
        self.on_presence: Callable[[str, bool], None] | None = None
        """Called with (client id, connected) when a client comes or goes."""
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outboxes: dict[bytes, Outbox] = {}
        self._replies: dict[bytes, deque[bytes]] = {}
        self._dirty: set[bytes] = set()
        self._blocked: set[bytes] = set()
        self._flush_scheduled = False
        self._last_flush = float("-inf")
        self._retry: asyncio.TimerHandle | None = None
        self.stats = BusStats()

    def bind(self) -> None:
        rpc, events = self._rpc, self._events
        rpc.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_BYTES)
        rpc.setsockopt(zmq.LINGER, 0)
        rpc.setsockopt(zmq.RCVHWM, 10_000)
        rpc.setsockopt(zmq.SNDHWM, SEND_HWM)
        # A send to a full or vanished client fails instead of being dropped
        # silently: the daemon then keeps (or forgets) what was for it.
        rpc.setsockopt(zmq.ROUTER_MANDATORY, 1)
        events.setsockopt(zmq.XPUB_VERBOSER, 1)
        events.setsockopt(zmq.LINGER, 0)
        events.setsockopt(zmq.SNDHWM, 10_000)
        events.setsockopt(zmq.MAXMSGSIZE, 4096)
        for name in ("rpc.sock", "events.sock"):
            with contextlib.suppress(FileNotFoundError):
                (self.runtime_dir / name).unlink()
        old = os.umask(0o177)  # sockets come out 0600
        try:
            rpc.bind(paths.rpc_endpoint(self.runtime_dir))
            events.bind(paths.events_endpoint(self.runtime_dir))
        finally:
            os.umask(old)
        if self.tcp is not None:
            self.tcp.bind(rpc, events)  # after the local binds: they keep their options

    def peer(self, identity: bytes) -> Peer | None:
        """The key the client ``identity`` last sent a request with (None: a local client)."""
        return self._peers.get(identity)

    # -- events out ------------------------------------------------------------

    def publish(self, delivery: Delivery) -> None:
        """Queue a session event for every client subscribed to its topic. Never blocks."""
        for client in self.subscriptions.clients(delivery.topic):
            box = self._outboxes.get(client)
            if box is None:
                box = self._outboxes[client] = Outbox(self.client_queue_bytes, _marker)
            shed_before = box.shed_events
            box.add(delivery)
            if box.shed_events != shed_before:
                self.stats.shed += box.shed_events - shed_before
            self._dirty.add(client)
        self._schedule_flush()

    def deliver(self, client: bytes, topic: bytes, body: bytes) -> None:
        """Queue an event for ``client`` alone (a ``file.requested``), never shed
        (`Kind.LIFECYCLE`), in order with what else waits for it. Never blocks."""
        box = self._outboxes.get(client)
        if box is None:
            box = self._outboxes[client] = Outbox(self.client_queue_bytes, _marker)
        box.add(Delivery(topic, body, 0, Kind.LIFECYCLE))
        self._dirty.add(client)
        self._schedule_flush()

    def publish_global(self, topic: bytes, body: bytes) -> None:
        """Send a daemon-wide event to every subscriber of ``topic`` (XPUB)."""
        try:
            self._events.send_multipart((topic, body), flags=zmq.NOBLOCK)
        except zmq.Again:  # pragma: no cover - XPUB drops rather than blocks
            log.warning("event dropped on topic %r: send queue full", topic)

    def subscribe(self, client: bytes, topics: list[str], subscribe: bool) -> None:
        """Add or remove ``client``'s subscriptions. ValueError for a bad topic."""
        wanted = [topic.encode() for topic in topics]
        for topic in wanted:
            if not topic or len(topic) > ID_LENGTH or not topic.isascii():
                raise ValueError(f"not a session topic: {topic!r}")
        if subscribe and self.subscriptions.count(client) + len(wanted) > MAX_TOPICS_PER_CLIENT:
            raise ValueError(f"more than {MAX_TOPICS_PER_CLIENT} subscriptions")
        for topic in wanted:
            before = self.subscriptions.watchers(topic)
            if subscribe:
                self.subscriptions.subscribe(client, topic)
            elif not self.subscriptions.unsubscribe(client, topic):
                continue
            after = self.subscriptions.watchers(topic)
            if after != before and self.on_subscription is not None:
                self.on_subscription(topic, after)

    def watchers(self, topic: bytes) -> int:
        """Clients attached to session ``topic``."""
        return self.subscriptions.watchers(topic)

    def queue_stats(self, client: bytes) -> tuple[int, int, int]:
        """(bytes queued, peak bytes queued, events shed) for ``client``."""
        box = self._outboxes.get(client)
        return (box.size, box.peak, box.shed_events) if box is not None else (0, 0, 0)

    def forget(self, client: bytes) -> None:
        """Drop a client's subscriptions and queues (it went away)."""
        self._outboxes.pop(client, None)
        self._replies.pop(client, None)
        self._dirty.discard(client)
        self._blocked.discard(client)
        self._peers.pop(client, None)
        for topic in self.subscriptions.forget(client):
            if self.on_subscription is not None:
                self.on_subscription(topic, self.subscriptions.watchers(topic))

    def _schedule_flush(self) -> None:
        # Everything published for a client until the flush leaves in one
        # message: at the end of this turn of the loop when the bus was quiet,
        # else at most every FLUSH_EVERY_S (fewer, larger sends under load).
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        loop = asyncio.get_running_loop()
        wait = self._last_flush + FLUSH_EVERY_S - loop.time()
        if wait <= 0:
            loop.call_soon(self._flush)
        else:
            loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._last_flush = asyncio.get_running_loop().time()
        dirty, self._dirty = self._dirty, set()
        for client in dirty:
            if client not in self._blocked and not self._send_pending(client):
                self._blocked.add(client)
        if self._blocked and self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(RETRY_BLOCKED_S, self._unblock)
        self._reader.check()

    def _unblock(self) -> None:
        self._retry = None
        self._dirty.update(self._blocked)
        self._blocked.clear()
        self._flush()

    def _send_pending(self, client: bytes) -> bool:
        """Send what waits for ``client``; False if its pipe is full."""
        replies = self._replies.get(client)
        while replies:
            outcome = self._try_send([client, replies[0]])
            if outcome == "full":
                return False
            replies.popleft()
            if outcome == "gone":
                self.forget(client)
                return True
        if replies is not None:
            del self._replies[client]
        box = self._outboxes.get(client)
        while box is not None and box.items:
            batch = box.take(BATCH_BYTES)
            frames = [client, EVENTS_FRAME]
            for item in batch:
                frames.append(item.topic)
                frames.append(item.body)
            outcome = self._try_send(frames)
            if outcome == "full":
                box.put_back(batch)
                return False
            if outcome == "gone":
                self.forget(client)
                return True
            self.stats.batches += 1
            self.stats.events += len(batch)
        return True

    def _try_send(self, frames: list[bytes]) -> str:
        """ "sent", "full" (the client's pipe is at its high-water mark) or "gone"."""
        # Large bodies travel without a copy; small ones are cheaper copied.
        copy = all(len(frame) < COPY_THRESHOLD for frame in frames)
        try:
            self._raw.send_multipart(frames, flags=zmq.NOBLOCK, copy=copy)
        except zmq.Again:
            return "full"
        except zmq.ZMQError as error:
            if error.errno != errno.EHOSTUNREACH:
                log.warning("cannot send to client %r: %s", frames[0], error)
            return "gone"
        return "sent"

    # -- requests in -------------------------------------------------------------

    def reply(self, identity: bytes, body: bytes) -> None:
        """Send a reply, or keep it until the client's pipe has room."""
        waiting = self._replies.get(identity)
        if waiting:
            waiting.append(body)
            return
        outcome = self._try_send([identity, body])
        if outcome == "full":
            self._replies.setdefault(identity, deque()).append(body)
            self._blocked.add(identity)
            self._schedule_flush()
        elif outcome == "gone":
            self.forget(identity)
        self._reader.check()

    async def serve(self, handler: RequestHandler) -> None:
        """Answer requests and watch presence until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._serve_rpc(handler))
            group.create_task(self._watch_subscriptions())
            if self.tcp is not None:
                group.create_task(self.tcp.serve())

    async def _serve_rpc(self, handler: RequestHandler) -> None:
        self._handler = handler
        await self._reader.run()  # up to 256 requests at a time, then the answers run

    def _reading(self) -> bool:
        return self._handler is not None and not self._closed

    def _arrived(self, frames: list[Any]) -> None:
        assert self._handler is not None  # `_reading`
        self._take(self._handler, self._read(frames))

    def _take(self, handler: RequestHandler, frames: list[bytes]) -> None:
        self.stats.requests += 1
        if len(frames) != 2:
            # A DEALER sends [body]; the ROUTER prepends the identity. Other
            # shapes come from confused peers: answer if we can, never crash.
            if frames:
                log.info("request with %d frames from %r refused", len(frames), frames[0])
                body = frames[1] if len(frames) > 1 else b""
                self.reply(frames[0], handler.refusal(body, "bad_request", "one frame per request"))
            return
        identity, body = frames
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self.stats.overloaded += 1
            self.reply(
                identity,
                handler.refusal(
                    body,
                    "overloaded",
                    "the daemon is handling too many requests; retry shortly",
                ),
            )
            return
        request: Any = None
        if len(body) <= DECODE_INLINE_BYTES:
            request, refused = handler.decode(identity, body)
            if refused is not None:
                self.reply(identity, refused)  # garbage costs no task
                return
        task = asyncio.create_task(self._handle(handler, identity, body, request))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _read(self, frames: list[Any]) -> list[bytes]:
        """A request's frames as bytes; over TCP (frames not copied, to read
        their properties), remember the key the client authenticated with."""
        if self.tcp is None:
            return cast("list[bytes]", frames)
        if not frames:
            return []
        identity = frames[0].bytes
        peer = self.tcp.peer(frames[-1])
        if peer is None:
            self._peers.pop(identity, None)
        else:
            if len(self._peers) > 10_000 and identity not in self._peers:
                self._peers.clear()  # routing ids are per connection: stale ones go
            self._peers[identity] = peer
        return [frame.bytes for frame in frames]

    async def _handle(
        self, handler: RequestHandler, identity: bytes, body: bytes, request: Any
    ) -> None:
        try:
            reply = await handler.answer(identity, body, request)
        except Exception as exc:  # a handler bug must still answer
            log.exception("request from %r failed", identity)
            reply = handler.refusal(body, "internal", f"the daemon failed on this request: {exc!r}")
        self.reply(identity, reply)

    async def _watch_subscriptions(self) -> None:
        while True:
            message = await self._events.recv()
            if not message:
                continue
            subscribe, topic = message[0] == 1, bytes(message[1:])
            if topic.startswith(SYNC_PREFIX):
                if subscribe:
                    self.publish_global(topic, b"{}")
                continue
            if topic.startswith(CLIENT_TOPIC):
                client = topic[len(CLIENT_TOPIC) :]
                if not subscribe:
                    self.forget(client)
                if self.on_presence is not None:
                    self.on_presence(client.decode("ascii", "replace"), subscribe)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._in_flight):
            task.cancel()
        if self.tcp is not None:
            await self.tcp.close()
        if self._retry is not None:
            self._retry.cancel()
        self._rpc.close(linger=0)
        self._events.close(linger=0)
        self._context.term()
        for name in ("rpc.sock", "events.sock"):
            with contextlib.suppress(FileNotFoundError):
                (self.runtime_dir / name).unlink()


class BusStats:
    """Counters of the bus, for status and benchmarks."""

    __slots__ = ("batches", "events", "overloaded", "requests", "shed")

    def __init__(self) -> None:
        self.requests = 0
        self.overloaded = 0
        self.batches = 0
        self.events = 0
        self.shed = 0
