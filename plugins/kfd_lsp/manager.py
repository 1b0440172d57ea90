"""The language servers of the daemon: one per (workspace, server), started on first use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfd.api import (
    NotBeneath,
    Sandbox,
    ToolError,
    command_environment,
    confine,
    open_beneath,
    probe_sandbox,
)

from .availability import Availability
from .servers import LspSettings, read_settings, server_for, servers

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Files larger than this are not sent to a language server."""

if TYPE_CHECKING:
    from lsprotocol import types as lsp

    from .connection import Connection


def log_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "kfd"


@dataclass(frozen=True, slots=True)
class Synced:
    """A file as the server now knows it."""

    connection: Connection
    uri: str
    version: int
    changed: bool
    text: str


class LspManager:
    """Starts, finds and stops the language servers."""

    def __init__(self, tools_config: Mapping[str, Any]) -> None:
        self.tools_config = tools_config
        self._connections: dict[tuple[Path, str], Connection] = {}
        self._locks: dict[tuple[Path, str], asyncio.Lock] = {}
        self.availability = Availability()

    def settings(self) -> LspSettings:
        return read_settings(self.tools_config)

    def follow(self, table: Mapping[str, Any]) -> None:
        """Use ``[tools.lsp]`` as it stands now (the daemon reloads the config
        live; the ``lsp`` tool is given the table before every request)."""
        if self.tools_config.get("lsp") != table:
            self.tools_config = {**self.tools_config, "lsp": table}

    async def unavailable(self, workspace: Path) -> str | None:
        """Why no language server can work in ``workspace`` (None: one can)."""
        try:
            settings = self.settings()
        except ToolError as exc:
            return str(exc)
        return await self.availability.unavailable(workspace, settings)

    def wrote(self, workspace: Path, path: Path) -> None:
        """kfd wrote ``path``: a first file of a language may make the tools work."""
        with contextlib.suppress(ToolError):  # a broken [tools.lsp] has no tools to offer
            self.availability.wrote(workspace, path, self.settings())

    def handles(self, path: Path) -> bool:
        """Whether some installed server takes this kind of file."""
        return server_for(path, servers(self.settings())) is not None

    async def connection(
        self, workspace: Path, path: Path, sandbox: Sandbox | None = None
    ) -> Connection:
        """The running server for ``path``'s kind of file in ``workspace``, started
        confined as ``sandbox`` says (read-only workspace, no network) if needed."""
        sandbox = Sandbox() if sandbox is None else sandbox
        settings = self.settings()
        available = servers(settings)
        found = server_for(path, available)
        if found is None:
            kinds = ", ".join(sorted({e for s in available.values() for e in s.extensions}))
            raise ToolError(
                f"no language server handles {path.suffix or 'files without an extension'}"
                + (f" (installed ones take: {kinds})" if kinds else " (none is installed)")
                + "; add one as [tools.lsp.servers.<name>] in the kfd config"
            )
        from .connection import Connection  # pygls: imported when a server first starts

        name, spec = found
        key = (workspace, name)
        async with self._locks.setdefault(key, asyncio.Lock()):
            existing = self._connections.get(key)
            if existing is not None and existing.alive and existing.spec == spec:
                return existing
            if existing is not None:
                await existing.stop()
            log = log_dir() / f"lsp-{name}.log"
            connection = Connection(name, spec, workspace, log)
            prefix, env = await _confinement(workspace, sandbox, spec.command)
            await connection.start(settings.startup_timeout_s, prefix=prefix, env=env)
            self._connections[key] = connection
            return connection

    async def sync(self, workspace: Path, path: Path, sandbox: Sandbox | None = None) -> Synced:
        """Start the file's server if needed and send it the file as it is on disk."""
        text = await asyncio.to_thread(read_text, workspace, path)
        connection = await self.connection(workspace, path, sandbox)
        uri, version, changed = connection.sync(path, text)
        return Synced(connection, uri, version, changed, text)

    async def diagnostics(
        self, workspace: Path, path: Path, sandbox: Sandbox | None = None
    ) -> tuple[str, list[lsp.Diagnostic] | None]:
        """The file's text as the server has it, and its diagnostics as of now (None:
        the server said nothing in time)."""
        synced = await self.sync(workspace, path, sandbox)
        wait = self.settings().diagnostics_wait_s
        return synced.text, await synced.connection.diagnostics(synced.uri, synced.version, wait)

    def status(self) -> dict[str, Any]:
        return {
            "servers": [
                {"workspace": str(root), "server": name, "alive": connection.alive}
                for (root, name), connection in self._connections.items()
            ]
        }

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.stop() for c in connections), return_exceptions=True)


async def _confinement(
    workspace: Path, sandbox: Sandbox, command: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """The sandbox prefix and environment of a language server.

    A server reads the workspace and may run what it finds there (a
    project's Python to learn its paths, its own TypeScript): it runs
    confined, with the workspace read-only. Unconfined only with
    ``[sandbox] enabled = false``.
    """
    if not sandbox.enabled:
        return [], command_environment(sandbox)
    problem = await probe_sandbox()
    if problem is not None:
        raise ToolError(
            f"the language server cannot be confined: {problem}; it would run the "
            "workspace's code unconfined. Install bubblewrap, or set [sandbox] "
            "enabled = false to accept that"
        )
    found = shutil.which(command[0]) if command else None
    program = [found] if found else []
    confinement = await confine(workspace, sandbox, writable=False, program=program)
    return confinement.prefix, confinement.env


def read_text(workspace: Path, path: Path) -> str:
    """``path`` as text, reached without following a link (blocking)."""
    try:
        with open_beneath(workspace, path) as target:
            found = target.read(MAX_FILE_BYTES)
    except NotBeneath as exc:
        raise ToolError(str(exc)) from None
    except IsADirectoryError:
        raise ToolError(f"{path} is a directory") from None
    except (OSError, ValueError) as exc:
        raise ToolError(f"cannot read {path}: {exc}") from None
    if found is None:
        raise ToolError(f"{path} does not exist")
    data, info = found
    if info.st_size > MAX_FILE_BYTES:
        raise ToolError(f"{path} is too large for the language server ({info.st_size:,} bytes)")
    if info.st_nlink > 1:
        raise ToolError(f"{path} has {info.st_nlink} hard links; read it with the read tool first")
    return data.decode("utf-8", "replace")
