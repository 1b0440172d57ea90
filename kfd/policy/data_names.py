"""The files a patch or an archive names: what ``patch``, ``git apply``, ``tar x``
and ``unzip`` write, read from the data they are given.

Such a program writes where its data says, not where its words say: a patch
whose ``+++`` line is ``.git/hooks/post-checkout`` writes a hook, an archive
holding ``AGENTS.md`` writes the project's instructions. Those names are facts
of the data file as it is when kfd decides, like a glob's matches: read here
from its bytes, with no I/O (`kfd.policy.line_facts` reads the file).

Patches are read for every header line that may name a file, wherever it is
(``---``, ``+++``, ``***``, ``Index:``, ``diff --git``, ``rename``/``copy
from``/``to``): a line of a hunk that looks like one only adds a name to
check, never hides one. Where kfd cannot tell what the program would take
(a mail whose body is encoded, an archive it cannot open or that is too
large, too many members, a member written through a link the archive itself
makes), the names are unknown and the caller asks.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import BinaryIO, NamedTuple

from kfd.policy.programs.spec import DataFormat

__all__ = ["MAX_MEMBERS", "MAX_UNPACKED", "Names", "names_in", "strip_components"]

MAX_MEMBERS = 10_000
"""An archive or patch naming more files than this names too many to check (it asks)."""
MAX_UNPACKED = 64 * 1024 * 1024
"""The most of a compressed tar kfd decompresses to read its member names."""

_HEADER = re.compile(r"(---|\+\+\+|\*\*\*|Index:) (.*)")
_MOVED = re.compile(r"(rename|copy) (from|to|old|new) (.*)")
_RANGE = re.compile(r"\d+(,\d+)?\s+(\*\*\*\*|----)\s*")
"""A context diff's hunk line (``*** 1,5 ****``), not a file name."""
_ENCODED = re.compile(r"^content-transfer-encoding:(.*)$", re.IGNORECASE | re.MULTILINE)
"""A mail's body encoding: git's mailinfo decodes base64 or quoted-printable where the
value holds the word anywhere (``"base64"``, ``x-base64``); kfd reads the body only
where the value is plainly one of the identities (`_IDENTITY`)."""
_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_INDENT = re.compile(r"[ \tX]+")
"""What GNU patch skips before a header (an indented or ``X``-prefixed patch: its
``intuit_diff_type``): a header is also read with it taken off."""
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class Names(NamedTuple):
    """The files a program writes (and reads) from its data, as relative names."""

    written: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    """Files it reads to write the others (a patch's old files): read rules apply."""
    unknown: str = ""
    """Why the names cannot be known ("" when they are)."""


def names_in(
    form: DataFormat, data: bytes, strip: int | None = None, *, flatten: bool = False
) -> Names:
    """The names ``data`` makes a program of format ``form`` write.

    ``strip``: the leading components it drops (None: the program's default, for
    ``patch`` any of none, one, or all but the last, which it chooses by what
    exists); ``flatten``: it drops every directory (``unzip -j``).
    """
    if form == "tar":
        return _archive(_tar_members(data), strip or 0, flatten)
    if form == "zip":
        return _archive(_zip_members(data), strip or 0, flatten)
    text = data.decode("utf-8", "surrogateescape")
    if form == "git-patch" and any(
        value.strip().lower() not in _IDENTITY for value in _ENCODED.findall(text)
    ):
        return Names(unknown="the mail's body may be encoded (base64, quoted-printable)")
    return _patch(text, form, strip)


def strip_components(name: str, count: int) -> str | None:
    """``name`` without its first ``count`` components, as ``patch -p`` and ``tar
    --strip-components`` drop them (a run of slashes is one); None when none is left."""
    rest = name
    for _ in range(count):
        cut = rest.find("/")
        if cut < 0:
            return None
        rest = rest[cut:].lstrip("/")
    return rest or None


def _patch(text: str, form: DataFormat, strip: int | None) -> Names:
    old: list[str] = []
    new: list[str] = []
    moved: list[str] = []
    raw = (row.rstrip("\r") for row in text.split("\n"))
    for line in (
        spelling
        for row in raw
        for spelling in dict.fromkeys((row, _INDENT.sub("", row, count=1)))
        if spelling
    ):
        if line.startswith("diff --git "):
            new += _git_header_names(line[len("diff --git ") :])
        elif header := _HEADER.match(line):
            rest = header.group(2)
            if _RANGE.fullmatch(rest) or (header.group(1) == "***" and rest.startswith("*")):
                continue
            names = _header_names(rest)
            (old if header.group(1) in ("---", "***") else new).extend(names)
        elif moved_line := _MOVED.match(line):
            name = _unquoted(moved_line.group(3))
            moved.append(name)
            if moved_line.group(2) in ("from", "old"):
                old.append(name)
    if form == "git-patch":
        strips = {1 if strip is None else strip}
    else:
        strips = {0, 1, -1} if strip is None else {strip}
    # git reads a rename's or copy's names with one component fewer stripped.
    written = _stripped(new + old, strips) | _stripped(moved, {max(s - 1, 0) for s in strips})
    read = _stripped(old, strips)
    if len(written) > MAX_MEMBERS:
        return Names(unknown=f"the patch names more than {MAX_MEMBERS} files")
    return Names(tuple(sorted(written)), tuple(sorted(read)))


def _stripped(names: Iterable[str], strips: set[int]) -> set[str]:
    """Each name as each strip count leaves it (-1: its last component only)."""
    found: set[str] = set()
    for name in names:
        if not name or name == "/dev/null":
            continue
        for count in strips:
            last = name.rstrip("/").rpartition("/")[2]
            kept = last if count < 0 else strip_components(name, count)
            if kept:
                found.add(kept)
    return found


def _header_names(rest: str) -> list[str]:
    """The name a ``---``/``+++`` line gives, as git (up to a tab) and GNU patch (up
    to any blank, or C-quoted) may read it: both."""
    if rest.startswith('"'):
        return [_unquoted(rest)]
    names = [rest.split("\t", 1)[0].rstrip(" "), rest.split(None, 1)[0] if rest.split() else ""]
    return [name for name in dict.fromkeys(names) if name]


def _git_header_names(rest: str) -> list[str]:
    """The names of a ``diff --git A B`` line: quoted ones, or every way of cutting it
    in two at a blank (git takes the cut where both halves name the same file), and
    each word."""
    if rest.startswith('"') or rest.endswith('"'):
        return [_unquoted(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"|\S+', rest)]
    halves = [
        half
        for cut in (m.start() for m in re.finditer(" ", rest))
        for half in (rest[:cut], rest[cut + 1 :])
    ]
    return list(dict.fromkeys([*halves, *rest.split()]))


def _unquoted(name: str) -> str:
    """A name as git C-quotes it (``"a\\tb"``, octal bytes), unquoted; others as they are."""
    if len(name) < 2 or not (name.startswith('"') and '"' in name[1:]):
        return name
    body = name[1 : name.rindex('"')]
    raw = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            octal = re.match(r"[0-7]{3}", body[index + 1 : index + 4])
            if octal:
                raw.append(int(octal.group(), 8) & 0xFF)
                index += 4
                continue
            raw += _ESCAPES.get(following, following).encode("utf-8", "surrogateescape")
            index += 2
            continue
        raw += char.encode("utf-8", "surrogateescape")
        index += 1
    return raw.decode("utf-8", "surrogateescape")


_DECOMPRESSING: tuple[tuple[bytes, Callable[[BinaryIO], io.BufferedIOBase]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)
"""The compressions a tar is read through, by their magic bytes (others: unknown)."""


class _Member(NamedTuple):
    name: str
    symlink: bool = False
    hard_link: str = ""


def _tar_members(data: bytes) -> list[_Member] | str:
    """The members of a tar (compressed by gzip, bzip2 or xz, or not), or why not."""
    opener = next((o for magic, o in _DECOMPRESSING if data.startswith(magic)), None)
    if opener is not None:  # read at most the cap: a small bomb must not fill memory
        try:
            with opener(io.BytesIO(data)) as stream:
                data = stream.read(MAX_UNPACKED + 1)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
            return "kfd cannot decompress the archive"
        if len(data) > MAX_UNPACKED:
            return f"the archive holds more than {MAX_UNPACKED // 2**20} MB"
    members: list[_Member] = []
    try:
        # Past end-of-archive blocks too, as `tar -i` reads: a second archive appended
        # after the first adds names, it never hides one.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", ignore_zeros=True) as archive:
            for info in archive:
                if len(members) >= MAX_MEMBERS:
                    return f"the archive holds more than {MAX_MEMBERS} members"
                link = info.linkname if info.islnk() else ""
                members.append(_Member(info.name, info.issym(), link))
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeError):
        return "kfd cannot read it as a tar archive (or compressed in a way it does not open)"
    return members


def _zip_members(data: bytes) -> list[_Member] | str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, UnicodeError):
        return "kfd cannot read it as a zip archive"
    if len(infos) > MAX_MEMBERS:
        return f"the archive holds more than {MAX_MEMBERS} members"
    # Info-ZIP's unzip reads `\` as a separator in names an MS-DOS zip wrote
    # (`.kfd\config.toml` is `.kfd/config.toml`): both spellings are names.
    return [
        _Member(name, stat.S_ISLNK(i.external_attr >> 16))
        for i in infos
        for name in dict.fromkeys((i.filename, i.filename.replace("\\", "/")))
    ]


def _archive(members: list[_Member] | str, strip: int, flatten: bool) -> Names:
    """The files extracting ``members`` writes: each name without a leading ``/`` (both
    tools drop it), ``strip`` components fewer; a hard link's target is written too."""
    if isinstance(members, str):
        return Names(unknown=members)
    written: dict[str, None] = {}
    links: list[str] = []
    for member in members:
        for name in (member.name, member.hard_link):
            kept = _member_name(name, strip, flatten)
            if kept is None:
                continue
            if any(kept.startswith(link + "/") for link in links):
                return Names(unknown=f"{kept} is written through a link the archive makes")
            written[kept] = None
            if member.symlink and name == member.name:
                links.append(kept.rstrip("/"))
    return Names(tuple(written))


def _member_name(name: str, strip: int, flatten: bool) -> str | None:
    if not name:
        return None
    kept = strip_components(name.lstrip("/"), strip) if strip else name.lstrip("/")
    if kept and flatten:
        kept = kept.rstrip("/").rpartition("/")[2]
    return kept or None
