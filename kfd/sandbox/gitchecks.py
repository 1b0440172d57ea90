"""The index, the to-do lists and the files naming paths or programs of a git directory,
checked after a command (`kfd.sandbox.gitstate` says why each matters).

Pure decisions first (`refused_path`, `index_refusal`, `disarmed`), then the
I/O that applies them to one git directory (`check_git_dir`). Blocking.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Collection

from kfd.policy.gitindex import read_index
from kfd.sandbox import gitnames
from kfd.sandbox.aside import ASIDE, move_aside, read, replace, set_aside
from kfd.sandbox.layout import RACY_NS
from kfd.sandbox.sweep import reach, sweep

TODO_LISTS = (("rebase-merge", "git-rebase-todo"), ("sequencer", "todo"))
"""The to-do lists ``git rebase --continue``, ``cherry-pick --continue`` and
``revert --continue`` carry out, line by line."""

EXEC_WORDS = frozenset({b"exec", b"x"})
"""The to-do commands that run a shell command (git matches them in lower case only;
kfd in any case)."""

MAX_INDEX_BYTES = 256 * 1024 * 1024
"""A larger index is not read: it is moved aside (fail closed)."""
MAX_TODO_BYTES = 16 * 1024 * 1024
"""A larger to-do list is not read: it is removed (fail closed)."""

REMOVED_ENTRY = (
    "git may obey what it holds, and a command may only record work in a git directory "
    "(objects, refs, the index, a merge's or a rebase's state)"
)


# Pure decisions over what was found.


def refused_path(path: str) -> str | None:
    """Why git itself would refuse index entry ``path`` from a tree (its
    ``verify_path``, with ``core.protectNTFS``, which is on by default), or None.
    A checkout writes an entry where its path says: outside the work tree, or into
    the git directory (a hook)."""
    probe = "/" + path.removesuffix("/")  # a sparse index's directories end in "/"
    if "/." not in probe and "//" not in probe and "~" not in probe and probe != "/":
        return None  # no component that is empty or starts with a dot: most paths, fast
    if not path:
        return "an empty path"
    if path.startswith("/"):
        return "an absolute path"
    for part in probe[1:].split("/"):
        if part in ("", ".", ".."):
            return "a path with an empty, '.' or '..' component"
        # NTFS drops trailing dots and spaces, and knows .git by its short name.
        folded = part.split(":", 1)[0].rstrip(". ").lower()
        if folded in (".git", "git~1"):
            return "a path into a git directory"
    return None


def index_refusal(data: bytes) -> str | None:
    """Why the host's git must not obey index file ``data``, or None if every entry's
    path is one git accepts (`refused_path`). An index kfd cannot read is refused."""
    tracked = read_index(data)
    if isinstance(tracked, str):
        return f"kfd cannot read it as git would: {tracked}"
    for path in tracked.paths:
        why = refused_path(path)
        if why is not None:
            return f"it lists {path!r}, {why}, which git checkout would write there"
    return None


def disarmed(todo: bytes) -> tuple[bytes, int]:
    """To-do list ``todo`` with each line that runs a shell command (``exec``, ``x``)
    made a comment, and how many were. With a ``core.commentChar`` other than ``#``
    git reports the line as unknown and stops: it runs nothing either way."""
    lines = todo.split(b"\n")
    count = 0
    for number, line in enumerate(lines):
        words = line.split(None, 1)
        if words and words[0].lower() in EXEC_WORDS:
            lines[number] = b"# kfd: " + line
            count += 1
    return b"\n".join(lines), count


Before = dict[str, tuple[int, ...]]
"""The `stamp` of each to-do list of a protected git directory, by path, when a
command started."""


def stamp(path: str) -> tuple[int, ...] | None:
    """The file's stamp and its directory's (inode and ctime): a rename of the
    directory changes the directory's ctime, never the file's. Another session's
    command hid ``rebase-merge`` (renamed away and back) while this one was checked,
    and a stamp of the file alone then took the armed list for the user's (round
    16)."""
    try:
        info = os.lstat(path)
        parent = os.lstat(os.path.dirname(path))
    except OSError:
        return None
    return (
        info.st_dev,
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        parent.st_ino,
        parent.st_ctime_ns,
    )


def check_git_dir(
    path: str,
    names: Collection[str],
    root: str,
    work_tree: str | None,
    started: Before | None = None,
) -> list[str]:
    """The index, the to-do lists and the files naming paths or programs
    (`kfd.sandbox.gitnames`) of the git directory at ``path``, whose work tree is
    ``work_tree`` (a list or strategy as it was when the command ``started`` is left
    alone)."""

    def changed(state: str) -> bool:
        return started is None or started.get(state) != stamp(state)

    notes = []
    if "index" in names:
        notes += _check_index(os.path.join(path, "index"), root)
    for directory, name in TODO_LISTS:
        todo = os.path.join(path, directory, name)
        if directory in names and changed(todo):
            notes += _check_todo(todo, root)
    for state, why, entries in gitnames.findings(path, names, work_tree, changed):
        notes.append(move_aside(state, os.path.basename(state) + ASIDE, root, why))
        for entry in entries:
            if os.path.lexists(entry):
                notes.append(move_aside(entry, os.path.basename(entry) + ASIDE, root, RERERE))
    return notes


RERERE = "the conflict's resolution that a list of conflicts kfd moved aside named"


_vetted: dict[str, tuple[int, int, int, int, int]] = {}
"""Each index found safe, by path, with its stamp (device, inode, size, mtime and ctime):
one unchanged since is not read again."""
MAX_VETTED = 64


def _check_index(path: str, root: str) -> list[str]:
    reached = reach(path, root)
    if reached is None:
        return _unreached(path, path, root)
    directory, name, shown = reached
    try:
        if shown != path:
            return []  # the directory is gone or a link: git finds no index there either
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            return []
        now = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if _vetted.get(path) == now:
            return []
        why = _index_refusal(directory, name, info)
        if why is None:
            if max(info.st_mtime_ns, info.st_ctime_ns) < time.time_ns() - RACY_NS:
                if len(_vetted) >= MAX_VETTED:
                    _vetted.clear()
                _vetted[path] = now  # not changed within a tick of the clock since
            return []
        return [set_aside(directory, name, "index" + ASIDE, shown, why, RESET)]
    finally:
        os.close(directory)


def _unreached(path: str, state: str, root: str) -> list[str]:
    """Fail closed where kfd could not reach ``path`` from ``root`` (`reach` gave up
    on the way: a directory it may not open, no descriptor left): unless nothing is
    there, ``state`` (the file, or the rebase's directory holding it) is moved aside
    unread, since the host's git may reach it."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return []  # nothing there: git finds nothing to obey either
    except OSError:
        pass
    why = "kfd could not reach it to check what the host's git would obey in it"
    return [move_aside(state, os.path.basename(state) + ASIDE, root, why)]


RESET = (
    "your files are untouched; run `git reset` to rebuild the index from HEAD (what was "
    "staged is unstaged)"
)


def _index_refusal(directory: int, name: str, info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file (git would follow a link)"
    if info.st_size > MAX_INDEX_BYTES:
        return f"it is larger than kfd reads ({MAX_INDEX_BYTES:,} bytes)"
    try:
        data = read(directory, name, MAX_INDEX_BYTES)
    except OSError as exc:
        return f"kfd cannot read it: {exc.strerror}"
    return index_refusal(data)


def _check_todo(path: str, root: str) -> list[str]:
    reached = reach(path, root)
    if reached is None:
        return _unreached(path, os.path.dirname(path), root)
    directory, name, shown = reached
    try:
        if shown != path:  # a link where the rebase's directory is: git would follow it
            return sweep([(shown, REMOVED_ENTRY)], root)
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            return []
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_TODO_BYTES:
            return sweep([(shown, "kfd cannot read it as a to-do list of git's")], root)
        try:
            todo, count = disarmed(read(directory, name, MAX_TODO_BYTES))
            if not count:
                return []
            replace(directory, name, todo)
        except OSError as exc:
            return sweep([(shown, f"kfd could not rewrite it ({exc.strerror})")], root)
        return [
            f"kfd made {count} exec line(s) of {shown} comments, which this command wrote: "
            "the host's git would run them at `--continue`; look at the list before you "
            "continue"
        ]
    finally:
        os.close(directory)
