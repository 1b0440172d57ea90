"""Every session's events: one attachment per session, attached on first sight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from types import TracebackType
from typing import Any, Protocol

import msgspec

from kfd import protocol as p
from kfd.client.attachment import Attachment, Link
from kfd.client.errors import DaemonUnavailable, RequestFailed
from kfd.client.events import Followed, FollowItem, decode_header


class FollowLink(Link, Protocol):
    """What a `Follower` uses of its client (`kfd.client.Client`), beyond what its
    attachments use."""

    async def sessions(
        self, *, cwd: str | None = None, include_archived: bool = False, limit: int = 100
    ) -> list[p.SessionInfo]:
        """The sessions the daemon knows."""
        ...

    def _add_attachment(self, attachment: Attachment) -> None:
        """Route the events of the attachment's session to it."""
        ...

    def _drop_follower(self, follower: Follower) -> None:
        """Stop routing first-seen sessions to ``follower``."""
        ...


class Follower:
    """Every session's events, each session's exactly once and in order.

    Iterate it; items of different sessions interleave. Made by
    `Client.follow`. Under the hood it is one `Attachment` per session (so
    gaps and daemon restarts are handled per session), plus a subscription to
    every session topic so that a session never seen before is attached on
    its first event.
    """

    def __init__(self, client: FollowLink, since: dict[str, int]) -> None:
        self.client = client
        self.attachments: dict[str, Attachment] = {}
        self._since = dict(since)
        self._out: asyncio.Queue[FollowItem] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[FollowItem]:
        return self

    async def __anext__(self) -> FollowItem:
        if self._closed and self._out.empty():
            raise StopAsyncIteration
        return await self._out.get()

    async def next_event(self, timeout: float) -> FollowItem:
        """The next item, or TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def close(self) -> None:
        self._closed = True
        self.client._drop_follower(self)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for attachment in list(self.attachments.values()):
            await attachment.close()

    async def _catch_up(self) -> None:
        """Attach the sessions given by the caller and those busy right now."""
        listed = await self.client.sessions(limit=10_000)
        wanted = dict(self._since)
        for info in listed:
            if info.id not in wanted and info.status != "idle":
                wanted[info.id] = info.last_seq
        for session_id, seq in wanted.items():
            if session_id not in self.attachments:
                self._start(session_id, seq, None)

    def _first_sight(self, topic: bytes, body: bytes) -> None:
        """An event of a session nobody here is attached to: attach from it."""
        if self._closed:
            return
        try:
            header = decode_header(body)
        except msgspec.MsgspecError:
            return
        session_id = topic.decode("ascii", "replace")
        if session_id in self.attachments or header.session != session_id:
            return
        since = self._since.get(session_id)
        if since is None:
            # An ephemeral event carries the seq of the durable event before it.
            since = header.seq if header.ephemeral else max(0, header.seq - 1)
        self._start(session_id, since, body)

    def _reconnected(self) -> None:
        """Sessions that became busy while the daemon was away are attached now."""
        if not self._closed:
            self._spawn(self._after_reconnect())

    async def _after_reconnect(self) -> None:
        while True:
            try:
                await self.client._resubscribe()
                await self._catch_up()
                return
            except (DaemonUnavailable, RequestFailed):
                await asyncio.sleep(0.2)

    def _start(self, session_id: str, since_seq: int, first: bytes | None) -> None:
        attachment = Attachment(self.client, session_id)
        self.attachments[session_id] = attachment
        self.client._add_attachment(attachment)
        if first is not None:
            attachment._queue.put_nowait(first)
        self._spawn(self._pump(attachment, since_seq))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, attachment: Attachment, since_seq: int) -> None:
        try:
            await attachment._attach(since_seq, None)
        except RequestFailed:  # no such session (a stale id in the caller's cursor)
            self.attachments.pop(attachment.session_id, None)
            await attachment.close()
            return
        except DaemonUnavailable:
            attachment.last_seq = max(attachment.last_seq, since_seq)
            await attachment._reconnect()  # retries until the daemon answers
        assert attachment.snapshot is not None
        self._out.put_nowait(Followed(attachment.session_id, attachment.snapshot))
        async for item in attachment:
            self._out.put_nowait(item)
