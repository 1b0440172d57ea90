"""The session manager: create, find, load, fork, recover.

Sessions live in the store and are loaded into memory on first use; the
daemon start only loads those a crash left in the middle of a turn, to close
them: every tool call gets its result ("interrupted; side effects unknown"
for one that had started), open approvals are dismissed, the turn ends as
``interrupted``. Nothing that started is re-run by itself.

Messages the daemon accepted (the client was told "sent") but never started
wait in the session's queue again and run once the daemon serves
(`SessionManager.run_queued`): an acknowledged message is never lost. A
message already carried over one restart without running is not carried
again (it might be what brings the daemon down): it is reported instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING

import msgspec

from kfd.agent.context_replay import inherit as inherit_context
from kfd.agent.context_replay import restore as restore_context
from kfd.agent.lifecycle import OPEN_TURN_EVENTS, open_turn, recovered_result
from kfd.agent.session import Session
from kfd.errors import RequestError
from kfd.ids import ID_LENGTH, new_id
from kfd.protocol import (
    GLOBAL_TOPIC,
    AnyEvent,
    ApprovalResolved,
    ErrorEvent,
    MessageCompleted,
    MessageQueued,
    MessageUser,
    Mode,
    QueuedMessage,
    SessionCreated,
    SessionInfo,
    ToolCompleted,
    TurnCompleted,
    TurnStarted,
)
from kfd.transcript import (
    AssistantMessage,
    Message,
    ToolResultMessage,
    UserMessage,
    unanswered_calls,
)

if TYPE_CHECKING:
    from kfd.agent.runtime import Runtime

log = logging.getLogger(__name__)

_event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)

_FORK_COPIED = frozenset(
    {
        "message.user",
        "message.completed",
        "tool.requested",
        "tool.started",
        "tool.completed",
        "turn.started",
        "turn.completed",
        "tasks.updated",  # the plan as it stood at the cut
        "tools.loaded",  # the tools the copied transcript found and may call
    }
)


class SessionManager:
    """All sessions of the daemon."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.live: dict[str, Session] = {}
        self.count = 0
        """Sessions in the store (kept here so ``status`` reads no disk)."""
        self.draining = False
        """A graceful stop: no session starts a turn any more (`drain`)."""

    def drain(self) -> None:
        """Let running turns finish but start none (sessions loaded later too)."""
        self.draining = True
        for session in self.live.values():
            session.drain()

    def unload_idle(self, idle_s: float, keep: set[str]) -> int:
        """Drop from memory the sessions nobody uses (months of uptime must not
        mean every session ever opened in memory); they load again on demand.
        Returns how many."""
        now = time.time()
        journal = self.runtime.journal
        dropped = 0
        for session in list(self.live.values()):
            info = session.info
            if (
                session.id in keep
                or session.busy
                or session.queue
                or session.pending_approvals
                or info.frontends
                or now - info.updated_at < idle_s
                or journal.published.get(session.id, info.last_seq) != info.last_seq
                or session.context.lock.locked()
            ):
                continue
            del self.live[session.id]
            dropped += 1
        return dropped

    def _add(self, session: Session) -> None:
        self.live[session.id] = session
        if self.draining:
            session.drain()

    async def create(
        self,
        cwd: str,
        *,
        title: str = "",
        model: str | None = None,
        mode: Mode = "default",
        forked_from: str | None = None,
        forked_at: str | None = None,
    ) -> Session:
        workspace = _workspace(cwd)
        now = time.time()
        info = SessionInfo(
            id=new_id("s"),
            cwd=workspace,
            title=title.strip()[:200],
            model=model or self.runtime.config.model.model,
            mode=mode,
            created_at=now,
            updated_at=now,
            forked_from=forked_from,
        )
        session = Session(info, self.runtime, [])
        self._add(session)
        self.count += 1
        created = SessionCreated(
            session=info.id,
            info=msgspec.structs.replace(info),
            forked_from=forked_from,
            forked_at=forked_at,
        )
        await session.emit(created)
        self.runtime.journal.publish_global(GLOBAL_TOPIC.encode(), created)
        return session

    async def get(self, session_id: str) -> Session:
        """A session by id or unique id prefix, loading it if needed."""
        if session_id in self.live:
            return self.live[session_id]
        if not session_id or len(session_id) > ID_LENGTH:
            raise RequestError("not_found", f"no session {session_id!r}")
        matches = await self.runtime.store.session_ids_with_prefix(session_id)
        if not matches:
            raise RequestError("not_found", f"no session {session_id!r}; `kfd sessions` lists them")
        if len(matches) > 1 and session_id not in matches:
            raise RequestError("bad_request", f"session prefix {session_id!r} is ambiguous")
        full = session_id if session_id in matches else matches[0]
        if full in self.live:
            return self.live[full]
        return await self._load(full)

    async def _load(self, session_id: str) -> Session:
        store = self.runtime.store
        info = await store.session(session_id)
        if info is None:
            raise RequestError("not_found", f"no session {session_id!r}")
        messages = [message for _, message in await store.messages(session_id)]
        info.frontends = 0
        session = Session(info, self.runtime, messages)
        for message in messages:
            if isinstance(message, UserMessage) and message.id:
                session.user_message_ids.add(message.id)
        for _, body in await store.event_types(session_id, ["approval.resolved", "message.queued"]):
            event = _event_decoder.decode(body)
            if isinstance(event, ApprovalResolved) and event.rule:
                if event.decision == "allow_session" and event.rule not in session.session_rules:
                    session.session_rules.append(event.rule)
            elif isinstance(event, MessageQueued):
                session.user_message_ids.add(event.message_id)
        await restore_context(session)
        self._add(session)
        return session

    async def recover(self) -> int:
        """Close the turns a crash left open and queue again the messages accepted
        but never run. Returns how many sessions."""
        recovered = 0
        infos = await self.runtime.store.sessions(include_archived=True, limit=1_000_000)
        self.count = len(infos)
        for info in infos:
            if info.status in ("running", "awaiting_approval") or info.queued:
                session = await self._load(info.id)
                await self._close_open_turn(session)
                recovered += 1
        return recovered

    def run_queued(self) -> int:
        """Start the sessions with messages waiting (after `recover`); how many."""
        return sum(1 for session in list(self.live.values()) if session.run_queued())

    async def _close_open_turn(self, session: Session) -> None:
        rows = await self.runtime.store.event_types(session.id, OPEN_TURN_EVENTS)
        found = open_turn(_event_decoder.decode(body) for _, body in rows)
        session.requested_calls = set(found.requested)
        for approval in found.approvals.values():
            session.emit(
                ApprovalResolved(
                    session=session.id,
                    approval_id=approval.approval_id,
                    call_id=approval.call_id,
                    decision="deny",
                    message="the daemon stopped before an answer",
                )
            )
        for call in unanswered_calls(session.messages):
            text = recovered_result(call.id in found.started)
            session.ensure_requested(call)
            session.emit(
                ToolCompleted(
                    session=session.id,
                    call_id=call.id,
                    name=call.name,
                    status="interrupted",
                    output=text,
                    reason="daemon restart",
                ),
                message=ToolResultMessage(
                    call_id=call.id, name=call.name, content=text, is_error=True
                ),
            )
        if found.turn is not None:
            session.emit(
                TurnCompleted(
                    session=session.id,
                    turn=found.turn,
                    stop_reason="interrupted",
                    message="the daemon stopped during this turn",
                )
            )
        if found.put_back:
            # A custom command's mode or model was the open turn's only.
            await session.update(**found.put_back)
        session.set_status("idle", "recovered after the daemon stopped")
        for waiting in found.queued.values():
            if found.carried.get(waiting.message_id, 0) > 1:
                session.emit(
                    ErrorEvent(
                        session=session.id,
                        code="message_dropped",
                        message="a message carried over a restart did not run before the next "
                        f"stop either, so it is not run again: {waiting.text[:200]!r}; send it "
                        "again if you still want it",
                    )
                )
                continue
            session.queue.append(
                QueuedMessage(
                    message_id=waiting.message_id,
                    text=waiting.text,
                    frontend=waiting.frontend,
                    command=getattr(waiting, "command", ""),
                    arguments=getattr(waiting, "arguments", ""),
                )
            )
            session.emit(
                MessageQueued(
                    session=session.id,
                    message_id=waiting.message_id,
                    text=waiting.text,
                    frontend=waiting.frontend,
                    command=getattr(waiting, "command", ""),
                    arguments=getattr(waiting, "arguments", ""),
                )
            )
        await self.runtime.journal.drain()

    async def fork(
        self,
        parent: Session,
        message_id: str | None,
        title: str,
        *,
        before_message: str | None = None,
    ) -> Session:
        """A new session with the parent's transcript up to ``message_id`` (or up to,
        and without, ``before_message``: a rewind to before a turn)."""
        await self.runtime.journal.drain()
        messages = parent.messages
        cut = len(messages)
        if before_message is not None:
            index = _find_message(messages, before_message)
            if index is None:
                raise RequestError(
                    "not_found", f"no message {before_message!r} in session {parent.id}"
                )
            cut = index
            message_id = getattr(messages[index - 1], "id", None) if index > 0 else None
        elif message_id is not None:
            index = _find_message(messages, message_id)
            if index is None:
                raise RequestError("not_found", f"no message {message_id!r} in session {parent.id}")
            cut = index + 1
            # Keep the results of the calls of a cut assistant message.
            while cut < len(messages) and isinstance(messages[cut], ToolResultMessage):
                cut += 1
        # Never end on calls without results (a fork of a session mid-tool).
        while unanswered_calls(messages[:cut]):
            cut -= 1
        kept = messages[:cut]
        session = await self.create(
            parent.info.cwd,
            title=title or f"{parent.info.title or parent.id} (fork)",
            model=parent.info.model,
            mode=parent.info.mode,
            forked_from=parent.id,
            forked_at=message_id,
        )
        await self._copy_history(parent, session, kept)
        await inherit_context(parent, session)
        session.session_rules = list(parent.session_rules)
        return session

    async def _copy_history(self, parent: Session, child: Session, kept: list[Message]) -> None:
        pending: deque[Message] = deque(kept)
        open_turn: int | None = None
        for _, body in await self.runtime.store.event_types(parent.id, _FORK_COPIED):
            if not pending:
                break
            event = _event_decoder.decode(body)
            event.session = child.id
            message: Message | None = None
            if isinstance(event, MessageUser | MessageCompleted | ToolCompleted):
                head = pending[0]
                if _matches(event, head):
                    message = pending.popleft()
                else:
                    continue
            if isinstance(event, TurnStarted):
                open_turn = event.turn
                child.info.turns = max(child.info.turns, event.turn)
            elif isinstance(event, TurnCompleted):
                open_turn = None
            if isinstance(event, MessageUser):
                child.user_message_ids.add(event.message_id)
            child.emit(event, message=message)
        if open_turn is not None:
            child.emit(
                TurnCompleted(
                    session=child.id, turn=open_turn, stop_reason="forked", message="forked here"
                )
            )
        # Whatever the log did not account for still belongs to the transcript.
        for message in pending:
            child.messages.append(message)
        await self.runtime.journal.drain()

    async def shutdown(self) -> None:
        """Interrupt the running turns (together) and wait until they closed."""
        busy = [session for session in self.live.values() if session.busy]
        await asyncio.gather(*(session.interrupt() for session in busy))
        await self.runtime.journal.drain()


def _workspace(cwd: str) -> str:
    if not cwd or not os.path.isabs(cwd):
        raise RequestError("bad_request", f"cwd must be an absolute path, not {cwd!r}")
    real = os.path.realpath(cwd)
    if not os.path.isdir(real):
        raise RequestError("bad_request", f"cwd {cwd!r} is not a directory")
    return real


def _find_message(messages: list[Message], message_id: str) -> int | None:
    for index, message in enumerate(messages):
        if isinstance(message, UserMessage | AssistantMessage) and message.id == message_id:
            return index
    return None


def _matches(event: MessageUser | MessageCompleted | ToolCompleted, message: Message) -> bool:
    if isinstance(event, MessageUser):
        return isinstance(message, UserMessage) and message.id == event.message_id
    if isinstance(event, MessageCompleted):
        return isinstance(message, AssistantMessage) and message.id == event.message_id
    return isinstance(message, ToolResultMessage) and message.call_id == event.call_id
