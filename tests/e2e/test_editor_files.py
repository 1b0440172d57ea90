"""A frontend serving a session's files (an editor's buffers), against a real daemon.

The frontend here is a plain `kfd.client.Client` with an in-memory "editor":
open buffers over the files on disk, saved (or not) when written. The ACP
frontend does the same through ``fs/read_text_file`` and ``fs/write_text_file``
(tests/frontends/test_acp_*).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from kfd import protocol as p
from kfd.client import Client, FileUnavailable
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type, turn_completed


class Buffers:
    """An editor's open files over the disk: what the daemon asks is recorded."""

    def __init__(self, *, save: bool = True) -> None:
        self.open: dict[str, str] = {}
        self.save = save
        self.asked: list[p.FileRequested] = []
        self.hold: asyncio.Event | None = None
        """Set: every request waits for it (an editor that does not answer)."""
        self.on_write: Callable[[], object] | None = None

    async def __call__(self, request: p.FileRequested) -> str:
        self.asked.append(request)
        if self.hold is not None:
            await self.hold.wait()
        if request.op == "read":
            if request.path in self.open:
                return self.open[request.path]
            return Path(request.path).read_text()
        if self.on_write is not None:
            self.on_write()
            await asyncio.Event().wait()  # never answers: it is gone
        self.open[request.path] = request.text
        if self.save:
            Path(request.path).write_text(request.text)
        return ""

    def ops(self) -> list[tuple[str, str]]:
        return [(r.op, os.path.basename(r.path)) for r in self.asked]


def edit(path: str, old: str, new: str) -> Reply:
    return Reply(
        tool_calls=[ScriptedToolCall("edit", {"path": path, "old_string": old, "new_string": new})]
    )


def read(path: str) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall("read", {"path": path})])


async def turn(client: Client, session: str, text: str = "go") -> list[object]:
    """Run a turn to its end, allowing whatever asks."""
    async with await client.attach(session) as view:
        await client.send(session, text)
        events: list[object] = []
        while not (events and turn_completed(events[-1])):  # type: ignore[arg-type]
            event = await view.next_event(30)
            if isinstance(event, p.ApprovalRequested):
                await client.respond(session, event.approval_id, "allow")
            events.append(event)
        return events


def results(events: list[object]) -> list[p.ToolCompleted]:
    return [e for e in events if isinstance(e, p.ToolCompleted)]


async def test_a_read_sees_the_unsaved_buffer_and_an_edit_is_written_by_the_editor_alone(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    readme = workspace / "README.md"
    model_server.add(
        read("README.md"),
        edit("README.md", "unsaved line", "edited in the buffer"),
        Reply(text="done"),
    )
    editor = Buffers(save=False)
    editor.open[str(readme)] = "# demo\n\nunsaved line\n"
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="accept-edits")
        await client.serve_files(info.id, editor)
        events = await turn(client, info.id)

    shown, edited = results(events)
    assert shown.status == "ok" and "3\tunsaved line" in shown.output
    assert edited.status == "ok", edited.output
    assert "+edited in the buffer" in edited.output
    assert editor.ops() == [("read", "README.md"), ("read", "README.md"), ("write", "README.md")]
    assert editor.asked[-1].text == "# demo\n\nedited in the buffer\n"
    assert editor.open[str(readme)] == "# demo\n\nedited in the buffer\n"
    assert readme.read_text() == "# demo\n"  # the editor did not save: kfd wrote nothing


async def test_a_write_the_user_denies_never_reaches_the_editor(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        read("README.md"),
        Reply(tool_calls=[ScriptedToolCall("write", {"path": "README.md", "content": "gone\n"})]),
        Reply(text="ok"),
    )
    editor = Buffers()
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        await client.serve_files(info.id, editor)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "overwrite it")
            asked = (await collect_until(view, of_type(p.ApprovalRequested)))[-1]
            assert asked.preview.diff is not None and "-# demo" in asked.preview.diff
            await client.respond(info.id, asked.approval_id, "deny")
            events = await collect_until(view, turn_completed, timeout=30)

    assert [r.status for r in results(events)] == ["denied"]
    assert ("write", "README.md") not in editor.ops()
    assert (workspace / "README.md").read_text() == "# demo\n"


async def test_an_editor_that_does_not_answer_in_time_leaves_the_read_to_the_disk(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(read("README.md"), Reply(text="read"))
    editor = Buffers()
    editor.hold = asyncio.Event()
    editor.open[str(workspace / "README.md")] = "never shown\n"
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        await client.serve_files(info.id, editor, timeout_s=0.3)
        events = await turn(client, info.id)
        editor.hold.set()

    (shown,) = results(events)
    assert shown.status == "ok" and "1\t# demo" in shown.output
    assert "never shown" not in shown.output
    assert editor.ops() == [("read", "README.md")]


async def test_an_editor_that_vanishes_mid_write_leaves_the_write_to_the_disk(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        read("README.md"),
        edit("README.md", "# demo", "# written after the editor left"),
        Reply(text="done"),
    )
    editor = Buffers()
    async with await daemon.client() as client, await daemon.client(name="editor") as lender:
        info = await client.create_session(workspace, mode="accept-edits")
        await lender.serve_files(info.id, editor)
        editor.on_write = lambda: asyncio.get_running_loop().create_task(lender.close())
        events = await turn(client, info.id)

    _shown, edited = results(events)
    assert edited.status == "ok", edited.output
    assert [op for op, _ in editor.ops()] == ["read", "read", "write"]
    assert (workspace / "README.md").read_text() == "# written after the editor left\n"
    assert len([e for e in events if isinstance(e, p.ToolCompleted)]) == 2  # one result each


async def test_files_outside_the_workspace_and_links_are_never_asked_of_the_editor(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside text\n")
    (workspace / "link.md").symlink_to(outside)
    model_server.add(
        read(str(outside)),
        read("link.md"),
        read("README.md"),
        Reply(text="done"),
    )
    editor = Buffers()
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        await client.serve_files(info.id, editor)
        events = await turn(client, info.id)

    far, link, readme = results(events)
    assert far.status == "ok" and "outside text" in far.output
    assert link.status == "error" and "symbolic link" in link.output
    assert readme.status == "ok"
    assert editor.ops() == [("read", "README.md")]


async def test_an_editor_that_cannot_ask_and_a_frontend_that_stops_serving_leave_it_to_the_disk(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(read("README.md"), Reply(text="one"), read("README.md"), Reply(text="two"))

    async def gone(request: p.FileRequested) -> str:
        raise FileUnavailable("the editor is gone")

    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        service = await client.serve_files(info.id, gone)
        (first,) = results(await turn(client, info.id))
        await service.close()
        editor = Buffers()
        (second,) = results(await turn(client, info.id))

    assert first.status == "ok" and "# demo" in first.output
    assert second.status == "ok" and not editor.asked
