"""The ``read`` tool: a text file with line numbers, a window at a time."""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, NamedTuple

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

READ_CHUNK_BYTES = 64 * 1024
"""A line is read this many bytes at a time: a file of one huge line (minified,
data) never sits whole in memory."""


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
    handle: IO[bytes], path: Path, label: str, offset: int, limit: int, info: os.stat_result
) -> Window:
    """The window of the file ``handle`` reads and the stamp of all of it."""
    hasher = hashlib.sha256()
    shown: list[str] = []
    size = total = cut = 0
    last = offset - 1
    capped = crlf = False
    for line, length, ends_in_cr in _lines(handle, label, hasher):
        total += 1
        if capped or not offset <= total < offset + limit:
            continue
        crlf = crlf or ends_in_cr
        if length > MAX_LINE_CHARS:
            line = f"{line} … [line cut: {length:,} characters]"
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


def _lines(handle: IO[bytes], label: str, hasher: hashlib._Hash) -> Iterator[tuple[str, int, bool]]:
    """Each line of the file: its first `MAX_LINE_CHARS` characters, its length and
    whether it ended in ``\\r``, both without the newline; every byte hashed.

    Read a bounded chunk at a time (`READ_CHUNK_BYTES`), each checked for UTF-8:
    a file of one huge line never sits whole in memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = _LongLine()
    number = 0
    while True:
        chunk = handle.readline(READ_CHUNK_BYTES)
        hasher.update(chunk)
        try:
            line.add(decoder.decode(chunk, final=not chunk), bool(chunk))
        except UnicodeDecodeError:
            raise ToolError(
                f"{label} is not UTF-8 text (line {number + 1} has invalid bytes); read "
                "shows UTF-8 text only. Inspect it with bash instead, e.g. `file "
                f"{label}` or `iconv -f latin1 {label} | head`."
            ) from None
        if chunk.endswith(b"\n") or (not chunk and line.started):
            number += 1
            yield line.finish()
            line = _LongLine()
        if not chunk:
            return


class _LongLine:
    """A line as it is read, a chunk at a time: its first characters (enough to
    show), its length, and its last two characters (the line end)."""

    def __init__(self) -> None:
        self._head: list[str] = []
        self._kept = 0
        self._length = 0
        self._tail = ""
        self.started = False

    def add(self, piece: str, read: bool) -> None:
        """``piece``: the next characters; ``read``: bytes of the line were read."""
        self.started = self.started or read
        room = MAX_LINE_CHARS - self._kept
        if room > 0 and piece:
            self._head.append(piece[:room])
            self._kept += min(room, len(piece))
        self._length += len(piece)
        self._tail = (self._tail + piece)[-2:]

    def finish(self) -> tuple[str, int, bool]:
        """(its first characters, its length, whether it ended in ``\\r``), the line
        end left out."""
        length, tail = self._length, self._tail
        if tail.endswith("\n"):
            length, tail = length - 1, tail[:-1]
        ends_in_cr = tail.endswith("\r")
        length -= ends_in_cr
        return "".join(self._head)[:length], length, ends_in_cr
