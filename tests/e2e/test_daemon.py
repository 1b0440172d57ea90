"""The daemon process: start, refuse a twin, stop cleanly, survive kill -9."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, of_type, status_until, turn_completed


def test_ready_means_bus_bound_and_store_open_with_private_permissions(daemon: KfdDaemon) -> None:
    # start() returned on READY=1 over $NOTIFY_SOCKET: everything must already exist.
    runtime = daemon.runtime_dir
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    for name in ("rpc.sock", "events.sock"):
        assert stat.S_ISSOCK((runtime / name).stat().st_mode)
        assert stat.S_IMODE((runtime / name).stat().st_mode) == 0o600
    assert daemon.database.exists()
    assert stat.S_IMODE(daemon.database.stat().st_mode) == 0o600


def test_a_second_daemon_on_the_same_runtime_dir_refuses_to_start(daemon: KfdDaemon) -> None:
    twin = daemon.cli("daemon", timeout=20)
    assert twin.returncode == 3
    assert f"pid {daemon.pid}" in twin.stderr and "already serves" in twin.stderr
    assert daemon.running


def test_a_broken_config_is_refused_with_the_key_and_file_named(make_daemon) -> None:
    daemon = make_daemon(start=False, config="[agent]\nmax_steps = 'many'\n")
    result = daemon.cli("daemon", timeout=20)
    assert result.returncode == 2
    assert "config.toml" in result.stderr
    assert "max_steps" in result.stderr and "Expected `int`" in result.stderr


async def test_sigterm_interrupts_the_running_turn_and_exits_cleanly(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(tool_calls=[ScriptedToolCall("bash", {"command": "sleep 30"})]))
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "sleep")
            await collect_until(view, of_type(p.ToolStarted))
            code = await asyncio.to_thread(daemon.stop)
    assert code == 0, daemon.log_text()[-6000:]  # 75: the stop deadline passed; the log says why
    assert not (daemon.runtime_dir / "rpc.sock").exists()

    daemon.start()
    async with await daemon.client() as client, await client.attach(info.id) as view:
        history = await collect_until(view, turn_completed)
    result = next(e for e in history if isinstance(e, p.ToolCompleted))
    assert result.status == "interrupted"
    assert "side effects unknown" in result.output
    assert history[-1].stop_reason == "interrupted"


async def test_kill_9_mid_tool_call_leaves_a_resumable_session(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    runs = workspace / "runs"
    command = f"echo run >> {runs}; echo started; sleep 30"
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": command}, id="call_sleep")])
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "start the long job")
            await collect_until(view, of_type(p.ToolStarted))
            await collect_until(view, lambda e: isinstance(e, p.ToolOutput) and "started" in e.data)
            daemon.kill()

    with sqlite3.connect(daemon.database) as db:  # opens, and is consistent
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    daemon.start()
    model_server.add(Reply(text="I will check before re-running it."))
    async with await daemon.client() as client:
        session = await client.session(info.id)
        assert session.status == "idle"
        async with await client.attach(info.id) as view:
            history = await collect_until(view, turn_completed)
            results = [e for e in history if isinstance(e, p.ToolCompleted)]
            assert [(e.call_id, e.status) for e in results] == [("call_sleep", "interrupted")]
            assert "side effects unknown" in results[0].output
            assert history[-1].stop_reason == "interrupted"
            await client.send(info.id, "what happened?")
            await collect_until(view, turn_completed)

    messages = model_server.requests[-1].body["messages"]
    tool_results = [m for m in messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_results] == ["call_sleep"]
    assert "side effects unknown" in tool_results[0]["content"]
    assert runs.read_text() == "run\n"  # never re-run by itself


async def test_kill_9_mid_stream_reopens_with_the_turn_closed(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="x" * 2000, chunk_chars=5, chunk_delay_s=0.002))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "go")
            await collect_until(view, lambda e: isinstance(e, p.MessageDelta) and e.offset > 50)
            daemon.kill()
    daemon.start()
    async with await daemon.client() as client:
        session = await client.session(info.id)
        assert session.status == "idle"
        async with await client.attach(info.id) as view:
            history = await collect_until(view, turn_completed)
    assert history[-1].stop_reason == "interrupted"
    seqs = [e.seq for e in history if isinstance(e, p.Event)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_calls_under_one_id_each_keep_their_own_result_across_a_kill_9(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(
            tool_calls=[
                ScriptedToolCall("read", {"path": "README.md"}, id="dup"),
                ScriptedToolCall("bash", {"command": "echo x > y.txt"}, id="dup"),
            ]
        ),
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"}, id="dup")]),
        Reply(text="done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "go")
            await collect_until(view, of_type(p.ApprovalRequested))
            daemon.kill()
    daemon.start()
    async with await daemon.client() as client, await client.attach(info.id, tail=0) as view:
        await client.send(info.id, "continue")
        await collect_until(view, turn_completed)

    messages = model_server.requests[-1].body["messages"]
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    results = [m for m in messages if m["role"] == "tool"]
    ids = [c["id"] for c in calls]
    assert [c["function"]["name"] for c in calls] == ["read", "bash", "read"]
    assert ids[0] == "dup" and len(set(ids)) == 3  # the provider's id, where it is unique
    assert sorted(m["tool_call_id"] for m in results) == sorted(ids)
    by_id = {m["tool_call_id"]: m["content"] for m in results}
    assert "# demo" in by_id[ids[0]] and "# demo" in by_id[ids[2]]
    assert "daemon stopped" in by_id[ids[1]]
    assert not (workspace / "y.txt").exists()


def test_systemd_unit_verifies() -> None:
    analyze = "/usr/bin/systemd-analyze"
    if not os.path.exists(analyze):
        pytest.skip("systemd-analyze is not installed (the CI set-up installs it)")
    unit = Path(__file__).parents[2] / "systemd" / "kfd.service"
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings either
    text = unit.read_text()
    assert "Type=notify" in text


async def test_a_mode_change_and_an_approval_answer_survive_a_kill_right_after_their_ok(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(tool_calls=[ScriptedToolCall("write", {"path": "x", "content": "y"})]))
    model_server.add(Reply(text="written"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "write x")
            [asked] = [
                e
                for e in await collect_until(view, of_type(p.ApprovalRequested))
                if isinstance(e, p.ApprovalRequested)
            ]
            await client.respond(info.id, asked.approval_id, "allow")
            await client.set_mode(info.id, "plan")
            daemon.kill()  # at once: both were acknowledged, so both are on disk
    daemon.start()
    async with await daemon.client() as client:
        assert (await client.session(info.id)).mode == "plan"
        async with await client.attach(info.id) as view:
            history = await collect_until(view, turn_completed)
    resolved = [e for e in history if isinstance(e, p.ApprovalResolved)]
    assert [(e.approval_id, e.decision) for e in resolved] == [(asked.approval_id, "allow")]


async def test_idle_sessions_leave_memory_and_come_back_whole(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon("[daemon]\nunload_idle_s = 0.3\n")
    model_server.add(Reply(text="first"), Reply(text="second"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.send(info.id, "one")
            await collect_until(view, turn_completed)
        # The sweep runs every unload_idle_s / 2.
        status = await status_until(client, lambda s: s.loaded == 0, timeout=10)
        assert status.loaded == 0
        async with await client.attach(info.id) as view:
            history = await collect_until(view, turn_completed)
            await client.send(info.id, "two")
            after = await collect_until(view, turn_completed)
    seqs = [e.seq for e in [*history, *after] if isinstance(e, p.Event) and not e.ephemeral]
    assert seqs == list(range(1, len(seqs) + 1))
    messages = model_server.requests[-1].body["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"][-2:] == ["one", "two"]
