"""Project instructions: AGENTS.md, KFD.md and CLAUDE.md files, found and capped.

Read in this order, so that the more specific file comes later and wins a
disagreement: the user's global file in ``$XDG_CONFIG_HOME/kfd/``, then every
directory from the repository root down to the workspace. Within a directory
the names are read in the order of `NAMES`; a file that is the same file as
one already read (``CLAUDE.md`` a symlink to ``AGENTS.md``) is read once.

What is read goes to the model unasked, so it meets the rules of the model's
own ``read`` (`kfd.policy.judge_paths`): a file is left out, with a note in
its place saying why (never its content), when a read rule denies or asks
about it under its name or where it really leads (``AGENTS.md`` a link to
``.env``, or to ``secrets/`` that the user's rule denies), when it leads
outside its home (the repository, or the user's config directory for the
global file), or when it has several hard links (its other names are
unknown: it may be a key file anywhere). The caller passes the read rules as
a predicate (`kfd.policy.rulebook.RuleBook.read_guard`). Anything but a
regular file (a FIFO the model made) is left out too, with a note, and never
waited on (`kfd.regular`).

Each file is cut past a byte budget, at a line break, with a note saying how
much was left out and where; past the total budget later files are cut
harder. Plain blocking file I/O: call `find_instructions` in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from kfd.git import is_marker
from kfd.regular import NotRegular, open_regular

log = logging.getLogger(__name__)

NAMES = ("AGENTS.md", "KFD.md", "CLAUDE.md")
"""Instruction file names, read in this order within a directory."""

MAX_READ_BYTES = 1024 * 1024
"""Bytes read of one file at most, whatever its size (the rest is cut anyway)."""

ReadDenied = Callable[[str], str | None]
"""The read rule (``read(**/.env)``) that denies or asks before reading an
absolute, normalised path, or None (`kfd.policy.read_guard.ReadGuard`)."""


class InstructionFile(NamedTuple):
    """One instruction file as the model reads it."""

    path: Path
    label: str
    """How the model and ``/context`` name it: relative to the repository
    root, or ``global`` for the user's file."""
    text: str
    size: int
    """Bytes of the whole file."""
    cut: bool
    left_out: str = ""
    """Why the file was not read (its ``text`` is then empty), or ``''``."""

    @property
    def listed(self) -> str:
        """How ``/context`` lists it: the label, with ``(cut)`` or ``(left out)``."""
        if self.left_out:
            return f"{self.label} (left out)"
        return f"{self.label} (cut)" if self.cut else self.label


def project_root(workspace: Path) -> Path:
    """The repository root containing ``workspace``, else itself.

    A root holds a ``.git`` that looks like a repository's (`kfd.git.is_marker`):
    the empty ``.git`` the sandbox puts in a workspace inside a repository, so
    that none can be planted there, does not move the root (nor the rules and
    memories that belong to it).
    """
    for directory in (workspace, *workspace.parents):
        if is_marker(directory / ".git"):
            return directory
    return workspace


def candidates(workspace: Path, global_dir: Path) -> list[tuple[Path, str]]:
    """(path, label) of every place an instruction file may be, in reading order."""
    found: list[tuple[Path, str]] = [(global_dir / name, f"global {name}") for name in NAMES]
    return found + project_candidates(workspace)


def project_candidates(workspace: Path) -> list[tuple[Path, str]]:
    """(path, label) of every place in the project an instruction file may be:
    each directory from the repository root down to ``workspace``."""
    root = project_root(workspace)
    chain = [workspace]
    if root != workspace:
        chain = [*reversed([d for d in workspace.parents if d.is_relative_to(root)]), workspace]
    found: list[tuple[Path, str]] = []
    for directory in chain:
        for name in NAMES:
            path = directory / name
            found.append((path, str(path.relative_to(root))))
    return found


def signature(workspace: Path, global_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when an instruction file is added, removed or edited."""
    stamps = []
    for path, _ in candidates(workspace, global_dir):
        try:
            info = path.stat()
        except OSError:
            continue
        stamps.append((str(path), info.st_mtime_ns, info.st_size))
    return tuple(stamps)


def find_instructions(
    workspace: Path,
    global_dir: Path,
    *,
    per_file: int,
    total: int,
    read_denied: ReadDenied | None = None,
) -> list[InstructionFile]:
    """The instruction files that apply to ``workspace``, read and capped; a file
    the model may not read unasked comes with why it was left out instead."""
    files: list[InstructionFile] = []
    seen: set[tuple[int, int]] = set()
    budget = total
    root = os.path.realpath(project_root(workspace))
    for path, label in candidates(workspace, global_dir):
        try:
            fd, info = open_regular(path)
        except NotRegular as exc:
            # A FIFO named AGENTS.md would hold the thread forever were it read.
            unread = exc.strerror or "it is not a regular file"
            log.warning("instruction file %s left out: %s", path, unread)
            files.append(InstructionFile(path, label, "", 0, False, unread))
            continue
        except OSError:
            continue  # absent, unreadable or vanished: nothing to follow
        try:
            with os.fdopen(fd, "rb") as handle:
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                # What was opened, wherever the name led (a command can make
                # AGENTS.md a link to ~/.aws/credentials): judged before a byte is read.
                where = os.readlink(f"/proc/self/fd/{handle.fileno()}")
                home = str(global_dir) if label.startswith("global ") else root
                why = _why_left_out(str(path), where, info.st_nlink, home, read_denied)
                data = b"" if why else handle.read(min(info.st_size, MAX_READ_BYTES))
        except OSError:
            continue  # unreadable or vanished: nothing to follow
        if why:
            log.warning("instruction file %s left out: %s", path, why)
            files.append(InstructionFile(path, label, "", info.st_size, False, why))
            continue
        if not data.strip():
            continue
        limit = max(0, min(per_file, budget))
        text, cut = cap_text(data, limit, info.st_size, label)
        budget -= min(len(data), limit)
        files.append(InstructionFile(path, label, text, info.st_size, cut))
    return files


def _why_left_out(
    path: str, where: str, links: int, home: str, read_denied: ReadDenied | None
) -> str | None:
    """Why the file named ``path``, opened at the real path ``where``, is not given
    to the model, or None. The reason names paths, never content."""
    path = os.path.abspath(path)
    home = os.path.realpath(home)
    own = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    target = f"it is a link to {where}, which" if where != own else "it"
    if read_denied is not None:
        for name in dict.fromkeys((path, where)):
            rule = read_denied(name)
            if rule is not None:
                return f"{target} is kept from the model unasked by the read rule {rule}"
    if not _within(where, home):
        return f"it is a link to {where}, outside {home}"
    if links > 1:
        return (
            f"it has {links} hard links, so it may be another file too (a key or a "
            "secret outside the project); make it a copy or a symbolic link to be read"
        )
    return None


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def cap_text(data: bytes, limit: int, size: int, label: str) -> tuple[str, bool]:
    """The file's text cut to ``limit`` bytes at a line break, with a note if cut."""
    if size <= limit and len(data) == size:
        return data.decode("utf-8", "replace").rstrip(), False
    head = data[:limit]
    newline = head.rfind(b"\n")
    if newline > limit // 2:
        head = head[: newline + 1]
    text = head.decode("utf-8", "ignore").rstrip()
    note = (
        f"[… {label} is cut here: {size - len(head):,} more bytes not shown; "
        f"read the file for the rest]"
    )
    return (f"{text}\n{note}" if text else note), True


def render(files: list[InstructionFile]) -> str:
    """The instructions section of the system prompt ('' when there are none)."""
    if not files:
        return ""
    parts = [
        "# Project instructions\n"
        "From the user and the repository; a later (more specific) file wins over an earlier one."
    ]
    for file in files:
        if file.left_out:
            note = f"[{file.label} is left out, its content not shown: {file.left_out}]"
            parts.append(f"## {file.label}\n{note}")
        else:
            parts.append(f"## {file.label}\n{file.text}")
    return "\n\n".join(parts) + "\n"
