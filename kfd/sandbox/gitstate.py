"""What a command left in git's state that the host's git would obey: undone when it ends.

The sandbox lets a command record work in a git directory (`GIT_WRITABLE`:
the index, refs, objects, a rebase's state) and create repositories of its
own. Some of what git records there makes the host's git, later, run a
program or write outside the work tree when the user runs an ordinary
command, and the rule is that code the sandbox ran never leaves anything the
host obeys that way. So after every command, for each git directory the
sandbox protected and each repository the command created:

- **the index**: an entry whose path git itself would never accept from a
  tree (absolute, empty, ``.`` or ``..`` components, a ``.git`` component in
  any case: ``.git/hooks/pre-commit``, ``../outside``) is written where it
  says by the host's ``git checkout -- .``. Such an index, or one kfd cannot
  read, is moved aside to ``index.kfd-unsafe`` (`ASIDE`, a name git ignores), never
  deleted: the user's files are untouched and ``git reset`` rebuilds the
  index from ``HEAD`` (what was staged is then unstaged; the moved file
  holds it still). Fail closed: a broken index is git's to repair, not to
  obey. Parsed only when its stamp differs from the one kfd last found safe
  (`_vetted`), so a command that does not touch it costs one ``stat``;
- **to-do lists** (``rebase-merge/git-rebase-todo``, ``sequencer/todo``):
  an ``exec`` line runs a shell command at ``git rebase --continue``; each
  is made a comment (`disarmed`), and the result says so. A list the
  command left as it found it (`before`) is left alone: the user's own
  rebase, stopped on a conflict the model is asked to fix, keeps its
  ``exec`` lines;
- **symbolic links in the writable state** (``logs/HEAD``,
  ``COMMIT_EDITMSG``, ``rebase-merge/message``, ``rr-cache/<id>/postimage``):
  git never makes one there and follows it, to write or to read; each is
  removed (`kfd.sandbox.gitlinks`). A link that stood at the top of a git
  directory when the command started is the user's (never mounted over): one
  the command re-pointed or replaced is removed (or moved aside, not being a
  link any more) (`_repointed`);
- **files that name paths or programs** (``MERGE_RR``'s paths, which
  rerere writes and reads; a rebase's or cherry-pick's merge strategy, run
  as ``git merge-<strategy>``): one git would take out of the work tree, or
  to a program in it, is moved aside (`kfd.sandbox.gitnames`, which lists
  what else of that state was looked at and why it is harmless);
- **new names at the top of a protected git directory** that git does not
  record work in (``modules``, ``worktrees``, ``remotes``, anything else):
  moved aside (``modules.kfd-unsafe``: the host's git may have written it
  meanwhile, and nothing is deleted that could be the user's), a link
  removed. The mounts deny them by default where they exist; a name that
  did not exist cannot be mounted over without leaving a stand-in, so it is
  denied once the command ends (`unexpected_entries`);
- **repositories the command created** (below the workspace's top, or the
  top's own where there was none): the host's ``git status`` at the top
  enters one through a gitlink (an index entry, a commit, ``.gitmodules``)
  and obeys its configuration. Where that configuration runs programs
  (`kfd.policy.gitconfig.running_keys`: ``core.fsmonitor``, filters,
  ``diff.external``...) or names a hooks directory (``core.hooksPath``:
  the host's next ``git commit`` there runs what is in it), its ``config`` is
  moved aside (``config.kfd-unsafe``),
  and hooks it holds too; its index and to-do lists are checked as above.
  The git directories are those git would use (a link followed, a
  ``gitdir:`` file read, the ``commondir`` it names, where git reads the
  configuration), whatever their shape, wherever the command could write
  them (`in_reach`): the workspace, the project's cache home (writable in
  the sandbox, and the host's afterwards) and what git records work in of
  a protected git directory (``.git/refs/x``). Whatever leads git into such a
  repository, the check is on the repository itself: a gitlink can only
  lead git into a checkout in the work tree, and every checkout a command
  could configure is a new one (the configuration of those that existed is
  read-only).

Blocking (a listing and a few ``stat`` calls per git directory): called in a
worker thread once every process of the command is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Collection, Iterable, Sequence

from kfd.git import repository
from kfd.policy import gitconfig
from kfd.policy.gitindex import read_index
from kfd.sandbox import gitlinks, gitnames, repositories
from kfd.sandbox.layout import RACY_NS, SWEPT_IN_GIT_DIR, GitDir, Layout, layout_pruned
from kfd.sandbox.mounts import GIT_WRITABLE
from kfd.sandbox.sweep import reach, sweep

ASIDE = ".kfd-unsafe"
"""What is added to the name of a git directory's index, configuration or hooks when
they are moved aside because the host's git must not obey them (``index.kfd-unsafe``):
names git never reads."""

TODO_LISTS = (("rebase-merge", "git-rebase-todo"), ("sequencer", "todo"))
"""The to-do lists ``git rebase --continue``, ``cherry-pick --continue`` and
``revert --continue`` carry out, line by line."""

STAMPED = (*TODO_LISTS, *gitnames.STRATEGY_FILES, gitnames.SEQUENCER_OPTIONS)
"""What of a rebase's or cherry-pick's state is the user's while the command leaves it
as it was (`before`): the to-do lists, the strategy files."""

EXEC_WORDS = frozenset({b"exec", b"x"})
"""The to-do commands that run a shell command (git matches them in lower case only;
kfd in any case)."""

MOUNTED_IN_GIT_DIR = frozenset({"config", "hooks"})
"""Names the sandbox's own mounts create when missing (an empty, read-only ``config``;
an empty ``hooks``): made by kfd, not the command, and harmless."""

HOST_DAEMON = frozenset({"fsmonitor--daemon.ipc", "fsmonitor--daemon"})
"""What git's own file system monitor, running on the host, makes in a git directory
(meanwhile, perhaps): its socket and cookie directory."""

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


def unexpected_entries(before: Collection[str], now: Iterable[str]) -> list[str]:
    """The names at the top of a protected git directory that a command left and may
    not: new since ``before``, and neither where git records work (`GIT_WRITABLE`,
    a lock), nor swept by name already (`SWEPT_IN_GIT_DIR`), nor the sandbox's own
    stand-ins, nor the host's file system monitor's."""
    return sorted(
        name
        for name in now
        if name not in before
        and name not in GIT_WRITABLE
        and not name.endswith(".lock")
        and name not in SWEPT_IN_GIT_DIR
        and name not in MOUNTED_IN_GIT_DIR
        and name not in HOST_DAEMON
    )


def in_reach(path: str, places: Iterable[str], protected: Iterable[str]) -> bool:
    """Whether a sandboxed command could have made the git directory at ``path`` (a
    real path), so that what it holds is the command's to be checked: it lies in
    one of ``places`` (where the command's writes outlive it: the workspace, the
    project's cache home) or in what git records work in (`GIT_WRITABLE`, a lock)
    of a ``protected`` git directory, in the workspace or outside it (a linked
    worktree's). Not a protected one itself, nor in the read-only part of one
    (``.git/modules/<name>``): what those hold is the user's."""
    inner = max((d for d in protected if _under(path, d)), key=len, default=None)
    if inner is None:
        return any(_under(path, place) for place in places)
    first = os.path.relpath(path, inner).split(os.sep, 1)[0]
    return path != inner and (first in GIT_WRITABLE or first.endswith(".lock"))


def new_repositories(layout: Layout, markers: Iterable[tuple[str, int]]) -> list[str]:
    """The ``.git`` entries and bare-shaped directories in ``markers`` (as found after a
    command) that ``layout`` did not know: repositories the command created. The
    workspace's own ``.git`` too where it had none and could get one."""
    before = {path for path, _ in layout.markers}
    found = [path for path, _ in markers if path not in before]
    top = os.path.join(layout.workspace, ".git")
    if layout.marker == "none" and os.path.lexists(top):
        found.insert(0, top)
    return found


# The I/O shell.


Before = dict[str, tuple[int, int, int, int, int]]
"""The stamp (device, inode, size, mtime and ctime) of each to-do list of a protected
git directory, by path, when a command started."""


def before(layout: Layout) -> Before:
    """What `undo` must tell the command's doing from the user's: the to-do lists of
    ``layout``'s git directories as they are now (two ``stat`` calls a directory).
    One the command left as it was is the user's rebase (their own ``exec`` lines),
    or was checked after the command that wrote it."""
    if not layout.writable or layout.incomplete:
        return {}
    found: Before = {}
    for git_dir in layout.git_dirs:
        for directory, name in STAMPED:
            path = os.path.join(git_dir.path, directory, name)
            stamp = _stamp(path)
            if stamp is not None:
                found[path] = stamp
    return found


def _stamp(path: str) -> tuple[int, int, int, int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def undo(layout: Layout, started: Before | None = None) -> list[str]:
    """Undo what the command that had ``layout`` left in git's state and may not;
    one note per thing undone (blocking). ``started``: `before` the command."""
    if not layout.writable or layout.incomplete:
        return []
    root = layout.workspace
    notes: list[str] = []
    work_trees = {repository.gitdir_of(path): os.path.dirname(path) for path in layout.git_files}
    for git_dir in layout.git_dirs:
        names = _names(git_dir.path, root)
        if names is None:
            continue
        kept = dict(zip(git_dir.links, git_dir.targets, strict=False))
        notes += _repointed(git_dir.path, kept, root)
        notes += gitlinks.remove_links(git_dir.path, root, kept)
        for name in unexpected_entries(git_dir.entries, names):
            path = os.path.join(git_dir.path, name)
            if os.path.islink(path):  # nothing of anyone's in there: gone
                notes += sweep([(path, REMOVED_ENTRY)], root)
            else:  # perhaps the host's git wrote it meanwhile: kept, where git never looks
                notes.append(_aside(path, name + ASIDE, root, REMOVED_ENTRY))
        work_tree = work_trees.get(git_dir.path) or _work_tree(git_dir.path)
        notes += _check_git_dir(git_dir.path, names, root, work_tree, started or {})
    protected = [git_dir.path for git_dir in layout.git_dirs]
    found = repositories.find(root, layout_pruned(layout))
    if not found.complete:
        # More directories than a walk before each command goes through: the command
        # made them, and perhaps a repository among them. Walk them all, for a while.
        found = repositories.walk_until(root, layout_pruned(layout), MAX_WALK_SECONDS)
    if not found.complete:
        return notes + _no_gitlinks(layout.git_dirs, root)
    new = new_repositories(layout, found.markers)
    if not new:
        return notes
    # The cache home as git directories are found: real paths.
    places = (root, *([os.path.realpath(layout.cache_home)] if layout.cache_home else []))
    protected = [os.path.realpath(path) for path in protected]
    created: dict[str, str] = {}
    for marker in new:
        for path in _git_dirs_of(marker, places, protected):
            created.setdefault(path, marker)
    for path, marker in created.items():
        # Reached from where it lies (without a link on the way), or from the top.
        start = next((place for place in places if _under(path, place)), os.sep)
        notes += _disarm_repository(path, start, marker)
    return notes


MAX_WALK_SECONDS = 10.0
"""How long `undo` walks a workspace a command filled with more directories than
`kfd.sandbox.repositories.MAX_DIRECTORIES` (once: the next command finds it too large
and gets it read-only), looking for repositories it created."""

UNWALKED = (
    "this command left more directories than kfd could look through for repositories it "
    "created, and your git would enter one through a gitlink the index lists and obey its "
    "configuration; run `git reset` (what was staged is unstaged) only once you know what "
    "the command created, and look for `.git` directories first"
)


def _no_gitlinks(git_dirs: Iterable[GitDir], root: str) -> list[str]:
    """Fail closed where the repositories a command may have created are not known:
    every protected index moved aside, so that no gitlink it lists leads the host's
    git into one (``git status`` enters a submodule the index lists, never one only
    ``HEAD`` does). The rest of each git directory was checked already."""
    notes = []
    for git_dir in git_dirs:
        index = os.path.join(git_dir.path, "index")
        if os.path.lexists(index):
            notes.append(_aside(index, "index" + ASIDE, root, UNWALKED))
    return notes


def _work_tree(git_dir: str) -> str | None:
    """The work tree of the git directory at ``git_dir``, as git finds it: where its
    ``.git`` is, or a linked worktree's (its ``gitdir`` file names that one's
    ``.git``); None for a bare repository or one kfd cannot tell."""
    if os.path.basename(git_dir) == ".git":
        return os.path.dirname(git_dir)
    try:
        with open(os.path.join(git_dir, "gitdir"), encoding="utf-8", errors="replace") as named:
            marker = named.readline(4096).strip()
    except OSError:
        return None
    return os.path.dirname(marker) if os.path.isabs(marker) else None


def _repointed(git_dir: str, kept: dict[str, str], root: str) -> list[str]:
    """The links at the top of ``git_dir`` when the command started (the user's, never
    mounted over) that it re-pointed or replaced: git would follow one to what the
    command chose (a ``config`` of its own). A link is removed; anything else (a
    name git records work in stays, `kfd.sandbox.gitlinks` looks at it) moved aside."""
    notes = []
    for name, target in kept.items():
        path = os.path.join(git_dir, name)
        try:
            now = os.readlink(path)
        except FileNotFoundError:
            continue
        except OSError:
            now = None  # no longer a link
        if now == target or (now is None and name in GIT_WRITABLE):
            continue
        if now is not None:
            notes += sweep([(path, REMOVED_ENTRY)], root)
        else:
            notes.append(_aside(path, name + ASIDE, root, REMOVED_ENTRY))
    return notes


def _check_git_dir(
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
        return started is None or started.get(state) != _stamp(state)

    notes = []
    if "index" in names:
        notes += _check_index(os.path.join(path, "index"), root)
    for directory, name in TODO_LISTS:
        todo = os.path.join(path, directory, name)
        if directory in names and changed(todo):
            notes += _check_todo(todo, root)
    for state, why, entries in gitnames.findings(path, names, work_tree, changed):
        notes.append(_aside(state, os.path.basename(state) + ASIDE, root, why))
        for entry in entries:
            if os.path.lexists(entry):
                notes.append(_aside(entry, os.path.basename(entry) + ASIDE, root, RERERE))
    return notes


RERERE = "the conflict's resolution that a list of conflicts kfd moved aside named"


_vetted: dict[str, tuple[int, int, int, int, int]] = {}
"""Each index found safe, by path, with its stamp (device, inode, size, mtime and ctime):
one unchanged since is not read again."""
MAX_VETTED = 64


def _check_index(path: str, root: str) -> list[str]:
    reached = reach(path, root)
    if reached is None:
        return []
    directory, name, shown = reached
    try:
        if shown != path:
            return []  # the directory is gone or a link: git finds no index there either
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            return []
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if _vetted.get(path) == stamp:
            return []
        why = _index_refusal(directory, name, info)
        if why is None:
            if max(info.st_mtime_ns, info.st_ctime_ns) < time.time_ns() - RACY_NS:
                if len(_vetted) >= MAX_VETTED:
                    _vetted.clear()
                _vetted[path] = stamp  # not changed within a tick of the clock since
            return []
        return [_set_aside(directory, name, "index" + ASIDE, shown, why, RESET)]
    finally:
        os.close(directory)


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
        data = _read(directory, name, MAX_INDEX_BYTES)
    except OSError as exc:
        return f"kfd cannot read it: {exc.strerror}"
    return index_refusal(data)


def _check_todo(path: str, root: str) -> list[str]:
    reached = reach(path, root)
    if reached is None:
        return []
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
            todo, count = disarmed(_read(directory, name, MAX_TODO_BYTES))
            if not count:
                return []
            _replace(directory, name, todo)
        except OSError as exc:
            return sweep([(shown, f"kfd could not rewrite it ({exc.strerror})")], root)
        return [
            f"kfd made {count} exec line(s) of {shown} comments, which this command wrote: "
            "the host's git would run them at `--continue`; look at the list before you "
            "continue"
        ]
    finally:
        os.close(directory)


def _git_dirs_of(marker: str, places: Sequence[str], protected: Sequence[str]) -> list[str]:
    """The git directories git uses for a new marker, as git resolves them: the one
    it leads to (a link followed, a ``gitdir:`` file read) and the common one its
    ``commondir`` names (where git reads ``config`` and ``hooks`` from); those the
    command could have made (`in_reach` of ``places`` and ``protected``)."""
    git_dir = os.path.realpath(marker) if os.path.isdir(marker) else repository.gitdir_of(marker)
    if not git_dir or not os.path.isdir(git_dir):
        return []
    found = [git_dir]
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8", errors="replace") as named:
            common = named.readline(4096).strip()
    except OSError:
        common = ""
    if common:
        found.append(os.path.realpath(os.path.join(git_dir, common)))
    return [path for path in found if in_reach(path, places, protected)]


def _disarm_repository(git_dir: str, root: str, marker: str | None = None) -> list[str]:
    """A repository the command created (found by ``marker``, its ``.git`` or the bare
    directory): its configuration moved aside where it runs programs, its hooks moved
    aside, its links removed, its index, to-do lists and other state checked."""
    names = _names(git_dir, root)
    if names is None:
        return []
    notes = gitlinks.remove_links(git_dir, root)
    for name in ("config", "config.worktree"):
        keys = _config_keys(os.path.join(git_dir, name)) if name in names else []
        if keys:
            why = f"it sets {', '.join(dict.fromkeys(keys))}, which the host's git would run"
            notes.append(_aside(os.path.join(git_dir, name), name + ASIDE, root, why))
    if "hooks" in names and _real_hooks(os.path.join(git_dir, "hooks")):
        why = "they would run at the host's next git command there"
        notes.append(_aside(os.path.join(git_dir, "hooks"), "hooks" + ASIDE, root, why))
    at_marker = marker is not None and os.path.basename(marker) == ".git"
    work_tree = os.path.dirname(marker) if marker and at_marker else _work_tree(git_dir)
    return notes + _check_git_dir(git_dir, names, root, work_tree)


def _config_keys(path: str) -> list[str]:
    try:
        with open(path, "rb") as handle:
            text = handle.read(gitconfig.MAX_CONFIG_BYTES + 1)
    except OSError:
        return []
    if len(text) > gitconfig.MAX_CONFIG_BYTES:
        return ["(a configuration too large to read)"]
    keys = gitconfig.running_keys(text.decode("utf-8", "replace"))
    # Hooks from a directory of the work tree, run by the host's next `git commit` there.
    return keys + (["core.hooksPath"] if gitconfig.hooks_path_values(path) else [])


def _real_hooks(path: str) -> bool:
    try:
        return any(not name.endswith(".sample") for name in os.listdir(path))
    except OSError:
        return False


def _aside(path: str, aside: str, root: str, why: str) -> str:
    reached = reach(path, root)
    if reached is None:
        return f"kfd could not reach {path} to move it aside: {why}"
    directory, name, shown = reached
    try:
        return _set_aside(directory, name, aside, shown, why, "")
    finally:
        os.close(directory)


MAX_ASIDE = 20
"""Copies moved aside under one name at most (``modules.kfd-unsafe``, then
``modules.kfd-unsafe-2``...); past them, what a command left is removed."""


def _set_aside(directory: int, name: str, aside: str, shown: str, why: str, then: str) -> str:
    """Rename ``name`` in ``directory`` to ``aside``, or the first of its numbered
    spellings that is free (never following a link, never over another): what was
    moved may be the user's (git on the host wrote it meanwhile). Removed when that
    fails. A note saying what was done and why."""
    for number in range(1, MAX_ASIDE + 1):
        free = aside if number == 1 else f"{aside}-{number}"
        try:
            os.stat(free, dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            break
        except OSError:
            continue
    else:
        free = ""
    moved = os.path.join(os.path.dirname(shown), free)
    try:
        if not free:
            raise FileExistsError(aside)
        os.rename(name, free, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        try:
            _remove(directory, name)
        except OSError as exc:
            return f"kfd could not move aside nor remove {shown} ({exc.strerror}): {why}"
        return f"kfd removed {shown}, which this command left: {why}"
    tail = f"; {then}" if then else ""
    return f"kfd moved {shown} to {moved}, which this command left: {why}{tail}"


def _remove(directory: int, name: str) -> None:
    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=directory)
    else:
        os.unlink(name, dir_fd=directory)


def _replace(directory: int, name: str, data: bytes) -> None:
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


def _read(directory: int, name: str, limit: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def _names(path: str, root: str) -> list[str] | None:
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


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
