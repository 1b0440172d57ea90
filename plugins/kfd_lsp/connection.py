"""One language server process for one workspace, over pygls's client.

Files are sent to the server as they are on disk when a tool needs them
(``didOpen`` the first time, ``didChange`` with the full text after), and
the diagnostics the server pushes are kept per file, with an event so a
caller can wait for the ones that answer its last change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from kfd.api import ToolError, scrub

from .servers import ServerSpec, language_id


@dataclass
class _Document:
    version: int
    text: str


@dataclass
class _Diagnostics:
    version: int | None = None
    items: list[lsp.Diagnostic] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class Connection:
    """A started language server rooted at one workspace."""

    def __init__(self, name: str, spec: ServerSpec, root: Path, log: Path) -> None:
        self.name = name
        self.spec = spec
        self.root = root
        self.log = log
        self.client = LanguageClient("kfd", "1")
        self.capabilities: lsp.ServerCapabilities | None = None
        self._documents: dict[str, _Document] = {}
        self._diagnostics: dict[str, _Diagnostics] = {}
        self._drain: asyncio.Task[None] | None = None

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _published(params: lsp.PublishDiagnosticsParams) -> None:
            entry = self._diagnostics.setdefault(params.uri, _Diagnostics())
            entry.version = params.version
            entry.items = list(params.diagnostics)
            entry.arrived.set()

        @self.client.feature(lsp.WORKSPACE_CONFIGURATION)
        def _configuration(params: lsp.ConfigurationParams) -> list[Any]:
            return [self.spec.settings.get(item.section or "", None) for item in params.items]

        def _ignore(_params: Any) -> None:
            return None

        # Progress and chatter the server sends: acknowledged, not shown.
        for method in (
            lsp.WINDOW_WORK_DONE_PROGRESS_CREATE,
            lsp.WINDOW_LOG_MESSAGE,
            lsp.WINDOW_SHOW_MESSAGE,
            lsp.PROGRESS,
            lsp.TELEMETRY_EVENT,
        ):
            self.client.feature(method)(_ignore)

    @property
    def alive(self) -> bool:
        server = self.client._server  # pygls keeps the process here
        return not self.client.stopped and server is not None and server.returncode is None

    async def start(
        self, timeout: float, *, prefix: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start the server (after ``prefix``, the sandbox) and initialize it."""
        program = self.spec.command[0]
        if prefix and shutil.which(program) is None:
            # Confined, a missing program would only show as the sandbox exiting.
            raise ToolError(f"language server {self.name} ({program}) did not start: not found")
        command = [*(prefix or []), *self.spec.command]
        try:
            await self.client.start_io(command[0], *command[1:], cwd=str(self.root), env=env)
        except OSError as exc:
            raise ToolError(
                f"language server {self.name} ({self.spec.command[0]}) did not start: {exc}"
            ) from None
        # pygls pipes the server's stderr and never reads it: drain it to the log,
        # or a chatty server blocks once the pipe is full.
        process = self.client._server
        if process is not None and process.stderr is not None:
            self._drain = asyncio.create_task(_drain(process.stderr, self.log))
        uri = from_fs_path(str(self.root)) or self.root.as_uri()
        params = lsp.InitializeParams(
            # A confined server cannot see kfd's pid (its own PID namespace); one that
            # watches its parent would take kfd for dead. It dies with kfd anyway.
            process_id=None if prefix else os.getpid(),
            root_uri=uri,
            root_path=str(self.root),
            workspace_folders=[lsp.WorkspaceFolder(uri=uri, name=self.root.name)],
            capabilities=_CAPABILITIES,
            client_info=lsp.ClientInfo(name="kfd"),
        )
        try:
            async with asyncio.timeout(timeout):
                result = await self.client.initialize_async(params)
        except (TimeoutError, RuntimeError) as exc:
            await self.stop()
            reason = "no answer" if isinstance(exc, TimeoutError) else str(exc)
            raise ToolError(
                f"language server {self.name} did not initialize within {timeout:g} s "
                f"({reason}); its log: {self.log}"
            ) from None
        self.capabilities = result.capabilities
        self.client.initialized(lsp.InitializedParams())
        if self.spec.settings:
            self.client.workspace_did_change_configuration(
                lsp.DidChangeConfigurationParams(settings=self.spec.settings)
            )

    async def request(self, method: str, params: Any, timeout: float) -> Any:
        if not self.alive:
            raise ToolError(f"language server {self.name} stopped; the next call restarts it")
        try:
            async with asyncio.timeout(timeout):
                return await self.client.protocol.send_request_async(method, params)
        except TimeoutError:
            raise ToolError(
                f"language server {self.name} gave no answer within {timeout:g} s"
            ) from None
        except RuntimeError as exc:  # the process exited with the request pending
            raise ToolError(f"language server {self.name} failed: {exc}") from None
        except Exception as exc:  # an error response (JsonRpcException and kin)
            raise ToolError(f"language server {self.name} answered with an error: {exc}") from None

    def sync(self, path: Path, text: str) -> tuple[str, int, bool]:
        """Send ``path``'s current text; returns (uri, version, changed)."""
        uri = from_fs_path(str(path)) or path.as_uri()
        document = self._documents.get(uri)
        if document is None:
            self._documents[uri] = _Document(1, text)
            self._forget(uri)
            self.client.text_document_did_open(
                lsp.DidOpenTextDocumentParams(
                    text_document=lsp.TextDocumentItem(
                        uri=uri, language_id=language_id(path, self.spec), version=1, text=text
                    )
                )
            )
            return uri, 1, True
        if document.text == text:
            return uri, document.version, False
        document.version += 1
        document.text = text
        self._forget(uri)
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(
                    uri=uri, version=document.version
                ),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return uri, document.version, True

    async def diagnostics(self, uri: str, version: int, wait: float) -> list[lsp.Diagnostic] | None:
        """The diagnostics for ``uri`` at ``version`` or later; None if none came in time."""
        entry = self._diagnostics.setdefault(uri, _Diagnostics())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not (entry.arrived.is_set() and (entry.version is None or entry.version >= version)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            entry.arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await entry.arrived.wait()
            except TimeoutError:
                return None
        return list(entry.items)

    def _forget(self, uri: str) -> None:
        self._diagnostics[uri] = _Diagnostics()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.alive:
                async with asyncio.timeout(3):
                    await self.client.shutdown_async(None)
                self.client.exit(None)
        process = self.client._server
        if process is not None and process.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await process.wait()
            if process.returncode is None:
                process.kill()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await self.client.stop()
        if self._drain is not None:
            self._drain.cancel()


async def _drain(stream: asyncio.StreamReader, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # noqa: ASYNC230 - small appends of a server's stderr
        while chunk := await stream.read(65536):
            # A server may echo what it read (a secret in a file): the log keeps none.
            out.write(scrub(chunk.decode("utf-8", "replace")).encode())
            out.flush()


_CAPABILITIES = lsp.ClientCapabilities(
    workspace=lsp.WorkspaceClientCapabilities(
        workspace_edit=lsp.WorkspaceEditClientCapabilities(document_changes=True),
        configuration=True,
        workspace_folders=True,
    ),
    text_document=lsp.TextDocumentClientCapabilities(
        synchronization=lsp.TextDocumentSyncClientCapabilities(did_save=False),
        publish_diagnostics=lsp.PublishDiagnosticsClientCapabilities(version_support=True),
        definition=lsp.DefinitionClientCapabilities(link_support=False),
        references=lsp.ReferenceClientCapabilities(),
        hover=lsp.HoverClientCapabilities(
            content_format=[lsp.MarkupKind.Markdown, lsp.MarkupKind.PlainText]
        ),
        document_symbol=lsp.DocumentSymbolClientCapabilities(
            hierarchical_document_symbol_support=True
        ),
        rename=lsp.RenameClientCapabilities(prepare_support=False),
    ),
)
