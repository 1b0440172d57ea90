"""A frontend serving a session's files: the reads and writes of its tools.

An editor has the truth of the files it has open: unsaved changes, an undo
history. ``Client.serve_files`` registers a handler the daemon asks, after
the permission decision, to read or write a file inside the session's
workspace (``file.requested``, sent to this client alone); the handler's
return value or exception becomes the ``files.answer``. The daemon waits a
few seconds at most, then uses the disk, so a slow or broken handler costs
time, never a tool call's result.

::

    async def editor(request: p.FileRequested) -> str:
        if request.op == "read":
            return buffers[request.path]
        buffers[request.path] = request.text
        return ""

    service = await client.serve_files(session_id, editor, read=True, write=True)
    ...
    await service.close()
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from kfd import protocol as p
from kfd.client.errors import DaemonUnavailable, RequestFailed

log = logging.getLogger(__name__)

FileHandler = Callable[[p.FileRequested], Awaitable[str]]
"""Does what a ``file.requested`` asks: returns the text read (``""`` after a write)."""

ANSWER_TIMEOUT_S = 10.0

_ERROR_CHARS = 2000


class Link(Protocol):
    """What a `FileService` uses of its client (`kfd.client.Client`): named here so
    that the client imports this module and not the other way round."""

    @property
    def closed(self) -> bool:
        """Whether the client was closed."""
        ...

    async def request(self, request: p.Request, *, timeout: float = ...) -> Any:
        """Send a request and return its decoded result."""
        ...

    def _drop_file_service(self, service: FileService) -> None:
        """Stop routing the session's file requests to ``service``."""
        ...


class FileUnavailable(Exception):
    """Raise from a `FileHandler` when it cannot ask at all (its editor is gone):
    the daemon then uses the disk, as if nobody served the file."""


class FileService:
    """This client serving one session's files (`kfd.client.Client.serve_files`)."""

    def __init__(
        self,
        client: Link,
        session_id: str,
        handler: FileHandler,
        *,
        read: bool,
        write: bool,
        timeout_s: float,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.handler = handler
        self.read = read
        self.write = write
        self.timeout_s = timeout_s
        self.closed = False

    def registration(self) -> p.FilesServe:
        """The request that (re)registers this service with the daemon."""
        return p.FilesServe(
            id="",
            session=self.session_id,
            read=self.read and not self.closed,
            write=self.write and not self.closed,
            timeout_s=self.timeout_s,
        )

    async def close(self) -> None:
        """Stop serving: the daemon uses the disk for this session again."""
        if self.closed:
            return
        self.closed = True
        self.client._drop_file_service(self)
        if not self.client.closed:
            try:
                await self.client.request(self.registration())
            except (DaemonUnavailable, RequestFailed) as exc:
                log.info("session %s: could not stop serving files: %s", self.session_id, exc)

    async def handle(self, request: p.FileRequested) -> None:
        """Run the handler for one request and send its answer."""
        try:
            text = await self.handler(request)
            answer = p.FilesAnswer(id="", request_id=request.request_id, text=text)
            if request.op == "write":
                answer.text = ""
        except FileUnavailable:
            answer = p.FilesAnswer(id="", request_id=request.request_id, fallback=True)
        except Exception as exc:
            said = str(exc) or type(exc).__name__
            answer = p.FilesAnswer(id="", request_id=request.request_id, error=said[:_ERROR_CHARS])
        try:
            await self.client.request(answer, timeout=ANSWER_TIMEOUT_S)
        except RequestFailed as exc:
            if exc.code == "too_large":  # the text cannot travel: the daemon reads the disk
                await self._answer_quietly(
                    p.FilesAnswer(id="", request_id=request.request_id, fallback=True)
                )
            else:  # answered too late (the daemon used the disk), or the session is gone
                log.info("file request %s: %s", request.request_id, exc.message)
        except DaemonUnavailable as exc:
            log.info("file request %s: %s", request.request_id, exc)

    async def _answer_quietly(self, answer: p.FilesAnswer) -> None:
        try:
            await self.client.request(answer, timeout=ANSWER_TIMEOUT_S)
        except (RequestFailed, DaemonUnavailable) as exc:
            log.info("file request %s: %s", answer.request_id, exc)
