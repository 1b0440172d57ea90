"""Lifecycle from the command line: a graceful `kfd restart` (turns finish, frontends
reattach, messages sent meanwhile run after it), `--now`, the provider environment
a client does not share, `kfd status --json`, and `kfd logs`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from kfd import protocol as p
from kfd.client import ConnectionRestored
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type, status_until, turn_completed


def cli(daemon: KfdDaemon, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfd", *args],
        env={**daemon.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_graceful_restart_lets_the_turn_finish_and_runs_what_was_sent_meanwhile(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(text="slowly " * 600, chunk_chars=7, chunk_delay_s=0.01),
        Reply(text="after the restart"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "take your time")
            await collect_until(view, lambda e: isinstance(e, p.MessageDelta))
            restart = asyncio.create_task(asyncio.to_thread(cli, daemon, "restart"))
            # The restart's stop request arrives soon.
            await status_until(client, lambda s: s.draining, every_s=0.02)
            # While the turn runs on, a new message is accepted and waits.
            queued = await client.send(info.id, "and this one after the restart")
            assert queued.queued
            finished = await collect_until(view, turn_completed, timeout=60)
            assert finished[-1].stop_reason == "end_turn"  # finished, not interrupted
            result = await restart
            assert result.returncode == 0, result.stderr
            assert "waiting for 1 running turn(s)" in result.stderr
            assert "restarted the kfd daemon" in result.stdout
            # The attachment reconnects by itself and the queued message runs.
            after = await collect_until(view, turn_completed, timeout=60)
            assert any(isinstance(e, ConnectionRestored) for e in after)
            users = [e for e in after if isinstance(e, p.MessageUser)]
            assert [u.message_id for u in users] == [queued.message_id]
            assert after[-1].stop_reason == "end_turn"
    assert cli(daemon, "stop").returncode == 0  # the restarted daemon is not daemon.process


async def test_a_graceful_restart_names_the_turn_that_waits_for_an_approval(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch made"})]),
        Reply(text="denied, so done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, title="asks first")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "make a file")
            asked = (await collect_until(view, of_type(p.ApprovalRequested)))[-1]
            assert isinstance(asked, p.ApprovalRequested)
            restart = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kfd", "restart",
                env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert restart.stderr is not None
            told = b""
            async with asyncio.timeout(30):
                while b"waits for an approval" not in told:
                    told += await restart.stderr.readline()
            assert f"session {info.id} (asks first)".encode() in told and b"--now" in told
            await client.respond(info.id, asked.approval_id, "deny")
            async with asyncio.timeout(60):
                assert await restart.wait() == 0
    assert cli(daemon, "stop").returncode == 0


async def test_restart_now_interrupts_the_running_turn(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="slowly " * 400, chunk_chars=7, chunk_delay_s=0.01))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "long")
            await collect_until(view, lambda e: isinstance(e, p.MessageDelta))
            result = await asyncio.to_thread(cli, daemon, "restart", "--now")
            assert result.returncode == 0, result.stderr
            history = await collect_until(view, turn_completed, timeout=30)
    assert history[-1].stop_reason == "interrupted"
    assert cli(daemon, "stop").returncode == 0


def test_a_client_with_another_provider_environment_is_told_what_differs(
    daemon: KfdDaemon,
) -> None:
    result = cli(
        daemon, "status", KFD_MODEL="another-model", ANTHROPIC_API_KEY="sk-ant-secret-1234567890"
    )
    assert result.returncode == 0, result.stderr
    assert "KFD_MODEL is 'another-model' here but 'scripted-model' in the daemon" in result.stdout
    assert "ANTHROPIC_API_KEY is set here but not in the daemon" in result.stdout
    assert "kfd restart" in result.stdout
    assert "sk-ant-secret" not in result.stdout
    same = cli(daemon, "status")
    assert "differs" not in same.stdout
    data = json.loads(cli(daemon, "status", "--json", KFD_API_KEY="other-key-123456").stdout)
    assert data["environment_drift"] == ["KFD_API_KEY has another value here than in the daemon"]


async def test_status_json_counts_the_running_sessions(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="slowly " * 200, chunk_chars=7, chunk_delay_s=0.01))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "go")
            await collect_until(view, lambda e: isinstance(e, p.MessageDelta))
            data = json.loads((await asyncio.to_thread(cli, daemon, "status", "--json")).stdout)
            assert (data["alive"], data["running"], data["sessions"]) == (True, 1, 1)
            await client.cancel(info.id)
            await collect_until(view, turn_completed)


async def test_kfd_logs_shows_json_lines_with_the_session_and_turn(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="hello"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "hi")
            await collect_until(view, turn_completed)
    result = await asyncio.to_thread(cli, daemon, "logs", "--session", info.id[:8], "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all(line["session"] == info.id for line in lines)
    assert any("turn 1 started" in line["message"] and line["turn"] == 1 for line in lines)
    assert any(line.get("model_request", "").startswith("l") for line in lines)
    human = await asyncio.to_thread(cli, daemon, "logs", "--level", "info")
    assert "INFO" in human.stdout and "kfd.daemon: kfd daemon" in human.stdout
    quiet = await asyncio.to_thread(cli, daemon, "logs", "--level", "error", "--json")
    assert all(
        json.loads(line)["level"] in ("error", "critical") for line in quiet.stdout.splitlines()
    )
