"""Reading a file a workspace controls: never blocking, regular files only, capped.

A repository (or the model, through a command) decides what its paths are. A
plain ``open`` of a FIFO named ``AGENTS.md`` or ``.kfd/config.toml`` waits for
a writer that never comes, and holds a worker thread (then, after a few
sessions, every thread the daemon has) for good. Every read of such a path
goes through here: the file is opened ``O_NONBLOCK`` (opening a FIFO returns
at once), what was opened is checked to be a regular file (`NotRegular`
otherwise, saying what it is), and no more than a limit is read (`TooLarge`).

Two ways to reach the file: by its name as the kernel resolves it (a
symbolic link is followed; the caller judges where it led, as instruction
files do with ``CLAUDE.md -> AGENTS.md``), or beneath a directory held open
without following any link (`kfd.beneath`: `NotBeneath` if one is met).

Both errors are `OSError`, whose ``strerror`` says why the file is not read
and what to do, so that code already reporting an unreadable file reports
these too. Blocking system calls: call these from a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from kfd.beneath import open_beneath


class NotRegular(OSError):
    """What the path names is not a regular file (a FIFO, a socket, a device, a directory)."""


class TooLarge(OSError):
    """The file is larger than the caller reads."""


def open_regular(
    path: Path | str, root: Path | None = None, *, follow: bool = True
) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``path`` and its status; the caller closes it.

    With ``root``, the file is reached beneath it without following a link
    (`kfd.beneath.open_beneath`; ``path`` absolute and normalised). Without, the
    name is resolved as the kernel does; not ``follow``: a link as the last
    component is not followed (OSError, ``ELOOP``). Never blocks: raises `NotRegular`
    for anything but a regular file, OSError (FileNotFoundError...) when it cannot be
    opened.
    """
    if root is not None:
        with open_beneath(root, Path(path)) as target:
            fd = target.open()
    else:
        no_link = 0 if follow else os.O_NOFOLLOW
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | no_link)
    try:
        info = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegular(
            errno.EINVAL,
            f"it is {kind_of(info.st_mode)}, not a regular file; kfd reads only regular "
            "files here (so that it can never wait on one): make it a file",
            str(path),
        )
    return fd, info


def read_regular(
    path: Path | str, limit: int, root: Path | None = None, *, follow: bool = True
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (`open_regular`).

    Raises `TooLarge` for a larger file, and what `open_regular` raises.
    """
    fd, info = open_regular(path, root, follow=follow)
    with os.fdopen(fd, "rb") as handle:
        data = b"" if info.st_size > limit else handle.read(limit + 1)
    if info.st_size > limit or len(data) > limit:
        raise TooLarge(
            errno.EFBIG,
            f"it is larger than {_size(limit)}, more than kfd reads of it",
            str(path),
        )
    return data


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a FIFO")."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "something other than a file"


def _size(limit: int) -> str:
    return f"{limit // 1024} KB" if limit >= 1024 else f"{limit} bytes"
