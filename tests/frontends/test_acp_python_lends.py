"""What an editor lends a session through ``kfd acp`` (the ACP library's client
side, a real daemon): its MCP servers (``mcpServers``, stdio and HTTP) and its
view of the files (``fs/read_text_file``, ``fs/write_text_file``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from acp import RequestError
from acp import schema as a
from acp_editor import Editor, open_editor

from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import status_until

if TYPE_CHECKING:
    from conftest import HttpMcpServer

MCP_SERVERS = Path(__file__).parents[1] / "plugins" / "mcp_servers"
PEEK = MCP_SERVERS / "peek.py"
PEEK_TOKEN = "tok-0d9e8f7a6b5c4d3e2f1a"
FILES = a.ClientCapabilities(fs=a.FileSystemCapabilities(read_text_file=True, write_text_file=True))


def call(tool: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall(tool, arguments)])


def text(words: str) -> list[a.TextContentBlock]:
    return [a.TextContentBlock(type="text", text=words)]


def offered(request: Any) -> set[str]:
    return {tool["function"]["name"] for tool in request.body.get("tools", [])}


def tool_results(request: Any) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "tool"]


async def test_the_editors_stdio_and_http_mcp_servers_serve_its_session_and_each_call_asks(
    daemon: KfdDaemon,
    model_server: ScriptedModelServer,
    workspace: Path,
    http_server: HttpMcpServer,
) -> None:
    model_server.add(
        call("mcp__Peek_tools__variable", name="PEEK_TOKEN"),
        call("mcp__Peek_tools__where"),
        call("mcp__web__echo", text="from the editor's server"),
        Reply(text="Both answered."),
        Reply(text="No servers here."),
    )
    peek = a.McpServerStdio(
        name="Peek tools",
        command=sys.executable,
        args=[str(PEEK)],
        env=[a.EnvVariable(name="PEEK_TOKEN", value=PEEK_TOKEN)],
    )
    web = a.HttpMcpServer(
        type="http",
        name="web",
        url=http_server.url,
        headers=[a.HttpHeader(name="Authorization", value=f"Bearer {http_server.token}")],
    )
    async with open_editor(daemon) as (editor, conn, _):
        editor.auto_answer = "allow"
        init = await conn.initialize(protocol_version=1)
        mine = await conn.new_session(cwd=str(workspace), mcp_servers=[peek, web])
        answer = await conn.prompt(session_id=mine.session_id, prompt=text("use them"))
        other = await conn.new_session(cwd=str(workspace), mcp_servers=[])
        await conn.prompt(session_id=other.session_id, prompt=text("anything?"))

    assert init.agent_capabilities is not None
    mcp = init.agent_capabilities.mcp_capabilities
    assert mcp is not None and mcp.http and not mcp.sse
    assert answer.stop_reason == "end_turn"
    assert {"mcp__Peek_tools__where", "mcp__web__echo"} <= offered(model_server.requests[0])
    assert not any(name.startswith("mcp__") for name in offered(model_server.requests[-1]))
    token, cwd, echoed = tool_results(model_server.requests[3])
    assert PEEK_TOKEN in token  # the server got the editor's variable
    assert str(workspace) in cwd  # a stdio server runs in the session's workspace
    assert "echo: from the editor's server" in echoed  # the HTTP server got the header
    shown = str(editor.updates_of(mine.session_id))
    assert PEEK_TOKEN not in shown and "[redacted mcp Peek_tools $PEEK_TOKEN]" in shown
    assert len(editor.asked) == 3  # MCP tools ask before each call
    assert all(q.session_id == mine.session_id for q in editor.asked)
    assert PEEK_TOKEN not in daemon.log_text() and http_server.token not in daemon.log_text()


async def test_a_server_kfd_cannot_run_refuses_the_session_with_a_clear_error(
    daemon: KfdDaemon, workspace: Path
) -> None:
    sse = a.SseMcpServer(type="sse", name="old", url="http://127.0.0.1:1/sse", headers=[])
    nul = a.McpServerStdio(name="bad", command="x\x00y", args=[], env=[])
    async with open_editor(daemon) as (_, conn, _):
        await conn.initialize(protocol_version=1)
        errors = []
        for servers in ([sse], [nul]):
            try:
                await conn.new_session(cwd=str(workspace), mcp_servers=servers)
            except RequestError as exc:
                errors.append(exc)
        fine = await conn.new_session(cwd=str(workspace), mcp_servers=[])
    assert len(errors) == 2
    assert all(e.code == -32602 for e in errors)
    assert "not sse" in str(errors[0]) and "NUL" in str(errors[1])
    assert fine.session_id.startswith("s")


async def test_servers_the_daemon_refuses_fail_the_first_session_new_as_any_other(
    daemon: KfdDaemon, workspace: Path
) -> None:
    nul = a.McpServerStdio(name="bad", command="x\x00y", args=[], env=[])
    async with open_editor(daemon) as (_, conn, _):
        await conn.initialize(protocol_version=1)
        with pytest.raises(RequestError) as first:  # answered before the library loaded
            await conn.new_session(cwd=str(workspace), mcp_servers=[nul])
        with pytest.raises(RequestError) as second:  # answered by the library's agent
            await conn.new_session(cwd=str(workspace), mcp_servers=[nul])
        fine = await conn.new_session(cwd=str(workspace), mcp_servers=[])
    assert (first.value.code, str(first.value)) == (second.value.code, str(second.value))
    assert first.value.code == -32602 and "NUL" in str(first.value)
    assert fine.session_id.startswith("s")


async def test_a_read_sees_the_unsaved_buffer_and_a_write_lands_only_through_the_editor(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    readme = workspace / "README.md"
    model_server.add(
        call("read", path="README.md"),
        call("edit", path="README.md", old_string="unsaved line", new_string="edited in buffer"),
        call("write", path="notes.txt", content="new notes\n"),
        Reply(text="done"),
    )
    editor = Editor()
    editor.save = False  # the user has not saved: only the buffers change
    editor.buffers[str(readme)] = "# demo\n\nunsaved line\n"
    async with open_editor(daemon, editor) as (_, conn, _):
        editor.auto_answer = "allow"
        await conn.initialize(protocol_version=1, client_capabilities=FILES)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        answer = await conn.prompt(session_id=session_id, prompt=text("edit it"))

    assert answer.stop_reason == "end_turn"
    shown = tool_results(model_server.requests[1])[0]
    assert "unsaved line" in shown  # the model read the buffer, not the disk
    writes = [(Path(path).name, content) for op, path, content in editor.fs if op == "write"]
    assert writes == [
        ("README.md", "# demo\n\nedited in buffer\n"),
        ("notes.txt", "new notes\n"),
    ]
    assert readme.read_text() == "# demo\n"  # kfd itself wrote nothing to disk
    assert not (workspace / "notes.txt").exists()
    assert editor.buffers[str(workspace / "notes.txt")] == "new notes\n"


async def test_a_write_the_editor_saves_is_a_checkpointed_change_and_a_denied_one_never_reaches_it(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        call("write", path="notes.txt", content="kept\n"),
        Reply(text="written"),
        call("read", path="README.md"),
        call("write", path="README.md", content="clobbered\n"),
        Reply(text="understood"),
    )
    async with open_editor(daemon) as (editor, conn, _):
        await conn.initialize(protocol_version=1, client_capabilities=FILES)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        editor.auto_answer = "allow"
        await conn.prompt(session_id=session_id, prompt=text("write notes"))
        editor.auto_answer = "deny"
        await conn.prompt(session_id=session_id, prompt=text("overwrite the readme"))

    async with await daemon.client() as client:
        recorded = await client.checkpoints(session_id)
        undone = await client.undo(session_id, turn=recorded.turns[0].turn)

    assert [(f.path, f.change) for t in recorded.turns for f in t.files] == [
        ("notes.txt", "added")
    ]  # the editor's save is a change of the turn, as the disk's would be
    assert [step.action for step in undone.steps] == ["restore"]
    assert not (workspace / "notes.txt").exists()
    assert [(op, Path(path).name) for op, path, _ in editor.fs if op == "write"] == [
        ("write", "notes.txt")
    ]
    assert (workspace / "README.md").read_text() == "# demo\n"
    *_, denied = [s for s in editor.of(a.ToolCallStart) if s.kind == "edit"]
    assert editor.tool_calls()[denied.tool_call_id][-1].status == "failed"


async def test_a_loaded_session_gets_the_editors_servers_until_the_editor_leaves(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(call("mcp__peek__where"), Reply(text="here"))
    peek = a.McpServerStdio(name="peek", command=sys.executable, args=[str(PEEK)], env=[])
    async with await daemon.client() as client:
        session_id = (await client.create_session(workspace)).id  # started elsewhere
        async with open_editor(daemon) as (editor, conn, _):
            editor.auto_answer = "allow"
            await conn.initialize(protocol_version=1)
            await conn.load_session(cwd=str(workspace), session_id=session_id, mcp_servers=[peek])
            answer = await conn.prompt(session_id=session_id, prompt=text("where?"))
            (listed,) = (await client.status()).plugin_status["mcp"]["servers"]
        # The editor left: its servers stop.
        await status_until(client, lambda s: not s.plugin_status["mcp"]["servers"])

    assert answer.stop_reason == "end_turn"
    assert (listed["name"], listed["session"]) == ("peek", session_id)
    assert str(workspace) in tool_results(model_server.requests[1])[0]
