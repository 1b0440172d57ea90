"""The desktop notifier against a real daemon and a real D-Bus session bus."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dbus_session import (
    Dunst,
    NotificationServer,
    session_bus,
    xvfb,
)
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
    assert "echo one > one.txt" in html.unescape(first.body)
    assert first.expire_timeout == 0  # an approval stays until answered
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


@pytest.fixture
def display(tmp_path: Path):
    with xvfb(tmp_path) as number:
        yield number


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll a condition a separate process holds (dunst tells no one what it shows)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


SNEAKY = 'echo ok > ok.txt # <span size="1">\u202e</span>\nrm -rf ~/hidden-second-line'


async def test_dunst_restarted_with_an_approval_open_shows_it_again_and_its_click_answers(
    make_daemon,
    model_server: ScriptedModelServer,
    workspace: Path,
    bus: str,
    display: str,
    tmp_path: Path,
) -> None:
    daemon = make_daemon(FAST)
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": SNEAKY})]), Reply(text="done")
    )
    first = await Dunst(bus, display, tmp_path).start()
    async with await daemon.client() as client:
        info = await client.create_session(workspace, title="markup")
        async with await client.attach(info.id) as view, notifier(daemon, bus) as running:
            await running.line("notification server found: dunst")
            await client.send(info.id, "go")
            await collect_until(view, of_type(p.ApprovalRequested))
            await until(lambda: first.displayed() == 1)
            first.stop()  # dunst dies with the approval open; a new one takes its name
            second = await Dunst(bus, display, tmp_path).start()
            await running.line("notification server found: dunst")
            await until(lambda: second.displayed() == 1)  # shown again on the new server
            menu = await second.click("Allow")
            resolved = (await collect_until(view, of_type(p.ApprovalResolved)))[-1]
            await collect_until(view, turn_completed)
            await until(lambda: second.displayed() == 0)  # answered: kfd closed it
            [shown] = [h for h in second.history() if "allow bash" in str(h["summary"])]
    second.stop()

    assert "#Allow" in menu and "#Deny" in menu
    assert resolved.decision == "allow" and resolved.by is not None
    assert resolved.by.name == "kfd-notify"
    body = str(shown["body"])
    # Markup is escaped (dunst renders it): the second line cannot be made invisible,
    # and the bidi control is spelled out.
    assert '&lt;span size="1"&gt;' in body and "<span" not in body
    assert "&lt;U+202E&gt;" in body and "\u202e" not in body
    assert "rm -rf ~/hidden-second-line" in body
    assert "<span" not in str(shown["message"])


async def test_an_approval_the_server_closes_unanswered_is_shown_again(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, bus: str
) -> None:
    daemon = make_daemon(FAST)
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo b > b.txt"})]),
        Reply(text="ok"),
    )
    server = await NotificationServer(bus).start()
    async with await daemon.client() as client, notifier(daemon, bus):
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "write b")
            await collect_until(view, of_type(p.ApprovalRequested))
            first = await server.wait_for(about("allow bash"))
            server.expire(first.id)  # as a server that ignores expire_timeout 0 would
            again = await server.wait_for(lambda s: s.id != first.id and "allow bash" in s.summary)
            server.click(again.id, "allow")
            await collect_until(view, turn_completed)
    server.stop()
    assert again.body == first.body and again.expire_timeout == 0
    assert (workspace / "b.txt").exists()


def test_an_approval_too_long_to_show_whole_offers_only_deny() -> None:
    from kfd_notify.notices import Notices
    from kfd_notify.settings import NotifySettings

    notices = Notices(NotifySettings())
    short = p.ApprovalRequested(
        session="s",
        seq=1,
        approval_id="a",
        call_id="c",
        tool="bash",
        preview=p.Preview(command="ls\x1b[2K\rrm -rf /"),
    )
    long = p.ApprovalRequested(
        session="s",
        seq=2,
        approval_id="b",
        call_id="d",
        tool="bash",
        preview=p.Preview(command="echo " + "x" * 5000),
    )
    shown = notices.approval(short)
    assert shown.allowable and shown.body == "ls\\x1b[2K\\rrm -rf /"
    refused = notices.approval(long)
    assert not refused.allowable and "5005 characters" in refused.body


async def test_focus_given_before_a_frontend_attached_is_in_its_snapshot(
    make_daemon, workspace: Path
) -> None:
    daemon = make_daemon(FAST)
    async with await daemon.client("kfd-repl") as repl, await daemon.client() as client:
        info = await client.create_session(workspace)
        await repl.request(p.FrontendFocus(id="", session=info.id, focused=True))
        attached = await client.request(p.SessionAttach(id="", session=info.id))
        assert isinstance(attached, p.AttachResult)
        assert [frontend.name for frontend in attached.snapshot.focused] == ["kfd-repl"]
        await repl.request(p.FrontendFocus(id="", session=info.id, focused=False))
        attached = await client.request(p.SessionAttach(id="", session=info.id))
        assert isinstance(attached, p.AttachResult)
        assert attached.snapshot.focused == []


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("echo hello" + "\n" * 1400 + "rm -rf ~/project", "echo hello⏎×1400\nrm -rf ~/project"),
        ("echo hello" + " " * 1300 + "; rm -rf ~/project", "echo hello␠×1300; rm -rf ~/project"),
    ],
    ids=["newlines", "spaces"],
)
def test_blanks_that_would_push_the_end_of_a_command_out_of_the_bubble_are_counted(
    command: str, shown: str
) -> None:
    from kfd_notify.notices import COMMAND_ROWS, Notices, rows
    from kfd_notify.settings import NotifySettings

    notice = Notices(NotifySettings()).approval(
        p.ApprovalRequested(
            session="s",
            seq=1,
            approval_id="a",
            call_id="c",
            tool="bash",
            preview=p.Preview(command=command),
        )
    )
    assert notice.body == shown and rows(notice.body) <= COMMAND_ROWS
    assert notice.allowable  # the whole of it is in the bubble


def test_a_command_taller_than_the_bubble_offers_only_deny_and_says_how_much_more() -> None:
    from kfd_notify.notices import COMMAND_ROWS, Notices, rows
    from kfd_notify.settings import NotifySettings

    command = "\n".join(f"echo {n}" for n in range(60)) + "\nrm -rf ~/project"
    notice = Notices(NotifySettings()).approval(
        p.ApprovalRequested(
            session="s",
            seq=1,
            approval_id="a",
            call_id="c",
            tool="bash",
            preview=p.Preview(command=command),
        )
    )
    assert len(command) < 1500  # short, but taller than a bubble
    assert not notice.allowable
    assert notice.body.startswith("echo 0\necho 1\n") and rows(notice.body) <= COMMAND_ROWS
    assert "more characters: answer in a terminal or chat" in notice.body


def test_a_config_that_does_not_load_notifies_once_for_all_its_sessions() -> None:
    from kfd_notify.notices import Notices
    from kfd_notify.settings import NotifySettings

    notices = Notices(NotifySettings())
    path = "/home/u/.config/kfd/config.toml"
    said = f"{path} is not valid TOML: Unclosed array"
    first = notices.on_event(p.ConfigInvalid(session="s1", seq=4, path=path, message=said))
    assert first is not None and first.summary == "kfd: config not reloaded"
    assert first.body == said and first.urgency == 2
    # The daemon says so in every session (and at every message): one bubble.
    assert notices.on_event(p.ConfigInvalid(session="s2", seq=2, path=path, message=said)) is None
    # The same path on another daemon is news of its own.
    assert notices.on_event(p.ConfigInvalid(session="gpu/s1", seq=2, path=path, message=said))
    fixed = notices.on_event(p.ConfigReloaded(session="s2", seq=3, path=path))
    assert fixed is not None and fixed.summary == "kfd: config reloaded"
    assert notices.on_event(p.ConfigReloaded(session="s1", seq=5, path=path)) is None
    quiet = Notices(NotifySettings(errors=False))
    assert quiet.on_event(p.ConfigInvalid(session="s1", seq=4, path=path, message=said)) is None
