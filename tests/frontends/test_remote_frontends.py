"""One frontend, many daemons: the chat bridge and the notifier over CURVE TCP.

The chat bridge runs as the real ``kfd chat slack`` on the client's host (in
network namespace B, with Slack's stand-in listening there too) and serves
two daemons on the daemon's host (namespace A); where namespaces cannot be
made, all of it runs on 127.0.0.1 (see `kfd.testing.netns`). The notifier
follows this machine's daemon and a remote one at once.
"""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from chat_servers import SlackServer
from dbus_session import NotificationServer, session_bus
from frontend_process import FrontendProcess, frontend

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.events import collect_until, turn_completed
from kfd.testing.netns import Link, free_port_run, make_link
from kfd.testing.remote import RemoteWorld

SLACK_ENV = {
    "KFD_SLACK_APP_TOKEN": SlackServer.APP_TOKEN,
    "KFD_SLACK_BOT_TOKEN": SlackServer.BOT_TOKEN,
}


@pytest.fixture
def link() -> Iterator[Link]:
    made = make_link()
    if made.kind != "network namespaces":
        warnings.warn(f"remote chat tests ran over a {made.kind}", stacklevel=1)
    yield made
    made.close()


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def bridge_on_client_side(
    world: RemoteWorld, *remotes: str
) -> AsyncIterator[FrontendProcess]:
    """``kfd chat slack --remote …`` started on the client's host (like `frontend`)."""
    import asyncio

    argv = world.kfd_argv("chat", "slack", *[f"--remote={name}" for name in remotes])
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**world.env, **SLACK_ENV},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = FrontendProcess(process, " ".join(argv[-4:]))
    try:
        await running.line("bridging", timeout=30)
        yield running
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        assert process.stderr is not None
        running.said.extend((await process.stderr.read()).decode().splitlines(keepends=True))
        print("--- the bridge said:\n" + "".join(running.said))


async def test_a_bridge_on_another_host_serves_two_daemons_and_answers_each_approval_where_asked(
    link: Link, workspace: Path, tmp_path: Path
) -> None:
    model = link.on_daemon_side(lambda: ScriptedModelServer().start())
    second_port = link.on_daemon_side(lambda: free_port_run(3, link.daemon_host))
    slack = await SlackServer().start(sock=link.on_client_side(_listener))
    model.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch made-on-cc"})]),
        Reply(text="made it on cc"),
        Reply(text="hello from bb"),
    )
    with (
        RemoteWorld(link, model, name="bb", comment="chat bridge", root=tmp_path / "bb") as bb,
        RemoteWorld(link, model, name="cc", port=second_port, root=tmp_path / "cc") as cc,
    ):
        bb.add_remote(cc)
        config = bb.client_config / "config.toml"
        config.write_text(
            config.read_text()
            + f"\n[chat]\nworkspace = {json.dumps(str(workspace))}\n"
            + f"state_file = {json.dumps(str(tmp_path / 'chat.json'))}\n"
            + f'[chat.slack]\nbase_url = "{slack.base_url}"\nchannels = ["C1"]\n'
            + 'allow = ["UALICE"]\nedit_interval_s = 0.2\nping_interval_s = 0.3\n'
        )
        async with bridge_on_client_side(bb, "bb", "cc"):
            await slack.wait_for(lambda: slack.connections == 1)
            await slack.message("C1", "UALICE", "!new @cc on the second host")
            created = await slack.wait_for(lambda: _post(slack, "🆕 session cc/"))
            await slack.message("C1", "UALICE", "make the file")
            # The approval itself (the tool call's line may come first): an
            # `allow` before it would be a message to the session.
            asked = await slack.wait_for(lambda: _post(slack, "touch made-on-cc", "Reply `allow`"))
            await _approval_recorded(tmp_path / "chat.json")
            await slack.message("C1", "UALICE", "allow", thread=None)
            await slack.wait_for(lambda: _post(slack, "made it on cc"))
            await slack.message("C1", "UALICE", "!undo")  # on cc, where the turn ran
            undone = await slack.wait_for(lambda: _post(slack, "undid turn"))
            await slack.message("C1", "UALICE", "!new")  # the first daemon named: bb
            await slack.wait_for(lambda: _post(slack, "🆕 session bb/"))
            await slack.message("C1", "UALICE", "hello?")
            await slack.wait_for(lambda: _post(slack, "hello from bb"))
        async with await cc.daemon.client() as on_cc, await bb.daemon.client() as on_bb:
            [cc_session] = await on_cc.sessions()
            async with await on_cc.attach(cc_session.id) as view:
                log = await collect_until(view, turn_completed)
            [bb_session] = await on_bb.sessions()
    await slack.stop()
    model.stop()

    assert cc_session.id in created and asked
    [resolved] = [e for e in log if isinstance(e, p.ApprovalResolved)]
    assert resolved.decision == "allow" and resolved.by is not None
    assert resolved.by.key == "chat bridge"  # the key's comment, from cc's authorized_keys
    assert resolved.by.name == "kfd-chat (chat bridge)"
    assert "made-on-cc" in undone and not (workspace / "made-on-cc").exists()
    assert bb_session.title.startswith("chat C1")


async def _approval_recorded(state_file: Path, timeout: float = 10.0) -> None:
    """Until the bridge has written down the approval it posted: an `allow`
    sooner (its post seen here before the bridge has its answer) is a message."""
    import asyncio

    import watchfiles

    def recorded() -> bool:
        try:
            return bool(json.loads(state_file.read_bytes()).get("approvals"))
        except (FileNotFoundError, ValueError):
            return False

    async with asyncio.timeout(timeout):
        async for _ in watchfiles.awatch(
            state_file.parent, rust_timeout=200, yield_on_timeout=True
        ):
            if recorded():
                return


def _post(slack: SlackServer, *texts: str) -> str:
    """The first post that says every one of ``texts`` ("" if none does yet)."""
    for post in slack.posts:
        shown = slack.text_of(post["ts"])
        if all(text in shown for text in texts):
            return shown
    return ""


async def test_the_notifier_follows_this_machines_daemon_and_a_remote_one_and_answers_each(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, tmp_path: Path
) -> None:
    port = free_port_run()
    remote = make_daemon(
        f'\n[bus]\nlisten = ["tcp://127.0.0.1:{port}"]\nheartbeat_s = 0.2\n', start=False
    )
    local = make_daemon(
        "\n[notify]\nretry_s = 0.1\n" + f'[remotes.cc]\nendpoint = "tcp://127.0.0.1:{port}"\n'
    )
    assert remote.cli("keys", "init").returncode == 0
    assert local.cli("keys", "init", "--comment", "desk").returncode == 0
    line = local.cli("keys", "show").stdout
    (remote.config_dir / "authorized_keys").write_text(line)
    (remote.config_dir / "authorized_keys").chmod(0o600)
    remote.start()
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch remote.txt"})]),
        Reply(text="remote done"),
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch local.txt"})]),
        Reply(text="local done"),
    )
    with session_bus(tmp_path) as bus:
        server = await NotificationServer(bus).start()
        async with (
            await remote.client() as on_remote,
            await local.client() as on_local,
            frontend(
                local,
                "notify",
                "--remote",
                "local",
                "--remote",
                "cc",
                DBUS_SESSION_BUS_ADDRESS=bus,
            ) as running,  # fmt: skip
        ):
            await running.line("following every session of the daemon `cc`", timeout=30)
            far = await on_remote.create_session(workspace, title="far away")
            async with await on_remote.attach(far.id) as view:
                await on_remote.send(far.id, "touch it")
                shown = await server.wait_for(lambda s: "cc/far away" in s.summary)
                server.click(shown.id, "allow")
                far_events = await collect_until(view, turn_completed, 30)
            near = await on_local.create_session(workspace, title="near")
            async with await on_local.attach(near.id) as view:
                await on_local.send(near.id, "touch it")
                mine = await server.wait_for(lambda s: "allow bash in near?" in s.summary)
                server.click(mine.id, "allow")
                near_events = await collect_until(view, turn_completed, 30)
        server.stop()

    assert shown.summary == "kfd: allow bash in cc/far away?"
    [far_resolved] = [e for e in far_events if isinstance(e, p.ApprovalResolved)]
    assert far_resolved.by is not None and far_resolved.by.name == "kfd-notify (desk)"
    [near_resolved] = [e for e in near_events if isinstance(e, p.ApprovalResolved)]
    assert near_resolved.by is not None and near_resolved.by.name == "kfd-notify"
    assert (workspace / "remote.txt").exists() and (workspace / "local.txt").exists()


def test_the_repl_on_a_laptop_works_on_the_build_box_and_answers_its_approval(
    link: Link, workspace: Path, tmp_path: Path
) -> None:
    from repl_terminal import Tmux

    model = link.on_daemon_side(lambda: ScriptedModelServer().start())
    model.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "echo far > far.txt"})]),
        Reply(text="Written on the build box."),
    )
    with RemoteWorld(link, model, root=tmp_path / "world") as world:
        config = world.client_config / "config.toml"
        config.write_text(config.read_text() + f"workspace = {json.dumps(str(workspace))}\n")
        tmux = Tmux(tmp_path, world.env)
        try:
            laptop = tmux.open(world.kfd_argv("--remote", "bb"), tmp_path)
            laptop.wait_for("── session s")
            laptop.send("write far.txt")
            laptop.wait_for("$ echo far > far.txt")
            laptop.press("Tab")  # to the question (a deliberate answer)
            laptop.wait_for("y allow once")
            laptop.type("y")
            screen = laptop.wait_for("Written on the build box.")
        finally:
            tmux.close()
    model.stop()
    assert "answered by you" in screen
    assert str(workspace) in screen  # the session works in the remote's workspace
    assert (workspace / "far.txt").read_text() == "far\n"
