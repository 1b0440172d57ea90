"""File plumbing shared by the fs tools: read stamps, atomic writes, diffs.

Everything here is synchronous and meant to run in a worker thread
(``asyncio.to_thread``); the tools keep the event loop free.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kfd.api import ToolError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kfd.api import ToolContext

STAMPS_KEY = "read_files"
"""Key of the read stamps in the plugin's session state."""

BINARY_SNIFF_BYTES = 8192
"""A NUL byte in this many leading bytes marks a file as binary (like git)."""

MAX_EDIT_BYTES = 16 * 1024 * 1024
"""write and edit hold the whole file in memory; larger files are refused."""


class FileStamp(NamedTuple):
    """A file as the model last saw it: content hash and modification time."""

    sha256: str
    mtime_ns: int


def stamps(ctx: ToolContext) -> dict[str, FileStamp]:
    """The session's read stamps, keyed by real path."""
    table: dict[str, FileStamp] = ctx.state.setdefault(STAMPS_KEY, {})
    return table


def stamp_key(path: Path) -> str:
    """The stamp key of a path: symlinks followed, so every spelling agrees."""
    return os.path.realpath(path)


def digest(data: bytes) -> str:
    """The content hash kept in a stamp."""
    return hashlib.sha256(data).hexdigest()


def display_path(path: Path, workspace: Path) -> str:
    """``path`` relative to the workspace when inside it, else absolute."""
    try:
        return path.relative_to(workspace).as_posix() or "."
    except ValueError:
        return str(path)


def rule_path(path: str) -> str:
    """The path of a session rule: as the model wrote it, normalised."""
    return os.path.normpath(path) if path else "."


def check_fresh(label: str, data: bytes, expected: FileStamp | None) -> None:
    """Refuse to change a file the model has not read, or that changed since."""
    if expected is None:
        raise ToolError(
            f"{label} exists but you have not read it in this session. "
            "Read it first with the read tool, then retry: this keeps you from "
            "overwriting content you have not seen."
        )
    if digest(data) != expected.sha256:
        raise ToolError(
            f"{label} has changed since you last read it (the user, a formatter or a "
            "command modified it). Read it again, then redo your change against the "
            "current content."
        )


def load_existing(path: Path, label: str) -> tuple[bytes, int] | None:
    """The bytes and mode of the file at ``path``, or None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ToolError(f"Cannot access {label}: {exc.strerror}.") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{label} is a directory, not a file. Give the path of a file.")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{label} is not a regular file; only regular files can be changed.")
    if st.st_size > MAX_EDIT_BYTES:
        raise ToolError(
            f"{label} is {st.st_size:,} bytes, more than the {MAX_EDIT_BYTES:,} that write "
            "and edit handle. Change it with a command through bash instead."
        )
    try:
        return Path(path).read_bytes(), st.st_mode
    except OSError as exc:
        raise ToolError(f"Cannot read {label}: {exc.strerror}.") from exc


def decode_text(data: bytes, label: str) -> str:
    """``data`` as UTF-8 text, or a ToolError saying the file is not text."""
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise ToolError(f"{label} is a binary file (it contains NUL bytes); it cannot be edited.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(
            f"{label} is not valid UTF-8 text (bad byte at offset {exc.start}); "
            "it cannot be edited with this tool."
        ) from exc


def write_atomic(path: Path, data: bytes, mode: int | None) -> os.stat_result:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half.

    The temporary file lives in the same directory (``os.replace`` is atomic
    only within a filesystem). ``mode`` is the mode to keep; a new file gets
    the default mode under the process umask, as any editor would create it.
    """
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        temp = parent / f".kfd-{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), stat.S_IMODE(mode))
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(parent)
    return os.stat(path)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def unified_diff(old: str | None, new: str, label: str, context: int = 3) -> str:
    """A git-style unified diff of ``old`` (None: file created) to ``new``."""
    lines = difflib.unified_diff(
        [] if old is None else old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{label}",
        tofile=f"b/{label}",
        n=context,
    )
    return "".join(_terminated(lines))


def _terminated(lines: Iterable[str]) -> Iterable[str]:
    # difflib leaves a last line without newline unterminated; mark it like git.
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n\\ No newline at end of file\n"


def count_lines(text: str) -> int:
    """Lines in ``text``; a last line without newline counts."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def similar_names(path: Path, limit: int = 3) -> list[str]:
    """Names in ``path``'s directory that look like its name (cheap: bounded scan)."""
    names: list[str] = []
    try:
        with os.scandir(path.parent) as entries:
            for index, entry in enumerate(entries):
                if index >= 5000:
                    break
                names.append(entry.name)
    except OSError:
        return []
    wanted = path.name
    lowered = {name.lower(): name for name in names}
    close = difflib.get_close_matches(wanted.lower(), list(lowered), n=limit, cutoff=0.6)
    found = [lowered[name] for name in close]
    stem = wanted.split(".")[0]
    for name in names:
        if len(found) >= limit:
            break
        if name not in found and stem and name.split(".")[0] == stem:
            found.append(name)
    return found


def missing_file_error(path: Path, label: str) -> ToolError:
    """The error for a path that does not exist, with near names if any."""
    if not path.parent.is_dir():
        return ToolError(
            f"{label} does not exist, nor does its directory. "
            "Use glob to find the file (e.g. pattern='**/" + path.name + "')."
        )
    suggestions = similar_names(path)
    if suggestions:
        near = ", ".join(display_path_like(label, name) for name in suggestions)
        return ToolError(f"{label} does not exist. Did you mean: {near}?")
    return ToolError(f"{label} does not exist. Use glob to find the file you are looking for.")


def display_path_like(label: str, name: str) -> str:
    """``name`` placed in the directory of ``label``, spelled the same way."""
    directory = os.path.dirname(label)
    return os.path.join(directory, name) if directory else name
