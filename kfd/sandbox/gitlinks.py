"""Symbolic links a command left in git's writable state: removed when it ends.

git never makes a symbolic link where it records work (the one exception, a
``HEAD`` that ``core.preferSymlinkRefs`` makes, leads into ``refs/``), yet it
follows one there: it appends to ``logs/HEAD`` through a link (a branch named
``fix;touch${IFS}/tmp/x;#`` becomes a line of ``~/.bashrc``), writes
``COMMIT_EDITMSG``, ``rebase-merge/message`` or ``rr-cache/<id>/postimage``
through one, and reads one as a commit's message or a conflict's resolution
(``~/.ssh/id_rsa`` committed, or copied where the next command reads it). A
command may write there (`kfd.sandbox.mounts.GIT_WRITABLE`), so after every
command each git directory the sandbox protected, and each of a repository
the command created, is looked through and every link in its writable state
is removed, never followed (`kfd.sandbox.sweep.reach`, then ``unlinkat``:
one put where a directory was listed is found by ``O_NOFOLLOW`` and removed
the same way). A link that stood at the top of a git directory before the
command, leading where it still leads, is the user's and stays.

Where it looks: every `GIT_WRITABLE` name at the top, and every directory
below those that are directories (``logs/``, ``refs/``, ``rebase-merge/``,
``rebase-apply/``, ``sequencer/``, ``rr-cache/``, ``info/``,
``NOTES_MERGE_WORKTREE/``...), but the objects' fan-out directories: of
``objects/`` only its own entries, ``info/`` and ``pack/``. git writes an
object to a temporary file it renames into place, which replaces a link
rather than following it, and reads one as compressed data it checks
against its name: a link among the loose objects leads git nowhere it would
write and shows nothing it would not refuse.

What it costs: a directory whose stamp (device, inode, mtime and ctime) is
the one it had when last found without a link is not listed again, only
opened (a link made in it, or anything renamed there, moves its mtime, and
its ctime cannot be set back); its subdirectories are visited the same way.
A repository with a few dozen directories of refs and logs costs as many
``open`` and ``fstat`` calls.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping

from kfd.sandbox.layout import RACY_NS
from kfd.sandbox.mounts import GIT_WRITABLE
from kfd.sandbox.sweep import reach

LINKED_STATE = (
    "git never makes a symbolic link there, and the host's git would write or read "
    "where it leads (a log line appended to a shell's start-up file, a key taken as a "
    "commit's message)"
)

OBJECTS_LOOKED_IN = frozenset({"info", "pack"})
"""The directories of ``objects/`` looked through (not the fan-out of loose objects)."""

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_clean: dict[str, tuple[tuple[int, int, int, int], tuple[str, ...]]] = {}
"""Each directory last found without a link, by path: its stamp and its subdirectories."""
MAX_CLEAN = 4096


def remove_links(git_dir: str, root: str, kept: Mapping[str, str] | None = None) -> list[str]:
    """Remove every symbolic link in the writable state of the git directory at
    ``git_dir`` (reached from ``root`` without following a link); one note each.
    ``kept``: the links at its top when the command started, name to target."""
    reached = reach(git_dir, root)
    if reached is None:
        return []
    parent, name, shown = reached
    try:
        if shown != git_dir:
            return []  # a link or a file where the git directory was: not for this module
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except OSError:
        return []
    finally:
        os.close(parent)
    notes: list[str] = []
    try:
        with os.scandir(fd) as entries:
            top = [(e.name, e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in entries]
        for entry, is_link, is_dir in top:
            if entry not in GIT_WRITABLE:
                continue  # read-only, or a new name `kfd.sandbox.gitstate` moves aside
            path = os.path.join(git_dir, entry)
            if is_link:
                target = _target(fd, entry)
                if (kept or {}).get(entry) != target and not _symbolic_head(entry, target):
                    notes += _unlink(fd, entry, path)
            elif is_dir:
                notes += _look_in(fd, entry, path, entry == "objects")
    finally:
        os.close(fd)
    return notes


def _symbolic_head(name: str, target: str | None) -> bool:
    """Whether ``name`` is a ``HEAD`` git made a link (``core.preferSymlinkRefs``):
    one leading to a branch, in ``refs/``."""
    return (
        name == "HEAD"
        and target is not None
        and target.startswith("refs/")
        and ".." not in target.split("/")
    )


def _target(directory: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError:
        return None


def _look_in(parent: int, name: str, path: str, objects: bool) -> list[str]:
    """Remove the links in directory ``name`` of ``parent`` and below it."""
    try:
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except OSError as exc:
        # Made a link since it was listed (the host's git never does that).
        return _unlink(parent, name, path) if exc.errno == errno.ELOOP else []
    notes: list[str] = []
    try:
        info = os.fstat(fd)
        stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
        known = _clean.get(path)
        if known is not None and known[0] == stamp:
            subdirectories = known[1]
        else:
            links: list[str] = []
            found: list[str] = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        links.append(entry.name)
                    elif entry.is_dir(follow_symlinks=False):
                        found.append(entry.name)
            for link in links:
                notes += _unlink(fd, link, os.path.join(path, link))
            subdirectories = tuple(found)
            if not links and max(stamp[2], stamp[3]) < time.time_ns() - RACY_NS:
                if len(_clean) >= MAX_CLEAN:
                    _clean.clear()
                _clean[path] = (stamp, subdirectories)
        for child in subdirectories:
            if not objects or child in OBJECTS_LOOKED_IN:
                notes += _look_in(fd, child, os.path.join(path, child), False)
    finally:
        os.close(fd)
    return notes


def _unlink(directory: int, name: str, path: str) -> list[str]:
    try:
        os.unlink(name, dir_fd=directory)  # never follows the link it removes
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"kfd could not remove {path}, a symbolic link this command left: {exc.strerror}"]
    return [f"kfd removed {path}, a symbolic link this command left in git's state: {LINKED_STATE}"]
