"""What stood at each protected name of the workspace, and whether it still does.

A read-only bind protects an inode, not a name: a command may rename a
parent directory away (the mount moves with it) and make another in its
place, or replace a symbolic link on the way, and the host, which looks a
path up one component at a time, then finds what the command wrote. So the
layout records, for every path it protects in the workspace, what stands at
each name on the way there from the workspace's top, as the host would
resolve it (`record`); after the command, what stands at a recorded name
and is not what was recorded is moved aside (`replaced`), and a layout whose
names changed is not reused (`intact`). One ``lstat`` per recorded name.

A check compares with the workspace's record, made while no command ran in it
(`kfd.sandbox.expected`), not with what the command's own layout saw: another
session's command may have put its own copy there before that layout was
gathered.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence

import msgspec

MAX_LINKS = 40
"""Symbolic links followed while resolving one path (the kernel's own bound)."""

REPLACED = (
    "it stands where something kfd kept read-only, or a link on the way to it, was "
    "(this command, or another session's in this workspace, moved that away or replaced "
    "it): the host would obey what it holds (if you replaced it yourself on the host "
    "while a command ran, move it back)"
)


class Identity(msgspec.Struct, frozen=True, array_like=True):
    """What stood at ``path`` (in the workspace, no link on the way) when the layout
    was gathered: its device and inode, or, for a symbolic link, where it leads (a
    link re-made to lead to the same place is the same to the host)."""

    path: str
    device: int
    inode: int
    target: str = ""
    """What the link says (``readlink``); empty for anything else."""


def record(paths: Iterable[str], top: str) -> tuple[Identity, ...]:
    """The `Identity` of every existing name in the workspace at ``top`` (but ``top``
    itself) that the host passes through to reach each of ``paths``, resolved one
    component at a time as the kernel does (links followed, each recorded too).
    Parents come before what they hold. Names outside the workspace are out of a
    command's reach and not recorded, though links there are followed."""
    found: dict[str, Identity] = {}
    for path in paths:
        _resolve(path, top, found)
    return tuple(found.values())


def _resolve(path: str, top: str, found: dict[str, Identity]) -> None:
    inside = top.rstrip(os.sep) + os.sep
    current, rest = (top, path[len(inside) :]) if path.startswith(inside) else (os.sep, path)
    pending = [part for part in reversed(rest.split(os.sep)) if part not in ("", ".")]
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            current = os.path.dirname(current)
            continue
        here = os.path.join(current, part)
        known = found.get(here)  # on the way to another path already
        if known is not None:
            target = known.target
        else:
            try:
                info = os.lstat(here)
                target = os.readlink(here) if stat.S_ISLNK(info.st_mode) else ""
            except OSError:
                return  # missing: what must not appear there is swept by name
            if here.startswith(inside):
                found[here] = Identity(here, info.st_dev, info.st_ino, target)
        if not target:
            current = here
            continue
        links += 1
        if links > MAX_LINKS:
            return
        if target.startswith(os.sep):
            current = os.sep
        pending += [part for part in reversed(target.split(os.sep)) if part not in ("", ".")]


def _same(identity: Identity) -> bool | None:
    """Whether what stands at the name now is what was recorded; None when nothing
    does. Its parents are the same (`record` puts them first, checked first)."""
    try:
        info = os.lstat(identity.path)
        if stat.S_ISLNK(info.st_mode):
            return os.readlink(identity.path) == identity.target != ""
    except OSError:
        return None
    return not identity.target and (info.st_dev, info.st_ino) == (
        identity.device,
        identity.inode,
    )


def replaced(recorded: Sequence[Identity]) -> list[str]:
    """The recorded names where something else stands now, the outermost only (what
    lies below one is gone with it). A name where nothing stands is not one now, but
    is not let go either: a command may hold its copy renamed away while these checks
    look, and every check until the workspace is quiet compares with the same record
    (`kfd.sandbox.expected`)."""
    found: list[str] = []
    for identity in recorded:
        if any(_under(identity.path, other) for other in found):
            continue
        if _same(identity) is False:
            found.append(identity.path)
    return found


def intact(recorded: Sequence[Identity]) -> bool:
    """Whether every recorded name holds what it held."""
    return all(_same(identity) for identity in recorded)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
