"""`kfd.sandbox.gitstate.undo` when a check cannot finish: the others still run, and
what was not checked is moved aside (fail closed), never only noted. Real files and
real git; a failure is injected by making one check raise (round 17: a tree too
deep for a recursion made one raise, and every check after it was skipped)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kfd.sandbox import gitlinks, gitstate, layout, repositories

IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@t"]


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    repositories.forget()
    gitlinks._clean.clear()
    yield
    repositories.forget()
    gitlinks._clean.clear()


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), *IDENTITY, *args], check=True)


def armed(directory: Path) -> None:
    """A repository a command made, whose configuration runs a program."""
    git(directory.parent, "init", "-q", directory.name)
    git(directory, "config", "core.fsmonitor", "touch /tmp/kfd-never; false #")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A repository with a commit and a nested repository of its own, both protected."""
    top = tmp_path / "ws"
    top.mkdir()
    git(top, "init", "-q")
    (top / "a").write_text("a\n")
    git(top, "add", "a")
    git(top, "commit", "-qm", "a")
    (top / "vendor").mkdir()
    git(top / "vendor", "init", "-q", "lib")
    return top.resolve()


def failing_for(
    real: Callable[..., list[str]], path: str, error: Exception
) -> Callable[..., list[str]]:
    """``real``, which raises ``error`` for the git directory at ``path``."""

    def step(git_dir: str, *args: object, **kwargs: object) -> list[str]:
        if git_dir == path:
            raise error
        return real(git_dir, *args, **kwargs)

    return step


def test_a_check_that_raises_skips_no_other_and_what_it_covers_is_moved_aside(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = layout.gather(workspace, writable=True, listing=())
    before = gitstate.before(facts)
    top = workspace / ".git"
    assert facts.git_dirs[0].path == str(top)  # the first checked
    # What the command left: in each protected git directory, and a new repository.
    (top / "modules").mkdir()
    nested = workspace / "vendor" / "lib" / ".git"
    (nested / "modules").mkdir()
    armed(workspace / "sub")
    error = RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(
        gitlinks, "remove_links", failing_for(gitlinks.remove_links, str(top), error)
    )

    notes = gitstate.undo(facts, before)

    text = "\n".join(notes)
    # The other checks of the same git directory ran.
    assert (top / "modules.kfd-unsafe").is_dir() and not (top / "modules").exists(), text
    # What the failed one covers is moved aside, with why: no link is left for git in it.
    assert (top / "index.kfd-unsafe").exists() and not (top / "index").exists(), text
    assert (top / "logs.kfd-unsafe").is_dir() and not (top / "logs").exists(), text
    assert f"kfd could not finish checking {top}" in text and "RecursionError" in text
    # The repositories after it: the next protected one, and the one the command made.
    assert (nested / "modules.kfd-unsafe").is_dir(), text
    config = workspace / "sub" / ".git" / "config"
    assert not config.exists() and (config.parent / "config.kfd-unsafe").exists(), text
    # The repository is still one; `git reset` rebuilds its index.
    git(workspace, "reset", "-q")
    git(workspace, "status", "--short")


def test_a_new_repository_whose_check_raises_is_disarmed_and_the_others_checked(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = layout.gather(workspace, writable=True, listing=())
    before = gitstate.before(facts)
    armed(workspace / "a1")
    armed(workspace / "b2")
    failing = str(workspace / "a1" / ".git")
    monkeypatch.setattr(
        gitstate,
        "_disarm_repository",
        failing_for(gitstate._disarm_repository, failing, OSError(5, "Input/output error")),
    )

    notes = gitstate.undo(facts, before)

    text = "\n".join(notes)
    for name in ("a1", "b2"):
        config = workspace / name / ".git" / "config"
        assert not config.exists() and (config.parent / "config.kfd-unsafe").exists(), text
    assert f"kfd could not finish checking {failing}" in text, text
