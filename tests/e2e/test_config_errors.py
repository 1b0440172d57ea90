"""A config file that stops loading keeps the last good rules, and every frontend is
told so in the sessions it concerns: a real daemon, the scripted model, `kfd run`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from kfd import protocol as p
from kfd.client import Notices
from kfd.testing import Reply, ScriptedModelServer
from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.events import collect_until, of_type

MakeDaemon = Callable[..., KfdDaemon]

PUSH = "git push origin main"
DENYING = '[permissions]\ndeny = ["bash(git push *)"]\n'
BROKEN_DENYING = '[permissions]\ndeny = ["bash(git push *)"\n'


def events(run: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def of(items: list, kind: type) -> list:
    return [item for item in items if isinstance(item, kind)]


def of_kind(found: list[dict], kind: str) -> list[dict]:
    return [event for event in found if event["type"] == kind]


async def next_of(notices: Notices, kind: type, timeout: float = 15.0) -> p.Event:
    async with asyncio.timeout(timeout):
        while True:
            event = await notices.next_event(timeout)
            if isinstance(event, kind):
                return event


async def test_a_user_config_broken_mid_session_is_said_once_by_kfd_run_until_it_is_fixed(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon()
    user_config = daemon.config_dir / "config.toml"
    model_server.add(Reply(text="first answer"))
    first = daemon.cli("run", "--cwd", str(workspace), "--json", "hello")
    assert first.returncode == 0, first.stderr
    session = events(first)[0]["session"]
    assert of_kind(events(first), "config.error") == []

    user_config.write_text(FAST_RETRIES + "[permissions\nallow = [")
    model_server.add(Reply(text="second answer"))
    second = daemon.cli("run", "--session", session, "again")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "second answer"
    (said,) = [line for line in second.stderr.splitlines() if "config not reloaded" in line]
    assert said.startswith(f"config not reloaded: {user_config}") and "not valid TOML" in said

    model_server.add(Reply(text="third answer"))
    third = daemon.cli("run", "--session", session, "--json", "and again")
    (error,) = of_kind(events(third), "config.error")  # said at every message, shown once
    assert error["session"] == session and error["path"] == str(user_config)
    assert "not valid TOML" in error["message"] and error["seq"] > 0

    user_config.write_text(FAST_RETRIES)
    model_server.add(Reply(text="fourth answer"))
    fourth = daemon.cli("run", "--session", session, "--json", "once more")
    assert of_kind(events(fourth), "config.error") == []
    async with await daemon.client() as client, await client.attach(session, since_seq=0) as view:
        logged = await collect_until(view, of_type(p.ConfigReloaded), 15.0)
    # The session's log says it loads again, after the last time it said it did not.
    (fixed,) = of(logged, p.ConfigReloaded)
    assert fixed.path == str(user_config)
    assert of(logged, p.ConfigInvalid)[-1].seq < fixed.seq

    model_server.add(Reply(text="fifth answer"))
    fifth = daemon.cli("run", "--cwd", str(workspace), "a new session")
    assert fifth.returncode == 0 and "config" not in fifth.stderr


async def test_a_new_session_hears_of_a_broken_user_config_when_it_starts(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon()
    user_config = daemon.config_dir / "config.toml"
    async with await daemon.client() as client, await client.notices() as notices:
        user_config.write_text(FAST_RETRIES + "[permissions\nallow = [")
        broken = await next_of(notices, p.ConfigInvalid)
        info = await client.create_session(workspace)
        async with await client.attach(info.id, since_seq=0) as view:
            told = (await collect_until(view, of_type(p.ConfigInvalid), 15.0))[-1]
        assert (told.session, told.path, told.message) == (info.id, broken.path, broken.message)


async def test_a_broken_project_config_keeps_its_deny_rule_says_so_and_stops_once_fixed(
    make_daemon: MakeDaemon, workspace: Path
) -> None:
    daemon = make_daemon()
    config = workspace / ".kfd" / "config.toml"
    config.parent.mkdir()
    config.write_text(DENYING)
    async with await daemon.client() as client, await client.notices() as notices:
        explained = await client.explain(PUSH, cwd=workspace, mode="auto")
        assert (explained.decision, explained.rule) == ("deny", "bash(git push *)")
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id, since_seq=info.last_seq) as view:
            config.write_text(BROKEN_DENYING)
            # The next decision reads it: still denied by the last good rule, not "ask".
            explained = await client.explain(PUSH, cwd=workspace, mode="auto")
            assert (explained.decision, explained.rule) == ("deny", "bash(git push *)")
            (note,) = [line for line in explained.ignored if "not valid TOML" in line]
            assert note.startswith(str(config)) and "last content that loaded" in note

            told = (await collect_until(view, of_type(p.ConfigInvalid), 15.0))[-1]
            assert (told.session, told.path, told.message) == (info.id, str(config), note)
            announced = await next_of(notices, p.ConfigInvalid)
            assert (announced.path, announced.message) == (str(config), note)
            printed = daemon.cli("explain", "--cwd", str(workspace), "--mode", "auto", PUSH)
            assert printed.stdout.startswith("deny: ") and "last content that loaded" in (
                printed.stdout
            )

            config.write_text(DENYING + "# fixed\n")
            explained = await client.explain(PUSH, cwd=workspace, mode="auto")
            assert explained.decision == "deny" and explained.ignored == []
            fixed = (await collect_until(view, of_type(p.ConfigReloaded), 15.0))[-1]
            assert (fixed.session, fixed.path) == (info.id, str(config))
            assert (await next_of(notices, p.ConfigReloaded)).path == str(config)
    assert daemon.running


async def test_a_project_config_broken_before_it_ever_loaded_makes_every_call_ask(
    make_daemon: MakeDaemon, workspace: Path
) -> None:
    daemon = make_daemon()
    config = workspace / ".kfd" / "config.toml"
    config.parent.mkdir()
    config.write_text(BROKEN_DENYING)
    async with await daemon.client() as client:
        explained = await client.explain("ls", cwd=workspace, mode="auto")
        assert explained.decision == "ask" and "every call asks" in explained.reason
