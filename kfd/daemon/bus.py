"""The bus: the only module of the daemon that touches ZeroMQ sockets.

Two sockets, bound as ``ipc://`` files in the private runtime directory:

- ``rpc.sock`` (ROUTER): requests in, one reply out per request. Frames over
  ``MAX_REQUEST_BYTES`` are dropped by ZeroMQ itself (``MAXMSGSIZE``) and the
  offending connection closed; anything else malformed gets an error reply
  from the request handler.
- ``events.sock`` (XPUB): events out as ``[topic, body]``. Subscriptions come
  back in (``XPUB_VERBOSER``: every subscribe and unsubscribe, duplicates
  included), which is how the daemon counts the frontends watching a session
  and how a client learns that its subscriptions are live (see `SYNC_PREFIX`).

With ``[bus] listen``, both sockets are bound to TCP too, CURVE-encrypted
and authenticated (`kfd.daemon.bus_tcp`): one bus, so remote clients get
exactly what local ones get, queues and limits included.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import zmq
import zmq.asyncio

from kfd import paths
from kfd.config import BusConfig
from kfd.daemon.bus_tcp import Peer, TcpListeners
from kfd.protocol import MAX_REQUEST_BYTES

log = logging.getLogger(__name__)

SYNC_PREFIX = b"~sync."
"""A client subscribes to ``~sync.<token>`` after its real topics; the bus
answers on that topic at once. Subscriptions travel one pipe in order, so
when the answer arrives every earlier subscription of that client is live:
nothing published after that point can be missed."""

MAX_IN_FLIGHT = 512
"""Requests handled concurrently before new ones are answered ``overloaded``."""

RequestHandler = Callable[[bytes, bytes], Awaitable[bytes]]
"""(client identity, request frame) -> reply frame."""


class Bus:
    """The daemon's sockets. `bind`, then `serve` until cancelled, then `close`."""

    def __init__(self, runtime_dir: Path, tcp: BusConfig | None = None) -> None:
        self.runtime_dir = runtime_dir
        self._context = zmq.asyncio.Context()
        self._rpc = self._context.socket(zmq.ROUTER)
        self._events = self._context.socket(zmq.XPUB)
        self.tcp = TcpListeners(self._context, tcp) if tcp is not None and tcp.listen else None
        """The TCP listeners (None: local sockets only)."""
        self._peers: dict[bytes, Peer] = {}
        self.subscribers: Counter[bytes] = Counter()
        self.on_subscription: Callable[[bytes, int], None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def bind(self) -> None:
        rpc, events = self._rpc, self._events
        rpc.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        rpc.setsockopt(zmq.LINGER, 0)
        rpc.setsockopt(zmq.RCVHWM, 10_000)
        rpc.setsockopt(zmq.SNDHWM, 10_000)
        events.setsockopt(zmq.XPUB_VERBOSER, 1)
        events.setsockopt(zmq.LINGER, 0)
        # Deep enough to ride out a slow subscriber for a while; past it ZeroMQ
        # drops silently and the client notices the gap by seq and re-attaches.
        events.setsockopt(zmq.SNDHWM, 100_000)
        events.setsockopt(zmq.MAXMSGSIZE, 4096)
        for name in ("rpc.sock", "events.sock"):
            with suppress(FileNotFoundError):
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

    def publish(self, topic: bytes, body: bytes) -> None:
        """Send an event to every subscriber of ``topic``. Never blocks."""
        try:
            self._events.send_multipart((topic, body), flags=zmq.NOBLOCK)
        except zmq.Again:  # pragma: no cover - XPUB drops rather than blocks
            log.warning("event dropped on topic %r: send queue full", topic)

    async def serve(self, handler: RequestHandler) -> None:
        """Answer requests and watch subscriptions until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._serve_rpc(handler))
            group.create_task(self._watch_subscriptions())
            if self.tcp is not None:
                group.create_task(self.tcp.serve())

    async def _serve_rpc(self, handler: RequestHandler) -> None:
        while True:
            frames = await self._receive()
            if len(frames) != 2:
                # A DEALER sends [body]; the ROUTER prepends the identity. Other
                # shapes come from confused peers: answer if we can, never crash.
                if frames:
                    log.info("request with %d frames from %r ignored", len(frames), frames[0])
                    await self._reply(
                        frames[0],
                        b'{"id":"","ok":false,"error":{"code":'
                        b'"bad_request","message":"one frame per request"}}',
                    )
                continue
            identity, body = frames
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                await self._reply(identity, handler_overloaded())
                continue
            task = asyncio.create_task(self._handle(handler, identity, body))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _receive(self) -> list[bytes]:
        """The next request's frames; over TCP, remember the key that sent it."""
        if self.tcp is None:
            return await self._rpc.recv_multipart()
        frames = await self._rpc.recv_multipart(copy=False)
        identity = frames[0].bytes
        peer = self.tcp.peer(frames[-1])
        if peer is None:
            self._peers.pop(identity, None)
        else:
            if len(self._peers) > 10_000 and identity not in self._peers:
                self._peers.clear()  # routing ids are per connection: stale ones go
            self._peers[identity] = peer
        return [frame.bytes for frame in frames]

    async def _handle(self, handler: RequestHandler, identity: bytes, body: bytes) -> None:
        reply = await handler(identity, body)
        await self._reply(identity, reply)

    async def _reply(self, identity: bytes, body: bytes) -> None:
        try:
            await self._rpc.send_multipart((identity, body), flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away; nothing to do
            log.debug("reply to %r not sent: %s", identity, exc)

    async def _watch_subscriptions(self) -> None:
        while True:
            message = await self._events.recv()
            if not message:
                continue
            subscribe, topic = message[0] == 1, bytes(message[1:])
            if topic.startswith(SYNC_PREFIX):
                if subscribe:
                    self.publish(topic, b"{}")
                continue
            self.subscribers[topic] += 1 if subscribe else -1
            if self.subscribers[topic] <= 0:
                del self.subscribers[topic]
            if self.on_subscription is not None:
                self.on_subscription(topic, self.subscribers.get(topic, 0))

    async def close(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        if self.tcp is not None:
            await self.tcp.close()
        self._rpc.close(linger=0)
        self._events.close(linger=0)
        self._context.term()
        for name in ("rpc.sock", "events.sock"):
            with suppress(FileNotFoundError):
                (self.runtime_dir / name).unlink()


def handler_overloaded() -> bytes:
    return (
        b'{"id":"","ok":false,"error":{"code":"overloaded",'
        b'"message":"the daemon is handling too many requests; retry shortly"}}'
    )
