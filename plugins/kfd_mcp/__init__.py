"""kfd_mcp: the tools of MCP servers, as ``mcp__<server>__<tool>``.

Servers are declared in the config's ``[mcp.servers.<name>]`` tables (see
`kfd_mcp.config`), started on first use -- the first model request after
the daemon starts lists their tools -- and restarted on the next use after a
crash or a timeout. An editor may supply servers for one of its sessions
(ACP's ``mcpServers``): they run for that session only, a stdio one in kfd's
sandbox (`McpSource.session_tools`). Calls are asked for by default (the tools are not
read-only); "allow for this session" allows one tool. Results are untrusted:
text is passed on, images and binary resources are saved under
``$XDG_CACHE_HOME/kfd/mcp/`` and named. ``kfd mcp list`` shows each server's
status and tools (through `kfd_status`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import hookimpl

from .source import McpSource
from .tool import McpTool, tool_name

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from kfd.api import ToolSource

__all__ = ["McpSource", "McpTool", "kfd_shutdown", "kfd_status", "kfd_tool_sources", "tool_name"]

_source: McpSource | None = None
"""The daemon's servers (a plugin module is loaded once per daemon)."""


@hookimpl
def kfd_tool_sources(config: Mapping[str, Any]) -> list[ToolSource]:
    """The servers of ``[mcp]``, and those editors supply: always one source, since
    an editor may bring servers when none is configured. Nothing starts until
    their tools are first asked for."""
    global _source
    _source = McpSource(config.get("mcp") or {})
    return [_source]


@hookimpl
def kfd_status() -> Mapping[str, Any] | None:
    """Each server: transport, status, last error, tools."""
    return _source.status() if _source is not None else None


@hookimpl
def kfd_shutdown() -> Coroutine[Any, Any, None] | None:
    """Stop every server."""
    return _source.close() if _source is not None else None
