"""How often a model's connection is read while many sessions stream at once.

A model sends a token every few milliseconds. Read as soon as it arrives,
each token costs a wake-up of the event loop, a trip through the HTTP client
and the event-stream decoder, and an event of its own to every frontend
watching (redacted, encoded, queued). One session can afford that; twenty
at 200 tokens a second each filled the daemon's one event loop, and
everything else (status requests, other clients' events) waited behind it.

So while other streams are being read too, a connection's next read waits a
little after its previous one, and takes whatever arrived meanwhile in one
go: the pause grows by `PER_STREAM_S` with each other stream, up to
`MOST_S`. Nothing is lost or reordered (the bytes wait in the socket), a
lone stream is read at once (an idle daemon keeps its latency), and under
load a token reaches frontends at most `MOST_S` later, in exchange for a
loop that keeps up. What one read brings then leaves as one event
(`kfd.agent.streams.StreamBuffer` publishes once per turn of the loop).

The pause sits at the one place that knows when the socket is read:
httpcore's network stream (`PacedBackend`), installed in the transport of
each provider's client by `paced_transport`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

log = logging.getLogger(__name__)

PER_STREAM_S = 0.0005
"""The pause between two reads of a connection grows by this with each other stream."""

MOST_S = 0.010
"""The longest pause between two reads of a connection."""


def pause_between_reads(
    streams: int, per_stream_s: float = PER_STREAM_S, most_s: float = MOST_S
) -> float:
    """Seconds between two reads of a connection while ``streams`` are read (itself included)."""
    if streams <= 1:
        return 0.0
    return min(most_s, (streams - 1) * per_stream_s)


class ReadPacing:
    """Counts the model streams being read in this process; says how long reads wait."""

    def __init__(self) -> None:
        self.streams = 0
        self.reads = 0
        """Reads of paced connections so far (benchmarks and tests)."""

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Count one stream while the block runs."""
        self.streams += 1
        try:
            yield
        finally:
            self.streams -= 1

    def pause(self) -> float:
        """The pause between two reads of one connection, now."""
        return pause_between_reads(self.streams)


PACING = ReadPacing()
"""The daemon's model streams: one event loop reads them all, so one count for all."""


class PacedStream(httpcore.AsyncNetworkStream):
    """A connection whose reads wait out the pause after the previous one."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, pacing: ReadPacing) -> None:
        self._inner = inner
        self._pacing = pacing
        self._last_read = float("-inf")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        loop = asyncio.get_running_loop()
        wait = self._last_read + self._pacing.pause() - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        data = await self._inner.read(max_bytes, timeout)
        self._last_read = loop.time()
        self._pacing.reads += 1
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return PacedStream(inner, self._pacing)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PacedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with `PacedStream` connections."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, pacing: ReadPacing) -> None:
        self._inner = inner
        self._pacing = pacing

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return PacedStream(stream, self._pacing)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return PacedStream(stream, self._pacing)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def paced_transport(pacing: ReadPacing = PACING) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, its connections read at `pacing`'s pace.

    httpx takes no network backend, so it is put into the connection pool
    httpx made; should a future httpx keep it elsewhere, the transport is
    returned unpaced (slower under load, still correct) and the log says so.
    """
    transport = httpx.AsyncHTTPTransport()
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        log.warning("model streams are read unpaced: httpx's connection pool has changed")
        return transport
    pool._network_backend = PacedBackend(backend, pacing)  # type: ignore[union-attr]
    return transport
