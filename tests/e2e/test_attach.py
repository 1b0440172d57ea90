"""Several frontends on one live session: same events, once each, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.client import ConnectionLost, ConnectionRestored, RequestFailed
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import assembled_text, collect_until, of_type, turn_completed
from kfd.testing.processes import processes_gone, processes_running


def durable(items: list) -> list[tuple[str, int]]:
    return [(p.event_type(e), e.seq) for e in items if isinstance(e, p.Event) and not e.ephemeral]


def assert_contiguous(items: list, start: int = 1) -> None:
    seqs = [seq for _, seq in durable(items)]
    assert seqs == list(range(start, start + len(seqs))), seqs


async def test_two_clients_receive_identical_event_sequences(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(
            text="Looking.",
            tool_calls=[ScriptedToolCall("bash", {"command": "echo one; echo two"})],
        ),
        Reply(text="Both lines printed."),
    )
    async with await daemon.client("a") as a, await daemon.client("b") as b:
        info = await a.create_session(workspace, mode="auto")
        async with await a.attach(info.id) as view_a, await b.attach(info.id) as view_b:
            await b.send(info.id, "print two lines")
            seen_a = await collect_until(view_a, turn_completed)
            seen_b = await collect_until(view_b, turn_completed)

    assert durable(seen_a) == durable(seen_b)
    assert_contiguous(seen_a)
    final = [e for e in seen_a if isinstance(e, p.MessageCompleted)][-1]
    assert assembled_text(seen_a, final.message_id) == assembled_text(seen_b, final.message_id)
    assert assembled_text(seen_b, final.message_id) == "Both lines printed."
    output_a = "".join(e.data for e in seen_a if isinstance(e, p.ToolOutput))
    output_b = "".join(e.data for e in seen_b if isinstance(e, p.ToolOutput))
    assert output_a == output_b == "one\ntwo\n"
    user = next(e for e in seen_a if isinstance(e, p.MessageUser))
    assert user.frontend is not None and user.frontend.name == "b"


async def test_a_client_attaching_mid_turn_gets_every_event_once(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    gate = workspace / "gate"
    command = f"echo before; while [ ! -e {gate} ]; do sleep 0.01; done; echo after"
    model_server.add(
        Reply(
            text="Starting the job now. " * 5,
            tool_calls=[ScriptedToolCall("bash", {"command": command})],
        ),
        Reply(text="The job finished after the gate opened.", chunk_delay_s=0.002),
    )
    async with await daemon.client("first") as first, await daemon.client("late") as late:
        info = await first.create_session(workspace, mode="auto")
        async with await first.attach(info.id) as early_view:
            await first.send(info.id, "run the job")
            await collect_until(
                early_view, lambda e: isinstance(e, p.ToolOutput) and "before" in e.data
            )
            async with await late.attach(info.id) as late_view:
                assert late_view.snapshot is not None
                running = late_view.snapshot.running_tools
                assert [t.name for t in running] == ["bash"]
                gate.touch()
                seen_late = await collect_until(late_view, turn_completed)
                seen_early = await collect_until(early_view, turn_completed)

    assert_contiguous(seen_late)
    assert durable(seen_late)[-1] == durable(seen_early)[-1]
    output = "".join(e.data for e in seen_late if isinstance(e, p.ToolOutput))
    assert output == "before\nafter\n"
    first_message = next(e for e in seen_late if isinstance(e, p.MessageCompleted))
    assert first_message.text == "Starting the job now. " * 5  # from history: no deltas
    assert assembled_text(seen_late, first_message.message_id) == ""


async def test_a_client_attaching_mid_stream_assembles_the_exact_text(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    text = "".join(f"word{i} " for i in range(120))
    model_server.add(Reply(text=text, chunk_chars=3, chunk_delay_s=0.003))
    async with await daemon.client("first") as first, await daemon.client("late") as late:
        info = await first.create_session(workspace)
        async with await first.attach(info.id) as early_view:
            await first.send(info.id, "talk")
            await collect_until(
                early_view, lambda e: isinstance(e, p.MessageDelta) and e.offset > 30
            )
            async with await late.attach(info.id) as late_view:
                snapshot = late_view.snapshot
                assert snapshot is not None and snapshot.streaming is not None
                assert 0 < len(snapshot.streaming.text) < len(text)
                seen_late = await collect_until(late_view, turn_completed)

    completed = next(e for e in seen_late if isinstance(e, p.MessageCompleted))
    assert completed.text == text
    assert assembled_text(seen_late, completed.message_id) == text
    assert_contiguous(seen_late)


async def test_an_approval_answered_by_the_second_client_resolves_for_both(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo approved > out.txt"})]),
        Reply(text="done"),
    )
    async with await daemon.client("term-1") as one, await daemon.client("term-2") as two:
        info = await one.create_session(workspace)
        async with await one.attach(info.id) as view_one, await two.attach(info.id) as view_two:
            await one.send(info.id, "write it")
            asked_one = (await collect_until(view_one, of_type(p.ApprovalRequested)))[-1]
            asked_two = (await collect_until(view_two, of_type(p.ApprovalRequested)))[-1]
            assert asked_one.approval_id == asked_two.approval_id
            assert asked_one.preview.command == "echo approved > out.txt"
            assert asked_one.session_rule == "bash(echo approved > out.txt)"
            assert asked_one.can_keep  # a real rule: "allow always" may keep it
            await two.respond(info.id, asked_two.approval_id, "allow")
            with pytest.raises(RequestFailed) as late:
                await one.respond(info.id, asked_one.approval_id, "deny")
            resolved_one = (await collect_until(view_one, of_type(p.ApprovalResolved)))[-1]
            resolved_two = (await collect_until(view_two, of_type(p.ApprovalResolved)))[-1]
            await collect_until(view_one, turn_completed)

    assert late.value.code == "conflict" and "term-2" in late.value.message
    assert resolved_one == resolved_two
    assert resolved_one.decision == "allow"
    assert resolved_one.by is not None and resolved_one.by.name == "term-2"
    assert (workspace / "out.txt").read_text() == "approved\n"


async def test_a_denial_message_reaches_the_model(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "rm -rf build"})]),
        Reply(text="ok, I will not"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "clean up")
            asked = (await collect_until(view, of_type(p.ApprovalRequested)))[-1]
            await client.respond(info.id, asked.approval_id, "deny", "keep the build dir")
            events = await collect_until(view, turn_completed)

    result = next(e for e in events if isinstance(e, p.ToolCompleted))
    assert result.status == "denied"
    tool_message = next(m for m in model_server.requests[1].body["messages"] if m["role"] == "tool")
    assert "keep the build dir" in tool_message["content"]


async def test_allow_for_this_session_allows_the_exact_same_command_only(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch a"})]),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch a"})]),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch a; touch b"})]),
        Reply(text="done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "go")
            events = await collect_until(view, of_type(p.ApprovalRequested))
            await client.respond(info.id, events[-1].approval_id, "allow_session")
            events += await collect_until(view, of_type(p.ApprovalRequested))
            assert events[-1].preview.command == "touch a; touch b"
            await client.respond(info.id, events[-1].approval_id, "deny")
            events += await collect_until(view, turn_completed)

    resolved = next(e for e in events if isinstance(e, p.ApprovalResolved))
    assert resolved.rule == "bash(touch a)"
    statuses = [e.status for e in events if isinstance(e, p.ToolCompleted)]
    assert statuses == ["ok", "ok", "denied"]  # the second `touch a` ran without asking
    assert sum(isinstance(e, p.ApprovalRequested) for e in events) == 2


async def test_cancel_stops_a_sleeping_command_and_its_children(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    # The sleeper is found by its marker: inside the sandbox, its pid is not the host's.
    marker = "60.4193"
    model_server.add(
        Reply(
            tool_calls=[
                ScriptedToolCall("bash", {"command": f"sleep {marker} & echo started; wait"})
            ]
        )
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "sleep")
            await collect_until(view, of_type(p.ToolStarted))
            await collect_until(view, lambda e: isinstance(e, p.ToolOutput) and "started" in e.data)
            assert processes_running(marker)
            await client.cancel(info.id)
            events = await collect_until(view, turn_completed, timeout=3)

    assert events[-1].stop_reason == "cancelled"
    result = next(e for e in events if isinstance(e, p.ToolCompleted))
    assert result.status == "cancelled"
    assert await processes_gone(marker, within=1.0)


async def test_a_client_reconnects_by_itself_when_the_daemon_restarts(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="before restart"), Reply(text="after restart"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "one")
            before = await collect_until(view, turn_completed)
            daemon.restart()
            before += await collect_until(view, of_type(ConnectionLost))
            restored = await view.next_event(10)
            await client.send(info.id, "two")
            after = await collect_until(view, turn_completed)

    assert isinstance(restored, ConnectionRestored)
    assert restored.snapshot.session.status == "idle"
    assert_contiguous(before + after)
    assert [e.text for e in after if isinstance(e, p.MessageCompleted)] == ["after restart"]


async def test_attach_with_tail_returns_only_recent_history(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="a"), Reply(text="b"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            for text in ("one", "two"):
                await client.send(info.id, text)
                await collect_until(view, turn_completed)
        async with await client.attach(info.id, tail=3) as tail_view:
            assert tail_view.snapshot is not None
            last = tail_view.snapshot.seq
            history = [await tail_view.next_event(5) for _ in range(3)]
    assert last > 10
    assert [e.seq for e in history] == [last - 2, last - 1, last]


async def test_cancel_stops_the_model_stream_and_closes_the_connection(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="a very slow answer " * 50, chunk_delay_s=0.05))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "talk slowly")
            await collect_until(view, of_type(p.MessageDelta))
            await client.cancel(info.id)
            events = await collect_until(view, turn_completed, timeout=3)
    assert events[-1].stop_reason == "cancelled"
    assert not any(isinstance(e, p.MessageCompleted) for e in events)
    outcome = await model_server.requests[0].wait_done_async(timeout=3)
    assert outcome == "client_disconnected"


async def test_an_edit_approval_shows_the_diff_and_outside_reads_ask(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret-ish\n")
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"})]),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "edit", {"path": "README.md", "old_string": "demo", "new_string": "kfd demo"}
                )
            ]
        ),
        Reply(tool_calls=[ScriptedToolCall("read", {"path": str(outside)})]),
        Reply(text="done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "edit")
            edit = (await collect_until(view, of_type(p.ApprovalRequested)))[-1]
            await client.respond(info.id, edit.approval_id, "allow")
            read = (await collect_until(view, of_type(p.ApprovalRequested)))[-1]
            await client.respond(info.id, read.approval_id, "deny")
            await collect_until(view, turn_completed)
    assert edit.tool == "edit"
    assert edit.preview.diff is not None
    assert "-# demo" in edit.preview.diff and "+# kfd demo" in edit.preview.diff
    assert (workspace / "README.md").read_text() == "# kfd demo\n"
    assert read.tool == "read" and "reads outside the workspace" in read.reason
    assert str(outside) in read.reason
