"""``AI!`` and ``AI?`` comments: a note in a file that asks the agent to act.

A comment ending in ``AI!`` asks for a change at that spot; one ending in
``AI?`` asks a question whose answer goes to the user, not into the files
(aider's convention). Pure functions: no I/O.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

_MARKED = re.compile(
    r"(?:#|//|--|;|/\*|<!--)\s*(?P<text>.*?)\s*\bAI(?P<mark>[!?])\s*(?:\*/|-->)?\s*$",
    re.IGNORECASE,
)

MAX_SCANNED_CHARS = 2 * 1024 * 1024
"""Larger files are not scanned for comments (generated or data files)."""


class Marked(NamedTuple):
    """A marked comment: 1-based ``line``, its text without the marker."""

    line: int
    text: str
    kind: Literal["do", "ask"]


def marked_comments(text: str) -> list[Marked]:
    """Every comment of ``text`` ending in ``AI!`` or ``AI?``, in order."""
    if len(text) > MAX_SCANNED_CHARS or "ai" not in text.lower():
        return []
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _MARKED.search(line)
        if match is not None:
            kind: Literal["do", "ask"] = "do" if match["mark"] == "!" else "ask"
            found.append(Marked(number, match["text"].strip(), kind))
    return found


def context_lines(text: str, line: int, around: int = 3) -> str:
    """Lines ``line - around`` to ``line + around``, numbered, for a prompt."""
    lines = text.splitlines()
    start = max(1, line - around)
    end = min(len(lines), line + around)
    return "\n".join(f"{n:>5}  {lines[n - 1]}" for n in range(start, end + 1))
