"""A scripted model server: a real HTTP server on loopback that answers from a script.

No real model is reachable from a test machine, and a mocked client would
leave the real client, SSE parser and retry code untested. This server speaks
the providers' wire formats over real HTTP/1.1 on ``127.0.0.1`` (a random free
port), streams real ``text/event-stream`` answers chunk by chunk, and answers
each request with the next `Reply` of a script. It runs in a background
thread, so a daemon subprocess can talk to it while the test itself runs
asyncio.

Scripting
---------
A script is a list of replies, consumed one per request, in order::

    from kfd.testing import CutStream, HttpError, Reply, ScriptedModelServer, ScriptedToolCall

    script = [
        Reply(fault=HttpError(429, retry_after=0.1)),  # first request: 429
        Reply(text="Let me look.", tool_calls=[
            ScriptedToolCall("read_file", {"path": "README.md"}),
        ]),
        Reply(text="Done.", fault=CutStream(after_chunks=3)),  # dropped mid-way
        Reply(text="Done."),
    ]
    with ScriptedModelServer(script) as server:
        run_the_client(base_url=server.base_url)
        assert server.requests[1].body["messages"][-1]["role"] == "user"

A reply with a ``fault`` still consumes one request: the script above is what
a client that retries correctly sees as two answers. Replies can be appended
while the server runs (`ScriptedModelServer.add`), and a ``responder`` callable
can build replies from the request instead of, or after, a fixed list.

When the script runs out the server answers HTTP 500 with a JSON error saying
``script exhausted``, so a test that asks more than it scripted fails loudly
instead of hanging.

Faults
------
- `HttpError` -- an HTTP error status, with optional ``Retry-After`` and body.
- `CutStream` -- the connection closes after N stream chunks, without ``[DONE]``
  (``clean=True``: the body ends properly, just early).
- `Stall` -- the stream goes silent for T seconds after N chunks, then resumes
  (if the client is still there).
- `InvalidChunk` -- a chunk that is not JSON, sent after N chunks.
- ``Reply(repeat_usage=True)`` -- usage numbers in every chunk, not just the last.

Observing
---------
Every request is recorded as a `RecordedRequest` (path, headers, parsed JSON
body, arrival time, the reply it got and how the exchange ended).
`ScriptedModelServer.wait_for_request` blocks until the Nth request has arrived;
`RecordedRequest.wait_done` blocks until its exchange is over and says how it
ended (``"completed"``, ``"client_disconnected"``, ...). Both have ``_async``
twins for asyncio tests. Nothing here polls: waits are on thread events.

Wire formats
------------
A `WireFormat` turns a provider-neutral `Reply` into one provider's bytes. By
default the server speaks all three of kfd's: OpenAI chat completions
(`OpenAIChatFormat`, at ``/v1/chat/completions``), Anthropic Messages
(`kfd.testing.anthropic_wire.AnthropicMessagesFormat`, at ``/v1/messages``)
and Cloudflare (`kfd.testing.cloudflare_wire.CloudflareFormat`: the AI
Gateway's ``/v1/{account}/{gateway}/compat/chat/completions``, Workers AI's
``/client/v4/accounts/{account}/ai/v1/chat/completions``, and the gateway's
log look-up, which answers with ``Reply.gateway_cost_usd``). The script, the
faults and the recording are shared by every format. Requests a format answers
by itself (`WireFormat.side_answer`: the log look-ups) consume no reply and
are not in `ScriptedModelServer.requests`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, TypeVar

__all__ = [
    "CONTEXT_TOO_LONG",
    "CutStream",
    "Fault",
    "HttpError",
    "InvalidChunk",
    "OpenAIChatFormat",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedModelServer",
    "ScriptedToolCall",
    "ScriptedUsage",
    "ServerEvent",
    "Stall",
    "WireFormat",
]

# --------------------------------------------------------------------------
# The script


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


WireFormatT = TypeVar("WireFormatT", bound="WireFormat")

Responder = Callable[[RecordedRequest], Reply]
"""Builds the reply to a request when the fixed script has none left."""


# --------------------------------------------------------------------------
# Wire formats


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: ``event:`` (optional) and ``data:`` lines."""

    data: str
    event: str | None = None

    def encode(self) -> bytes:
        """The event's bytes, blank line included."""
        lines = [f"event: {self.event}"] if self.event else []
        lines.extend(f"data: {line}" for line in self.data.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()


def estimated_usage(reply: Reply, request: RecordedRequest) -> ScriptedUsage:
    """The reply's usage, or a rough estimate (4 characters a token) from sizes."""
    if reply.usage is not None:
        return reply.usage
    output_chars = len(reply.text) + len(reply.reasoning)
    output_chars += sum(len(c.name) + len(c.arguments_json()) for c in reply.tool_calls)
    return ScriptedUsage(
        input_tokens=max(1, len(request.raw_body) // 4),
        output_tokens=max(1, output_chars // 4),
        reasoning_tokens=len(reply.reasoning) // 4,
    )


def requested_model(request: RecordedRequest) -> str:
    """The model the request named (``scripted`` when it named none)."""
    body = request.body
    return str(body.get("model", "scripted")) if isinstance(body, dict) else "scripted"


def call_id(
    request: RecordedRequest, position: int, call: ScriptedToolCall, prefix: str = "call"
) -> str:
    """The call's scripted id, or one made up: ``<prefix>_<request>_<position>``."""
    return call.id if call.id is not None else f"{prefix}_{request.index}_{position}"


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of ``size`` characters (none for empty text)."""
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


class WireFormat(abc.ABC):
    """One provider's wire format: which paths it serves and how it encodes a reply.

    Subclasses encode; the server applies faults, delays and recording to
    whatever they produce, so a new format is a small class.
    """

    name: ClassVar[str]
    paths: ClassVar[tuple[str, ...]]

    def serves(self, path: str) -> bool:
        """Whether this format answers requests to ``path`` (query removed)."""
        return path in self.paths

    @abc.abstractmethod
    def wants_stream(self, request: RecordedRequest) -> bool:
        """Whether the request asked for a streamed answer."""

    @abc.abstractmethod
    def stream_events(self, reply: Reply, request: RecordedRequest) -> list[ServerEvent]:
        """The whole stream, terminator included, as server-sent events."""

    @abc.abstractmethod
    def completion(self, reply: Reply, request: RecordedRequest) -> Any:
        """The JSON body of a non-streamed answer."""

    @abc.abstractmethod
    def error_body(self, status: int, message: str, code: str | None) -> Any:
        """The JSON body of an error answer."""

    def response_headers(self, reply: Reply, request: RecordedRequest) -> dict[str, str]:
        """Headers this format adds to the answer of ``request`` (a gateway's log id)."""
        return {}

    def side_answer(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """Answer a request that is not a model request (status, JSON body), or None.

        Side answers consume no scripted reply and are not recorded in
        `ScriptedModelServer.requests`; a format that offers them keeps its
        own record.
        """
        return None


class OpenAIChatFormat(WireFormat):
    """OpenAI chat completions (``POST /v1/chat/completions``), streamed or not.

    Streams the way OpenAI does: a role chunk, reasoning deltas, content
    deltas, tool-call deltas (id and name first, arguments in pieces, by
    ``index``), a chunk with ``finish_reason``, a usage chunk with empty
    ``choices`` when ``stream_options.include_usage`` is set, then
    ``data: [DONE]``.
    """

    name = "openai"
    paths = ("/v1/chat/completions", "/chat/completions")

    def wants_stream(self, request: RecordedRequest) -> bool:
        return isinstance(request.body, dict) and bool(request.body.get("stream"))

    def stream_events(self, reply: Reply, request: RecordedRequest) -> list[ServerEvent]:
        base: dict[str, Any] = {
            "id": f"chatcmpl-{request.index}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": requested_model(request),
        }
        usage = self._usage(estimated_usage(reply, request))

        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{reply.reasoning_field: p} for p in pieces(reply.reasoning, reply.chunk_chars)]
        deltas += [{"content": p} for p in pieces(reply.text, reply.chunk_chars)]
        deltas += self._tool_call_deltas(reply, request)

        choices: list[dict[str, Any]] = [
            {"index": 0, "delta": d, "finish_reason": None} for d in deltas
        ]
        choices.append({"index": 0, "delta": {}, "finish_reason": reply.resolved_finish_reason()})
        chunks = [base | {"choices": [choice]} for choice in choices]
        if reply.repeat_usage:
            chunks = [chunk | {"usage": usage} for chunk in chunks]
        options = request.body.get("stream_options") if isinstance(request.body, dict) else None
        if reply.repeat_usage or (isinstance(options, dict) and options.get("include_usage")):
            chunks.append(base | {"choices": [], "usage": usage})
        events = [ServerEvent(json.dumps(chunk)) for chunk in chunks]
        events.append(ServerEvent("[DONE]"))
        return events

    def completion(self, reply: Reply, request: RecordedRequest) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.reasoning:
            message[reply.reasoning_field] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    **({"id": call_id(request, i, call)} if call.send_id else {}),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{request.index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": requested_model(request),
            "choices": [
                {"index": 0, "message": message, "finish_reason": reply.resolved_finish_reason()}
            ],
            "usage": self._usage(estimated_usage(reply, request)),
        }

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            kind = "rate_limit_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    @staticmethod
    def _usage(usage: ScriptedUsage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }

    def _tool_call_deltas(self, reply: Reply, request: RecordedRequest) -> list[dict[str, Any]]:
        heads: list[dict[str, Any]] = []
        tails: list[list[dict[str, Any]]] = []
        for index, call in enumerate(reply.tool_calls):
            head: dict[str, Any] = {"index": index, "type": "function"}
            if call.send_id:
                head["id"] = call_id(request, index, call)
            head["function"] = {"name": call.name, "arguments": ""}
            heads.append({"tool_calls": [head]})
            tails.append(
                [
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    for piece in pieces(call.arguments_json(), reply.chunk_chars)
                ]
            )
        if not reply.interleave_tool_calls:
            return [d for head, tail in zip(heads, tails, strict=True) for d in (head, *tail)]
        # Every call opens, then argument pieces alternate between calls.
        interleaved = list(heads)
        for round_ in range(max((len(t) for t in tails), default=0)):
            interleaved += [tail[round_] for tail in tails if round_ < len(tail)]
        return interleaved


# --------------------------------------------------------------------------
# The server


class _ClientGone(Exception):
    """The client closed its end while we were answering."""


class _ServerStopping(Exception):
    """The server is stopping while we were answering."""


class _Exchange:
    """Writes one answer on one connection, noticing a client that leaves."""

    def __init__(self, handler: _Handler, wakeup: socket.socket) -> None:
        self.handler = handler
        self.conn: socket.socket = handler.connection
        self.wakeup = wakeup

    def send_body(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self.handler.end_headers()
        self._write(body)

    def send_json(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        self.send_body(status, json.dumps(body).encode(), "application/json", headers)

    def start_stream(self, headers: Mapping[str, str]) -> None:
        self.handler.send_response(200)
        self.handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.handler.send_header("Cache-Control", "no-cache")
        self.handler.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self.handler.end_headers()

    def send_chunk(self, data: bytes) -> None:
        # One HTTP chunk per event, written at once: the client sees each event
        # as soon as it is sent, which is what streaming tests are about.
        self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def cut(self) -> None:
        """Close the connection mid-answer (no terminating chunk)."""
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` unless the client leaves or the server stops first."""
        deadline = time.monotonic() + seconds
        watched = [self.conn, self.wakeup]
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select(watched, [], [], remaining)
            if self.wakeup in readable:
                raise _ServerStopping
            if self.conn in readable:
                try:
                    peeked = self.conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    raise _ClientGone
                # The client sent something (a pipelined request): not a goodbye.
                watched = [self.wakeup]

    def _write(self, data: bytes) -> None:
        try:
            self.handler.wfile.write(data)
        except OSError as exc:
            raise _ClientGone from exc


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Small SSE chunks must not wait for Nagle's algorithm.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._connection_opened(self.connection)

    def finish(self) -> None:
        self.server.owner._connection_closed(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self.server.owner._serve(self)

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test's output is for the test."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: ScriptedModelServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


def _phrase(status: int) -> str:
    """The reason phrase of ``status`` (529, Anthropic's "overloaded", is no standard one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else f"HTTP {status}"


def _default_formats() -> tuple[WireFormat, ...]:
    # Imported here: those formats build on this module.
    from kfd.testing.anthropic_wire import AnthropicMessagesFormat
    from kfd.testing.cloudflare_wire import CloudflareFormat

    return (OpenAIChatFormat(), AnthropicMessagesFormat(), CloudflareFormat())


class ScriptedModelServer:
    """A real HTTP model server on loopback that answers from a script.

    Use as a context manager, or call `start` and `stop`::

        with ScriptedModelServer([Reply(text="hello")]) as server:
            ...  # point the client at server.base_url

    ``script`` replies are consumed in order, one per request; when they run
    out, ``responder`` (if given) builds each reply from the request, and
    without one every further request gets HTTP 500 "script exhausted".
    Every answer carries ``x-request-id: req_<index>``. All methods are
    thread-safe.
    """

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        responder: Responder | None = None,
        formats: Sequence[WireFormat] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._script: deque[Reply] = deque(script)
        self._responder = responder
        self._formats: tuple[WireFormat, ...] = tuple(formats or _default_formats())
        self._host = host
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._answering = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Writing a byte here wakes every paused answer at once when we stop.
        self._wakeup_read, self._wakeup_write = socket.socketpair()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> ScriptedModelServer:
        """Bind a free port and serve in a background thread. Returns self."""
        if self._httpd is not None:
            raise RuntimeError("the scripted model server is already running")
        self._httpd = _HTTPServer((self._host, 0), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-model-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port. Idempotent."""
        with self._lock:
            httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        with contextlib.suppress(OSError):
            self._wakeup_write.send(b"x")
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            # Answers watch the wakeup socket: let them see it before it closes.
            self._lock.wait_for(lambda: self._answering == 0, timeout=5)
        self._wakeup_read.close()
        self._wakeup_write.close()

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("the scripted model server is not running; call start()")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, no path."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``.

        Also Anthropic's (``/v1/messages``) and the Cloudflare AI Gateway's
        (``/v1/{account}/{gateway}/compat/...``), as ``KFD_BASE_URL``.
        """
        return f"{self.url}/v1"

    @property
    def cloudflare_api_url(self) -> str:
        """Cloudflare's API base here, ``http://127.0.0.1:PORT/client/v4``
        (``[model] cloudflare_api_url``, ``KFD_CLOUDFLARE_API_URL``)."""
        return f"{self.url}/client/v4"

    @property
    def formats(self) -> tuple[WireFormat, ...]:
        """The wire formats served, in the order paths are matched."""
        return self._formats

    def wire(self, kind: type[WireFormatT]) -> WireFormatT:
        """The served format of class ``kind`` (to read its own records)."""
        for wire in self._formats:
            if isinstance(wire, kind):
                return wire
        raise LookupError(f"this server does not speak {kind.__name__}")

    # -- script ------------------------------------------------------------

    def add(self, *replies: Reply) -> None:
        """Append replies to the script, even while requests are being served."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet (a responder is not counted)."""
        with self._lock:
            return len(self._script)

    # -- observation -------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy of the list)."""
        with self._lock:
            return list(self._requests)

    def wait_for_request(self, index: int, timeout: float = 5.0) -> RecordedRequest:
        """Block until request number ``index`` (0-based) has arrived; it.

        Raises TimeoutError naming how many requests did arrive.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) > index, timeout):
                raise TimeoutError(
                    f"request {index} did not arrive within {timeout}s "
                    f"({len(self._requests)} received)"
                )
            return self._requests[index]

    async def wait_for_request_async(
        self,
        index: int,
        timeout: float = 5.0,
    ) -> RecordedRequest:
        """`wait_for_request` for asyncio tests (waits in a worker thread)."""
        return await asyncio.to_thread(self.wait_for_request, index, timeout)

    # -- serving (handler threads) ----------------------------------------

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    @staticmethod
    def _read(handler: _Handler) -> RecordedRequest:
        """The request, not yet numbered nor recorded."""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return RecordedRequest(
            index=-1,
            method=handler.command,
            path=handler.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
        )

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            record.index = len(self._requests)
            self._requests.append(record)
            self._lock.notify_all()

    def _next_reply(self, record: RecordedRequest) -> Reply | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self._responder(record) if self._responder is not None else None

    def _serve(self, handler: _Handler) -> None:
        with self._lock:
            if self._httpd is None:
                handler.close_connection = True
                return
            self._answering += 1
        outcome: Outcome = "server_error"
        record: RecordedRequest | None = None
        try:
            request = self._read(handler)
            exchange = _Exchange(handler, self._wakeup_read)
            if self._side_answer(exchange, request):
                outcome = "completed"
                return
            self._record(request)
            record = request
            outcome = self._answer(exchange, record)
        except _ClientGone:
            outcome = "client_disconnected"
        except _ServerStopping:
            outcome = "server_stopped"
        finally:
            if outcome not in ("completed", "error_status"):
                handler.close_connection = True
            if record is not None:
                record._finish(outcome)
            with self._lock:
                self._answering -= 1
                self._lock.notify_all()

    def _side_answer(self, exchange: _Exchange, request: RecordedRequest) -> bool:
        for wire in self._formats:
            answer = wire.side_answer(request)
            if answer is not None:
                exchange.send_json(answer[0], answer[1], {})
                return True
        return False

    def _answer(self, exchange: _Exchange, record: RecordedRequest) -> Outcome:
        wire = next((f for f in self._formats if f.serves(record.path)), None)
        if wire is None:
            served = ", ".join(p for f in self._formats for p in f.paths)
            body = {"error": {"message": f"no scripted endpoint at {record.path}; try {served}"}}
            exchange.send_json(404, body, {})
            return "not_found"
        try:
            reply = self._next_reply(record)
        except Exception as exc:
            message = f"the scripted model server's responder failed: {exc!r}"
            exchange.send_json(500, wire.error_body(500, message, "responder_failed"), {})
            return "server_error"
        if reply is None:
            message = (
                f"script exhausted: request {record.index} has no scripted reply "
                "(add more replies or a responder)"
            )
            exchange.send_json(500, wire.error_body(500, message, "script_exhausted"), {})
            return "exhausted"
        record.reply = reply
        headers = {
            "x-request-id": f"req_{record.index}",
            **wire.response_headers(reply, record),
            **reply.headers,
        }
        fault = reply.fault
        if isinstance(fault, HttpError):
            self._send_error(exchange, wire, fault, headers)
            return "error_status"
        if not wire.wants_stream(record):
            if isinstance(fault, CutStream):
                exchange.cut()
                return "cut"
            if isinstance(fault, Stall):
                exchange.pause(fault.seconds)
            if isinstance(fault, InvalidChunk):
                exchange.send_body(200, fault.data.encode(), "application/json", headers)
            else:
                exchange.send_json(200, wire.completion(reply, record), headers)
            return "completed"
        return self._stream(exchange, wire.stream_events(reply, record), reply, headers)

    @staticmethod
    def _send_error(
        exchange: _Exchange, wire: WireFormat, fault: HttpError, headers: Mapping[str, str]
    ) -> None:
        headers = dict(headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = (
                fault.retry_after
                if isinstance(fault.retry_after, str)
                else f"{fault.retry_after:g}"
            )
        headers.update(fault.headers)
        if isinstance(fault.body, str):
            exchange.send_body(fault.status, fault.body.encode(), "text/plain", headers)
            return
        message = fault.message or _phrase(fault.status)
        body = (
            fault.body
            if fault.body is not None
            else wire.error_body(fault.status, message, fault.code)
        )
        exchange.send_json(fault.status, body, headers)

    @staticmethod
    def _stream(
        exchange: _Exchange, events: list[ServerEvent], reply: Reply, headers: Mapping[str, str]
    ) -> Outcome:
        fault = reply.fault
        exchange.start_stream(headers)
        # Position len(events) is "after the last event", so a fault can hit there too.
        for position in range(len(events) + 1):
            if (
                fault is not None
                and not isinstance(fault, HttpError)
                and min(fault.after_chunks, len(events)) == position
            ):
                if isinstance(fault, CutStream):
                    if fault.clean:
                        exchange.end_stream()
                    else:
                        exchange.cut()
                    return "cut"
                if isinstance(fault, Stall):
                    exchange.pause(fault.seconds)
                else:
                    exchange.send_chunk(ServerEvent(fault.data).encode())
            if position == len(events):
                break
            if position > 0 and reply.chunk_delay_s > 0:
                exchange.pause(reply.chunk_delay_s)
            exchange.send_chunk(events[position].encode())
        exchange.end_stream()
        return "completed"
