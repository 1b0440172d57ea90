"""Which git repository a workspace belongs to, found by kfd itself and validated.

kfd never lets git discover a repository on its own: discovery follows
``.git`` files, ``commondir`` and ``GIT_DIR``, all of which a command in the
workspace could have planted. `find` walks up from the workspace to the
first ``.git`` entry and accepts exactly two layouts:

- a plain repository: ``<root>/.git`` is a real directory (not a symlink)
  holding ``HEAD``, with no ``commondir`` redirecting it elsewhere;
- a linked worktree (``git worktree add``): ``<root>/.git`` is a file
  ``gitdir: <common>/worktrees/<name>``, that directory points back at this
  very ``.git`` file (its ``gitdir``), its ``commondir`` names ``<common>``,
  and neither lies inside the workspace, where a command could have forged
  them.

Anything else (a symlinked ``.git``, a submodule's ``.git`` file, a
``commondir`` in a main repository, a git directory inside the workspace
but outside ``.git``) is refused: kfd then runs no git for that workspace.
Everything here is blocking file-system inspection: call it through a thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from kfd.regular import read_regular

MAX_POINTER_BYTES = 4096
"""A ``.git`` file, ``commondir`` or ``gitdir`` longer than this is not one git wrote."""


class Repository(NamedTuple):
    """A validated repository: where its work tree and git directories are."""

    root: Path
    """The work tree's top directory (holds ``.git``)."""
    git_dir: Path
    """This work tree's git directory (``HEAD``, ``index``)."""
    common_dir: Path
    """The shared git directory (objects, refs, config); ``git_dir`` for a plain repository."""

    @property
    def linked(self) -> bool:
        """Whether this is a linked worktree (its git directories lie elsewhere)."""
        return self.git_dir != self.common_dir


class Refused(NamedTuple):
    """A ``.git`` kfd will not use, and why (for the log and ``kfd explain``)."""

    marker: Path
    reason: str


def find(workspace: Path) -> Repository | Refused | None:
    """The repository containing ``workspace``; `Refused` if its ``.git`` is not
    trustworthy; None outside any repository."""
    real = os.path.realpath(workspace)
    directory = real
    while True:  # up to the root, in strings: this runs before every sandboxed command
        marker = os.path.join(directory, ".git")
        try:
            info = os.lstat(marker)
        except OSError:
            pass
        else:
            # An empty directory is not a repository (git skips it too): the sandbox's
            # stand-in.
            if not stat.S_ISDIR(info.st_mode) or os.path.lexists(os.path.join(marker, "HEAD")):
                return _validate(Path(directory), Path(marker), info, Path(real))
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def is_marker(marker: Path) -> bool:
    """Whether ``marker`` (a path ending in ``.git``) looks like a repository's:
    a directory holding ``HEAD``, or a ``gitdir:`` file. An empty directory (the
    sandbox's stand-in that keeps a ``.git`` from being planted) is not one."""
    try:
        info = os.lstat(marker)
    except OSError:
        return False
    if stat.S_ISDIR(info.st_mode):
        return os.path.isfile(marker / "HEAD")
    if stat.S_ISREG(info.st_mode):
        return read_pointer(marker, "gitdir: ") is not None
    return False


def _validate(
    root: Path, marker: Path, info: os.stat_result, workspace: Path
) -> Repository | Refused:
    if stat.S_ISLNK(info.st_mode):
        return Refused(marker, "it is a symbolic link")
    if stat.S_ISDIR(info.st_mode):
        if not _regular(marker / "HEAD"):
            return Refused(marker, "it has no HEAD file")
        if os.path.lexists(marker / "commondir"):
            return Refused(marker, "it has a commondir file, which only a linked worktree has")
        return Repository(root, marker, marker)
    if not stat.S_ISREG(info.st_mode):
        return Refused(marker, "it is neither a directory nor a file")
    target = read_pointer(marker, "gitdir: ")
    if target is None:
        return Refused(marker, "it is not a 'gitdir:' file")
    git_dir = Path(os.path.realpath(root / target))
    if git_dir.parent.name != "worktrees":
        return Refused(marker, f"it points at {git_dir}, which is not a linked worktree's")
    common = git_dir.parent.parent
    for where in (git_dir, common):
        if where.is_relative_to(workspace):
            return Refused(marker, f"its git directory {where} lies inside the workspace")
    back = read_pointer(git_dir / "gitdir", "")
    if back is None or os.path.realpath(git_dir / back) != os.path.realpath(marker):
        return Refused(marker, f"{git_dir} does not point back at this worktree")
    named = read_pointer(git_dir / "commondir", "")
    if named is None or Path(os.path.realpath(git_dir / named)) != common:
        return Refused(marker, f"{git_dir}/commondir does not name {common}")
    if not _regular(git_dir / "HEAD") or not _regular(common / "HEAD"):
        return Refused(marker, "its git directories have no HEAD")
    if os.path.lexists(common / "commondir"):
        return Refused(marker, f"{common} has a commondir file of its own")
    return Repository(root, git_dir, common)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def gitdir_of(marker: str) -> str | None:
    """The real path of the git directory a ``.git`` file names (``gitdir: <path>``,
    relative to the file's directory), as git reads it; None if it names none."""
    named = read_pointer(marker, "gitdir: ")
    if named is None:
        return None
    return os.path.realpath(os.path.join(os.path.dirname(marker), named))


def read_pointer(path: Path | str, prefix: str) -> str | None:
    """What a pointer file (a ``.git`` file, ``commondir``, ``gitdir``) names after
    ``prefix``, exactly as git reads it, or None.

    git strips only the line ends at the end (``read_gitfile_gently``: CR and LF);
    a space is part of the path (``gitdir: /x/evil.git ``). Stripping more would
    make kfd look at another directory than the host's git uses. None for what git
    would not read either: no ``prefix``, nothing after it, a NUL byte."""
    try:
        raw = read_regular(path, MAX_POINTER_BYTES)
    except OSError:
        return None
    text = os.fsdecode(raw).rstrip("\r\n")  # bytes as they are: the path git opens
    if not text.startswith(prefix) or "\0" in text:
        return None
    return text[len(prefix) :] or None
