"""Which tools one session's next model request lists, and in what order (pure).

The order is the prompt cache's: what comes first changes least.

1. The static tools that can work in the session's workspace, by name.
2. The tools of the tool sources, in the sources' order. Of the deferrable
   ones (`kfd.api.Tool.deferrable`: MCP tools), static or not, only the first
   ``defer_after`` are listed.
3. ``tool_search``, when some tools are left out: the model finds them there.
4. The tools the model loaded with ``tool_search``, in the order it loaded
   them. This part only grows during a session, so each load costs the
   provider's cache once and every later request hits it again.

Tools that cannot work (`kfd.api.Tool.unavailable`) are not listed; their
reasons are kept for ``kfd context`` and ``kfd status``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kfd.api import Tool
from kfd.gateway.types import ToolSpec


@dataclass(frozen=True, slots=True)
class Missing:
    """A tool left out because it cannot work here, and why."""

    name: str
    reason: str


@dataclass(slots=True)
class ToolOffer:
    """The tools of one model request of one session."""

    specs: list[ToolSpec] = field(default_factory=list)
    """What the model is sent, in order."""
    listed: dict[str, Tool[Any]] = field(default_factory=dict)
    """The tools behind ``specs``, by name."""
    deferred: list[Tool[Any]] = field(default_factory=list)
    """Tools that can work but are not listed: ``tool_search`` finds them."""
    searchable: list[Tool[Any]] = field(default_factory=list)
    """Every tool ``tool_search`` stands for: the deferred ones and those it loaded."""
    missing: list[Missing] = field(default_factory=list)
    """Tools that cannot work in this workspace."""

    def get(self, name: str) -> Tool[Any] | None:
        """A tool the model may call: a listed one, or a deferred one it named
        without searching first (it works the same; it is just not listed)."""
        found = self.listed.get(name)
        if found is not None:
            return found
        return next((tool for tool in self.deferred if tool.name == name), None)

    def why_missing(self, name: str) -> str | None:
        return next((m.reason for m in self.missing if m.name == name), None)


def arrange(
    static: Sequence[Tool[Any]],
    dynamic: Sequence[Tool[Any]],
    *,
    unavailable: Mapping[str, str],
    loaded: Sequence[str],
    defer_after: int,
    search: Tool[Any] | None,
) -> ToolOffer:
    """The offer for one request, without its ``specs`` (`with_specs` adds them);
    see the module docstring for the order.

    ``static`` comes sorted by name, ``dynamic`` in the sources' order;
    ``unavailable`` maps the names of tools that cannot work to the reason;
    ``loaded`` names what ``tool_search`` loaded in this session.
    """
    offer = ToolOffer()
    offer.missing = [Missing(name, unavailable[name]) for name in sorted(unavailable)]
    listed: list[Tool[Any]] = []
    limit = defer_after if search is not None else len(static) + len(dynamic)
    deferrable = 0
    for tool in [*static, *dynamic]:
        if tool.name in unavailable:
            continue
        if tool.deferrable and deferrable >= limit:
            offer.deferred.append(tool)
            continue
        deferrable += tool.deferrable
        listed.append(tool)
    if offer.deferred and search is not None:
        offer.searchable = list(offer.deferred)
        listed.append(search)
        by_name = {tool.name: tool for tool in offer.deferred}
        for name in dict.fromkeys(loaded):
            if name in by_name:
                listed.append(by_name.pop(name))
        offer.deferred = list(by_name.values())
    offer.listed = {tool.name: tool for tool in listed}
    return offer


def with_specs(offer: ToolOffer, spec: Callable[[Tool[Any]], ToolSpec]) -> ToolOffer:
    """``offer`` with the definitions of its listed tools, in order."""
    offer.specs = [spec(tool) for tool in offer.listed.values()]
    return offer


def unknown_tool(offer: ToolOffer | None, name: str) -> str:
    """What the model reads when it calls a tool it is not offered."""
    reason = offer.why_missing(name) if offer is not None else None
    if reason is not None:
        return f"`{name}` cannot work here: {reason}; do without it"
    listed = ", ".join(offer.listed) if offer is not None else ""
    hint = "; tool_search finds more" if offer is not None and offer.deferred else ""
    return f"unknown tool `{name}`; the tools are: {listed}{hint}"
