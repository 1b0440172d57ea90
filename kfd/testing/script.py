"""The script of a `kfd.testing.ScriptedModelServer`: replies, faults, and the record.

A script is a list of `Reply` values, consumed one per request; a reply may
carry a fault (`HttpError`, `CutStream`, `Stall`, `InvalidChunk`). Each
request the server receives is kept as a `RecordedRequest`. The whole story
is in `kfd.testing.model_server`; the wire formats that encode a reply are in
`kfd.testing.wire`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CONTEXT_TOO_LONG",
    "CutStream",
    "Fault",
    "HttpError",
    "InvalidChunk",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedToolCall",
    "ScriptedUsage",
    "Stall",
]


@dataclass(frozen=True)
class ScriptedToolCall:
    """One tool call in a reply. Several in one reply are parallel calls.

    ``arguments`` may be a mapping (sent as its JSON) or raw text, which is
    sent verbatim, so a test can script malformed arguments too.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    """The call id; None lets the server make one up (``call_<request>_<n>``)."""
    send_id: bool = True
    """False leaves the id off the wire, as some servers do."""

    def arguments_json(self) -> str:
        """The arguments as the wire carries them."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class ScriptedUsage:
    """Token counts a reply reports. Without one, counts are estimated from sizes."""

    input_tokens: int
    """Every prompt token, cached or not (OpenAI's ``prompt_tokens``)."""
    output_tokens: int
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    """Of ``input_tokens``, those written to the prompt cache (Anthropic reports them)."""


@dataclass(frozen=True)
class HttpError:
    """Answer with an HTTP error status instead of a completion.

    ``message`` and ``code`` go into the wire format's error body (OpenAI:
    ``{"error": {"message", "type", "code"}}``); ``body`` replaces that body
    entirely (a ``str`` is sent as plain text, anything else as JSON).
    """

    status: int
    message: str = ""
    code: str | None = None
    retry_after: float | str | None = None
    """Sent as ``Retry-After``: seconds, or a string (an HTTP date) verbatim."""
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CutStream:
    """Close the connection after ``after_chunks`` stream chunks, without ``[DONE]``.

    The HTTP body ends without its terminating chunk, as when a proxy or the
    provider drops the connection. On a non-streaming request the connection
    closes before any answer.
    """

    after_chunks: int = 1
    clean: bool = False
    """End the HTTP body properly, only early: the stream just stops short of
    ``[DONE]``, as behind a proxy that buffers and gives up."""


@dataclass(frozen=True)
class Stall:
    """Go silent for ``seconds`` after ``after_chunks`` chunks, then go on.

    Make ``seconds`` longer than the client's idle timeout to test that the
    client gives up; the server notices the client leaving and stops waiting.
    """

    after_chunks: int = 1
    seconds: float = 5.0


@dataclass(frozen=True)
class InvalidChunk:
    """Send ``data`` (not JSON) as a stream chunk after ``after_chunks`` chunks.

    The rest of the stream follows, as from a server that garbled one line.
    """

    after_chunks: int = 1
    data: str = '{"choices": [{"delta": {"content": "trunc'


Fault = HttpError | CutStream | Stall | InvalidChunk

CONTEXT_TOO_LONG = HttpError(
    400,
    message=(
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens. Please reduce the length of the messages."
    ),
    code="context_length_exceeded",
)
"""The rejection a provider sends when the prompt does not fit (OpenAI's wording)."""


@dataclass(frozen=True)
class Reply:
    """What the model answers to one request, and how it is delivered.

    Provider-neutral: the wire format of the request's path encodes it.
    ``finish_reason`` defaults to ``"tool_calls"`` when there are tool calls,
    else ``"stop"``.
    """

    text: str = ""
    tool_calls: Sequence[ScriptedToolCall] = ()
    reasoning: str = ""
    usage: ScriptedUsage | None = None
    finish_reason: str | None = None
    chunk_chars: int = 4
    """Characters per streamed delta: small, so streaming is really exercised."""
    chunk_delay_s: float = 0.0
    """Pause before each chunk after the first."""
    fault: Fault | None = None
    repeat_usage: bool = False
    """Report usage in every chunk, as some servers do; a client must not sum it."""
    reasoning_field: str = "reasoning_content"
    """OpenAI-compatible servers disagree: ``reasoning_content`` or ``reasoning``."""
    interleave_tool_calls: bool = True
    """Stream parallel calls' argument pieces round-robin (the hard case)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers."""
    gateway_cost_usd: float | None = None
    """The cost Cloudflare's gateway logs for this request (None: it logs no cost)."""

    def resolved_finish_reason(self) -> str:
        """The finish reason the wire carries."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


Outcome = Literal[
    "completed",  # the whole answer was sent
    "error_status",  # an HttpError fault was answered
    "cut",  # a CutStream fault closed the connection
    "client_disconnected",  # the client went away before the end
    "exhausted",  # no reply was left: HTTP 500 "script exhausted"
    "not_found",  # no wire format serves the path: HTTP 404
    "server_error",  # the responder raised: HTTP 500
    "server_stopped",  # the server stopped during the answer
]


@dataclass(eq=False)
class RecordedRequest:
    """One request the server received, and what became of it."""

    index: int
    """0 for the first request the server received."""
    method: str
    path: str
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: Any
    """The parsed JSON body; None when empty or not JSON (see ``raw_body``)."""
    raw_body: bytes
    received_at: float
    """`time.monotonic` at arrival, to compare with the client's own clock."""
    reply: Reply | None = None
    outcome: Outcome | None = None
    """How the exchange ended; None while it is running."""
    finished_at: float | None = None
    """`time.monotonic` when the exchange ended (the last byte was sent)."""
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait_done(self, timeout: float = 5.0) -> Outcome:
        """Block until the exchange is over; its outcome. Raises TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.index} ({self.path}) still running after {timeout}s")
        assert self.outcome is not None
        return self.outcome

    async def wait_done_async(self, timeout: float = 5.0) -> Outcome:
        """`wait_done` for asyncio tests (waits in a worker thread).

        The bound is a parameter, not ``asyncio.timeout``: cancelling the task
        cannot stop the waiting thread, so the thread itself must give up.
        """
        return await asyncio.to_thread(self.wait_done, timeout)

    def _finish(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.finished_at = time.monotonic()
        self._done.set()


Responder = Callable[[RecordedRequest], Reply]
"""Builds the reply to a request when the fixed script has none left."""
