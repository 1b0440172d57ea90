"""Where streamed Markdown can be cut: the ends of complete blocks.

The model's answer arrives a few characters at a time. Rendering it as
Markdown needs whole blocks (a code block highlighted half-way looks wrong,
and a printed line cannot be taken back), so the REPL prints an answer block
by block as each one completes, and shows only the unfinished tail live.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def complete_blocks_end(text: str, start: int = 0) -> int:
    """The end of the last complete block of ``text[start:]``, or ``start``.

    ``start`` must itself be a block boundary (0, or a value this function
    returned). A block ends at a blank line outside a fenced code block, or at
    the line that closes a fence. Only whole lines count: the unfinished last
    line is never part of a complete block.
    """
    boundary = start
    fence: str | None = None
    position = start
    while True:
        newline = text.find("\n", position)
        if newline < 0:
            return boundary
        line = text[position:newline]
        position = newline + 1
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and stripped.strip(fence[0]) == "":
                fence = None
                boundary = position
            continue
        opening = _FENCE.match(line)
        if opening is not None:
            fence = opening.group(1)
        elif not line.strip():
            boundary = position
