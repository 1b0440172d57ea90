"""The bridge's state file: which room maps to which session, how far each
session's events and the chat service's messages were handled.

JSON, replaced atomically (write, fsync, rename), so a crash leaves the old
or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from pathlib import Path

import msgspec

SEEN_KEPT = 2000
POSTS_KEPT = 1000


class Posted(msgspec.Struct):
    """An approval posted to a room."""

    session: str
    approval_id: str
    room: str
    message: str
    rule: str = ""
    """The rule "allow always" would keep; empty when it can keep none."""
    asked: str = ""
    """The approval's ``session_rule`` as asked (a grant, say), for explanations."""
    question: str = ""
    """What was asked (tool, reason, whole command): kept once it is decided."""
    thread: str | None = None
    allowable: bool = True
    """False when the command was too long to show: chat may only deny it."""
    answered_by: str = ""
    """The chat user whose answer the bridge passed on (the daemon only knows the bridge)."""
    at: int = 0
    """When the service says ``message`` was posted (`kfd_chat.adapter.Adapter.sent_at`),
    learnt when a bare answer needs it; 0 until then."""


class Sent(msgspec.Struct):
    """A post the bridge meant to make: recorded before it is made (``message``
    empty), completed with the service's id once made. After a crash, an
    entry without an id is looked for in the room before posting again."""

    room: str
    thread: str | None = None
    message: str = ""
    shown: str = ""
    """Digest of the text the message shows now (streams skip an edit that changes nothing)."""


class State(msgspec.Struct):
    rooms: dict[str, str] = msgspec.field(default_factory=dict)
    """``room`` or ``room|thread`` -> session id."""
    cursors: dict[str, int] = msgspec.field(default_factory=dict)
    """session id -> last seq handled."""
    chat_cursor: str | None = None
    seen: list[str] = msgspec.field(default_factory=list)
    """Ids of the latest incoming items (services that redeliver)."""
    approvals: dict[str, Posted] = msgspec.field(default_factory=dict)
    """message id of a posted approval -> the approval."""
    posts: dict[str, Sent] = msgspec.field(default_factory=dict)
    """post key -> what was posted under it (the outbox)."""
    joined: list[str] = msgspec.field(default_factory=list)
    """Rooms the bot joined on an allow-listed user's invite: served like configured ones."""
    refused: dict[str, str] = msgspec.field(default_factory=dict)
    """room -> why the bridge does not serve it (end-to-end encrypted)."""


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = State()
        self._seen: deque[str] = deque(maxlen=SEEN_KEPT)
        self._seen_set: set[str] = set()

    def load(self) -> State:
        try:
            self.state = msgspec.json.decode(self.path.read_bytes(), type=State)
        except FileNotFoundError:
            self.state = State()
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            broken = self.path.with_suffix(".broken")
            self.path.replace(broken)
            raise ValueError(f"{self.path} was unreadable ({exc}); moved to {broken}") from None
        self._seen = deque(self.state.seen, maxlen=SEEN_KEPT)
        self._seen_set = set(self._seen)
        return self.state

    def seen(self, item_id: str) -> bool:
        """True if ``item_id`` was handled before; remembers it otherwise."""
        if item_id in self._seen_set:
            return True
        if len(self._seen) == SEEN_KEPT:
            self._seen_set.discard(self._seen[0])
        self._seen.append(item_id)
        self._seen_set.add(item_id)
        return False

    def save(self) -> None:
        self.write(self.encode())

    def encode(self) -> bytes:
        """The state as it is now (cheap: msgspec)."""
        self.state.seen = list(self._seen)
        while len(self.state.approvals) > 500:
            self.state.approvals.pop(next(iter(self.state.approvals)))
        while len(self.state.posts) > POSTS_KEPT:
            self.state.posts.pop(next(iter(self.state.posts)))
        return msgspec.json.encode(self.state)

    def write(self, data: bytes) -> None:
        """Replace the file with ``data`` atomically (blocking: run it in a thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".chat-state-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
