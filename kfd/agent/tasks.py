"""The task list: the plan the model keeps visible with ``tasks_set``.

The model sends the whole list each time (simpler for it than edits by
index, and the last list is always the truth). Each call emits
``tasks.updated``; the list is in the attach snapshot and in every
compaction summary, and survives a daemon restart (it is rebuilt from the
log, `kfd.agent.context_replay.restore`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import msgspec

from kfd.api import Tool, ToolContext, ToolResult
from kfd.protocol import Task, TaskStatus, TasksUpdated

if TYPE_CHECKING:
    from kfd.agent.ports import AgentSession

MAX_TASKS = 50
MAX_TASK_CHARS = 300


class TaskItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One task."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TASK_CHARS)]
    status: TaskStatus = "pending"


class TasksSetArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of tasks_set."""

    tasks: Annotated[list[TaskItem], msgspec.Meta(max_length=MAX_TASKS)]


class TasksSetTool(Tool[TasksSetArgs]):
    """Replace the session's task list and show it to the user."""

    name = "tasks_set"
    description = (
        "Set your plan for work of several steps; the user sees it. Send the whole list "
        "each time, with one task in_progress at a time."
    )
    Args = TasksSetArgs
    schema_budget = 440
    read_only = True  # it changes only what the user is shown: allowed in every mode

    def __init__(self, sessions: Callable[[str], AgentSession]) -> None:
        self._sessions = sessions

    def summary(self, args: TasksSetArgs) -> str:
        return counts(args.tasks)

    async def run(self, args: TasksSetArgs, ctx: ToolContext) -> ToolResult:
        session = self._sessions(ctx.session_id)
        tasks = [Task(text=" ".join(item.text.split()), status=item.status) for item in args.tasks]
        event = TasksUpdated(session=session.id, tasks=tasks)
        session.context.apply(event)
        await session.emit(event)
        return ToolResult(output=f"task list set: {counts(tasks)}")


def counts(tasks: list[TaskItem] | list[Task]) -> str:
    """``2 done, 1 in progress, 3 pending`` (or ``empty``)."""
    tally = {"done": 0, "in_progress": 0, "pending": 0}
    for task in tasks:
        tally[task.status] += 1
    parts = [f"{n} {status.replace('_', ' ')}" for status, n in tally.items() if n]
    return ", ".join(parts) or "empty"
