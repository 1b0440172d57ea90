"""After a tool ran: the plugins' `kfd.api.AfterToolHook` notes, appended to its result.

Every hook sees the call concurrently and is bounded in time; a hook that
fails or is too slow adds nothing (and is logged), so no plugin can lose or
hold up a result.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from kfd.api import AfterToolHook, FinishedCall, Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

HOOK_TIMEOUT_S = 15.0
"""Longest wait for one hook's note (a language server re-checking a file)."""


async def after_tool(
    hooks: Sequence[AfterToolHook],
    session_id: str,
    tool: Tool[Any],
    raw: dict[str, Any],
    args: msgspec.Struct,
    result: ToolResult,
    ctx: ToolContext,
) -> ToolResult:
    """``result`` with every hook's note appended to its output."""
    if not hooks:
        return result
    call = FinishedCall(
        session_id=session_id,
        tool=tool.name,
        arguments=raw,
        paths=list(tool.paths(args)),
        read_only=tool.read_only,
        edits_files=tool.edits_files,
    )
    notes = await asyncio.gather(*(_note(hook, call, result, ctx) for hook in hooks))
    added = [note.strip() for note in notes if note and note.strip()]
    if not added:
        return result
    return msgspec.structs.replace(result, output="\n\n".join([result.output, *added]))


async def _note(
    hook: AfterToolHook, call: FinishedCall, result: ToolResult, ctx: ToolContext
) -> str | None:
    name = getattr(hook, "name", type(hook).__name__)
    # A hook that bounds itself (shell hooks: each its own timeout_s) says how long.
    timeout = float(getattr(hook, "timeout_s", HOOK_TIMEOUT_S))
    try:
        async with asyncio.timeout(timeout):
            return await hook.after_tool(call, result, ctx)
    except TimeoutError:
        log.warning("after-tool hook %s gave no note within %g s", name, timeout)
    except Exception:
        log.exception("after-tool hook %s failed", name)
    return None
