"""A session as one terminal sees it: a pure state machine over its events.

`SessionView.apply` takes each item an `Attachment` yields (history first,
then live events, with connection notices in between) and returns the blocks
to print; the view keeps what is not printed yet but drawn live under them:
the unfinished tail of a streamed answer, running tools and their output,
queued messages, pending approvals, status, usage and attached frontends.

No I/O here, so every decision about what a terminal shows is testable with
plain protocol events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kfd import protocol as p
from kfd.client import ConnectionLost, ConnectionRestored, Item
from kfd.client.exact import visible
from kfd_repl.blocks import (
    ApprovalAnswer,
    ApprovalAsk,
    AssistantText,
    Block,
    Note,
    NoteLevel,
    ToolLine,
    UserText,
)
from kfd_repl.markdown import complete_blocks_end

RUNNING_OUTPUT_KEPT = 16 * 1024
"""Characters of a running tool's output kept for the live area (its tail)."""

PASTE_LINES = 12
PASTE_CHARS = 3000
"""A user message longer than this (lines, or characters) is a paste: shown collapsed."""

PASTES_KEPT = 100
"""Collapsed pastes ``/expand`` can still show (the latest ones)."""

BUSY = frozenset({"running", "awaiting_approval"})


@dataclass(frozen=True, slots=True)
class Me:
    """This terminal, as the daemon knows it (to tell its actions from others')."""

    id: str
    name: str

    def owns(self, ref: p.FrontendRef | None) -> bool:
        # The name covers this terminal's earlier runs (same tty, new client id).
        return ref is not None and (ref.id == self.id or ref.name == self.name)


@dataclass(slots=True)
class Stream:
    """A streamed answer: its text so far and how much of it is printed."""

    text: str = ""
    printed: int = 0
    reasoning: str = ""

    @property
    def pending(self) -> str:
        return self.text[self.printed :]


@dataclass(slots=True)
class Call:
    """A tool call between its request and its result."""

    call_id: str
    name: str
    summary: str = ""
    read_only: bool = False
    started_at: float | None = None
    """Wall-clock start (from the event), None until it runs."""
    output: str = ""
    """The tail of its streamed output."""


@dataclass(slots=True)
class SessionView:
    """What one terminal knows about one session. Feed it with `apply`."""

    me: Me
    info: p.SessionInfo
    connected: bool = True
    context_tokens: int = 0
    context_window: int = 0
    streams: dict[str, Stream] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    approvals: dict[str, p.ApprovalRequested] = field(default_factory=dict)
    queued: dict[str, p.QueuedMessage] = field(default_factory=dict)
    first_seq: int | None = None
    """The seq of the first event seen: above 1 when older history was left out."""
    tasks: list[Any] = field(default_factory=list)
    """The model's plan, as the last ``tasks.updated`` gave it (items with text and status)."""
    cancelling: bool = False
    """This terminal asked to cancel the running turn (until the turn ends)."""
    pastes: dict[int, str] = field(default_factory=dict)
    """Long user messages shown collapsed, by the number ``/expand`` takes."""
    trust_shown: str = ""
    """The content (sha256) of the project config whose every grant ``/trust``
    last listed: what ``/trust yes`` trusts. Only ``/trust`` sets it, never a
    ``trust.required`` note, which names what is ignored, not all it grants."""
    _announced: tuple[str, str] | None = None
    _diff_shown: set[str] = field(default_factory=set)
    """Calls whose diff the approval already showed (not shown twice)."""
    _asked: set[str] = field(default_factory=set)
    """Approvals whose question is printed already."""
    _denied: set[str] = field(default_factory=set)
    """Calls whose denial an answer line said already (their result only repeats it)."""
    _last_error: str = ""
    """The last error printed in this turn (the turn's end does not repeat it)."""
    _pasted: int = 0

    # -- state the live area draws ------------------------------------------

    @property
    def busy(self) -> bool:
        """A turn is running (or waiting for an approval)."""
        return self.info.status in BUSY

    @property
    def running_calls(self) -> list[Call]:
        return [call for call in self.calls.values() if call.started_at is not None]

    @property
    def approval(self) -> p.ApprovalRequested | None:
        """The approval to answer first, if any."""
        return next(iter(self.approvals.values()), None)

    def load(self, snapshot: p.Snapshot, replayed_from: int = 1) -> list[Block]:
        """Take the live state of a fresh attach; the blocks to print first.

        The history replay that follows starts at seq ``replayed_from``: a
        pending approval asked before that is printed now, so its question is
        never missing from the screen.
        """
        self.info = snapshot.session
        blocks: list[Block] = []
        for approval in snapshot.pending_approvals:
            self.approvals[approval.approval_id] = approval
            if approval.seq < replayed_from:
                self._asked.add(approval.approval_id)
                blocks.append(ApprovalAsk(approval))
        for queued in snapshot.queued:
            self.queued[queued.message_id] = queued
        self.tasks = list(getattr(snapshot, "tasks", ()))
        for running in snapshot.running_tools:
            call = self.calls.setdefault(running.call_id, Call(running.call_id, running.name))
            call.summary = call.summary or running.summary
            call.started_at = running.started_at or time.time()
        return blocks

    # -- events -------------------------------------------------------------

    def apply(self, item: Item) -> list[Block]:
        """Update the state with one item; the blocks to print for it."""
        if isinstance(item, ConnectionLost):
            self.connected = False
            return [Note("lost the connection to the daemon; reconnecting when it is back", "warn")]
        if isinstance(item, ConnectionRestored):
            self.connected = True
            self.info = item.snapshot.session
            return [Note("reconnected to the daemon; what happened meanwhile follows")]
        if self.first_seq is None and not item.ephemeral:
            self.first_seq = item.seq
        return self._event(item)

    def _event(self, event: p.Event) -> list[Block]:
        match event:
            case p.SessionCreated():
                self._announced = (event.info.mode, event.info.model)
            case p.SessionUpdated():
                return self._updated(event)
            case p.SessionStatusChanged():
                self.info.status = event.status
                if event.status == "error" and event.detail:
                    return [Note(event.detail, "error")]
            case p.MessageQueued():
                self.queued[event.message_id] = p.QueuedMessage(
                    message_id=event.message_id, text=event.text, frontend=event.frontend
                )
            case p.MessageUser():
                self.queued.pop(event.message_id, None)
                author = None if self.me.owns(event.frontend) else _name(event.frontend)
                return [UserText(event.text, author, self._paste(event.text))]
            case p.TurnStarted():
                self._last_error = ""
            case p.MessageDelta():
                return self._delta(event)
            case p.MessageCompleted():
                return self._completed(event)
            case p.MessageDiscarded():
                stream = self.streams.pop(event.message_id, None)
                if stream is not None and stream.printed:
                    return [Note("the answer above was cut off; the model is asked again", "warn")]
            case p.ModelRetry():
                return [
                    Note(
                        f"model request failed ({event.reason}); "
                        f"retry {event.attempt} in {event.delay_s:.1f} s",
                        "warn",
                    )
                ]
            case p.ToolRequested():
                self.calls[event.call_id] = Call(
                    event.call_id, event.name, event.summary, event.read_only
                )
            case p.ToolStarted():
                call = self.calls.setdefault(event.call_id, Call(event.call_id, event.name))
                call.summary = call.summary or event.summary
                call.started_at = event.ts or time.time()
            case p.ToolOutput():
                call = self.calls.setdefault(event.call_id, Call(event.call_id, "tool"))
                if call.started_at is None:
                    call.started_at = time.time()
                call.output = (call.output + event.data)[-RUNNING_OUTPUT_KEPT:]
            case p.ToolCompleted():
                return [self._tool_line(event)]
            case p.ApprovalRequested():
                self.approvals[event.approval_id] = event
                if event.preview.diff:
                    self._diff_shown.add(event.call_id)
                if event.approval_id in self._asked:
                    return []  # printed at attach already
                self._asked.add(event.approval_id)
                return [ApprovalAsk(event)]
            case p.ApprovalResolved():
                return [self._resolved(event)]
            case p.UsageReported():
                self.info.usage = event.total
                if event.model:
                    self.info.model = event.model
                self.context_tokens = event.context_tokens
                self.context_window = event.context_window
            case p.TurnCompleted():
                return self._turn_completed(event)
            case p.ErrorEvent():
                self._last_error = event.message
                return [Note(f"error: {event.message}", "error")]
            case p.HookReported():
                text = f"hook {event.hook} {event.outcome}: {event.message}"
                return [Note(text, "info" if event.outcome == "denied" else "warn")]
            case p.CheckpointRestored():
                who = f" by {event.by.name}" if event.by else ""
                files = ", ".join(event.files[:5]) + (" …" if len(event.files) > 5 else "")
                kept = f"; kept as changed since: {', '.join(event.kept)}" if event.kept else ""
                forked = f"; the conversation went on in {event.forked}" if event.forked else ""
                turns = ", ".join(map(str, event.turns)) or "-"
                return [Note(f"undid turn(s) {turns}{who}: {files or 'no file'}{kept}{forked}")]
            case p.FrontendsChanged():
                self.info.frontends = event.count
            case _:
                return self._newer(event)
        return []

    def _newer(self, event: p.Event) -> list[Block]:
        """Events of daemon features newer than some installs: read by name, defensively."""
        kind = p.event_type(event)
        get = getattr
        if kind == "tasks.updated":
            self.tasks = list(get(event, "tasks", ()))
        elif kind == "cost.updated":
            total = get(event, "total", None)
            if isinstance(total, p.Usage):
                self.info.usage = total
        elif kind == "context.compacting":
            return [Note(f"compacting the context ({get(event, 'reason', '')})…")]
        elif kind == "context.compacted":
            before, after = get(event, "tokens_before", 0), get(event, "tokens_after", 0)
            reason = get(event, "reason", "")
            return [Note(f"context compacted ({reason}): {before:,} → {after:,} tokens")]
        elif kind == "memory.recalled":
            memories = [str(get(m, "text", m)) for m in get(event, "memories", ())]
            if memories:
                shown = "; ".join(text.split("\n", 1)[0][:60] for text in memories[:3])
                more = f" and {len(memories) - 3} more" if len(memories) > 3 else ""
                return [Note(f"recalled {len(memories)} memories: {shown}{more}")]
        elif kind == "budget.warning":
            message = get(event, "message", "") or f"{get(event, 'budget', '')} budget nearly spent"
            return [Note(str(message), "warn")]
        elif kind == "trigger.fired":
            files = ", ".join(str(f) for f in get(event, "files", ())[:3])
            return [Note(f"trigger {get(event, 'trigger', '')} fired: {files}".rstrip(": "))]
        elif kind == "trust.required":
            # Not armed for /trust yes: this note does not show everything trusting grants.
            return [Note(trust_question(event), "warn")]
        elif kind == "trust.changed":
            who = _name(get(event, "by", None)) or "kfd"
            state = "trusted" if get(event, "trusted", False) else "no longer trusted"
            return [Note(f"{get(event, 'path', '.kfd/config.toml')} is {state} (by {who})")]
        return []

    def _updated(self, event: p.SessionUpdated) -> list[Block]:
        frontends = self.info.frontends
        self.info = event.info
        self.info.frontends = frontends
        now = (event.info.mode, event.info.model)
        before, self._announced = self._announced, now
        if before is None or before == now:
            return []
        who = "you" if self.me.owns(event.by) else _name(event.by) or "kfd"
        changes = []
        if now[0] != before[0]:
            changes.append(f"mode {now[0]}")
        if now[1] != before[1]:
            changes.append(f"model {now[1]}")
        return [Note(f"{', '.join(changes)} (set by {who})")]

    def _delta(self, delta: p.MessageDelta) -> list[Block]:
        stream = self.streams.setdefault(delta.message_id, Stream())
        if delta.kind == "reasoning":
            stream.reasoning += delta.text
            return []
        stream.text += delta.text
        end = complete_blocks_end(stream.text, stream.printed)
        if end == stream.printed:
            return []
        block, stream.printed = stream.text[stream.printed : end], end
        return [AssistantText(block)] if block.strip() else []

    def _completed(self, event: p.MessageCompleted) -> list[Block]:
        stream = self.streams.pop(event.message_id, None)
        printed = stream.printed if stream is not None else 0
        rest = event.text[printed:]
        return [AssistantText(rest)] if rest.strip() else []

    def _tool_line(self, event: p.ToolCompleted) -> ToolLine:
        call = self.calls.pop(event.call_id, None) or Call(event.call_id, event.name)
        display = event.display
        diff = (display.diff or "") if display is not None else ""
        if event.call_id in self._diff_shown:
            self._diff_shown.discard(event.call_id)
            diff = ""
        # Read-only results are for the model; what changed things is for the user.
        # A cancelled call's result only repeats what the end of the turn says; an
        # edit's result only repeats its diff.
        shown = event.status != "cancelled" and (event.status != "ok" or not call.read_only)
        shown = shown and not (display is not None and display.diff and event.status == "ok")
        if event.call_id in self._denied:
            self._denied.discard(event.call_id)
            shown = False
        return ToolLine(
            name=event.name,
            summary=call.summary or (display.summary if display is not None else ""),
            status=event.status,
            duration_ms=event.duration_ms,
            output="" if diff or not shown else event.output,
            diff=diff,
        )

    def _paste(self, text: str) -> int | None:
        """The paste number of a long message (None for a short one)."""
        if text.count("\n") < PASTE_LINES and len(text) <= PASTE_CHARS:
            return None
        self._pasted += 1
        self.pastes[self._pasted] = text
        if len(self.pastes) > PASTES_KEPT:
            del self.pastes[min(self.pastes)]
        return self._pasted

    def _resolved(self, event: p.ApprovalResolved) -> ApprovalAnswer:
        asked = self.approvals.pop(event.approval_id, None)
        self._asked.discard(event.approval_id)
        if event.decision == "deny":
            self._denied.add(event.call_id)
        if event.by is None:
            by: str | None = ""
        elif self.me.owns(event.by):
            by = None
        else:
            by = _name(event.by)
        what = ""
        if asked is not None:
            preview = asked.preview
            what = preview.command or preview.summary.removeprefix(f"{asked.tool} ")
        return ApprovalAnswer(
            tool=asked.tool if asked is not None else "",
            decision=event.decision,
            by=by,
            message=event.message,
            rule=event.rule,
            what=what,
        )

    def _turn_completed(self, event: p.TurnCompleted) -> list[Block]:
        blocks: list[Block] = []
        # A cancelled turn leaves its stream unfinished: keep what was seen.
        for stream in self.streams.values():
            if stream.pending.strip():
                blocks.append(AssistantText(stream.pending))
        self.streams.clear()
        self.calls.clear()
        self.approvals.clear()
        self.cancelling = False
        said, self._last_error = self._last_error, ""
        if event.stop_reason == "error" and event.message and event.message == said:
            return blocks  # the error event said it already
        if event.stop_reason != "end_turn":
            detail = f": {event.message}" if event.message else ""
            level: NoteLevel = "error" if event.stop_reason == "error" else "warn"
            blocks.append(Note(f"turn {event.stop_reason.replace('_', ' ')}{detail}", level))
        return blocks


def trust_question(event: p.Event) -> str:
    """What a ``trust.required`` event asks, as one note."""
    get = getattr
    path = visible(str(get(event, "path", ".kfd/config.toml")))
    ignored = "; ".join(visible(str(line)) for line in get(event, "ignored", ()))
    if not get(event, "grants", ()):
        return f"ignored in {path}: {ignored}"
    return (
        f"{path} is not trusted, so it only narrows rights. Ignored: {ignored}. "
        "/trust shows all it grants; then /trust yes trusts exactly what it showed"
    )


def offers_always(approval: p.ApprovalRequested) -> bool:
    """Whether "allow always" can keep this approval's rule for the project
    (the daemon says so: not without a rule, nor for a one-off grant)."""
    return approval.can_keep


def _name(ref: p.FrontendRef | None) -> str:
    if ref is None:
        return ""
    return ref.name if ref.name and ref.name != "unknown" else ref.id
