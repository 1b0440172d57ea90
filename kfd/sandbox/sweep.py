"""Names a command must not leave behind, removed when it ends.

Some paths cannot be made read-only before they exist without leaving a
stand-in that changes what they mean (an empty ``.git/commondir`` breaks
git; an empty ``~/.bash_profile`` hides ``~/.profile``), and some cannot be
named in advance at all (whatever new dot-entry a command puts at the top of
a home that is in the workspace; another repository put where a protected
one was, after its parent directory was renamed away). A sandboxed command
that leaves one has it removed as soon as the command ends, when every
process of the sandbox is gone (its PID namespace dies with it, or the pod's
zygote killed them), and the command's result says so.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence

from kfd.sandbox.layout import HOME_KEPT, Layout

REDIRECTS = "it would make git or a shell run what it names outside the sandbox"
HOME_CONFIGURATION = (
    "a new entry at the top of your home is configuration that programs outside the sandbox read"
)
REPLACED = (
    "it stands where the repository kfd protected was (moved away by this command): "
    "its configuration could make git run a program outside the sandbox"
)


def leftovers(layout: Layout) -> list[tuple[str, str]]:
    """What the command that had ``layout`` left that must go, with why (blocking: a
    few ``lstat`` calls, and one listing of a home in the workspace)."""
    found = [(path, REDIRECTS) for path in layout.swept if os.path.lexists(path)]
    for path, inode in layout.markers:
        try:
            now = os.lstat(path).st_ino
        except OSError:
            continue  # gone (or moved away with its parent): nothing stands in its place
        if now != inode:
            found.append((path, REPLACED))
    if layout.home:
        before = set(layout.home_entries)
        kept = HOME_KEPT if layout.home == layout.workspace else HOME_KEPT[:1]
        try:
            names = sorted(os.listdir(layout.home))
        except OSError:
            names = []
        for name in names:
            if name.startswith(".") and name not in before and name not in kept:
                found.append((os.path.join(layout.home, name), HOME_CONFIGURATION))
    return found


def sweep(paths: Sequence[tuple[str, str]]) -> list[str]:
    """Remove whichever of ``paths`` now exist; one note per removal (blocking)."""
    notes = []
    for path, why in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        try:
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as exc:
            notes.append(f"kfd could not remove {path}, which this command created: {exc.strerror}")
            continue
        notes.append(f"kfd removed {path}, which this command created: {why}")
    return notes
