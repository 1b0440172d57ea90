"""The ACP agent: an editor's requests as kfd client requests.

`KfdAgent` implements the ACP library's ``Agent`` protocol; the library
parses and answers JSON-RPC, this module decides. Sessions are the daemon's
own (an ACP session id is a kfd session id), so a session an editor opens
is the one ``kfd attach`` shows, and a session started anywhere else (a
terminal, a file trigger) can be loaded in the editor with its history.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any, NoReturn

from acp import RequestError
from acp import schema as a
from acp.agent.connection import AgentSideConnection

from kfd import protocol as p
from kfd.client import Client, ClientError, DaemonUnavailable, RequestFailed
from kfd_acp import prompts
from kfd_acp.capabilities import (
    file_capabilities,
    frontend_name,
    initialize_result,
    modes_state,
)
from kfd_acp.early import EarlySession
from kfd_acp.servers import ServersRefused, as_kfd_servers
from kfd_acp.session import Cancelled, EditorSession
from kfd_acp.wire import INTERNAL_ERROR, INVALID_PARAMS, Wire, error_of

log = logging.getLogger("kfd_acp")

LIST_PAGE = 100
"""Sessions per ``session/list`` answer; ``nextCursor`` fetches the next page."""

RESOURCE_NOT_FOUND = -32002

_STOP_REASONS: dict[p.StopReason, a.StopReason] = {
    "end_turn": "end_turn",
    "cancelled": "cancelled",
    "max_steps": "max_turn_requests",
    "repeated_tool_call": "max_turn_requests",
    "max_tokens": "max_tokens",
    "refusal": "refusal",
    "forked": "end_turn",
}
"""kfd's stop reasons in ACP's words; the others (error, interrupted) are errors."""


async def serve_editor(
    wire: Wire, *, initialized: dict[str, Any] | None, early: EarlySession | None = None
) -> None:
    """Serve ACP on ``wire`` until the editor closes it.

    ``initialized``: the params of an ``initialize`` the fast start answered;
    ``early``: the session of a ``session/new`` answered before the library ran.
    """
    agent = KfdAgent(wire)
    if initialized is not None:
        agent.client_capabilities = initialized.get("clientCapabilities")
        agent.name = frontend_name(initialized)
    conn = AgentSideConnection(agent, wire, listening=False, use_unstable_protocol=True)
    try:
        if early is not None:
            await agent.adopt(early)
        await conn.listen()
    finally:
        await agent.close()
        await conn.close()


class KfdAgent:
    """One editor connection: its kfd client and the sessions it has open."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.conn: AgentSideConnection | None = None
        self.client_capabilities: Any = None
        self.sessions: dict[str, EditorSession] = {}
        self._client: Client | None = None
        self._connecting = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.name = "acp"
        """How this connection introduces itself to the daemon: other frontends
        say an approval was "answered by acp:zed"."""

    def name_after(self, editor: object) -> None:
        """Name the connection after the editor (``clientInfo.name`` of ``initialize``)."""
        self.name = frontend_name({"clientInfo": {"name": editor}})

    def on_connect(self, conn: Any) -> None:
        """The library hands over the connection (to send updates and requests)."""
        self.conn = conn

    async def close(self) -> None:
        """The editor left: detach every session (their turns go on), disconnect."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in list(self.sessions.values()):
            await session.close()
        self.sessions.clear()
        if self._client is not None:
            await self._client.close()

    async def _kfd(self) -> Client:
        async with self._connecting:
            if self._client is None or self._client.closed:
                try:
                    self._client = await Client.connect(name=self.name, spawn=True)
                except ClientError as exc:
                    raise internal_error(f"cannot reach the kfd daemon: {exc}") from None
            return self._client

    # -- initialisation ------------------------------------------------------

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: a.ClientCapabilities | None = None,
        client_info: a.Implementation | None = None,
        **kwargs: Any,
    ) -> a.InitializeResponse:
        """What kfd can do (`kfd_acp.capabilities`)."""
        self.client_capabilities = client_capabilities
        self.name_after(client_info.name if client_info is not None else None)
        return a.InitializeResponse.model_validate(initialize_result(protocol_version))

    async def authenticate(self, method_id: str, **kwargs: Any) -> a.AuthenticateResponse | None:
        """kfd needs no login here: the daemon holds the model's credentials."""
        return a.AuthenticateResponse()

    # -- sessions ----------------------------------------------------------------

    async def new_session(
        self,
        cwd: str,
        additional_directories: list[str] | None = None,
        mcp_servers: list[Any] | None = None,
        **kwargs: Any,
    ) -> a.NewSessionResponse:
        """A new daemon session in the editor's working directory, with its MCP servers."""
        _check_directory(cwd)
        servers = _servers(mcp_servers)
        client = await self._kfd()
        info = await _call(client.create_session(cwd))
        session = await self._open(info, since_seq=0, announced=False, servers=servers)
        self._spawn(session.replay())  # once the editor has the id: see EditorSession
        return a.NewSessionResponse(
            session_id=info.id, modes=a.SessionModeState.model_validate(modes_state(info.mode))
        )

    async def adopt(self, early: EarlySession) -> None:
        """Take on the session `kfd_acp.early` created and announced: attached from
        its start, its updates follow. One that cannot be attached is reported to
        the editor's log and its prompts are refused as for a session not open."""
        self._client = early.client
        try:
            session = await self._open(
                early.info, since_seq=0, announced=True, servers=early.servers
            )
        except RequestError as exc:
            log.warning("session %s could not be attached: %s", early.info.id, exc)
            return
        self._spawn(session.replay())

    async def load_session(
        self,
        cwd: str,
        session_id: str,
        mcp_servers: list[Any] | None = None,
        additional_directories: list[str] | None = None,
        **kwargs: Any,
    ) -> a.LoadSessionResponse | None:
        """Attach to a daemon session and replay its whole history, then go live."""
        servers = _servers(mcp_servers)
        client = await self._kfd()
        info = await _call(client.session(session_id))
        session = await self._open(info, since_seq=0, announced=True, servers=servers)
        await session.replay()
        return a.LoadSessionResponse(
            modes=a.SessionModeState.model_validate(modes_state(session.info.mode))
        )

    async def resume_session(
        self,
        session_id: str,
        cwd: str,
        additional_directories: list[str] | None = None,
        mcp_servers: list[Any] | None = None,
        **kwargs: Any,
    ) -> a.ResumeSessionResponse:
        """Attach to a daemon session from now on, without its history."""
        servers = _servers(mcp_servers)
        client = await self._kfd()
        info = await _call(client.session(session_id))
        session = await self._open(info, since_seq=info.last_seq, announced=True, servers=servers)
        await session.replay()
        return a.ResumeSessionResponse(
            modes=a.SessionModeState.model_validate(modes_state(session.info.mode))
        )

    async def fork_session(
        self,
        session_id: str,
        cwd: str,
        additional_directories: list[str] | None = None,
        mcp_servers: list[Any] | None = None,
        **kwargs: Any,
    ) -> a.ForkSessionResponse:
        """A new session sharing this one's conversation (``kfd``'s ``/fork``)."""
        servers = _servers(mcp_servers)
        client = await self._kfd()
        info = await _call(client.fork(session_id))
        session = await self._open(info, since_seq=0, announced=False, servers=servers)
        self._spawn(session.replay())
        return a.ForkSessionResponse(
            session_id=info.id, modes=a.SessionModeState.model_validate(modes_state(info.mode))
        )

    async def set_config_option(
        self, config_id: str, session_id: str, value: str | bool, **kwargs: Any
    ) -> a.SetSessionConfigOptionResponse | None:
        """kfd offers no config options (modes are the session modes)."""
        raise invalid_params(f"kfd has no session config option {config_id!r}")

    async def close_session(self, session_id: str, **kwargs: Any) -> a.CloseSessionResponse | None:
        """Detach from a session; it (and any running turn) goes on in the daemon."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            _not_open(session_id)
        await session.close()
        return a.CloseSessionResponse()

    async def list_sessions(
        self, cwd: str | None = None, cursor: str | None = None, **kwargs: Any
    ) -> a.ListSessionsResponse:
        """The daemon's sessions, most recently active first (of ``cwd`` if given)."""
        start = 0
        if cursor:
            if not cursor.isdigit():
                raise invalid_params(f"not a cursor of kfd: {cursor!r}")
            start = int(cursor)
        client = await self._kfd()
        listed = await _call(client.sessions(cwd=cwd, limit=start + LIST_PAGE + 1))
        page = listed[start : start + LIST_PAGE]
        more = len(listed) > start + LIST_PAGE
        return a.ListSessionsResponse(
            sessions=[
                a.SessionInfo(
                    session_id=info.id,
                    cwd=info.cwd,
                    title=info.title or None,
                    updated_at=datetime.fromtimestamp(info.updated_at, UTC).isoformat(),
                )
                for info in page
            ],
            next_cursor=str(start + LIST_PAGE) if more else None,
        )

    async def _open(
        self,
        info: p.SessionInfo,
        *,
        since_seq: int,
        announced: bool,
        servers: list[p.McpServer],
    ) -> EditorSession:
        assert self.conn is not None
        old = self.sessions.pop(info.id, None)
        if old is not None:
            await old.close()
        client = await self._kfd()
        attachment = await _call(client.attach(info.id, since_seq=since_seq))
        snapshot = attachment.snapshot
        session = EditorSession(
            self.conn,
            self.wire,
            client,
            attachment,
            snapshot.session if snapshot is not None else info,
            announced=announced,
        )
        self.sessions[info.id] = session
        read, write = file_capabilities(self.client_capabilities)
        try:
            await _call(session.lend(servers, read=read, write=write))
        except RequestError:
            self.sessions.pop(info.id, None)
            await session.close()
            raise
        return session

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- modes -------------------------------------------------------------------

    async def set_session_mode(
        self, session_id: str, mode_id: str, **kwargs: Any
    ) -> a.SetSessionModeResponse | None:
        """Change the session's permission mode (every frontend sees it)."""
        session = self._session(session_id)
        mode = next((m for m in p.MODES if m == mode_id), None)
        if mode is None:
            raise invalid_params(f"unknown mode {mode_id!r}; the modes are {', '.join(p.MODES)}")
        # The editor knows its own change: the event it makes is not echoed back.
        before, session.translator.mode = session.translator.mode, mode
        try:
            session.info = await _call(session.kfd.set_mode(session.id, mode))
        except RequestError:
            session.translator.mode = before
            raise
        return a.SetSessionModeResponse()

    # -- prompts -----------------------------------------------------------------

    async def prompt(self, session_id: str, prompt: list[Any], **kwargs: Any) -> a.PromptResponse:
        """Run a prompt turn: a kfd message, streamed back, ending with its stop reason."""
        session = self._session(session_id)
        try:
            text = prompts.as_message(prompt, session.info.cwd)
        except prompts.PromptRefused as exc:
            raise invalid_params(str(exc)) from None
        command = prompts.invocation(text)
        if command is not None:
            await self._command(session, command)
            return a.PromptResponse(stop_reason="end_turn")
        ended = await _call(session.prompt(text))
        if isinstance(ended, Cancelled):
            return a.PromptResponse(stop_reason="cancelled")
        reason = _STOP_REASONS.get(ended.stop_reason)
        if reason is None:
            said = f": {ended.message}" if ended.message else ""
            raise internal_error(f"the turn ended with {ended.stop_reason}{said}")
        return a.PromptResponse(stop_reason=reason)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        """Cancel the session's running turn (``session/cancel`` is a notification)."""
        session = self.sessions.get(session_id)
        if session is None:
            log.info("cancel for %s, which is not open here; ignored", session_id)
            return
        try:
            await session.cancel()
        except ClientError as exc:
            log.warning("could not cancel the turn of %s: %s", session_id, exc)

    async def _command(self, session: EditorSession, command: prompts.Invocation) -> None:
        client = session.kfd
        if command.name == "compact":
            compacted = await _call(client.compact(session.id, command.argument))
            await session.say(prompts.compact_text(compacted))
        elif command.name == "context":
            await session.say(prompts.context_text(await _call(client.context(session.id))))
        elif command.name == "cost":
            result: p.CostResult = await _call(
                client.request(p.CostQuery(id="", session=session.id))
            )
            await session.say(prompts.cost_text(result, session.id))

    def _session(self, session_id: str) -> EditorSession:
        session = self.sessions.get(session_id)
        if session is None:
            _not_open(session_id)
        return session

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """kfd has no extension methods."""
        raise RequestError.method_not_found(f"_{method}")

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        """Extension notifications are ignored."""


def invalid_params(details: str) -> RequestError:
    """JSON-RPC's ``-32602``, saying what is wrong in the message itself."""
    return RequestError(**error_of(INVALID_PARAMS, details))


def internal_error(details: str) -> RequestError:
    """JSON-RPC's ``-32603``, saying what failed in the message itself."""
    return RequestError(**error_of(INTERNAL_ERROR, details))


async def _call(work: Any) -> Any:
    """Await a kfd client call; its failures become JSON-RPC errors an editor shows."""
    try:
        return await work
    except RequestFailed as exc:
        if exc.code == "not_found":
            raise RequestError(RESOURCE_NOT_FOUND, exc.message, {"code": exc.code}) from None
        if exc.code == "bad_request":
            raise invalid_params(exc.message) from None
        raise internal_error(exc.message) from None
    except DaemonUnavailable as exc:
        raise internal_error(str(exc)) from None


def _not_open(session_id: str) -> NoReturn:
    raise RequestError(
        RESOURCE_NOT_FOUND,
        f"session {session_id!r} is not open in this connection: "
        "start one with session/new or open it with session/load",
        {"sessionId": session_id},
    )


def _check_directory(cwd: str) -> None:
    if not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise invalid_params(f"cwd must be an absolute path to a directory, not {cwd!r}")


def _servers(servers: list[Any] | None) -> list[p.McpServer]:
    """The editor's ``mcpServers`` as kfd's; a JSON-RPC error for one kfd cannot run."""
    try:
        return as_kfd_servers(servers)
    except ServersRefused as exc:
        raise invalid_params(str(exc)) from None
