"""Requests about context and memory: session.compact, session.context, memory.*.

Each answer is a value or a `RequestError` the user can act on; text is
bounded here, before it reaches the model or the store.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from kfd.agent.context import compact_now, context_report
from kfd.agent.memory import InvalidMemory, add_memory
from kfd.agent.recall import project_of
from kfd.errors import RequestError
from kfd.protocol import (
    CompactResult,
    ContextResult,
    MemoryAdd,
    MemoryForget,
    MemoryList,
    MemoryListResult,
    MemoryResult,
    MemorySearch,
    SessionCompact,
    SessionContext,
)
from kfd.store.memory import MemoryStore

if TYPE_CHECKING:
    from kfd.daemon.ports import DaemonPort

ContextRequest = (
    SessionCompact | SessionContext | MemoryList | MemorySearch | MemoryAdd | MemoryForget
)

MAX_INSTRUCTIONS = 2_000
MAX_QUERY = 2_000
MAX_LISTED = 1_000


async def answer(
    daemon: DaemonPort, request: ContextRequest
) -> CompactResult | ContextResult | MemoryListResult | MemoryResult:
    """The result of one context or memory request."""
    store = daemon.runtime.store
    match request:
        case SessionCompact():
            if len(request.instructions) > MAX_INSTRUCTIONS:
                raise RequestError(
                    "bad_request", f"instructions: at most {MAX_INSTRUCTIONS} characters"
                )
            session = await daemon.sessions.get(request.session)
            return await compact_now(session, request.instructions.strip())
        case SessionContext():
            return await context_report(await daemon.sessions.get(request.session))
        case MemoryList():
            project = await _project(request.cwd)
            memories = await MemoryStore(store).recent(
                project=project, scope=request.scope, limit=max(1, min(request.limit, MAX_LISTED))
            )
            return MemoryListResult(memories=memories)
        case MemorySearch():
            if not request.query.strip() or len(request.query) > MAX_QUERY:
                raise RequestError("bad_request", f"query: 1 to {MAX_QUERY} characters")
            project = await _project(request.cwd)
            found = await MemoryStore(store).search(
                request.query, project=project, limit=max(1, min(request.limit, MAX_LISTED))
            )
            return MemoryListResult(memories=found)
        case MemoryAdd():
            if request.scope == "project" and request.cwd is None:
                raise RequestError(
                    "bad_request",
                    "cwd: a project fact needs the project's directory; or use scope global",
                )
            await _project(request.cwd)  # checks it
            try:
                memory, _, _ = await add_memory(
                    store,
                    request.text,
                    scope=request.scope,
                    workspace=request.cwd or "/",
                    source="user",
                )
            except InvalidMemory as exc:
                raise RequestError("bad_request", str(exc)) from None
            return MemoryResult(memory=memory)
        case MemoryForget():
            forgotten = await MemoryStore(store).forget(request.memory_id)
            if forgotten is None:
                raise RequestError(
                    "not_found", f"no remembered fact {request.memory_id}; `kfd memory list`"
                )
            return MemoryResult(memory=forgotten)


async def _project(cwd: str | None) -> str | None:
    """The project of ``cwd`` (its repository root), checked; None for no cwd."""
    if cwd is None:
        return None
    if not os.path.isabs(cwd) or len(cwd) > 4096 or "\0" in cwd:
        raise RequestError("bad_request", f"cwd must be an absolute path, not {cwd[:200]!r}")
    real = await asyncio.to_thread(os.path.realpath, cwd)
    if not await asyncio.to_thread(os.path.isdir, real):
        raise RequestError("bad_request", f"cwd {cwd[:200]!r} is not a directory")
    return await project_of(real)
