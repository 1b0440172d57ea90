"""Which changed files count for a trigger, and what a prompt shows of them.

Skipped always: anything under ``.git`` and other VCS or tool caches, any
virtualenv (a directory holding ``pyvenv.cfg``), and what git ignores. Then
the trigger's ``paths`` globs select and its ``ignore`` globs drop. Globs use
gitignore syntax (`pathspec`), relative to the workspace: ``*.py`` matches at
any depth, ``src/**/*.py`` only under ``src``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pathspec

from kfd import git
from kfd.beneath import NotBeneath
from kfd.regular import NotRegular, open_regular, read_regular

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
    }
)

DIFF_LIMIT = 20_000
"""Characters of diff a prompt carries at most."""

NEW_FILE_LINES = 200

MAX_HASHED_BYTES = 64 * 1024 * 1024
"""Larger files are not hashed: any event on them counts as a change."""

ARGUMENTS_PER_CALL = 500
"""Paths named on one git command line (a checkout may change tens of thousands)."""


class FileFilter:
    """Decides from a path alone (relative to the workspace) whether it counts."""

    def __init__(self, workspace: Path, paths: list[str], ignore: list[str]) -> None:
        self.workspace = workspace
        self._wanted = pathspec.PathSpec.from_lines("gitwildmatch", paths)
        self._ignored = pathspec.PathSpec.from_lines("gitwildmatch", ignore)
        self._venvs: dict[Path, bool] = {}

    def wanted(self, relative: str) -> bool:
        parts = Path(relative).parts
        if not parts or parts[0] == ".." or any(part in SKIPPED_DIRS for part in parts[:-1]):
            return False
        if self._ignored.match_file(relative) or not self._wanted.match_file(relative):
            return False
        return not self._in_virtualenv(parts)

    def _in_virtualenv(self, parts: tuple[str, ...]) -> bool:
        directory = self.workspace
        for part in parts[:-1]:
            directory = directory / part
            known = self._venvs.get(directory)
            if known is None:
                known = self._venvs[directory] = (directory / "pyvenv.cfg").exists()
            if known:
                return True
        return False


async def _git(workspace: Path, *args: str, stdin: bytes | None = None) -> tuple[int, bytes]:
    """Run git for the repository of ``workspace`` (`kfd.git.run_git`: none of its
    configuration, so nothing in ``.git`` runs, and file names are names, never
    pathspec globs). Raises OSError when there is no usable repository or no git."""
    found = await asyncio.to_thread(git.find, workspace)
    if not isinstance(found, git.Repository):
        raise OSError(f"no repository kfd may use at {workspace}")
    try:
        output = await git.run_git(found, workspace, *args, stdin=stdin)
    except git.GitUnavailable as exc:
        raise OSError(str(exc)) from exc
    return output.returncode, output.stdout


async def git_ignored(workspace: Path, relatives: list[str]) -> set[str]:
    """The paths git ignores (none when the workspace is not a git repo)."""
    if not relatives:
        return set()
    try:
        code, out = await _git(
            workspace, "check-ignore", "-z", "--stdin", stdin="\0".join(relatives).encode() + b"\0"
        )
    except OSError:  # no git: nothing is known to be ignored
        return set()
    if code not in (0, 1):
        return set()
    return {part.decode(errors="replace") for part in out.split(b"\0") if part}


async def diff_of(workspace: Path, relatives: list[str]) -> str:
    """The changes to ``relatives``: git's diff, plus the head of new files."""
    parts: list[str] = []
    shown: set[str] = set()
    try:
        code, out = await _git(
            workspace,
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--relative",
            "HEAD",
            "--",
            *relatives,
        )
    except OSError:
        code, out = 1, b""
    if code == 0 and out:
        sections = _sections_of(out.decode(errors="replace"), relatives)
        parts += sections.values()
        shown = set(sections)
    for relative in relatives:
        if relative not in shown:
            parts.append(
                await asyncio.to_thread(
                    _head_of, Path(os.path.normpath(workspace / relative)), relative, workspace
                )
            )
    diff = "\n".join(part for part in parts if part)
    if len(diff) > DIFF_LIMIT:
        diff = diff[:DIFF_LIMIT] + f"\n[… {len(diff) - DIFF_LIMIT} more characters of diff]"
    return diff or "(no diff: the files were deleted or are unchanged)"


def _sections_of(diff: str, relatives: list[str]) -> dict[str, str]:
    """The sections of ``diff`` for exactly the files ``relatives`` names, by name: a
    section git added for any other path (the names were checked against the read
    rules, not what git might make of them) is left out."""
    wanted = {f"diff --git a/{r} b/{r}": r for r in relatives}
    sections: dict[str, str] = {}
    for section in re.split(r"(?m)^(?=diff --git )", diff):
        relative = wanted.get(section.partition("\n")[0])
        if relative is not None:
            sections[relative] = section
    return sections


def _head_of(path: Path, relative: str, workspace: Path | None = None) -> str:
    """The first lines of a new file, reached without following a link: a link planted
    in the workspace (to ``~/.aws/credentials``) must not bring its target into a prompt."""
    try:
        fd, _ = open_regular(path, workspace or path.parent)
    except NotBeneath:
        return f"--- {relative} is a symbolic link (not shown)"
    except NotRegular:
        return f"--- {relative} is not a regular file"
    except (FileNotFoundError, IsADirectoryError):
        return f"--- {relative} was deleted"
    except OSError as exc:
        return f"--- {relative}: unreadable ({exc.strerror})"
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        lines = [line for _, line in zip(range(NEW_FILE_LINES), handle, strict=False)]
    return f"--- {relative} (new or untracked file)\n" + "".join(lines)


def withheld(
    workspace: Path, relatives: list[str], guard: Callable[[str], str | None] | None
) -> dict[str, str]:
    """The files whose content a prompt must not carry, each with why: a read rule
    names it (``guard``: `kfd.policy.read_guard.ReadGuard`, as the grep tool leaves
    such files out) by its path or by where it really is, or it has other hard
    links (its content is another path's too). Blocking: a ``stat`` each."""
    found: dict[str, str] = {}
    for relative in relatives:
        path = os.path.normpath(workspace / relative)
        real = os.path.realpath(path)
        rule = guard(path) or guard(real) if guard is not None else None
        if rule:
            found[relative] = rule
            continue
        try:
            info = os.lstat(real)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            found[relative] = f"{info.st_nlink} hard links"
    return found


class FileState(NamedTuple):
    """A changed file as it is now: mtime and content digest (both None: deleted)."""

    mtime: float | None
    digest: str | None


def file_states(paths: list[str]) -> list[FileState]:
    """The state of each path (blocking: call from a worker thread)."""
    return [_state(path) for path in paths]


def _state(path: str) -> FileState:
    """The file as it is now, never through a link nor by opening what is not a
    regular file (a FIFO would block the watcher for good)."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return FileState(info.st_mtime, f"link:{os.readlink(path)}")
        if not stat.S_ISREG(info.st_mode):
            return FileState(info.st_mtime, f"special:{info.st_mode:o}:{info.st_mtime_ns}")
        if info.st_size > MAX_HASHED_BYTES:
            return FileState(info.st_mtime, f"large:{info.st_size}:{info.st_mtime_ns}")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_HASHED_BYTES + 1)
    except OSError:
        return FileState(None, None)
    return FileState(info.st_mtime, blob_id(data))


def read_beneath(workspace: Path, relative: str, max_bytes: int) -> str | None:
    """The text of a regular file of the workspace, reached without following a link
    (`kfd.beneath`), or None: a link (``notes.py -> ~/.aws/credentials``), not a
    regular file, larger than ``max_bytes``, or unreadable. What a trigger quotes
    goes into a prompt: never a file a link brought in."""
    try:
        data = read_regular(Path(os.path.normpath(workspace / relative)), max_bytes, workspace)
    except (NotBeneath, OSError):
        return None
    return data.decode("utf-8", "replace")


def blob_id(data: bytes) -> str:
    """Git's object id of ``data`` as a blob (SHA-1), so it compares with the index."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


async def git_blobs(workspace: Path, relatives: list[str]) -> dict[str, str]:
    """The object ids git's index holds for ``relatives`` (tracked files only)."""
    found: dict[str, str] = {}
    for start in range(0, len(relatives), ARGUMENTS_PER_CALL):
        batch = relatives[start : start + ARGUMENTS_PER_CALL]
        try:
            code, out = await _git(workspace, "ls-files", "-s", "-z", "--", *batch)
        except OSError:  # no git: nothing is known of these files
            return found
        if code != 0:
            return found
        for entry in out.split(b"\0"):
            meta, tab, name = entry.partition(b"\t")
            fields = meta.split()
            if tab and len(fields) == 3 and fields[2] == b"0":
                found[name.decode(errors="replace")] = fields[1].decode()
    return found
