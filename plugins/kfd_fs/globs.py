"""Glob patterns as ripgrep and gitignore read them, compiled to regular expressions.

ripgrep's own ``--glob`` cannot do the glob tool's filtering: a positive
``--glob`` overrides ``.gitignore`` (an ignored ``gen.py`` is listed by
``--glob '*.py'``). So the tool lists files with ``rg --files``, which honours
the ignore files, and filters them with the pattern compiled here.

Syntax: ``*`` (within one path component), ``?``, ``[abc]``/``[!abc]``,
``{a,b}``, ``**`` (any number of directories), ``\\`` escapes the next
character. A pattern without ``/`` matches a file name at any depth, like
``.gitignore`` and ``rg --glob`` do; a pattern with ``/`` matches the whole
path relative to the searched directory.
"""

from __future__ import annotations

import re


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression matching the relative paths ``pattern`` selects."""
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if pattern.endswith("/"):
        # "src/" names a directory; --files lists files, so take what is in it.
        pattern += "**"
    body = _translate(pattern)
    anchored = "/" in pattern
    return re.compile(body + r"\Z" if anchored else r"(?:.*/)?" + body + r"\Z")


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(pattern, i)
            if end < 0:
                out.append(re.escape(char))
            else:
                out.append(_class(pattern[i + 1 : end]))
                i = end
        elif char == "{":
            end = _brace_end(pattern, i)
            if end < 0:
                out.append(re.escape(char))
            else:
                options = _split_top_level(pattern[i + 1 : end])
                out.append("(?:" + "|".join(_translate(option) for option in options) + ")")
                i = end
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing the class opened at ``start``, or -1."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "!^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading "]" is a literal member
    return pattern.find("]", i)


def _class(members: str) -> str:
    negate = members[:1] in ("!", "^")
    if negate:
        members = members[1:]
    escaped = "".join("\\" + char if char in "\\^[]" else char for char in members)
    return f"[^/{escaped}]" if negate else f"[{escaped}]"


def _brace_end(pattern: str, start: int) -> int:
    """Index of the ``}`` closing the brace opened at ``start``, or -1."""
    depth = 0
    i = start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    parts.append("".join(current))
    return parts
