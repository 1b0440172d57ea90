"""The git repositories below the workspace: found by a bounded walk, kept by inotify.

A repository that already exists below the workspace (a directory of clones,
a vendored checkout) has a git directory whose ``config`` and hooks run
programs when the user later runs git there on the host: the sandbox
protects it as it protects the workspace's own. Finding them costs a walk
of the workspace (`walk`): ``os.scandir`` and the entries' types, no
``stat``, never into a git directory or into what the sandbox covers anyway
(``prune``), and at most `MAX_DIRECTORIES` directories.

What it finds (`Found`): every ``.git`` (a directory, a ``gitdir:`` file or a
symbolic link) and every directory shaped like a bare repository (``HEAD``,
``objects/``, ``refs/``), each with its inode, so that a repository replaced
during a command (its parent renamed away, a copy put in its place) is told
from the one that was protected.

`find` walks a workspace once and then keeps what it found current with
inotify, one watch per directory walked: a command that creates, moves or
deletes a directory or a ``.git`` leaves an event in the queue before it
ends, so reading the queue (one non-blocking ``read``) before the next
command is enough to know whether anything changed. A new directory is
walked on its own; a ``.git`` or a repository's name moved or deleted, a
directory moved, or a queue overflowed: the whole workspace is walked
again. Where inotify cannot watch (no watches left), every command walks.
After a command, `find_settled` looks until a look walks nothing: a
directory another command renamed while the walk went through hides what
was below it from that walk.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import errno
import os
import struct
import threading
import time
from collections.abc import Collection, Iterator
from typing import NamedTuple

MAX_DIRECTORIES = 20_000
"""Directories walked at most. A workspace with more is not known to hold no other
repository: `kfd.sandbox.layout.gather` then makes it read-only (fail closed)."""

BARE_NAMES = frozenset({"HEAD", "objects", "refs"})
"""What makes a directory a git directory to git (``is_git_directory``)."""


class Found(NamedTuple):
    """The repositories below a workspace, as one walk saw them."""

    markers: tuple[tuple[str, int], ...]
    """Each ``.git`` below the workspace's top and each bare-shaped directory, with
    its inode; sorted by path."""
    complete: bool
    """Every directory was walked (`MAX_DIRECTORIES` was not reached)."""


class _Walk:
    """One walk's state: the markers found, the directories walked (and their watches)."""

    def __init__(
        self,
        root: str,
        prune: Collection[str],
        watch: _Inotify | None,
        limit: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.root = root
        self.prune = frozenset(prune)
        self.watch = watch
        self.limit = MAX_DIRECTORIES if limit is None else limit
        self.deadline = deadline
        self.markers: dict[str, int] = {}
        self.walked = 0
        self.complete = True

    def _stopped(self) -> bool:
        """Whether the walk must end here: its bound reached, or its deadline passed
        (looked at every 256 directories)."""
        if self.walked >= self.limit:
            return True
        return (
            self.deadline is not None
            and self.walked % 256 == 0
            and time.monotonic() > self.deadline
        )

    def walk(self, top: str) -> None:
        """Walk ``top`` and everything below it, breadth first (the repositories near
        the top are found first when the bound is reached)."""
        pending = collections.deque([(top, 0)])
        while pending:
            directory, inode = pending.popleft()
            if self._stopped():
                self.complete = False
                return
            self.walked += 1
            if self.watch is not None and not self.watch.add(directory):
                self.watch = None  # no watch: what changes cannot be told, walk every time
            try:
                with os.scandir(directory) as scanned:
                    entries = list(scanned)
            except OSError:
                continue  # unreadable: a command cannot read or name what is inside either
            names = {entry.name for entry in entries}
            if directory != self.root and names >= BARE_NAMES:
                self.markers[directory] = inode or os.lstat(directory).st_ino
                continue  # a bare repository: its insides are git's
            for entry in entries:
                if entry.name == ".git":
                    if directory != self.root:
                        self.markers[entry.path] = entry.inode()
                elif entry.is_dir(follow_symlinks=False) and entry.path not in self.prune:
                    pending.append((entry.path, entry.inode()))

    def found(self) -> Found:
        return Found(tuple(sorted(self.markers.items())), self.complete)


def walk(root: str, prune: Collection[str] = ()) -> Found:
    """The repositories below ``root`` (a real path), never entering ``prune``."""
    state = _Walk(root, prune, None)
    state.walk(root)
    return state.found()


def walk_until(root: str, prune: Collection[str], seconds: float) -> Found:
    """`walk` with no bound on the directories but a time: complete if it ended
    within ``seconds``."""
    state = _Walk(root, prune, None, limit=2**62, deadline=time.monotonic() + seconds)
    state.walk(root)
    return state.found()


# inotify(7), through libc. Our own binding, for a guarantee the libraries do not
# give: the kernel queues a command's events as its system calls happen, so one
# non-blocking read after it ends sees them all. watchfiles (which the triggers
# use) delivers events from a thread of its own, after a debounce: a read right
# after the command could miss the `.git` it made, and a stale answer here is a
# repository left unprotected.
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_DONT_FOLLOW = 0x2000000
IN_EXCL_UNLINK = 0x4000000
IN_ISDIR = 0x40000000
_MASK = (
    IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
_EVENT = struct.Struct("iIII")


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


class _Inotify:
    """An inotify instance watching directories, read without blocking."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.paths: dict[int, str] = {}

    @classmethod
    def open(cls) -> _Inotify | None:
        if _LIBC is None:
            return None
        fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        return None if fd < 0 else cls(fd)

    def add(self, directory: str) -> bool:
        """Watch ``directory``; False if no watch could be added (none left)."""
        assert _LIBC is not None
        wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(directory), _MASK)
        if wd >= 0:
            self.paths[wd] = directory
            return True
        # Gone or not a directory (any more) since it was listed: nothing to watch.
        return ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR, errno.EACCES)

    def events(self) -> Iterator[tuple[int, int, str]]:
        """(watch, mask, name) of each event queued since the last call."""
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + length].split(b"\0", 1)[0]
                offset += length
                yield wd, mask, os.fsdecode(raw)

    def close(self) -> None:
        os.close(self.fd)


class _Kept:
    """One workspace's `Found`, kept current by inotify."""

    def __init__(self, root: str, prune: Collection[str]) -> None:
        self.root = root
        self.prune = tuple(prune)
        self.state = _Walk(root, prune, _Inotify.open())
        self.state.walk(root)

    @property
    def watching(self) -> bool:
        return self.state.watch is not None

    def current(self) -> bool:
        """Bring what was found up to date; False if only a new walk can tell."""
        watch = self.state.watch
        if watch is None:
            return False
        markers = self.state.markers
        for wd, mask, name in watch.events():
            if mask & IN_Q_OVERFLOW:
                return False
            if mask & IN_IGNORED:
                watch.paths.pop(wd, None)
                continue
            directory = watch.paths.get(wd)
            if directory is None:
                continue
            if mask & (IN_MOVE_SELF | IN_DELETE_SELF):
                if directory == self.root or mask & IN_MOVE_SELF:
                    return False  # a moved directory's watches name its old path
                continue
            path = os.path.join(directory, name)
            is_dir = bool(mask & IN_ISDIR)
            if name == ".git" or name in BARE_NAMES or path in markers:
                return False  # a repository appeared, went or changed shape
            if is_dir and mask & (IN_MOVED_FROM | IN_MOVED_TO):
                return False
            if is_dir and mask & IN_CREATE and path not in self.state.prune:
                self.state.walk(path)  # watched first, then listed: nothing slips between
                if self.state.watch is None:
                    return False
        return True

    def close(self) -> None:
        if self.state.watch is not None:
            self.state.watch.close()


_kept: dict[str, _Kept] = {}
_lock = threading.Lock()
MAX_KEPT = 8
"""Workspaces kept at once; the oldest is let go beyond."""


def find(root: str, prune: Collection[str] = ()) -> Found:
    """`walk` of ``root``, from what was found before while inotify says nothing that
    could change it happened since. Blocking."""
    return _look(root, prune)[0]


MAX_LOOKS = 4
"""Looks at most that `find_settled` takes for one to find nothing changed."""


def find_settled(root: str, prune: Collection[str] = ()) -> Found:
    """`find`, looked at again until a look finds that nothing was moved or made while
    the one before walked: a directory renamed meanwhile (by another command, running
    at the same time) hides what is below it from a walk that had not reached it yet,
    and its events make the next look walk again. Where inotify does not watch, two
    walks finding the same. Incomplete when the looks do not settle. Blocking."""
    found, _how = _look(root, prune)
    for _ in range(MAX_LOOKS):
        again, how = _look(root, prune)
        if how == "kept" or (how == "unwatched" and again == found):
            return again
        found = again
    return Found(found.markers, complete=False)


def _look(root: str, prune: Collection[str]) -> tuple[Found, str]:
    """`find`, and how it found: ``kept`` (what was kept, nothing walked since),
    ``walked`` (watched, with something walked) or ``unwatched`` (walked, no inotify)."""
    prune = tuple(sorted(prune))
    with _lock:
        kept = _kept.pop(root, None)
    walked = kept.state.walked if kept is not None else -1
    if kept is not None and kept.prune == prune and kept.current():
        found = kept.state.found()
        how = "kept" if kept.state.walked == walked else "walked"
    else:
        if kept is not None:
            kept.close()
        kept = _Kept(root, prune)  # outside the lock: other workspaces need not wait
        found = kept.state.found()
        how = "walked"
        if not kept.watching:
            kept.close()
            return found, "unwatched"
    with _lock:
        other = _kept.pop(root, None)  # another command's, meanwhile: keep the latest
        if other is not None:
            other.close()
        while len(_kept) >= MAX_KEPT:
            _kept.pop(next(iter(_kept))).close()
        _kept[root] = kept
    return found, how


def forget() -> None:
    """Keep nothing (tests)."""
    with _lock:
        for kept in _kept.values():
            kept.close()
        _kept.clear()
