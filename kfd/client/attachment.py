"""One session's events, each exactly once, in order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Protocol

import msgspec

from kfd import protocol as p
from kfd.client.errors import DaemonUnavailable, RequestFailed
from kfd.client.events import (
    DISCONNECTED,
    RECONNECTED,
    ConnectionLost,
    ConnectionRestored,
    Item,
    decode_event,
)


class Link(Protocol):
    """What an `Attachment` uses of its client (`kfd.client.Client`): named here so
    that the client imports its attachments and not the other way round."""

    async def request(self, request: p.Request, *, timeout: float = ...) -> Any:
        """Send a request and return its decoded result."""
        ...

    async def _sync(self, timeout: float = ...) -> None:
        """Return once the daemon has seen every subscription made so far."""
        ...

    async def _resubscribe(self) -> None:
        """After the daemon came back: subscribe again to everything."""
        ...

    def _unsubscribe(self, attachment: Attachment) -> None:
        """Stop routing the session's events to ``attachment``."""
        ...


class Attachment:
    """A session's events, each exactly once, in order. Iterate it.

    ``snapshot`` is the live state as of the last (re-)attach; ``last_seq``
    the last durable event yielded.
    """

    def __init__(self, client: Link, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.snapshot: p.Snapshot | None = None
        self.last_seq = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._ready: deque[Item] = deque()
        self._texts: dict[tuple[str, str], int] = {}
        self._outputs: dict[str, int] = {}
        self._gap = False
        self._closed = False
        self.subscribed = False
        """Whether this attachment holds a subscription of its own (a follower's do not)."""

    async def __aenter__(self) -> Attachment:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        self.client._unsubscribe(self)

    @property
    def buffered(self) -> int:
        """Items received and not yet yielded: right after `Client.attach`, the
        history it fetched. Iterating this many items never waits."""
        return len(self._ready)

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        while not self._ready:
            if self._closed:
                raise StopAsyncIteration
            if self._gap:
                self._gap = False
                await self._attach(self.last_seq, None)
                continue
            body = await self._queue.get()
            if body == DISCONNECTED:
                self._ready.append(ConnectionLost(self.session_id))
            elif body == RECONNECTED:
                await self._reconnect()
            else:
                self._take(body)
        return self._ready.popleft()

    async def next_event(self, timeout: float) -> Item:
        """The next item, or TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def _reconnect(self) -> None:
        while True:
            try:
                await self.client._resubscribe()
                await self._attach(self.last_seq, None, restored=True)
                return
            except (DaemonUnavailable, RequestFailed):
                await asyncio.sleep(0.2)

    async def _attach(self, since_seq: int, tail: int | None, *, restored: bool = False) -> None:
        while True:
            result: p.AttachResult = await self.client.request(
                p.SessionAttach(id="", session=self.session_id, since_seq=since_seq, tail=tail)
            )
            if restored:
                self._ready.append(ConnectionRestored(self.session_id, result.snapshot))
                restored = False
            # History starts where we asked (or where the tail begins).
            start = result.first_seq - 1 if tail is not None else since_seq
            self.last_seq = max(self.last_seq, start)
            for raw in result.events:
                self._take(bytes(raw))
            if not result.more:
                break
            since_seq, tail = self.last_seq, None
        snapshot = result.snapshot
        self.snapshot = snapshot
        self.last_seq = max(self.last_seq, snapshot.seq)
        self._fill_streams(snapshot)

    def _fill_streams(self, snapshot: p.Snapshot) -> None:
        """Yield the part of partial streams this client has not seen."""
        streaming = snapshot.streaming
        if streaming is not None:
            for kind, text in (("reasoning", streaming.reasoning), ("text", streaming.text)):
                self._extend_text(
                    p.MessageDelta(
                        session=self.session_id,
                        seq=snapshot.seq,
                        ephemeral=True,
                        message_id=streaming.message_id,
                        text=text,
                        offset=0,
                        kind="text" if kind == "text" else "reasoning",
                    ),
                    fill=True,
                )
        for running in snapshot.running_tools:
            self._extend_output(
                p.ToolOutput(
                    session=self.session_id,
                    seq=snapshot.seq,
                    ephemeral=True,
                    call_id=running.call_id,
                    data=running.output,
                    offset=running.output_offset,
                ),
                fill=True,
            )

    def _take(self, body: bytes) -> None:
        try:
            event = decode_event(body)
        except msgspec.MsgspecError:
            return
        if isinstance(event, p.EventsDropped):
            # The daemon shed events while we were behind: read them from the log.
            if event.last_seq > self.last_seq or event.deltas:
                self._gap = True
            self._ready.append(event)
            return
        if event.ephemeral:
            streamed = isinstance(event, p.MessageDelta | p.ToolOutput)
            if event.seq > self.last_seq:
                self._gap = True  # a durable event went missing before this one
                if streamed:
                    return  # the re-attach's snapshot brings the text
            elif event.seq < self.last_seq and streamed:
                return  # text from before the snapshot: already in it
            if isinstance(event, p.MessageDelta):
                self._extend_text(event)
            elif isinstance(event, p.ToolOutput):
                self._extend_output(event)
            elif isinstance(event, p.Event):
                # A notice (focus, attached frontends, disk trouble): not part of
                # the log's order, and sent once; yielded whatever its seq.
                self._ready.append(event)
            return
        if event.seq <= self.last_seq:
            return
        if event.seq != self.last_seq + 1:
            self._gap = True
            return
        self.last_seq = event.seq
        if isinstance(event, p.MessageCompleted | p.MessageDiscarded):
            self._texts.pop((event.message_id, "text"), None)
            self._texts.pop((event.message_id, "reasoning"), None)
        elif isinstance(event, p.ToolCompleted):
            self._outputs.pop(event.call_id, None)
        if isinstance(event, p.Event):
            self._ready.append(event)

    def _extend_text(self, delta: p.MessageDelta, *, fill: bool = False) -> None:
        key = (delta.message_id, delta.kind)
        known = self._texts.get(key, 0)
        end = delta.offset + len(delta.text)
        if end <= known:
            return
        if delta.offset > known and not fill:
            self._gap = True
            return
        start = max(0, known - delta.offset)
        self._texts[key] = end
        self._ready.append(
            msgspec.structs.replace(delta, text=delta.text[start:], offset=delta.offset + start)
        )

    def _extend_output(self, chunk: p.ToolOutput, *, fill: bool = False) -> None:
        known = self._outputs.get(chunk.call_id, 0)
        end = chunk.offset + len(chunk.data)
        if end <= known:
            return
        if chunk.offset > known and not fill:
            self._gap = True
            return
        start = max(0, known - chunk.offset)
        self._outputs[chunk.call_id] = end
        self._ready.append(
            msgspec.structs.replace(chunk, data=chunk.data[start:], offset=chunk.offset + start)
        )
