"""The MCP servers an editor passes (``mcpServers``) as kfd's (pure).

ACP names a server for people ("GitHub tools"); kfd names its tools
``mcp__<server>__<tool>``, so each name becomes 1-32 letters, digits, ``_``
or ``-``, unique among the session's servers. ACP's lists of environment
variables and headers become tables. SSE servers (and the unstable ``acp``
transport) are refused: ``initialize`` does not offer them.
"""

from __future__ import annotations

import re
from typing import Any

from kfd import protocol as p

NAME_CHARS = 32
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class ServersRefused(ValueError):
    """An ``mcpServers`` entry kfd cannot run (the message says which and why)."""


def as_kfd_servers(servers: list[Any] | None) -> list[p.McpServer]:
    """The editor's servers as kfd's; `ServersRefused` for one it cannot run."""
    converted: list[p.McpServer] = []
    taken: set[str] = set()
    for server in servers or []:
        label = str(getattr(server, "name", "") or "")
        transport = getattr(server, "type", None) or "stdio"
        name = kfd_name(label, taken)
        taken.add(name)
        if transport == "http":
            converted.append(
                p.McpServer(name=name, url=str(server.url), headers=_table(server.headers))
            )
        elif transport == "stdio":
            converted.append(
                p.McpServer(
                    name=name,
                    command=str(server.command),
                    args=[str(arg) for arg in server.args or []],
                    env=_table(server.env),
                )
            )
        else:
            raise ServersRefused(
                f"MCP server {label!r}: kfd takes stdio and HTTP servers, not {transport} "
                "(initialize says mcpCapabilities.sse: false)"
            )
    return converted


def kfd_name(label: str, taken: set[str]) -> str:
    """A kfd server name for ACP's ``label``, not in ``taken``."""
    base = _NOT_NAME.sub("_", label.strip()).strip("_")[:NAME_CHARS] or "server"
    name, number = base, 1
    while name in taken:
        number += 1
        suffix = f"_{number}"
        name = base[: NAME_CHARS - len(suffix)] + suffix
    return name


def _table(pairs: Any) -> dict[str, str]:
    """ACP's ``[{name, value}]`` as a table (a name given twice: the last wins)."""
    return {str(pair.name): str(pair.value) for pair in pairs or []}
