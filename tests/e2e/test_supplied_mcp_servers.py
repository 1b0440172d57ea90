"""MCP servers a frontend supplies for one session (an editor's ``mcpServers``),
against a real daemon, real servers over stdio, and real bubblewrap."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kfd import protocol as p
from kfd.client import Client, RequestFailed
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import status_until

PEEK = Path(__file__).parents[1] / "plugins" / "mcp_servers" / "peek.py"
TOKEN = "tok-5f0c1e2d3b4a69788796a5b4"


def peek_server(**env: str) -> p.McpServer:
    return p.McpServer(name="peek", command=sys.executable, args=[str(PEEK)], env=env)


def call(tool: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(tool, arguments)])


def offered(request: Any) -> set[str]:
    return {tool["function"]["name"] for tool in request.body.get("tools", [])}


async def turn(client: Client, session: str) -> tuple[list[p.Event], list[p.ApprovalRequested]]:
    """Run a turn to its end, allowing every call that asks; the events and the asks."""
    events: list[p.Event] = []
    asked: list[p.ApprovalRequested] = []
    async with await client.attach(session, tail=0) as view:  # this turn's events only
        await client.send(session, "go")
        while not (events and isinstance(events[-1], p.TurnCompleted)):
            event = await view.next_event(60)
            if isinstance(event, p.ApprovalRequested):
                asked.append(event)
                await client.respond(session, event.approval_id, "allow")
            if isinstance(event, p.Event):
                events.append(event)
    return events, asked


def outputs(events: list[p.Event]) -> list[str]:
    return [e.output for e in events if isinstance(e, p.ToolCompleted)]


async def test_a_supplied_server_runs_confined_for_its_session_alone_and_each_call_asks(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    canary = daemon.home / ".ssh" / "id_rsa"
    canary.parent.mkdir()
    canary.write_text("CANARY-PRIVATE-KEY\n")
    model_server.add(
        call("mcp__peek__peek", path=str(canary)),
        call("mcp__peek__peek", path=str(workspace / "README.md")),
        call("mcp__peek__variable", name="KFD_API_KEY"),
        call("mcp__peek__variable", name="PEEK_TOKEN"),
        call("mcp__peek__where"),
        Reply(text="seen"),
        Reply(text="no peek here"),
    )
    async with await daemon.client(name="editor") as client:
        mine = await client.create_session(workspace)
        other = await client.create_session(workspace)
        await client.supply_mcp_servers(mine.id, [peek_server(PEEK_TOKEN=TOKEN)])
        events, asked = await turn(client, mine.id)
        await turn(client, other.id)
        status = await client.status()

    key, readme, api_key, token, cwd = outputs(events)
    assert "CANARY" not in key and "cannot read" in key  # the sandbox hides ~/.ssh
    assert "# demo" in readme  # the workspace is there
    assert "(unset)" in api_key  # none of the daemon's secrets
    assert TOKEN not in token and "[redacted mcp peek $PEEK_TOKEN]" in token  # kept redacted
    assert str(workspace) in cwd
    assert [a.tool for a in asked] == [
        "mcp__peek__peek",
        "mcp__peek__peek",
        "mcp__peek__variable",
        "mcp__peek__variable",
        "mcp__peek__where",
    ]
    assert {"mcp__peek__peek", "mcp__peek__variable"} <= offered(model_server.requests[0])
    assert not any(name.startswith("mcp__") for name in offered(model_server.requests[-1]))
    (listed,) = status.plugin_status["mcp"]["servers"]
    assert (listed["name"], listed["session"], listed["status"]) == ("peek", mine.id, "ready")
    assert TOKEN not in json.dumps(status.plugin_status) and TOKEN not in daemon.log_text()


async def test_the_servers_stop_when_the_frontend_that_supplied_them_leaves(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="with peek"), Reply(text="without"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        lender = await daemon.client(name="editor")
        await lender.supply_mcp_servers(info.id, [peek_server()])
        await turn(client, info.id)
        assert "mcp__peek__peek" in offered(model_server.requests[0])
        await lender.close()
        # The daemon notices the frontend left: its servers stop.
        await status_until(client, lambda s: not s.plugin_status["mcp"]["servers"])
        await turn(client, info.id)
    assert not any(name.startswith("mcp__") for name in offered(model_server.requests[1]))


async def test_an_empty_list_withdraws_what_the_frontend_supplied_and_the_session_goes_on(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="without"))
    async with await daemon.client(name="editor") as client:
        info = await client.create_session(workspace)
        await client.supply_mcp_servers(info.id, [peek_server()])
        await client.supply_mcp_servers(info.id, [])
        await client.supply_mcp_servers(info.id, [])  # nothing to withdraw: fine too
        await turn(client, info.id)
        status = await client.status()
    assert not any(name.startswith("mcp__") for name in offered(model_server.requests[0]))
    assert status.plugin_status["mcp"]["servers"] == []


@pytest.mark.parametrize(
    ("server", "complaint"),
    [
        (p.McpServer(name="two words", command="x"), "a name is 1-32 letters"),
        (p.McpServer(name="both", command="x", url="http://127.0.0.1:1/mcp"), "exactly one of"),
        (p.McpServer(name="none"), "exactly one of"),
        (p.McpServer(name="ftp", url="ftp://127.0.0.1/"), "must start with http"),
        (p.McpServer(name="env", command="x", env={"A=B": "c"}), "not an environment variable"),
        (p.McpServer(name="nul", command="x\x00y"), "holds a NUL"),
        (p.McpServer(name="h", url="http://x/mcp", headers={"a b": "c"}), "not an HTTP header"),
    ],
)
async def test_a_malformed_server_is_refused_and_nothing_changes(
    daemon: KfdDaemon, workspace: Path, server: p.McpServer, complaint: str
) -> None:
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        with pytest.raises(RequestFailed) as refused:
            await client.supply_mcp_servers(info.id, [peek_server(), server])
        assert refused.value.code == "bad_request" and complaint in refused.value.message
        with pytest.raises(RequestFailed, match="given twice"):
            await client.supply_mcp_servers(info.id, [peek_server(), peek_server()])
        with pytest.raises(RequestFailed) as unknown:
            await client.supply_mcp_servers("s-nope", [peek_server()])
        assert unknown.value.code == "not_found"
        status = await client.status()
    assert status.plugin_status["mcp"]["servers"] == []


async def test_a_supplied_server_with_many_tools_is_deferred_behind_tool_search(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    many = p.McpServer(
        name="many", command=sys.executable, args=[str(PEEK.parent / "many_tools.py")]
    )
    model_server.add(
        call("tool_search", query="create issue"),
        call("mcp__many__create_issue", repo="o/r", title="Bug"),
        Reply(text="Filed."),
    )
    async with await daemon.client(name="editor") as client:
        info = await client.create_session(workspace)
        await client.supply_mcp_servers(info.id, [many])
        events, asked = await turn(client, info.id)

    first, second = offered(model_server.requests[0]), offered(model_server.requests[1])
    assert "tool_search" in first and "mcp__many__create_issue" not in first
    assert len([name for name in first if name.startswith("mcp__many__")]) == 10
    assert "mcp__many__create_issue" in second  # found, then offered
    searched, called = outputs(events)
    assert searched.startswith("Loaded 5 tool(s)")
    assert '"title": "Bug"' in called
    assert [a.tool for a in asked] == ["mcp__many__create_issue"]  # still asks first
