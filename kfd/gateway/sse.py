"""Server-sent events, decoded a whole read at a time. Pure: no I/O.

A model streams one event per token, and each arrives in a network read of
its own while the machine is idle, or dozens to a read when the daemon is
busy (`kfd.gateway.pacing`). ``httpx-sse`` hands over events only through an
async iterator that awaits once per line, so each event costs several trips
through the event loop; with twenty sessions streaming that was most of the
daemon's time. `SseDecoder` takes the bytes of one read and returns the data
of every event it completes, in one call, so a read costs one trip whatever
it holds.

It follows the event-stream interpretation of the HTML standard, for what
kfd reads of it: lines end with CRLF, LF or CR (a CR at the end of one read
may be the first half of a CRLF); a blank line ends an event; ``data`` lines
are joined with newlines; comments (``:``) and the other fields (``event``,
``id``, ``retry``) are skipped, since every wire format kfd speaks carries
what it means in the JSON of ``data``; an event the stream ends in the middle
of is dropped.
"""

from __future__ import annotations

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A line longer than this is refused: a server that never ends its line
must not grow the daemon's memory without bound."""


class SseDecoder:
    """Turns the bytes of a stream, read by read, into the data of its events."""

    def __init__(self) -> None:
        self._partial = b""
        self._cr_pending = False
        self._data: list[str] = []
        self._has_data = False

    def feed(self, chunk: bytes) -> list[str]:
        """The data of each event that ``chunk`` completes, in order.

        ValueError when a line passes `MAX_LINE_BYTES`.
        """
        if self._cr_pending:
            # The last read ended with CR: a LF now is the rest of that line end.
            self._cr_pending = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if not chunk:
            return []
        if chunk.endswith(b"\r"):
            self._cr_pending = True
            chunk = chunk[:-1] + b"\n"
        text = self._partial + chunk if self._partial else chunk
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = text.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE_BYTES:
            self._partial = b""
            raise ValueError(f"a line of the event stream is longer than {MAX_LINE_BYTES} bytes")
        events: list[str] = []
        for line in lines:
            if not line:
                if self._has_data:
                    events.append("\n".join(self._data))
                    self._data = []
                    self._has_data = False
                continue
            if line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                self._data.append(value.decode("utf-8", "replace"))
                self._has_data = True
            elif line == b"data":
                self._data.append("")
                self._has_data = True
            # else: a comment, another field, or a line without a colon: skipped
        return events
