"""The one way the bridge posts and edits: paced, retried, never twice.

- **Never twice.** A post is recorded in the state file's outbox under its key
  before it is made, and its message id after. A key already posted returns
  its message. A key recorded without an id (the bridge died between the
  post and the record) is first looked for in the room (`Adapter.find`);
  services that deduplicate by key (Matrix transaction ids) simply post again.
- **Paced.** Chat services limit how fast a bot may write (Synapse: 0.2
  messages a second after a burst of 10, per user, edits included). A rate
  limit's ``retry_after`` is honoured exactly and holds every call, not just
  the one refused; other transient failures back off.
- **Edits are unique per run.** An edit's transaction key carries a run id,
  so an edit made after a restart is a new event, not the homeserver's
  memory of an older one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from kfd_chat.adapter import Adapter, AdapterError, TransientError
from kfd_chat.state import Sent, StateFile

log = logging.getLogger("kfd_chat")

RETRY_MAX_S = 30.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a session's output goes: a room, or a thread in it."""

    room: str
    thread: str | None = None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Poster:
    """Posts and edits through one adapter, recording them in the state file."""

    def __init__(self, adapter: Adapter, store: StateFile) -> None:
        self.adapter = adapter
        self.store = store
        self.run_id = secrets.token_hex(4)
        self._not_before = 0.0
        self._saving = asyncio.Lock()
        self._edits = 0
        self.limited = 0
        """How many calls a rate limit refused (for the log and the tests)."""

    @property
    def outbox(self) -> dict[str, Sent]:
        return self.store.state.posts

    def posted(self, key: str) -> Sent | None:
        """What was posted (or meant to be) under ``key``."""
        return self.outbox.get(key)

    async def post(self, place: Place, text: str, key: str) -> str:
        """Post ``text`` once under ``key``; the message id ("" if refused for good)."""
        if place.room in self.store.state.refused:
            log.info("not posting to %s: %s", place.room, self.store.state.refused[place.room])
            return ""
        record = self.outbox.get(key)
        if record is not None and record.message:
            return record.message
        fresh = record is None
        if record is not None:
            found = await self._retrying(
                lambda: self.adapter.find(place.room, place.thread, key), None
            )
            if found:
                log.info("%s was posted before a restart: not posting it again", key)
                record.message = found
                return found
        else:
            record = self.outbox[key] = Sent(place.room, place.thread)
            await self.save()  # the intent is on disk before the post can happen
        message = await self._retrying(
            lambda: self.adapter.post(place.room, place.thread, text, key), ""
        )
        record.message = message
        # Posted again after a crash, a deduplicating service may have kept the first text.
        record.shown = digest(text) if fresh else ""
        return message

    async def edit(self, place: Place, message: str, text: str, key: str) -> None:
        """Make ``message`` show ``text``."""
        if not message or place.room in self.store.state.refused:
            return
        self._edits += 1
        edit_key = f"{key}.{self.run_id}.{self._edits}"
        await self._retrying(lambda: self.adapter.edit(place.room, message, text, edit_key), None)

    async def ready(self) -> None:
        """Wait until a rate limit lets the next call through."""
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _retrying(self, call: Callable[[], Awaitable[T]], failed: T) -> T:
        delay = 0.2
        while True:
            await self.ready()
            try:
                return await call()
            except TransientError as exc:
                if exc.retry_after is not None:
                    self.limited += 1
                    wait = exc.retry_after
                    self._not_before = max(self._not_before, time.monotonic() + wait)
                    log.warning("%s: waiting %.1f s as the service asks", exc, wait)
                else:
                    wait = delay
                    delay = min(delay * 2, RETRY_MAX_S)
                    log.warning("%s; retrying in %.1f s", exc, wait)
                    await asyncio.sleep(wait)
            except AdapterError as exc:
                log.error("%s: %s", self.adapter.name, exc)
                return failed

    async def save(self) -> None:
        """Write the state file (encoded here, written off the event loop, one at a time)."""
        async with self._saving:
            data = self.store.encode()
            await asyncio.to_thread(self.store.write, data)
