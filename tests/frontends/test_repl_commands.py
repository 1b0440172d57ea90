"""Custom commands, /undo and /rewind in the real REPL (tmux), against a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from repl_terminal import Tmux

from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon

REVIEW = """\
---
description: Review one file
argument-hint: FILE FOCUS
---
Review @$1 with a focus on $2.
The last commit: !`git log -1 --format=%s`
"""


@pytest.fixture
def tmux(daemon: KfdDaemon) -> Iterator[Tmux]:
    server = Tmux(daemon.root, daemon.env)
    yield server
    server.close()


def last_user_text(model_server: ScriptedModelServer) -> str:
    users = [m for m in model_server.requests[-1].body["messages"] if m["role"] == "user"]
    content = users[-1]["content"]
    return content if isinstance(content, str) else "".join(c.get("text", "") for c in content)


def test_a_custom_command_completes_and_runs_with_a_file_and_a_git_log(
    tmux: Tmux, daemon: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    (daemon.config_dir / "commands").mkdir()
    (daemon.config_dir / "commands" / "review.md").write_text(REVIEW)
    (workspace / "a.py").write_text("def f():\n    return 42\n")
    model_server.add(Reply(text="The name f says nothing."))
    terminal = tmux.kfd("new", cwd=workspace)
    terminal.wait_for("│ idle │")
    terminal.send("/help")
    terminal.wait_for("/review FILE FOCUS  Review one file", history=True)
    terminal.type("/rev")
    terminal.wait_for("/review  FILE FOCUS · Review one file")  # offered as you type
    terminal.send("iew a.py naming")
    terminal.wait_for("The name f says nothing.")
    prompt = last_user_text(model_server)
    assert "Review @a.py with a focus on naming." in prompt
    assert "The last commit: initial" in prompt
    assert '<file path="a.py">\ndef f():\n    return 42\n</file>' in prompt


def test_undo_and_rewind_in_the_repl_put_the_files_back(
    tmux: Tmux, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("write", {"path": "one.txt", "content": "1\n"})]),
        Reply(text="first written"),
        Reply(
            tool_calls=[ScriptedToolCall("bash", {"command": "printf '2\\n' > two.txt"})],
        ),
        Reply(text="second written"),
    )
    terminal = tmux.kfd("new", "--mode", "auto", cwd=workspace)
    terminal.wait_for("│ idle │")
    terminal.send("write one")
    terminal.wait_for("first written")
    terminal.send("write two")
    terminal.wait_for("second written")
    terminal.send("/rewind")
    terminal.wait_for(lambda screen: "added    two.txt" in screen and "turn 1" in screen)
    terminal.send("/undo")
    terminal.wait_for("two.txt: restored")
    assert not (workspace / "two.txt").exists() and (workspace / "one.txt").exists()
    terminal.send("/rewind 1 both")
    terminal.wait_for("the conversation goes on from before the turn")
    assert not (workspace / "one.txt").exists()
