"""A tool's way to an editor's buffers: `kfd.api.ToolContext.files` for one call.

A frontend may serve a session's file reads and writes (an editor, through
``kfd acp``: reads see its unsaved buffers, writes keep its undo history).
The daemon routes the questions to it (`FileRouter`, implemented by
`kfd.daemon.file_delegates`); `SessionFiles` is what a tool holds, and it
decides what may be asked at all: only files inside the session's workspace,
only text of a bounded size. Whatever goes wrong on the way (nobody serves,
the frontend left, it did not answer in time) makes the tool use the disk,
so the call still gets exactly one result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from kfd.api import ToolError
from kfd.protocol import FileOp

log = logging.getLogger(__name__)

MAX_SERVED_BYTES = 4 * 1024 * 1024
"""Text larger than this goes to and from the disk, not through a frontend
(a request to the daemon carries at most 8 MiB, and JSON escaping may double it)."""


class Declined(Exception):
    """The serving frontend answered that it could not do it (the message says why)."""


class FileRouter(Protocol):
    """Who serves which session's files, and the way to ask them."""

    def serving(self, session_id: str, op: FileOp) -> bool:
        """Whether a frontend serves ``op`` for the session now."""
        ...

    async def ask(self, session_id: str, op: FileOp, path: str, text: str = "") -> str | None:
        """Ask the serving frontend: the text read (a read), ``""`` (a write done),
        or None when nobody answered (none serves, it left, or it timed out).
        Raises `Declined` when it answered that it could not."""
        ...


class SessionFiles:
    """The files of one session as its serving frontend has them (`kfd.api.EditorFiles`)."""

    __slots__ = ("_router", "_session_id", "_workspace")

    def __init__(self, router: FileRouter | None, session_id: str, workspace: Path) -> None:
        self._router = router
        self._session_id = session_id
        self._workspace = workspace

    def serves(self, op: FileOp, path: Path) -> bool:
        """Whether ``op`` of ``path`` goes to a frontend: one serves it, and the
        path lies inside the workspace (as written: the tool checks links itself)."""
        if self._router is None or not path.is_absolute() or ".." in path.parts:
            return False
        if path == self._workspace or not path.is_relative_to(self._workspace):
            return False
        return self._router.serving(self._session_id, op)

    async def read_text(self, path: Path) -> str | None:
        """The frontend's text of ``path``, or None: read the disk."""
        if self._router is None or not self.serves("read", path):
            return None
        try:
            text = await self._router.ask(self._session_id, "read", str(path))
        except Declined as exc:
            log.info("the frontend could not read %s (%s); reading the disk", path, exc)
            return None
        if text is not None and len(text.encode()) > MAX_SERVED_BYTES:
            return None
        return text

    async def write_text(self, path: Path, text: str) -> bool:
        """Have the frontend write ``text`` to ``path``; False: write the disk."""
        if self._router is None or not self.serves("write", path):
            return False
        if len(text) > MAX_SERVED_BYTES or len(text.encode()) > MAX_SERVED_BYTES:
            return False
        try:
            done = await self._router.ask(self._session_id, "write", str(path), text)
        except Declined as exc:
            raise ToolError(f"the editor did not write {path}: {exc}") from None
        return done is not None
