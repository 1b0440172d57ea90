"""Walking a directory tree for the paths read rules restrict, remembered between decisions.

Part of the I/O half of a bash decision (`kfd.policy.line_facts`): a command
that reads a directory whole (``grep -r x .``, ``rg x``) is allowed only if
no file under it is one the read rules deny or ask about. Listing and
matching every entry again cost about 15 ms per decision in a repository of
10,000 files, the commonest command of an agent. So each directory's listing
is remembered (per rule set: the remembered results are that matcher's),
keyed by the directory's identity and times: inode, device, modification
and change time. Creating, removing or renaming an entry changes the first
time; resetting it (``touch -d``) changes the change time, which no user can
set. A decision on an unchanged tree costs one ``stat`` per directory.

Two rules keep a remembered listing honest:

- the stamp is taken before the listing, so a change while listing shows
  as a new stamp next time;
- a directory changed within the last `FRESH_S` is listed again every time:
  file times tick coarsely (a few milliseconds), and two changes in one tick
  leave the same stamp.

Symlinks are resolved at every walk (their targets can change without their
directory changing); a symlink is tested, never descended. For a reader that
follows them (``grep -R``, ``zip -r``) the links that lead out of the tree or
into a directory are named (``src/up -> ..``, a link out of the workspace), so
they ask; a link to a file in the tree was tested like any file.
"""

from __future__ import annotations

import os
import stat
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kfd.policy.paths import inside, real_path
from kfd.policy.stamped import FRESH_S

if TYPE_CHECKING:
    from kfd.policy.rules import PathMatcher

__all__ = ["FRESH_S", "Walked", "walk"]

_MAX_LISTINGS = 100_000
"""Listings remembered per rule set before it starts over (a few tens of MB at most)."""
_OBJECTS = f"{os.sep}.git{os.sep}objects{os.sep}"
"""Below a git directory's object store, files have other hard links as a rule (a
local clone links them): only their names and symbolic links are looked at."""

Stamp = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _Listing:
    """What one directory holds, as far as the walk is concerned."""

    stamp: Stamp
    entries: int
    hits: tuple[str, ...]
    """Entries the matcher restricts by name (as spelled, and as really named)."""
    links: tuple[tuple[str, str], ...]
    """Symlinks not hit by name: (real entry path, spelled path), resolved at each walk."""
    below: tuple[tuple[str, str], ...]
    """Subdirectories to walk: (real path, spelled path)."""
    linked: tuple[str, ...]
    """Regular files with other hard links (spelled): the content of a file a rule
    restricts, under a name none does."""


_remembered: weakref.WeakKeyDictionary[PathMatcher, dict[tuple[str, str], _Listing]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class Walked:
    """What a walk found under one directory."""

    hits: list[str]
    """Paths the matcher restricts (the first ``max_hits``)."""
    complete: bool
    """The walk saw everything (not past ``max_entries`` entries)."""
    links: list[str]
    """With ``links``: symbolic links met that lead out of the tree or into a
    directory (the first ``max_hits``)."""
    linked: list[str]
    """Regular files with other hard links (the first ``max_hits``)."""


def walk(
    real: str,
    spelled: str,
    restricted: PathMatcher,
    *,
    max_entries: int,
    max_hits: int,
    links: bool = False,
) -> Walked:
    """Paths under ``real`` (spelled from ``spelled``) that ``restricted`` matches,
    and whether the walk saw everything: not past ``max_entries`` entries; it
    stops at ``max_hits`` hits (enough to ask). ``links``: also the symbolic links
    under it (for a reader that follows them)."""
    memory = _remembered.get(restricted)
    if memory is None:
        memory = _remembered.setdefault(restricted, {})
    hits: list[str] = []
    met: list[str] = []
    linked: list[str] = []
    seen = 0
    root = real_path(real)
    stack = [(real, spelled)]
    # Before every stamp: a listing is remembered only if its directory's
    # times are older than FRESH_S before this.
    trusted = time.time_ns() - int(FRESH_S * 1e9)
    while stack:
        directory, shown = stack.pop()
        listing = _listing(directory, shown, restricted, memory, trusted)
        if listing is None:
            continue
        seen += listing.entries
        if seen > max_entries:
            return Walked(hits, False, met, linked)
        hits += listing.hits
        if listing.linked and len(linked) < max_hits:
            linked += listing.linked[: max_hits - len(linked)]
        for path, named in listing.links:
            target = real_path(path)
            if restricted(target):
                hits.append(named)
            elif links and len(met) < max_hits and _leads_away(target, root):
                met.append(named)
        if len(hits) >= max_hits:
            return Walked(hits[:max_hits], True, met, linked)
        stack += listing.below
    return Walked(hits, True, met, linked)


def _leads_away(target: str, root: str) -> bool:
    """Whether a reader following a link to ``target`` leaves the walked tree or
    enters a directory the walk did not list (a file inside was tested above)."""
    return not inside(target, root) or os.path.isdir(target)


def _listing(
    directory: str,
    shown: str,
    restricted: PathMatcher,
    memory: dict[tuple[str, str], _Listing],
    trusted: int,
) -> _Listing | None:
    try:
        status = os.stat(directory, follow_symlinks=False)
    except OSError:
        return None
    stamp = (status.st_ino, status.st_dev, status.st_mtime_ns, status.st_ctime_ns)
    key = (directory, shown)
    known = memory.get(key)
    if known is not None and known.stamp == stamp:
        return known
    listing = _list(directory, shown, stamp, restricted)
    if listing is not None and max(stamp[2], stamp[3]) < trusted:
        if len(memory) >= _MAX_LISTINGS:
            memory.clear()
        memory[key] = listing
    else:
        memory.pop(key, None)
    return listing


def _list(directory: str, shown: str, stamp: Stamp, restricted: PathMatcher) -> _Listing | None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    prefix = shown if shown.endswith("/") else f"{shown}/"
    hits: list[str] = []
    links: list[tuple[str, str]] = []
    below: list[tuple[str, str]] = []
    linked: list[str] = []
    # A `.git` is walked like any directory: grep -r and rg -uuu read it, and a
    # repository that came as a tarball may hold links to anything there.
    objects = _OBJECTS in directory + os.sep
    for entry in entries:
        # Concatenation, not os.path.join, for a name without a slash (thousands of entries).
        path = prefix + entry.name
        if restricted(path) or (path != entry.path and restricted(entry.path)):
            hits.append(path)
            continue
        if entry.is_symlink():
            links.append((entry.path, path))
            continue
        try:
            descend = entry.is_dir(follow_symlinks=False)
        except OSError:
            descend = False
        if descend:
            below.append((entry.path, path))
            continue
        # Its hard links, which no listing gives: one lstat a file, when its directory
        # is listed (then remembered with it). A new link made to a file from another
        # directory would change its count but not this directory; no sandboxed
        # program can make one (`kfd.sandbox.seccomp`: round 19).
        if objects:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_nlink > 1 and stat.S_ISREG(info.st_mode):
            linked.append(path)
    return _Listing(stamp, len(entries), tuple(hits), tuple(links), tuple(below), tuple(linked))
