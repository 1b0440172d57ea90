"""``kfd acp`` driven by the ACP library's own client side, against a real daemon."""

from __future__ import annotations

import asyncio
import os
import select
from collections.abc import Callable
from pathlib import Path

from acp import RequestError
from acp import schema as a
from acp_editor import open_editor

from kfd import protocol as p
from kfd.client import daemon_running
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type


async def test_a_prompt_reads_edits_with_the_editors_permission_and_runs_bash(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(text="Let me look.", tool_calls=[ScriptedToolCall("read", {"path": "README.md"})]),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "edit",
                    {"path": "README.md", "old_string": "# demo", "new_string": "# demo\n\nedited"},
                )
            ]
        ),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo kfd-acp-ran"})]),
        Reply(text="All done."),
    )
    async with open_editor(daemon) as (editor, conn, _):
        editor.auto_answer = "allow"
        init = await conn.initialize(protocol_version=1)
        created = await conn.new_session(cwd=str(workspace))
        answer = await conn.prompt(
            session_id=created.session_id, prompt=[a.TextContentBlock(type="text", text="go")]
        )

    assert init.protocol_version == 1
    assert init.agent_capabilities is not None and init.agent_capabilities.load_session
    assert created.modes is not None and created.modes.current_mode_id == "default"
    assert [m.id for m in created.modes.available_modes] == [
        "default",
        "accept-edits",
        "plan",
        "auto",
    ]
    assert answer.stop_reason == "end_turn"
    assert (workspace / "README.md").read_text() == "# demo\n\nedited\n"
    assert editor.agent_text() == "Let me look.All done."

    starts = editor.of(a.ToolCallStart)
    assert [(s.kind, s.status) for s in starts] == [
        ("read", "pending"),
        ("edit", "pending"),
        ("execute", "pending"),
    ]
    read, edit, bash = starts
    readme = str(workspace / "README.md")
    assert [(loc.path, loc.line) for loc in read.locations] == [(readme, 1)]
    (diff,) = edit.content
    assert (diff.type, diff.path, diff.old_text, diff.new_text) == (
        "diff",
        readme,
        "# demo",
        "# demo\n\nedited",
    )
    assert bash.title == "`echo kfd-acp-ran`"

    (asked,) = [q for q in editor.asked if q.tool_call.kind == "edit"]
    assert asked.tool_call.tool_call_id == edit.tool_call_id
    assert (asked.options[0].option_id, asked.options[0].kind) == ("allow", "allow_once")
    assert ("allow_session", "Allow for this session: edit(README.md)") in [
        (o.option_id, o.name) for o in asked.options
    ]
    assert asked.options[-1].kind == "reject_once"

    calls = editor.tool_calls()
    assert calls[edit.tool_call_id][-1].status == "completed"
    last_edit = calls[edit.tool_call_id][-1]
    assert [(loc.path, loc.line) for loc in last_edit.locations] == [(readme, 2)]  # first changed
    bash_done = calls[bash.tool_call_id][-1]
    assert bash_done.status == "completed"
    assert "kfd-acp-ran" in bash_done.content[-1].content.text


def text(words: str) -> list[a.TextContentBlock]:
    return [a.TextContentBlock(type="text", text=words)]


async def test_an_editor_that_vanishes_mid_turn_leaves_the_turn_running_for_a_later_load(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    answer = "slowly " * 60
    model_server.add(Reply(text=answer, chunk_chars=6, chunk_delay_s=0.02))
    async with open_editor(daemon) as (editor, conn, process):
        await conn.initialize(protocol_version=1)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        prompting = asyncio.create_task(conn.prompt(session_id=session_id, prompt=text("talk")))
        await editor.wait_for(lambda: editor.agent_text())
        assert process.stdin is not None
        process.stdin.close()  # the editor is gone, mid-answer
        assert await asyncio.wait_for(process.wait(), 20) == 0
        prompting.cancel()

    async with await daemon.client() as client:
        async with await client.attach(session_id) as view:
            ended = await collect_until(view, of_type(p.TurnCompleted), timeout=20)
        assert ended[-1].stop_reason == "end_turn"  # type: ignore[union-attr]

    async with open_editor(daemon) as (later, conn, _):
        await conn.initialize(protocol_version=1)
        await conn.load_session(cwd=str(workspace), session_id=session_id)
    assert later.agent_text() == answer
    assert [u.content.text for u in later.of(a.UserMessageChunk)] == ["talk"]


async def test_modes_are_kfds_permission_modes_both_ways(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    async with open_editor(daemon) as (editor, conn, _):
        await conn.initialize(protocol_version=1)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        await conn.set_session_mode(session_id=session_id, mode_id="plan")
        async with await daemon.client() as terminal:
            assert (await terminal.session(session_id)).mode == "plan"
            await terminal.set_mode(session_id, "accept-edits")
            changed = await editor.wait_for(lambda: editor.of(a.CurrentModeUpdate))
        # The editor's own change is not echoed back to it; the terminal's reaches it.
        try:
            await conn.set_session_mode(session_id=session_id, mode_id="yolo")
        except RequestError as exc:
            refused = exc
    assert [u.current_mode_id for u in changed] == ["accept-edits"]
    assert refused.code == -32602 and "default, accept-edits, plan, auto" in str(refused)


async def test_sessions_are_listed_and_resumed_without_their_history(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    model_server.add(Reply(text="first answer"), Reply(text="second answer"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with await daemon.client() as client:
        here = await client.create_session(workspace, title="here")
        await client.create_session(elsewhere, title="there")
        async with await client.attach(here.id) as view:
            await client.send(here.id, "one")
            await collect_until(view, of_type(p.TurnCompleted))

    async with open_editor(daemon) as (editor, conn, _):
        await conn.initialize(protocol_version=1)
        listed = await conn.list_sessions(cwd=str(workspace))
        everywhere = await conn.list_sessions()
        await conn.resume_session(cwd=str(workspace), session_id=here.id)
        answer = await conn.prompt(session_id=here.id, prompt=text("two"))

    assert [(s.session_id, s.title) for s in listed.sessions] == [(here.id, "here")]
    assert len(everywhere.sessions) == 2 and everywhere.next_cursor is None
    assert answer.stop_reason == "end_turn"
    assert editor.agent_text() == "second answer"  # resumed: no replay of the first


async def test_stop_reasons_say_why_the_turn_ended(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(text="a very long", finish_reason="length"),
        Reply(text="", finish_reason="content_filter"),
    )
    async with open_editor(daemon) as (_, conn, _):
        await conn.initialize(protocol_version=1)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        cut = await conn.prompt(session_id=session_id, prompt=text("write a novel"))
        refused = await conn.prompt(session_id=session_id, prompt=text("something bad"))
    assert (cut.stop_reason, refused.stop_reason) == ("max_tokens", "refusal")


async def test_a_denied_edit_leaves_the_file_and_the_editor_sees_it_fail(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"})]),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "edit", {"path": "README.md", "old_string": "# demo", "new_string": "# no"}
                )
            ]
        ),
        Reply(text="Understood."),
    )
    async with open_editor(daemon) as (editor, conn, _):
        editor.auto_answer = "deny"
        await conn.initialize(protocol_version=1)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        answer = await conn.prompt(session_id=session_id, prompt=text("rename it"))
    assert answer.stop_reason == "end_turn"
    assert (workspace / "README.md").read_text() == "# demo\n"
    (edit,) = [s for s in editor.of(a.ToolCallStart) if s.kind == "edit"]
    assert editor.tool_calls()[edit.tool_call_id][-1].status == "failed"


async def test_slash_commands_run_in_kfd_and_images_are_refused(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    async with open_editor(daemon) as (editor, conn, _):
        await conn.initialize(protocol_version=1)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        offered = await editor.wait_for(lambda: editor.of(a.AvailableCommandsUpdate))
        answer = await conn.prompt(session_id=session_id, prompt=text("/context"))
        image = a.ImageContentBlock(type="image", data="aGk=", mime_type="image/png")
        try:
            await conn.prompt(session_id=session_id, prompt=[image])
        except RequestError as exc:
            refused = exc
    assert {c.name for c in offered[0].available_commands} == {"compact", "context", "cost"}
    assert answer.stop_reason == "end_turn"
    assert f"Context of {session_id}" in editor.agent_text()
    assert model_server.requests == []  # no model request for a command
    assert refused.code == -32602 and "text only" in str(refused)


async def test_custom_commands_are_available_commands_and_run_in_kfd(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (daemon.config_dir / "commands").mkdir()
    (daemon.config_dir / "commands" / "explain.md").write_text(
        "---\ndescription: Explain a file\nargument-hint: FILE\n---\nExplain @$1 simply\n"
    )
    model_server.add(Reply(text="It is a demo."))
    async with open_editor(daemon) as (editor, conn, _):
        await conn.initialize(protocol_version=1)
        session_id = (await conn.new_session(cwd=str(workspace))).session_id
        offered = await editor.wait_for(lambda: editor.of(a.AvailableCommandsUpdate))
        answer = await conn.prompt(session_id=session_id, prompt=text("/explain README.md"))
    commands = {c.name: c for c in offered[0].available_commands}
    assert set(commands) == {"compact", "context", "cost", "explain"}
    assert commands["explain"].description == "Explain a file"
    assert answer.stop_reason == "end_turn"
    users = [m for m in model_server.requests[-1].body["messages"] if m["role"] == "user"]
    assert "Explain @README.md simply" in users[-1]["content"]
    assert '<file path="README.md">\n# demo\n</file>' in users[-1]["content"]


async def test_kfd_acp_starts_the_daemon_when_none_runs(
    make_daemon: Callable[..., KfdDaemon], workspace: Path
) -> None:
    daemon = make_daemon(start=False)
    assert not daemon_running(daemon.runtime_dir)
    try:
        async with open_editor(daemon) as (_, conn, _):
            await conn.initialize(protocol_version=1)
            created = await conn.new_session(cwd=str(workspace))
        assert daemon_running(daemon.runtime_dir)
    finally:
        async with await daemon.client() as client:
            pid = (await client.status()).pid
            await client.shutdown()
        exited = os.pidfd_open(pid)  # readable once the spawned daemon is gone
        try:
            ready, _, _ = await asyncio.to_thread(select.select, [exited], [], [], 20)
        finally:
            os.close(exited)
    assert ready, "the daemon kfd acp started did not stop"
    assert created.session_id.startswith("s")
