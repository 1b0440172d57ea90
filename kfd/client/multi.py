"""Several daemons at once, for frontends that follow them all (the notifier, a chat bridge).

A `DaemonSet` holds one `Client` per daemon (this machine's and those of
``--remote``), connects each by itself (retrying while one is down, without
holding up the others) and merges their sessions' events into one stream.
A session of a remote daemon is named ``host/session`` (``host`` is the
remote's name); this machine's sessions keep their bare ids, so a frontend
that follows only the local daemon sees exactly what it saw before. Events
are rewritten at the boundary (``event.session`` qualified), and `route`
turns a qualified id back into the daemon's client and its own id, so an
approval is answered on the daemon that asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kfd import protocol as p
from kfd.client.connection import Client
from kfd.client.errors import DaemonUnavailable, KeysMissing
from kfd.client.events import ConnectionLost, ConnectionRestored, Followed, FollowItem
from kfd.client.remote import Remote

SEPARATOR = "/"

Labelled = tuple[str, FollowItem]
"""(daemon label, item) with every session id in the item qualified."""


def label_of(remote: Remote | None) -> str:
    """The label of a daemon: its remote's name, "" for this machine's."""
    return remote.name if remote is not None else ""


def qualify(label: str, session: str) -> str:
    """``label/session`` (``session`` itself for this machine's daemon)."""
    return f"{label}{SEPARATOR}{session}" if label else session


def split(qualified: str) -> tuple[str, str]:
    """(label, session id) of a qualified session id."""
    label, _, session = qualified.rpartition(SEPARATOR)
    return label, session


class DaemonSet:
    """One client per daemon, connected and followed in the background."""

    def __init__(
        self,
        remotes: Sequence[Remote | None],
        name: str,
        *,
        runtime_dir: Path | None = None,
        spawn: bool = False,
        retry_s: float = 2.0,
        log: logging.Logger | None = None,
        on_connect: Callable[[str, Client], None] | None = None,
    ) -> None:
        self.remotes = {label_of(remote): remote for remote in remotes or [None]}
        self.name = name
        self.runtime_dir = runtime_dir
        self.spawn = spawn
        self.retry_s = retry_s
        self.log = log or logging.getLogger("kfd.client")
        self.on_connect = on_connect
        """Called with (label, client) each time a daemon's client connects."""
        self.clients: dict[str, Client] = {}
        self._connected: dict[str, asyncio.Event] = {
            label: asyncio.Event() for label in self.remotes
        }

    @property
    def labels(self) -> list[str]:
        """The daemons' labels, in the order given ("" for this machine's)."""
        return list(self.remotes)

    def describe(self, label: str) -> str:
        """How messages name daemon ``label``: ``the daemon `bb` (tcp://…)``."""
        remote = self.remotes.get(label)
        if remote is None:
            return "the daemon of this machine"
        return f"the daemon `{remote.name}` ({remote.endpoint})"

    async def client(self, label: str, timeout: float = 30.0) -> Client:
        """The connected client of daemon ``label`` (waiting for it up to ``timeout``)."""
        if label not in self.remotes:
            raise DaemonUnavailable(f"no daemon {label!r} is followed here")
        try:
            async with asyncio.timeout(timeout):
                await self._connected[label].wait()
        except TimeoutError:
            raise DaemonUnavailable(f"{self.describe(label)} is not connected") from None
        return self.clients[label]

    async def route(self, qualified: str) -> tuple[Client, str]:
        """The client of the daemon a qualified session id belongs to, and its bare id."""
        label, session = split(qualified)
        return await self.client(label), session

    async def connect(self, label: str) -> Client:
        """Connect to daemon ``label``, retrying every ``retry_s`` while it cannot be reached."""
        remote = self.remotes[label]
        said = ""
        while True:
            try:
                client = await Client.connect(
                    self.runtime_dir, name=self.name, spawn=self.spawn, remote=remote
                )
            except (DaemonUnavailable, KeysMissing) as exc:
                if str(exc) != said:
                    self.log.warning("%s; retrying every %g s", exc, self.retry_s)
                    said = str(exc)
                await asyncio.sleep(self.retry_s)
                continue
            if client.pinned_on_first_use:
                self.log.warning(
                    "pinned the key of %s on first use: %s",
                    self.describe(label),
                    client.pinned_on_first_use,
                )
            self.clients[label] = client
            self._connected[label].set()
            if self.on_connect is not None:
                self.on_connect(label, client)
            return client

    async def follow(self, since: dict[str, int] | None = None) -> MergedFollower:
        """Every session of every daemon, each exactly once and in order, with
        qualified session ids. ``since`` maps qualified ids to the last seq handled.

        Returns once the daemons connected now are followed (so nothing they
        publish from then on is missed); the others are followed as they connect.
        """
        merged = MergedFollower()
        ready = [merged.start(self._pump(label, since or {}, merged)) for label in self.clients]
        for label in self.remotes:
            if label not in self.clients:
                merged.start(self._pump(label, since or {}, merged))
        await merged.wait_for(ready)
        return merged

    async def _pump(self, label: str, since: dict[str, int], merged: MergedFollower) -> None:
        mine = {
            session: seq
            for qualified, seq in since.items()
            for owner, session in [split(qualified)]
            if owner == label
        }
        while True:
            client = self.clients.get(label) or await self.connect(label)
            try:
                follower = await client.follow(mine)
            except DaemonUnavailable as exc:  # gone again before following began
                self.log.warning("%s; retrying", exc)
                self.clients.pop(label, None)
                self._connected[label].clear()
                await client.close()
                await asyncio.sleep(self.retry_s)
                continue
            break
        merged.followed(asyncio.current_task())
        # From here the follower re-attaches by itself across dropped links.
        async with follower:
            self.log.info("following every session of %s", self.describe(label))
            async for item in follower:
                merged.put((label, qualified_item(label, item)))

    async def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()


def qualified_item(label: str, item: FollowItem) -> FollowItem:
    """``item`` with its session ids qualified by ``label`` (unchanged for "")."""
    if not label:
        return item
    match item:
        case Followed():
            return Followed(qualify(label, item.session), _snapshot(label, item.snapshot))
        case ConnectionRestored():
            return ConnectionRestored(qualify(label, item.session), _snapshot(label, item.snapshot))
        case ConnectionLost():
            return replace(item, session=qualify(label, item.session))
        case p.Event():
            item.session = qualify(label, item.session)
            return item
    return item  # pragma: no cover - an item kind this module does not know


def _snapshot(label: str, snapshot: p.Snapshot) -> p.Snapshot:
    for approval in snapshot.pending_approvals:
        approval.session = qualify(label, approval.session)
    return snapshot


class MergedFollower:
    """The items of several followers, interleaved (`DaemonSet.follow`); iterate
    it, close it when done. A follower that fails ends the iteration with its error."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Labelled | None] = asyncio.Queue()
        """Items, and None when a pump ended (the reader looks again)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: BaseException | None = None
        self._wake = asyncio.Event()
        self._following: set[asyncio.Task[None]] = set()

    def start(self, pump: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(pump)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def followed(self, task: asyncio.Task[Any] | None) -> None:
        """The pump ``task`` follows its daemon now."""
        if task is not None:
            self._following.add(task)
            self._wake.set()

    def put(self, item: Labelled) -> None:
        self._queue.put_nowait(item)

    async def wait_for(self, tasks: list[asyncio.Task[None]]) -> None:
        """Until each of ``tasks`` follows its daemon (or one failed)."""
        while not all(task in self._following for task in tasks):
            if self._failed is not None:
                raise self._failed
            self._wake.clear()
            await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failed is None:
            self._failed = task.exception()
        self._wake.set()
        self._queue.put_nowait(None)

    def __aiter__(self) -> MergedFollower:
        return self

    async def __anext__(self) -> Labelled:
        while True:
            if self._failed is not None:
                raise self._failed
            item = await self._queue.get()
            if item is not None:
                return item
            if not self._tasks and self._queue.empty():
                raise StopAsyncIteration

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> MergedFollower:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
