"""Opening a file on the host without following any symbolic link, race-free.

The permission policy decides on a path with every symlink resolved; a
tool that then opened the path again by name would follow whatever link a
command (of this session or another) swapped in meanwhile. Here the path is
walked one component at a time from a directory held open (the workspace,
or ``/`` for a path outside it): each directory is opened relative to the
previous one with ``O_NOFOLLOW``, so a symbolic link at any component stops
the walk (`NotBeneath`), and the final file is read, checked and replaced
through the one open handle of its parent directory (``openat``,
``renameat``). What is decided about a file is decided about the file that
is written.

A symlink is not followed even where it would lead somewhere harmless: the
error names its target, and the caller uses that path, which the policy
then sees as it is.

Blocking system calls: call these from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

HARD_LINKS = "hardlinked"
"""The grant (`kfd.api.ApprovalNeeded`) to read or change a file with several hard links:
it is also elsewhere, possibly outside the workspace."""

_DIRECTORY = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NotBeneath(Exception):
    """The path cannot be opened without following a link, or is not a file's path.

    The message says which component is in the way and what to do.
    """


class Beneath:
    """One file, named in its parent directory, which is held open."""

    def __init__(self, parent: int, name: str, shown: str) -> None:
        self._parent = parent
        self.name = name
        """The file's name in its directory."""
        self.shown = shown
        """The path as the caller wrote it, for messages."""

    def __enter__(self) -> Beneath:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the parent directory."""
        if self._parent >= 0:
            os.close(self._parent)
            self._parent = -1

    def lstat(self) -> os.stat_result | None:
        """The entry itself (a symlink is not followed), or None if there is none."""
        try:
            return os.stat(self.name, dir_fd=self._parent, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open(self, flags: int = os.O_RDONLY) -> int:
        """A descriptor of the file itself; `NotBeneath` if it is a symbolic link.

        ``O_NONBLOCK`` is added so that opening a FIFO never hangs.
        """
        try:
            return os.open(
                self.name,
                flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=self._parent,
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotBeneath(_link_message(self.shown, self._parent, self.name)) from None
            raise

    def read(self, limit: int) -> tuple[bytes, os.stat_result] | None:
        """The bytes of a regular file (up to ``limit``) and its status; None if missing.

        Raises `NotBeneath` for a symlink, IsADirectoryError for a directory,
        and ValueError for anything else that is not a regular file.
        """
        try:
            fd = self.open()
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", self.shown)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{self.shown} is not a regular file")
            if info.st_size > limit:
                return b"", info
            return handle.read(limit + 1), info

    def replace(self, data: bytes, mode: int | None = None) -> os.stat_result:
        """Put ``data`` in place of the file, atomically: readers see the old or the
        new file, never half. The name is replaced in the held directory, never
        followed (a symlink there is replaced itself). ``mode`` is kept; a new file
        gets the default mode under the umask. Returns the new file's status.
        """
        while True:
            temp = f".kfd-{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(
                    temp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o666,
                    dir_fd=self._parent,
                )
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
                info = os.fstat(handle.fileno())
            os.replace(temp, self.name, src_dir_fd=self._parent, dst_dir_fd=self._parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._parent)
            raise
        self._fsync_directory()
        return info

    def _fsync_directory(self) -> None:
        # Makes the rename itself durable; not every file system allows it.
        with contextlib.suppress(OSError):
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._parent)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def open_beneath(root: Path, path: Path, *, create_parents: bool = False) -> Beneath:
    """Walk to ``path``'s directory without following a link; the file is not opened yet.

    ``root`` (a real directory, symlinks resolved) is where the walk starts
    when ``path`` lies under it; otherwise it starts at ``/``. ``path`` must be
    absolute and normalised. With ``create_parents``, missing directories
    are created on the way (each one also opened without following a link).
    """
    if not path.is_absolute() or ".." in path.parts:
        raise NotBeneath(f"{path} is not an absolute, normalised path")
    if path.is_relative_to(root):
        start, parts = str(root), path.relative_to(root).parts
        walked = Path()  # messages name paths under the root as the caller did
    else:
        start, parts = "/", path.parts[1:]
        walked = Path("/")
    if not parts:
        raise NotBeneath(f"{path} is a directory, not a file. Give the path of a file.")
    parent = walk(start, parts[:-1], walked, create=create_parents)
    return Beneath(parent, parts[-1], str(walked.joinpath(*parts)))


def walk(start: str, parts: Sequence[str], walked: Path, *, create: bool = False) -> int:
    """A descriptor (``O_PATH``) of the directory ``start/parts…``, each component
    opened relative to the previous one without following a link.

    ``walked`` is how messages name ``start``; with ``create``, missing
    directories are made on the way. The caller closes the descriptor.
    """
    current = os.open(start, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            following = _step(current, part, walked, create=create)
            os.close(current)
            current = following
            walked = walked / part
    except BaseException:
        os.close(current)
        raise
    return current


def _step(directory: int, part: str, walked: Path, *, create: bool) -> int:
    """Open ``part`` inside ``directory`` as a directory, never through a link."""
    for _ in range(2):
        try:
            return os.open(part, _DIRECTORY, dir_fd=directory)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=directory)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                info = os.stat(part, dir_fd=directory, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    raise NotBeneath(_link_message(str(walked / part), directory, part)) from None
                raise NotBeneath(f"{walked / part} is not a directory") from None
            raise
    raise NotBeneath(f"{walked / part} keeps changing; try again")


def _link_message(shown: str, directory: int, name: str) -> str:
    try:
        target = os.readlink(name, dir_fd=directory)
    except OSError:
        target = "?"
    else:
        target = os.path.normpath(os.path.join(os.path.dirname(shown), target))
    return (
        f"{shown} is a symbolic link to {target}; kfd does not follow links when it "
        "reads or writes a file, so that a link changed meanwhile cannot redirect it. "
        "Use the path the link points to."
    )
