"""Host git calls under a burst of turn starts, against real git: sessions that
start together in one workspace share one ``git status``, and the repository
configuration each call copies is read once until the file changes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from kfd import git
from kfd.agent import environment
from kfd.agent.environment import git_summary
from kfd.testing.fixtures import git_repo

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "ws")


class Counted:
    """Real git runs, counted by the command git was asked to run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commands: list[list[str]] = []
        real = git.run._exec

        async def counted(command: list[str], *args: object) -> git.GitOutput:
            self.commands.append(list(command))
            return await real(command, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(git.run, "_exec", counted)

    def count(self, name: str) -> int:
        """Runs of ``git name`` (after the ``-c`` settings)."""
        return sum(1 for command in self.commands if name in command)


async def test_sessions_starting_together_share_one_git_status(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Counted(monkeypatch)
    (repo / "b.txt").write_text("new\n")
    summaries = await asyncio.gather(*(git_summary(repo) for _ in range(8)))
    assert summaries == ["branch main; 1 untracked"] * 8
    assert runs.count("status") == 1
    # A session starting afterwards looks again, and sees what changed since.
    (repo / "README.md").write_text("two\n")
    assert await git_summary(repo) == "branch main; 1 modified, 1 untracked"
    assert runs.count("status") == 2


async def test_a_cancelled_session_start_leaves_the_others_their_summary(repo: Path) -> None:
    first = asyncio.create_task(git_summary(repo))
    second = asyncio.create_task(git_summary(repo))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "branch main; clean"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not environment._SUMMARIES


async def test_the_repository_config_is_read_again_only_when_it_changes(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / "c.txt").write_text("c\n")
    _git(clone, "add", "c.txt")
    _git(clone, "commit", "-qm", "c")
    runs = Counted(monkeypatch)
    assert await git_summary(clone) == "branch main (ahead 1); clean"
    assert await git_summary(clone) == "branch main (ahead 1); clean"
    assert runs.count("config") == 1
    # The upstream goes from the config: the next call reads it again.
    _git(clone, "branch", "--unset-upstream")
    assert await git_summary(clone) == "branch main; clean"
    assert runs.count("config") == 2
