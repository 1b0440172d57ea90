"""The daemon's own tools: they need the store or the live session, which no
plugin may touch, so the daemon registers them itself beside the plugins'.

- ``read_output`` pages through a cut tool result (`kfd.agent.outputs`);
- ``remember``, ``recall``, ``forget`` keep facts across sessions (`kfd.agent.memory`);
- ``tasks_set`` keeps the visible plan (`kfd.agent.tasks`).

They are written against `kfd.api.Tool` like any plugin tool, so the turn
loop, the policies and the approval prompts treat them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kfd.agent.memory import ForgetTool, RecallTool, RememberTool
from kfd.agent.outputs import ReadOutputTool
from kfd.agent.tasks import TasksSetTool
from kfd.agent.tool_search import NAME as TOOL_SEARCH

if TYPE_CHECKING:
    from kfd.agent.ports import AgentSession
    from kfd.api import Tool
    from kfd.store.db import Store


def core_tools(store: Store, sessions: Callable[[str], AgentSession]) -> list[Tool[Any]]:
    """The daemon's own tools; ``sessions`` finds a live session by id."""
    return [
        ReadOutputTool(store),
        RememberTool(store),
        RecallTool(store),
        ForgetTool(store),
        TasksSetTool(sessions),
    ]


def with_core_tools(
    plugin_tools: list[Tool[Any]],
    store: Store,
    sessions: Callable[[str], AgentSession],
    problems: list[str],
) -> list[Tool[Any]]:
    """Plugin tools and the core tools, sorted by name (a stable order keeps the
    providers' prompt caches warm); a plugin tool named like a core one is
    dropped and reported in ``problems``."""
    core = core_tools(store, sessions)
    taken = {tool.name for tool in core} | {TOOL_SEARCH}
    kept = []
    for tool in plugin_tools:
        if tool.name in taken:
            problems.append(f"tool `{tool.name}` of a plugin is ignored: kfd has its own")
        else:
            kept.append(tool)
    return sorted([*kept, *core], key=lambda tool: tool.name)
