"""The turn loop end to end: a real daemon, the scripted model, real tools."""

from __future__ import annotations

import json
from pathlib import Path

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import assembled_text, collect_until, turn_completed


def call(name: str, **arguments: object) -> ScriptedToolCall:
    return ScriptedToolCall(name, arguments)


async def run_turn(daemon: KfdDaemon, workspace: Path, text: str, mode: p.Mode = "default"):
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode=mode)
        async with await client.attach(info.id) as session:
            await client.send(info.id, text)
            return info, await collect_until(session, turn_completed)


async def test_an_edit_lands_exactly_in_a_git_repo(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (workspace / "app.py").write_text("def greet():\n    return 'hello'\n")
    model_server.add(
        Reply(tool_calls=[call("read", path="app.py")]),
        Reply(tool_calls=[call("edit", path="app.py", old_string="'hello'", new_string="'hi'")]),
        Reply(text="Changed the greeting."),
    )
    _, events = await run_turn(daemon, workspace, "say hi instead", mode="accept-edits")

    assert (workspace / "app.py").read_text() == "def greet():\n    return 'hi'\n"
    completed = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert [(e.name, e.status) for e in completed] == [("read", "ok"), ("edit", "ok")]
    assert completed[1].display is not None and "+    return 'hi'" in (
        completed[1].display.diff or ""
    )
    assert events[-1].stop_reason == "end_turn"
    final = next(e for e in events if isinstance(e, p.MessageCompleted) and e.text)
    assert assembled_text(events, final.message_id) == "Changed the greeting."


async def test_tool_results_go_back_to_the_model_in_the_next_request(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(tool_calls=[call("read", path="README.md")]), Reply(text="done"))
    await run_turn(daemon, workspace, "read the readme")

    second = model_server.requests[1].body
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1
    assert "# demo" in tool_messages[0]["content"]
    assert second["messages"][0]["role"] == "system"
    assert {t["function"]["name"] for t in second["tools"]} >= {"read", "edit", "bash", "grep"}


async def test_invalid_arguments_and_unknown_tools_become_error_results(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(
            tool_calls=[
                ScriptedToolCall("read", '{"path": '),  # malformed JSON
                call("read", path=5),  # wrong type
                call("teleport", to="mars"),
                call("read", path="README.md\0.env"),  # no file name holds a NUL
                call("edit", path="a\0b", old_string="x", new_string="y"),
            ]
        ),
        Reply(text="sorry"),
    )
    _, events = await run_turn(daemon, workspace, "go")

    results = {e.call_id: e for e in events if isinstance(e, p.ToolCompleted)}
    assert [e.status for e in results.values()] == ["error"] * 5
    outputs = [e.output for e in results.values()]
    assert "not a valid JSON object" in outputs[0]
    assert "Expected `str`, got `int`" in outputs[1]
    assert "unknown tool `teleport`" in outputs[2] and "read" in outputs[2]
    assert "holds a NUL byte" in outputs[3] and "README.md\\x00.env" in outputs[3]
    assert "invalid arguments for `edit`" in outputs[4] and "NUL" in outputs[4]
    assert events[-1].stop_reason == "end_turn"


async def test_the_step_limit_stops_a_model_that_never_stops(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon("[agent]\nmax_steps = 2\n")
    model_server.add(
        Reply(tool_calls=[call("glob", pattern="*.md")]),
        Reply(tool_calls=[call("glob", pattern="*.py")]),
        Reply(text="never reached"),
    )
    _, events = await run_turn(daemon, workspace, "loop")

    assert events[-1].stop_reason == "max_steps"
    assert "max_steps" in events[-1].message
    assert len(model_server.requests) == 2


async def test_the_same_call_three_times_in_a_row_is_stopped(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(*[Reply(tool_calls=[call("read", path="README.md")]) for _ in range(3)])
    _, events = await run_turn(daemon, workspace, "read it again and again")

    results = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert [e.status for e in results] == ["ok", "ok", "cancelled"]
    assert "3 times in a row" in results[-1].output
    assert events[-1].stop_reason == "repeated_tool_call"
    assert len(model_server.requests) == 3


async def test_plan_mode_denies_mutating_tools_with_a_reason_the_model_reads(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[call("write", path="new.txt", content="x")]), Reply(text="ok")
    )
    _, events = await run_turn(daemon, workspace, "write a file", mode="plan")

    denied = next(e for e in events if isinstance(e, p.ToolCompleted))
    assert denied.status == "denied"
    assert not (workspace / "new.txt").exists()
    tool_message = next(m for m in model_server.requests[1].body["messages"] if m["role"] == "tool")
    assert "plan mode" in tool_message["content"]


async def test_messages_sent_during_a_turn_are_queued_and_run_next(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="first answer " * 20, chunk_delay_s=0.01), Reply(text="second"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as session:
            first = await client.send(info.id, "one")
            await collect_until(session, lambda e: isinstance(e, p.MessageDelta))
            second = await client.send(info.id, "two")
            events = await collect_until(
                session,
                lambda e: isinstance(e, p.TurnCompleted) and e.turn == 2,
            )

    assert not first.queued and second.queued
    queued = next(e for e in events if isinstance(e, p.MessageQueued))
    assert queued.message_id == second.message_id
    turns = [e for e in events if isinstance(e, p.TurnStarted)]
    assert turns[-1].message_ids == [second.message_id]
    last_request = model_server.requests[1].body["messages"]
    assert [m["content"] for m in last_request if m["role"] == "user"] == ["one", "two"]


async def test_a_provider_rejection_ends_the_turn_with_an_error_and_the_daemon_serves_on(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    from kfd.testing import HttpError

    model_server.add(Reply(fault=HttpError(401, message="invalid api key")), Reply(text="back"))
    _, events = await run_turn(daemon, workspace, "hello")
    error = next(e for e in events if isinstance(e, p.ErrorEvent))
    assert "401" in error.message
    assert "sk-test-not-a-real-key" not in json.dumps([str(e) for e in events])
    assert events[-1].stop_reason == "error"

    _, events = await run_turn(daemon, workspace, "again")
    assert events[-1].stop_reason == "end_turn"


async def test_retries_are_visible_and_the_partial_text_is_discarded(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    from kfd.testing import CutStream

    model_server.add(
        Reply(text="partial answer that breaks", fault=CutStream(after_chunks=3)),
        Reply(text="whole answer"),
    )
    _, events = await run_turn(daemon, workspace, "hello")

    discarded = [e for e in events if isinstance(e, p.MessageDiscarded)]
    retry = [e for e in events if isinstance(e, p.ModelRetry)]
    assert len(discarded) == 1 and len(retry) == 1
    completed = [e for e in events if isinstance(e, p.MessageCompleted)]
    assert [c.text for c in completed] == ["whole answer"]
    usage = [e for e in events if isinstance(e, p.UsageReported)]
    assert len(usage) == 1 and usage[0].total.requests == 1
