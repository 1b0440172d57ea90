"""The paths git tracks, read from the repository's index file without running git.

``git diff`` (the worktree against the index) and ``git grep`` print the
contents of tracked files only: whether one of them is a path a read rule
denies is a question about the index. Running git on the host to answer it
would run the repository's configuration (fsmonitor, hooks...), so the index
file is read directly: its format (``Documentation/gitformat-index.txt``,
versions 2 to 4) is small and stable. A git directory elsewhere than
``.git`` inside the workspace (a ``gitdir:`` file pointing out) is not
followed: the answer is then "unknown", and the engine asks.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from kfd.git.repository import gitdir_of
from kfd.policy.stamped import Kept
from kfd.regular import read_regular

__all__ = [
    "MAX_INDEX_BYTES",
    "Tracked",
    "canonical",
    "gitlink_names",
    "index_paths",
    "parse_index",
    "read_index",
    "repository_tops",
    "submodule_checkouts",
]

MAX_INDEX_BYTES = 64 * 1024 * 1024
"""A larger index is not read (the answer is "unknown")."""

_HEADER = struct.Struct(">4sII")
_ENTRY_FIXED = 62  # ctime..sha1 (60 bytes) + flags (2)
_MODE_OFFSET = 24  # after ctime, mtime (8 bytes each), dev and ino (4 each)
_GITLINK = 0o160000
"""An entry's mode when it is a submodule: another repository's checkout."""


@dataclass(frozen=True, slots=True)
class Tracked:
    """What an index lists."""

    paths: list[str]
    """Every entry's path (submodules included)."""
    submodules: list[str]
    """The entries that are other repositories' checkouts: git prints their files too
    (``git grep --recurse-submodules``, ``git diff --submodule=diff``, or the
    user's own ``diff.submodule`` and ``submodule.recurse`` settings)."""


def parse_index(data: bytes) -> Tracked | None:
    """The entries of an index file, or None if it is not one kfd can read as git
    reads it (`read_index` says why)."""
    found = read_index(data)
    return found if isinstance(found, Tracked) else None


def read_index(data: bytes) -> Tracked | str:
    """The entries of an index file, or why kfd cannot read it as git reads it: a
    name whose length field and terminating NUL disagree (git goes by the field:
    ``.envQ`` with length 3 is ``.env`` to git), a name git itself would never
    write (`canonical`: ``src/../secrets/x``, ``../x``), a directory entry of a
    sparse index, a split index's ``link`` to entries held elsewhere, offset
    tables pointing elsewhere than the entries (`_extensions_agree`)."""
    try:
        return _read_index(data)
    except (struct.error, IndexError, ValueError):
        return "it is cut short or malformed"


def _read_index(data: bytes) -> Tracked | str:
    if len(data) < _HEADER.size:
        return "it is too short for an index"
    signature, version, count = _HEADER.unpack_from(data)
    if signature != b"DIRC" or version not in (2, 3, 4):
        return "it is not an index of version 2, 3 or 4"
    paths: list[str] = []
    submodules: list[str] = []
    starts: list[int] = []
    offset = _HEADER.size
    previous = b""
    for _ in range(count):
        start = offset
        starts.append(start)
        if offset + _ENTRY_FIXED > len(data):
            return "it is cut short"
        flags = struct.unpack_from(">H", data, offset + 60)[0]
        kind = struct.unpack_from(">I", data, offset + _MODE_OFFSET)[0] & 0o170000
        if kind == _DIRECTORY:
            return "it is a sparse index (its directories stand for trees kfd cannot list)"
        offset += _ENTRY_FIXED
        if flags & 0x4000:  # extended flags (version 3+)
            offset += 2
        length = flags & _NAME_MASK
        if version == 4:
            strip, offset = _varint(data, offset)
            end = data.find(b"\0", offset)
            if end < 0 or strip > len(previous):
                return "it is cut short"
            name = previous[: len(previous) - strip] + data[offset:end]
            offset = end + 1
        else:
            end = data.find(b"\0", offset)
            if end < 0:
                return "it is cut short"
            name = data[offset:end]
            # Entries are padded with NULs to a multiple of eight bytes.
            offset = start + ((end - start + 8) // 8) * 8
        shown = name.decode("utf-8", "backslashreplace")
        if length != _NAME_MASK and length != len(name):
            return f"the entry {shown!r} has a length git reads otherwise"
        if not canonical(name):
            return f"the entry {shown!r} is a path git would never write"
        previous = name
        paths.append(name.decode("utf-8", "surrogateescape"))
        if kind == _GITLINK:
            submodules.append(paths[-1])
    if not _extensions_agree(data, offset, starts):
        return "its extensions hold entries elsewhere (a split index, or offset tables)"
    return Tracked(paths, submodules)


_NAME_MASK = 0x0FFF
"""The name-length bits of an entry's flags; all set: the name is longer (ends at NUL)."""
_DIRECTORY = 0o040000


def canonical(name: bytes) -> bool:
    """Whether git would have written ``name`` (`verify_path`): relative, no empty,
    ``.`` or ``..`` component, no ``.git`` component in any case. Any other name
    came from a hand-made index, and where git would put it is not what it says."""
    if not name or name.endswith(b"/"):
        return False
    return all(
        part not in (b"", b".", b"..") and part.lower() != b".git" for part in name.split(b"/")
    )


def _extensions_agree(data: bytes, offset: int, starts: list[int]) -> bool:
    """Whether the extensions after the entries (from ``offset``) let git read the
    entries kfd read, one after another from ``starts``: no ``link`` (a split
    index: the entries are changes to a shared file) or ``sdir``; an ``EOIE``
    that says the entries end where they did; an ``IEOT`` (git's offsets for
    reading blocks of entries in threads) whose blocks start at entries kfd read
    and cover them all, in order."""
    entries_end = offset
    while offset + 8 <= len(data) - 20:
        signature = data[offset : offset + 4]
        size = struct.unpack_from(">I", data, offset + 4)[0]
        body = data[offset + 8 : offset + 8 + size]
        if signature in (b"link", b"sdir") or len(body) < size:
            return False
        if signature == b"EOIE" and (len(body) < 4 or _word(body, 0) != entries_end):
            return False
        if signature == b"IEOT" and not _blocks_agree(body, starts):
            return False
        offset += 8 + size
    return True


def _blocks_agree(body: bytes, starts: list[int]) -> bool:
    """Whether an ``IEOT`` body (version, then offset and count of each block) tiles
    the entries at ``starts``."""
    if len(body) < 4 or (len(body) - 4) % 8 or _word(body, 0) != 1:
        return False
    index = 0
    for at in range(4, len(body), 8):
        block, entries = _word(body, at), _word(body, at + 4)
        if index >= len(starts) or starts[index] != block or entries == 0:
            return False
        index += entries
    return index == len(starts)


def _word(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from(">I", data, offset)[0]
    return value


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """git's offset encoding (varint.c): big-endian 7-bit groups, each continuation +1."""
    byte = data[offset]
    offset += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[offset]
        offset += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, offset


def index_paths(workspace: str) -> Tracked | None:
    """The tracked paths of the repository at ``workspace`` (relative to it), or None.

    Blocking: call it through a thread.
    """
    git = os.path.join(workspace, ".git")
    index = os.path.join(git, "index")
    try:
        if not os.path.isdir(git) or os.path.islink(git) or os.path.islink(index):
            return None
        if os.path.getsize(index) > MAX_INDEX_BYTES:
            return None
        data = read_regular(index, MAX_INDEX_BYTES)
    except (OSError, ValueError):
        return None
    return parse_index(data)


def submodule_checkouts(top: str) -> list[str] | None:
    """The checkouts of the submodules the index of the repository at ``top`` lists
    that hold a ``.git`` (git enters each on ``git status`` and ``git diff``, and
    obeys its configuration and hooks there: with or without ``.gitmodules`` or
    ``.git/modules``); None when kfd cannot read that index. Kept while the index
    and those ``.git`` entries hold (`kfd.policy.stamped`)."""
    marker = os.path.join(top, ".git")
    if os.path.isdir(marker) and not os.path.islink(marker):
        git_dir: str | None = marker
    elif os.path.isfile(marker) and not os.path.islink(marker):
        git_dir = gitdir_of(marker)
    else:
        return []
    if git_dir is None:
        return None
    index = os.path.join(git_dir, "index")
    found = _checkouts.get((top, index), lambda: _read_checkouts(top, index))
    return None if found is None else list(found)


_checkouts: Kept[tuple[str, ...] | None] = Kept()


def _read_checkouts(top: str, index: str) -> tuple[tuple[str, ...] | None, list[str] | None]:
    try:
        if os.path.islink(index):
            return None, None
        names = gitlink_names(read_regular(index, MAX_INDEX_BYTES))
    except FileNotFoundError:
        return (), [index]  # nothing is tracked yet
    except (OSError, ValueError):
        return None, None
    if names is None:
        return None, None
    markers = [os.path.join(top, name, ".git") for name in names]
    checkouts = tuple(
        os.path.join(top, name)
        for name, marker in zip(names, markers, strict=True)
        if os.path.lexists(marker)
    )
    return checkouts, [index, *markers]


_GITLINK_MODE = struct.pack(">I", _GITLINK)


def gitlink_names(data: bytes) -> list[str] | None:
    """The paths of every entry of an index that is a gitlink, or None if it is
    not an index kfd can read. For versions 2 and 3 every place the gitlink mode
    stands is looked at (a byte search: an index of 100,000 entries in a few
    milliseconds, and no entry git may read, however the file is laid out, is
    missed; a false find names a path with no ``.git``, which changes nothing);
    version 4's names need the whole reading."""
    if len(data) < _HEADER.size:
        return None
    signature, version, _ = _HEADER.unpack_from(data)
    if signature != b"DIRC" or version not in (2, 3, 4):
        return None
    if version == 4:
        tracked = parse_index(data)  # never raises: `read_index` says why it cannot
        return None if tracked is None else tracked.submodules
    names: list[str] = []
    at = data.find(_GITLINK_MODE, _HEADER.size)
    while at >= 0:
        start = at - _MODE_OFFSET
        if start >= _HEADER.size and start + _ENTRY_FIXED <= len(data):
            flags = struct.unpack_from(">H", data, start + 60)[0]
            name_at = start + _ENTRY_FIXED + (2 if flags & 0x4000 and version == 3 else 0)
            end = data.find(b"\0", name_at)
            name = data[name_at:end] if end > name_at else b""
            length = flags & _NAME_MASK
            if name and (length in (_NAME_MASK, len(name))) and canonical(name):
                names.append(name.decode("utf-8", "surrogateescape"))
        at = data.find(_GITLINK_MODE, at + 1)
    return names


def repository_tops(directory: str) -> list[str]:
    """The repository tops git may use from ``directory`` (a real path): each
    directory at or above it holding a ``.git``, up to the first that git surely
    takes (a ``.git`` file, which git follows or dies on; or a git directory with
    a valid ``HEAD``, ``objects/`` and ``refs/``). git passes over a ``.git`` it
    does not take as a repository and goes on up: where kfd cannot be sure which
    git takes, it answers for all (empty: no repository, git prints nothing).
    Kept while the entries it looked at hold (`kfd.policy.stamped`)."""
    return list(_tops.get(directory, lambda: _repository_tops(directory)))


_tops: Kept[tuple[str, ...]] = Kept()


def _repository_tops(directory: str) -> tuple[tuple[str, ...], list[str]]:
    """`repository_tops`, and the entries it looked at."""
    tops: list[str] = []
    watched: list[str] = []
    current = directory
    while True:
        marker = os.path.join(current, ".git")
        watched.append(marker)
        if os.path.lexists(marker):
            tops.append(current)
            if (
                not os.path.isdir(marker)
                or os.path.islink(marker)
                or _git_directory(marker, watched)
            ):
                return tuple(tops), watched
        parent = os.path.dirname(current)
        if parent == current:
            return tuple(tops), watched
        current = parent


_HEX_HEAD = frozenset("0123456789abcdef")


def _git_directory(path: str, watched: list[str]) -> bool:
    """Whether git surely takes ``path`` as a git directory (`is_git_directory`):
    ``objects/`` and ``refs/`` (here or in its ``commondir``) and a ``HEAD`` that
    names a branch or an object. Each entry it looks at is added to ``watched``."""
    common = path
    watched.append(os.path.join(path, "commondir"))
    try:
        named = read_regular(os.path.join(path, "commondir"), 4096).decode()
        common = os.path.join(path, named.partition("\n")[0].strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return False
    watched += [os.path.join(common, name) for name in ("objects", "refs")]
    watched.append(os.path.join(path, "HEAD"))
    if not (
        os.path.isdir(os.path.join(common, "objects"))
        and os.path.isdir(os.path.join(common, "refs"))
    ):
        return False
    head = os.path.join(path, "HEAD")
    try:
        if os.path.islink(head):
            return os.readlink(head).startswith("refs/")
        text = read_regular(head, 256).decode().strip()
    except (OSError, ValueError):
        return False
    return text.startswith("ref: refs/") or (len(text) in (40, 64) and set(text) <= _HEX_HEAD)
