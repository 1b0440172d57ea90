"""The ``read`` tool: a text file with line numbers, a window at a time."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, NamedTuple

import msgspec

from kfd.api import PathAccess, Tool, ToolContext, ToolError, ToolResult

from .editor import text_from_editor
from .files import (
    BINARY_SNIFF_BYTES,
    FileStamp,
    display_path,
    open_checked,
    rule_path,
    stamp_key,
    stamps,
)

DEFAULT_LIMIT = 2000
"""Lines shown when the model gives no limit."""

MAX_LINE_CHARS = 2000
"""Longer lines are cut (minified code, data files)."""

MAX_OUTPUT_CHARS = 256 * 1024
"""Output beyond this stops at a line boundary, with a hint to page on."""


class ReadArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of read."""

    path: str
    offset: Annotated[int, msgspec.Meta(ge=1)] = 1
    limit: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_LIMIT


class ReadTool(Tool[ReadArgs]):
    """Read a UTF-8 text file, numbered like ``cat -n``, and remember its hash."""

    name = "read"
    description = (
        "Read a text file, as lines prefixed with their number and a tab (not part of the "
        "file); page long files with offset and limit. Read a file before changing it."
    )
    Args = ReadArgs
    schema_budget = 420
    read_only = True

    def summary(self, args: ReadArgs) -> str:
        """The path, with the line window if one was asked for."""
        if args.offset == 1 and args.limit == DEFAULT_LIMIT:
            return args.path
        return f"{args.path}:{args.offset}-{args.offset + args.limit - 1}"

    def paths(self, args: ReadArgs) -> list[PathAccess]:
        """The file read."""
        return [PathAccess(args.path, write=False)]

    def session_rule(self, args: ReadArgs) -> str:
        """``read(<path>)``, whatever window."""
        return f"read({rule_path(args.path)})"

    async def run(self, args: ReadArgs, ctx: ToolContext) -> ToolResult:
        """Read the window and record the file's stamp for write and edit.

        Where an editor serves the session's files, the text is its buffer's
        (unsaved changes included), once the file passed the disk's checks.
        """
        path = ctx.resolve(args.path)
        label = display_path(path, ctx.workspace)
        text = await text_from_editor(ctx, path, label)
        window = await asyncio.to_thread(
            read_window, path, label, args.offset, args.limit, ctx.workspace, ctx.granted, text
        )
        stamps(ctx)[window.key] = window.stamp
        return ToolResult(output=window.text)


class Window(NamedTuple):
    """A rendered window of a file and the stamp of the whole file."""

    text: str
    key: str
    stamp: FileStamp


def read_window(
    path: Path,
    label: str,
    offset: int,
    limit: int,
    workspace: Path | None = None,
    granted: frozenset[str] = frozenset(),
    text: str | None = None,
) -> Window:
    """Lines ``offset`` to ``offset + limit - 1`` of ``path``, numbered and bounded.

    The file is reached without following a link (`open_target`); one with
    several hard links is read only once the user allowed it. The whole file
    is hashed and checked for UTF-8 (a file read in windows is still one
    stamp), but only the window is kept in memory. ``text``: the file as an
    editor has it, shown (and stamped) instead of the disk's content once the
    file on disk passed the same checks.
    """
    fd = open_checked(path, label, workspace, granted)
    with open(fd, "rb") as handle:
        if b"\0" in handle.read(BINARY_SNIFF_BYTES):
            raise ToolError(
                f"{label} is a binary file (it has NUL bytes); read shows text only. "
                f"Inspect it with bash instead, e.g. `file {label}` or `xxd {label} | head`."
            )
        handle.seek(0)
        info = os.fstat(handle.fileno())
        lines = handle if text is None else io.BytesIO(text.encode("utf-8"))
        return _render(lines, path, label, offset, limit, info)


def _render(
    lines: Iterable[bytes], path: Path, label: str, offset: int, limit: int, info: os.stat_result
) -> Window:
    """The window of ``lines`` (the file's, newline kept) and the stamp of them all."""
    hasher = hashlib.sha256()
    shown: list[str] = []
    size = total = cut = 0
    last = offset - 1
    capped = crlf = False
    for raw in lines:
        hasher.update(raw)
        total += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(
                f"{label} is not UTF-8 text (line {total} has invalid bytes); read "
                "shows UTF-8 text only. Inspect it with bash instead, e.g. `file "
                f"{label}` or `iconv -f latin1 {label} | head`."
            ) from None
        if capped or not offset <= total < offset + limit:
            continue
        line = line.removesuffix("\n")
        if line.endswith("\r"):
            line, crlf = line[:-1], True
        if len(line) > MAX_LINE_CHARS:
            line = f"{line[:MAX_LINE_CHARS]} … [line cut: {len(line):,} characters]"
            cut += 1
        # No padding (``cat -n`` pads to 6): the model needs no alignment, and a
        # result is re-sent with every later request; padding made a file 17 %
        # more tokens.
        entry = f"{total}\t{line}\n"
        if size + len(entry) > MAX_OUTPUT_CHARS:
            capped = True
            continue
        shown.append(entry)
        size += len(entry)
        last = total
    stamp = FileStamp(hasher.hexdigest(), info.st_mtime_ns)
    key = stamp_key(path)
    if total == 0:
        return Window(f"{label} is empty (0 bytes).", key, stamp)
    if offset > total:
        raise ToolError(
            f"offset {offset} is past the end of {label}, which has {total} lines. "
            f"Use an offset from 1 to {total}."
        )
    notes: list[str] = []
    if capped:
        notes.append(
            f"Output capped at {MAX_OUTPUT_CHARS // 1024} KiB: showing lines {offset}-{last} "
            f"of {total}. Continue with offset={last + 1}, or use a smaller limit."
        )
    elif last < total:
        notes.append(f"Showing lines {offset}-{last} of {total}. Continue with offset={last + 1}.")
    if cut:
        notes.append(f"{cut} line(s) longer than {MAX_LINE_CHARS} characters were cut.")
    if crlf:
        notes.append("The file has CRLF (\\r\\n) line endings; the \\r is not shown.")
    text = "".join(shown)
    if notes:
        text += "\n" + "\n".join(f"[{note}]" for note in notes)
    return Window(text, key, stamp)
