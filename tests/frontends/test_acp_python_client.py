"""``kfd acp`` driven by the ACP library's own client side, against a real daemon."""

from __future__ import annotations

from pathlib import Path

from acp import schema as a
from acp_editor import open_editor

from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon


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
