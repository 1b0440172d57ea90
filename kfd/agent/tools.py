"""The tool registry: schemas for the model, validated arguments for the tools.

Static tools come from `kfd_tools` at start; tool sources (`kfd_tool_sources`,
MCP servers for instance) are asked for their current tools by `refresh`,
before each model request. Names are unique: a static tool always keeps its
name, and among sources the first one to offer a name keeps it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import msgspec

from kfd.api import JsonArgs, Tool, ToolSource
from kfd.gateway.types import ToolSpec

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(dict[str, Any])

SOURCE_TIMEOUT_S = 60.0
"""Longest wait for one tool source (an MCP server starting, say); a source
that takes longer contributes what it offered last time."""


class InvalidArguments(Exception):
    """The model's arguments do not fit the tool; the message is for the model."""


class ToolRegistry:
    """The tools of the daemon, by name, with their schemas computed once."""

    def __init__(self, tools: Iterable[Tool[Any]], sources: Iterable[ToolSource] = ()) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._static_specs = [spec_of(t) for t in self._tools.values()]
        self._sources = list(sources)
        self._dynamic: dict[str, Tool[Any]] = {}
        self._dynamic_specs: list[ToolSpec] = []
        self._offered: dict[int, list[Tool[Any]]] = {}
        self.problems: list[str] = []
        """Names refused because they were taken, from the last refresh."""

    @property
    def specs(self) -> list[ToolSpec]:
        """What the model is offered: static tools, then the sources' as last refreshed."""
        return self._static_specs + self._dynamic_specs

    def __contains__(self, name: str) -> bool:
        return name in self._tools or name in self._dynamic

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name) or self._dynamic.get(name)

    @property
    def names(self) -> list[str]:
        return sorted([*self._tools, *self._dynamic])

    async def refresh(self) -> None:
        """Ask every tool source for its current tools (concurrently, bounded in time)."""
        if not self._sources:
            return
        sources = self._sources
        offered = await asyncio.gather(*(self._ask(i, source) for i, source in enumerate(sources)))
        dynamic: dict[str, Tool[Any]] = {}
        problems: list[str] = []
        for source, tools in zip(self._sources, offered, strict=True):
            for tool in tools:
                if tool.name in self._tools or tool.name in dynamic:
                    problems.append(f"{source.name}: tool `{tool.name}` already offered; ignored")
                    continue
                dynamic[tool.name] = tool
        self._dynamic = dynamic
        self._dynamic_specs = [spec_of(t) for t in dynamic.values()]
        self.problems = problems

    async def _ask(self, index: int, source: ToolSource) -> list[Tool[Any]]:
        try:
            tools = list(await asyncio.wait_for(source.tools(), SOURCE_TIMEOUT_S))
        except Exception:
            log.exception("tool source %s failed; keeping its previous tools", source.name)
            return self._offered.get(index, [])
        self._offered[index] = tools
        return tools

    def parse(self, tool: Tool[Any], arguments: str) -> tuple[dict[str, Any], msgspec.Struct]:
        """Decode the model's JSON arguments and convert them to ``tool.Args``."""
        try:
            raw = _decoder.decode(arguments or "{}")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidArguments(
                f"the arguments are not a valid JSON object ({exc}); send one JSON object "
                f"matching the `{tool.name}` schema"
            ) from None
        if tool.parameters is not None:
            return raw, JsonArgs(values=raw)
        try:
            args = msgspec.convert(raw, tool.Args)
        except msgspec.ValidationError as exc:
            raise InvalidArguments(f"invalid arguments for `{tool.name}`: {exc}") from None
        return raw, args


def spec_of(tool: Tool[Any]) -> ToolSpec:
    """What the model is told about a tool."""
    parameters = tool.parameters if tool.parameters is not None else schema_of(tool.Args)
    return ToolSpec(name=tool.name, description=tool.description.strip(), parameters=parameters)


def schema_of(args_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON schema of a Struct, with references inlined and titles dropped.

    Inlined because several providers reject ``$ref``; titles dropped because
    they cost tokens and tell the model nothing the names do not. The Struct's
    own docstring is dropped too: the tool's description speaks for it.
    """
    (schema,), components = msgspec.json.schema_components([args_type])
    inlined: dict[str, Any] = _inline(schema, components)
    inlined.pop("description", None)
    return inlined


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _inline(components[ref.rsplit("/", 1)[-1]], components)
        inlined = {}
        for key, value in node.items():
            if key == "title":
                continue
            if key == "properties" and isinstance(value, dict):
                # Property names are data, not schema keywords: keep them all.
                inlined[key] = {name: _inline(sub, components) for name, sub in value.items()}
            else:
                inlined[key] = _inline(value, components)
        return inlined
    if isinstance(node, list):
        return [_inline(item, components) for item in node]
    return node
