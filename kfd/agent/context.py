"""What the model sees: `prepare_request`, called before every model request.

At the start of a turn it names an untitled session after its first message,
re-reads the project instructions if a file changed, and recalls the memories
relevant to the new message. Before every request it compacts the transcript
if the request would pass the threshold (once per overflow). The request
itself is built by `kfd.agent.prompt`; the summary by `kfd.agent.compaction`.

The turn loop also calls `observe_usage` after each request (the provider's
token count calibrates the local estimate) and `compact_after_overflow` when
the provider rejected a request as too long. ``session.compact`` and
``session.context`` requests land in `compact_now` and `context_report`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfd.agent.compaction import NothingToCompact, compact
from kfd.agent.context_state import render_memories
from kfd.agent.prompt import (
    STABLE_PREFIX,
    build_request,
    instructions_changed,
    limits,
    offer_tools,
    refresh_preamble,
)
from kfd.agent.recall import recall_for_turn
from kfd.agent.titles import title_from
from kfd.agent.tokens import (
    counted_with,
    counter,
    load_tokenizer,
    message_tokens,
    request_tokens,
    start_loading,
    tools_tokens,
)
from kfd.errors import BudgetExceeded, ProviderError, RequestError
from kfd.gateway.types import ModelRequest
from kfd.protocol import CompactResult, ContextPart, ContextResult, MissingTool, Usage
from kfd.transcript import Message, SummaryMessage, ToolResultMessage, UserMessage

if TYPE_CHECKING:
    from kfd.agent.ports import AgentSession


async def prepare_request(session: AgentSession, turn: int) -> ModelRequest:
    """The request for the next model call of ``turn``."""
    state = session.context
    start_loading(session.info.model or session.runtime.config.model.model)
    async with state.lock:
        if state.prepared_turn != turn:
            state.prepared_turn = turn
            await _start_turn(session)
        elif state.preamble is None:
            await refresh_preamble(session)
        await offer_tools(session)
        request = build_request(session, turn)
        if _over_threshold(session, request):
            try:
                await compact(session, turn, "auto")
            except NothingToCompact:
                pass  # the request goes as it is; the provider may still take it
            else:
                request = build_request(session, turn)
    state.last_estimate = request_tokens(request)
    return request


async def _start_turn(session: AgentSession) -> None:
    incoming = _incoming(session.messages)
    if incoming and not session.info.title:
        title = title_from(incoming[0].text)
        if title:
            session.update(title=title)
    if await instructions_changed(session):
        await refresh_preamble(session)
    await recall_for_turn(session, incoming)


def _incoming(messages: list[Message]) -> list[UserMessage]:
    """The user messages that opened this turn (the transcript's last ones)."""
    incoming: list[UserMessage] = []
    for message in reversed(messages):
        if not isinstance(message, UserMessage):
            break
        incoming.append(message)
    incoming.reverse()
    return incoming


def _over_threshold(session: AgentSession, request: ModelRequest) -> bool:
    state = session.context
    if not session.runtime.config.context.auto_compact:
        return False
    if len(session.messages) <= state.compacted_at:
        return False  # compacted already for this overflow: wait for new messages
    tokens = state.calibration.scale(request_tokens(request))
    return tokens > limits(session).threshold and tokens >= state.rearm_tokens


def observe_usage(session: AgentSession, usage: Usage) -> None:
    """Calibrate the session's token estimate by what the provider counted."""
    state = session.context
    state.calibration.observe(state.last_estimate, usage.input_tokens)


async def compact_after_overflow(session: AgentSession, turn: int) -> bool:
    """Compact after the provider refused a request as too long; False if
    there was nothing to compact (the request cannot be made to fit)."""
    async with session.context.lock:
        try:
            await compact(session, turn, "overflow")
        except NothingToCompact:
            return False
    return True


async def compact_now(session: AgentSession, instructions: str = "") -> CompactResult:
    """Compact by hand (``session.compact``), between turns."""
    state = session.context
    if session.busy or state.lock.locked():
        raise RequestError(
            "conflict",
            f"session {session.id} is busy (a turn or a compaction is running); "
            "compact after it ends, or cancel the turn first",
        )
    async with state.lock:
        if state.preamble is None:
            await refresh_preamble(session)
        if state.offer is None:
            await offer_tools(session)
        try:
            event = await compact(session, session.info.turns, "manual", instructions)
        except NothingToCompact as exc:
            return CompactResult(compacted=False, message=str(exc))
        except BudgetExceeded as exc:
            raise RequestError("conflict", f"the summary was not asked for: {exc}") from None
        except ProviderError as exc:
            raise RequestError("internal", f"the summary could not be made: {exc}") from None
    return CompactResult(
        compacted=True,
        tokens_before=event.tokens_before,
        tokens_after=event.tokens_after,
        summary=event.summary,
    )


async def context_report(session: AgentSession) -> ContextResult:
    """What fills the session's window, part by part (``/context``)."""
    state = session.context
    if state.preamble is None:
        async with state.lock:  # not held otherwise: a running compaction need not finish
            if state.preamble is None:
                await refresh_preamble(session)
    await load_tokenizer(session.info.model or session.runtime.config.model.model)
    offer = await offer_tools(session)
    request = build_request(session, session.info.turns + 1)
    count = counter(request.model)
    preamble = state.preamble
    scale = state.calibration.scale
    recalls = state.recalled_in_view(session.messages)
    memory = sum(count(render_memories(recall)) for recall in recalls)
    transcript = tool_outputs = summary = 0
    results = 0
    for message in request.messages:
        if isinstance(message, SummaryMessage):
            summary += message_tokens(message, count)
        elif isinstance(message, ToolResultMessage):
            tool_outputs += message_tokens(message, count)
            results += 1
        else:
            transcript += message_tokens(message, count)
    environment = preamble.environment if preamble else ""
    files = preamble.files if preamble else []
    parts = [
        ContextPart(name="system", tokens=scale(count(STABLE_PREFIX + environment))),
        ContextPart(
            name="tools",
            tokens=scale(tools_tokens(request.tools, count)),
            detail=f"{len(request.tools)} tools"
            + (f", {len(offer.deferred)} more through tool_search" if offer.deferred else ""),
        ),
        ContextPart(
            name="instructions",
            tokens=scale(count(preamble.instructions if preamble else "")),
            detail=", ".join(files),
        ),
        ContextPart(name="memory", tokens=scale(memory), detail=f"{len(recalls)} recalls"),
        ContextPart(
            name="summary",
            tokens=scale(summary),
            detail=f"{state.compactions} compactions" if state.compactions else "",
        ),
        ContextPart(
            name="transcript",
            tokens=scale(max(0, transcript - memory)),
            detail=f"{len(request.messages) - results} messages",
        ),
        ContextPart(name="tool_outputs", tokens=scale(tool_outputs), detail=f"{results} results"),
    ]
    window = limits(session)
    return ContextResult(
        session=session.id,
        model=request.model,
        context_window=window.window,
        output_reserve=window.reserve,
        threshold=window.threshold,
        auto_compact=session.runtime.config.context.auto_compact,
        tokens=sum(part.tokens for part in parts),
        parts=parts,
        reported_tokens=state.calibration.reported,
        calibration=round(state.calibration.ratio, 3),
        compactions=state.compactions,
        tokenizer=counted_with(request.model),
        tools_missing=[MissingTool(name=m.name, reason=m.reason) for m in offer.missing],
        tools_deferred=len(offer.deferred),
        tools_loaded=list(state.loaded_tools),
    )
