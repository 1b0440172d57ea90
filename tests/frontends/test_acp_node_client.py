"""``kfd acp`` driven by the official ACP TypeScript SDK's client, against a real daemon."""

from __future__ import annotations

import json
from pathlib import Path

from acp_node import needs_node, node_editor

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type

pytestmark = needs_node


def edit(path: str, old: str, new: str) -> Reply:
    return Reply(
        tool_calls=[ScriptedToolCall("edit", {"path": path, "old_string": old, "new_string": new})]
    )


async def test_a_prompt_reads_edits_after_the_editor_allows_and_runs_bash(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(text="Reading. ", tool_calls=[ScriptedToolCall("read", {"path": "README.md"})]),
        edit("README.md", "# demo", "# kfd demo"),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo from-bash"})]),
        Reply(text="Done."),
    )
    scenario = {"cwd": str(workspace), "prompt": "fix the title", "answer": "allow"}
    async with node_editor(daemon, **scenario) as ed:
        done = await ed.event("done")

    assert done["stopReason"] == "end_turn"
    init = ed.events[0]["init"]
    assert init["protocolVersion"] == 1 and init["agentCapabilities"]["loadSession"] is True
    assert init["agentCapabilities"]["promptCapabilities"]["embeddedContext"] is True
    assert (workspace / "README.md").read_text() == "# kfd demo\n"
    assert ed.agent_text() == "Reading. Done."
    starts = ed.updates("tool_call")
    assert [(s["kind"], s["status"]) for s in starts] == [
        ("read", "pending"),
        ("edit", "pending"),
        ("execute", "pending"),
    ]
    assert starts[1]["content"] == [
        {
            "type": "diff",
            "path": str(workspace / "README.md"),
            "oldText": "# demo",
            "newText": "# kfd demo",
        }
    ]
    (asked,) = [e for e in ed.events if e["event"] == "asked" and e["toolCall"]["kind"] == "edit"]
    assert asked["toolCall"]["toolCallId"] == starts[1]["toolCallId"]
    assert {o["optionId"] for o in asked["options"]} >= {"allow", "allow_session", "deny"}
    finals = {u["toolCallId"]: u for u in ed.updates("tool_call_update") if u.get("status")}
    assert {finals[s["toolCallId"]]["status"] for s in starts} == {"completed"}
    bash_text = finals[starts[2]["toolCallId"]]["content"][-1]["content"]["text"]
    assert "$ echo from-bash\nfrom-bash" in bash_text
    assert ed.updates("available_commands_update")[0]["availableCommands"][0]["name"] == "compact"
    async with await daemon.client() as client, await client.attach(done["sessionId"]) as view:
        history = await collect_until(view, of_type(p.TurnCompleted))
    resolved = [e for e in history if isinstance(e, p.ApprovalResolved)]
    assert resolved and {e.by.name for e in resolved if e.by} == {"acp:kfd-test-editor"}


async def test_cancel_mid_turn_stops_the_daemons_turn_and_the_prompt_says_cancelled(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    # A slow answer: the editor cancels as soon as the first words arrive.
    model_server.add(Reply(text="word " * 400, chunk_chars=5, chunk_delay_s=0.02))
    async with node_editor(
        daemon, cwd=str(workspace), prompt="talk", cancelAfter="agent_message_chunk"
    ) as ed:
        done = await ed.event("done")
    assert done["stopReason"] == "cancelled"
    async with await daemon.client() as client:
        info = await client.session(done["sessionId"])
        async with await client.attach(info.id) as view:
            assert view.snapshot is not None and view.snapshot.session.status == "idle"
            events = await collect_until(view, of_type(p.TurnCompleted))
    assert events[-1].stop_reason == "cancelled"  # type: ignore[union-attr]


async def test_loading_a_session_replays_its_whole_history_before_answering(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(
            reasoning="The file first.",
            tool_calls=[ScriptedToolCall("read", {"path": "README.md"})],
        ),
        Reply(text="It is a demo."),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "what is this repo?")
            await collect_until(view, of_type(p.TurnCompleted))

    async with node_editor(daemon, cwd=str(workspace), load=info.id) as ed:
        await ed.event("done")

    loaded_at = next(i for i, e in enumerate(ed.events) if e["event"] == "loaded")
    history = [e["update"] for e in ed.events[:loaded_at] if e["event"] == "update"]
    kinds = [u["sessionUpdate"] for u in history]
    assert kinds.index("user_message_chunk") < kinds.index("agent_thought_chunk")
    assert history[kinds.index("user_message_chunk")]["content"]["text"] == "what is this repo?"
    assert kinds.index("agent_thought_chunk") < kinds.index("tool_call")
    assert kinds.index("tool_call") < kinds.index("agent_message_chunk")
    assert ed.agent_text() == "It is a demo."
    (read,) = [u for u in history if u["sessionUpdate"] == "tool_call"]
    assert read["kind"] == "read" and read["locations"][0]["line"] == 1
    done = [u for u in history if u.get("toolCallId") == read["toolCallId"] and u.get("status")]
    assert done[-1]["status"] == "completed"
    assert "# demo" in done[-1]["content"][-1]["content"]["text"]
    assert ed.events[loaded_at]["loaded"]["modes"]["currentModeId"] == "default"


async def test_a_turn_approved_from_another_frontend_withdraws_the_editors_request(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"})]),
        edit("README.md", "# demo", "# approved elsewhere"),
        Reply(text="Edited."),
    )
    async with node_editor(daemon, cwd=str(workspace), prompt="edit it", answer="wait") as ed:
        asked = await ed.event("asked")
        created = ed.events[1]["created"]
        async with await daemon.client(name="repl:pts/9") as terminal:
            snapshot = (await terminal.attach(created["sessionId"])).snapshot
            assert snapshot is not None
            (pending,) = snapshot.pending_approvals
            assert pending.call_id == asked["toolCall"]["toolCallId"]
            await terminal.respond(created["sessionId"], pending.approval_id, "allow")
            withdrawn = await ed.event("withdrawn")
            done = await ed.event("done")

    assert withdrawn["requestId"] == asked["requestId"]  # $/cancel_request named it
    assert done["stopReason"] == "end_turn"
    assert (workspace / "README.md").read_text() == "# approved elsewhere\n"
    told = [
        u
        for u in ed.updates("tool_call_update")
        if u["toolCallId"] == pending.call_id and "Allowed once by repl:pts/9" in json.dumps(u)
    ]
    assert told, "the editor is told who answered"


async def test_bad_input_gets_json_rpc_errors_and_the_editor_carries_on(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="still here"))
    raw = [
        "{not json",
        "[1, 2]",
        '{"jsonrpc": "2.0", "id": 7, "method": "kfd/no_such_method", "params": {}}',
        '{"jsonrpc": "2.0", "id": 8, "method": "session/prompt", "params": {"bogus": true}}',
    ]
    async with node_editor(
        daemon, cwd=str(workspace), raw=raw, unknownSession="s0000000000000000000", prompt="hi"
    ) as ed:
        answers = (await ed.event("raw"))["answers"]
        refused = await ed.event("refused")
        done = await ed.event("done")

    assert [(a["id"], a["error"]["code"]) for a in answers] == [
        (None, -32700),
        (None, -32600),
        (7, -32601),
        (8, -32602),
    ]
    assert "not JSON" in answers[0]["error"]["message"]
    assert refused["code"] == -32002 and "session/new" in refused["message"]
    assert done["stopReason"] == "end_turn" and ed.agent_text() == "still here"
