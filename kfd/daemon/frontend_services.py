"""What a frontend lends a session: MCP servers, and its view of the files.

- ``session.mcp_servers``: the MCP servers an editor passes for a session
  (ACP's ``mcpServers``). They are kept per session and per frontend, in
  memory only (their ``env`` and ``headers`` may hold tokens, which are
  learned as secrets and redacted from everything kept or shown), and
  withdrawn when that frontend supplies others or leaves the bus. The
  registry offers their tools to that session (`kfd.agent.tools`); the tool
  sources start them confined (`kfd.api.SessionToolSource`).
- ``files.serve`` and ``files.answer``: a frontend serving the session's
  file reads and writes (`kfd.daemon.file_delegates`).

`check_servers` and `secrets_of` are pure; `ServerSupply` is the bookkeeping.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kfd import redact
from kfd.api import Sandbox, SuppliedServers
from kfd.errors import RequestError
from kfd.protocol import Empty, FilesAnswer, FilesServe, McpServer, SessionMcpServers

if TYPE_CHECKING:
    from kfd.agent.tools import ToolRegistry
    from kfd.daemon.file_delegates import FileDelegates
    from kfd.daemon.ports import DaemonPort

log = logging.getLogger(__name__)

MAX_SERVERS = 32
"""Servers one frontend may supply for one session."""

MAX_ARGS = 256
MAX_TEXT = 8192
"""Characters of a command, an argument, a URL or a value, at most."""

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
"""An HTTP header name (RFC 9110's token)."""


def check_servers(servers: Sequence[McpServer]) -> str | None:
    """What is wrong with ``servers`` (for the frontend to fix), or None."""
    if len(servers) > MAX_SERVERS:
        return f"at most {MAX_SERVERS} MCP servers per session, not {len(servers)}"
    seen: set[str] = set()
    for server in servers:
        where = f"MCP server {server.name!r}"
        if not SERVER_NAME.match(server.name):
            return f"{where}: a name is 1-32 letters, digits, '_' or '-'"
        if server.name in seen:
            return f"{where} is given twice"
        seen.add(server.name)
        if bool(server.command) == bool(server.url):
            return f"{where}: give exactly one of `command` (stdio) or `url` (HTTP)"
        if server.url and not server.url.startswith(("http://", "https://")):
            return f"{where}: the url must start with http:// or https://"
        if server.url and (server.args or server.env):
            return f"{where}: `args` and `env` go with `command`, not `url`"
        if server.command and server.headers:
            return f"{where}: `headers` go with `url`, not `command`"
        if len(server.args) > MAX_ARGS:
            return f"{where}: at most {MAX_ARGS} arguments"
        texts = [server.command, server.url, *server.args, *server.env.values()]
        texts += server.headers.values()
        if any(len(text) > MAX_TEXT or "\x00" in text for text in texts):
            return f"{where}: a value is longer than {MAX_TEXT} characters or holds a NUL"
        bad = next((name for name in server.env if not VARIABLE.match(name)), None)
        if bad is not None:
            return f"{where}: {bad!r} is not an environment variable name"
        bad = next((name for name in server.headers if not HEADER.match(name)), None)
        if bad is not None:
            return f"{where}: {bad!r} is not an HTTP header name"
    return None


def secrets_of(servers: Sequence[McpServer]) -> dict[str, str]:
    """The values in ``servers`` that may be secrets, labelled for redaction: every
    header value (and the token of ``Bearer <token>``), and the environment values
    that could be secrets (`kfd.redact.plausible`, more readily for secret names)."""
    found: dict[str, str] = {}
    for server in servers:
        for name, value in server.headers.items():
            label = f"mcp {server.name} header {name}"
            scheme, _, token = value.partition(" ")
            for candidate in (value, token if scheme and token else ""):
                if redact.plausible(candidate, named=True):
                    found[label] = candidate
        for name, value in server.env.items():
            if redact.plausible(value, named=redact.looks_secret(name)):
                found[f"mcp {server.name} ${name}"] = value
    return found


class ServerSupply:
    """The MCP servers each frontend supplied for each session, while it is connected."""

    def __init__(self, registry: ToolRegistry, sandbox: Callable[[], Sandbox]) -> None:
        self._registry = registry
        self._sandbox = sandbox
        self._supplied: dict[str, dict[str, tuple[McpServer, ...]]] = {}
        """Session -> frontend -> its servers, in the order supplied."""
        self._workspaces: dict[str, Path] = {}

    async def supply(
        self, session_id: str, workspace: Path, client: str, servers: Sequence[McpServer]
    ) -> None:
        """``client``'s servers for the session, replacing what it supplied before."""
        problem = check_servers(servers)
        if problem is not None:
            raise RequestError("bad_request", problem)
        redact.learn_secrets(secrets_of(servers))
        by_client = self._supplied.setdefault(session_id, {})
        by_client.pop(client, None)  # the latest supplier's come last, and win a name
        if servers:
            by_client[client] = tuple(servers)
        self._workspaces[session_id] = workspace
        await self._offer(session_id)

    async def gone(self, client: str) -> None:
        """``client`` left the bus: the servers it supplied stop."""
        for session_id in [s for s, by in self._supplied.items() if client in by]:
            del self._supplied[session_id][client]
            await self._offer(session_id)

    async def _offer(self, session_id: str) -> None:
        by_client = self._supplied.get(session_id, {})
        merged: dict[str, McpServer] = {}
        for servers in by_client.values():
            merged.update((server.name, server) for server in servers)
        if not by_client:
            self._supplied.pop(session_id, None)
            workspace = self._workspaces.pop(session_id, Path("/"))
        else:
            workspace = self._workspaces[session_id]
        supplied = SuppliedServers(
            session_id=session_id,
            workspace=workspace,
            servers=tuple(merged.values()),
            sandbox=self._sandbox(),
        )
        log.info(
            "session %s: MCP servers supplied by frontends: %s",
            session_id,
            ", ".join(merged) or "none",
        )
        await self._registry.supply(supplied)


async def answer(
    daemon: DaemonPort,
    supply: ServerSupply,
    files: FileDelegates,
    request: SessionMcpServers | FilesServe | FilesAnswer,
    client: str,
    identity: bytes,
) -> Empty:
    """Answer ``session.mcp_servers``, ``files.serve`` and ``files.answer``."""
    match request:
        case SessionMcpServers():
            session = await daemon.sessions.get(request.session)
            await supply.supply(session.id, Path(session.info.cwd), client, request.servers)
        case FilesServe():
            session = await daemon.sessions.get(request.session)
            files.serve(
                FilesServe(
                    id=request.id,
                    session=session.id,
                    read=request.read,
                    write=request.write,
                    timeout_s=request.timeout_s,
                ),
                client,
                identity,
            )
        case FilesAnswer():
            files.answer(request, client)
    return Empty()
