"""One kfd session as an editor sees it: events out, prompts and answers in.

An `EditorSession` is attached to a daemon session like any frontend (it
sees every event exactly once, in order: the history, then live) and
forwards what `kfd_acp.translate` makes of each event as ``session/update``
notifications. A prompt is a kfd message whose turn it waits for; an
approval becomes ``session/request_permission``, answered into the daemon,
and withdrawn from the editor (``$/cancel_request``, and an update saying
who answered) when another frontend answers first.

It also lends the session what the editor has (`EditorSession.lend`): the
MCP servers it passed, and, when it offers ``fs/*``, its view of the files:
the daemon asks (after the permission decision) and this session forwards
the question as ``fs/read_text_file`` or ``fs/write_text_file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acp import RequestError
from acp import schema as a

from kfd import protocol as p
from kfd.client import (
    Attachment,
    Client,
    ClientError,
    ConnectionLost,
    ConnectionRestored,
    DaemonUnavailable,
    FileService,
    FileUnavailable,
    Item,
    RequestFailed,
)
from kfd.client.exact import visible
from kfd_acp.prompts import COMMANDS
from kfd_acp.translate import Translator, Update, available_commands

if TYPE_CHECKING:
    from acp.agent.connection import AgentSideConnection

    from kfd_acp.wire import Wire

log = logging.getLogger("kfd_acp")

PERMISSION_REQUEST = "session/request_permission"
CANCEL_REQUEST = "$/cancel_request"
METHOD_NOT_FOUND = -32601

FILE_TIMEOUT_S = 5.0
"""How long the daemon waits for the editor's answer to ``fs/*`` before it uses the disk."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A prompt whose message was still queued when the editor cancelled: it never ran."""


def permission_options(event: p.ApprovalRequested) -> list[a.PermissionOption]:
    """The answers an editor offers for an approval; each option id is a kfd decision.

    "Allow for this session" and "always" name the exact rule they keep; "always"
    is offered only when the daemon says the rule can be kept for the project.
    """
    options = [a.PermissionOption(option_id="allow", name="Allow once", kind="allow_once")]
    if event.session_rule:
        options.append(
            a.PermissionOption(
                option_id="allow_session",
                name=f"Allow for this session: {visible(event.session_rule)}",
                kind="allow_always",
            )
        )
    if event.can_keep:
        options.append(
            a.PermissionOption(
                option_id="allow_always",
                name=f"Always allow in this project: {visible(event.session_rule)}",
                kind="allow_always",
            )
        )
    options.append(a.PermissionOption(option_id="deny", name="Deny", kind="reject_once"))
    return options


def decision_of(option_id: str) -> p.ApprovalDecision | None:
    """The kfd decision an editor's chosen option stands for (None: not one of ours)."""
    decisions: tuple[p.ApprovalDecision, ...] = ("allow", "allow_session", "allow_always", "deny")
    return next((d for d in decisions if d == option_id), None)


class EditorSession:
    """A daemon session bridged to one editor connection."""

    def __init__(
        self,
        conn: AgentSideConnection,
        wire: Wire,
        kfd: Client,
        attachment: Attachment,
        info: p.SessionInfo,
        *,
        announced: bool = True,
    ) -> None:
        self.id = info.id
        self.info = info
        self.conn = conn
        self.wire = wire
        self.kfd = kfd
        self.attachment = attachment
        self.translator = Translator(cwd=info.cwd, mode=info.mode, title=info.title)
        self._prompts: dict[str, asyncio.Future[p.TurnCompleted | Cancelled]] = {}
        self._started: set[str] = set()
        self._turns: dict[int, list[str]] = {}
        self._asking: dict[str, asyncio.Task[None]] = {}
        self._request_ids: dict[str, int | str] = {}
        self._pump: asyncio.Task[None] | None = None
        self._files: FileService | None = None
        self._lent_servers = False
        self._live = False
        self.custom: set[str] = set()
        """The workspace's custom commands: ``/name`` runs one (``commands.run``)."""
        self._announced = asyncio.Event()
        """Set once the editor knows the session's id: a new session's updates wait
        for the ``session/new`` answer, a loaded one's history comes before its answer."""
        if announced:
            self._announced.set()
        wire.on_send.append(self._note_request)

    # -- life ------------------------------------------------------------------

    async def replay(self) -> None:
        """Send the history the attachment holds (the whole of it after a fresh
        attach), then go live: pending approvals are asked, events follow."""
        await self._announced.wait()
        while self.attachment.buffered:
            await self._handle(await anext(self.attachment))
        offered = [(c.name, c.description, c.hint) for c in COMMANDS]
        builtin = {c.name for c in COMMANDS}
        try:  # the workspace's custom commands (an older daemon has none)
            listed = await self.kfd.commands(session_id=self.id)
        except RequestFailed:
            listed = p.CommandListResult()
        self.custom = {c.name for c in listed.commands if c.name not in builtin and not c.problem}
        offered += [
            (c.name, c.description or f"{c.source} command", c.argument_hint)
            for c in listed.commands
            if c.name in self.custom
        ]
        await self._send(available_commands(offered))
        self._go_live()

    def _go_live(self) -> None:
        self._live = True
        snapshot = self.attachment.snapshot
        if snapshot is not None:
            for approval in snapshot.pending_approvals:
                self._ask(approval)
        self._pump = asyncio.create_task(self._run(), name=f"acp {self.id}")

    async def _run(self) -> None:
        try:
            async for item in self.attachment:
                await self._handle(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: the event pump failed", self.id)

    async def lend(self, servers: list[p.McpServer], *, read: bool, write: bool) -> None:
        """Lend the session the editor's MCP servers and, where it offers them, its
        reads and writes of files; `RequestFailed` when the daemon refuses a server."""
        if servers or self._lent_servers:
            await self.kfd.supply_mcp_servers(self.id, servers)
            self._lent_servers = bool(servers)
        if (read or write) and self._files is None:
            self._files = await self.kfd.serve_files(
                self.id, self._file, read=read, write=write, timeout_s=FILE_TIMEOUT_S
            )

    async def _file(self, request: p.FileRequested) -> str:
        """Ask the editor what the daemon asks: its text of a file, or to write one."""
        if self.wire.closed:
            raise FileUnavailable("the editor is gone")
        try:
            async with asyncio.timeout(FILE_TIMEOUT_S + 1):
                if request.op == "read":
                    read = await self.conn.read_text_file(session_id=self.id, path=request.path)
                    return read.content
                await self.conn.write_text_file(
                    session_id=self.id, path=request.path, content=request.text
                )
                return ""
        except (ConnectionError, TimeoutError):
            raise FileUnavailable("the editor did not answer") from None
        except RequestError as exc:
            if exc.code == METHOD_NOT_FOUND:  # it offered fs/* but does not serve it
                raise FileUnavailable(str(exc)) from None
            raise RuntimeError(f"{exc} ({exc.code})") from None

    async def close(self) -> None:
        """Detach: the session, and any running turn, go on in the daemon; what the
        editor lent it is withdrawn."""
        await self._withdraw()
        with contextlib.suppress(ValueError):
            self.wire.on_send.remove(self._note_request)
        tasks = [t for t in (self._pump, *self._asking.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for future in self._prompts.values():
            if not future.done():
                future.set_result(Cancelled())
        await self.attachment.close()

    async def _withdraw(self) -> None:
        files, self._files = self._files, None
        if files is not None:
            await files.close()
        if self._lent_servers and not self.kfd.closed:
            self._lent_servers = False
            try:
                await self.kfd.supply_mcp_servers(self.id, [])
            except ClientError as exc:
                log.info(
                    "session %s: could not withdraw the editor's MCP servers: %s", self.id, exc
                )

    # -- events ----------------------------------------------------------------

    async def _handle(self, item: Item) -> None:
        match item:
            case ConnectionLost():
                log.info("session %s: lost the daemon; reconnecting", self.id)
                return
            case ConnectionRestored():
                log.info("session %s: the daemon is back", self.id)
                for approval in item.snapshot.pending_approvals:
                    self._ask(approval)
                return
        if not isinstance(item, p.Event):
            return
        for update in self.translator.updates(item):
            await self._send(update)
        match item:
            case p.TurnStarted():
                ours = [m for m in item.message_ids if m in self._prompts]
                if ours:
                    self._turns[item.turn] = ours
                    self._started.update(ours)
            case p.TurnCompleted():
                for message_id in self._turns.pop(item.turn, []):
                    future = self._prompts.get(message_id)
                    if future is not None and not future.done():
                        future.set_result(item)
            case p.ApprovalRequested():
                if self._live:
                    self._ask(item)
            case p.ApprovalResolved():
                await self._resolved(item)
            case p.SessionUpdated():
                self.info = item.info

    async def _send(self, update: Update) -> None:
        if self.wire.closed:
            return
        with contextlib.suppress(ConnectionError):  # the editor left; the wire says so
            await self.conn.session_update(session_id=self.id, update=update)

    # -- prompts ---------------------------------------------------------------

    async def prompt(self, text: str) -> p.TurnCompleted | Cancelled:
        """Send ``text`` as a message and wait for the end of the turn that runs it.

        ``/name ARGS`` naming one of the workspace's custom commands runs it."""
        client_msg_id = f"acp.{secrets.token_hex(8)}"
        message_id = f"u.{client_msg_id}"
        self.translator.own_messages.add(message_id)
        future: asyncio.Future[p.TurnCompleted | Cancelled] = (
            asyncio.get_running_loop().create_future()
        )
        self._prompts[message_id] = future
        try:
            name, _, arguments = text.strip().removeprefix("/").partition(" ")
            if text.strip().startswith("/") and name in self.custom:
                await self.kfd.run_command(
                    self.id, name, arguments.strip(), client_msg_id=client_msg_id
                )
            else:
                await self.kfd.send(self.id, text, client_msg_id=client_msg_id)
            return await future
        finally:
            self._prompts.pop(message_id, None)
            self._started.discard(message_id)

    async def cancel(self) -> None:
        """Stop the running turn and drop queued messages; prompts end as cancelled."""
        await self.kfd.cancel(self.id, clear_queue=True)
        for message_id, future in self._prompts.items():
            if message_id not in self._started and not future.done():
                future.set_result(Cancelled())  # dropped from the queue: it never runs

    async def say(self, text: str) -> None:
        """Show ``text`` as the agent's message (the answer of a slash command)."""
        await self._send(
            a.AgentMessageChunk(
                session_update="agent_message_chunk",
                content=a.TextContentBlock(type="text", text=text),
            )
        )

    # -- approvals -------------------------------------------------------------

    def _ask(self, event: p.ApprovalRequested) -> None:
        if event.approval_id in self._asking or self.wire.closed:
            return
        task = asyncio.create_task(self._permission(event), name=f"ask {event.approval_id}")
        self._asking[event.approval_id] = task
        task.add_done_callback(lambda _: self._asking.pop(event.approval_id, None))

    async def _permission(self, event: p.ApprovalRequested) -> None:
        try:
            response = await self.conn.request_permission(
                session_id=self.id,
                tool_call=self.translator.permission_call(event),
                options=permission_options(event),
            )
        except (RequestError, ConnectionError) as exc:
            log.info("approval %s: the editor did not answer (%s)", event.approval_id, exc)
            return
        outcome = response.outcome
        if not isinstance(outcome, a.AllowedOutcome):
            return  # dismissed (the turn was cancelled): another frontend may still answer
        decision = decision_of(outcome.option_id)
        message = "denied in the editor" if decision == "deny" else ""
        if decision is None:  # not an option kfd offered: fail closed
            log.warning("approval %s: unknown option %r", event.approval_id, outcome.option_id)
            decision = "deny"
            message = f"the editor chose an option kfd did not offer ({outcome.option_id!r})"
        try:
            await self.kfd.respond(self.id, event.approval_id, decision, message)
        except RequestFailed as exc:  # answered elsewhere first, or the turn ended
            log.info("approval %s: %s", event.approval_id, exc.message)
        except DaemonUnavailable as exc:
            log.warning("approval %s: could not answer: %s", event.approval_id, exc)

    async def _resolved(self, event: p.ApprovalResolved) -> None:
        task = self._asking.get(event.approval_id)
        hello = self.kfd.hello
        mine = hello is not None and event.by is not None and event.by.id == hello.frontend_id
        if task is None or task.done() or mine:
            return
        task.cancel()  # the library forgets the request: a late answer is ignored
        request_id = self._request_ids.pop(event.call_id, None)
        if request_id is not None and not self.wire.closed:
            await self.wire.send(
                {"jsonrpc": "2.0", "method": CANCEL_REQUEST, "params": {"requestId": request_id}}
            )
        await self._send(self.translator.answered_elsewhere(event))

    def _note_request(self, message: dict[str, Any]) -> None:
        """Remember the JSON-RPC id of each permission request (to cancel it), and
        notice the answer that tells the editor this session's id."""
        result = message.get("result")
        if isinstance(result, dict) and result.get("sessionId") == self.id:
            self._announced.set()
            return
        if message.get("method") != PERMISSION_REQUEST or "id" not in message:
            return
        params = message.get("params") or {}
        if params.get("sessionId") != self.id:
            return
        call = (params.get("toolCall") or {}).get("toolCallId")
        if isinstance(call, str):
            self._request_ids[call] = message["id"]
