"""Bounded capture of a command's output: the head and the tail, never the middle."""

from __future__ import annotations

import collections

HEAD_CHARS = 1024 * 1024
TAIL_CHARS = 1024 * 1024


class HeadTail:
    """Keeps the first ``head`` and the last ``tail`` characters appended.

    Memory stays bounded whatever a command prints; what falls in between is
    counted and replaced by a marker in `text`.
    """

    def __init__(self, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> None:
        self._head_limit = head
        self._tail_limit = tail
        self._head: list[str] = []
        self._head_size = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_size = 0
        self.omitted = 0
        """Characters dropped between head and tail."""

    def append(self, text: str) -> None:
        """Add a chunk of output."""
        room = self._head_limit - self._head_size
        if room > 0:
            self._head.append(text[:room])
            self._head_size += min(room, len(text))
            text = text[room:]
        if not text:
            return
        self._tail.append(text)
        self._tail_size += len(text)
        excess = self._tail_size - self._tail_limit
        while excess > 0:
            first = self._tail[0]
            dropped = min(excess, len(first))
            if dropped == len(first):
                self._tail.popleft()
            else:
                self._tail[0] = first[dropped:]
            self._tail_size -= dropped
            self.omitted += dropped
            excess -= dropped

    def text(self) -> str:
        """Everything kept, with a marker where characters were dropped."""
        head = "".join(self._head)
        tail = "".join(self._tail)
        if not self.omitted:
            return head + tail
        return f"{head}\n\n[... {self.omitted:,} characters of output omitted ...]\n\n{tail}"
