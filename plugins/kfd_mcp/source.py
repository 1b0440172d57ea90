"""The MCP servers of the config as one tool source, with their status; and the
servers editors supply for one session (`kfd.api.SessionToolSource`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kfd.api import McpServer as Spec
from kfd.api import SuppliedServers, Tool

from .config import ServerConfig, parse_servers
from .server import McpServer, ServerError, Supplied
from .tool import McpTool


def state_dir() -> Path:
    """``$XDG_STATE_HOME/kfd``: where the servers' stderr logs go."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "kfd"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kfd/mcp``: images and blobs the servers returned."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "kfd" / "mcp"


class McpSource:
    """Every configured server; `tools` starts the ones never started (lazily, concurrently).

    The servers editors supply run per session (`session_tools`), under the
    same names and rules; a name the config already uses keeps the config's.
    """

    name = "mcp"

    def __init__(self, mcp: Mapping[str, Any]) -> None:
        configs, self.errors = parse_servers(mcp)
        self._logs = state_dir()
        self.servers = {
            name: McpServer(name, config, self._logs)
            for name, config in configs.items()
            if config.enabled
        }
        self.disabled = sorted(name for name, config in configs.items() if not config.enabled)
        self.editor_network = mcp.get("editor_network") is True
        self.supplied: dict[str, dict[str, McpServer]] = {}
        """Session -> name -> a server an editor supplied for it."""
        self._files = cache_dir()
        self._tools: dict[McpServer, tuple[int, list[Tool[Any]]]] = {}

    async def tools(self) -> Sequence[Tool[Any]]:
        due = [server for server in self.servers.values() if server.due_for_start()]
        if due:
            await asyncio.gather(*(self._start(server) for server in due))
        offered: list[Tool[Any]] = []
        for server in self.servers.values():
            offered.extend(self._tools_of(server))
        return offered

    async def session_tools(self, supplied: SuppliedServers) -> Sequence[Tool[Any]]:
        """The tools of the servers supplied for one session; those no longer
        supplied (or supplied differently) stop, new ones start."""
        running = self.supplied.setdefault(supplied.session_id, {})
        origin = Supplied(
            supplied.session_id, supplied.workspace, supplied.sandbox, self.editor_network
        )
        wanted = {spec.name: _config_of(spec) for spec in supplied.servers}
        for name in list(running):
            server = running[name]
            if wanted.get(name) != server.config or server.supplied != origin:
                del running[name]
                self._tools.pop(server, None)
                await server.stop()
        for name, config in wanted.items():
            if name not in running:
                running[name] = McpServer(name, config, self._logs, supplied=origin)
        due = [server for server in running.values() if server.due_for_start()]
        if due:
            await asyncio.gather(*(self._start(server) for server in due))
        return [tool for server in running.values() for tool in self._tools_of(server)]

    async def end_session(self, session_id: str) -> None:
        """Stop the servers supplied for a session."""
        running = self.supplied.pop(session_id, {})
        for server in running.values():
            self._tools.pop(server, None)
        await asyncio.gather(*(server.stop() for server in running.values()))

    async def _start(self, server: McpServer) -> None:
        # A failure is recorded in the server's status; its tools stay unlisted.
        with contextlib.suppress(ServerError):
            await server.ensure()

    def _tools_of(self, server: McpServer) -> list[Tool[Any]]:
        """The server's tools as last listed (kept while it is down: a call restarts it)."""
        cached = self._tools.get(server)
        if cached is not None and cached[0] == server.starts:
            return cached[1]
        tools: list[Tool[Any]] = [McpTool(server, spec, self._files) for spec in server.tools]
        self._tools[server] = (server.starts, tools)
        return tools

    def status(self) -> dict[str, Any]:
        """What ``kfd mcp list`` shows."""
        servers = [_listed(name, server) for name, server in self.servers.items()]
        for session_id, running in self.supplied.items():
            servers += [_listed(name, server, session_id) for name, server in running.items()]
        for name in self.disabled:
            servers.append({"name": name, "status": "disabled", "tools": []})
        for name, error in self.errors.items():
            servers.append({"name": name, "status": "config error", "error": error, "tools": []})
        return {"servers": servers}

    async def close(self) -> None:
        supplied = [server for running in self.supplied.values() for server in running.values()]
        await asyncio.gather(*(server.stop() for server in [*self.servers.values(), *supplied]))


def _listed(name: str, server: McpServer, session: str = "") -> dict[str, Any]:
    """One running server as ``kfd mcp list`` shows it (``session``: lent for it)."""
    return {
        "name": name,
        **({"session": session} if session else {}),
        "transport": server.transport,
        "status": server.status,
        "error": server.error,
        "starts": server.starts,
        "tools": [tool_spec.name for tool_spec in server.tools],
        "log": str(server.log_path) if server.transport == "stdio" else "",
    }


def _config_of(spec: Spec) -> ServerConfig:
    """A supplied server as the config's table would say it (its tools may be deferred)."""
    return ServerConfig(
        command=spec.command,
        args=list(spec.args),
        env=dict(spec.env),
        url=spec.url,
        headers=dict(spec.headers),
    )
