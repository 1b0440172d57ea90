"""A live session: its state, its event stream, its queue, and the driver of its turns.

A `Session` is the only writer of its events: `emit` numbers them (``seq``),
updates the session's info and hands them to the journal. It is the I/O
shell around the pure lifecycle (`kfd.agent.lifecycle`): `advance` applies a
lifecycle event and emits the status that follows. The steps depend on the
small Protocols of `kfd.agent.ports`, never on this module: this module
depends on them. The turn loop (`kfd.agent.turn`) drives the conversation;
what frontends see while it works is in `kfd.agent.live` (the streaming
answer, the running tools) and `kfd.agent.approvals` (open approvals).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from kfd import logcontext
from kfd.agent.approvals import Approvals
from kfd.agent.commands import take_batch
from kfd.agent.context_state import ContextState
from kfd.agent.lifecycle import (
    CancelRequested,
    Idle,
    LifecycleEvent,
    State,
    TurnClosed,
    cancellable,
    status_of,
    transition,
)
from kfd.agent.live import LiveOutput
from kfd.agent.turn import run_turn
from kfd.errors import RequestError
from kfd.ids import new_id
from kfd.protocol import (
    ApprovalDecision,
    ApprovalResolved,
    Event,
    FrontendRef,
    FrontendsChanged,
    MessageQueued,
    MessageSendResult,
    MessageUser,
    Mode,
    QueuedMessage,
    SessionInfo,
    SessionStatus,
    SessionStatusChanged,
    SessionUpdated,
    Snapshot,
    ToolCall,
    ToolRequested,
    TurnOverride,
    TurnStarted,
)
from kfd.store.db import MessageRow
from kfd.transcript import Message

if TYPE_CHECKING:
    from kfd.agent.runtime import Runtime

log = logging.getLogger(__name__)

_CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Session:
    """One conversation bound to a workspace (it has every member of
    `kfd.agent.ports.TurnSession`, so the steps can drive it)."""

    def __init__(self, info: SessionInfo, runtime: Runtime, messages: list[Message]) -> None:
        self.info = info
        self.runtime = runtime
        self.messages = messages
        self.queue: deque[QueuedMessage] = deque()
        self.session_rules: list[str] = []
        self.focused: dict[str, FrontendRef] = {}
        """Frontends with the user's focus on this session, by frontend id."""
        self.tool_state: dict[str, dict[str, Any]] = {}
        self.user_message_ids: set[str] = set()
        self.context = ContextState()
        """Summary, recalled memories, tasks, token calibration (`kfd.agent.context`)."""
        self.live = LiveOutput(info.id, self.publish, runtime)
        self.approvals = Approvals(info.id, self.emit, self.advance)
        self._lifecycle: State = Idle(failed=info.status == "error")
        self._driver: asyncio.Task[None] | None = None
        self._stopping = False
        self._draining = False
        self._accepting: dict[str, asyncio.Future[None]] = {}
        """Messages whose sender waits until their message.user is on disk."""
        self._last_written: asyncio.Future[None] | None = None
        self.requested_calls: set[str] = set()
        """Calls of the current turn whose ``tool.requested`` is logged."""

    @property
    def id(self) -> str:
        """The session id."""
        return self.info.id

    @property
    def busy(self) -> bool:
        """A turn runs, or queued messages wait for the next one."""
        return self._driver is not None and not self._driver.done()

    @property
    def lifecycle(self) -> State:
        """Where the session is in its lifecycle (`kfd.agent.lifecycle`)."""
        return self._lifecycle

    def advance(self, event: LifecycleEvent) -> State:
        """Apply a lifecycle event; emit the status that follows if it changed."""
        self._lifecycle = transition(self._lifecycle, event)
        self.set_status(status_of(self._lifecycle))
        return self._lifecycle

    # -- events ------------------------------------------------------------

    def emit(
        self,
        event: Event,
        *,
        message: Message | None = None,
        tool_output: str | None = None,
        sync: bool = False,
    ) -> asyncio.Future[None]:
        """Number a durable event, apply it, and queue it for disk and bus.

        The returned future resolves once the event is durable and published;
        await it before acting on the outside world (running a tool), and
        before telling a client its request is done. ``sync``: the commit is
        synced to disk (what a client is told is saved; an approval answer
        from a frontend is always).
        """
        info = self.info
        info.last_seq += 1
        info.updated_at = time.time()
        event.seq = info.last_seq
        event.ts = info.updated_at
        row = None
        if message is not None:
            row = MessageRow(info.id, len(self.messages), info.last_seq, message)
            self.messages.append(message)
        output = (info.id, getattr(event, "call_id", ""), tool_output) if tool_output else None
        info.queued = len(self.queue)
        sync = sync or (isinstance(event, ApprovalResolved) and event.by is not None)
        written = self.runtime.journal.append(
            event, session=msgspec.structs.replace(info), message=row, tool_output=output, sync=sync
        )
        self._last_written = written
        if isinstance(event, MessageUser):
            waiter = self._accepting.pop(event.message_id, None)
            if waiter is not None:
                _chain(written, waiter)
        elif isinstance(event, ToolRequested):
            self.requested_calls.add(event.call_id)
        elif isinstance(event, TurnStarted):
            self.requested_calls.clear()  # every call of earlier turns has its result
        return written

    def ensure_requested(self, call: ToolCall) -> None:
        """Log ``tool.requested`` for a call about to get its result without one
        (the turn stopped between the model's answer and its calls): the log
        never holds a result without its request."""
        if call.id in self.requested_calls:
            return
        try:
            arguments = json.loads(call.arguments) if call.arguments else {}
        except ValueError:
            arguments = {}
        self.emit(
            ToolRequested(
                session=self.id,
                call_id=call.id,
                name=call.name,
                arguments=arguments if isinstance(arguments, dict) else {},
            )
        )

    def publish(self, event: Event) -> None:
        """Publish an ephemeral event placed after the last durable one."""
        event.seq = self.info.last_seq
        event.ts = time.time()
        event.ephemeral = True
        self.runtime.journal.publish(event)

    def set_status(self, status: SessionStatus, detail: str = "") -> None:
        """Record and announce ``status`` if it changed (crash recovery says why)."""
        if self.info.status != status:
            self.info.status = status
            self.emit(SessionStatusChanged(session=self.id, status=status, detail=detail))

    def set_frontends(self, count: int) -> None:
        """Announce how many frontends watch the session (ephemeral)."""
        if self.info.frontends != count:
            self.info.frontends = count
            self.publish(FrontendsChanged(session=self.id, count=count))

    def update(
        self,
        by: FrontendRef | None = None,
        put_back: TurnOverride | None = None,
        **changes: Any,
    ) -> asyncio.Future[None]:
        """Change title, mode, model, budget or archived, and tell everyone.

        The future resolves once the change is on disk (synced when a
        frontend asked for it: ``by``). ``put_back``: the change is for the
        running turn only, and these are the values it replaced (logged with
        it, so that recovering the turn after a crash puts them back too).
        """
        for name, value in changes.items():
            setattr(self.info, name, value)
        return self.emit(
            SessionUpdated(
                session=self.id,
                info=msgspec.structs.replace(self.info),
                by=by,
                put_back=put_back,
            ),
            sync=by is not None or put_back is not None,
        )

    def set_mode(self, mode: Mode, by: FrontendRef | None = None) -> asyncio.Future[None]:
        """Change the permission mode, and tell everyone (see `update`)."""
        return self.update(by=by, mode=mode)

    # -- the queue and the turn driver ---------------------------------------

    async def send(
        self,
        text: str,
        frontend: FrontendRef | None,
        client_msg_id: str | None = None,
        *,
        command: str = "",
        arguments: str = "",
    ) -> MessageSendResult:
        """Accept a user message: run it now, or queue it behind the running turn.

        Returns once the message is on disk (``message.user`` of the turn it
        starts, or ``message.queued``), synced: a client told "sent" finds it
        after any crash. A queued message survives a restart and runs then.

        With ``command``, the message runs that custom command: its prompt is
        made when its turn starts (`kfd.agent.commands`), which may take a while
        (its ``!`commands``` run, maybe asked about), so it is acknowledged once
        its ``message.queued`` is on disk; ``text`` is how it reads until then.
        """
        if client_msg_id is not None:
            if not _CLIENT_MSG_ID.fullmatch(client_msg_id):
                raise RequestError(
                    "bad_request", "client_msg_id: 1-64 characters of A-Z a-z 0-9 _ . : -"
                )
            message_id = f"u.{client_msg_id}"
            if message_id in self.user_message_ids:
                waiting = any(q.message_id == message_id for q in self.queue)
                return MessageSendResult(message_id=message_id, queued=waiting)
        else:
            message_id = new_id("u")
        self.user_message_ids.add(message_id)
        queued = QueuedMessage(
            message_id=message_id,
            text=text,
            frontend=frontend,
            command=command,
            arguments=arguments,
        )
        self.queue.append(queued)
        if self.busy or self._draining:
            await self.emit(
                MessageQueued(session=self.id, message_id=message_id, text=text, frontend=frontend),
                sync=True,
            )
            return MessageSendResult(message_id=message_id, queued=True)
        # The turn starts in its own task at once; its message.user makes this durable.
        accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._accepting[message_id] = accepted
        self._driver = asyncio.create_task(self._drive(), name=f"session {self.id}")
        await accepted
        return MessageSendResult(message_id=message_id, queued=False)

    def run_queued(self) -> bool:
        """Start the messages waiting in the queue (after a restart). True if any."""
        if not self.queue or self.busy or self._draining:
            return False
        self._driver = asyncio.create_task(self._drive(), name=f"session {self.id}")
        return True

    async def _drive(self) -> None:
        # Turns run inline in this task, so cancelling the task cancels exactly
        # the running turn; run_turn absorbs the cancellation and closes the turn.
        logcontext.SESSION.set(self.id)  # this task's log lines name the session
        try:
            while self.queue and not self._stopping and not self._draining:
                batch = take_batch(self.queue)
                logcontext.TURN.set(self.info.turns + 1)
                started = time.monotonic()
                log.info("turn %d started with %d message(s)", self.info.turns + 1, len(batch))
                try:
                    await run_turn(self, batch)
                except Exception:
                    log.exception("turn of session %s failed", self.id)
                finally:
                    if not isinstance(self._lifecycle, Idle):
                        self.advance(TurnClosed())  # broken off: the next turn can still start
                log.info("turn %d ended after %.1f s", self.info.turns, time.monotonic() - started)
        finally:
            for message_id, waiter in list(self._accepting.items()):
                if not waiter.done():
                    waiter.set_exception(
                        RequestError("internal", "the turn ended before the message was saved")
                    )
                del self._accepting[message_id]

    async def idle(self) -> None:
        """Wait until no turn runs (without cancelling one)."""
        driver = self._driver
        if driver is not None and not driver.done():
            await asyncio.wait({driver})

    def drain(self) -> None:
        """Let the running turn finish but start no other (a graceful restart);
        messages sent meanwhile wait in the queue, on disk, for the next start."""
        self._draining = True

    @property
    def pending_approvals(self) -> int:
        """Approvals asked and not answered yet."""
        return len(self.approvals.pending())

    def cancel(self, clear_queue: bool = False) -> bool:
        """Cancel the running turn. True if one was running."""
        if clear_queue:
            self.queue.clear()
        driver = self._driver
        if driver is None or driver.done() or not cancellable(self._lifecycle):
            return False
        self.advance(CancelRequested("cancelled"))
        driver.cancel()
        return True

    async def interrupt(self) -> None:
        """End the running turn as interrupted (daemon shutdown) and wait.

        Queued messages stay queued: they are on disk, and run after the next start.
        """
        self._stopping = True
        driver = self._driver
        if driver is None or driver.done():
            return
        if cancellable(self._lifecycle):
            self.advance(CancelRequested("interrupted"))
            driver.cancel()
            log.info("interrupting turn %d of session %s", self.info.turns, self.id)
        else:
            log.info("turn %d of session %s is closing: waiting for it", self.info.turns, self.id)
        await asyncio.gather(driver, return_exceptions=True)

    # -- approvals ----------------------------------------------------------

    def respond(
        self,
        approval_id: str,
        decision: ApprovalDecision,
        message: str,
        by: FrontendRef | None,
    ) -> tuple[str, asyncio.Future[None]]:
        """Answer a pending approval, or raise conflict / not_found / bad_request.

        Returns the rule the answer keeps: for ``allow_session`` (now in
        `session_rules`) and ``allow_always`` (the caller stores it for the
        project), else ""; and a future resolved once the answer is on disk
        (synced: see `emit`).
        """
        rule = self.approvals.respond(approval_id, decision, message, by)
        if decision == "allow_session" and rule and rule not in self.session_rules:
            self.session_rules.append(rule)
        written = self._last_written  # the approval.resolved just emitted
        assert written is not None
        return rule, written

    # -- snapshot -----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The live state at the current seq, for an attaching frontend."""
        return Snapshot(
            seq=self.info.last_seq,
            session=msgspec.structs.replace(self.info),
            pending_approvals=self.approvals.pending(),
            queued=list(self.queue),
            streaming=self.live.streaming(),
            running_tools=self.live.running(),
            tasks=list(self.context.tasks),
            focused=list(self.focused.values()),
        )


def _chain(source: asyncio.Future[None], target: asyncio.Future[None]) -> None:
    """Settle ``target`` as ``source`` settles."""

    def settle(done: asyncio.Future[None]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(None)

    source.add_done_callback(settle)
