"""Putting files back: write a state to a path without following any link (blocking).

The parent directory is reached one component at a time without following
a symbolic link (`kfd.beneath.walk`), and the file is
replaced through that directory's handle, atomically (a temporary name, then
a rename): a link planted in the workspace cannot redirect a restore out of
it, and no reader ever sees half a file. A removed file's directories are
removed too when that leaves them empty, as git does on checkout.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from kfd.checkpoints.objects import EXECUTABLE, SYMLINK, State, name_of, open_parent


class RestoreError(Exception):
    """A path could not be put back; the message says which and why."""


def put(root: Path, path: str, state: State, data: bytes | None) -> None:
    """Make ``root/path`` hold ``state`` (``data`` is its content; None to remove it)."""
    try:
        if not state.exists:
            _remove(root, path)
            return
        if data is None:
            raise RestoreError(f"{path}: its content is no longer in the checkpoint store")
        parent = open_parent(root, path, create=True)
        try:
            _replace(parent, name_of(path), state, data)
        finally:
            os.close(parent)
    except RestoreError:
        raise
    except Exception as exc:
        raise RestoreError(f"{path}: {exc}") from exc


def _replace(parent: int, name: str, state: State, data: bytes) -> None:
    temp = f".kfd-undo-{secrets.token_hex(6)}"
    if state.mode == SYMLINK:
        os.symlink(os.fsdecode(data), temp, dir_fd=parent)
    else:
        mode = 0o777 if state.mode == EXECUTABLE else 0o666
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
            dir_fd=parent,
        )  # fmt: skip
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if state.mode == EXECUTABLE:
                    umask = os.umask(0)
                    os.umask(umask)
                    os.fchmod(handle.fileno(), 0o777 & ~umask)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
    try:
        existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        os.unlink(temp, dir_fd=parent)
        raise RestoreError(f"{name} is a directory now; move it away and undo again")
    os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)


def _remove(root: Path, path: str) -> None:
    try:
        parent = open_parent(root, path)
    except FileNotFoundError:
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(name_of(path), dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise RestoreError(f"{path} is a directory now; move it away and undo again")
            os.unlink(name_of(path), dir_fd=parent)
    finally:
        os.close(parent)
    _prune_empty(root, path)


def _prune_empty(root: Path, path: str) -> None:
    """Remove the directories of ``path`` that are now empty, deepest first."""
    parts = path.split("/")[:-1]
    while parts:
        try:
            parent = open_parent(root, "/".join(parts))
        except (FileNotFoundError, Exception):
            return
        try:
            os.rmdir(parts[-1], dir_fd=parent)
        except OSError:
            return
        finally:
            os.close(parent)
        parts.pop()
