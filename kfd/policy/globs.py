"""Path globs (gitignore syntax) as regular expressions that match in linear time.

A path rule's specifier is a gitignore glob, anchored at its root: ``*``
within one path component, ``**`` across components, ``?``, ``[...]``,
backslash escapes. `glob_regex` gives the expression that ``re.match``
applies (with `re.DOTALL`) to a normalised relative path, with the meaning
pathspec's ``GitIgnoreSpec`` gave it, but built so that it cannot backtrack
out of bounds, whoever wrote the rule.

pathspec's translation backtracks: ``*a*a*a*b`` is ``[^/]*a[^/]*a[^/]*a[^/]*b``,
which tries every way of placing the ``a`` s in a component that has no
``b`` (n^k steps for k stars over n characters), and ``**`` is ``(?:.+/)?``,
which retries everything after it at every slash. An untrusted project may
add deny rules, and a file name is up to 255 bytes: a deny rule of six stars
and a committed file of 60 ``a`` s held a decision (and the daemon) for
seconds, eight stars for minutes.

Here each choice a match makes is made once, in an atomic group (``(?>...)``),
where making it as early as possible loses no match:

* inside a component, ``C0*C1*...*Ck`` is ``C0(?>[^/]*?C1)...[^/]*Ck``, as
  CPython's `fnmatch` does: each ``Ci`` is a run of one-character matchers,
  and finding it at its leftmost place leaves the longest rest for the others;
* a whole component is atomic: it must end at the next ``/`` (or at the end),
  so no other way of matching it leads anywhere else;
* after a ``**``, the run of components up to the next ``**`` takes the first
  place it fits: any later ``**`` can absorb what an earlier place leaves.

Every attempt is then a scan forward, and a path of n characters costs
O(n * len(pattern)) at worst. This holds for normalised paths (no empty
component), which is all a rule is ever matched against.

One meaning differs from pathspec's, on purpose and as git has it: a bracket
expression never matches ``/`` (pathspec's ``a[!x]b`` matched ``a/b``; git's
wildmatch, and now kfd, match one component with it).
"""

from __future__ import annotations

import functools
import re

__all__ = ["NEVER", "glob_regex", "literal", "wildcards"]

NEVER = "(?!)"
"""The expression of a pattern that matches nothing (git discards, e.g., ``[a``)."""

_STAR = "*"
"""An atom: a star (every other atom is a regular expression for one character)."""


class _Discarded(Exception):
    """A bracket expression without its ``]``: git ignores the whole pattern."""


_WILDCARDS = re.compile(r"[*?\[\]\\]")
"""What a pattern reads as more than its characters (`_atoms`)."""


def literal(text: str) -> str:
    """``text`` as a pattern that matches it alone: its glob characters escaped."""
    return _WILDCARDS.sub(r"\\\g<0>", text)


def wildcards(text: str) -> bool:
    """Whether ``text`` holds a character a pattern reads as more than itself."""
    return _WILDCARDS.search(text) is not None


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> str:
    """The expression that matches (``re.match``, `re.DOTALL`) the relative paths
    ``pattern`` names, anchored at their root; `NEVER` for a pattern git discards.

    Raises ValueError for a pattern that ends in an escaping backslash.
    """
    text = "/" + pattern.lstrip("/")
    if not text.endswith("\\ "):
        text = text.rstrip()  # as gitignore: trailing spaces are not part of it
    if text == "/":
        return NEVER
    segments = text.split("/")[1:]
    directory_only = not segments[-1]
    if directory_only:
        segments[-1] = "**"
    segments = [s for i, s in enumerate(segments) if s != "**" or segments[i - 1 : i] != ["**"]]
    if segments in (["**"], ["**", "*"]) and not directory_only:
        return "(?s:.)"  # ``**``, ``**/*``: every path (the root itself is ``.``)
    if segments in (["**"], ["**", "*", "**"]):
        return "[^/]*/"  # ``**/``, ``**/*/``, ``**/*/**``: every path below a directory
    try:
        return "^" + _runs(segments)
    except _Discarded:
        return NEVER


def _runs(segments: list[str]) -> str:
    """The runs of components between ``**`` s, each placed once (`glob_regex`)."""
    out = []
    run: list[str] = []
    after_gap = False
    for i, segment in enumerate(segments):
        if segment != "**":
            run.append(_component(segment))
            if i < len(segments) - 1:
                continue
        if run:
            # A run ends at a slash, before a ``**`` or at the end of the pattern; at
            # the end, it names a file, or a directory and what is under it (``$``
            # also before a final newline, as pathspec wrote it).
            end = "/" if segment == "**" else "(?:/|$)"
            components = "/".join(run) + end
            # After a ``**``: the first place the run fits, and no other. Elsewhere
            # its place is fixed, and each component can end in one way only.
            out.append(f"(?>(?:.+?/)??{components})" if after_gap else components)
            run = []
        after_gap = segment == "**"
    return "".join(out)


def _component(segment: str) -> str:
    """One component's glob: ``C0*C1*...*Ck`` as ``C0(?>[^/]*?C1)...[^/]*Ck``."""
    if segment == "*":
        return "[^/]+"
    chunks: list[list[str]] = [[]]
    for atom in _atoms(segment):
        if atom == _STAR:
            chunks.append([])
        else:
            chunks[-1].append(atom)
    if len(chunks) == 1:
        return "".join(chunks[0])
    middle = "".join(f"(?>[^/]*?{''.join(c)})" for c in chunks[1:-1] if c)
    return f"(?>{''.join(chunks[0])}{middle}[^/]*{''.join(chunks[-1])})"


def _atoms(segment: str) -> list[str]:
    """A component's glob as `_STAR` s and one-character expressions, read as
    pathspec reads it (``[!...]`` and ``[^...]`` negate, ``]`` first is literal)."""
    atoms = []
    i, end = 0, len(segment)
    escaped = False
    while i < end:
        char = segment[i]
        i += 1
        if escaped:
            escaped = False
            atoms.append(re.escape(char))
        elif char == "\\":
            escaped = True
        elif char == "*":
            atoms.append(_STAR)
        elif char == "?":
            atoms.append("[^/]")
        elif char == "[":
            j = i
            if j < end and segment[j] in "!^":
                j += 1
            if j < end and segment[j] == "]":
                j += 1
            while j < end and segment[j] != "]":
                j += 1
            if j >= end:
                raise _Discarded
            negated = segment[i] in "!^"
            body = segment[i + negated : j + 1].replace("\\", "\\\\")
            # Literal as they are now, and as a future `re` (sets within sets) keeps them.
            body = re.sub(r"[\[&~|]", r"\\\g<0>", body)
            # Never a slash: the lookahead keeps a range such as `[+-0]` in its component.
            atoms.append(f"(?!/)[{'^' if negated else ''}{body}")
            i = j + 1
        else:
            atoms.append(re.escape(char))
    if escaped:
        raise ValueError(f"Invalid git pattern: {segment!r} ends with an escaping backslash")
    return atoms
