"""Answers about the file system kept between decisions while nothing they were
read from has changed.

Every git command a model proposes asks the same questions of the same few
entries (which repositories git may use from here, what their configuration
makes git run, which of the project's instruction files are links): some
twenty system calls and much path arithmetic, a fifth of a plain decision.
`Kept` holds each answer with the *stamp* of every entry it was read from
(``lstat``: device, inode, size, modification and change times; nothing there
is a stamp too) and gives it again while every stamp is the same. As for the
tree listings of `kfd.policy.tree_walk` (which shares `FRESH_S`):

- an answer is kept only when every entry's change time is older than
  `FRESH_S` before it was read: file times tick coarsely, two changes in one
  tick leave one stamp, and a change made while reading shows as a recent
  time;
- an answer read through a symbolic link (an entry that is one, one ``lstat``
  cannot look at) is never kept: a link's target changes while the link's
  own stamp does not. Links in the middle of a path are followed by ``lstat``
  at each check, and lead to another entry (device and inode) when changed.

The reader says which entries its answer depends on; the tests hold each
kept answer equal to one read afresh while a workspace is changed at random
(`tests/unit/test_stamped.py`).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, Literal, TypeVar

__all__ = ["FRESH_S", "Kept"]

FRESH_S = 2.0
"""An entry changed more recently than this is never taken from memory."""

V = TypeVar("V")
Stamp = tuple[int, int, int, int, int]
"""Device, inode, size, modification and change times of an entry."""


def _stamp(path: str) -> Stamp | Literal[False] | None:
    """The stamp of ``path``; None when nothing is there; False when it cannot be
    kept (a link, or an entry ``lstat`` cannot look at)."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return False
    if stat.S_ISLNK(info.st_mode):
        return False
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class Kept(Generic[V]):
    """Answers by key, each given again while its entries' stamps hold. A value is
    shared between callers: keep it immutable (tuples)."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._kept: dict[Hashable, tuple[V, tuple[tuple[str, Stamp | None], ...]]] = {}

    def get(self, key: Hashable, read: Callable[[], tuple[V, Iterable[str] | None]]) -> V:
        """The answer for ``key``: the kept one while its stamps hold, else
        ``read()``'s: (the answer, the entries it depends on; None: keep it not)."""
        kept = self._kept.get(key)
        if kept is not None and all(_stamp(path) == stamp for path, stamp in kept[1]):
            return kept[0]
        trusted = time.time_ns() - int(FRESH_S * 1e9)  # before reading, as tree_walk
        value, watched = read()
        if watched is None:
            self._kept.pop(key, None)
            return value
        stamps: list[tuple[str, Stamp | None]] = []
        for path in dict.fromkeys(watched):
            found = _stamp(path)
            if found is False or (isinstance(found, tuple) and found[4] >= trusted):
                self._kept.pop(key, None)
                return value
            stamps.append((path, found if isinstance(found, tuple) else None))
        if len(self._kept) >= self._limit:
            self._kept.clear()
        self._kept[key] = (value, tuple(stamps))
        return value

    def clear(self) -> None:
        """Forget every answer (tests)."""
        self._kept.clear()
