"""``tool_search``: the model finds the tools that are not listed, and loads them.

When more deferrable tools are offered than ``[context] defer_tools_after``
(`kfd.agent.tool_offer`), the rest are left out of the list and this tool
stands for them. It searches their names and one-line descriptions by
keyword, loads the best matches (or the tools named exactly) into the
session's tool list for the rest of the session (a ``tools.loaded`` event:
the loaded set is session state, rebuilt from the log after a restart), and
answers with what it loaded. With no query it lists every unlisted tool, one
line each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import msgspec

from kfd.api import Tool, ToolContext, ToolResult
from kfd.gateway.types import ToolSpec
from kfd.protocol import ToolsLoaded

if TYPE_CHECKING:
    import asyncio

    from kfd.agent.context_state import ContextState


class Searching(Protocol):
    """What ``tool_search`` uses of a session (`kfd.agent.session.Session` has it);
    named here, not taken from `kfd.agent.ports`, since the tool registry
    that holds this tool sits below the session in the import graph."""

    context: ContextState

    @property
    def id(self) -> str: ...

    def emit(self, event: ToolsLoaded) -> asyncio.Future[None]: ...


NAME = "tool_search"
LOADED_PER_SEARCH = 5
INDEX_LINES = 200
ONE_LINE = 110
_WORD = re.compile(r"[a-z0-9]+")


class ToolSearchArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[
        str,
        msgspec.Meta(max_length=500, description="Keywords or exact names; empty: list them all."),
    ] = ""


class ToolSearchTool(Tool[ToolSearchArgs]):
    """Find unlisted tools and add them to the session's tool list."""

    name = NAME
    description = (
        "Load tools not listed here, found by keyword; they become callable. Unlisted: {groups}."
    )
    Args = ToolSearchArgs
    schema_budget = 280
    read_only = True  # it changes only which tools the model sees

    def __init__(self, sessions: Callable[[str], Searching]) -> None:
        self._sessions = sessions

    def spec_for(self, deferred: Sequence[Tool[Any]], parameters: dict[str, Any]) -> ToolSpec:
        """The definition the model sees, naming the groups of tools it stands for."""
        return ToolSpec(
            name=self.name,
            description=self.description.format(groups=groups(deferred)),
            parameters=parameters,
        )

    def summary(self, args: ToolSearchArgs) -> str:
        return args.query

    async def run(self, args: ToolSearchArgs, ctx: ToolContext) -> ToolResult:
        session = self._sessions(ctx.session_id)
        offer = session.context.offer
        deferred = offer.deferred if offer is not None else []
        if not deferred:
            return ToolResult(output="every tool is listed already: nothing to load")
        if not args.query.strip():
            return ToolResult(output=index(deferred))
        found = search(deferred, args.query)
        chosen, others = found[:LOADED_PER_SEARCH], found[LOADED_PER_SEARCH:]
        if not chosen:
            return ToolResult(
                output=f"no unlisted tool matches {args.query!r}; they are:\n{index(deferred)}"
            )
        event = ToolsLoaded(session=session.id, names=[tool.name for tool in chosen])
        session.context.apply(event)
        await session.emit(event)
        lines = [f"Loaded {len(chosen)} tool(s); call them now:"]
        lines += [f"- {tool.name}: {one_line(tool.description)}" for tool in chosen]
        if others:
            names = ", ".join(tool.name for tool in others[:20])
            lines.append(f"Also matching (load by exact name): {names}")
        return ToolResult(output="\n".join(lines))


def search(tools: Sequence[Tool[Any]], query: str) -> list[Tool[Any]]:
    """The tools matching ``query``, best first: the ones it names exactly, then
    the others by keyword score.

    A handful of rules over words, not a search library: the index is a few
    hundred short lines. Names weigh more than descriptions, and a word every
    tool's name has (``mcp``) tells nothing.
    """
    by_name = {tool.name: tool for tool in tools}
    words = query.replace(",", " ").split()
    exact = list(dict.fromkeys(by_name[word] for word in words if word in by_name))
    rest = " ".join(word for word in words if word not in by_name).lower()
    terms = [term for term in _WORD.findall(rest) if len(term) > 1]
    names = [tool.name.lower() for tool in tools]
    terms = [term for term in terms if not all(term in name for name in names)]
    scored: list[tuple[int, int, Tool[Any]]] = []
    for position, tool in enumerate(tools):
        score = _score(tool, terms) if tool not in exact else 0
        if score:
            scored.append((-score, position, tool))
    scored.sort(key=lambda item: item[:2])  # positions are unique: tools never compared
    return [*exact, *(tool for *_, tool in scored)]


def _score(tool: Tool[Any], terms: list[str]) -> int:
    name = tool.name.lower()
    name_words = set(_WORD.findall(name))
    description = set(_WORD.findall(one_line(tool.description).lower()))
    score = 0
    for term in terms:
        if term in name_words:
            score += 4
        elif term in name:
            score += 2
        long_prefix = len(term) > 3 and any(word.startswith(term) for word in description)
        if term in description or long_prefix:
            score += 1
    return score


def one_line(description: str) -> str:
    """The first sentence of a description, at most about a line."""
    text = " ".join(description.split())
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence if len(sentence) <= ONE_LINE else sentence[: ONE_LINE - 1] + "…"


def index(tools: Sequence[Tool[Any]]) -> str:
    """Every unlisted tool, a line each (name: first sentence)."""
    lines = [f"- {tool.name}: {one_line(tool.description)}" for tool in tools[:INDEX_LINES]]
    if len(tools) > INDEX_LINES:
        lines.append(f"… and {len(tools) - INDEX_LINES} more: search by keyword")
    return "\n".join(lines)


def groups(tools: Sequence[Tool[Any]]) -> str:
    """``mcp__github__* (40), mcp__tracker__* (12)``: what the unlisted tools are."""
    counts: dict[str, int] = {}
    for tool in tools:
        prefix = tool.name.rsplit("__", 1)[0] + "__*" if "__" in tool.name else tool.name
        counts[prefix] = counts.get(prefix, 0) + 1
    return ", ".join(f"{prefix} ({n})" for prefix, n in counts.items())
