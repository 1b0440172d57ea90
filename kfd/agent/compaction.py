"""Compaction: the older part of the transcript becomes a summary for the model.

When the next request would pass the threshold (``[context] compact_at`` of
the window less the output reserve), by hand (``session.compact``), or when
the provider rejected a request as too long, the session's own model writes a
structured summary of the older messages (goal, decisions, files touched,
open tasks, next steps) and the model reads, from then on, that summary and
the recent messages verbatim. The transcript itself is kept whole (for
frontends, forks and ``kfd context``); ``context.compacted`` records the cut.

Where to cut is a pure function (`choose_cut`): only before a user or an
assistant message, so a tool call and its results are never separated; the
recent part kept is at most ``keep_recent_tokens`` (and a third of the
threshold), preferring to keep whole turns.

The summary request reuses the conversation's own prefix (system prompt,
tools, messages) and appends the instruction, so a provider's prefix cache
serves most of it; the model is told not to call tools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kfd.agent.prompt import build_request, limits, model_view, refresh_preamble
from kfd.agent.tokens import message_tokens, request_tokens
from kfd.errors import ContextTooLong, ProviderError
from kfd.gateway.types import ModelRequest
from kfd.protocol import CompactReason, ContextCompacted, ContextCompacting
from kfd.transcript import AssistantMessage, Message, ToolResultMessage, UserMessage

if TYPE_CHECKING:
    from kfd.agent.ports import AgentSession

log = logging.getLogger(__name__)

SUMMARY_INSTRUCTIONS = """\
[kfd: compaction] Summarise the conversation so far for your own later use: \
it will replace the older messages, and you will go on from this summary and \
the most recent messages alone. Do not call tools. Write these sections, short \
and concrete, keeping exact paths, names, commands, errors and numbers that \
later work needs:
## Goal
What the user wants, in their words where it matters.
## Decisions
What was decided or found out, and why.
## Files touched
Each path read or changed, and what changed.
## Open tasks
What is still to do.
## Next steps
What to do next.
"""
"""The instruction that ends a summary request (tests find it by its first words)."""

CLIPPED_RESULT_CHARS = 2_000
"""Tool results are cut to this in a summary request that was itself too long."""


class NothingToCompact(Exception):
    """No older message can be summarised (the recent part is all there is), or
    the summary would not be smaller than what it replaces."""


def choose_cut(
    messages: Sequence[Message],
    first_kept: int,
    keep_tokens: int,
    size: Callable[[Message], int] = message_tokens,
) -> int | None:
    """Where the verbatim part starts after a compaction, or None.

    A cut is an index of a user or assistant message after ``first_kept``:
    everything before it is summarised. The last step (the last assistant
    message and its results, or the last user message) is always kept. Among
    cuts whose kept part fits ``keep_tokens``, the earliest before a user
    message wins (whole turns), else the earliest before an assistant message;
    when nothing fits, the latest possible cut.
    """
    boundaries = [
        index
        for index in range(first_kept + 1, len(messages))
        if isinstance(messages[index], UserMessage | AssistantMessage)
    ]
    if not boundaries:
        return None
    tail = 0
    kept_from: dict[int, int] = {}
    boundary_set = set(boundaries)
    for index in range(len(messages) - 1, first_kept, -1):
        tail += size(messages[index])
        if index in boundary_set:
            kept_from[index] = tail
    fitting = [b for b in boundaries if kept_from[b] <= keep_tokens]
    for index in fitting:
        if isinstance(messages[index], UserMessage):
            return index
    return fitting[0] if fitting else boundaries[-1]


def files_changed(session: AgentSession, messages: Sequence[Message]) -> list[str]:
    """Paths the tool calls in ``messages`` wrote, in first-written order.

    Asked of each tool (`Tool.paths`), so it holds for plugins' tools too.
    """
    registry = session.runtime.tools
    written: list[str] = []
    for message in messages:
        if not isinstance(message, AssistantMessage):
            continue
        for call in message.tool_calls:
            tool = registry.get(call.name, session.id)
            if tool is None:
                continue
            try:
                _, args = registry.parse(tool, call.arguments)
                accessed = tool.paths(args)
            except Exception:
                continue  # a malformed call (or a tool that cannot tell) changed nothing known
            for access in accessed:
                if access.write and access.path not in written:
                    written.append(access.path)
    return written


def _summary_request(
    session: AgentSession, turn: int, cut: int, instructions: str, *, clipped: bool
) -> ModelRequest:
    config = session.runtime.config
    base = build_request(session, turn)
    older = model_view(session, end=cut)
    if clipped:
        older = [_clip(message) for message in older]
    ask = SUMMARY_INSTRUCTIONS
    if instructions:
        ask += f"\nThe user asks that the summary also: {instructions}\n"
    return ModelRequest(
        model=base.model,
        system=base.system,
        messages=[*older, UserMessage(text=ask, id="compaction")],
        tools=base.tools,
        max_output_tokens=min(config.context.summary_max_tokens, config.model.max_output_tokens),
        metadata={**base.metadata, "purpose": "compaction"},
    )


def _clip(message: Message) -> Message:
    if isinstance(message, ToolResultMessage) and len(message.content) > CLIPPED_RESULT_CHARS:
        half = CLIPPED_RESULT_CHARS // 2
        omitted = len(message.content) - CLIPPED_RESULT_CHARS
        content = (
            f"{message.content[:half]}\n[… {omitted} characters left out of this summary "
            f"request …]\n{message.content[-half:]}"
        )
        return ToolResultMessage(
            call_id=message.call_id, name=message.name, content=content, is_error=message.is_error
        )
    return message


async def _ask_for_summary(session: AgentSession, turn: int, request: ModelRequest) -> str:
    runtime = session.runtime
    headroom = await runtime.accounting.before_request(session, request)
    async with runtime.accounting.metered(session, turn, request, headroom) as meter:
        async for _ in meter.stream(runtime.provider):
            pass
    completed = meter.completed
    if completed is None:  # pragma: no cover - providers always complete or raise
        raise ProviderError("the summary stream ended without an answer")
    session.context.calibration.observe(request_tokens(request), completed.usage.input_tokens)
    text = completed.message.text.strip()
    if not text:
        raise ProviderError(
            "the model answered the compaction request without a summary; "
            "try /compact again, or start a new session"
        )
    return text


def _appendix(session: AgentSession, summarised: Sequence[Message]) -> str:
    """Facts the summary must carry whatever the model wrote."""
    parts = []
    written = files_changed(session, summarised)
    if written:
        listed = "\n".join(f"- {path}" for path in written)
        parts.append(f"## Files changed (from the tool calls)\n{listed}")
    tasks = session.context.tasks
    if tasks:
        marks = {"pending": "[ ]", "in_progress": "[~]", "done": "[x]"}
        lines = [f"- {marks[task.status]} {task.text}" for task in tasks]
        parts.append("## Task list (as set with tasks_set)\n" + "\n".join(lines))
    return "\n\n".join(parts)


async def compact(
    session: AgentSession, turn: int, reason: CompactReason, instructions: str = ""
) -> ContextCompacted:
    """Summarise the older messages now. Call with ``session.context.lock`` held.

    Raises `NothingToCompact` (then nothing changed), or the `ProviderError`
    of the summary request. A compaction never makes the context larger.
    """
    state = session.context
    config = session.runtime.config.context
    window = limits(session)
    before = state.calibration.scale(request_tokens(build_request(session, turn)))
    keep = min(config.keep_recent_tokens, window.threshold // 3)
    cut = choose_cut(session.messages, state.first_kept, keep)
    if cut is None:
        state.compacted_at = len(session.messages)
        raise NothingToCompact("nothing to compact: the conversation is only its most recent step")
    session.publish(ContextCompacting(session=session.id, reason=reason, tokens=before))
    try:
        text = await _ask_for_summary(
            session, turn, _summary_request(session, turn, cut, instructions, clipped=False)
        )
    except ContextTooLong:
        log.info("session %s: the summary request was too long; clipping tool results", session.id)
        text = await _ask_for_summary(
            session, turn, _summary_request(session, turn, cut, instructions, clipped=True)
        )
    appendix = _appendix(session, session.messages[state.first_kept : cut])
    summary = f"{text}\n\n{appendix}" if appendix else text
    summarised = cut - state.first_kept
    previous = state.summary, state.first_kept
    state.summary, state.first_kept = summary, cut
    state.compacted_at = len(session.messages)
    shrunk = state.calibration.scale(request_tokens(build_request(session, turn)))
    if shrunk >= before:
        # A summary longer than what it replaces would only cost more: keep the old
        # view, and ask for no other summary before the conversation has grown.
        state.summary, state.first_kept = previous
        state.rearm_tokens = before + keep
        raise NothingToCompact(
            f"not compacted: the summary would not make the context smaller "
            f"({before:,} -> {shrunk:,} tokens); the conversation stays as it was"
        )
    state.compactions += 1
    # The prefix cache is void now anyway: take fresh facts for what follows.
    await refresh_preamble(session)
    after = state.calibration.scale(request_tokens(build_request(session, turn)))
    state.rearm_tokens = after + keep
    event = ContextCompacted(
        session=session.id,
        reason=reason,
        tokens_before=before,
        tokens_after=after,
        summary=summary,
        first_kept=cut,
        summarized=summarised,
        instructions=instructions,
    )
    await session.emit(event)
    return event
