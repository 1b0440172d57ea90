"""What a directory's entries are, kept between decisions while the directory is unchanged.

A long command names hundreds of paths in a few directories, most of them
files that exist, and a line's redirections name files that do not: each
took an ``lstat`` and some path arithmetic per decision. `Entries` keeps, per
directory, what each name looked up in it was (a regular file, a directory,
something else, nothing), with the directory's stamp (device, inode,
modification and change times), under the rules `kfd.policy.tree_walk` keeps
a tree's listings by:

- creating, removing or renaming an entry changes its directory's times;
- the stamp is taken before any name is looked up, and a directory changed
  within `FRESH_S` is not kept (times tick coarsely: two changes in one tick
  leave one stamp);
- a symbolic link is never kept (its target changes while its directory does
  not): the caller follows it afresh;
- a regular file's hard links are kept with it: a new link made to it from
  another directory would change them while this one stays the same (a name
  a read rule restricts made another name of ``src/notes.txt``, the secret
  written into it in place later: round 19), but no sandboxed program can
  make a link (`kfd.sandbox.seccomp`); the user's own links are the user's.

A directory is named by its real path (symlinks followed by the caller each
line) and checked by one ``lstat`` per line (`current`): what a caller made of
a name there can be kept with the `Entries`, good while `current` gives that
same object again (`kfd.policy.line_facts` keeps each word's path fact so).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Literal

from kfd.policy.stamped import FRESH_S

__all__ = ["Entries", "Entry", "current", "look"]

Entry = tuple[Literal["file", "dir", "missing", "other"], int]
"""A name's kind and, for a regular file, its hard links (else 1)."""

_MAX_NAMES = 100_000
"""Names kept in all directories before starting over (some 20 MB)."""
_FORMAT = 0o170000
"""`stat.S_IFMT` as a mask (its call costs as much as the rest of the test)."""


class Entries:
    """What names in one directory were, while its stamp holds."""

    __slots__ = ("kept", "names", "prefix", "stamp")

    def __init__(self, directory: str, stamp: tuple[int, int, int, int], *, kept: bool) -> None:
        self.prefix = directory + "/" if directory != "/" else "/"
        self.stamp = stamp
        self.kept = kept
        """Kept between decisions (else for one line: changed too recently)."""
        self.names: dict[str, Entry] = {}

    def entry(self, name: str) -> Entry | None:
        """What ``name`` is in this directory; None for a symbolic link or a name that
        cannot be looked at (the caller resolves it the long way)."""
        found = self.names.get(name)
        if found is None:
            found = look(self.prefix + name)
            if found is None:
                return None
            if self.kept:
                if len(_kept) + _count[0] >= _MAX_NAMES:
                    forget()
                _count[0] += 1
            self.names[name] = found
        return found


def look(path: str) -> Entry | None:
    """What ``path`` is, by one ``lstat``; None for a symbolic link or a path that
    cannot be looked at."""
    try:
        info = os.lstat(path)
    except ValueError:
        return None  # a NUL: nothing on disk has this name
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ENOTDIR):
            return None  # a loop, a denied directory: as `realpath` takes it
        return ("missing", 1)  # as `realpath` and `_kind` take it
    mode = info.st_mode & _FORMAT
    if mode == stat.S_IFLNK:
        return None
    if mode == stat.S_IFREG:
        return ("file", info.st_nlink)
    return ("dir" if mode == stat.S_IFDIR else "other", 1)


_kept: dict[str, Entries] = {}
_count = [0]
"""Names kept in `_kept`'s directories (those replaced included, until starting over)."""


def current(directory: str) -> Entries | None:
    """The entries of ``directory`` (a real path) as they are now: kept ones while its
    stamp holds, else new ones (kept if it was last changed before `FRESH_S` ago).
    None when it is not a directory or cannot be looked at. One ``lstat``."""
    trusted = time.time_ns() - int(FRESH_S * 1e9)  # before the stamp
    try:
        info = os.lstat(directory)
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    kept = _kept.get(directory)
    if kept is not None and kept.stamp == stamp:
        return kept
    if max(info.st_mtime_ns, info.st_ctime_ns) >= trusted:
        _kept.pop(directory, None)
        return Entries(directory, stamp, kept=False)
    if len(_kept) + _count[0] >= _MAX_NAMES:
        forget()
    kept = _kept[directory] = Entries(directory, stamp, kept=True)
    return kept


def forget() -> None:
    """Forget every directory."""
    _kept.clear()
    _count[0] = 0
