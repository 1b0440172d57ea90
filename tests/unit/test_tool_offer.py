"""What a session is offered: only tools that can work, deferred tools behind tool_search."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from kfd.agent.tool_offer import arrange, unknown_tool
from kfd.agent.tool_search import ToolSearchTool, groups, index, one_line, search
from kfd.agent.tools import ToolRegistry
from kfd.api import JsonArgs, Tool, ToolContext, ToolResult


class Plain(Tool[Any]):
    class Args(msgspec.Struct):
        pass

    description = "a static tool"

    def __init__(self, name: str, missing: str | None = None) -> None:
        self.name = name
        self.missing = missing
        self.asked: list[tuple[Path, Mapping[str, Any]]] = []

    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        self.asked.append((workspace, config))
        return self.missing

    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        return ToolResult(output="ran")


class Remote(Tool[JsonArgs]):
    """A tool of a source, deferrable like an MCP server's."""

    Args = JsonArgs

    def __init__(self, name: str, description: str = "does a thing", deferrable: bool = True):
        self.name = name
        self.description = description
        self.deferrable = deferrable
        self.parameters = {"type": "object", "properties": {"x": {"type": "string"}}}

    async def run(self, args: JsonArgs, ctx: ToolContext) -> ToolResult:
        return ToolResult(output="remote")


class Hanging(Plain):
    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        await asyncio.Event().wait()
        return None


class Broken(Plain):
    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        raise RuntimeError("cannot tell")


class Source:
    name = "mcp"

    def __init__(self, tools: Sequence[Tool[Any]]) -> None:
        self.offer = list(tools)

    async def tools(self) -> Sequence[Tool[Any]]:
        return self.offer


SEARCH = ToolSearchTool(cast(Any, None))


def names(tools: Sequence[Tool[Any]]) -> list[str]:
    return [tool.name for tool in tools]


def test_tools_that_cannot_work_are_left_out_with_their_reason() -> None:
    read, lsp = Plain("read"), Plain("lsp")
    offer = arrange(
        [lsp, read],
        [],
        unavailable={"lsp": "no language server for the files here"},
        loaded=[],
        defer_after=10,
        search=SEARCH,
    )
    assert list(offer.listed) == ["read"]
    assert offer.why_missing("lsp") == "no language server for the files here"
    assert offer.get("lsp") is None
    told = unknown_tool(offer, "lsp")
    assert told == "`lsp` cannot work here: no language server for the files here; do without it"
    assert unknown_tool(offer, "nope") == "unknown tool `nope`; the tools are: read"


def test_deferrable_tools_past_the_limit_wait_behind_tool_search() -> None:
    pinned = [Remote(f"mcp__pin__t{i}", deferrable=False) for i in range(3)]
    many = [Remote(f"mcp__gen__t{i}") for i in range(12)]
    offer = arrange(
        [Plain("read")],
        [*many[:5], *pinned, *many[5:]],
        unavailable={},
        loaded=[],
        defer_after=10,
        search=SEARCH,
    )
    # The first 10 deferrable tools and every never-deferred one are listed, in
    # the sources' order; the search tool stands for the 2 others.
    assert list(offer.listed) == [
        "read",
        *names(many[:5]),
        *names(pinned),
        *names(many[5:10]),
        "tool_search",
    ]
    assert names(offer.deferred) == ["mcp__gen__t10", "mcp__gen__t11"]
    assert offer.get("mcp__gen__t11") is many[11]  # callable by name even unlisted


def test_static_deferrable_tools_count_first() -> None:
    static = Remote("a_plugins_big_tool", deferrable=True)
    offer = arrange(
        [Plain("read"), static],
        [Remote("mcp__a__x"), Remote("mcp__a__y", deferrable=False)],
        unavailable={},
        loaded=[],
        defer_after=1,
        search=SEARCH,
    )
    assert list(offer.listed) == ["read", "a_plugins_big_tool", "mcp__a__y", "tool_search"]
    assert names(offer.deferred) == ["mcp__a__x"]


def test_nothing_deferred_means_no_tool_search_and_no_search_tool_means_all_listed() -> None:
    tools = [Remote(f"mcp__s__t{i}") for i in range(3)]
    few = arrange([], tools, unavailable={}, loaded=[], defer_after=10, search=SEARCH)
    assert list(few.listed) == names(tools) and not few.deferred
    unsearchable = arrange([], tools, unavailable={}, loaded=[], defer_after=1, search=None)
    assert list(unsearchable.listed) == names(tools) and not unsearchable.deferred


async def test_loaded_tools_join_the_end_of_the_list_so_the_prefix_never_changes() -> None:
    source = Source([Remote(f"mcp__gen__t{i}", f"tool number {i}.") for i in range(15)])
    registry = ToolRegistry([Plain("read")], [source], search=SEARCH, defer_after=10)
    await registry.refresh()
    before = await registry.offer(Path("/w"))
    once = await registry.offer(Path("/w"), ["mcp__gen__t13"])
    twice = await registry.offer(Path("/w"), ["mcp__gen__t13", "mcp__gen__t11", "read"])
    assert [s.name for s in once.specs] == [*[s.name for s in before.specs], "mcp__gen__t13"]
    assert once.specs[: len(before.specs)] == before.specs  # byte for byte: the cache holds
    assert twice.specs[: len(once.specs)] == once.specs
    assert [s.name for s in twice.specs][-2:] == ["mcp__gen__t13", "mcp__gen__t11"]
    assert names(twice.deferred) == ["mcp__gen__t10", "mcp__gen__t12", "mcp__gen__t14"]
    search_spec = next(s for s in twice.specs if s.name == "tool_search")
    assert search_spec.description.endswith("Unlisted: mcp__gen__* (5).")
    assert search_spec.parameters == {
        "type": "object",
        "properties": {
            "query": {
                "description": "Keywords or exact names; empty: list them all.",
                "type": "string",
            }
        },
    }


async def test_checks_that_hang_or_fail_leave_the_tool_out_and_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kfd.agent.tools.CHECK_TIMEOUT_S", 0.05)
    fine, hanging, broken = Plain("fine"), Hanging("hanging"), Broken("broken")
    registry = ToolRegistry([fine, hanging, broken])
    offer = await registry.offer(Path("/w"), tools_config={"fine": {"level": 2}, "other": {}})
    assert list(offer.listed) == ["fine"]
    assert offer.why_missing("hanging") == (
        "its check of what it needs did not answer within 0.05 s"
    )
    assert "cannot tell" in (offer.why_missing("broken") or "")
    assert registry.missing["/w"].keys() == {"hanging", "broken"}
    assert fine.asked == [(Path("/w"), {"level": 2})]  # each tool is given its own table


async def test_a_workspace_gets_the_answer_for_that_workspace() -> None:
    picky = Plain("picky")

    async def only_in_a(workspace: Path, config: Mapping[str, Any]) -> str | None:
        return None if workspace.name == "a" else "not here"

    picky.unavailable = only_in_a  # type: ignore[method-assign]
    registry = ToolRegistry([picky])
    assert "picky" in (await registry.offer(Path("/a"))).listed
    assert "picky" not in (await registry.offer(Path("/b"))).listed
    assert await registry.check(Path("/b"), {}) == {"picky": "not here"}


def test_search_ranks_exact_names_then_name_words_then_descriptions() -> None:
    tools = [
        Remote("mcp__gh__list_issue", "List the issues of a repository."),
        Remote("mcp__gh__create_issue", "Create an issue in a repository."),
        Remote("mcp__gh__create_label", "Create a label."),
        Remote("mcp__docs__lookup", "Find documentation pages about a library issue."),
        Remote("mcp__gh__delete_branch", "Delete a branch."),
    ]
    assert names(search(tools, "create issue")) == [
        "mcp__gh__create_issue",  # both words in the name
        "mcp__gh__list_issue",
        "mcp__gh__create_label",
        "mcp__docs__lookup",  # "issue" only in the description
    ]
    assert names(search(tools, "mcp__gh__delete_branch, mcp repository")) == [
        "mcp__gh__delete_branch",  # named exactly: first
        "mcp__gh__list_issue",  # then by the other words ("mcp" is in every name: no help)
        "mcp__gh__create_issue",
    ]
    assert search(tools, "kubernetes") == []


def test_the_index_lists_one_line_per_unlisted_tool() -> None:
    tool = Remote("mcp__gh__create_issue", "Create an issue. It has a title and a body.")
    assert one_line(tool.description) == "Create an issue."
    assert one_line("x" * 300).endswith("…") and len(one_line("x" * 300)) == 110
    assert index([tool]) == "- mcp__gh__create_issue: Create an issue."
    assert groups([tool, Remote("mcp__gh__b"), Remote("plain")]) == "mcp__gh__* (2), plain (1)"
