"""A command's template made into a prompt (pure).

In order:

1. ``$ARGUMENTS`` becomes everything after the command's name, ``$1`` ...
   ``$9`` the words of it (shell quoting: ``"two words"`` is one);
2. ``@path`` (at the start or after a space) names a file of the workspace
   to include: its content is attached after the prompt, the reference stays
   in the text; what cannot be included (outside the workspace, denied by a
   read rule, missing, binary, too large) is said instead, never dropped
   silently;
3. ``!`command``` is replaced by the command's output, run as a ``bash``
   call of the turn (decided by the permission engine like any other).

The spans are found in the template as written, before anything is
substituted (`pieces`): ``kfd trust`` lists the template's spans, and an
argument, or an empty one (``!$9`touch x```), can neither make a span nor
end one.

The I/O (reading, running) is the caller's: these functions find what to do
and put the answers together.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import NamedTuple

ARGUMENT = re.compile(r"\$(ARGUMENTS|[1-9])\b")
REFERENCE = re.compile(r"(?:(?<=\s)|^)@((?:[\w.~/-]|\\ )+)", re.M)
SHELL = re.compile(r"!`([^`\n]+)`")

MAX_FILE_CHARS = 100_000
MAX_FILES_CHARS = 400_000
MAX_OUTPUT_CHARS = 20_000


def words(arguments: str) -> list[str]:
    """The arguments split as a shell would (plain whitespace if the quotes do not close)."""
    try:
        return shlex.split(arguments)
    except ValueError:
        return arguments.split()


class Piece(NamedTuple):
    """A part of a template with its arguments substituted: prompt text, or the
    command of a ``!`command``` span of the template as written."""

    text: str
    shell: bool


def pieces(template: str, arguments: str) -> list[Piece]:
    """``template`` cut at its ``!`command``` spans as written, ``$ARGUMENTS`` and
    ``$1``..``$9`` replaced in every piece (`substitute`)."""
    found: list[tuple[str, bool]] = []
    start = 0
    for match in SHELL.finditer(template):
        found += [(template[start : match.start()], False), (match.group(1), True)]
        start = match.end()
    found.append((template[start:], False))
    parts = words(arguments)
    count = 0

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "ARGUMENTS":
            return arguments
        index = int(name) - 1
        return parts[index] if index < len(parts) else ""

    result: list[Piece] = []
    for text, shell in found:
        text, named = ARGUMENT.subn(value, text)
        count += named
        result.append(Piece(text.strip() if shell else text, shell))
    if not count and arguments.strip():
        last = result[-1]
        result[-1] = Piece(last.text.rstrip("\n") + f"\n\n{arguments.strip()}\n", False)
    return result


def substitute(template: str, arguments: str) -> str:
    """``$ARGUMENTS`` and ``$1``..``$9`` replaced. A template that names none of
    them gets the arguments appended (so they are never lost)."""
    return "".join(f"!`{p.text}`" if p.shell else p.text for p in pieces(template, arguments))


def references(text: str) -> list[str]:
    """The ``@path`` references of ``text``, in order, once each."""
    found = [m.group(1).replace("\\ ", " ").rstrip(".,;:") for m in REFERENCE.finditer(text)]
    return list(dict.fromkeys(p for p in found if p and p not in (".", "..")))


def shell_commands(text: str) -> list[str]:
    """The ``!`command``` spans of ``text``, in order."""
    return [m.group(1).strip() for m in SHELL.finditer(text)]


def with_outputs(found: list[Piece], outputs: Mapping[str, str]) -> str:
    """The prompt: each ``!`command``` piece replaced by what its command printed (or
    why not)."""

    def value(piece: Piece) -> str:
        if not piece.shell:
            return piece.text
        output = outputs.get(piece.text, "")
        if len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + "\n[… output cut …]"
        return output.rstrip("\n")

    return "".join(value(piece) for piece in found)


def with_files(text: str, files: Mapping[str, str], problems: Mapping[str, str]) -> str:
    """The prompt with the referenced files attached after it (and what was not)."""
    if not files and not problems:
        return text
    parts = [text.rstrip("\n"), ""]
    total = 0
    for path, content in files.items():
        if total + len(content) > MAX_FILES_CHARS:
            parts.append(f"[@{path} not included: the files together pass {MAX_FILES_CHARS} chars]")
            continue
        total += len(content)
        parts.append(f'<file path="{path}">\n{content.rstrip(chr(10))}\n</file>')
    parts += [f"[@{path} not included: {why}]" for path, why in problems.items()]
    return "\n".join(parts) + "\n"
