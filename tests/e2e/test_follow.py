"""Following every session: each session's events exactly once, in order."""

from __future__ import annotations

from pathlib import Path

from kfd import protocol as p
from kfd.client import Followed, Follower
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon


async def until_turns_done(follower: Follower, sessions: set[str]) -> list:
    items: list = []
    done: set[str] = set()
    while done != sessions:
        item = await follower.next_event(30)
        items.append(item)
        if isinstance(item, p.TurnCompleted):
            done.add(item.session)
    return items


def durable_seqs(items: list, session: str) -> list[int]:
    return [
        e.seq for e in items if isinstance(e, p.Event) and e.session == session and not e.ephemeral
    ]


async def test_a_follower_sees_every_new_session_once_in_order(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="one"), Reply(text="two"))
    async with (
        await daemon.client("follower") as watcher,
        await daemon.client("user") as user,
        await watcher.follow() as follower,
    ):
        first = await user.create_session(workspace)
        second = await user.create_session(workspace)
        await user.send(first.id, "hello")
        await user.send(second.id, "hello")
        items = await until_turns_done(follower, {first.id, second.id})

    for session in (first.id, second.id):
        seqs = durable_seqs(items, session)
        assert seqs == list(range(1, len(seqs) + 1))  # from session.created on, no gap, no repeat
        followed = [i for i in items if isinstance(i, Followed) and i.session == session]
        assert len(followed) == 1
        assert items.index(followed[0]) < min(
            items.index(e) for e in items if isinstance(e, p.Event) and e.session == session
        )


async def test_a_follower_resumes_from_a_cursor_without_repeats_or_losses(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="first"), Reply(text="second"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.follow() as follower:
            await client.send(info.id, "one")
            seen = await until_turns_done(follower, {info.id})
        cursor = {info.id: max(durable_seqs(seen, info.id))}
        await client.send(info.id, "two")  # while nobody follows
        async with await client.attach(info.id, since_seq=cursor[info.id]) as view:
            while not isinstance(await view.next_event(30), p.TurnCompleted):
                pass
        async with await client.follow(since=cursor) as follower:
            resumed = await until_turns_done(follower, {info.id})

    seqs = durable_seqs(seen, info.id) + durable_seqs(resumed, info.id)
    # An idle session is followed from its first event after follow(): here
    # the status change after session.created (seq 1, older than the follower).
    assert seqs == list(range(2, len(seqs) + 2))
    texts = [e.text for e in resumed if isinstance(e, p.MessageCompleted)]
    assert texts == ["second"]


async def test_a_follower_starts_with_the_pending_approvals_of_busy_sessions(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo hi > hi.txt"})]),
        Reply(text="done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "write hi")
            while not isinstance(await view.next_event(30), p.ApprovalRequested):
                pass
        async with await client.follow() as follower:
            followed = await follower.next_event(30)
            assert isinstance(followed, Followed) and followed.session == info.id
            [approval] = followed.snapshot.pending_approvals
            await client.respond(info.id, approval.approval_id, "allow")
            items = await until_turns_done(follower, {info.id})

    resolved = next(e for e in items if isinstance(e, p.ApprovalResolved))
    assert resolved.approval_id == approval.approval_id
    assert (workspace / "hi.txt").read_text() == "hi\n"
