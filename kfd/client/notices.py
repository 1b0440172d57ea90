"""Daemon-wide events: the ``global`` topic, for frontends that want them.

What concerns every frontend rather than one session arrives here: the
config reloaded or broken (``config.reloaded``, ``config.error``), a
project trusted or untrusted (``trust.changed``), sessions created, file
triggers fired, the daemon stopping. These events are not logged: one sent
while a frontend was away is not replayed (``daemon.status`` says what the
config's state is now).

::

    async with await client.notices() as notices:
        async for event in notices:
            if isinstance(event, p.ConfigInvalid):
                print(event.message)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

import msgspec

from kfd import protocol as p
from kfd.client.events import decode_event

GLOBAL = p.GLOBAL_TOPIC.encode()

QUEUE_LIMIT = 1000
"""Global events kept for a reader that does not keep up; older ones are dropped."""


class Notices:
    """Global events as they arrive; iterate, and `close` (or use ``async with``)."""

    def __init__(self, on_close: Callable[[Notices], None]) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._on_close = on_close
        self.closed = False

    def _put(self, body: bytes) -> None:
        if self._queue.qsize() >= QUEUE_LIMIT:
            self._queue.get_nowait()
        self._queue.put_nowait(body)

    def __aiter__(self) -> Notices:
        return self

    async def __anext__(self) -> p.Event:
        while True:
            body = await self._queue.get()
            if body is None:
                raise StopAsyncIteration
            try:
                event = decode_event(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # garbage on the bus never stops a reader
            if isinstance(event, p.Event):
                return event

    async def next_event(self, timeout: float) -> p.Event:
        """The next global event, or TimeoutError."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def close(self) -> None:
        """Stop receiving global events."""
        if not self.closed:
            self.closed = True
            self._on_close(self)
            self._queue.put_nowait(None)

    async def __aenter__(self) -> Notices:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
