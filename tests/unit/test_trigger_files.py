"""What a file trigger reads of the workspace: never a file a link brings in, and
never by opening what is not a regular file (`kfd.triggers.files`)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from kfd.triggers.files import diff_of, file_states, read_beneath


def test_a_comment_scan_reads_no_file_a_link_brings_in(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "sub").mkdir(parents=True)
    secret = tmp_path / "credentials"
    secret.write_text("key = CANARY\n# rotate it AI?\n")
    (workspace / "notes.py").symlink_to(secret)
    (workspace / "linked").symlink_to(tmp_path)
    (workspace / "sub" / "real.py").write_text("x = 1  # fix AI!\n")
    assert read_beneath(workspace, "notes.py", 1000) is None
    assert read_beneath(workspace, "linked/credentials", 1000) is None
    assert read_beneath(workspace, "sub/real.py", 1000) == "x = 1  # fix AI!\n"
    assert read_beneath(workspace, "sub/real.py", 5) is None  # too large
    assert read_beneath(workspace, "gone.py", 1000) is None
    assert read_beneath(workspace, "sub", 1000) is None  # a directory


def test_a_fifo_or_a_link_never_blocks_or_is_read_for_a_files_state(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    link = tmp_path / "notes.py"
    link.symlink_to(tmp_path / "elsewhere")
    plain = tmp_path / "a.py"
    plain.write_text("x\n")
    states: list[object] = []
    worker = threading.Thread(
        target=lambda: states.extend(file_states([str(fifo), str(link), str(plain)])),
        daemon=True,
    )
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a FIFO's state blocked the watcher"
    fifo_state, link_state, plain_state = states
    assert fifo_state.digest.startswith("special:")  # type: ignore[attr-defined]
    assert link_state.digest == f"link:{tmp_path / 'elsewhere'}"  # type: ignore[attr-defined]
    assert plain_state.digest is not None and ":" not in plain_state.digest  # type: ignore[attr-defined]


async def test_a_changed_file_named_like_a_pathspec_brings_only_itself_into_the_diff(
    tmp_path: Path,
) -> None:
    """A tracked file named ``*`` (or ``:(glob)**``) changed: git read the name as a
    pattern and the trigger's prompt showed the working tree's ``.env`` beside it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    names = ["*", ":(glob)**", "[.]env"]
    _git(repo, "init", "-q")
    (repo / ".env").write_text("API_KEY=changeme\n")
    for name in names:
        (repo / name).write_text("one\n")
    _git(repo, "add", "--", ".env", *names, literal=True)
    _git(repo, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "init")
    (repo / ".env").write_text("API_KEY=CANARY_SECRET_77\n")
    for name in names:
        (repo / name).write_text("two\n")
        diff = await diff_of(repo, [name])
        assert "CANARY_SECRET_77" not in diff and ".env" not in diff, (name, diff)
        assert f"diff --git a/{name} b/{name}" in diff and "+two" in diff, (name, diff)


def _git(repo: Path, *args: str, literal: bool = False) -> None:
    env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1"} if literal else None
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
