"""A live session: its state, its event stream, its queue and its approvals.

A `Session` is the only writer of its events: `emit` numbers them (``seq``),
updates the session's info and hands them to the journal. The turn loop
(`kfd.agent.turn`) drives the conversation; this module keeps what frontends
need to see: status, the message queue, pending approvals, partial streams.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from kfd.agent.commands import take_batch
from kfd.agent.context_state import ContextState
from kfd.agent.streams import StreamBuffer
from kfd.errors import RequestError
from kfd.ids import new_id
from kfd.policy.rules import GRANT, RuleError, parse_rule
from kfd.protocol import (
    ApprovalDecision,
    ApprovalRequested,
    ApprovalResolved,
    Event,
    FrontendRef,
    FrontendsChanged,
    MessageDelta,
    MessageQueued,
    MessageSendResult,
    Mode,
    Preview,
    QueuedMessage,
    RunningTool,
    SessionInfo,
    SessionStatus,
    SessionStatusChanged,
    SessionUpdated,
    Snapshot,
    StopReason,
    StreamingMessage,
    ToolOutput,
)
from kfd.store.db import MessageRow
from kfd.transcript import Message

if TYPE_CHECKING:
    from kfd.agent.runtime import Runtime

log = logging.getLogger(__name__)

RUNNING_OUTPUT_KEPT = 64 * 1024
"""Characters of a running tool's output kept for frontends that attach late."""

STREAMED_OUTPUT_LIMIT = 4 * 1024 * 1024
"""Characters of one call's output streamed to frontends; the rest is only in
the result (a command printing gigabytes must not flood every terminal)."""

_CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(slots=True)
class _PendingApproval:
    event: ApprovalRequested
    future: asyncio.Future[tuple[ApprovalDecision, str]]


@dataclass(slots=True)
class _RunningTool:
    call_id: str
    name: str
    summary: str
    started_at: float
    output: StreamBuffer
    muted: bool = False


@dataclass(slots=True)
class _Stream:
    message_id: str
    text: StreamBuffer
    reasoning: StreamBuffer
    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)


class Session:
    """One conversation bound to a workspace."""

    def __init__(self, info: SessionInfo, runtime: Runtime, messages: list[Message]) -> None:
        self.info = info
        self.runtime = runtime
        self.messages = messages
        self.queue: deque[QueuedMessage] = deque()
        self.session_rules: list[str] = []
        self.untrusted: tuple[int, str] | None = None
        """(turn, tool) of the first untrusted output the model read in that turn:
        the rest of the turn asks more (`kfd.policy.engine`)."""
        self._untrusted_results: tuple[int, str] | None = None
        self.tool_state: dict[str, dict[str, Any]] = {}
        self.user_message_ids: set[str] = set()
        self.cancel_reason: StopReason = "cancelled"
        self._pending: dict[str, _PendingApproval] = {}
        self._resolved: OrderedDict[str, FrontendRef | None] = OrderedDict()
        self._stream: _Stream | None = None
        self._running: dict[str, _RunningTool] = {}
        self._driver: asyncio.Task[None] | None = None
        self._in_turn = False
        self._stopping = False
        self.context = ContextState()
        """Summary, recalled memories, tasks, token calibration (`kfd.agent.context`)."""

    @property
    def id(self) -> str:
        return self.info.id

    def untrusted_tool(self) -> str:
        """The tool whose untrusted output the model read in the running turn ("" if none).

        Calls of the answer that brought it are not affected: the model chose them
        all before it read any of their results.
        """
        if self.untrusted is not None and self.untrusted[0] == self.info.turns:
            return self.untrusted[1]
        return ""

    def untrusted_result(self, tool: str) -> None:
        """Note an untrusted result of ``tool``; the model reads it with the others."""
        if self._untrusted_results is None or self._untrusted_results[0] != self.info.turns:
            self._untrusted_results = (self.info.turns, tool)

    def results_read(self) -> None:
        """The results of the model's last answer go back to it: any untrusted one
        makes the rest of the turn ask more."""
        seen, self._untrusted_results = self._untrusted_results, None
        if seen is not None and seen[0] == self.info.turns and not self.untrusted_tool():
            self.untrusted = seen

    @property
    def busy(self) -> bool:
        return self._driver is not None and not self._driver.done()

    # -- events ------------------------------------------------------------

    def emit(
        self,
        event: Event,
        *,
        message: Message | None = None,
        tool_output: str | None = None,
    ) -> asyncio.Future[None]:
        """Number a durable event, apply it, and queue it for disk and bus.

        The returned future resolves once the event is durable and published;
        await it before acting on the outside world (running a tool).
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
        return self.runtime.journal.append(
            event, session=msgspec.structs.replace(info), message=row, tool_output=output
        )

    def publish(self, event: Event) -> None:
        """Publish an ephemeral event placed after the last durable one."""
        event.seq = self.info.last_seq
        event.ts = time.time()
        event.ephemeral = True
        self.runtime.journal.publish(event)

    def set_status(self, status: SessionStatus, detail: str = "") -> None:
        if self.info.status != status:
            self.info.status = status
            self.emit(SessionStatusChanged(session=self.id, status=status, detail=detail))

    def set_frontends(self, count: int) -> None:
        if self.info.frontends != count:
            self.info.frontends = count
            self.publish(FrontendsChanged(session=self.id, count=count))

    def update(self, by: FrontendRef | None = None, **changes: Any) -> SessionInfo:
        """Change title, mode, model or archived, and tell everyone."""
        for name, value in changes.items():
            setattr(self.info, name, value)
        self.emit(SessionUpdated(session=self.id, info=msgspec.structs.replace(self.info), by=by))
        return self.info

    def set_mode(self, mode: Mode, by: FrontendRef | None = None) -> SessionInfo:
        return self.update(by=by, mode=mode)

    # -- streams -------------------------------------------------------------

    def begin_stream(self) -> str:
        """Start a streamed assistant message; returns its id."""
        message_id = new_id("m")

        def flusher(kind: str) -> Any:
            def flush(text: str, offset: int) -> None:
                self.publish(
                    MessageDelta(
                        session=self.id,
                        message_id=message_id,
                        text=text,
                        offset=offset,
                        kind="text" if kind == "text" else "reasoning",
                    )
                )

            return flush

        window = self.runtime.delta_window_s
        self._stream = _Stream(
            message_id=message_id,
            text=StreamBuffer(window, flusher("text")),
            reasoning=StreamBuffer(window, flusher("reasoning")),
        )
        return message_id

    def stream_text(self, text: str, *, reasoning: bool = False) -> None:
        stream = self._stream
        if stream is None:
            return
        if reasoning:
            stream.reasoning_parts.append(text)
            stream.reasoning.add(text)
        else:
            stream.text_parts.append(text)
            stream.text.add(text)

    def streamed_chars(self) -> int:
        """Characters of text and reasoning the current stream has brought so far."""
        stream = self._stream
        if stream is None:
            return 0
        return sum(map(len, stream.text_parts)) + sum(map(len, stream.reasoning_parts))

    def end_stream(self, *, publish_pending: bool = True) -> None:
        """Flush (or drop) what is pending; the completed message follows."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        for buffer in (stream.reasoning, stream.text):
            if publish_pending:
                buffer.flush()
            else:
                buffer.close()

    # -- running tools -------------------------------------------------------

    def tool_started(self, call_id: str, name: str, summary: str) -> None:
        def flush(text: str, offset: int) -> None:
            self.publish(ToolOutput(session=self.id, call_id=call_id, data=text, offset=offset))

        buffer = StreamBuffer(self.runtime.output_window_s, flush, keep=RUNNING_OUTPUT_KEPT)
        self._running[call_id] = _RunningTool(call_id, name, summary, time.time(), buffer)

    def tool_output(self, call_id: str, text: str) -> None:
        running = self._running.get(call_id)
        if running is None or running.muted:
            return
        if running.output.length + len(text) > STREAMED_OUTPUT_LIMIT:
            running.muted = True
            text = "\n[… output continues; no longer streamed: see the tool's result …]\n"
        running.output.add(text)

    def tool_finished(self, call_id: str) -> None:
        running = self._running.pop(call_id, None)
        if running is not None:
            running.output.flush()

    # -- the queue and the turn driver ---------------------------------------

    def send(
        self,
        text: str,
        frontend: FrontendRef | None,
        client_msg_id: str | None = None,
        *,
        command: str = "",
        arguments: str = "",
    ) -> MessageSendResult:
        """Accept a user message: run it now, or queue it behind the running turn.

        With ``command``, the message runs that custom command (its prompt is
        made when its turn starts: `kfd.agent.commands`); ``text`` is how it reads."""
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
        if self.busy:
            self.emit(
                MessageQueued(session=self.id, message_id=message_id, text=text, frontend=frontend)
            )
            return MessageSendResult(message_id=message_id, queued=True)
        self._driver = asyncio.create_task(self._drive(), name=f"session {self.id}")
        return MessageSendResult(message_id=message_id, queued=False)

    async def _drive(self) -> None:
        from kfd.agent.turn import run_turn  # the loop imports this module

        # Turns run inline in this task, so cancelling the task cancels exactly
        # the running turn; run_turn absorbs the cancellation and closes the turn.
        while self.queue and not self._stopping:
            batch = take_batch(self.queue)
            self.cancel_reason = "interrupted" if self._stopping else "cancelled"
            self._in_turn = True
            try:
                await run_turn(self, batch)
            except Exception:
                log.exception("turn of session %s failed", self.id)
            finally:
                self._in_turn = False

    def cancel(self, clear_queue: bool = False) -> bool:
        """Cancel the running turn. True if one was running."""
        if clear_queue:
            self.queue.clear()
        driver = self._driver
        if driver is None or driver.done() or not self._in_turn:
            return False
        self.cancel_reason = "cancelled"
        driver.cancel()
        return True

    async def interrupt(self) -> None:
        """End the running turn as interrupted (daemon shutdown) and wait."""
        self._stopping = True
        self.queue.clear()
        driver = self._driver
        if driver is None or driver.done():
            return
        self.cancel_reason = "interrupted"
        if self._in_turn:
            driver.cancel()
        await asyncio.gather(driver, return_exceptions=True)

    # -- approvals ----------------------------------------------------------

    async def ask(
        self, call_id: str, tool: str, preview: Preview, reason: str, rule: str
    ) -> tuple[ApprovalDecision, str]:
        """Ask every attached frontend; the first answer wins."""
        approval_id = new_id("a")
        event = ApprovalRequested(
            session=self.id,
            approval_id=approval_id,
            call_id=call_id,
            tool=tool,
            preview=preview,
            reason=reason,
            session_rule=rule,
            can_keep=_keepable(rule),
        )
        future: asyncio.Future[tuple[ApprovalDecision, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[approval_id] = _PendingApproval(event, future)
        self.info.status = "awaiting_approval"
        self.emit(SessionStatusChanged(session=self.id, status="awaiting_approval"))
        self.emit(event)
        try:
            return await future
        finally:
            if self._pending.pop(approval_id, None) is not None:
                # Cancelled while waiting: dismiss the prompt everywhere.
                self._remember_resolved(approval_id, None)
                self.emit(
                    ApprovalResolved(
                        session=self.id,
                        approval_id=approval_id,
                        call_id=call_id,
                        decision="deny",
                        message="the turn ended before an answer",
                    )
                )
            if not self._pending and self.info.status == "awaiting_approval":
                self.set_status("running")

    def respond(
        self,
        approval_id: str,
        decision: ApprovalDecision,
        message: str,
        by: FrontendRef | None,
    ) -> str:
        """Answer a pending approval, or raise conflict / not_found / bad_request.

        Returns the rule the answer keeps: for ``allow_session`` (now in
        `session_rules`) and ``allow_always`` (the caller stores it for the
        project), else "".
        """
        waiting = self._pending.get(approval_id)
        if decision == "allow_always" and waiting is not None and not waiting.event.can_keep:
            raise RequestError(
                "bad_request",
                f"approval {approval_id} offers no rule to keep for the project; "
                "answer allow, allow_session or deny",
            )
        pending = self._pending.pop(approval_id, None)
        if pending is None:
            if approval_id in self._resolved:
                who = self._resolved[approval_id]
                by_whom = f" by {who.name} ({who.id})" if who else ""
                raise RequestError(
                    "conflict", f"approval {approval_id} was already answered{by_whom}"
                )
            raise RequestError(
                "not_found", f"no pending approval {approval_id} in session {self.id}"
            )
        rule = ""
        if decision in ("allow_session", "allow_always"):
            rule = pending.event.session_rule
        if decision == "allow_session" and rule and rule not in self.session_rules:
            self.session_rules.append(rule)
        self._remember_resolved(approval_id, by)
        self.emit(
            ApprovalResolved(
                session=self.id,
                approval_id=approval_id,
                call_id=pending.event.call_id,
                decision=decision,
                message=message,
                by=by,
                rule=rule,
            )
        )
        if not pending.future.done():
            pending.future.set_result((decision, message))
        return rule

    def _remember_resolved(self, approval_id: str, by: FrontendRef | None) -> None:
        self._resolved[approval_id] = by
        while len(self._resolved) > 1000:
            self._resolved.popitem(last=False)

    # -- snapshot -----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The live state at the current seq, for an attaching frontend."""
        streaming = None
        if self._stream is not None:
            streaming = StreamingMessage(
                message_id=self._stream.message_id,
                text="".join(self._stream.text_parts),
                reasoning="".join(self._stream.reasoning_parts),
            )
        running = []
        for tool in self._running.values():
            output, offset = tool.output.kept()
            running.append(
                RunningTool(
                    call_id=tool.call_id,
                    name=tool.name,
                    summary=tool.summary,
                    started_at=tool.started_at,
                    output=output,
                    output_offset=offset,
                )
            )
        return Snapshot(
            seq=self.info.last_seq,
            session=msgspec.structs.replace(self.info),
            pending_approvals=[p.event for p in self._pending.values()],
            queued=list(self.queue),
            streaming=streaming,
            running_tools=running,
            tasks=list(self.context.tasks),
        )


def _keepable(text: str) -> bool:
    """Whether "allow always" can keep the rule ``text`` (a rule, not a grant)."""
    if not text:
        return False
    try:
        rule = parse_rule(text)
    except RuleError:
        return False
    return rule.tool != GRANT
