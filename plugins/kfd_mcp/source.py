"""The MCP servers of the config as one tool source, with their status."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kfd.api import Tool

from .config import parse_servers
from .server import McpServer, ServerError
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
    """Every configured server; `tools` starts the ones never started (lazily, concurrently)."""

    name = "mcp"

    def __init__(self, mcp: Mapping[str, Any]) -> None:
        configs, self.errors = parse_servers(mcp)
        logs = state_dir()
        self.servers = {
            name: McpServer(name, config, logs)
            for name, config in configs.items()
            if config.enabled
        }
        self.disabled = sorted(name for name, config in configs.items() if not config.enabled)
        self._files = cache_dir()
        self._tools: dict[str, tuple[int, list[Tool[Any]]]] = {}

    async def tools(self) -> Sequence[Tool[Any]]:
        due = [server for server in self.servers.values() if server.due_for_start()]
        if due:
            await asyncio.gather(*(self._start(server) for server in due))
        offered: list[Tool[Any]] = []
        for server in self.servers.values():
            offered.extend(self._tools_of(server))
        return offered

    async def _start(self, server: McpServer) -> None:
        # A failure is recorded in the server's status; its tools stay unlisted.
        with contextlib.suppress(ServerError):
            await server.ensure()

    def _tools_of(self, server: McpServer) -> list[Tool[Any]]:
        """The server's tools as last listed (kept while it is down: a call restarts it)."""
        cached = self._tools.get(server.name)
        if cached is not None and cached[0] == server.starts:
            return cached[1]
        tools: list[Tool[Any]] = [McpTool(server, spec, self._files) for spec in server.tools]
        self._tools[server.name] = (server.starts, tools)
        return tools

    def status(self) -> dict[str, Any]:
        """What ``kfd mcp list`` shows."""
        servers = []
        for name, server in self.servers.items():
            servers.append(
                {
                    "name": name,
                    "transport": server.transport,
                    "status": server.status,
                    "error": server.error,
                    "starts": server.starts,
                    "tools": [tool_spec.name for tool_spec in server.tools],
                    "log": str(server.log_path) if server.transport == "stdio" else "",
                }
            )
        for name in self.disabled:
            servers.append({"name": name, "status": "disabled", "tools": []})
        for name, error in self.errors.items():
            servers.append({"name": name, "status": "config error", "error": error, "tools": []})
        return {"servers": servers}

    async def close(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers.values()))
