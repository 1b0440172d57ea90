"""Streamed text as events: coalesced, placed by offset, and kept for snapshots.

A model emits tokens, a command prints lines: one bus message per token would
cost more than it shows. A `StreamBuffer` publishes at the end of the event
loop's current turn when the stream has been quiet for a window (so all that
one turn of the loop brought leaves together), and otherwise gathers what
arrives within the window into one event. It also remembers the text so far (or its tail) for a
frontend that attaches in the middle.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

FlushCallback = Callable[[str, int], None]
"""(text, offset of that text in the stream)."""


class StreamBuffer:
    """One stream of text (a message's text, or a tool's output)."""

    def __init__(self, window_s: float, on_flush: FlushCallback, keep: int | None = None) -> None:
        self._window = window_s
        self._on_flush = on_flush
        self._keep = keep
        self._pending: list[str] = []
        self._kept: deque[str] = deque()
        self._kept_chars = 0
        self._kept_offset = 0
        self._published = 0
        self._total = 0
        self._last_flush = float("-inf")
        self._timer: asyncio.Handle | None = None

    @property
    def length(self) -> int:
        return self._total

    def add(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        self._total += len(text)
        self._kept.append(text)
        self._kept_chars += len(text)
        if self._keep is not None:
            while self._kept_chars - len(self._kept[0]) >= self._keep:
                dropped = self._kept.popleft()
                self._kept_chars -= len(dropped)
                self._kept_offset += len(dropped)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            delay = self._last_flush + self._window - loop.time()
            # Even when due at once, it leaves at the end of this turn of the
            # loop: what arrived together (a busy daemon reads many tokens at
            # a time) then travels as one event, not one per token.
            if delay <= 0:
                self._timer = loop.call_soon(self.flush)
            else:
                self._timer = loop.call_later(delay, self.flush)

    def flush(self) -> None:
        """Publish what is pending now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        offset = self._published
        self._published += len(text)
        self._last_flush = asyncio.get_running_loop().time()
        self._on_flush(text, offset)

    def close(self) -> None:
        """Stop without publishing what is pending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()

    def kept(self) -> tuple[str, int]:
        """The text kept so far and its offset in the stream."""
        return "".join(self._kept), self._kept_offset
