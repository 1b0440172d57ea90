"""kfd's session events as ACP ``session/update`` notifications.

A `Translator` follows one session's events in order (history, then live)
and says what the editor should be sent for each: message and thought
chunks, tool calls with their kind, title, locations, diffs and output, the
plan, mode and title changes, context usage. It keeps only what it needs
to do that (what text was already sent, what each call asked for) and does
no I/O, so it is tested with plain calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from acp import schema as a

from kfd import protocol as p
from kfd.client.exact import visible
from kfd_acp import tools

Update = (
    a.UserMessageChunk
    | a.AgentMessageChunk
    | a.AgentThoughtChunk
    | a.ToolCallStart
    | a.ToolCallProgress
    | a.AgentPlanUpdate
    | a.AvailableCommandsUpdate
    | a.CurrentModeUpdate
    | a.SessionInfoUpdate
    | a.UsageUpdate
)
"""What `Translator.updates` yields: the ``update`` of a ``session/update``."""

_STATUS: dict[p.ToolStatus, a.ToolCallStatus] = {
    "ok": "completed",
    "error": "failed",
    "denied": "failed",
    "cancelled": "failed",
    "interrupted": "failed",
}

_PLAN_STATUS: dict[p.TaskStatus, a.PlanEntryStatus] = {
    "pending": "pending",
    "in_progress": "in_progress",
    "done": "completed",
}

VERDICTS: dict[p.ApprovalDecision, str] = {
    "allow": "allowed once",
    "allow_session": "allowed for this session",
    "allow_always": "allowed always in this project",
    "deny": "denied",
}


@dataclass(slots=True)
class _Call:
    name: str
    arguments: dict[str, Any]
    title: str
    kind: tools.ToolKind
    diff: tools.FileDiff | None
    locations: list[tools.Location]
    output: str = ""


@dataclass(slots=True)
class Translator:
    """One session's events to ACP updates. ``cwd`` is the session's workspace."""

    cwd: str
    mode: p.Mode = "default"
    title: str = ""
    own_messages: set[str] = field(default_factory=set)
    """User messages this editor sent: it shows them already, so they are not echoed."""
    _sent: dict[tuple[str, str], int] = field(default_factory=dict)
    _calls: dict[str, _Call] = field(default_factory=dict)
    _config_shown: dict[str, str] = field(default_factory=dict)
    """Config file path -> the problem shown, until it loads again."""

    def updates(self, event: p.Event) -> list[Update]:
        """What the editor is sent for ``event`` (often nothing)."""
        match event:
            case p.MessageUser():
                if event.message_id in self.own_messages:
                    return []
                return [_user(event.text)]
            case p.MessageDelta():
                return self._chunk(event.message_id, event.kind, event.text, event.offset)
            case p.MessageCompleted():
                return [
                    *self._rest(event.message_id, "reasoning", event.reasoning),
                    *self._rest(event.message_id, "text", event.text),
                ]
            case p.MessageDiscarded():
                sent = self._sent.pop((event.message_id, "text"), 0)
                self._sent.pop((event.message_id, "reasoning"), None)
                if sent:
                    return [_agent("\n\n[the answer was cut off; the model is asked again]\n\n")]
                return []
            case p.ToolRequested():
                return [self._requested(event)]
            case p.ToolStarted():
                return [_progress(event.call_id, status="in_progress")]
            case p.ToolOutput():
                return self._output(event)
            case p.ToolCompleted():
                return [self._completed(event)]
            case p.TasksUpdated():
                return [_plan(event.tasks)]
            case p.SessionUpdated():
                return self._session(event.info)
            case p.SessionCreated():
                self.mode, self.title = event.info.mode, event.info.title
                return []
            case p.UsageReported():
                return _usage(event)
            case p.ErrorEvent():
                return [_agent(f"\n\n⚠ {event.message}\n")]
            case p.TrustRequired():
                return [_agent(_trust_note(event))]
            case p.ConfigInvalid() | p.ConfigReloaded():
                return self._config(event)
            case p.ContextCompacted():
                return [
                    a.AgentThoughtChunk(
                        session_update="agent_thought_chunk",
                        content=_text(
                            f"[context compacted ({event.reason}): "
                            f"{event.tokens_before:,} → {event.tokens_after:,} tokens]\n"
                        ),
                    )
                ]
        return []

    def _config(self, event: p.ConfigInvalid | p.ConfigReloaded) -> list[Update]:
        """A config file that does not load, once (the daemon says so at every
        message while it does not), and that it loads again, if that was shown."""
        if isinstance(event, p.ConfigInvalid):
            if self._config_shown.get(event.path) == event.message:
                return []
            self._config_shown[event.path] = event.message
            # Quoted as code: the message may quote a repository's own file.
            return [_agent(f"\n\n⚠ config not reloaded: {_code(event.message)}\n")]
        if self._config_shown.pop(event.path, None) is None:
            return []
        changed = "; ".join([*event.applied, *event.not_applied]) or "fixed"
        return [_agent(f"\n\n✓ {_code(event.path)} loads again: {visible(changed)}\n")]

    # -- messages --------------------------------------------------------------

    def _chunk(self, message_id: str, kind: str, text: str, offset: int) -> list[Update]:
        key = (message_id, kind)
        sent = self._sent.get(key, 0)
        end = offset + len(text)
        if end <= sent:
            return []
        piece = text[max(0, sent - offset) :]
        self._sent[key] = end
        return [_thought(piece) if kind == "reasoning" else _agent(piece)]

    def _rest(self, message_id: str, kind: str, text: str) -> list[Update]:
        """What a completed message adds to the chunks already sent (all of it in a replay)."""
        sent = self._sent.pop((message_id, kind), 0)
        piece = text[sent:]
        if not piece:
            return []
        return [_thought(piece) if kind == "reasoning" else _agent(piece)]

    # -- tool calls --------------------------------------------------------------

    def _requested(self, event: p.ToolRequested) -> a.ToolCallStart:
        arguments = event.arguments
        call = _Call(
            name=event.name,
            arguments=arguments,
            title=visible(tools.title_of(event.name, arguments, event.summary)),
            kind=tools.kind_of(event.name),
            diff=tools.diff_of(event.name, arguments, self.cwd),
            locations=tools.locations_of(event.name, arguments, self.cwd),
        )
        self._calls[event.call_id] = call
        return a.ToolCallStart(
            session_update="tool_call",
            tool_call_id=event.call_id,
            title=call.title,
            kind=call.kind,
            status="pending",
            content=_base_content(call) or None,
            locations=[_location(loc) for loc in call.locations] or None,
            raw_input=arguments,
        )

    def _output(self, event: p.ToolOutput) -> list[Update]:
        call = self._calls.get(event.call_id)
        if call is None:
            return []
        call.output = tools.tail(call.output + event.data, 2 * tools.OUTPUT_SHOWN_CHARS)
        return [
            _progress(
                event.call_id,
                content=[
                    *_base_content(call),
                    _content(_output_text(call, tools.tail(call.output))),
                ],
            )
        ]

    def _completed(self, event: p.ToolCompleted) -> a.ToolCallProgress:
        call = self._calls.pop(event.call_id, None)
        status = _STATUS.get(event.status, "failed")
        if call is None:  # a call whose request was before the history this editor saw
            return _progress(
                event.call_id,
                status=status,
                content=[_content(tools.shown_output(event.output))],
            )
        content = _base_content(call)
        if call.name in tools.EDITING_TOOLS and event.status == "ok":
            first = event.output.splitlines()[0] if event.output else ""
            if first:
                content.append(_content(first))
        elif event.output:
            content.append(_content(_output_text(call, tools.shown_output(event.output))))
        if event.status != "ok" and event.reason and event.reason not in event.output:
            content.append(_content(f"{event.status}: {event.reason}"))
        locations = None
        if call.diff is not None and event.display is not None and event.display.diff:
            line = tools.first_changed_line(event.display.diff)
            if line is not None:
                locations = [a.ToolCallLocation(path=call.diff.path, line=line)]
        return _progress(
            event.call_id,
            status=status,
            content=content,
            locations=locations,
            raw_output={"status": event.status, "output": event.output, "reason": event.reason},
        )

    def permission_call(self, event: p.ApprovalRequested) -> a.ToolCallUpdate:
        """The tool call an approval is about, as ``session/request_permission`` shows it."""
        call = self._calls.get(event.call_id)
        if call is not None and call.name != event.tool:
            # Another call under this id (a daemon that let a provider's id repeat):
            # the approval's own tool and preview are all that surely describe it.
            call = None
        content = _base_content(call) if call is not None else []
        preview = event.preview
        # What the user allows is what runs: every character shows as itself, and a
        # change as the daemon worked it out on the file (every occurrence a
        # replace_all changes, the old text a write replaces), never as the model's
        # arguments alone suggest it.
        if preview.diff:
            content = [_content(tools.fenced(visible(preview.diff), "diff"))]
        elif call is None or call.diff is None:
            if preview.command:
                content.append(_content(tools.fenced(visible(preview.command), "sh")))
            elif preview.summary:
                content.append(_content(visible(preview.summary)))
        if event.reason:
            # The reason quotes the model's command: an editor shows Markdown, so it is
            # a code span nothing in it can close, never markup in kfd's voice.
            content.append(_content(f"Why kfd asks: {_code(event.reason)}"))
        locations = [_location(loc) for loc in call.locations] if call is not None else []
        return a.ToolCallUpdate(
            tool_call_id=event.call_id,
            title=call.title if call is not None else visible(f"{event.tool} {preview.summary}"),
            kind=call.kind if call is not None else tools.kind_of(event.tool),
            status="pending",
            content=content or None,
            locations=locations or None,
        )

    def answered_elsewhere(self, event: p.ApprovalResolved) -> a.ToolCallProgress:
        """Tell the editor an approval it was asked was answered by another frontend."""
        who = event.by.name if event.by is not None else "kfd"
        kept = f" (keeps {event.rule})" if event.rule else ""
        said = f": {event.message}" if event.message else ""
        verdict = VERDICTS[event.decision]
        call = self._calls.get(event.call_id)
        content = _base_content(call) if call is not None else []
        content.append(_content(visible(f"{verdict.capitalize()} by {who}{kept}{said}.")))
        return _progress(event.call_id, content=content)

    # -- session -----------------------------------------------------------------

    def _session(self, info: p.SessionInfo) -> list[Update]:
        updates: list[Update] = []
        if info.mode != self.mode:
            self.mode = info.mode
            updates.append(
                a.CurrentModeUpdate(session_update="current_mode_update", current_mode_id=info.mode)
            )
        if info.title != self.title:
            self.title = info.title
            updates.append(
                a.SessionInfoUpdate(session_update="session_info_update", title=info.title)
            )
        return updates


def _text(text: str) -> a.TextContentBlock:
    return a.TextContentBlock(type="text", text=text)


def _agent(text: str) -> a.AgentMessageChunk:
    return a.AgentMessageChunk(session_update="agent_message_chunk", content=_text(text))


def _thought(text: str) -> a.AgentThoughtChunk:
    return a.AgentThoughtChunk(session_update="agent_thought_chunk", content=_text(text))


def _user(text: str) -> a.UserMessageChunk:
    return a.UserMessageChunk(session_update="user_message_chunk", content=_text(text))


def _content(text: str) -> a.ContentToolCallContent:
    return a.ContentToolCallContent(type="content", content=_text(text))


ToolContent = a.ContentToolCallContent | a.FileEditToolCallContent | a.TerminalToolCallContent


def _base_content(call: _Call | None) -> list[ToolContent]:
    """What every update of a call shows first: the diff of an edit or write."""
    if call is None or call.diff is None:
        return []
    diff = call.diff
    old = visible(diff.old) if diff.old is not None else None
    return [
        a.FileEditToolCallContent(
            type="diff", path=visible(diff.path), old_text=old, new_text=visible(diff.new)
        )
    ]


def _output_text(call: _Call, output: str) -> str:
    if call.name == "bash":
        command = visible(str(call.arguments.get("command", "")))
        return tools.fenced(f"$ {command}\n{output}" if command else output, "console")
    return tools.fenced(output) if call.kind in ("read", "search", "fetch") else output


def _location(location: tools.Location) -> a.ToolCallLocation:
    return a.ToolCallLocation(path=location.path, line=location.line)


def _progress(
    call_id: str,
    *,
    status: a.ToolCallStatus | None = None,
    content: list[ToolContent] | None = None,
    locations: list[a.ToolCallLocation] | None = None,
    raw_output: Any = None,
) -> a.ToolCallProgress:
    return a.ToolCallProgress(
        session_update="tool_call_update",
        tool_call_id=call_id,
        status=status,
        content=content,
        locations=locations,
        raw_output=raw_output,
    )


def _plan(tasks: list[p.Task]) -> a.AgentPlanUpdate:
    return a.AgentPlanUpdate(
        session_update="plan",
        entries=[
            a.PlanEntry(content=task.text, priority="medium", status=_PLAN_STATUS[task.status])
            for task in tasks
        ],
    )


def _usage(event: p.UsageReported) -> list[Update]:
    if event.context_window <= 0:
        return []
    return [
        a.UsageUpdate(
            session_update="usage_update",
            used=max(0, event.context_tokens),
            size=event.context_window,
            cost=a.Cost(amount=event.total.cost_usd, currency="USD"),
        )
    ]


def _trust_note(event: p.TrustRequired) -> str:
    # The repository wrote these lines: shown escaped, one line each, never markup.
    ignored = "".join(f"\n- {_code(line)}" for line in event.ignored)
    return (
        f"\n\n⚠ {_code(event.path)} is not trusted, so kfd ignores:{ignored}\n"
        f"Run {_code(f'kfd trust {event.project}')} to review and trust it.\n"
    )


def _code(text: str) -> str:
    """``text`` as a Markdown code span on one line: control characters escaped, and a
    fence longer than any run of backticks in it (CommonMark), so nothing is markup."""
    shown = visible(text).replace("\n", "\\n")
    fence = "`" * (max((len(run) for run in re.findall("`+", shown)), default=0) + 1)
    return f"{fence} {shown} {fence}"


def available_commands(commands: list[tuple[str, str, str]]) -> a.AvailableCommandsUpdate:
    """``(name, description, input hint)`` triples as ACP's available commands."""
    return a.AvailableCommandsUpdate(
        session_update="available_commands_update",
        available_commands=[
            a.AvailableCommand(
                name=name,
                description=description,
                input=a.AvailableCommandInput(root=a.UnstructuredCommandInput(hint=hint))
                if hint
                else None,
            )
            for name, description, hint in commands
        ],
    )
