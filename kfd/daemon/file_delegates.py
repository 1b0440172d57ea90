"""Frontends that serve sessions' files, and the questions on their way to them.

An editor attached through ``kfd acp`` serves its session's file reads and
writes (``files.serve``): the fs tools then read what the editor shows
(unsaved changes included) and write through it, so its buffers and undo
history stay right. The permission decision is made before: a question only
goes out from a tool call already allowed (`kfd.agent.editor_files` decides
what may be asked: a file inside the workspace, text of a bounded size).

A question is a ``file.requested`` event sent to the serving frontend alone
(it carries file content no other frontend is sent), answered by a
``files.answer`` request from that same frontend. It ends one way only: the
text, a refusal, or nothing (the frontend left, or did not answer within the
``timeout_s`` it chose), and nothing makes the tool use the disk. A late or
foreign answer is refused with ``not_found`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from kfd.agent.editor_files import Declined
from kfd.errors import RequestError
from kfd.protocol import FileOp, FileRequested, FilesAnswer, FilesServe

log = logging.getLogger(__name__)

MIN_TIMEOUT_S = 0.05
MAX_TIMEOUT_S = 30.0
"""The bounds of the wait a frontend may choose (``files.serve`` ``timeout_s``)."""

MAX_SERVERS_PER_SESSION = 16

# Not through `kfd.redact`: the text is a file the tool reads or writes, and
# a "secret" in it redacted on the way would corrupt the file. It goes to one
# frontend of the user, over the private bus, and is neither kept nor broadcast.
_encoder = msgspec.json.Encoder()

Send = Callable[[bytes, bytes], None]
"""(the frontend's bus identity, an encoded ``file.requested``): deliver it to that frontend."""


@dataclass(slots=True)
class _Server:
    client: str
    identity: bytes
    read: bool
    write: bool
    timeout_s: float

    def does(self, op: FileOp) -> bool:
        return self.read if op == "read" else self.write


@dataclass(slots=True)
class _Question:
    client: str
    session_id: str
    future: asyncio.Future[str | None]


class FileDelegates:
    """Who serves each session's files (latest first), and the questions in flight.

    Implements `kfd.agent.editor_files.FileRouter` for the sessions.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._servers: dict[str, list[_Server]] = {}
        self._questions: dict[str, _Question] = {}

    # -- who serves ------------------------------------------------------------

    def serve(self, request: FilesServe, client: str, identity: bytes) -> None:
        """``client`` serves (or, with neither ``read`` nor ``write``, stops serving)
        the files of ``request.session``; the latest to serve a session serves it."""
        servers = [s for s in self._servers.get(request.session, []) if s.client != client]
        if request.read or request.write:
            if len(servers) >= MAX_SERVERS_PER_SESSION:
                raise RequestError(
                    "conflict",
                    f"{MAX_SERVERS_PER_SESSION} frontends already serve this session's files",
                )
            timeout = min(max(request.timeout_s, MIN_TIMEOUT_S), MAX_TIMEOUT_S)
            servers.append(_Server(client, identity, request.read, request.write, timeout))
        if servers:
            self._servers[request.session] = servers
        else:
            self._servers.pop(request.session, None)
        if not (request.read or request.write):
            self._settle(client, request.session)

    def serving(self, session_id: str, op: FileOp) -> bool:
        """Whether a frontend serves ``op`` of the session's files now."""
        return self._server(session_id, op) is not None

    def gone(self, client: str) -> None:
        """``client`` left the bus: it serves nothing, and its questions get no answer."""
        for session_id in list(self._servers):
            kept = [s for s in self._servers[session_id] if s.client != client]
            if kept:
                self._servers[session_id] = kept
            else:
                del self._servers[session_id]
        self._settle(client)

    def _server(self, session_id: str, op: FileOp) -> _Server | None:
        for server in reversed(self._servers.get(session_id, [])):
            if server.does(op):
                return server
        return None

    def _settle(self, client: str, session_id: str | None = None) -> None:
        """End the questions to ``client`` (of one session) with no answer: the disk is used."""
        for question in self._questions.values():
            if question.client != client or question.future.done():
                continue
            if session_id is None or question.session_id == session_id:
                question.future.set_result(None)

    # -- questions -------------------------------------------------------------

    async def ask(self, session_id: str, op: FileOp, path: str, text: str = "") -> str | None:
        """Ask the session's serving frontend; see `kfd.agent.editor_files.FileRouter.ask`."""
        server = self._server(session_id, op)
        if server is None:
            return None
        request_id = secrets.token_hex(8)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._questions[request_id] = _Question(server.client, session_id, future)
        event = FileRequested(
            session=session_id, ephemeral=True, request_id=request_id, op=op, path=path, text=text
        )
        try:
            self._send(server.identity, _encoder.encode(event))
            async with asyncio.timeout(server.timeout_s):
                return await future
        except TimeoutError:
            log.warning(
                "session %s: %s of %s: no answer from frontend %s within %g s; using the disk",
                session_id,
                op,
                path,
                server.client,
                server.timeout_s,
            )
            return None
        finally:
            del self._questions[request_id]

    def answer(self, request: FilesAnswer, client: str) -> None:
        """Settle a question with ``client``'s answer; ``not_found`` if it is not one
        asked of ``client`` and still open."""
        question = self._questions.get(request.request_id)
        if question is None or question.client != client or question.future.done():
            raise RequestError(
                "not_found",
                f"no file request {request.request_id!r} waits for this frontend's answer "
                "(it was answered, timed out, or asked of another frontend)",
            )
        if request.fallback:
            question.future.set_result(None)
        elif request.error:
            question.future.set_exception(Declined(request.error[:2000]))
        else:
            question.future.set_result(request.text)
