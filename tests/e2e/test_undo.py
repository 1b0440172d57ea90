"""Undo with a real daemon, real tools and a real git repository: a turn edits two
files and creates a third through bash, ``kfd undo`` puts all three back exactly
(the user's staged change and stash untouched); a user edit after the turn makes
the undo ask; a rewind of the conversation forks the session."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kfd import protocol as p
from kfd.client import Client, RequestFailed
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import unasked_turn

MakeDaemon = Callable[..., KfdDaemon]

A_BEFORE = "def greet():\n    return 'hello'\n"
B_BEFORE = b"one\r\ntwo\r\n"  # CRLF and no conversion: restored byte for byte


def git(workspace: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "you",
        "GIT_AUTHOR_EMAIL": "you@localhost",
        "GIT_COMMITTER_NAME": "you",
        "GIT_COMMITTER_EMAIL": "you@localhost",
        "HOME": str(workspace),
        "PATH": os.environ["PATH"],
    }
    done = subprocess.run(
        ["git", *args], cwd=workspace, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def prepare(workspace: Path) -> None:
    """Two committed files, a stash, and a staged change of the user's."""
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text(A_BEFORE)
    (workspace / "b.txt").write_bytes(B_BEFORE)
    (workspace / "b.txt").chmod(0o755)
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "two files")
    (workspace / "README.md").write_text("# stashed edit\n")
    git(workspace, "stash", "-q")
    (workspace / "staged.txt").write_text("the user's staged work\n")
    git(workspace, "add", "staged.txt")


def editing_turn() -> list[Reply]:
    """Read a.py and b.txt, edit a.py, overwrite b.txt, create c.txt through bash."""
    return [
        Reply(
            tool_calls=[
                ScriptedToolCall("read", {"path": "src/a.py"}),
                ScriptedToolCall("read", {"path": "b.txt"}),
            ]
        ),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "edit",
                    {"path": "src/a.py", "old_string": "'hello'", "new_string": "'bonjour'"},
                ),
                ScriptedToolCall("write", {"path": "b.txt", "content": "rewritten\n"}),
            ]
        ),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "bash", {"command": "mkdir -p out && printf 'made by bash\\n' > out/c.txt"}
                )
            ]
        ),
        Reply(text="done"),
    ]


async def run_turn(client: Client, session: str, text: str) -> list[object]:
    return list(await unasked_turn(client, session, text, 30.0))


def statuses(items: list[object]) -> list[tuple[str, str]]:
    return [(i.name, i.status) for i in items if isinstance(i, p.ToolCompleted)]


async def test_undo_restores_two_edited_files_and_one_bash_made_exactly(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    prepare(workspace)
    index_before = (workspace / ".git" / "index").read_bytes()
    daemon = make_daemon()
    model_server.add(*editing_turn())
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        items = await run_turn(client, info.id, "rework the greeting")
    assert statuses(items) == [
        ("read", "ok"),
        ("read", "ok"),
        ("edit", "ok"),
        ("write", "ok"),
        ("bash", "ok"),
    ]
    assert "bonjour" in (workspace / "src" / "a.py").read_text()
    assert (workspace / "out" / "c.txt").exists()

    diff = daemon.cli("diff", "--session", info.id, "--turn", "1")
    assert diff.returncode == 0, diff.stderr
    assert "+    return 'bonjour'" in diff.stdout
    assert "+++ b/out/c.txt" in diff.stdout and "+made by bash" in diff.stdout
    assert "-one" in diff.stdout and "+rewritten" in diff.stdout
    listed = json.loads(daemon.cli("undo", "--list", "--session", info.id, "--json").stdout)
    (turn,) = listed["turns"]
    assert turn["prompt"] == "rework the greeting"
    assert sorted((f["path"], f["change"]) for f in turn["files"]) == [
        ("b.txt", "modified"),
        ("out/c.txt", "added"),
        ("src/a.py", "modified"),
    ]

    undone = daemon.cli("undo", "--session", info.id)
    assert undone.returncode == 0, undone.stderr + undone.stdout
    assert "undid turn(s) 1" in undone.stdout
    assert (workspace / "src" / "a.py").read_text() == A_BEFORE
    assert (workspace / "b.txt").read_bytes() == B_BEFORE
    assert (workspace / "b.txt").stat().st_mode & 0o111  # the mode too
    assert not (workspace / "out").exists()  # the file, and the directory bash made for it
    # The user's git state is as it was: the index file (before git status refreshes
    # it), the staged change, the stash.
    assert (workspace / ".git" / "index").read_bytes() == index_before
    assert git(workspace, "status", "--porcelain") == "A  staged.txt\n"
    assert len(git(workspace, "stash", "list").splitlines()) == 1
    again = daemon.cli("undo", "--session", info.id)
    assert again.returncode != 0 and "no turn of this session changed files" in again.stderr


async def test_a_file_the_user_changed_after_the_turn_makes_the_undo_ask(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    prepare(workspace)
    daemon = make_daemon()
    model_server.add(*editing_turn())
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        await run_turn(client, info.id, "rework the greeting")
    (workspace / "b.txt").write_text("rewritten\nand the user's own line\n")

    asked = daemon.cli("undo", "--session", info.id)  # no terminal to ask in: nothing changes
    assert asked.returncode == 1
    assert "b.txt: undoing would do this to it" in asked.stderr
    assert "-and the user's own line" in asked.stderr
    assert "--overwrite" in asked.stderr and "--merge" in asked.stderr
    assert "bonjour" in (workspace / "src" / "a.py").read_text()  # nothing applied at all

    async with await daemon.client() as client:
        shown = await client.undo(info.id)
        assert not shown.applied
        (conflict,) = [s for s in shown.steps if s.action == "conflict"]
        assert conflict.path == "b.txt"
        (workspace / "b.txt").write_text("changed again\n")
        with pytest.raises(RequestFailed) as refused:  # the answer was to what it showed
            await client.undo(info.id, on_conflict="keep", expect=shown.fingerprint)
        assert refused.value.code == "conflict" and "changed since" in refused.value.message
        kept = await client.undo(info.id, on_conflict="keep")
    assert kept.applied
    assert {s.path: s.action for s in kept.steps} == {
        "b.txt": "kept",
        "out/c.txt": "restore",
        "src/a.py": "restore",
    }
    assert (workspace / "b.txt").read_text() == "changed again\n"
    assert (workspace / "src" / "a.py").read_text() == A_BEFORE


async def test_keep_restores_the_rest_and_merge_keeps_the_users_lines(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    prepare(workspace)
    (workspace / "notes.txt").write_text("".join(f"line {n}\n" for n in range(1, 21)))
    git(workspace, "add", "notes.txt")
    daemon = make_daemon()
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "notes.txt"})]),
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "edit", {"path": "notes.txt", "old_string": "line 2\n", "new_string": "TWO\n"}
                ),
                ScriptedToolCall("bash", {"command": "printf 'x\\n' > made.txt"}),
            ]
        ),
        Reply(text="ok"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        await run_turn(client, info.id, "edit the notes")
        notes = (workspace / "notes.txt").read_text()
        (workspace / "notes.txt").write_text(notes.replace("line 19\n", "NINETEEN\n"))
        shown = await client.undo(info.id)
        assert [s.action for s in shown.steps] == ["restore", "conflict"]
        merged = await client.undo(info.id, on_conflict="merge", expect=shown.fingerprint)
    assert merged.applied
    assert {s.path: s.action for s in merged.steps} == {
        "made.txt": "restore",
        "notes.txt": "merged",
    }
    text = (workspace / "notes.txt").read_text()
    assert "line 2\n" in text and "TWO" not in text and "NINETEEN\n" in text
    assert not (workspace / "made.txt").exists()


async def test_a_rewind_of_the_conversation_forks_the_session_from_before_the_turn(
    make_daemon: MakeDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    daemon = make_daemon()
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("write", {"path": "first.txt", "content": "1\n"})]),
        Reply(text="first done"),
        Reply(tool_calls=[ScriptedToolCall("write", {"path": "second.txt", "content": "2\n"})]),
        Reply(text="second done"),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        await run_turn(client, info.id, "make the first file")
        await run_turn(client, info.id, "make the second file")
        async with await client.attach(info.id) as view:
            result = await client.undo(info.id, 2, conversation=True)
            restored = None
            while restored is None:
                item = await view.next_event(10.0)
                if isinstance(item, p.CheckpointRestored):
                    restored = item
        assert result.applied and result.forked is not None
        assert restored.files == ["second.txt"] and restored.forked == result.forked.id
        assert (workspace / "first.txt").exists() and not (workspace / "second.txt").exists()
        forked = await history(client, result.forked.id)
        said = [e.text for e in forked if isinstance(e, p.MessageUser)]
        answers = [e.text for e in forked if isinstance(e, p.MessageCompleted)]
        assert said == ["make the first file"]
        assert answers[-1] == "first done"
        original = await history(client, info.id)
        kept = [e.text for e in original if isinstance(e, p.MessageUser)]
        assert kept == ["make the first file", "make the second file"]


async def history(client: Client, session: str) -> list[object]:
    """Every durable event of a session so far."""
    last = (await client.session(session)).last_seq
    items: list[object] = []
    async with await client.attach(session) as view:
        while not items or getattr(items[-1], "seq", 0) < last:
            items.append(await view.next_event(10.0))
    return items
