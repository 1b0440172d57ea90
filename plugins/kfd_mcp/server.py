"""One MCP server's life: started on first use, restarted on the next use after a crash.

The official SDK's client is an async context manager whose task groups must
be entered and left by the same task, so each server has an owner task that
holds the connection open until told to stop; tool calls from any session
use the connection meanwhile. A call that finds the server dead, or that
times out, stops the server and reports it; the next use starts it again.

A server an editor supplied for one session (`Supplied`) is taken as given:
its values are literal (no ``${VAR}`` from the daemon's environment), and a
stdio one runs confined (`kfd.api.confine`: kfd's sandbox, in the session's
workspace, without network unless ``[mcp] editor_network``), as the
language servers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from kfd.api import Sandbox, command_environment, confine, probe_sandbox, scrub

from .config import ServerConfig, expand

if TYPE_CHECKING:
    import mcp_types as types
    from mcp import Client

# The SDK (pydantic, anyio, two HTTP clients) costs seconds to import: it is
# imported when the first server starts, not when the daemon does.

Status = Literal["not started", "starting", "ready", "failed", "crashed", "stopped"]

STOP_TIMEOUT_S = 5.0
PUMP_DRAIN_S = 1.0
"""How long the last words of a server that failed to start may take to reach its log."""
MAX_TOOL_PAGES = 50
RETRY_FAILED_START_S = 60.0
"""A server that failed to start is not tried again by a tool listing before this."""
CLIENT_NAME = "kfd"


class ServerError(Exception):
    """The server cannot serve now; the message says why and what happens next."""


@dataclass(frozen=True, slots=True)
class Supplied:
    """A server an editor supplied for one session: where and how it runs."""

    session_id: str
    workspace: Path
    """The session's workspace: the server's working directory, in the sandbox."""
    sandbox: Sandbox
    network: bool
    """Its sandbox lets it reach the network (``[mcp] editor_network``)."""


class McpServer:
    """One configured (or supplied) server and its connection, if any."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        log_dir: Path,
        *,
        supplied: Supplied | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.supplied = supplied
        label = f"{name}-{supplied.session_id}" if supplied is not None else name
        self.log_path = log_dir / f"mcp-{label}.log"
        self.status: Status = "not started"
        self.error = ""
        self._http_refusal = ""
        self.tools: list[types.Tool] = []
        self.starts = 0
        self._failed_at = 0.0
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._pump: threading.Thread | None = None
        self._lock = asyncio.Lock()

    @property
    def transport(self) -> str:
        return "http" if self.config.url else "stdio"

    def due_for_start(self) -> bool:
        """Whether a tool listing should (re)start it: never started, or failed long ago."""
        if self.status == "not started":
            return True
        return self.status == "failed" and time.monotonic() - self._failed_at > RETRY_FAILED_START_S

    async def ensure(self) -> Client:
        """The live connection, starting the server if it is not running."""
        async with self._lock:
            if self.status == "ready" and self._client is not None and not self._finished():
                return self._client
            await self._halt()
            return await self._start()

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call a tool; a crash or a timeout stops the server (restarted on next use)."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        client = await self.ensure()
        timeout = self.config.call_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await client.call_tool(tool, arguments)
        except TimeoutError:
            await self.stop("crashed", f"`{tool}` did not answer within {timeout:g} s")
            raise ServerError(
                f"MCP server `{self.name}` did not answer `{tool}` within {timeout:g} s; it was "
                "stopped and starts again on next use"
            ) from None
        except MCPError as exc:
            if exc.error.code != CONNECTION_CLOSED and not self._finished():
                raise ServerError(f"MCP server `{self.name}` refused `{tool}`: {exc}") from None
            reason = await self._last_words()
            await self.stop(
                "crashed", f"exited during `{tool}`" + (f": {reason}" if reason else "")
            )
            raise ServerError(
                f"MCP server `{self.name}` exited during `{tool}`"
                + (f" ({reason})" if reason else "")
                + "; side effects unknown. It starts again on next use."
            ) from None

    async def stop(self, status: Status = "stopped", error: str = "") -> None:
        async with self._lock:
            await self._halt()
            self.status, self.error = status, error

    # -- the owner task --------------------------------------------------------

    async def _start(self) -> Client:
        self.status, self.error = "starting", ""
        self.starts += 1
        self._stop = asyncio.Event()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(ready), name=f"mcp:{self.name}")
        timeout = self.config.startup_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(ready)
        except TimeoutError:
            await self._halt()
            self._fail(f"did not start within {timeout:g} s")
        except Exception as exc:
            await self._halt()
            detail = self._http_refusal or await self._last_words()
            self._fail(f"{_describe(exc)}" + (f" ({detail})" if detail else ""))
        assert self._client is not None
        self.status = "ready"
        return self._client

    def _fail(self, reason: str) -> None:
        self.status, self.error = "failed", reason
        self._failed_at = time.monotonic()
        raise ServerError(f"MCP server `{self.name}` failed to start: {reason}")

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self._connect() as client:
                self.tools = await _list_tools(client)
                self._client = client
                ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not self._stop.is_set():
                self.status, self.error = "crashed", _describe(exc)
        finally:
            self._client = None
            if not ready.done():
                ready.set_exception(ServerError("the connection ended before it was ready"))
            if self.status == "ready" and not self._stop.is_set():
                words = await self._last_words()
                self.status, self.error = "crashed", words or "the server exited"

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Client]:
        import httpx2
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp_types import Implementation

        info = Implementation(name=CLIENT_NAME, version="1")
        config = self.config
        # An editor's values are literal: ${VAR} must not read the daemon's environment.
        value = (lambda text: text) if self.supplied is not None else expand
        if config.url:
            headers = {key: value(text) for key, text in config.headers.items()}
            self._http_refusal = ""

            async def note_refusal(response: httpx2.Response) -> None:
                # The SDK reports only "an error response"; the status says what to fix.
                if response.status_code >= 400 and not self._http_refusal:
                    self._http_refusal = (
                        f"HTTP {response.status_code} {response.reason_phrase} from "
                        f"{response.request.url}: check the server's url and headers"
                    )

            hooks = {"response": [note_refusal]}
            async with (
                httpx2.AsyncClient(
                    headers=headers, timeout=config.call_timeout_s, event_hooks=hooks
                ) as http,
                Client(
                    streamable_http_client(value(config.url), http_client=http),
                    client_info=info,
                ) as client,
            ):
                yield client
            return
        if self.supplied is not None:
            params, finish = await self._confined(self.supplied, StdioServerParameters)
        else:
            finish = None
            params = StdioServerParameters(
                command=config.command,
                args=config.args,
                env={key: expand(text) for key, text in config.env.items()} or None,
                cwd=os.path.expanduser(config.cwd) if config.cwd else None,
            )
        try:
            with self._log() as log:
                async with Client(stdio_client(params, errlog=log), client_info=info) as client:
                    yield client
        finally:
            if finish is not None:
                await finish()

    async def _confined(self, supplied: Supplied, parameters: Any) -> tuple[Any, Any]:
        """The stdio parameters of a supplied server, in the sandbox (the language
        servers' way), and what to await once it ended (None: nothing)."""
        config = self.config
        sandbox = supplied.sandbox
        if not sandbox.enabled:
            prefix: list[str] = []
            env = command_environment(sandbox)
            finish = None
        else:
            problem = await probe_sandbox(network=supplied.network)
            if problem is not None:
                raise ServerError(
                    f"it cannot be confined: {problem}; install bubblewrap, or set [sandbox] "
                    "enabled = false to run the MCP servers editors supply unconfined"
                )
            found = shutil.which(config.command, path=os.environ.get("PATH", os.defpath))
            program = [p for p in (found, *config.args) if p and os.path.isabs(p)]
            confinement = await confine(
                supplied.workspace, sandbox, network=supplied.network, program=program
            )
            prefix, env, finish = confinement.prefix, dict(confinement.env), confinement.finish
        env.update(config.env)  # what the editor gave the server, and only that, on top
        if shutil.which(config.command, path=env.get("PATH", os.defpath)) is None:
            # Confined, a missing program would only show as the sandbox exiting.
            raise ServerError(f"command not found: {config.command}")
        command = [*prefix, config.command, *config.args]
        params = parameters(
            command=command[0], args=command[1:], env=env, cwd=str(supplied.workspace)
        )
        return params, finish

    @contextlib.contextmanager
    def _log(self) -> Iterator[IO[str]]:
        """Where the server's stderr goes: a pipe whose lines reach the log file
        scrubbed (`kfd.api.scrub`), so a server that prints a secret leaves none."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"--- start {self.starts} at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
        read_fd, write_fd = os.pipe()
        pump = threading.Thread(target=_scrub_into, args=(read_fd, self.log_path), daemon=True)
        pump.start()
        self._pump = pump
        with os.fdopen(write_fd, "w", encoding="utf-8") as writer:
            yield writer
        # The server holds its own copy of the pipe: the pump ends when it exits.

    def _finished(self) -> bool:
        return self._task is None or self._task.done()

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.shield(task)
        except (TimeoutError, Exception):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._client = None

    async def _last_words(self) -> str:
        """`_last_log_line` once the server's stderr is all in its log: a server that
        failed to start has exited, and its last line may still be in the pump."""
        pump = self._pump
        if pump is not None:
            await asyncio.to_thread(pump.join, PUMP_DRAIN_S)
        return self._last_log_line()

    def _last_log_line(self) -> str:
        """The server's last words on stderr, for the error message."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 2048))
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        words = [line.strip() for line in lines if line.strip() and not line.startswith("---")]
        return words[-1][:300] if words else ""


def _scrub_into(read_fd: int, log_path: Path) -> None:
    """Copy a server's stderr to its log a line at a time, scrubbed (in a thread)."""
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(scrub(line))


async def _list_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        listed = await client.list_tools(cursor=cursor)
        tools.extend(listed.tools)
        cursor = listed.next_cursor
        if not cursor:
            break
    return tools


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    if isinstance(exc, ServerError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
