"""What a chat service offers the bridge: a stream of incoming messages with
a resumable cursor, posting, and editing. Small on purpose: Discord, Telegram
or IRC fit in an evening."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message or reaction from the chat service.

    ``id`` is the service's id for it (unique, stable across redeliveries).
    ``thread`` is the id of the thread root, None in the main timeline.
    ``reply_to`` the message it answers; ``reaction`` the key of a reaction
    to ``reply_to``.
    """

    id: str
    room: str
    sender: str
    text: str = ""
    thread: str | None = None
    reply_to: str | None = None
    reaction: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Incoming items and the cursor to store once they are handled."""

    items: list[Incoming]
    cursor: str | None


class AdapterError(Exception):
    """The chat service refused something (bad token, unknown room)."""


class TransientError(AdapterError):
    """The chat service could not be reached; the same call may work later."""


class Adapter(Protocol):
    """One chat service."""

    name: str
    edit_interval_s: float

    async def start(self, cursor: str | None) -> None:
        """Log in; resume from ``cursor`` (None: from now on)."""

    def batches(self) -> AsyncIterator[Batch]:
        """Incoming items, reconnecting by itself after network loss."""
        ...

    async def post(self, room: str, thread: str | None, text: str, key: str) -> str:
        """Post ``text``; returns the message id. ``key`` identifies this post
        across retries and restarts (services that can, deduplicate by it)."""
        ...

    async def edit(self, room: str, message: str, text: str, key: str) -> None:
        """Replace the text of a message this bot posted."""

    async def close(self) -> None: ...
