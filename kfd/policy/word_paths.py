"""Where a word of a command names a path, as the command's kernel would find it.

Part of the I/O half of a bash decision (`kfd.policy.line_facts`): one word
resolved from one directory (`path_fact`: symlinks followed as the kernel
follows them, ``/proc/self/cwd`` the command's directory), a glob matched in
any locale bash may run in (`matches`), and every directory a line may run a
command in (`bases`: ``cd``, ``pushd``, ``git -C``, ``env -C``).

Blocking (it stats the file system): called from `line_facts`, in a thread.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from collections.abc import Iterator, Mapping

from kfd.policy.facts import PathFact, PathKind
from kfd.policy.paths import hard_links, in_proc, inside, real_path
from kfd.policy.shell import SimpleCommand

__all__ = [
    "MAX_BASES",
    "absolute",
    "bases",
    "looks_in_proc",
    "matches",
    "normal_relative",
    "path_fact",
    "proc_cwd",
]

_DIRECTORY_CHANGERS = frozenset({"cd", "pushd"})
_PROC_CWD_PATH = re.compile(r"/+proc/+(?:thread-)?self(?:/+task/+\d+)?/+cwd(?=/|\Z)")
_SAME_DIRECTORY = re.compile(r"/(?:\.?/)+")
"""``//`` and ``/./``: the same directory, to the kernel as to the text."""


def path_fact(
    word: str,
    base: str,
    root: str,
    *,
    write: bool | None = None,
    instructions: Mapping[str, str] | None = None,
) -> PathFact:
    """Resolve one path as written, relative to ``base``; ``root`` is the real workspace,
    ``instructions`` the project's instruction files that are links (`instruction_links`)."""
    path = absolute(word, base)
    # The kernel follows each link before the `..` after it (`link_out/../x` is the
    # link target's parent's `x`): the real path comes from the word as written,
    # never from its lexically normalised spelling.
    real = real_path(proc_cwd(os.path.join(base, word), base))
    return PathFact(
        word=word,
        path=path,
        real=real,
        inside=inside(real, root),
        write=write,
        links=hard_links(real),
        kind=_kind(real),
        instruction=(instructions or {}).get(real, ""),
    )


def absolute(word: str, base: str) -> str:
    """``word`` from ``base``, absolute and lexically normalised (no ``//`` left at its
    start): the path as spelled, which rules also match. ``/proc/self/cwd`` is the
    command's directory, not the daemon's (whose link the file system would follow)."""
    path = os.path.normpath(proc_cwd(os.path.join(base, word), base))
    return "/" + path.lstrip("/") if path.startswith("//") else path


def proc_cwd(path: str, base: str) -> str:
    """``path`` with a leading ``/proc/self/cwd`` (or ``thread-self``, however spelled
    with ``//`` and ``/./``) made ``base``."""
    if "proc" in path[:40]:
        tidy = _SAME_DIRECTORY.sub("/", path)
        own = _PROC_CWD_PATH.match(tidy)
        if own is not None:
            return base + "/" + tidy[own.end() :]
    return path


def normal_relative(word: str) -> bool:
    """Whether ``word`` is a relative path that `os.path.normpath` leaves as it is
    (joined to a normalised directory): no empty, ``.`` or ``..`` component, no
    trailing ``/``. Three substring tests on the word between slashes, where a
    regular expression cost three times as much (316 ns, a sixth of an ``lstat``),
    for each of the hundreds of words a long line may name."""
    spelled = f"/{word}/"
    return "//" not in spelled and "/./" not in spelled and "/../" not in spelled


def matches(pattern: str, base: str) -> Iterator[str]:
    """What ``pattern`` matches from ``base`` in any locale bash may run in: by
    characters (a UTF-8 locale) and, for a pattern or names beyond ASCII, by bytes
    too (the C locale, which a line may set itself: ``LC_ALL=C; cat d/??``, where
    ``?`` is one byte of ``é``; ``$'\\xc3'?``, a byte of it). Each name once."""
    found = glob.iglob(pattern, root_dir=base)
    # An ASCII pattern of literals and `*` matches the same names either way: only `?`
    # and brackets count a byte or a character (and only beside a name beyond ASCII).
    same = "?" not in pattern and "[" not in pattern
    if pattern.isascii() and (same or not _non_ascii_names(pattern, base)):
        yield from found
        return
    seen: set[str] = set()
    byte_matches = (
        os.fsdecode(match) for match in glob.iglob(os.fsencode(pattern), root_dir=os.fsencode(base))
    )
    for match in itertools.chain(found, byte_matches):
        if match not in seen:
            seen.add(match)
            yield match


_MAX_GLOB_DIRECTORIES = 2_000
"""Directories a pattern's wildcards may name before it is not followed (`looks_in_proc`)."""


def looks_in_proc(pattern: str, base: str) -> bool:
    """Whether expanding ``pattern`` from ``base`` looks in a directory under ``/proc``,
    spelled so or through a link (`kfd.policy.paths.real_path` says which): there each
    process sees its own directory, root and descriptors, so what the daemon finds
    is not what the command will. What each wildcard before the last component
    names is looked at too (a link there may lead to ``/proc``, where the daemon
    finds nothing below it), up to a bound past which it says so."""
    head = pattern.rpartition("/")[0] or ("/" if pattern.startswith("/") else "")
    parts = head.split("/")
    magic = [i for i, part in enumerate(parts) if glob.has_magic(part)]
    if not magic:
        return in_proc(real_path(os.path.join(base, head)))
    looked = 0
    for at, after in zip(magic, [*magic[1:], len(parts)], strict=True):
        # Each name a wildcard matches, with the plain names after it (up to the
        # next wildcard): a link anywhere on that way is followed by `real_path`.
        literal = parts[at + 1 : after]
        for named in glob.iglob("/".join(parts[: at + 1]), root_dir=base):
            looked += 1
            way = os.path.join(base, named, *literal)
            if looked > _MAX_GLOB_DIRECTORIES or in_proc(real_path(way)):
                return True
    return False


def _non_ascii_names(pattern: str, base: str) -> bool:
    """Whether a directory the pattern's first magic part looks in holds a name beyond
    ASCII (then bytes and characters may match differently). Looked at in the
    directory before the first component with a wildcard; deeper ones: assumed."""
    head: list[str] = []
    for part in pattern.split("/"):
        if glob.has_magic(part):
            break
        head.append(part)
    else:
        return False  # no wildcard: the name itself, matched the same in any locale
    if len(head) < len(pattern.split("/")) - 1:
        return True  # wildcards in more than the last component: assume so
    directory = os.path.join(base, "/".join(head)) if head else base
    try:
        return not all(name.isascii() for name in os.listdir(directory))
    except (OSError, ValueError):
        return True


def _kind(real: str) -> PathKind:
    try:
        if os.path.isdir(real):
            return "dir"
        if os.path.isfile(real):
            return "file"
        return "other" if os.path.lexists(real) else "missing"
    except (OSError, ValueError):
        return "missing"


MAX_BASES = 64
"""Directories a line may run commands in that kfd resolves words from; a line that
changes directory in more ways asks (`bases`)."""


def bases(commands: list[SimpleCommand], workspace: str, home: str) -> list[str] | None:
    """The workspace and every directory the line may run a command in, as bash's
    logical ``cd`` spells it and as the kernel reaches it (``cd -P link/..`` is the
    link target's parent), and home for a bare ``cd``. A change of directory
    starts from every directory the line may be in by then (``cd p; cd q`` is in
    ``p/q``; ``env -C p env -C q`` too): each is joined to all found before it.
    Then again from every directory found, into those that exist, until no new one
    comes: a change of directory may run more times than it is listed (round 26:
    ``cd d; cd d; cat k`` lists its ``cd d`` once, and ``d/d`` was the secrets; a
    loop runs one many times). None past `MAX_BASES` (kfd cannot follow where the
    line goes)."""
    found = [workspace]
    chains = [chain for command in commands for chain in _chains(command, home)]
    for chain in chains:
        if not _join(found, chain, existing=False):
            return None
    grown = bool(chains)
    while grown:
        count = len(found)
        for chain in chains:
            if not _join(found, chain, existing=True):
                return None
        grown = len(found) > count
    return found


def _chains(command: SimpleCommand, home: str) -> list[list[str]]:
    """The changes of directory ``command`` makes, each a chain of targets."""
    chains = [list(command.chdir)] if command.chdir else []
    if command.argv and command.argv[0] in _DIRECTORY_CHANGERS:
        operands = [
            word
            for index, word in enumerate(command.argv[1:], 1)
            if index in command.dynamic or not word.startswith("-") or word == "-"
        ]
        chains += [
            [w]
            for i, w in enumerate(command.argv[1:], 1)
            if i not in command.dynamic
            if w in operands
        ]
        if not operands:
            chains.append([home])  # `cd`, `cd -P`: $HOME
    return chains


def _join(found: list[str], chain: list[str], *, existing: bool) -> bool:
    """``found`` with where ``chain`` leads from each directory in it (``existing``:
    only directories there now); False past `MAX_BASES`."""
    for start in list(found):
        reached = [start]
        for target in chain:
            # `/proc/self/cwd` is the command's directory then, not the daemon's.
            joined = [proc_cwd(os.path.join(directory, target), directory) for directory in reached]
            reached = list(
                dict.fromkeys(d for j in joined for d in (os.path.normpath(j), real_path(j)))
            )
        found += [
            directory
            for directory in reached
            if directory not in found and (not existing or os.path.isdir(directory))
        ]
        if len(found) > MAX_BASES:
            return False
    return True
