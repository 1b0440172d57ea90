"""The desktop notifier against a real daemon and a real D-Bus session bus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dbus_session import NotificationServer, session_bus
from frontend_process import frontend

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type, turn_completed

FAST = "\n[notify]\nretry_s = 0.1\n"


@pytest.fixture
def bus(tmp_path: Path):
    with session_bus(tmp_path) as address:
        yield address


def notifier(daemon: KfdDaemon, bus: str):
    return frontend(daemon, "notify", DBUS_SESSION_BUS_ADDRESS=bus)


def about(text: str) -> Callable[[object], bool]:
    return lambda shown: text in shown.summary  # type: ignore[attr-defined]


async def test_a_pending_approval_notifies_and_its_buttons_answer_it(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, bus: str
) -> None:
    daemon = make_daemon(FAST)
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo one > one.txt"})]),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo two > two.txt"})]),
        Reply(text="All done.\nSecond line."),
    )
    server = await NotificationServer(bus).start()
    async with await daemon.client() as client:
        info = await client.create_session(workspace, title="fix the build")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "write two files")
            await collect_until(view, of_type(p.ApprovalRequested))
            async with notifier(daemon, bus):
                first = await server.wait_for(about("allow bash"))  # pending before it started
                server.click(first.id, "allow")
                resolved = (await collect_until(view, of_type(p.ApprovalResolved)))[-1]
                await server.wait_closed(first.id)
                second = await server.wait_for(lambda s: "two.txt" in s.body)
                server.click(second.id, "deny")
                events = await collect_until(view, turn_completed)
                done = await server.wait_for(about("is done"))
    server.stop()

    assert first.summary == "kfd: allow bash in fix the build?"
    assert "echo one > one.txt" in first.body
    assert first.actions == ["allow", "Allow", "deny", "Deny"]
    assert first.hints["urgency"] == 2
    assert resolved.decision == "allow" and resolved.by is not None
    assert resolved.by.name == "kfd-notify"
    denied = [e for e in events if isinstance(e, p.ApprovalResolved)]
    assert denied[-1].decision == "deny"
    assert (workspace / "one.txt").exists() and not (workspace / "two.txt").exists()
    assert done.summary == "kfd: fix the build is done" and done.body == "All done."


async def test_without_a_notification_server_it_says_so_and_catches_up_later(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, bus: str
) -> None:
    daemon = make_daemon(FAST)
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo late > late.txt"})]),
        Reply(text="ok"),
    )
    async with await daemon.client() as client, notifier(daemon, bus) as running:
        said = await running.line("no notification server")
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "write late.txt")
            asked = (await collect_until(view, of_type(p.ApprovalRequested)))[-1]
            server = await NotificationServer(bus, capabilities=("body",)).start()
            shown = await server.wait_for(about("allow bash"))
            assert running.process.returncode is None
            await client.respond(info.id, asked.approval_id, "allow")
            await server.wait_closed(shown.id)  # answered elsewhere: dismissed
            await collect_until(view, turn_completed)
    server.stop()
    assert "org.freedesktop.Notifications" in said and "retrying" in said
    assert shown.actions == []  # this server cannot show buttons


async def test_a_session_focused_in_a_repl_stays_quiet(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, bus: str
) -> None:
    daemon = make_daemon(FAST)
    model_server.add(Reply(text="quiet answer"), Reply(text="loud answer"))
    server = await NotificationServer(bus).start()
    async with (
        await daemon.client("kfd-repl") as repl,
        await daemon.client() as client,
        notifier(daemon, bus) as running,
    ):
        await running.line("notification server found")
        watched = await client.create_session(workspace, title="watched")
        other = await client.create_session(workspace, title="other")
        await repl.request(p.FrontendFocus(id="", session=watched.id, focused=True))
        for info in (watched, other):
            async with await client.attach(info.id, since_seq=info.last_seq) as view:
                await client.send(info.id, "go")
                await collect_until(view, turn_completed)
        await server.wait_for(about("other is done"))
    server.stop()
    assert not [s for s in server.shown if "watched" in s.summary]


def test_a_broken_notify_table_is_refused_with_the_key(make_daemon) -> None:
    daemon = make_daemon("\n[notify]\napprovals = 'sometimes'\n")
    result = daemon.cli("notify", timeout=20)
    assert result.returncode == 2
    assert "[notify]" in result.stderr and "approvals" in result.stderr


def test_the_notifier_user_unit_verifies_without_warnings() -> None:
    import os
    import subprocess

    analyze = "/usr/bin/systemd-analyze"
    if not os.path.exists(analyze):
        pytest.skip("systemd-analyze is not installed (the CI set-up installs it)")
    unit = Path(__file__).parents[2] / "systemd" / "kfd-notify.service"
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "ExecStart=/usr/bin/env kfd notify" in unit.read_text()
