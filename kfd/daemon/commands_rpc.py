"""Custom commands on the bus: commands.list and commands.run.

Any frontend lists a workspace's commands (the REPL completes them, chat
offers them as ``!name``, an editor as ACP's available commands) and runs
one in a session: the daemon makes its prompt when its turn starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfd.daemon.rules_rpc import directory
from kfd.errors import RequestError
from kfd.protocol import (
    CommandList,
    CommandListResult,
    CommandRun,
    FrontendRef,
    MessageSendResult,
)

if TYPE_CHECKING:
    from kfd.daemon.sessions import SessionManager

CommandRequest = CommandList | CommandRun

MAX_ARGUMENTS = 64 * 1024


async def answer(
    sessions: SessionManager, request: CommandRequest, by: FrontendRef
) -> CommandListResult | MessageSendResult:
    """The result of one command request."""
    runtime = sessions.runtime
    book, rules = runtime.commands, runtime.rule_book
    if book is None or rules is None:
        raise RequestError("conflict", "the daemon is still starting; try again")
    match request:
        case CommandList():
            if request.session:
                workspace = (await sessions.get(request.session)).info.cwd
            elif request.cwd:
                workspace = await directory(request.cwd)
            else:
                raise RequestError("bad_request", "commands.list needs a cwd or a session")
            offered, ignored = await book.listing(await rules.project_of(workspace))
            return CommandListResult(commands=[c.info for c in offered], ignored=ignored)
        case CommandRun():
            if len(request.arguments) > MAX_ARGUMENTS:
                raise RequestError("bad_request", f"arguments: at most {MAX_ARGUMENTS} characters")
            session = await sessions.get(request.session)
            name = request.name.strip().lstrip("/!")
            found, why = await book.find(await rules.project_of(session.info.cwd), name)
            if found is None:
                code = "not_found" if why.startswith("no command") else "conflict"
                raise RequestError(code, why)
            text = f"/{name} {request.arguments}".rstrip()
            return await session.send(
                text, by, request.client_msg_id, command=name, arguments=request.arguments
            )
