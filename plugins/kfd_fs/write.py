"""The ``write`` tool: create a file, or replace one the model has read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec

from kfd.api import (
    NotBeneath,
    PathAccess,
    Preview,
    Tool,
    ToolContext,
    ToolError,
    ToolResult,
    open_beneath,
)

from .changes import Change, plan_and_commit, preview_of
from .editor import Existing, change_through_editor, in_editor
from .files import (
    FileStamp,
    check_fresh,
    count_lines,
    display_path,
    load_existing,
    rule_path,
    stamp_key,
    stamps,
    unified_diff,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kfd.api import Beneath


class WriteArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of write."""

    path: str
    content: Annotated[str, msgspec.Meta(description="The whole file.")]


class WriteTool(Tool[WriteArgs]):
    """Write a whole file atomically, refusing to clobber unseen content."""

    name = "write"
    description = (
        "Create a file or replace all of it (parent directories are created); read an "
        "existing file first. To change part of a file, use edit."
    )
    Args = WriteArgs
    schema_budget = 360
    edits_files = True
    writes_only_paths = True

    def summary(self, args: WriteArgs) -> str:
        """The path written."""
        return args.path

    def paths(self, args: WriteArgs) -> list[PathAccess]:
        """The file written."""
        return [PathAccess(args.path, write=True)]

    def session_rule(self, args: WriteArgs) -> str:
        """``write(<path>)``."""
        return f"write({rule_path(args.path)})"

    async def preview(self, args: WriteArgs, ctx: ToolContext) -> Preview:
        """The diff the write would make (from /dev/null for a new file), over the
        editor's text where an editor serves the file."""
        path = ctx.resolve(args.path)
        label = display_path(path, ctx.workspace)
        table = dict(stamps(ctx))
        workspace, granted = ctx.workspace, ctx.granted
        view = await in_editor(ctx, path, label)
        if view is not None:
            return await preview_of(
                f"write {label}", lambda: plan_write_over(view.existing, path, label, args, table)
            )

        def plan() -> Change:
            try:
                target = open_beneath(workspace, path)
            except FileNotFoundError:  # its directory is missing: a new file
                return plan_write(None, path, label, args, table, granted)
            except NotBeneath as exc:
                raise ToolError(str(exc)) from None
            with target:
                return plan_write(target, path, label, args, table, granted)

        return await preview_of(f"write {label}", plan)

    async def run(self, args: WriteArgs, ctx: ToolContext) -> ToolResult:
        """Write the file (through the editor that serves it, if one does) and
        remember its new stamp."""
        path = ctx.resolve(args.path)
        label = display_path(path, ctx.workspace)
        table = dict(stamps(ctx))
        granted = ctx.granted
        change = await change_through_editor(
            ctx,
            path,
            label,
            lambda existing: plan_write_over(existing, path, label, args, table),
            create_parents=True,
        )
        if change is None:
            change = await plan_and_commit(
                ctx,
                path,
                lambda target: plan_write(target, path, label, args, table, granted),
                create_parents=True,
            )
        lines = count_lines(args.content)
        if change.old is None:
            output = f"Created {label} ({lines} lines)."
        elif change.old == change.new:
            output = f"{label} already had this content; nothing was written."
        else:
            output = f"Overwrote {label} ({lines} lines)."
        return ToolResult(output=output, display=Preview(summary=output, diff=change.diff))


def plan_write(
    target: Beneath | None,
    path: Path,
    label: str,
    args: WriteArgs,
    table: Mapping[str, FileStamp],
    granted: frozenset[str] = frozenset(),
) -> Change:
    """The change writing ``args.content`` to ``path`` makes (blocking); ``target`` is its
    directory held open, None when that directory does not exist yet."""
    existing = None if target is None else load_existing(target, label, granted)
    return plan_write_over(existing, path, label, args, table)


def plan_write_over(
    existing: Existing,
    path: Path,
    label: str,
    args: WriteArgs,
    table: Mapping[str, FileStamp],
) -> Change:
    """The change writing ``args.content`` over ``existing`` (its bytes and mode;
    None: no file yet) makes."""
    key = stamp_key(path)
    if existing is None:
        old, mode = None, None
    else:
        data, mode = existing
        check_fresh(label, data, table.get(key))
        # For the diff only: a non-UTF-8 file being replaced still gets a readable diff.
        old = data.decode("utf-8", "replace")
    diff = unified_diff(old, args.content, label)
    return Change(path, key, label, old, args.content, mode, diff)
