"""Recalling memories at the start of a turn.

The user's new message is the query: the few most relevant facts of the
project (and global ones) that fit ``[context] memory_recall_tokens`` are
placed beside it for the model, and ``memory.recalled`` lists them so the
user sees what the model was reminded of.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from kfd.agent.instructions import project_root
from kfd.agent.tokens import estimate
from kfd.protocol import Memory, MemoryRecalled
from kfd.store.memory import MemoryStore
from kfd.transcript import UserMessage

if TYPE_CHECKING:
    from kfd.agent.ports import AgentSession

CANDIDATES = 20
"""Facts ranked before the token budget picks the few that fit."""

MEMORY_LINE_TOKENS = 6
"""What each listed fact costs beyond its text (id, markers)."""


async def project_of(workspace: str) -> str:
    """The project (repository root) that memories of ``workspace`` belong to."""
    return str(await asyncio.to_thread(project_root, Path(workspace)))


def within_budget(found: list[Memory], count: int, tokens: int) -> list[Memory]:
    """The best ``count`` facts whose text fits ``tokens`` together."""
    chosen: list[Memory] = []
    used = 0
    for memory in found:
        cost = estimate(memory.text) + MEMORY_LINE_TOKENS
        if used + cost > tokens:
            continue
        chosen.append(memory)
        used += cost
        if len(chosen) == count:
            break
    return chosen


async def recall_for_turn(session: AgentSession, incoming: list[UserMessage]) -> None:
    """Place the memories relevant to this turn's messages beside the last one."""
    config = session.runtime.config.context
    if not config.memory_recall or not incoming or not incoming[-1].id:
        return
    query = "\n".join(message.text for message in incoming)
    found = await MemoryStore(session.runtime.store).search(
        query, project=await project_of(session.info.cwd), limit=CANDIDATES
    )
    # A fact the model still reads beside an earlier message is not repeated.
    shown = {
        memory.id
        for recall in session.context.recalled_in_view(session.messages)
        for memory in recall.memories
    }
    fresh = [memory for memory in found if memory.id not in shown]
    chosen = within_budget(fresh, config.memory_recall, config.memory_recall_tokens)
    if not chosen:
        return
    event = MemoryRecalled(session=session.id, message_id=incoming[-1].id, memories=chosen)
    session.context.apply(event)
    session.emit(event)
