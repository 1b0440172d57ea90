"""What a session keeps about its context beyond the transcript.

The transcript (`Session.messages`) only grows. What the model reads is
derived from it and from this state: the summary standing for the messages
before ``first_kept``, the memories recalled beside user messages, the task
list, the tools the model loaded with ``tool_search``. Each of these is
event-sourced (``context.compacted``, ``memory.recalled``, ``tasks.updated``,
``tools.loaded``): `ContextState.apply` takes an event live or replayed, and
`kfd.agent.context_replay` rebuilds the state from the log when a session is
loaded after a restart, or forked.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from kfd.agent.tokens import Calibration
from kfd.agent.tool_offer import ToolOffer
from kfd.protocol import (
    ContextCompacted,
    Memory,
    MemoryRecalled,
    Task,
    TasksUpdated,
    ToolsLoaded,
)
from kfd.transcript import Message, UserMessage


@dataclass(slots=True)
class Preamble:
    """The part of the system prompt after the fixed rules, frozen per session."""

    environment: str
    instructions: str
    files: list[str]
    """Labels of the instruction files read (with ``(cut)`` when cut)."""
    signature: tuple[tuple[str, int, int], ...]
    """The instruction files' stamps when read (a change rebuilds the preamble)."""


@dataclass(slots=True)
class ContextState:
    """A session's context bookkeeping; see the module docstring."""

    summary: str = ""
    first_kept: int = 0
    """Transcript index of the first message the model still reads verbatim."""
    compactions: int = 0
    compacted_at: int = -1
    """Transcript length after the last compaction: automatic compaction waits
    for the transcript to grow past it, so one overflow compacts once."""
    rearm_tokens: int = 0
    """Automatic compaction also waits for the context to reach this size: the
    size after the last compaction plus the part kept verbatim, so a
    compaction that could not get under the threshold is not repeated at
    every step, only once there is as much new material again."""
    recalled: dict[str, MemoryRecalled] = field(default_factory=dict)
    """User message id -> the memories the model reads after that message."""
    tasks: list[Task] = field(default_factory=list)
    loaded_tools: list[str] = field(default_factory=list)
    """Tools ``tool_search`` added to the session's list, in order (`kfd.agent.tool_offer`)."""
    offer: ToolOffer | None = None
    """The tools of the last request prepared (what ``tool_search`` searches)."""
    calibration: Calibration = field(default_factory=Calibration)
    preamble: Preamble | None = None
    prepared_turn: int = 0
    """The turn whose start-of-turn work (title, memory recall) is done."""
    last_estimate: int = 0
    """Uncalibrated estimate of the last request sent, to calibrate against."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a request is prepared or the transcript compacted."""

    def apply(self, event: ContextCompacted | MemoryRecalled | TasksUpdated | ToolsLoaded) -> None:
        """Take an event of this state into account (live or replayed)."""
        match event:
            case ContextCompacted():
                self.summary = event.summary
                self.first_kept = event.first_kept
                self.compactions += 1
            case MemoryRecalled():
                self.recalled[event.message_id] = event
            case TasksUpdated():
                self.tasks = list(event.tasks)
            case ToolsLoaded():
                known = set(self.loaded_tools)
                self.loaded_tools += [name for name in event.names if name not in known]

    def recalled_in_view(self, messages: Sequence[Message]) -> list[MemoryRecalled]:
        """The recalls beside the user messages the model still reads."""
        return [
            self.recalled[message.id]
            for message in messages[self.first_kept :]
            if isinstance(message, UserMessage) and message.id in self.recalled
        ]


def render_memories(event: MemoryRecalled) -> str:
    """The block the model reads after a user message it recalled memories for: each
    fact with who kept it (a model's are its words, not the user's) and no tag of
    the block's own in it (a fact holding ``</memory>`` cannot end the block)."""
    lines = [
        f"- [{memory.id}]{_kept_by(memory)} {_MEMORY_TAG.sub(_defused, memory.text)}"
        for memory in event.memories
    ]
    return (
        "<memory>\nRemembered from earlier sessions (ids are for `forget`; check before "
        "relying on them):\n" + "\n".join(lines) + "\n</memory>"
    )


_MEMORY_TAG = re.compile(r"<\s*/?\s*memory", re.IGNORECASE)


def _defused(match: re.Match[str]) -> str:
    return match.group().replace("<", "‹")


def _kept_by(memory: Memory) -> str:
    if memory.source != "model":
        return ""
    where = f" in {os.path.basename(memory.project)}" if memory.project else ""
    return f" (kept by the model{where}, not the user's words)"
