"""The editor's first ``session/new``, answered while the ACP library still loads.

An editor shows the agent as ready once ``session/new`` is answered, and it
sends that request as soon as ``initialize`` is answered (which the fast
start does at once, `kfd_acp.startup`). Importing the ACP library takes
over a second of CPU; creating a session needs none of it: the daemon, the
kfd client and a few lines of JSON (`kfd_acp.capabilities`). So while the
library loads in a thread, the first message is read ahead and, when it is
a plain ``session/new`` (an absolute directory, no MCP servers), the session
is created and the answer written here. The agent then adopts the session
(`kfd_acp.agent.serve_editor`) as if it had answered itself: attached from
its start, its updates sent after the answer.

Anything else (another method, MCP servers to start, a bad directory, a
daemon that cannot be reached) is left to the library, which answers it as
it always does: this is a shortcut, never a second implementation of the
errors.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from kfd import protocol as p
from kfd.client import Client
from kfd_acp.capabilities import modes_state
from kfd_acp.wire import Wire

log = logging.getLogger("kfd_acp")


@dataclass(frozen=True, slots=True)
class EarlySession:
    """A session created and announced before the library ran; the agent adopts it."""

    client: Client
    info: p.SessionInfo


def plain_new_session(message: dict[str, Any] | None) -> tuple[int | str, str] | None:
    """The request id and directory of a ``session/new`` this module may answer, or None.

    Only the plain case: a request with an id, an absolute directory that
    exists, and no MCP servers (the library checks and converts those).
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
    if params.get("mcpServers") not in (None, []):
        return None
    return request_id, cwd


async def answer_new_session(wire: Wire, name: str) -> EarlySession | None:
    """Answer the next message if it is a plain ``session/new``; else leave it to the library."""
    wanted = plain_new_session(await wire.ahead())
    if wanted is None:
        return None
    request_id, cwd = wanted
    client: Client | None = None
    try:
        client = await Client.connect(name=name, spawn=True)
        info = await client.create_session(cwd)
    except Exception as exc:  # whatever failed, the agent answers (and says what failed)
        log.debug("the first session/new is left to the agent: %s", exc)
        if client is not None:
            await client.close()
        return None
    wire.take_ahead()
    await wire.send(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": {"sessionId": info.id, "modes": modes_state(info.mode)},
        }
    )
    return EarlySession(client, info)
