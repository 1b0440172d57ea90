"""Path facts for decisions: where a path really points, and is it ours."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from kfd.agent.instructions import project_candidates, project_root
from kfd.api import PathAccess, ResolvedPath
from kfd.git.repository import is_marker
from kfd.policy.real import where
from kfd.policy.stamped import Kept


def resolve(workspace: Path, accesses: Sequence[PathAccess]) -> list[ResolvedPath]:
    """Follow symlinks (of every existing component) and compare to the workspace.

    Blocking (it stats the file system): call it through a thread.
    """
    root = real_path(str(workspace))
    resolved = []
    for access in accesses:
        joined = os.path.join(workspace, os.path.expanduser(access.path))
        real = real_path(joined)
        resolved.append(ResolvedPath(access.path, real, access.write, inside(real, root)))
    return resolved


def real_path(path: str) -> str:
    """Where ``path`` really is (`kfd.policy.real.where`), never raising; where that is
    not known (a component kfd cannot look at, ``/proc/1/root``: permission denied; a
    tree made to cost too much), a place under ``/proc`` that no rule allows.

    Blocking (it opens the path, ``O_PATH``).
    """
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    real = where(path)  # the kernel's walk, at a cost the workspace cannot choose
    spelled = os.path.normpath(path)
    if real is None:
        # A tree made to cost more than any path should, or a link past the kernel's
        # limit: where it leads is not known, so it is outside every workspace (asks).
        return _UNRESOLVED + spelled
    if in_proc(real) or in_proc(spelled):
        return _in_proc(path)
    if (real != spelled or ".." in path.split("/")) and _through_proc(path):
        # (A path that resolves to its own spelling, with no `..`, followed no link.)
        return _in_proc(path)
    return real


_PROC = "/proc/"
_UNRESOLVED = "/proc/(not resolved by kfd)"


def _through_proc(path: str) -> bool:
    """Whether resolving ``path`` follows a symbolic link into ``/proc`` (a link in the
    workspace to ``/proc/self/cwd``). There every name is the process's own: its
    directory, its root, its descriptors, another process's, as the daemon sees
    them, never as a command in the sandbox does. The links on the way, each once."""
    pending = [part for part in os.path.abspath(path).split("/") if part]
    done = "/"
    seen = 0
    while pending:
        part = pending.pop(0)
        candidate = os.path.join(done, part)
        try:
            target = os.readlink(candidate)
        except (OSError, ValueError):
            done = os.path.normpath(candidate)  # not a link, or nothing there
            continue
        seen += 1
        if seen > 40:
            return True  # a loop: where it goes is not known
        joined = os.path.normpath(os.path.join(done, target))
        if in_proc(joined):
            return True
        pending = [p for p in joined.split("/") if p] + pending
        done = "/"
    return False


def in_proc(path: str) -> bool:
    """Whether ``path`` (absolute, normalised) is ``/proc`` or under it."""
    return path == "/proc" or path.startswith(_PROC)


def _in_proc(path: str) -> str:
    """A path resolved through ``/proc`` by the daemon names what the command would
    not: kept under ``/proc`` (outside every workspace, as written), so it asks."""
    normal = os.path.normpath(path)
    return normal if normal.startswith(_PROC) else "/proc/(resolved by kfd)" + normal


def inside(real: str, root: str) -> bool:
    """Whether the real path ``real`` is the real directory ``root`` or under it."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def hard_links(real: str) -> int:
    """The hard links of a regular file (1 for anything else, or nothing there).

    Blocking: call it through a thread.
    """
    try:
        info = os.stat(real)
    except (OSError, ValueError):
        return 1
    return info.st_nlink if stat.S_ISREG(info.st_mode) else 1


def instruction_links(workspace: str) -> dict[str, str]:
    """Where the project's instruction files that are symlinks lead: real path -> the
    file's label (``AGENTS.md``). Writing there changes what every later session
    reads, as writing the file itself would. Which files are links is kept while
    the entries it was read from hold (`kfd.policy.stamped`); where they lead is
    looked up each time.

    Blocking (a few ``lstat`` calls): call it through a thread.
    """
    found: dict[str, str] = {}
    for path, label in _links.get(workspace, lambda: _instruction_links(workspace)):
        found.setdefault(real_path(path), label)
    return found


_links: Kept[tuple[tuple[str, str], ...]] = Kept()


def _instruction_links(workspace: str) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The instruction files that are links (path, label), and the entries that
    answer depends on: every candidate, and each ``.git`` (with its ``HEAD``)
    `project_root` looked at on its way up."""
    candidates = project_candidates(Path(workspace))
    links = tuple((str(path), label) for path, label in candidates if os.path.islink(path))
    watched = [str(path) for path, _ in candidates]
    root = project_root(Path(workspace))
    for directory in (Path(workspace), *Path(workspace).parents):
        watched += [str(directory / ".git"), str(directory / ".git" / "HEAD")]
        if directory == root and is_marker(root / ".git"):
            break
    return links, watched
