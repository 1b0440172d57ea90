"""Session titles, made from the first message without asking a model.

A model-written title would cost a request per session and arrive late; the
first line of what the user asked names a session well enough to find it in
`kfd sessions`, and the user can set another.
"""

from __future__ import annotations

import re

TITLE_LENGTH = 60

_MARKUP = re.compile(r"^[\s#>*\-`\d.)]+")
_SPACES = re.compile(r"\s+")


def title_from(text: str, length: int = TITLE_LENGTH) -> str:
    """A short title from a message: its first meaningful line, cut at a word."""
    for line in text[:4096].splitlines():
        line = _SPACES.sub(" ", _MARKUP.sub("", line)).strip(" `")
        if line:
            break
    else:
        return ""
    if len(line) <= length:
        return line
    cut = line[: length - 1]
    space = cut.rfind(" ")
    if space > length // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"
