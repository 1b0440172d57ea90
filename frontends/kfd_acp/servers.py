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
    """The editor's servers as kfd's; `ServersRefused` for one it cannot run.

    Each server is the library's model or, before the library is loaded
    (`kfd_acp.early`), ACP's JSON: the field names are the same.
    """
    converted: list[p.McpServer] = []
    taken: set[str] = set()
    for server in servers or []:
        label = str(_field(server, "name") or "")
        transport = _field(server, "type") or "stdio"
        name = kfd_name(label, taken)
        taken.add(name)
        if transport == "http":
            converted.append(
                p.McpServer(
                    name=name,
                    url=str(_field(server, "url")),
                    headers=_table(_field(server, "headers")),
                )
            )
        elif transport == "stdio":
            converted.append(
                p.McpServer(
                    name=name,
                    command=str(_field(server, "command")),
                    args=[str(arg) for arg in _field(server, "args") or []],
                    env=_table(_field(server, "env")),
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
    return {str(_field(pair, "name")): str(_field(pair, "value")) for pair in pairs or []}


def _field(item: Any, name: str) -> Any:
    """A field of the library's model or of ACP's JSON object (None when absent)."""
    if isinstance(item, dict):
        return item.get(name)
    return getattr(item, name, None)
