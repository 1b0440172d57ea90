"""The ``edit`` tool: exact string replacement in a file the model has read."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from kfd.api import PathAccess, Preview, Tool, ToolContext, ToolError, ToolResult

from .changes import Change, plan_and_commit, preview_of
from .editor import Existing, change_through_editor, in_editor
from .files import (
    FileStamp,
    check_fresh,
    decode_text,
    display_path,
    load_existing,
    missing_file_error,
    open_target,
    rule_path,
    stamp_key,
    stamps,
    unified_diff,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kfd.api import Beneath

RESULT_DIFF_CONTEXT = 2
"""Context lines of the diff the model reads back (the display keeps 3)."""

MAX_LINES_LISTED = 10
"""Occurrence line numbers named in an error, at most."""

CLOSEST_LINE_SCAN = 20_000
"""Files up to this many lines get a "closest line" hint when nothing matched."""


class EditArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of edit."""

    path: str
    old_string: str
    new_string: str
    replace_all: bool = False


class EditTool(Tool[EditArgs]):
    """Replace an exact string in a file, refusing stale or ambiguous edits."""

    name = "edit"
    description = (
        "Replace text in a file read in this session; returns the diff. old_string must "
        "match exactly (indentation too, no line numbers) and be unique: add surrounding "
        "lines, or set replace_all."
    )
    Args = EditArgs
    schema_budget = 460
    edits_files = True
    writes_only_paths = True

    def summary(self, args: EditArgs) -> str:
        """The path edited."""
        return args.path

    def paths(self, args: EditArgs) -> list[PathAccess]:
        """The file edited."""
        return [PathAccess(args.path, write=True)]

    def session_rule(self, args: EditArgs) -> str:
        """``edit(<path>)``."""
        return f"edit({rule_path(args.path)})"

    async def preview(self, args: EditArgs, ctx: ToolContext) -> Preview:
        """The diff the edit would make (to the editor's text where an editor serves
        the file)."""
        path = ctx.resolve(args.path)
        label = display_path(path, ctx.workspace)
        table = dict(stamps(ctx))
        workspace, granted = ctx.workspace, ctx.granted
        view = await in_editor(ctx, path, label)
        if view is not None:
            return await preview_of(
                f"edit {label}", lambda: plan_edit_over(view.existing, path, label, args, table)
            )

        def plan() -> Change:
            with open_target(workspace, path) as target:
                return plan_edit(target, path, label, args, table, granted)

        return await preview_of(f"edit {label}", plan)

    async def run(self, args: EditArgs, ctx: ToolContext) -> ToolResult:
        """Apply the edit (through the editor that serves the file, if one does),
        return a compact diff, remember the new stamp."""
        path = ctx.resolve(args.path)
        label = display_path(path, ctx.workspace)
        table = dict(stamps(ctx))
        granted = ctx.granted
        change = await change_through_editor(
            ctx, path, label, lambda existing: plan_edit_over(existing, path, label, args, table)
        )
        if change is None:
            change = await plan_and_commit(
                ctx, path, lambda target: plan_edit(target, path, label, args, table, granted)
            )
        assert change.old is not None  # edit never creates a file
        old_string = _matching_form(change.old, args.old_string)
        lines = occurrence_lines(change.old, old_string)
        if not args.replace_all:
            lines = lines[:1]
        where = _line_list(lines)
        count = len(lines)
        compact = unified_diff(change.old, change.new, label, context=RESULT_DIFF_CONTEXT)
        summary = f"Edited {label}: replaced {count} occurrence{'s' if count > 1 else ''}"
        output = f"{summary} ({where}).\n{compact}"
        return ToolResult(output=output, display=Preview(summary=summary, diff=change.diff))


def plan_edit(
    target: Beneath,
    path: Path,
    label: str,
    args: EditArgs,
    table: Mapping[str, FileStamp],
    granted: frozenset[str] = frozenset(),
) -> Change:
    """The change the edit makes through ``target`` (the file's directory held open),
    or a ToolError saying why it cannot (blocking)."""
    _check_strings(args)
    return plan_edit_over(load_existing(target, label, granted), path, label, args, table)


def _check_strings(args: EditArgs) -> None:
    if not args.old_string:
        raise ToolError(
            "old_string is empty. To create a file or replace all of its content, use write."
        )
    if args.old_string == args.new_string:
        raise ToolError("old_string and new_string are identical; the edit would change nothing.")


def plan_edit_over(
    existing: Existing,
    path: Path,
    label: str,
    args: EditArgs,
    table: Mapping[str, FileStamp],
) -> Change:
    """The change the edit makes to ``existing`` (the file's bytes and mode; None:
    there is no file), or a ToolError saying why it cannot."""
    _check_strings(args)
    key = stamp_key(path)
    if existing is None:
        raise ToolError(f"{missing_file_error(path, label)} To create a new file, use write.")
    data, mode = existing
    check_fresh(label, data, table.get(key))
    text = decode_text(data, label)
    old_string = _matching_form(text, args.old_string)
    new_string = args.new_string
    if old_string != args.old_string:
        new_string = new_string.replace("\r\n", "\n").replace("\n", "\r\n")
    count = text.count(old_string)
    if count == 0:
        raise ToolError(_not_found(text, args.old_string, label))
    if count > 1 and not args.replace_all:
        lines = occurrence_lines(text, old_string)
        raise ToolError(
            f"old_string appears {count} times in {label} (at {_line_list(lines)}). "
            "Include more surrounding lines to make it unique, or set replace_all to true "
            "to replace every occurrence."
        )
    new = text.replace(old_string, new_string, -1 if args.replace_all else 1)
    return Change(path, key, label, text, new, mode, unified_diff(text, new, label))


def _matching_form(text: str, old_string: str) -> str:
    """``old_string`` with CRLF line breaks if only that spelling is in a CRLF file.

    The model writes ``\\n``; a Windows-style file has ``\\r\\n``.
    """
    if old_string in text or "\n" not in old_string or "\r\n" not in text:
        return old_string
    crlf = old_string.replace("\r\n", "\n").replace("\n", "\r\n")
    return crlf if crlf in text else old_string


def occurrence_lines(text: str, needle: str) -> list[int]:
    """1-based line numbers where each (non-overlapping) occurrence starts."""
    lines: list[int] = []
    line = 1
    scanned = 0
    start = text.find(needle)
    while start >= 0:
        line += text.count("\n", scanned, start)
        scanned = start
        lines.append(line)
        start = text.find(needle, start + len(needle))
    return lines


def _line_list(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:MAX_LINES_LISTED])
    more = len(lines) - MAX_LINES_LISTED
    prefix = "lines " if len(lines) > 1 else "line "
    return f"{prefix}{shown}" + (f" and {more} more" if more > 0 else "")


def _not_found(text: str, old_string: str, label: str) -> str:
    message = (
        f"old_string was not found in {label}. It must match the file exactly, including "
        "whitespace, indentation (tabs or spaces) and line breaks, without read's "
        "line-number prefixes."
    )
    if " ".join(old_string.split()) in " ".join(text.split()):
        message += (
            " It does match when whitespace is ignored: copy the exact indentation and "
            "line breaks from the file."
        )
    else:
        closest = _closest_line(text, old_string)
        if closest is not None:
            number, line = closest
            message += f" The closest line in the file is line {number}: {line!r}."
    return message + " Read the file again if you are unsure of its current content."


def _closest_line(text: str, old_string: str) -> tuple[int, str] | None:
    """The file line most like the first non-blank line of ``old_string``."""
    wanted = next((line.strip() for line in old_string.splitlines() if line.strip()), "")
    lines = text.splitlines()
    if not wanted or len(lines) > CLOSEST_LINE_SCAN:
        return None
    stripped = [line.strip() for line in lines]
    match = difflib.get_close_matches(wanted, stripped, n=1, cutoff=0.6)
    if not match:
        return None
    number = stripped.index(match[0])
    return number + 1, lines[number]
