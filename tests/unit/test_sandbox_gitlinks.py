"""`kfd.sandbox.gitlinks`: every link in git's writable state removed, by a walk that is
bounded and no recursion; what lies past its bounds moved where git never reads.
Real files and real git (round 17: a tree nested past the recursion limit in
``.git/refs`` made the walk raise, and every check after it was skipped)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfd.sandbox import gitlinks
from kfd.testing.trees import nest, unnest


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    gitlinks._clean.clear()
    yield
    gitlinks._clean.clear()


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), *args], check=True)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    top = tmp_path / "ws"
    top.mkdir()
    git(top, "init", "-q")
    git(top, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-ma")
    return top.resolve()


@pytest.fixture
def deep(workspace: Path) -> Iterator[Path]:
    """Where a test nests directories deeper than a recursion goes; removed after it
    without one (pytest's clean-up recurses)."""
    heads = workspace / ".git" / "logs" / "refs" / "heads"
    yield heads / "x"
    unnest([heads, workspace / ".git" / "refs" / "heads"], "x")  # and the branch's


def test_links_past_the_depth_kfd_looks_through_leave_git_nothing_to_follow(
    workspace: Path, tmp_path: Path, deep: Path
) -> None:
    """A link under more levels than a recursion goes through (and than git makes):
    the directory past the bound is moved to a name git never reads."""
    outside = tmp_path / "bashrc"
    outside.write_text("# mine\n")
    top = workspace / ".git"
    fd = nest(deep.parent, "x", 1500)
    os.symlink(outside, "y", dir_fd=fd)
    os.close(fd)

    notes = gitlinks.remove_links(str(top), str(workspace))

    assert len(notes) == 1 and ".x.kfd-unsafe, which this command left" in notes[0], notes
    depth = gitlinks.MAX_DEPTH - 3  # as many open as it looks through: `logs`, `refs`, ...
    kept = deep.parent / "/".join(["x"] * depth)
    assert sorted(os.listdir(kept)) == [".x.kfd-unsafe"]
    assert gitlinks.remove_links(str(top), str(workspace)) == []  # moved aside once
    git(workspace, "checkout", "-q", "-b", "x/" * 1500 + "y")
    assert outside.read_text() == "# mine\n"


def test_directories_past_the_number_kfd_looks_through_are_moved_aside(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = workspace / ".git"
    for name in ("a", "b", "c", "d"):
        (top / "refs" / "heads" / name).mkdir()
    in_refs = 1 + sum(len(directories) for _, directories, _ in os.walk(top / "refs"))
    monkeypatch.setattr(gitlinks, "MAX_DIRECTORIES", in_refs - 2)

    notes = gitlinks.remove_links(str(top), str(workspace))

    assert len(notes) == 2 and all(".kfd-unsafe, which this command left" in n for n in notes)
    aside = [name for _, names, _ in os.walk(top) for name in names if name.startswith(".")]
    assert len(aside) == 2 and all(name.endswith(".kfd-unsafe") for name in aside), notes
    assert gitlinks.remove_links(str(top), str(workspace)) == []  # moved aside once
