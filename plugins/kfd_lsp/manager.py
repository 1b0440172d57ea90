"""The language servers of the daemon: one per (workspace, server), started on first use."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfd.api import ToolError

from .availability import Availability
from .servers import LspSettings, read_settings, server_for, servers

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

    async def connection(self, workspace: Path, path: Path) -> Connection:
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
            await connection.start(settings.startup_timeout_s)
            self._connections[key] = connection
            return connection

    async def sync(self, workspace: Path, path: Path) -> Synced:
        """Start the file's server if needed and send it the file as it is on disk."""
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise ToolError(f"{path} does not exist") from None
        except OSError as exc:
            raise ToolError(f"cannot read {path}: {exc.strerror}") from None
        connection = await self.connection(workspace, path)
        uri, version, changed = connection.sync(path, text)
        return Synced(connection, uri, version, changed, text)

    async def diagnostics(self, workspace: Path, path: Path) -> list[lsp.Diagnostic] | None:
        """The file's diagnostics as of now (None: the server said nothing in time)."""
        synced = await self.sync(workspace, path)
        wait = self.settings().diagnostics_wait_s
        return await synced.connection.diagnostics(synced.uri, synced.version, wait)

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
