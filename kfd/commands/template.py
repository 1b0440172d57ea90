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

The I/O (reading, running) is the caller's: these functions find what to do
and put the answers together.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

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


def substitute(template: str, arguments: str) -> str:
    """``$ARGUMENTS`` and ``$1``..``$9`` replaced. A template that names none of
    them gets the arguments appended (so they are never lost)."""
    parts = words(arguments)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "ARGUMENTS":
            return arguments
        index = int(name) - 1
        return parts[index] if index < len(parts) else ""

    text, count = ARGUMENT.subn(value, template)
    if not count and arguments.strip():
        text = text.rstrip("\n") + f"\n\n{arguments.strip()}\n"
    return text


def references(text: str) -> list[str]:
    """The ``@path`` references of ``text``, in order, once each."""
    found = [m.group(1).replace("\\ ", " ").rstrip(".,;:") for m in REFERENCE.finditer(text)]
    return list(dict.fromkeys(p for p in found if p and p not in (".", "..")))


def shell_commands(text: str) -> list[str]:
    """The ``!`command``` spans of ``text``, in order."""
    return [m.group(1).strip() for m in SHELL.finditer(text)]


def with_outputs(text: str, outputs: Mapping[str, str]) -> str:
    """``!`command``` spans replaced by what their commands printed (or why not)."""

    def value(match: re.Match[str]) -> str:
        output = outputs.get(match.group(1).strip(), "")
        if len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + "\n[… output cut …]"
        return output.rstrip("\n")

    return SHELL.sub(value, text)


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
