"""``[mcp.servers.<name>]``: how each MCP server is reached, validated here.

Exactly one of ``command`` (a program speaking MCP over stdio) or ``url``
(a streamable-HTTP endpoint) per server (and ``editor_network``, for the
servers an editor supplies: `kfd_mcp.session`)::

    [mcp.servers.time]
    command = "mcp-server-time"
    args = ["--local-timezone", "Europe/Paris"]
    env = { TZ = "Europe/Paris" }

    [mcp.servers.tracker]
    url = "https://mcp.example.org/mcp"
    headers = { Authorization = "Bearer ${TRACKER_TOKEN}" }   # ${VAR}: from the environment
    defer = false        # always list its tools in full (default: past the first
                         # [context] defer_tools_after MCP tools, found with tool_search)

    [mcp]
    editor_network = true   # editors' stdio servers may reach the network (default: not)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One MCP server."""

    command: str = ""
    args: list[str] = msgspec.field(default_factory=list)
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str = ""
    url: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    enabled: bool = True
    startup_timeout_s: float = 30.0
    """Longest wait for the server to start and list its tools."""
    call_timeout_s: float = 120.0
    """Longest wait for one tool call; a server that takes longer is restarted."""
    defer: bool = True
    """Its tools may be left out of the model's list when many tools are offered
    (found with ``tool_search``); false lists every tool of this server in full."""


class ConfigError(Exception):
    """A server's table is wrong; the message names the key."""


TOP_KEYS = frozenset({"servers", "editor_network"})


def parse_servers(mcp: Mapping[str, Any]) -> tuple[dict[str, ServerConfig], dict[str, str]]:
    """Valid servers by name, and the error of each invalid one."""
    servers: dict[str, ServerConfig] = {}
    errors: dict[str, str] = {}
    unknown = sorted(set(mcp) - TOP_KEYS)
    if unknown:
        errors["[mcp]"] = f"[mcp]: unknown keys {unknown}; servers go in [mcp.servers.<name>]"
    if not isinstance(mcp.get("editor_network", False), bool):
        errors["[mcp]"] = "[mcp] editor_network must be true or false"
    tables = mcp.get("servers", {})
    if not isinstance(tables, Mapping):
        errors["[mcp]"] = "[mcp] servers must be tables: [mcp.servers.<name>]"
        return servers, errors
    for name, table in tables.items():
        try:
            servers[name] = _server(name, table)
        except ConfigError as exc:
            errors[name] = str(exc)
    return servers, errors


def _server(name: str, table: Any) -> ServerConfig:
    where = f"[mcp.servers.{name}]"
    if not NAME.match(name):
        raise ConfigError(f"{where}: a server name is 1-32 letters, digits, '_' or '-'")
    try:
        server = msgspec.convert(table, ServerConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if bool(server.command) == bool(server.url):
        raise ConfigError(f"{where}: set exactly one of `command` (stdio) or `url` (HTTP)")
    if server.url and not server.url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: url must start with http:// or https://")
    return server


def expand(value: str, environ: Mapping[str, str] = os.environ) -> str:
    """``${VAR}`` replaced by the environment's value (secrets stay out of the file)."""
    return _VARIABLE.sub(lambda match: environ.get(match.group(1), ""), value)
