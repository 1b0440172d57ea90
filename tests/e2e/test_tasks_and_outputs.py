"""Tasks, paging through cut tool outputs, titles, and the session list."""

from __future__ import annotations

from pathlib import Path

from conversation import conversation_daemon

from kfd import protocol as p
from kfd.testing import Reply, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed

PLAN = [
    {"text": "write the parser", "status": "done"},
    {"text": "test the parser", "status": "in_progress"},
    {"text": "document it", "status": "pending"},
]


async def test_tasks_set_shows_the_plan_and_it_survives_a_restart(workspace: Path) -> None:
    with conversation_daemon() as (model, daemon):
        model.add(
            Reply(tool_calls=[ScriptedToolCall("tasks_set", {"tasks": PLAN})]),
            Reply(
                tool_calls=[
                    ScriptedToolCall("tasks_set", {"tasks": [{"text": "x", "status": "bogus"}]}),
                    ScriptedToolCall("tasks_set", {"tasks": [{"text": "y" * 400}] * 51}),
                ]
            ),
            Reply(text="planned"),
        )
        async with await daemon.client() as client:
            info = await client.create_session(workspace, mode="plan")
            async with await client.attach(info.id) as session:
                await client.send(info.id, "plan the parser work")
                events = await collect_until(session, turn_completed)
            daemon.restart()
            async with await client.attach(info.id) as again:
                snapshot_after_restart = again.snapshot

    updates = [e for e in events if isinstance(e, p.TasksUpdated)]
    assert len(updates) == 1
    assert [(t.text, t.status) for t in updates[0].tasks] == [
        (task["text"], task["status"]) for task in PLAN
    ]
    results = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert results[0].status == "ok" and "1 done, 1 in progress, 1 pending" in results[0].output
    assert [e.status for e in results[1:]] == ["error", "error"]
    assert "Expected `str` matching" in results[1].output or "bogus" in results[1].output
    assert snapshot_after_restart is not None
    assert [t.text for t in snapshot_after_restart.tasks] == [task["text"] for task in PLAN]


async def test_a_cut_tool_output_can_be_paged_by_id_also_from_a_fork(workspace: Path) -> None:
    (workspace / "big.txt").write_text("".join(f"row {n:05d}\n" for n in range(1, 20_001)))
    with conversation_daemon() as (model, daemon):
        model.add(
            Reply(
                tool_calls=[
                    ScriptedToolCall("read", {"path": "big.txt", "limit": 20_000}, id="call_big")
                ]
            ),
            Reply(
                tool_calls=[
                    ScriptedToolCall(
                        "read_output", {"id": "call_big", "offset": 10_000, "limit": 3}
                    ),
                    ScriptedToolCall("read_output", {"id": "call_nope"}),
                    ScriptedToolCall("read_output", {"id": "call_big", "offset": 99_999}),
                ]
            ),
            Reply(text="paged"),
            Reply(tool_calls=[ScriptedToolCall("read_output", {"id": "call_big", "limit": 2})]),
            Reply(text="paged in the fork"),
        )
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            async with await client.attach(info.id) as session:
                await client.send(info.id, "read big.txt")
                events = await collect_until(session, turn_completed)
            fork = await client.fork(info.id)
            async with await client.attach(fork.id, since_seq=fork.last_seq) as forked:
                await client.send(fork.id, "page it here too")
                fork_events = await collect_until(forked, turn_completed)

    # Read-only calls run concurrently: take the results in the order of the calls.
    done = {e.call_id: e for e in events if isinstance(e, p.ToolCompleted)}
    calls = [e.call_id for e in events if isinstance(e, p.ToolRequested)]
    first, window, unknown, past = (done[call] for call in calls)
    assert first.truncated and "read_output with id `call_big`" in first.output
    assert window.status == "ok"
    header, *lines = window.output.splitlines()
    assert header.startswith("[output call_big: lines 10000-10002 of ")
    assert [line.split()[-1] for line in lines] == ["10000", "10001", "10002"]
    assert "next: read_output(id='call_big', offset=10003)" in window.output
    assert unknown.status == "error" and "no kept output `call_nope`" in unknown.output
    assert "past the end" in past.output
    (paged,) = [e for e in fork_events if isinstance(e, p.ToolCompleted)]
    assert paged.status == "ok" and "lines 1-2 of" in paged.output, paged.output


async def test_sessions_are_titled_from_the_first_message_and_listed_with_cost(
    workspace: Path,
) -> None:
    with conversation_daemon() as (model, daemon):
        model.add(Reply(text="fixed"), Reply(text="again"))
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            async with await client.attach(info.id) as session:
                await client.send(info.id, "# Fix the flaky login test\n\nIt fails on CI.")
                events = await collect_until(session, turn_completed)
                await client.send(info.id, "a second message does not rename it")
                await collect_until(session, turn_completed)
            titled = await client.session(info.id)
        listing = daemon.cli("sessions")

    updated = [e for e in events if isinstance(e, p.SessionUpdated)]
    assert updated and updated[0].info.title == "Fix the flaky login test"
    assert titled.title == "Fix the flaky login test"
    assert listing.returncode == 0
    assert "Fix the flaky login test" in listing.stdout
    assert str(workspace) in listing.stdout
    assert "2 turns" in listing.stdout and "tokens" in listing.stdout and "$" in listing.stdout
