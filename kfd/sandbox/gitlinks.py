"""Symbolic links a command left in git's writable state: removed when it ends.

git never makes a symbolic link where it records work (the one exception, a
``HEAD`` that ``core.preferSymlinkRefs`` makes, leads into ``refs/``), yet it
follows one there: it appends to ``logs/HEAD`` through a link (a branch named
``fix;touch${IFS}/tmp/x;#`` becomes a line of ``~/.bashrc``), writes
``COMMIT_EDITMSG``, ``rebase-merge/message`` or ``rr-cache/<id>/postimage``
through one, and reads one as a commit's message or a conflict's resolution
(``~/.ssh/id_rsa`` committed, or copied where the next command reads it). A
command may write there (`kfd.sandbox.mounts.GIT_WRITABLE`), so after every
command each git directory the sandbox protected, and each of a repository
the command created, is looked through and every link in its writable state
is removed, never followed (`kfd.sandbox.sweep.reach`, then ``unlinkat``:
one put where a directory was listed is found by ``O_NOFOLLOW`` and removed
the same way). A link that stood at the top of a git directory before the
command, leading where it still leads, is the user's and stays.

Where it looks: every `GIT_WRITABLE` name at the top, and every directory
below those that are directories (``logs/``, ``refs/``, ``rebase-merge/``,
``rebase-apply/``, ``sequencer/``, ``rr-cache/``, ``info/``,
``NOTES_MERGE_WORKTREE/``...), but the objects' fan-out directories: of
``objects/`` only its own entries, ``info/`` and ``pack/``. git writes an
object to a temporary file it renames into place, which replaces a link
rather than following it, and reads one as compressed data it checks
against its name: a link among the loose objects leads git nowhere it would
write and shows nothing it would not refuse.

How far it looks: `MAX_DEPTH` levels below each name at the top, and
`MAX_DIRECTORIES` directories below each, by a loop with a descriptor per level
(never a recursion, never ``..``). A directory past either bound is not
looked through but moved aside to a name starting with a dot
(``.x.kfd-unsafe``), where git never reads (no component of a ref's name,
hence of a log's, starts with one, nor does a conflict's id or any name git
looks up in the rest of this state); so is one kfd cannot open, and one so
named is not looked through again. Fail closed: what kfd did not look
through, git does not read.

What it costs: a directory whose stamp (device, inode, mtime and ctime) is
the one it had when last found without a link is not listed again, only
opened (a link made in it, or anything renamed there, moves its mtime, and
its ctime cannot be set back); its subdirectories are visited the same way.
A repository with a few dozen directories of refs and logs costs as many
``open`` and ``fstat`` calls.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Mapping

from kfd.sandbox.aside import ASIDE, set_aside
from kfd.sandbox.layout import RACY_NS
from kfd.sandbox.mounts import GIT_WRITABLE
from kfd.sandbox.sweep import reach

LINKED_STATE = (
    "git never makes a symbolic link there, and the host's git would write or read "
    "where it leads (a log line appended to a shell's start-up file, a key taken as a "
    "commit's message)"
)

OBJECTS_LOOKED_IN = frozenset({"info", "pack"})
"""The directories of ``objects/`` looked through (not the fan-out of loose objects)."""

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_clean: dict[str, tuple[tuple[int, int, int, int], tuple[str, ...]]] = {}
"""Each directory last found without a link, by path: its stamp and its subdirectories."""
MAX_CLEAN = 4096


def remove_links(git_dir: str, root: str, kept: Mapping[str, str] | None = None) -> list[str]:
    """Remove every symbolic link in the writable state of the git directory at
    ``git_dir`` (reached from ``root`` without following a link); one note each.
    ``kept``: the links at its top when the command started, name to target."""
    reached = reach(git_dir, root)
    if reached is None:
        return []
    parent, name, shown = reached
    try:
        if shown != git_dir:
            return []  # a link or a file where the git directory was: not for this module
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except OSError:
        return []
    finally:
        os.close(parent)
    notes: list[str] = []
    try:
        with os.scandir(fd) as entries:
            top = [(e.name, e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in entries]
        for entry, is_link, is_dir in top:
            if entry not in GIT_WRITABLE:
                continue  # read-only, or a new name `kfd.sandbox.gitstate` moves aside
            path = os.path.join(git_dir, entry)
            if is_link:
                target = _target(fd, entry)
                if (kept or {}).get(entry) != target and not _symbolic_head(entry, target):
                    notes += _unlink(fd, entry, path)
            elif is_dir:
                notes += _look_in(fd, entry, path, entry == "objects")
    finally:
        os.close(fd)
    return notes


def _symbolic_head(name: str, target: str | None) -> bool:
    """Whether ``name`` is a ``HEAD`` git made a link (``core.preferSymlinkRefs``):
    one leading to a branch, in ``refs/``."""
    return (
        name == "HEAD"
        and target is not None
        and target.startswith("refs/")
        and ".." not in target.split("/")
    )


def _target(directory: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError:
        return None


def _look_in(parent: int, name: str, path: str, objects: bool) -> list[str]:
    """Remove the links in directory ``name`` of ``parent`` and below it.

    A loop, not a recursion: a command nests directories as deep as it likes (a
    frame per level raised `RecursionError` past a thousand, and the checks after
    this one were skipped, round 17). Depth first, one descriptor open per level
    entered, each opened from the one above without following a link (never by
    ``..``). What lies past `MAX_DEPTH` levels, or past `MAX_DIRECTORIES`, is not
    looked through: it is moved aside (`_beyond`), fail closed."""
    notes: list[str] = []
    top = _enter(parent, name, path, notes)
    if top is None:
        return notes
    left = MAX_DIRECTORIES - 1
    stack = [(top, path, iter(_subdirectories(top, path, notes, objects)))]
    try:
        while stack:
            fd, here, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                os.close(fd)
                stack.pop()
                continue
            child_path = os.path.join(here, child)
            if len(stack) >= MAX_DEPTH or left <= 0:
                notes += _beyond(fd, child, child_path)
                continue
            opened = _enter(fd, child, child_path, notes)
            if opened is not None:
                left -= 1
                subdirectories = _subdirectories(opened, child_path, notes, False)
                stack.append((opened, child_path, iter(subdirectories)))
    finally:
        for fd, _here, _pending in stack:
            os.close(fd)
    return notes


def _enter(parent: int, name: str, path: str, notes: list[str]) -> int | None:
    """A descriptor of directory ``name`` of ``parent``, or None: gone, or a link or
    a file since it was listed (a link removed), or one kfd cannot open (moved aside:
    what kfd cannot look through, git is not to look through either)."""
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):  # not a directory any more
            notes.append(set_aside(parent, name, _aside_name(name), path, _unopened(exc), ""))
            return None
    # A link (``O_DIRECTORY`` with ``O_NOFOLLOW`` says ENOTDIR of one) or a file.
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        notes += _unlink(parent, name, path)
    return None


def _subdirectories(fd: int, path: str, notes: list[str], objects: bool) -> tuple[str, ...]:
    """The subdirectories of directory ``fd`` (at ``path``) to look through, once the
    links in it are removed; not listed again while its stamp is one it had when last
    found without a link. Of ``objects/``, only `OBJECTS_LOOKED_IN`."""
    info = os.fstat(fd)
    stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    known = _clean.get(path)
    if known is not None and known[0] == stamp:
        subdirectories = known[1]
    else:
        links: list[str] = []
        found: list[str] = []
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_symlink():
                    links.append(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    found.append(entry.name)
        for link in links:
            notes += _unlink(fd, link, os.path.join(path, link))
        subdirectories = tuple(found)
        if not links and max(stamp[2], stamp[3]) < time.time_ns() - RACY_NS:
            if len(_clean) >= MAX_CLEAN:
                _clean.clear()
            _clean[path] = (stamp, subdirectories)
    if objects:
        return tuple(name for name in subdirectories if name in OBJECTS_LOOKED_IN)
    return tuple(name for name in subdirectories if not _moved_aside(name))


MAX_DEPTH = 64
"""Levels of directories looked through below a name at the top of a git directory.
git makes a level per component of a ref's name (``refs/remotes/origin/a/b``), a
handful; a command may make thousands."""

MAX_DIRECTORIES = 100_000
"""Directories looked through at most below a name at the top of a git directory (one
that a command fills cannot make kfd move aside what is below another: packs)."""

BEYOND = (
    "it lies deeper, or among more directories, than kfd looks through for symbolic "
    "links git would follow (git makes a few levels, for the components of a ref's "
    "name); moved to a name git never reads there (a ref's components never start with "
    "a dot)"
)


def _aside_name(name: str) -> str:
    """Where a directory kfd does not look through is moved, beside it: a name starting
    with a dot, which no ref, log or conflict's id of git's has, so that git never
    reads there, and ending like whatever kfd moves aside."""
    return f".{name}{ASIDE}"


def _moved_aside(name: str) -> bool:
    """Whether directory ``name`` is one kfd moved aside (`_aside_name`): not looked
    through again, since git never reads there."""
    return name.startswith(".") and name.endswith(ASIDE)


def _beyond(directory: int, name: str, path: str) -> list[str]:
    """Fail closed on directory ``name`` of ``directory``, which is not looked through:
    moved aside (`_aside_name`)."""
    return [set_aside(directory, name, _aside_name(name), path, BEYOND, "")]


def _unopened(exc: OSError) -> str:
    return f"kfd could not open it ({exc.strerror}) to look for symbolic links git would follow"


def _unlink(directory: int, name: str, path: str) -> list[str]:
    try:
        os.unlink(name, dir_fd=directory)  # never follows the link it removes
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"kfd could not remove {path}, a symbolic link this command left: {exc.strerror}"]
    return [f"kfd removed {path}, a symbolic link this command left in git's state: {LINKED_STATE}"]
