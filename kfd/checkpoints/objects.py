"""File states and git objects, in Python: what one file is, kept by its hash.

A `State` is what a path holds at one moment: a regular file (with or
without the executable bit), a symbolic link, nothing, or something kfd did
not keep (larger than the limit, unreadable, a directory where a file was).
Contents live as git blobs in the shadow repository, written here directly
as loose objects (hashing and compressing a 100 KB file costs far less than
starting git), in the format git itself reads, packs and prunes.

Files are read without following a symbolic link at any component of the
path (each directory is opened relative to the last with ``O_NOFOLLOW``), so
a link planted in the workspace cannot make kfd read, or later restore,
something outside it. Blocking file-system work: call it from a thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from kfd.beneath import NotBeneath, walk

REGULAR = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000
ABSENT_MODE = 0
UNKEPT_MODE = 1
"""A state kfd saw change but did not keep (too large, unreadable, not a file)."""


class State(NamedTuple):
    """What one path holds: a blob of the shadow repository and its git mode."""

    sha: str
    """The blob's id (hex); empty when nothing is kept."""
    mode: int
    """`REGULAR`, `EXECUTABLE`, `SYMLINK`, `ABSENT_MODE` or `UNKEPT_MODE`."""
    note: str = ""
    """Why a state is `UNKEPT_MODE` ("larger than 10 MB")."""

    @property
    def exists(self) -> bool:
        """Whether the path held something (kept or not)."""
        return self.mode != ABSENT_MODE

    @property
    def kept(self) -> bool:
        """Whether this state can be restored exactly."""
        return self.mode != UNKEPT_MODE

    def same(self, other: State) -> bool:
        """The same content and mode (an unkept state is the same as nothing)."""
        return self.kept and other.kept and (self.sha, self.mode) == (other.sha, other.mode)


ABSENT = State("", ABSENT_MODE)


def unkept(note: str) -> State:
    """A state kfd saw but did not keep, with why."""
    return State("", UNKEPT_MODE, note)


def blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (sha1 of ``blob <size>\\0`` and the bytes)."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def mode_of(info: os.stat_result) -> int | None:
    """The git mode of a file's status; None for what git does not keep as a blob."""
    if stat.S_ISLNK(info.st_mode):
        return SYMLINK
    if stat.S_ISREG(info.st_mode):
        return EXECUTABLE if info.st_mode & stat.S_IXUSR else REGULAR
    return None


def open_parent(root: Path, relative: str, *, create: bool = False) -> int:
    """A descriptor of ``relative``'s directory under ``root``, reached without
    following any link (``create``: make missing directories on the way).

    Raises `NotBeneath` for a link or a file where a directory should be, and
    FileNotFoundError for a missing directory when not creating.
    """
    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise NotBeneath(f"{relative!r} is not a normalised relative path")
    return walk(str(root), parts[:-1], Path(), create=create)


def name_of(relative: str) -> str:
    """The last component of a relative path."""
    return relative.rstrip("/").rsplit("/", 1)[-1]


def read_state(
    root: Path, relative: str, objects: Path | None, limit: int
) -> tuple[State, bytes | None]:
    """The state of ``root/relative`` now, and its bytes (None when not read).

    With ``objects`` (a git objects directory), the content is also written
    there as a blob. A file past ``limit`` bytes is `unkept`; so is anything
    that is not a regular file or a link, and a path through a link.
    """
    try:
        parent = open_parent(root, relative)
    except FileNotFoundError:
        return ABSENT, None
    except NotBeneath as exc:
        return unkept(f"not kept: {exc}"), None
    name = name_of(relative)
    try:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return ABSENT, None
        mode = mode_of(info)
        if mode is None:
            return unkept("not kept: not a regular file or a link"), None
        if mode == SYMLINK:
            data = os.fsencode(os.readlink(name, dir_fd=parent))
        else:
            if info.st_size > limit:
                return unkept(f"not kept: larger than {_size(limit)}"), None
            read = _read(parent, name, limit)
            if read is None:
                return unkept(f"not kept: larger than {_size(limit)}"), None
            data = read
    except OSError as exc:
        return unkept(f"not kept: {exc.strerror or exc}"), None
    finally:
        os.close(parent)
    sha = write_blob(objects, data) if objects is not None else blob_id(data)
    return State(sha, mode), data


def _read(parent: int, name: str, limit: int) -> bytes | None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = handle.read(limit + 1)
    return data if len(data) <= limit else None


def _size(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def write_blob(objects: Path, data: bytes) -> str:
    """Store ``data`` as a loose blob under ``objects`` (if not there yet); its id."""
    sha = blob_id(data)
    write_object(objects, sha, b"blob %d\0" % len(data) + data)
    return sha


def write_object(objects: Path, sha: str, raw: bytes) -> None:
    """Store a loose object (``raw`` is header and body) as git does: zlib, atomically."""
    directory = objects / sha[:2]
    path = directory / sha[2:]
    if path.exists():
        return
    directory.mkdir(exist_ok=True)
    temp = directory / f"tmp_obj_{secrets.token_hex(6)}"
    try:
        with open(temp, "xb") as handle:
            handle.write(zlib.compress(raw, 1))
        os.chmod(temp, 0o444)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def read_loose(objects: Path, sha: str) -> bytes | None:
    """The body of a loose blob, or None when it is not loose (packed, or gone)."""
    try:
        raw = zlib.decompress((objects / sha[:2] / sha[2:]).read_bytes())
    except (OSError, zlib.error):
        return None
    header, _, body = raw.partition(b"\0")
    return body if header.startswith(b"blob ") else None


def write_tree(objects: Path, blobs: Iterable[str]) -> str:
    """A tree naming every blob of ``blobs`` (by its id), so git keeps them all; its id.

    The shadow repository points a ref at such a tree per turn: what a ref
    reaches survives ``git gc``, and dropping the ref lets it go.
    """
    body = b"".join(
        b"100644 " + sha.encode() + b"\0" + bytes.fromhex(sha) for sha in sorted(set(blobs))
    )
    raw = b"tree %d\0" % len(body) + body
    sha = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
    write_object(objects, sha, raw)
    return sha
