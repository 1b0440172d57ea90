"""The command line against a real daemon: run, sessions, status, stop."""

from __future__ import annotations

import json
from pathlib import Path

from kfd.testing import HttpError, Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon


def test_kfd_run_prints_the_answer_and_exits_zero(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"})]),
        Reply(text="The readme is a title only."),
    )
    result = daemon.cli("run", "what is in the readme?", "--cwd", str(workspace))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The readme is a title only.\n"
    assert "read README.md" in result.stderr


def test_kfd_run_json_prints_every_event_as_one_object_per_line(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="hello there"))
    result = daemon.cli("run", "hi", "--cwd", str(workspace), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all({"type", "session", "seq"} <= line.keys() for line in lines)
    types = [line["type"] for line in lines]
    assert types.index("message.user") < types.index("turn.started") < types.index("message.delta")
    assert types[-1] == "turn.completed"
    assert len({line["session"] for line in lines}) == 1
    durable = [line["seq"] for line in lines if not line.get("ephemeral")]
    assert durable == sorted(durable) and len(durable) == len(set(durable))


def test_kfd_run_denies_an_approval_nobody_answers_and_exits_non_zero_on_errors(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("bash", {"command": "touch created"})]),
        Reply(text="I could not run it."),
    )
    result = daemon.cli("run", "make a file", "--cwd", str(workspace), "--approval-timeout", "0.5")
    assert result.returncode == 0, result.stderr
    assert "needs approval" in result.stderr and "deny (kfd-run)" in result.stderr
    assert not (workspace / "created").exists()
    tool_message = next(m for m in model_server.requests[1].body["messages"] if m["role"] == "tool")
    assert "no frontend answered within 0.5 s" in tool_message["content"]

    model_server.add(Reply(fault=HttpError(401, message="bad key")))
    failed = daemon.cli("run", "again", "--cwd", str(workspace))
    assert failed.returncode == 1
    assert "401" in failed.stderr


def test_kfd_run_continues_a_session_and_changes_its_mode(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="one"), Reply(text="two"))
    first = daemon.cli("run", "first", "--cwd", str(workspace), "--json")
    session = json.loads(first.stdout.splitlines()[0])["session"]
    second = daemon.cli("run", "second", "--session", session[:8], "--mode", "plan")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "two\n"
    listed = json.loads(daemon.cli("sessions", "--json").stdout)
    assert [(s["id"], s["mode"], s["turns"]) for s in listed] == [(session, "plan", 2)]
    assert [
        m["content"] for m in model_server.requests[1].body["messages"] if m["role"] == "user"
    ] == [
        "first",
        "second",
    ]


def test_kfd_run_applies_the_model_to_a_session_it_continues_or_says_why_not(
    daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(Reply(text="one"), Reply(text="two"))
    first = daemon.cli("run", "first", "--cwd", str(workspace), "--json")
    session = json.loads(first.stdout.splitlines()[0])["session"]
    second = daemon.cli("run", "second", "--session", session, "--model", "other-model")
    assert second.returncode == 0, second.stderr
    assert model_server.requests[1].body["model"] == "other-model"
    refused = daemon.cli("run", "third", "--session", session, "--model", " ")
    assert refused.returncode == 1 and "model: a name of 1-200 characters" in refused.stderr
    assert len(model_server.requests) == 2  # nothing was sent with a model it could not set
    listed = json.loads(daemon.cli("sessions", "--json").stdout)
    assert [(s["model"], s["turns"]) for s in listed] == [("other-model", 2)]


def test_kfd_run_starts_a_daemon_when_none_runs(
    make_daemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon(start=False)
    model_server.add(Reply(text="started on demand"))
    result = daemon.cli("run", "hello", "--cwd", str(workspace))
    assert result.returncode == 0, result.stderr + daemon.log_text()
    assert result.stdout == "started on demand\n"
    status = json.loads(daemon.cli("status", "--json").stdout)
    assert status["alive"] is True
    assert status["running"] == 0  # sessions running a turn: none now
    assert daemon.cli("stop").returncode == 0
    assert json.loads(daemon.cli("status", "--json").stdout) == {"alive": False, "running": 0}


def test_kfd_status_reports_the_daemon_and_its_frontends(daemon: KfdDaemon) -> None:
    result = daemon.cli("status")
    assert result.returncode == 0, result.stderr
    assert f"pid {daemon.pid}" in result.stdout
    tools_line = next(line for line in result.stdout.splitlines() if line.startswith("tools: "))
    listed = tools_line.removeprefix("tools: ").split(", ")
    assert listed == sorted(listed)
    assert {"bash", "edit", "glob", "grep", "read", "write", "read_output", "tasks_set"} <= set(
        listed
    )
    data = json.loads(daemon.cli("status", "--json").stdout)
    assert data["pid"] == daemon.pid and data["sessions"] == 0
    assert {f["name"] for f in data["frontends"]} == {"kfd-status"}


def test_kfd_stop_stops_the_daemon_and_says_so_when_none_runs(daemon: KfdDaemon) -> None:
    result = daemon.cli("stop")
    assert result.returncode == 0 and f"pid {daemon.pid}" in result.stdout
    assert daemon.process is not None and daemon.process.wait(10) == 0
    again = daemon.cli("stop")
    assert again.returncode == 0 and "no kfd daemon is running" in again.stdout
    assert daemon.cli("status").returncode == 3


def test_kfd_run_rejects_a_missing_directory(daemon: KfdDaemon) -> None:
    result = daemon.cli("run", "hi", "--cwd", "/definitely/not/here")
    assert result.returncode == 2
    assert "not a directory" in result.stderr
