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

This module is the server; the script's values live in `kfd.testing.script`
and the formats in `kfd.testing.wire` (re-exported here and in `kfd.testing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from kfd.testing.anthropic_wire import AnthropicMessagesFormat
from kfd.testing.cloudflare_wire import CloudflareFormat
from kfd.testing.script import (
    CONTEXT_TOO_LONG,
    CutStream,
    Fault,
    HttpError,
    InvalidChunk,
    Outcome,
    RecordedRequest,
    Reply,
    Responder,
    ScriptedToolCall,
    ScriptedUsage,
    Stall,
)
from kfd.testing.wire import OpenAIChatFormat, ServerEvent, WireFormat

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

WireFormatT = TypeVar("WireFormatT", bound=WireFormat)

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
        except (_ClientGone, OSError):
            # `stop` shuts the connections down: writing the headers or the body
            # then fails as if the client had left, but the server is what went.
            outcome = "server_stopped" if self._httpd is None else "client_disconnected"
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
