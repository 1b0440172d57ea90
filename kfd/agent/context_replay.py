"""Rebuild a session's context state from its event log: after a load, or a fork.

What the model reads beyond the transcript (`kfd.agent.context_state`) is
event-sourced: the summary (``context.compacted``), the recalled memories
(``memory.recalled``), the task list (``tasks.updated``) and the tools the
model loaded with ``tool_search`` (``tools.loaded``). A session loaded
after a restart replays them (`restore`); a fork inherits those of the history
it shares with its parent (`inherit`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from kfd.protocol import AnyEvent, ContextCompacted, MemoryRecalled, TasksUpdated, ToolsLoaded
from kfd.transcript import UserMessage

if TYPE_CHECKING:
    from kfd.agent.ports import AgentSession

_event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)

RESTORED_EVENTS = ("context.compacted", "memory.recalled", "tasks.updated", "tools.loaded")
"""The events `restore` reads."""


async def restore(session: AgentSession) -> None:
    """Rebuild ``session.context`` from its event log (after load or fork)."""
    state = session.context
    rows = await session.runtime.store.event_types(session.id, RESTORED_EVENTS)
    for _, body in rows:
        event = _event_decoder.decode(body)
        if isinstance(event, ContextCompacted | MemoryRecalled | TasksUpdated | ToolsLoaded):
            state.apply(event)
    # A loaded session waits for a new message before compacting by itself.
    state.compacted_at = len(session.messages) if state.compactions else -1


async def inherit(parent: AgentSession, child: AgentSession) -> None:
    """Give a fork the summary and the recalled memories of the history it
    shares with ``parent`` (the fork's log already has the tasks), then
    `restore` it.

    A summary stands only for messages before its ``first_kept``, so the
    latest one whose cut lies within the shared history applies, even if it
    was made after the fork point.
    """
    shared = len(child.messages)
    shared_ids = {m.id for m in child.messages if isinstance(m, UserMessage) and m.id}
    summary: ContextCompacted | None = None
    rows = await parent.runtime.store.event_types(
        parent.id, ("context.compacted", "memory.recalled")
    )
    for _, body in rows:
        event = _event_decoder.decode(body)
        if isinstance(event, ContextCompacted) and event.first_kept <= shared:
            summary = event
        elif isinstance(event, MemoryRecalled) and event.message_id in shared_ids:
            child.emit(msgspec.structs.replace(event, session=child.id))
    if summary is not None:
        child.emit(msgspec.structs.replace(summary, session=child.id))
    await child.runtime.journal.drain()
    await restore(child)
