"""The tool registry with run-time tools (tool sources, raw JSON schemas) and after-tool hooks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kfd.agent.after_tool import after_tool
from kfd.agent.toolcall import CallContext
from kfd.agent.tools import InvalidArguments, ToolRegistry
from kfd.api import FinishedCall, JsonArgs, PathAccess, Tool, ToolContext, ToolResult


class Echo(Tool[JsonArgs]):
    """A tool whose schema arrives at run time."""

    Args = JsonArgs
    description = "echo"

    def __init__(self, name: str) -> None:
        self.name = name
        self.parameters = {"type": "object", "properties": {"text": {"type": "string"}}}

    async def run(self, args: JsonArgs, ctx: ToolContext) -> ToolResult:
        return ToolResult(output=str(args.values))


class Touch(Tool[Any]):
    class Args(msgspec.Struct):
        path: str

    name = "touch"
    description = "touch a file"
    edits_files = True

    def paths(self, args: Any) -> list[PathAccess]:
        return [PathAccess(args.path, write=True)]

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        return ToolResult(output="touched")


class Source:
    def __init__(self, name: str, *tools: Tool[Any]) -> None:
        self.name = name
        self.offer: list[Tool[Any]] = list(tools)
        self.fail = False

    async def tools(self) -> Sequence[Tool[Any]]:
        if self.fail:
            raise RuntimeError("server down")
        return self.offer


async def test_sources_add_tools_with_their_own_schemas_after_a_refresh() -> None:
    source = Source("mcp", Echo("mcp__s__echo"))
    registry = ToolRegistry([Touch()], [source])
    assert registry.names == ["touch"]  # nothing asked yet
    await registry.refresh()
    assert registry.names == ["mcp__s__echo", "touch"]
    offer = await registry.offer(Path("/"))
    spec = {s.name: s for s in offer.specs}["mcp__s__echo"]
    assert spec.parameters == {"type": "object", "properties": {"text": {"type": "string"}}}

    tool = registry.get("mcp__s__echo")
    assert tool is not None
    raw, args = registry.parse(tool, '{"text": "hi", "extra": [1]}')
    assert args == JsonArgs(values={"text": "hi", "extra": [1]}) and raw == args.values
    with pytest.raises(InvalidArguments, match="not a valid JSON object"):
        registry.parse(tool, "[1, 2]")

    source.offer = []
    await registry.refresh()
    assert "mcp__s__echo" not in registry


async def test_taken_names_are_refused_and_a_failing_source_keeps_its_last_tools() -> None:
    first, second = Source("a", Echo("touch"), Echo("x")), Source("b", Echo("x"))
    registry = ToolRegistry([Touch()], [first, second])
    await registry.refresh()
    assert registry.names == ["touch", "x"]
    assert registry.problems == [
        "a: tool `touch` already offered; ignored",
        "b: tool `x` already offered; ignored",
    ]
    first.fail = True
    await registry.refresh()
    assert registry.names == ["touch", "x"]


class Note:
    def __init__(self, name: str, behaviour: str) -> None:
        self.name = name
        self.behaviour = behaviour
        self.seen: list[FinishedCall] = []

    async def after_tool(self, call: FinishedCall, result: ToolResult, ctx: ToolContext) -> str:
        self.seen.append(call)
        if self.behaviour == "raise":
            raise RuntimeError("broken hook")
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        return f"note from {self.name}"


async def test_after_tool_notes_are_appended_and_broken_hooks_add_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kfd.agent.after_tool.HOOK_TIMEOUT_S", 0.2)
    good, bad, slow = Note("good", "ok"), Note("bad", "raise"), Note("slow", "hang")
    ctx = CallContext(session_id="s", workspace=Path("/"))
    tool = Touch()
    result = await after_tool(
        [good, bad, slow],
        "s",
        tool,
        {"path": "a.txt"},
        Touch.Args(path="a.txt"),
        ToolResult(output="touched"),
        ctx,
    )
    assert result.output == "touched\n\nnote from good"
    call = good.seen[0]
    assert call.tool == "touch" and call.edits_files
    assert call.paths == [PathAccess("a.txt", write=True)]
    same = ToolResult(output="x")
    assert await after_tool([], "s", tool, {}, Touch.Args(path="a"), same, ctx) is same
