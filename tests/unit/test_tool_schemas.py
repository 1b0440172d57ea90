"""Tool definitions: every byte is sent with every request, so each has a budget."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

import msgspec
import pytest

from kfd.agent.core_tools import core_tools
from kfd.agent.schema import schema_of
from kfd.agent.tool_search import ToolSearchTool
from kfd.agent.tools import ToolRegistry, spec_of
from kfd.api import Tool
from kfd.plugins import PluginHost


def built_in_tools() -> list[Tool[Any]]:
    host = PluginHost()
    host.load_entry_points([])
    assert not host.errors
    # The core tools keep these references only; nothing is called here.
    store, sessions = cast(Any, None), cast(Any, None)
    return [*host.tools({}), *core_tools(store, sessions), ToolSearchTool(sessions)]


BUILT_IN = built_in_tools()


@pytest.mark.parametrize("tool", BUILT_IN, ids=[tool.name for tool in BUILT_IN])
def test_every_built_in_tool_fits_the_schema_budget_written_next_to_it(tool: Tool[Any]) -> None:
    size = len(msgspec.json.encode(spec_of(tool)))
    where = f"{type(tool).__module__}.{type(tool).__name__}"
    assert tool.schema_budget > 0, f"{where} has no schema_budget"
    assert size <= tool.schema_budget, (
        f"{tool.name}'s definition is {size} bytes, over the {tool.schema_budget} of "
        f"{where}.schema_budget: every byte goes with every request; say it shorter"
    )


def test_the_built_in_tools_are_the_ones_the_budget_test_covers() -> None:
    assert {tool.name for tool in BUILT_IN} == {
        "bash",
        "browser_fetch",
        "edit",
        "forget",
        "github_read",
        "glob",
        "grep",
        "lsp",
        "lsp_rename",
        "read",
        "read_output",
        "recall",
        "remember",
        "tasks_set",
        "tool_search",
        "web_fetch",
        "web_search",
        "write",
    }


class Item(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A docstring the model never needs."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    done: bool = False


class Sample(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of a sample tool."""

    path: Annotated[str, msgspec.Meta(max_length=4096, description="A file.")]
    line: Annotated[int, msgspec.Meta(ge=1)] = 1
    start: Annotated[int, msgspec.Meta(ge=0, le=50)] = 0
    mode: Literal["fast", "slow"] = "fast"
    timeout: Annotated[float | None, msgspec.Meta(description="Seconds.")] = None
    note: str = ""
    first: Annotated[Item, msgspec.Meta(description="The first item.")] = Item(text="x")
    items: Annotated[list[Item], msgspec.Meta(max_length=50)] = []


def test_derived_schemas_keep_the_meaning_and_drop_what_kfd_enforces_itself() -> None:
    item = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "done": {"type": "boolean"}},
        "required": ["text"],
    }
    assert schema_of(Sample) == {
        "type": "object",
        "properties": {
            "path": {"description": "A file.", "type": "string"},
            "line": {"type": "integer", "minimum": 1, "default": 1},
            "start": {"type": "integer", "maximum": 50},
            "mode": {"enum": ["fast", "slow"], "default": "fast"},
            "timeout": {"description": "Seconds.", "type": "number"},
            "note": {"type": "string"},
            "first": {
                **item,
                "description": "The first item.",
                "default": {"text": "x", "done": False},
            },
            "items": {"type": "array", "items": item},
        },
        "required": ["path"],
    }


async def test_what_kfd_dropped_from_a_schema_it_still_refuses() -> None:
    registry = ToolRegistry([])

    class Limited(Tool[Sample]):
        name = "limited"
        description = "x"
        Args = Sample

        async def run(self, args: Sample, ctx: Any) -> Any:
            raise AssertionError("not run")

    tool = Limited()
    with pytest.raises(Exception, match="Expected `str` of length <= 4096"):
        registry.parse(tool, '{"path": "' + "a" * 5000 + '"}')
    with pytest.raises(Exception, match="Object contains unknown field `extra`"):
        registry.parse(tool, '{"path": "a", "extra": 1}')
