"""What a chat service offers the bridge: a stream of incoming messages with
a resumable cursor, posting, and editing. Small on purpose: Discord, Telegram
or IRC fit in an evening.

Texts the bridge posts are CommonMark it wrote itself, with every piece that
came from the model or a command quoted safely (`kfd_chat.render`); an
adapter turns them into what its service shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["message", "reaction", "invite", "encrypted", "unjoined"]
"""``invite``: ``sender`` invited the bot to ``room``. ``encrypted``: the room
is end-to-end encrypted (the bridge cannot read it). ``unjoined``: a room of
the config the bot could not join."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message or reaction from the chat service.

    ``id`` is the service's id for it (unique, stable across redeliveries).
    ``thread`` is the id of the thread root, None in the main timeline.
    ``reply_to`` the message it answers (a Matrix reply; never a mere
    message in a thread); ``reaction`` the key of a reaction to ``reply_to``.
    ``detail`` says more about an ``unjoined`` room. ``at`` is when the
    service says the message was sent, on the clock of `Adapter.sent_at`
    (0: unknown).
    """

    id: str
    room: str
    sender: str
    text: str = ""
    thread: str | None = None
    reply_to: str | None = None
    reaction: str | None = None
    kind: Kind = "message"
    detail: str = ""
    at: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    """Incoming items and the cursor to store once they are handled."""

    items: list[Incoming]
    cursor: str | None


class AdapterError(Exception):
    """The chat service refused something (bad token, unknown room)."""


class TransientError(AdapterError):
    """The chat service could not be reached; the same call may work later.

    ``retry_after`` (seconds) is set when the service said when (a rate
    limit); ``refused`` when it surely did not act on the call (so a post may
    still be changed before it is tried again).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def refused(self) -> bool:
        return self.retry_after is not None


class Adapter(Protocol):
    """One chat service."""

    name: str
    edit_interval_s: float

    async def start(self, cursor: str | None, rooms: set[str]) -> None:
        """Log in; resume from ``cursor`` (None: from now on). ``rooms`` are the
        configured ones: the first batch reports those it cannot serve."""

    def batches(self) -> AsyncIterator[Batch]:
        """Incoming items, reconnecting by itself after network loss."""
        ...

    async def post(self, room: str, thread: str | None, text: str, key: str) -> str:
        """Post ``text``; returns the message id. ``key`` identifies this post
        across retries and restarts (services that can, deduplicate by it)."""
        ...

    async def edit(self, room: str, message: str, text: str, key: str) -> None:
        """Replace the text of a message this bot posted."""

    async def find(self, room: str, thread: str | None, key: str) -> str | None:
        """The id of a message this bot posted under ``key`` (in the room's
        recent messages), or None. Asked after a crash between a post and the
        record of its id; services that deduplicate by ``key`` answer None."""
        ...

    async def sent_at(self, room: str, message: str) -> int:
        """When the service says ``message`` (one this bot posted) was sent, in
        the unit of `Incoming.at`, so that the two compare as the service
        orders its messages (0: unknown)."""
        ...

    async def join(self, room: str) -> None:
        """Accept an invitation to ``room``."""

    async def leave(self, room: str) -> None:
        """Decline an invitation to (or leave) ``room``."""

    async def close(self) -> None: ...
