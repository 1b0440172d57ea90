"""Every reader of a file the workspace controls meets a FIFO there without waiting,
and says what it is: real FIFOs, each reader in a thread given a few seconds.

Were a reader to wait (as a plain ``open`` does), the test opens the FIFO's
other end once the time is up, so the stuck thread returns and the test fails
instead of hanging the run.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from kfd.agent.instructions import find_instructions
from kfd.commands.loader import read_command
from kfd.config import read, read_project
from kfd.errors import ConfigError
from kfd.policy import gitconfig, gitindex
from kfd.regular import NotRegular, TooLarge, read_regular

T = TypeVar("T")


def promptly(fifo: Path, reader: Callable[[], T], timeout: float = 5.0) -> T:
    """What ``reader`` returns, failing if it has not returned within ``timeout``."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(reader())
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the waiting reader go
        thread.join(timeout)
        pytest.fail(f"reading {fifo} waited on the FIFO")
    if errors:
        raise errors[0]
    return results[0]


def git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_the_reader_refuses_a_fifo_and_a_link_to_one_and_caps_the_size(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    for path in (fifo, tmp_path / "link"):
        with pytest.raises(NotRegular, match="it is a FIFO"):
            promptly(fifo, lambda path=path: read_regular(path, 100))
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(TooLarge):
        read_regular(tmp_path / "big", 100)
    assert read_regular(tmp_path / "big", 101) == b"x" * 101


def test_a_fifo_or_a_link_to_one_as_project_config_is_a_problem_not_a_wait(
    tmp_path: Path,
) -> None:
    (tmp_path / ".kfd").mkdir()
    fifo = tmp_path / ".kfd" / "config.toml"
    os.mkfifo(fifo)
    file = promptly(fifo, lambda: read_project(str(tmp_path)))
    assert file.exists and "it is a FIFO (named pipe), not a regular file" in file.problem
    fifo.unlink()
    os.mkfifo(tmp_path / "planted")
    fifo.symlink_to(tmp_path / "planted")
    file = promptly(tmp_path / "planted", lambda: read_project(str(tmp_path)))
    assert "FIFO" in file.problem
    with pytest.raises(ConfigError, match="FIFO"):
        promptly(tmp_path / "planted", lambda: read(fifo))


def test_a_fifo_as_an_instruction_file_is_left_out_with_why(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    os.mkfifo(repo / "AGENTS.md")
    (repo / "KFD.md").write_text("read me\n")
    files = promptly(
        repo / "AGENTS.md",
        lambda: find_instructions(repo, tmp_path / "global", per_file=1000, total=5000),
    )
    shown = {file.label: file for file in files}
    assert "FIFO" in shown["AGENTS.md"].left_out and shown["AGENTS.md"].text == ""
    assert shown["KFD.md"].text == "read me"


def test_fifos_in_a_git_directory_leave_the_policy_unsure_not_waiting(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".git" / "index").unlink(missing_ok=True)
    os.mkfifo(repo / ".git" / "index")
    assert promptly(repo / ".git" / "index", lambda: gitindex.index_paths(str(repo))) is None
    (repo / ".git" / "config").unlink()
    os.mkfifo(repo / ".git" / "config")
    keys = promptly(repo / ".git" / "config", lambda: gitconfig.repository_keys(str(repo)))
    assert f"{repo / '.git' / 'config'} (unreadable)" in keys
    (repo / ".git" / "HEAD").unlink()
    os.mkfifo(repo / ".git" / "HEAD")
    inner = repo / "sub"
    inner.mkdir()
    tops = promptly(repo / ".git" / "HEAD", lambda: gitindex.repository_tops(str(inner)))
    assert str(repo) in tops


def test_a_fifo_as_a_command_file_is_a_problem_that_says_what_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "review.md"
    os.mkfifo(fifo)
    command = promptly(fifo, lambda: read_command(fifo, "review", "project"))
    assert command.info.problem == f"{fifo}: " + (
        "it is a FIFO (named pipe), not a regular file; kfd reads only regular files "
        "here (so that it can never wait on one): make it a file"
    )
