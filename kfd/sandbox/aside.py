"""Moving aside, removing and rewriting what a sandboxed command left, never through a link.

The I/O the post-command checks share (`kfd.sandbox.gitstate`,
`kfd.sandbox.gitchecks`): each reaches its file from a root without following
a link on the way (`kfd.sandbox.sweep.reach`) and acts on it by directory
descriptor. Blocking.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from kfd.regular import NotRegular
from kfd.sandbox.sweep import free_name, reach, remove

ASIDE = ".kfd-unsafe"
"""What is added to the name of a git directory's index, configuration or hooks when
they are moved aside because the host's git must not obey them (``index.kfd-unsafe``):
names git never reads."""


def move_aside(path: str, aside: str, root: str, why: str) -> str:
    """Move ``path`` (reached from ``root``) to ``aside`` beside it (`set_aside`); a note."""
    reached = reach(path, root)
    if reached is None:
        return f"kfd could not reach {path} to move it aside: {why}"
    directory, name, shown = reached
    try:
        return set_aside(directory, name, aside, shown, why, "")
    finally:
        os.close(directory)


MAX_ASIDE = 20
"""Copies moved aside under one name at most (``modules.kfd-unsafe``, then
``modules.kfd-unsafe-2``...); past them, what a command left is removed."""


def set_aside(directory: int, name: str, aside: str, shown: str, why: str, then: str) -> str:
    """Rename ``name`` in ``directory`` to ``aside``, or the first of its numbered
    spellings that is free (never following a link, never over another): what was
    moved may be the user's (git on the host wrote it meanwhile). Removed when that
    fails. A note saying what was done and why."""
    free = free_name(directory, aside, MAX_ASIDE) or ""
    moved = os.path.join(os.path.dirname(shown), free)
    try:
        if not free:
            raise FileExistsError(aside)
        os.rename(name, free, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        try:
            remove(directory, name)
        except OSError as exc:
            return f"kfd could not move aside nor remove {shown} ({exc.strerror}): {why}"
        return f"kfd removed {shown}, which this command left: {why}"
    tail = f"; {then}" if then else ""
    return f"kfd moved {shown} to {moved}, which this command left: {why}{tail}"


def replace(directory: int, name: str, data: bytes) -> None:
    """Write ``data`` as ``name`` in ``directory``: a new file renamed over it (never
    through a link, nor into a file hard-linked elsewhere)."""
    temporary = f"{name}.kfd-new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=directory)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o644, dir_fd=directory)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)


def read(directory: int, name: str, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of the regular file ``name`` in ``directory``, never
    through a link, never waiting: a FIFO a command left (or swapped in since it
    was looked at) is `NotRegular`, not a read that blocks the checks for good."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(name, flags, dir_fd=directory)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(errno.EINVAL, "it is not a regular file", name)
        return handle.read(limit + 1)


def listing(path: str, root: str) -> list[str] | None:
    """The names in directory ``path``, reached from ``root`` without following a link;
    None when it is not (or no longer) a directory there."""
    reached = reach(path, root)
    if reached is None:
        return None
    parent, name, shown = reached
    try:
        if shown != path:
            return None
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
        )
    except OSError:
        return None
    finally:
        os.close(parent)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)
