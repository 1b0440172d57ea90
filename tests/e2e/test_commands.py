"""Custom commands with a real daemon: arguments, ``@file`` and ``!`git log -1```
from ``kfd run --command``; the command's mode and allowed tools for its turn only;
a project's command is not offered until the repository is trusted."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.client import RequestFailed
from kfd.testing import Reply, ScriptedModelServer
from kfd.testing.daemon import KfdDaemon

MakeDaemon = Callable[..., KfdDaemon]

REVIEW = """\
---
description: Review one file
argument-hint: FILE FOCUS
allowed-tools: Bash(git log:*), read
mode: plan
---
Review @$1 with a focus on $2.
The last commit: !`git log -1 --format=%s`
Everything you were asked: $ARGUMENTS
"""


def last_user_text(model_server: ScriptedModelServer) -> str:
    body = model_server.requests[-1].body
    users = [m for m in body["messages"] if m["role"] == "user"]
    content = users[-1]["content"]
    return content if isinstance(content, str) else "".join(c.get("text", "") for c in content)


async def test_a_command_with_arguments_a_file_and_a_git_log_runs_from_kfd_run(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon()
    (daemon.config_dir / "commands").mkdir()
    (daemon.config_dir / "commands" / "review.md").write_text(REVIEW)
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("def f():\n    return 42\n")
    model_server.add(Reply(text="It returns 42; the name f says nothing."))

    listed = await _commands(daemon, workspace)
    (review,) = listed.commands
    assert (review.name, review.description, review.argument_hint) == (
        "review",
        "Review one file",
        "FILE FOCUS",
    )
    assert review.allowed_tools == ["bash(git log *)", "read"] and review.mode == "plan"

    ran = daemon.cli("run", "--cwd", str(workspace), "--command", "review", "src/a.py", "naming")
    assert ran.returncode == 0, ran.stderr
    assert "It returns 42" in ran.stdout
    prompt = last_user_text(model_server)
    assert "Review @src/a.py with a focus on naming." in prompt
    assert "The last commit: initial" in prompt  # git log ran, as a bash call of the turn
    assert "Everything you were asked: src/a.py naming" in prompt
    assert '<file path="src/a.py">\ndef f():\n    return 42\n</file>' in prompt

    async with await daemon.client() as client:
        (info,) = await client.sessions(cwd=str(workspace))
        # The command's mode and rules were for its turn only.
        assert info.mode == "default"


async def test_a_file_outside_the_workspace_or_denied_by_a_read_rule_is_not_included(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon()
    (daemon.config_dir / "commands").mkdir()
    (daemon.config_dir / "commands" / "peek.md").write_text(
        "Look at @.env and @../secret.txt and @notes.txt\n"
    )
    (workspace / ".env").write_text("TOKEN=hunter2\n")
    (workspace.parent / "secret.txt").write_text("outside\n")
    os.link(workspace.parent / "secret.txt", workspace / "notes.txt")  # a key's second name
    model_server.add(Reply(text="nothing to see"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.run_command(info.id, "peek")
            while not isinstance(await view.next_event(30.0), p.TurnCompleted):
                pass
    prompt = last_user_text(model_server)
    assert "hunter2" not in prompt and "outside\n" not in prompt
    assert "[@.env not included: the read rule" in prompt
    assert "[@../secret.txt not included: outside the workspace]" in prompt
    assert "[@notes.txt not included: it has 2 hard links, so it may be another file too]" in (
        prompt
    )


async def test_a_command_whose_file_cannot_be_read_leaves_the_session_as_it_was(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    """A reference the file system refuses (a name too long) is reported, the turn
    runs, and the command's mode is the turn's only."""
    daemon = make_daemon()
    (daemon.config_dir / "commands").mkdir()
    (daemon.config_dir / "commands" / "odd.md").write_text(
        "---\nmode: plan\n---\nLook at @" + "a" * 300 + "/x\n"
    )
    model_server.add(Reply(text="nothing there"))
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id) as view:
            await client.run_command(info.id, "odd")
            while not isinstance(done := await view.next_event(30.0), p.TurnCompleted):
                pass
        assert done.stop_reason != "error"
        assert (await client.session(info.id)).mode == "default"
    assert "not included: File name too long" in last_user_text(model_server)


async def test_a_restart_while_a_command_asks_puts_the_session_mode_back(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    """The daemon killed while a command's ``!`cmd``` awaits an answer: the
    command's mode and model were its turn's only, and recovery puts them back."""
    daemon = make_daemon()
    (daemon.config_dir / "commands").mkdir()
    (daemon.config_dir / "commands" / "ship.md").write_text(
        "---\nmode: accept-edits\nmodel: other-model\n---\nShipped: !`git push origin main`\n"
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace)
        before = await client.session(info.id)
        assert before.mode == "default"
        async with await client.attach(info.id) as view:
            # Its reply waits for the prompt, which waits for the answer.
            running = asyncio.create_task(client.run_command(info.id, "ship"))
            while not isinstance(await view.next_event(30.0), p.ApprovalRequested):
                pass
            during = await client.session(info.id)
            assert (during.mode, during.model) == ("accept-edits", "other-model")
            daemon.kill()
            running.cancel()
    daemon.start()
    async with await daemon.client() as client:
        after = await client.session(info.id)
    assert (after.mode, after.model, after.status) == ("default", before.model, "idle")


async def test_a_project_command_is_not_offered_until_the_repository_is_trusted(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (workspace / ".kfd" / "commands").mkdir(parents=True)
    (workspace / ".kfd" / "commands" / "ship.md").write_text(
        "---\ndescription: Ship it\nallowed-tools: Bash(git push:*)\nmode: auto\n---\n"
        "Ship $ARGUMENTS after !`make release`\n"
    )
    daemon = make_daemon()
    model_server.add(Reply(text="shipping"))
    async with await daemon.client() as client:
        listed = await client.commands(cwd=workspace)
        assert listed.commands == []
        assert listed.ignored and listed.ignored[0].startswith("/ship ")
        assert "trust" in listed.ignored[0]
        info = await client.create_session(workspace)
        with pytest.raises(RequestFailed) as refused:
            await client.run_command(info.id, "ship", "now")
        assert refused.value.code == "conflict" and "trust" in refused.value.message
        shown = await client.trust(workspace)
        # The user trusts what they saw: what the command does beyond its prompt.
        assert (
            "command /ship (.kfd/commands/ship.md): mode auto; allows bash(git push *); "
            "runs !`make release`"
        ) in shown.grants
        assert not shown.trusted

    trusted = daemon.cli("trust", "--yes", str(workspace), "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["trusted"] is True
    async with await daemon.client() as client:
        listed = await client.commands(cwd=workspace)
        assert [c.name for c in listed.commands] == ["ship"]
        assert [c.source for c in listed.commands] == ["project"]
        # A change to the file is a new content: untrusted again.
        (workspace / ".kfd" / "commands" / "ship.md").write_text("Ship $ARGUMENTS --force\n")
        assert (await client.commands(cwd=workspace)).commands == []


async def _commands(daemon: KfdDaemon, workspace: Path) -> p.CommandListResult:
    async with await daemon.client() as client:
        return await client.commands(cwd=workspace)
