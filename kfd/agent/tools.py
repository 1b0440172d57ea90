"""The tool registry: every tool of the daemon, and what each session is offered.

Static tools come from `kfd_tools` at start; tool sources (`kfd_tool_sources`,
MCP servers for instance) are asked for their current tools by `refresh`,
before each model request. Names are unique: a static tool always keeps its
name, and among sources the first one to offer a name keeps it. A session
may have tools of its own: those of the MCP servers frontends supplied for
it (`supply`; an editor's ``mcpServers``), asked of the sources that take
them (`kfd.api.SessionToolSource`) before each of its requests; they come
after the daemon's, and a name already taken is skipped.

`offer` makes one session's list for its next request: each tool is asked
whether it can work in the session's workspace (`kfd.api.Tool.unavailable`),
and `kfd.agent.tool_offer` arranges the rest, leaving the deferrable tools
beyond ``[context] defer_tools_after`` to ``tool_search``. Schemas are
computed once per tool (`kfd.agent.schema`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import msgspec

from kfd.agent.schema import schema_of
from kfd.agent.tool_offer import ToolOffer, arrange, with_specs
from kfd.agent.tool_search import ToolSearchTool
from kfd.api import JsonArgs, SessionToolSource, SuppliedServers, Tool, ToolSource
from kfd.gateway.types import ToolSpec

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(dict[str, Any])

SOURCE_TIMEOUT_S = 60.0
"""Longest wait for one tool source (an MCP server starting, say); a source
that takes longer contributes what it offered last time."""

CHECK_TIMEOUT_S = 5.0
"""Longest wait for one tool's `Tool.unavailable`; a tool whose check takes
longer is left out of that request."""

WORKSPACES_KEPT = 32
"""Workspaces whose missing tools `kfd status` can report."""

DEFAULT_DEFER_AFTER = 10


class InvalidArguments(Exception):
    """The model's arguments do not fit the tool; the message is for the model."""


class ToolRegistry:
    """The tools of the daemon, by name, with their schemas computed once."""

    def __init__(
        self,
        tools: Iterable[Tool[Any]],
        sources: Iterable[ToolSource] = (),
        *,
        search: ToolSearchTool | None = None,
        defer_after: int = DEFAULT_DEFER_AFTER,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._sources = list(sources)
        self._dynamic: dict[str, Tool[Any]] = {}
        self._offered: dict[int, list[Tool[Any]]] = {}
        self._specs: weakref.WeakKeyDictionary[Tool[Any], ToolSpec] = weakref.WeakKeyDictionary()
        """Each tool's definition, computed once per tool object (a restarted MCP
        server's tools are new objects, so a changed schema is seen)."""
        self._session_sources: list[SessionToolSource] = [
            source for source in self._sources if _takes_sessions(source)
        ]
        self._supplied: dict[str, SuppliedServers] = {}
        self._session_tools: dict[str, dict[str, Tool[Any]]] = {}
        self._session_offered: dict[str, dict[int, list[Tool[Any]]]] = {}
        self.session_problems: dict[str, list[str]] = {}
        """Per session: supplied tools refused because their names were taken."""
        self._search = search
        self._search_parameters = schema_of(search.Args) if search is not None else {}
        self.defer_after = defer_after
        self.problems: list[str] = []
        """Names refused because they were taken, from the last refresh."""
        self.missing: OrderedDict[str, dict[str, str]] = OrderedDict()
        """Workspace -> the tools that cannot work there and why, as last checked."""

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def get(self, name: str, session_id: str | None = None) -> Tool[Any] | None:
        """Any tool of the daemon by name, whether or not a session is offered it
        (with ``session_id``: that session's own tools too)."""
        if self._search is not None and name == self._search.name:
            return self._search
        found = self._tools.get(name) or self._dynamic.get(name)
        if found is None and session_id is not None:
            found = self._session_tools.get(session_id, {}).get(name)
        return found

    @property
    def names(self) -> list[str]:
        search = [self._search.name] if self._search is not None else []
        return sorted([*self._tools, *self._dynamic, *search])

    def spec(self, tool: Tool[Any]) -> ToolSpec:
        """What the model is told about a tool (computed once per tool object)."""
        found = self._specs.get(tool)
        if found is None:
            found = self._specs[tool] = spec_of(tool)
        return found

    async def offer(
        self,
        workspace: Path,
        loaded: Sequence[str] = (),
        *,
        tools_config: Mapping[str, Any] | None = None,
        defer_after: int | None = None,
        session_id: str | None = None,
    ) -> ToolOffer:
        """The tools a session in ``workspace`` is offered for its next request
        (with ``session_id``: its own supplied tools too, after the daemon's).

        ``tools_config`` is the ``[tools]`` table and ``defer_after`` the
        ``[context]`` setting as they stand now (the config reloads live).
        """
        static = sorted(self._tools.values(), key=lambda tool: tool.name)
        own = self._session_tools.get(session_id, {}) if session_id is not None else {}
        dynamic = [*self._dynamic.values(), *own.values()]
        unavailable = await self.check(workspace, tools_config or {}, [*static, *dynamic])
        search = self._search
        offer = arrange(
            static,
            dynamic,
            unavailable=unavailable,
            loaded=loaded,
            defer_after=self.defer_after if defer_after is None else defer_after,
            search=search,
        )

        def spec(tool: Tool[Any]) -> ToolSpec:
            if search is not None and tool is search:
                # It names what it stands for: unchanged by loads, so the prefix holds.
                return search.spec_for(offer.searchable, self._search_parameters)
            return self.spec(tool)

        return with_specs(offer, spec)

    async def check(
        self,
        workspace: Path,
        tools_config: Mapping[str, Any],
        tools: Sequence[Tool[Any]] | None = None,
    ) -> dict[str, str]:
        """The tools (default: all) that cannot work in ``workspace``, with the
        reason; asked concurrently, kept in `missing`. ``tools_config`` is the
        ``[tools]`` table: each tool is given its own."""
        if tools is None:
            tools = [*self._tools.values(), *self._dynamic.values()]
        asked = [tool for tool in tools if type(tool).unavailable is not Tool.unavailable]
        answers = await asyncio.gather(
            *(self._ask_tool(tool, workspace, tools_config.get(tool.name, {})) for tool in asked)
        )
        missing = {tool.name: reason for tool, reason in zip(asked, answers, strict=True) if reason}
        key = str(workspace)
        self.missing[key] = missing
        self.missing.move_to_end(key)
        while len(self.missing) > WORKSPACES_KEPT:
            self.missing.popitem(last=False)
        return missing

    @staticmethod
    async def _ask_tool(tool: Tool[Any], workspace: Path, config: Mapping[str, Any]) -> str | None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return await tool.unavailable(workspace, config)
        except TimeoutError:
            return f"its check of what it needs did not answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            log.exception("the availability check of %s failed", tool.name)
            return f"its check of what it needs failed: {exc!r}"

    async def refresh(self, session_id: str | None = None) -> None:
        """Ask every tool source for its current tools (concurrently, bounded in time);
        with ``session_id``, for that session's supplied tools too."""
        await self._refresh_daemon()
        if session_id is not None:
            await self._refresh_session(session_id)

    async def _refresh_daemon(self) -> None:
        if not self._sources:
            return
        sources = self._sources
        offered = await asyncio.gather(*(self._ask(i, source) for i, source in enumerate(sources)))
        dynamic: dict[str, Tool[Any]] = {}
        problems: list[str] = []
        taken = {*self._tools, *([self._search.name] if self._search is not None else [])}
        for source, tools in zip(self._sources, offered, strict=True):
            for tool in tools:
                if tool.name in taken or tool.name in dynamic:
                    problems.append(f"{source.name}: tool `{tool.name}` already offered; ignored")
                    continue
                dynamic[tool.name] = tool
        self._dynamic = dynamic
        self.problems = problems

    async def _ask(self, index: int, source: ToolSource) -> list[Tool[Any]]:
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                tools = list(await source.tools())
        except Exception:
            log.exception("tool source %s failed; keeping its previous tools", source.name)
            return self._offered.get(index, [])
        self._offered[index] = tools
        return tools

    # -- what frontends supply for one session ------------------------------------

    async def supply(self, supplied: SuppliedServers) -> None:
        """Offer the session the tools of these servers from its next request on
        (none: withdraw what was supplied, and let the sources stop it)."""
        if supplied.servers:
            self._supplied[supplied.session_id] = supplied
        else:
            await self.end_session(supplied.session_id)

    async def end_session(self, session_id: str) -> None:
        """Withdraw the servers supplied for a session; the sources stop them."""
        self._session_tools.pop(session_id, None)
        self._session_offered.pop(session_id, None)
        self.session_problems.pop(session_id, None)
        if self._supplied.pop(session_id, None) is None:
            return
        await asyncio.gather(*(self._end(source, session_id) for source in self._session_sources))

    def supplied(self, session_id: str) -> SuppliedServers | None:
        """The servers supplied for a session, if any."""
        return self._supplied.get(session_id)

    async def _refresh_session(self, session_id: str) -> None:
        supplied = self._supplied.get(session_id)
        if supplied is None or not self._session_sources:
            return
        offered = await asyncio.gather(
            *(
                self._ask_session(index, source, supplied)
                for index, source in enumerate(self._session_sources)
            )
        )
        taken = {*self._tools, *self._dynamic}
        if self._search is not None:
            taken.add(self._search.name)
        tools: dict[str, Tool[Any]] = {}
        problems: list[str] = []
        for source, listed in zip(self._session_sources, offered, strict=True):
            for tool in listed:
                if tool.name in taken or tool.name in tools:
                    problems.append(
                        f"{source.name}: tool `{tool.name}` of a server supplied for session "
                        f"{session_id} is already offered; ignored"
                    )
                    continue
                tools[tool.name] = tool
        self._session_tools[session_id] = tools
        self.session_problems[session_id] = problems

    async def _ask_session(
        self, index: int, source: SessionToolSource, supplied: SuppliedServers
    ) -> list[Tool[Any]]:
        before = self._session_offered.setdefault(supplied.session_id, {})
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                tools = list(await source.session_tools(supplied))
        except Exception:
            log.exception(
                "tool source %s failed for session %s; keeping its previous tools",
                source.name,
                supplied.session_id,
            )
            return before.get(index, [])
        before[index] = tools
        return tools

    @staticmethod
    async def _end(source: SessionToolSource, session_id: str) -> None:
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                await source.end_session(session_id)
        except Exception:
            log.exception("tool source %s failed to end session %s", source.name, session_id)

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
        for access in tool.paths(args):
            if "\0" in access.path:  # no system call takes one: say so, as for bad JSON
                raise InvalidArguments(
                    f"invalid arguments for `{tool.name}`: the path {access.path!r} holds a "
                    "NUL byte, which no file name can"
                )
        return raw, args


def _takes_sessions(source: ToolSource) -> TypeGuard[SessionToolSource]:
    """Whether a source also serves what frontends supply for one session."""
    return callable(getattr(source, "session_tools", None)) and callable(
        getattr(source, "end_session", None)
    )


def spec_of(tool: Tool[Any]) -> ToolSpec:
    """What the model is told about a tool."""
    parameters = tool.parameters if tool.parameters is not None else schema_of(tool.Args)
    return ToolSpec(name=tool.name, description=tool.description.strip(), parameters=parameters)
