"""The one place that cuts tool output for the model.

The model reads the head and the tail of a long output with a marker between
them saying how much was left out and where the whole output is kept.
"""

from __future__ import annotations

DEFAULT_LIMIT = 30_000
"""Characters of one tool result the model reads (about 7,500 tokens)."""


def cap(text: str, limit: int = DEFAULT_LIMIT, *, output_id: str = "") -> tuple[str, bool]:
    """``text`` cut to about ``limit`` characters (head and tail kept)."""
    if len(text) <= limit:
        return text, False
    head = limit * 2 // 3
    tail = limit - head
    omitted = len(text) - head - tail
    where = f"; read_output with id `{output_id}` pages through all of it" if output_id else ""
    marker = f"\n\n[… {omitted} characters omitted{where} …]\n\n"
    return text[:head] + marker + text[-tail:], True
