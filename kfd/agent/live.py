"""What a session shows while it works: the streaming answer and the running tools.

Streamed model text and tool output go to frontends as ephemeral events,
batched (`kfd.agent.streams.StreamBuffer`) and redacted as they come
(`kfd.redact.StreamRedactor`: a known secret split across chunks is caught
too); the completed message or result
follows as a durable event. A frontend attaching mid-stream gets what it
missed from `LiveOutput.streaming` and `LiveOutput.running` in its snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from kfd.agent.streams import StreamBuffer
from kfd.ids import new_id
from kfd.protocol import Event, MessageDelta, RunningTool, StreamingMessage, ToolOutput
from kfd.redact import StreamRedactor

RUNNING_OUTPUT_KEPT = 64 * 1024
"""Characters of a running tool's output kept for frontends that attach late."""

STREAMED_OUTPUT_LIMIT = 4 * 1024 * 1024
"""Characters of one call's output streamed to frontends; the rest is only in
the result (a command printing gigabytes must not flood every terminal)."""


@dataclass(slots=True)
class _RunningTool:
    call_id: str
    name: str
    summary: str
    started_at: float
    output: StreamBuffer
    muted: bool = False
    redactor: StreamRedactor = field(default_factory=StreamRedactor)
    """A secret value split across two output chunks is still caught."""


@dataclass(slots=True)
class _Stream:
    message_id: str
    text: StreamBuffer
    reasoning: StreamBuffer
    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    text_redactor: StreamRedactor = field(default_factory=StreamRedactor)
    reasoning_redactor: StreamRedactor = field(default_factory=StreamRedactor)
    """Model text that repeats a known secret, even split across deltas, is redacted."""
    shown: dict[str, int] = field(default_factory=lambda: {"text": 0, "reasoning": 0})
    """Characters of redacted text published so far, by kind: the next delta's offset."""


class Pacing(Protocol):
    """How often streamed text goes out (`kfd.agent.runtime.Runtime` has both;
    a config reload changes them for the next stream)."""

    @property
    def delta_window_s(self) -> float:
        """Model text: at most one delta event per window."""
        ...

    @property
    def output_window_s(self) -> float:
        """Tool output: at most one output event per window."""
        ...


class LiveOutput:
    """The streaming answer and the running tools of one session.

    ``publish`` sends an ephemeral event (`kfd.agent.session.Session.publish`);
    ``pacing`` bounds how often deltas go out while text pours in.
    """

    def __init__(self, session_id: str, publish: Callable[[Event], None], pacing: Pacing) -> None:
        self._session_id = session_id
        self._publish = publish
        self._pacing = pacing
        self._stream: _Stream | None = None
        self._running: dict[str, _RunningTool] = {}

    # -- the model's answer ------------------------------------------------------

    def begin_stream(self) -> str:
        """Start a streamed assistant message; returns its id."""
        message_id = new_id("m")

        def flusher(kind: Literal["text", "reasoning"]) -> Callable[[str, int], None]:
            # The buffer gathers the model's text as it comes; it is redacted
            # here, once per published piece rather than once per token (a
            # busy daemon's piece holds several), and placed by what was shown.
            def flush(text: str, offset: int) -> None:
                stream = self._stream
                if stream is None or stream.message_id != message_id:
                    return
                redactor = stream.text_redactor if kind == "text" else stream.reasoning_redactor
                self._show(stream, kind, redactor.feed(text))

            return flush

        window = self._pacing.delta_window_s
        self._stream = _Stream(
            message_id=message_id,
            text=StreamBuffer(window, flusher("text")),
            reasoning=StreamBuffer(window, flusher("reasoning")),
        )
        return message_id

    def _show(self, stream: _Stream, kind: Literal["text", "reasoning"], text: str) -> None:
        if not text:
            return
        offset = stream.shown[kind]
        stream.shown[kind] = offset + len(text)
        self._publish(
            MessageDelta(
                session=self._session_id,
                message_id=stream.message_id,
                text=text,
                offset=offset,
                kind=kind,
            )
        )

    def stream_text(self, text: str, *, reasoning: bool = False) -> None:
        """Add text (or reasoning) to the streaming answer."""
        stream = self._stream
        if stream is None:
            return
        if reasoning:
            stream.reasoning_parts.append(text)
            stream.reasoning.add(text)
        else:
            stream.text_parts.append(text)
            stream.text.add(text)

    def streamed_chars(self) -> int:
        """Characters of text and reasoning the current stream has brought so far."""
        stream = self._stream
        if stream is None:
            return 0
        return sum(map(len, stream.text_parts)) + sum(map(len, stream.reasoning_parts))

    def end_stream(self, *, publish_pending: bool = True) -> None:
        """Flush (or drop) what is pending; the completed message follows."""
        stream = self._stream
        if stream is None:
            return
        kinds: tuple[tuple[Literal["text", "reasoning"], StreamBuffer, StreamRedactor], ...] = (
            ("reasoning", stream.reasoning, stream.reasoning_redactor),
            ("text", stream.text, stream.text_redactor),
        )
        for kind, buffer, redactor in kinds:
            if publish_pending:
                buffer.flush()
                self._show(stream, kind, redactor.finish())
            else:
                buffer.close()
        self._stream = None

    def streaming(self) -> StreamingMessage | None:
        """The answer streamed so far, for a snapshot."""
        if self._stream is None:
            return None
        return StreamingMessage(
            message_id=self._stream.message_id,
            text="".join(self._stream.text_parts),
            reasoning="".join(self._stream.reasoning_parts),
        )

    # -- running tools -----------------------------------------------------------

    def tool_started(self, call_id: str, name: str, summary: str) -> None:
        """A call starts: its output streams from now on."""

        def flush(text: str, offset: int) -> None:
            self._publish(
                ToolOutput(session=self._session_id, call_id=call_id, data=text, offset=offset)
            )

        buffer = StreamBuffer(self._pacing.output_window_s, flush, keep=RUNNING_OUTPUT_KEPT)
        self._running[call_id] = _RunningTool(call_id, name, summary, time.time(), buffer)

    def tool_output(self, call_id: str, text: str) -> None:
        """Output of a running call (streamed up to `STREAMED_OUTPUT_LIMIT`)."""
        running = self._running.get(call_id)
        if running is None or running.muted:
            return
        if running.output.length + len(text) > STREAMED_OUTPUT_LIMIT:
            running.muted = True
            running.output.add(running.redactor.finish())
            text = "\n[… output continues; no longer streamed: see the tool's result …]\n"
        running.output.add(running.redactor.feed(text))

    def tool_finished(self, call_id: str) -> None:
        """A call ended: flush its output; its result follows."""
        running = self._running.pop(call_id, None)
        if running is not None:
            running.output.add(running.redactor.finish())
            running.output.flush()

    def running(self) -> list[RunningTool]:
        """The running calls with their recent output, for a snapshot."""
        tools = []
        for tool in self._running.values():
            output, offset = tool.output.kept()
            tools.append(
                RunningTool(
                    call_id=tool.call_id,
                    name=tool.name,
                    summary=tool.summary,
                    started_at=tool.started_at,
                    output=output,
                    output_offset=offset,
                )
            )
        return tools
