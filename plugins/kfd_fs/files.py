"""File plumbing shared by the fs tools: read stamps, race-free access, diffs.

Files are reached with `kfd.api.open_beneath`: no symbolic link is followed
at any component, and what is checked (type, size, hard links, content) and
what is written go through the one open handle of the parent directory, so
a link swapped in after the policy decided cannot redirect a read or a
write (`open_target`).

Everything here is synchronous and meant to run in a worker thread
(``asyncio.to_thread``); the tools keep the event loop free.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kfd.api import HARD_LINKS, ApprovalNeeded, NotBeneath, ToolError, open_beneath

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kfd.api import Beneath, ToolContext

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
    """The stamp key of a path: absolute and normalised (no tool follows a link, so
    there is one spelling of each file they reach)."""
    return os.path.normpath(path)


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


def open_target(workspace: Path, path: Path, *, create_parents: bool = False) -> Beneath:
    """The directory of ``path`` held open, reached without following a link.

    A symlink on the way is a ToolError naming where it points.
    """
    try:
        return open_beneath(workspace, path, create_parents=create_parents)
    except NotBeneath as exc:
        raise ToolError(str(exc)) from None
    except FileNotFoundError:
        raise missing_file_error(path, display_path(path, workspace)) from None
    except OSError as exc:
        raise ToolError(f"Cannot reach {path}: {exc.strerror}.") from exc


def check_links(info: os.stat_result, label: str, granted: frozenset[str]) -> None:
    """Ask before touching a file that has several hard links (it is also elsewhere)."""
    if info.st_nlink > 1 and HARD_LINKS not in granted:
        raise ApprovalNeeded(
            f"{label} has {info.st_nlink} hard links: the same file is also elsewhere, "
            "possibly outside the workspace. Go on with it?",
            grant=HARD_LINKS,
        )


def load_existing(
    target: Beneath, label: str, granted: frozenset[str] = frozenset()
) -> tuple[bytes, int] | None:
    """The bytes and mode of the file, or None if there is none (through ``target``)."""
    try:
        found = target.read(MAX_EDIT_BYTES)
    except NotBeneath as exc:
        raise ToolError(str(exc)) from None
    except IsADirectoryError:
        raise ToolError(f"{label} is a directory, not a file. Give the path of a file.") from None
    except ValueError:
        raise ToolError(
            f"{label} is not a regular file; only regular files can be changed."
        ) from None
    except OSError as exc:
        raise ToolError(f"Cannot read {label}: {exc.strerror}.") from exc
    if found is None:
        return None
    data, info = found
    if info.st_size > MAX_EDIT_BYTES:
        raise ToolError(
            f"{label} is {info.st_size:,} bytes, more than the {MAX_EDIT_BYTES:,} that write "
            "and edit handle. Change it with a command through bash instead."
        )
    check_links(info, label, granted)
    return data, info.st_mode


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


def check_readable(
    path: Path, label: str, workspace: Path, granted: frozenset[str] = frozenset()
) -> None:
    """Raise the `ToolError` `read_window` would for the file on disk, reading no
    more than its first bytes (before an editor is asked for its text)."""
    with open(open_checked(path, label, workspace, granted), "rb") as handle:
        if b"\0" in handle.read(BINARY_SNIFF_BYTES):
            raise ToolError(f"{label} is a binary file (it has NUL bytes); read shows text only.")


def open_checked(path: Path, label: str, workspace: Path | None, granted: frozenset[str]) -> int:
    """A descriptor of the regular file ``path``, reached without a link, its hard
    links consented to; a `ToolError` saying why not otherwise."""
    with open_target(workspace or Path("/"), path) as target:
        try:
            fd = target.open()  # O_NONBLOCK: opening a FIFO must not hang the worker thread
        except NotBeneath as exc:
            raise ToolError(str(exc)) from None
        except FileNotFoundError:
            raise missing_file_error(path, label) from None
        except OSError as exc:
            raise ToolError(f"Cannot read {label}: {exc.strerror}.") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ToolError(
                f"{label} is a directory. Use glob to list its files "
                f"(e.g. pattern='*' path='{label}')."
            )
        raise ToolError(f"{label} is not a regular file (a device, socket or FIFO).")
    try:
        check_links(info, label, granted)
    except BaseException:
        os.close(fd)
        raise
    return fd
