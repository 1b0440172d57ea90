"""What an editor lends a session through ``kfd acp``, driven by the official ACP
TypeScript SDK's client: its MCP servers and its view of the files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from acp_node import needs_node, node_editor

from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon

pytestmark = needs_node

PEEK = Path(__file__).parents[1] / "plugins" / "mcp_servers" / "peek.py"


def call(tool: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(tool, arguments)])


def tool_results(request: Any) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "tool"]


async def test_the_editors_server_buffers_and_writes_serve_the_turn_and_a_denied_write_stays_out(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    readme = workspace / "README.md"
    model_server.add(
        call("mcp__peek__where"),
        call("read", path="README.md"),
        call("edit", path="README.md", old_string="unsaved line", new_string="edited line"),
        call("write", path="notes.txt", content="should never exist\n"),
        Reply(text="Done."),
    )
    scenario = {
        "cwd": str(workspace),
        "prompt": "look around",
        "mcpServers": [{"name": "peek", "command": sys.executable, "args": [str(PEEK)], "env": []}],
        "files": {"buffers": {str(readme): "# demo\n\nunsaved line\n"}, "save": True},
        "answers": ["allow", "allow", "deny"],
    }
    async with node_editor(daemon, **scenario) as ed:
        done = await ed.event("done", timeout=60)

    assert done["stopReason"] == "end_turn"
    assert ed.events[0]["init"]["agentCapabilities"]["mcpCapabilities"]["http"] is True
    where, shown, _edited, _denied = tool_results(model_server.requests[-1])
    assert str(workspace) in where  # the editor's MCP server answered, in the workspace
    assert "unsaved line" in shown  # the read saw the editor's buffer
    asked = [e["toolCall"]["title"] for e in ed.events if e["event"] == "asked"]
    assert len(asked) == 3 and "peek" in asked[0]  # the MCP call asked first
    fs = [
        (e["op"], Path(e["path"]).name, e.get("content")) for e in ed.events if e["event"] == "fs"
    ]
    assert ("write", "README.md", "# demo\n\nedited line\n") in fs
    assert not any(name == "notes.txt" for _, name, _ in fs)  # denied: never sent to the editor
    assert readme.read_text() == "# demo\n\nedited line\n"  # the editor saved its buffer
    assert not (workspace / "notes.txt").exists()
