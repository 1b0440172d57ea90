"""A planned change to one file: computed without writing, then committed.

write and edit both plan a `Change` (which is all an approval preview
needs) and commit it through the same open directory handle in the same
worker-thread call (`kfd.api.open_beneath`): the freshness check, the
hard-link check and the write concern one file, reached without following
a link, whatever happens to the path meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

from kfd.api import Preview, ToolError

from .files import FileStamp, digest, open_target, stamps

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from kfd.api import Beneath, ToolContext


class Change(NamedTuple):
    """The new content of one file and what it replaces."""

    path: Path
    """The file written (absolute, normalised; no symlink on the way)."""
    key: str
    """The stamp key of the file."""
    label: str
    """The path as shown to the model."""
    old: str | None
    """The current text; None if the file does not exist yet."""
    new: str
    mode: int | None
    """The mode to keep; None for a new file."""
    diff: str
    """Unified diff from ``old`` to ``new`` (three lines of context)."""


class Committed(NamedTuple):
    """A change that is on disk, and the stamp of the written file."""

    change: Change
    stamp: FileStamp


def commit(target: Beneath, change: Change) -> Committed:
    """Write the change atomically through ``target`` (blocking: call from a worker thread).

    A change that changes nothing is not written: the file keeps its mtime.
    """
    data = change.new.encode("utf-8")
    try:
        info = target.lstat() if change.old == change.new else None
        if info is None:
            info = target.replace(data, change.mode)
    except OSError as exc:
        raise ToolError(f"Cannot write {change.label}: {exc.strerror}.") from exc
    return Committed(change, FileStamp(digest(data), info.st_mtime_ns))


async def plan_and_commit(
    ctx: ToolContext,
    path: Path,
    plan: Callable[[Beneath], Change],
    *,
    create_parents: bool = False,
) -> Change:
    """Open, plan and write in one worker-thread hop; record the new stamp."""
    workspace = ctx.workspace

    def work() -> Committed:
        with open_target(workspace, path, create_parents=create_parents) as target:
            return commit(target, plan(target))

    committed = await asyncio.to_thread(work)
    # The model knows the new content (it wrote it): later edits need no re-read.
    stamps(ctx)[committed.change.key] = committed.stamp
    return committed.change


async def preview_of(summary: str, plan: Callable[[], Change]) -> Preview:
    """The approval preview of a planned change.

    A plan that fails raises its `ToolError`: the call would fail as it
    stands, so the daemon gives the model the error instead of asking.
    """
    change = await asyncio.to_thread(plan)
    return Preview(summary=summary, diff=change.diff)
