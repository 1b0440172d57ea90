"""The editor's first ``session/new``, answered while the ACP library still loads.

An editor shows the agent as ready once ``session/new`` is answered, and it
sends that request as soon as ``initialize`` is answered (which the fast
start does at once, `kfd_acp.startup`). Importing the ACP library takes
over a second of CPU; creating a session needs none of it: the daemon, the
kfd client and a few lines of JSON (`kfd_acp.capabilities`). So while the
library loads in a thread, the first message is read ahead and, when it is
a plain ``session/new`` (an absolute directory, no MCP servers), the session
is created (with the editor's MCP servers supplied, `kfd_acp.servers`) and the
answer written here. The agent then adopts the session
(`kfd_acp.agent.serve_editor`) as if it had answered itself: attached from
its start, its updates sent after the answer.

Anything else (another method, a bad directory or server list, a daemon that
cannot be reached) is left to the library, which answers it as it always
does: this is a shortcut, never a second implementation of the checks. The
one error answered here is the daemon refusing the servers of the session
just created, with the error the agent would give.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from kfd import protocol as p
from kfd.client import Client, ClientError, RequestFailed
from kfd_acp.capabilities import modes_state
from kfd_acp.servers import ServersRefused, as_kfd_servers
from kfd_acp.wire import INTERNAL_ERROR, INVALID_PARAMS, Wire, error_of

log = logging.getLogger("kfd_acp")


@dataclass(frozen=True, slots=True)
class EarlySession:
    """A session created and announced before the library ran; the agent adopts it."""

    client: Client
    info: p.SessionInfo
    servers: list[p.McpServer] = field(default_factory=list)
    """The editor's MCP servers, supplied already (the agent's `lend` supplies
    them again: a replacement by the same servers)."""


@dataclass(frozen=True, slots=True)
class NewSession:
    """A ``session/new`` this module may answer."""

    request_id: int | str
    cwd: str
    servers: list[p.McpServer]


def plain_new_session(message: dict[str, Any] | None) -> NewSession | None:
    """The ``session/new`` this module may answer, or None (the library answers).

    Only the plain case: a request with an id, an absolute directory that
    exists, and MCP servers kfd can run (anything else, the library reports).
    """
    if message is None or message.get("method") != "session/new":
        return None
    request_id = message.get("id")
    params = message.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    if not isinstance(params, dict):
        return None
    cwd = params.get("cwd")
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        return None
    listed = params.get("mcpServers")
    if listed is None:
        listed = []
    if not isinstance(listed, list) or not all(_well_formed(server) for server in listed):
        return None  # the library says what is wrong with it
    try:
        servers = as_kfd_servers(listed)
    except ServersRefused:  # the agent refuses it, and says why
        return None
    return NewSession(request_id, cwd, servers)


def _well_formed(server: object) -> bool:
    """Whether ``server`` is an ``mcpServers`` entry as ACP's schema has it
    (stdio: name, command, args, env; http: name, url, headers)."""
    if not isinstance(server, dict) or not isinstance(server.get("name"), str):
        return False
    match server.get("type", "stdio"):
        case "stdio":
            args = server.get("args")
            return (
                isinstance(server.get("command"), str)
                and isinstance(args, list)
                and all(isinstance(arg, str) for arg in args)
                and _pairs(server.get("env"))
            )
        case "http":
            return isinstance(server.get("url"), str) and _pairs(server.get("headers"))
        case _:
            return True  # another transport: `as_kfd_servers` refuses it by name


def _pairs(pairs: object) -> bool:
    """ACP's ``[{name, value}]`` with strings."""
    return isinstance(pairs, list) and all(
        isinstance(pair, dict)
        and isinstance(pair.get("name"), str)
        and isinstance(pair.get("value"), str)
        for pair in pairs
    )


async def answer_new_session(wire: Wire, name: str) -> EarlySession | None:
    """Answer the next message if it is a plain ``session/new``; else leave it to the library."""
    wanted = plain_new_session(await wire.ahead())
    if wanted is None:
        return None
    client: Client | None = None
    try:
        # The start (`kfd_acp.startup`) has started the daemon, or failed to: not twice.
        client = await Client.connect(name=name)
        info = await client.create_session(wanted.cwd)
    except Exception as exc:  # whatever failed, the agent answers (and says what failed)
        log.debug("the first session/new is left to the agent: %s", exc)
        if client is not None:
            await client.close()
        return None
    wire.take_ahead()
    if wanted.servers:
        try:
            await client.supply_mcp_servers(info.id, wanted.servers)
        except ClientError as exc:  # answered as the agent answers it (`kfd_acp.agent`)
            refused = isinstance(exc, RequestFailed) and exc.code == "bad_request"
            details = exc.message if isinstance(exc, RequestFailed) else str(exc)
            error = error_of(INVALID_PARAMS if refused else INTERNAL_ERROR, details)
            await wire.reply_error(wanted.request_id, **error)
            await client.close()
            return None
    await wire.send(
        {
            "jsonrpc": "2.0",
            "id": wanted.request_id,
            "result": {"sessionId": info.id, "modes": modes_state(info.mode)},
        }
    )
    return EarlySession(client, info, wanted.servers)
