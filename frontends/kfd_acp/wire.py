"""ACP's wire: newline-delimited JSON-RPC 2.0 messages over stdin and stdout.

`Wire` is the message-level transport the ACP library's connection runs on
(it implements ``acp.connection.Transport``: ``send``, ``receive``,
``close``). It exists, rather than the library's own stdio transport,
because a line that is not JSON-RPC must get an error reply the editor can
act on (JSON-RPC's ``-32700 Parse error`` and ``-32600 Invalid Request``,
with ``"id": null``): the library logs such lines and drops them, which
leaves an editor waiting forever. It also lets the agent learn the ids of
the requests it sends (`Wire.on_send`), so one can be cancelled.

No ACP library here: this module loads with the fast start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import msgspec

log = logging.getLogger("kfd_acp")

MAX_LINE_BYTES = 50 * 1024 * 1024
"""One message at most (an editor may embed whole files in a prompt)."""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_TITLES = {INVALID_PARAMS: "Invalid params", INTERNAL_ERROR: "Internal error"}


def error_of(code: int, details: str) -> dict[str, Any]:
    """A JSON-RPC error object that says what is wrong in its message itself
    (editors show the message, not ``data``): ``Invalid params: <details>``."""
    return {"code": code, "message": f"{_TITLES[code]}: {details}", "data": {"details": details}}


_encoder = msgspec.json.Encoder(enc_hook=str)  # error data may hold exceptions: say what they are


class Wire:
    """JSON-RPC messages in and out, one per line; bad lines answered, never fatal."""

    def __init__(self, reader: asyncio.StreamReader, output: Output) -> None:
        self._reader = reader
        self._output = output
        self._lock = asyncio.Lock()
        self.closed = False
        self.on_send: list[Callable[[dict[str, Any]], None]] = []
        """Called with every message just written (the agent notes request ids)."""
        self._ahead: asyncio.Task[dict[str, Any] | None] | None = None

    @classmethod
    async def stdio(cls, output_fd: int, unread: bytes = b"") -> Wire:
        """The wire on this process's stdin and the file descriptor ``output_fd``.

        ``unread``: bytes already read from stdin (by the fast start), read first.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES, loop=loop)
        if unread:
            reader.feed_data(unread)
        try:
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sys.stdin.buffer
            )
        except ValueError:  # not a pipe, socket or character device: a file
            _feed_from_thread(loop, reader, sys.stdin.buffer)
        return cls(reader, await Output.open(os.fdopen(output_fd, "wb", buffering=0)))

    # -- receiving -----------------------------------------------------------

    async def receive(self) -> dict[str, Any] | None:
        """The next JSON-RPC message; None at the end of input (the editor left)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return await ahead
        return await self._receive()

    def ahead(self) -> asyncio.Task[dict[str, Any] | None]:
        """The next message, read ahead (`kfd_acp.early` looks before the library
        runs): `receive` returns it unless `take_ahead` took it."""
        if self._ahead is None:
            self._ahead = asyncio.ensure_future(self._receive())
        return self._ahead

    def take_ahead(self) -> None:
        """The message read ahead was answered: `receive` goes on after it."""
        self._ahead = None

    async def _receive(self) -> dict[str, Any] | None:
        while True:
            line = await self._read_line()
            if line is None:
                return None
            if not line.strip():
                continue
            message = await self._check(line)
            if message is not None:
                return message

    async def _read_line(self) -> bytes | None:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial or None  # a last line without newline still counts
        except asyncio.LimitOverrunError:
            await self._skip_long_line()
            await self.reply_error(
                None,
                INVALID_REQUEST,
                f"Invalid Request: a message longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB",
            )
            return b""
        except (ConnectionError, OSError):
            return None
        return line

    async def _skip_long_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return

    async def _check(self, line: bytes) -> dict[str, Any] | None:
        """The message on ``line``, or None after answering why it is not one."""
        try:
            message = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            await self.reply_error(None, PARSE_ERROR, f"Parse error: not JSON ({exc})")
            return None
        if not isinstance(message, dict):
            kind = "a batch" if isinstance(message, list) else type(message).__name__
            await self.reply_error(
                None, INVALID_REQUEST, f"Invalid Request: expected one JSON object, got {kind}"
            )
            return None
        request_id = message.get("id")
        if request_id is not None and not isinstance(request_id, str | int):
            await self.reply_error(
                None, INVALID_REQUEST, "Invalid Request: `id` must be a string or a number"
            )
            return None
        method = message.get("method")
        if method is None and "id" not in message:
            await self.reply_error(
                None, INVALID_REQUEST, "Invalid Request: a message needs `method` or `id`"
            )
            return None
        if method is not None and not isinstance(method, str):
            if "id" in message:
                await self.reply_error(
                    request_id, INVALID_REQUEST, "Invalid Request: `method` must be a string"
                )
            return None
        return message

    # -- sending -------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Write one message. A vanished editor makes this a no-op, never an error."""
        data = _encoder.encode(message) + b"\n"
        async with self._lock:
            if self.closed:
                return
            try:
                await self._output.write(data)
            except (ConnectionError, OSError, ValueError, RuntimeError):
                self.closed = True
                log.info("the editor closed its end; nothing more is sent")
                return
            # Observers run once the message is out, before anything else can be:
            # what they learn (a request's id) is known before any answer to it.
            for observer in self.on_send:
                observer(message)

    async def reply_error(
        self, request_id: str | int | None, code: int, message: str, data: Any = None
    ) -> None:
        """A JSON-RPC error reply (``"id": null`` when the request's id is unknown)."""
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        await self.send({"jsonrpc": "2.0", "id": request_id, "error": error})

    async def close(self) -> None:
        """Stop writing; the process's output is closed."""
        async with self._lock:
            if not self.closed:
                self.closed = True
                self._output.close()


class Output:
    """The byte stream messages go out on: a pipe written without blocking the
    loop (waiting while the editor does not read), or a file written in a thread."""

    def __init__(self, file: BinaryIO, writer: asyncio.StreamWriter | None) -> None:
        self._file = file
        self._writer = writer

    @classmethod
    async def open(cls, file: BinaryIO) -> Output:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.streams.FlowControlMixin(loop=loop), file
            )
        except ValueError:  # a regular file: asyncio cannot watch it
            return cls(file, None)
        return cls(file, asyncio.StreamWriter(transport, protocol, None, loop))

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            await asyncio.to_thread(self._file.write, data)
            return
        if self._writer.is_closing():
            raise ConnectionResetError("the output is closed")
        self._writer.write(data)
        await self._writer.drain()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if self._writer is not None:
                self._writer.close()
            else:
                self._file.close()


def _feed_from_thread(
    loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader, source: BinaryIO
) -> None:
    """Feed ``reader`` from a file that asyncio cannot watch (a regular file)."""

    def pump() -> None:
        try:
            while chunk := os.read(source.fileno(), 65536):
                loop.call_soon_threadsafe(reader.feed_data, chunk)
        except (OSError, ValueError):
            pass
        finally:
            loop.call_soon_threadsafe(reader.feed_eof)

    threading.Thread(target=pump, name="kfd-acp-stdin", daemon=True).start()
