"""Names a command must not leave behind, removed when it ends.

Some paths cannot be made read-only before they exist without leaving a
stand-in that changes what they mean (an empty ``.git/commondir`` breaks
git; an empty ``~/.bash_profile`` hides ``~/.profile``), and some cannot be
named in advance at all (whatever new dot-entry, or ``bin``, a command puts
at the top of a home that is in the workspace; another repository put where
a protected one was, after its parent directory was renamed away). A
sandboxed command that leaves one has it removed as soon as the command
ends, when every process of the sandbox is gone (its PID namespace dies with
it, or the pod's zygote killed them), and the command's result says so.
Another thing at any other protected name is moved aside, not removed
(`kfd.sandbox.identities`: it may be the user's, renamed there).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from kfd.agent.instructions import NAMES as INSTRUCTION_FILES
from kfd.sandbox.layout import HOME_KEPT, Layout, is_home_configuration, program_shadows

REDIRECTS = "it would make git or a shell run what it names outside the sandbox"
HOME_CONFIGURATION = (
    "a new entry at the top of your home is configuration that programs outside the sandbox read"
)
INSTRUCTIONS = (
    "kfd reads an instruction file into every later session, and a command may not "
    "write one (writing it yourself asks)"
)
HOOKS = "git on the host runs what is in a hooks directory (core.hooksPath names it)"
PROGRAMS = (
    "your shells run programs from there (it is on PATH, or a tool's start-up code puts it there)"
)
SHADOWS = (
    "the workspace is on PATH, and this name would run in place of the program of the "
    "same name further on PATH (a new name that shadows none stays)"
)
LINKED = (
    "this command put it where a directory kfd protected was (a link could lead git, or "
    "kfd's own clean-up, anywhere)"
)
REPLACED = (
    "it stands where the repository kfd protected was (moved away by this command): "
    "its configuration could make git run a program outside the sandbox"
)


def leftovers(
    layout: Layout, markers: Sequence[tuple[str, int]] | None = None
) -> list[tuple[str, str]]:
    """What the command that had ``layout`` left that must go, with why (blocking: a
    few system calls, and one listing of a home in the workspace). ``markers``: the
    repositories below the top that must stand where they stood, as recorded while no
    command ran in the workspace (`kfd.sandbox.expected`), ``layout.markers`` if not
    given (which another session's command may have put there).

    Every path is reached from the workspace (or ``/``) one component at a time
    without following a link (`reach`): what the command made is never looked
    for, nor removed, through a link it put on the way, which could lead
    anywhere (a parent renamed away and a link to ``/home/u`` in its place).
    Such a link is itself what is left: the layout found real directories there."""
    root = layout.workspace
    found = [
        (shown, why)
        for path in layout.swept
        for shown, why in _present(path, root, _why_swept(path, layout))
    ]
    found += _replaced(layout.markers if markers is None else markers, root)
    if layout.later_on_path:
        before = set(layout.top_entries)
        try:
            names = os.listdir(root)
        except OSError:
            names = []
        for name in names:
            if name not in before and program_shadows(name, layout.later_on_path):
                found.append((os.path.join(root, name), SHADOWS))
    if layout.home:
        before = set(layout.home_entries)
        kept = HOME_KEPT if layout.home == layout.workspace else HOME_KEPT[:1]
        for name in _listing(layout.home, root):
            if is_home_configuration(name) and name not in before and name not in kept:
                found.append((os.path.join(layout.home, name), HOME_CONFIGURATION))
    return found


def _replaced(kept: Sequence[tuple[str, int]], root: str) -> list[tuple[str, str]]:
    """What stands where one of the repositories ``kept`` (paths with their inodes) was,
    and is another: a link or a file on the way, or a directory made anew after the
    command renamed a parent away (mounts move with it). One that is gone now is not
    harmless (a command may hold its copy renamed away while these checks look): the
    checks after every command until the workspace is quiet compare with the same
    record (`kfd.sandbox.expected`), and the one after the last command to end runs
    when no command is left to hide anything."""
    found = []
    for path, inode in kept:
        reached = reach(path, root)
        if reached is None:
            continue  # gone, or held away: a later check compares with the same record
        directory, name, shown = reached
        try:
            if shown != path:
                found.append((shown, LINKED))  # a link or a file where a directory was
                continue
            now = os.stat(name, dir_fd=directory, follow_symlinks=False).st_ino
        except OSError:
            continue
        finally:
            os.close(directory)
        if now != inode:
            found.append((path, REPLACED))
    return found


def _why_swept(path: str, layout: Layout) -> str:
    """Why ``path`` of ``layout.swept`` may not be left behind."""
    if os.path.dirname(path) == layout.workspace and os.path.basename(path) in INSTRUCTION_FILES:
        return INSTRUCTIONS
    if path in layout.hooks_dirs:
        return HOOKS
    if path in layout.program_dirs:
        return PROGRAMS
    return REDIRECTS


def sweep(paths: Sequence[tuple[str, str]], root: str = "/") -> list[str]:
    """Remove whichever of ``paths`` now exist, each reached from ``root`` (the
    workspace) without following a link (`reach`); one note per removal
    (blocking)."""
    notes = []
    for path, why in paths:
        reached = reach(path, root)
        if reached is None:
            continue
        directory, name, shown = reached
        try:
            remove(directory, name)
        except FileNotFoundError:
            continue
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
            notes.append(_renamed(directory, name, shown, why, str(reason)))
            continue
        finally:
            os.close(directory)
        notes.append(f"kfd removed {shown}, which this command created: {why}")
    return notes


UNREMOVED = ".kfd-unremoved"
"""Added to the name of what kfd could not remove (`sweep`): a name nothing looks up,
so that the next command's layout does not find it where it was and take it for the
user's (a directory on ``PATH`` it would make read-only, and the host would run)."""


MAX_UNREMOVED = 20
"""Renamed copies under one name at most (``x.kfd-unremoved``, then ``-2``...)."""


def free_name(directory: int, base: str, most: int) -> str | None:
    """The first of ``base``, ``base-2`` ... ``base-<most>`` at which nothing stands in
    ``directory`` (looked at without following a link), or None."""
    for number in range(1, most + 1):
        free = base if number == 1 else f"{base}-{number}"
        try:
            os.stat(free, dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            return free
        except OSError:
            continue
    return None


def _renamed(directory: int, name: str, shown: str, why: str, reason: str) -> str:
    """Fail closed where ``name`` could not be removed: renamed out of the way (never
    over another name); a note either way."""
    free = free_name(directory, f"{name}{UNREMOVED}", MAX_UNREMOVED)
    try:
        if free is None:
            raise FileExistsError(name)
        os.rename(name, free, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        return (
            f"kfd could neither remove nor rename {shown} ({reason}), which this "
            f"command created: {why}; remove it yourself before you run anything there"
        )
    return (
        f"kfd could not remove {shown} ({reason}) and renamed it to {free}, "
        f"which this command created: {why}"
    )


def remove(directory: int, name: str) -> None:
    """Remove ``name`` in ``directory`` (descriptor) and, for a directory, all it holds,
    never following a link, at any depth, never past ``directory``.

    Not `shutil.rmtree`: on Python 3.11 it recurses once per level, and a tree a
    command nests a few thousand levels deep raises `RecursionError`, which is no
    `OSError`, half-way (and a descriptor per level would run out of them). Here a
    loop with one open directory: each entry unlinked, or entered without following a
    link, and an emptied directory left by ``..`` and removed. Each ``..`` must be
    the very directory it came down from (device and inode kept on the way down): a
    process of another session may move the tree meanwhile, and ``..`` of a moved
    directory led the removal out of the workspace (round 15); then it stops.
    Raises `OSError` (`FileNotFoundError` when ``name`` is not there)."""
    if not stat.S_ISDIR(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode):
        os.unlink(name, dir_fd=directory)
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    names = [name]  # the way down from ``directory``; one descriptor open at a time
    fd = os.open(name, flags, dir_fd=directory)
    way = [_identity(directory), _identity(fd)]  # of ``directory`` and each below it
    try:
        while names:
            inner = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        inner = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if inner is not None:
                following = os.open(inner, flags, dir_fd=fd)
                os.close(fd)
                fd = following
                names.append(inner)
                way.append(_identity(fd))
                continue
            # Empty: up to the directory it was entered from, and no other.
            parent = os.open("..", flags, dir_fd=fd) if len(names) > 1 else os.dup(directory)
            os.close(fd)
            fd = parent
            way.pop()
            if _identity(fd) != way[-1]:
                raise OSError(errno.ESTALE, f"{name} moved while kfd removed it")
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


_DIRECTORY = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def reach(path: str, root: str) -> tuple[int, str, str] | None:
    """The entry standing for ``path``: a descriptor of its directory, its name and
    its path, walked from ``root`` (or ``/`` for a path outside it) one component
    at a time without following a link. Where a link or a file stands on the way,
    that is the entry (and its path is a prefix of ``path``); None when nothing
    is there. The caller closes the descriptor."""
    top = root.rstrip(os.sep) + os.sep
    start = root if path.startswith(top) else os.sep
    parts = [p for p in path[len(start) :].split(os.sep) if p]
    if not parts:
        return None
    current = os.open(start, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = start
    for part in parts[:-1]:
        try:
            following = os.open(part, _DIRECTORY, dir_fd=current)
        except FileNotFoundError:
            os.close(current)
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return current, part, os.path.join(walked, part)
            os.close(current)
            return None
        os.close(current)
        current = following
        walked = os.path.join(walked, part)
    return current, parts[-1], os.path.join(walked, parts[-1])


def present(path: str, root: str) -> str | None:
    """What stands for ``path`` (`reach`): ``path``, or the link or file on the way to
    it; None when nothing does."""
    reached = reach(path, root)
    if reached is None:
        return None
    directory, name, shown = reached
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(directory)
    return shown


def _present(path: str, root: str, why: str) -> list[tuple[str, str]]:
    """``[(path, why)]`` if something stands for ``path`` (`present`), else ``[]``."""
    shown = present(path, root)
    if shown is None:
        return []
    return [(shown, why if shown == path else LINKED)]


def _listing(directory: str, root: str) -> list[str]:
    """The names in ``directory``, opened from ``root`` without following a link
    (none where a link stands on the way)."""
    reached = reach(directory, root)
    if reached is None:
        return []
    parent, name, shown = reached
    try:
        if shown != directory:
            return []
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
        )
    except OSError:
        return []
    finally:
        os.close(parent)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)
