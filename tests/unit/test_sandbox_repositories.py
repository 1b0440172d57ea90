"""Finding the repositories below a workspace: the walk, its bound, what inotify keeps."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kfd.sandbox import gitstate, layout, repositories


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    repositories.forget()
    yield
    repositories.forget()


def _names(found: repositories.Found, root: Path) -> list[str]:
    return [str(Path(path).relative_to(root)) for path, _ in found.markers]


def test_the_walk_finds_git_directories_gitdir_files_and_bare_repositories(
    tmp_path: Path,
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "a" / "clone")], check=True)
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "store.git")], check=True)
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / ".git").write_text("gitdir: ../store.git\n")
    (tmp_path / "hidden" / "x").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "hidden" / "x")], check=True)
    found = repositories.walk(str(tmp_path), prune=(str(tmp_path / "hidden"),))
    assert found.complete
    assert _names(found, tmp_path) == ["a/clone/.git", "linked/.git", "store.git"]


def test_a_workspace_larger_than_the_bound_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        (tmp_path / f"d{index}").mkdir()
    monkeypatch.setattr(repositories, "MAX_DIRECTORIES", 3)
    assert not repositories.walk(str(tmp_path)).complete
    facts = layout.gather(tmp_path, writable=True, listing=())
    assert facts.incomplete and not facts.writable


def test_what_is_kept_follows_new_directories_moves_and_removals(tmp_path: Path) -> None:
    root = str(tmp_path)
    (tmp_path / "old").mkdir()
    assert repositories.find(root).markers == ()
    subprocess.run(["git", "init", "-q", str(tmp_path / "new" / "deeper" / "r")], check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "old" / "s")], check=True)
    assert _names(repositories.find(root), tmp_path) == ["new/deeper/r/.git", "old/s/.git"]
    (tmp_path / "old").rename(tmp_path / "moved")
    assert _names(repositories.find(root), tmp_path) == ["moved/s/.git", "new/deeper/r/.git"]
    subprocess.run(["rm", "-rf", str(tmp_path / "new")], check=True)
    assert _names(repositories.find(root), tmp_path) == ["moved/s/.git"]


def renaming_while_walking(monkeypatch: pytest.MonkeyPatch, moved: Path, to: Path) -> list[str]:
    """Another command, running meanwhile, renames ``moved`` to ``to`` once the walk has
    listed the directory holding both (at its next listing), and never again. The
    walks list by path (what lists by descriptor is not counted)."""
    listed: list[str] = []
    scandir = os.scandir

    def scan(path: Any) -> Any:
        if isinstance(path, str):
            listed.append(path)
            if len(listed) == 2:
                os.rename(moved, to)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", scan)
    return listed


def test_a_directory_renamed_while_the_walk_goes_through_hides_no_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "z" / "deep" / "r")], check=True)
    (tmp_path / "a").mkdir()
    listed = renaming_while_walking(monkeypatch, tmp_path / "z", tmp_path / "y")
    found = repositories.find_settled(str(tmp_path))
    assert len(listed) > 2 and found.complete
    assert _names(found, tmp_path) == ["y/deep/r/.git"]


def test_a_repository_a_command_made_is_disarmed_though_its_parent_moved_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "ws"
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "a").mkdir()
    facts = layout.gather(workspace, writable=True, listing=())
    made = workspace / "z" / "deep" / "r"
    subprocess.run(["git", "init", "-q", str(made)], check=True)
    subprocess.run(["git", "-C", str(made), "config", "core.fsmonitor", "touch x"], check=True)
    renaming_while_walking(monkeypatch, workspace / "z", workspace / "y")

    notes = gitstate.undo(facts, gitstate.before(facts))

    config = workspace / "y" / "deep" / "r" / ".git" / "config"
    assert not config.exists() and config.with_name("config.kfd-unsafe").exists(), notes
