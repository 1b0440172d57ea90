"""``read_output``: the model pages through a tool output that was cut.

`kfd.agent.truncate.cap` keeps the head and tail of a long result for the
model and names the call id; the whole output is in the store
(``tool_outputs``). This tool reads it back a window of lines at a time. A
forked session reads the outputs of the history it shares with its parent.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from kfd.api import Tool, ToolContext, ToolError, ToolResult
from kfd.store.db import Store

DEFAULT_LINES = 400
PAGE_CHARS = 20_000
"""A page stays well under the cap for one result, so it is never cut itself."""
LINE_CHARS = 2_000
MAX_FORK_DEPTH = 32


class ReadOutputArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of read_output."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    offset: Annotated[int, msgspec.Meta(ge=1)] = 1
    limit: Annotated[int, msgspec.Meta(ge=1, le=5_000)] = DEFAULT_LINES


class ReadOutputTool(Tool[ReadOutputArgs]):
    """Read a window of lines of a cut tool output, by id."""

    name = "read_output"
    description = "Page through a cut tool result, by the output id the cut names."
    Args = ReadOutputArgs
    schema_budget = 340
    read_only = True

    def __init__(self, store: Store) -> None:
        self._store = store

    def summary(self, args: ReadOutputArgs) -> str:
        return f"{args.id} from line {args.offset}"

    async def run(self, args: ReadOutputArgs, ctx: ToolContext) -> ToolResult:
        output = await self._find(ctx.session_id, args.id)
        if output is None:
            raise ToolError(
                f"no kept output `{args.id}`: only results that were cut are kept, by the id "
                "their cut marker names; a result that was not cut is already whole above"
            )
        return ToolResult(output=page(output, args.id, args.offset, args.limit))

    async def _find(self, session_id: str, call_id: str) -> str | None:
        """The output in this session, or in the sessions it was forked from."""
        current: str | None = session_id
        for _ in range(MAX_FORK_DEPTH):
            if current is None:
                return None
            output = await self._store.tool_output(current, call_id)
            if output is not None:
                return output
            info = await self._store.session(current)
            current = info.forked_from if info is not None else None
        return None


def page(output: str, output_id: str, offset: int, limit: int) -> str:
    """Lines ``offset``.. of ``output``, at most ``limit`` lines and `PAGE_CHARS`."""
    lines = output.splitlines()
    total = len(lines)
    if offset > total:
        return f"[output {output_id} has {total} lines; offset {offset} is past the end]"
    shown: list[str] = []
    size = 0
    for line in lines[offset - 1 : offset - 1 + limit]:
        if len(line) > LINE_CHARS:
            line = f"{line[:LINE_CHARS]} [… line cut: {len(line) - LINE_CHARS} more characters]"
        if shown and size + len(line) + 1 > PAGE_CHARS:
            break
        shown.append(line)
        size += len(line) + 1
    last = offset + len(shown) - 1
    header = f"[output {output_id}: lines {offset}-{last} of {total}"
    if last < total:
        header += f"; next: read_output(id={output_id!r}, offset={last + 1})"
    return header + "]\n" + "\n".join(shown)
