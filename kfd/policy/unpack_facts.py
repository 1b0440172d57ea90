"""The files a command writes from its data (``patch``, ``git apply``, ``tar x``,
``unzip``), read when kfd decides: the I/O half of `kfd.policy.data_names`.

Which programs unpack, and where their data and target directory come from, is
data (``unpacks`` in ``meaning.toml``: `kfd.policy.programs.spec.Unpacking`).
The data file is read only when it is an existing regular file in the
workspace that nothing else on the line may change (no other command names it,
none runs code kfd does not follow), through `kfd.regular` (never blocking,
capped). Otherwise its names are unknown, which asks. Blocking: called from
`kfd.policy.line_facts`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import msgspec

from kfd.policy.data_names import Names, names_in
from kfd.policy.facts import PathFact
from kfd.policy.programs.spec import Unpacking
from kfd.policy.reading import Reading
from kfd.policy.shell import SimpleCommand
from kfd.regular import read_regular

__all__ = ["MAX_DATA", "Unpacked", "unpacked", "unpacking_of"]

MAX_DATA = 32 * 1024 * 1024
"""The largest data file kfd reads for the names in it (larger: unknown, it asks)."""

Resolve = Callable[[str, str], PathFact]


class Unpacked(msgspec.Struct, frozen=True, kw_only=True):
    """What a command writes (and reads) from its data, and why it may be more."""

    paths: list[PathFact] = []
    unknown: list[str] = []


def unpacking_of(reading: Reading) -> Unpacking | None:
    """How the command writes from data, when it does (its options do not make it
    only read, `Unpacking.when`)."""
    spec = reading.current
    parsed = reading.parsed
    unpacking = spec.unpacks if spec is not None else None
    if unpacking is None or parsed is None:
        return None
    given = set(parsed.options)
    if unpacking.when and not given & unpacking.when:
        return None
    if given & unpacking.reads_with and not given & unpacking.writes_with:
        return None
    return unpacking


def unpacked(
    command: SimpleCommand,
    reading: Reading,
    unpacking: Unpacking,
    *,
    bases: Sequence[str],
    tops: Sequence[str],
    resolve: Resolve,
    changed: frozenset[str],
    here_documents: Sequence[str] | None,
) -> Unpacked:
    """The paths ``command`` writes from its data, from each directory it may run in
    (``bases``, and for git the repository ``tops``); ``changed``: the real paths
    another part of the line may write; ``here_documents``: its standard input
    when that is the line's here-documents (None: not)."""
    parsed = reading.parsed
    assert parsed is not None  # `unpacking_of` gave ``unpacking``
    if parsed.uncertain or command.open_ended or any(o is None for o in parsed.operands):
        return Unpacked(unknown=["kfd cannot read its command line to find the files it writes"])
    words = _data_words(command, reading, unpacking)
    directories = [v for n, v in parsed.values if n in unpacking.directory] or [""]
    strip_values = [v for n, v in parsed.values if n in unpacking.strip]
    if strip_values and not strip_values[-1].isdigit():
        why = f"kfd cannot read how many components it strips ({strip_values[-1]})"
        return Unpacked(unknown=[why])
    strip = int(strip_values[-1]) if strip_values else None
    flatten = bool(set(parsed.options) & unpacking.flatten)
    places = [*bases, *tops] if unpacking.format == "git-patch" else [*bases]
    found: list[Names] = []
    unknown: list[str] = []
    if words is None:
        if here_documents is None or any("$" in t or "`" in t for t in here_documents):
            unknown.append("it reads what it writes from standard input, which kfd cannot read")
        else:
            data = "".join(here_documents).encode("utf-8", "surrogateescape")
            found.append(names_in(unpacking.format, data, strip, flatten=flatten))
    for word in words or ():
        # `patch -d DIR -i FILE` reads FILE from DIR: both places are looked at.
        seen = [resolve(word, base) for base in bases]
        seen += [resolve(os.path.join(d, word), b) for d in directories if d for b in bases]
        why = _unreadable(word, seen, changed)
        if why:
            unknown.append(why)
            continue
        for fact in {f.real: f for f in seen if f.kind == "file"}.values():
            try:
                data = read_regular(fact.real, MAX_DATA)
            except OSError as error:
                unknown.append(f"kfd cannot read {word}: {error.strerror or error}")
                continue
            found.append(names_in(unpacking.format, data, strip, flatten=flatten))
    paths: dict[tuple[str, bool], PathFact] = {}
    for names in found:
        if names.unknown:
            unknown.append(f"the files it writes are unknown: {names.unknown}")
        for write, listed in ((True, names.written), (False, names.read)):
            for name in listed:
                for directory in directories:
                    for base in places:
                        fact = resolve(os.path.join(directory, name), base)
                        fact = msgspec.structs.replace(fact, write=write)
                        paths.setdefault((fact.path, write), fact)
    return Unpacked(paths=list(paths.values()), unknown=unknown)


def _data_words(command: SimpleCommand, reading: Reading, unpacking: Unpacking) -> list[str] | None:
    """The data files it reads (a ``< FILE`` redirection for standard input); None
    when it reads a pipe or nothing kfd can name."""
    parsed = reading.parsed
    assert parsed is not None
    words = [v for n, v in parsed.values if n in unpacking.data]
    operands = [str(o) for o in parsed.operands]
    chosen = {"all": operands, "first": operands[:1], "second": operands[1:2], "none": []}
    words += chosen[unpacking.operands]
    if words and "-" not in words:
        return words
    inputs = [r for r in command.redirects if r.direction == "read" and r.fd in (None, 0)]
    if not inputs or not inputs[-1].static:
        return None
    return [*(w for w in words if w != "-"), inputs[-1].target]


def _unreadable(word: str, seen: Sequence[PathFact], changed: frozenset[str]) -> str:
    """Why kfd cannot read the names ``word`` holds ("" when it can)."""
    files = [f for f in seen if f.kind == "file"]
    if not files:
        if any(f.kind not in ("missing", "file") for f in seen):
            return f"{word} is not a regular file kfd can read"
        return f"{word} does not exist yet: the files it names are unknown"
    if any(f.real in changed for f in seen):
        return f"{word} may be written by the line before it is read"
    outside = next((f for f in files if not f.inside), None)
    if outside is not None:
        return f"{word} is outside the workspace: kfd does not read it for the files it names"
    return ""
