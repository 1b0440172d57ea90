"""Test support: an editor driving ``kfd acp`` through the ACP library's client side.

`Editor` is an ``acp.Client``: it records every ``session/update`` and answers
``session/request_permission`` with what the test queued (or waits until the
test answers); ``fs/*`` is served from its open buffers (when the test offers
it at ``initialize``). `open_editor` starts ``kfd acp`` as a real subprocess against a
test daemon, exactly as an editor would, and connects.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp import schema as a
from acp.client.connection import ClientSideConnection
from acp.stdio import spawn_agent_process

from kfd.testing.daemon import KfdDaemon


@dataclass
class Asked:
    """One ``session/request_permission`` the editor received."""

    session_id: str
    tool_call: a.ToolCallUpdate
    options: list[a.PermissionOption]
    answer: asyncio.Future[str | None] = field(default_factory=asyncio.Future)
    """Set the option id to choose (None: the editor dismisses it as cancelled)."""


class Editor:
    """An ACP client that records what the agent sends it."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, Any]] = []
        self.asked: list[Asked] = []
        self.auto_answer: str | None = None
        """Answer every permission request with this option id at once."""
        self.buffers: dict[str, str] = {}
        """Open files (by absolute path) and their unsaved text: ``fs/*`` sees these."""
        self.save = True
        """Whether a ``fs/write_text_file`` is saved to disk (else it stays in the buffer)."""
        self.fs: list[tuple[str, str, str]] = []
        """Every ``fs/*`` request the agent made: (read or write, path, text written)."""
        self._changed = asyncio.Condition()

    async def _note(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every message); return it."""
        async with asyncio.timeout(timeout), self._changed:
            while not (found := condition()):
                await self._changed.wait()
            return found

    # -- acp.Client ------------------------------------------------------------

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append((session_id, update))
        await self._note()

    async def request_permission(
        self,
        session_id: str,
        tool_call: a.ToolCallUpdate,
        options: list[a.PermissionOption],
        **kwargs: Any,
    ) -> a.RequestPermissionResponse:
        asked = Asked(session_id, tool_call, options)
        if self.auto_answer is not None:
            asked.answer.set_result(self.auto_answer)
        self.asked.append(asked)
        await self._note()
        choice = await asked.answer
        if choice is None:
            return a.RequestPermissionResponse(outcome=a.DeniedOutcome(outcome="cancelled"))
        return a.RequestPermissionResponse(
            outcome=a.AllowedOutcome(outcome="selected", option_id=choice)
        )

    async def read_text_file(
        self,
        session_id: str,
        path: str,
        line: int | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> a.ReadTextFileResponse:
        """An open buffer's text (unsaved changes included), else the disk's."""
        self.fs.append(("read", path, ""))
        await self._note()
        text = self.buffers[path] if path in self.buffers else Path(path).read_text()
        return a.ReadTextFileResponse(content=text)

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> a.WriteTextFileResponse | None:
        """Into the buffer, saved to disk when `save` says so."""
        self.fs.append(("write", path, content))
        await self._note()
        self.buffers[path] = content
        if self.save:
            Path(path).write_text(content)
        return a.WriteTextFileResponse()

    def on_connect(self, conn: Any) -> None:
        pass

    # -- what was sent -----------------------------------------------------------

    def of(self, kind: type, session_id: str | None = None) -> list[Any]:
        return [
            update
            for sid, update in self.updates
            if isinstance(update, kind) and (session_id is None or sid == session_id)
        ]

    def updates_of(self, session_id: str) -> list[Any]:
        """Every update sent for one session, in order."""
        return [update for sid, update in self.updates if sid == session_id]

    def agent_text(self, session_id: str | None = None) -> str:
        return "".join(u.content.text for u in self.of(a.AgentMessageChunk, session_id))

    def tool_calls(self, session_id: str | None = None) -> dict[str, list[Any]]:
        """Every tool call's updates (its start first), by call id."""
        calls: dict[str, list[Any]] = {}
        for _sid, update in self.updates:
            if isinstance(update, a.ToolCallStart | a.ToolCallProgress):
                calls.setdefault(update.tool_call_id, []).append(update)
        return calls


@asynccontextmanager
async def open_editor(
    daemon: KfdDaemon, editor: Editor | None = None, **env: str
) -> AsyncIterator[tuple[Editor, ClientSideConnection, asyncio.subprocess.Process]]:
    """``kfd acp`` against ``daemon``, connected to an `Editor` (initialised)."""
    editor = editor or Editor()
    async with spawn_agent_process(
        editor,
        sys.executable,
        "-m",
        "kfd",
        "acp",
        env={**daemon.env, **env},
        use_unstable_protocol=True,
    ) as (conn, process):
        yield editor, conn, process
