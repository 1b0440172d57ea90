"""Reading a ZeroMQ socket from an asyncio loop, without pyzmq's asyncio layer.

The client (`kfd.client.connection`) and the daemon's bus (`kfd.daemon.bus`,
which takes it from here: the client's package is where ZeroMQ may be touched
outside the bus) read their request sockets this way: the layer's future per
call (and its re-check of the socket after each send) cost more than the send
itself, thousands of times a second under load. The loop watches the socket's
descriptor instead.

That descriptor is edge-triggered, and any call on the socket (a send too) may
take the edge of a message that arrived meanwhile: after each send, the owner
calls `SocketReader.check`, which asks the socket itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import zmq

__all__ = ["SocketReader"]


class SocketReader:
    """Hands what arrives on ``socket`` to ``take``, ``batch`` messages at a time (then
    other work runs), while ``open`` says the owner is still reading."""

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        take: Callable[[list[Any]], None],
        open: Callable[[], bool],
        *,
        batch: int,
        copy: bool = True,
    ) -> None:
        self._socket = socket
        self._take = take
        self._open = open
        self._batch = batch
        self._copy = copy
        self._scheduled = False

    async def run(self) -> None:
        """Read until cancelled."""
        loop = asyncio.get_running_loop()
        descriptor = cast(int, self._socket.getsockopt(zmq.FD))
        loop.add_reader(descriptor, self.readable)
        self.readable()  # what arrived before the loop watched
        try:
            await loop.create_future()  # served by `readable` until cancelled
        finally:
            loop.remove_reader(descriptor)

    def readable(self) -> None:
        """Take what has arrived: a batch at most, then read again once other work ran."""
        self._scheduled = False
        if not self._open():
            return
        for _ in range(self._batch):
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=self._copy)
            except zmq.Again:
                return
            self._take(frames)
        self._schedule()

    def check(self) -> None:
        """After a send: read if messages wait whose edge the send took."""
        if self._scheduled or not self._open():
            return
        if cast(int, self._socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.readable)
