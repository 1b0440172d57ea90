"""A tree walked for restricted paths is remembered between decisions, and every
change to it is still seen by the next walk (`kfd.policy.tree_walk`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kfd.policy import tree_walk
from kfd.policy.rules import PathMatcher

OLD_NS = time.time_ns() - 3600 * 10**9


def _walk(root: Path, matcher: PathMatcher) -> list[str]:
    walked = tree_walk.walk(str(root), str(root), matcher, max_entries=10_000, max_hits=5)
    assert walked.complete
    assert walked.links == []  # named only for a reader that follows them
    return walked.hits


def _age(*directories: Path) -> None:
    for directory in directories:
        os.utime(directory, ns=(OLD_NS, OLD_NS))


def _next_tick(directory: Path) -> None:
    """Wait until file times tick past ``directory``'s change time (a few ms)."""
    probe = directory.parent / f"{directory.name}.tick"
    deadline = time.monotonic() + 5
    while True:
        probe.touch()
        if probe.stat().st_ctime_ns > directory.stat().st_ctime_ns:
            probe.unlink()
            return
        assert time.monotonic() < deadline, "file times never ticked"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "a.py").write_text("x = 1\n")
    (root / "src" / "deep" / "b.py").write_text("y = 2\n")
    _age(root, root / "src", root / "src" / "deep")
    return root


@pytest.fixture
def remembered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Directories the walk really listed; every listing is remembered at once."""
    monkeypatch.setattr(tree_walk, "FRESH_S", 0.0)
    listed: list[str] = []
    scandir = os.scandir

    def counting(path: str) -> object:
        listed.append(path)
        return scandir(path)

    monkeypatch.setattr(tree_walk.os, "scandir", counting)
    return listed


def test_an_unchanged_tree_is_not_listed_again(tree: Path, remembered: list[str]) -> None:
    matcher = PathMatcher(["**/.env"], str(tree), "/nonexistent-home")
    assert _walk(tree, matcher) == []
    assert len(remembered) == 3
    assert _walk(tree, matcher) == []
    assert len(remembered) == 3


def test_a_file_made_after_a_walk_is_seen_by_the_next(tree: Path, remembered: list[str]) -> None:
    matcher = PathMatcher(["**/.env"], str(tree), "/nonexistent-home")
    assert _walk(tree, matcher) == []
    (tree / "src" / "deep" / ".env").write_text("TOKEN=x\n")
    assert _walk(tree, matcher) == [f"{tree}/src/deep/.env"]


def test_resetting_the_directory_time_does_not_hide_a_new_file(
    tree: Path, remembered: list[str]
) -> None:
    matcher = PathMatcher(["**/.env"], str(tree), "/nonexistent-home")
    assert _walk(tree, matcher) == []
    _next_tick(tree / "src")
    (tree / "src" / ".env").write_text("TOKEN=x\n")
    _age(tree / "src")  # `touch -d` back: the change time still moves
    assert (tree / "src").stat().st_mtime_ns == OLD_NS
    assert _walk(tree, matcher) == [f"{tree}/src/.env"]


def test_a_renamed_directory_is_seen(tree: Path, remembered: list[str]) -> None:
    matcher = PathMatcher(["**/secrets/**"], str(tree), "/nonexistent-home")
    assert _walk(tree, matcher) == []
    (tree / "src" / "deep").rename(tree / "src" / "secrets")
    assert _walk(tree, matcher) == [f"{tree}/src/secrets/b.py"]


def test_a_symlink_is_resolved_at_every_walk(
    tree: Path, tmp_path: Path, remembered: list[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cfg").write_text("plain\n")
    (tree / ".env").write_text("TOKEN=x\n")
    (tree / "src" / "link").symlink_to(elsewhere / "cfg")
    _age(tree / "src")
    matcher = PathMatcher(["**/.env"], str(tree), "/nonexistent-home")
    assert _walk(tree / "src", matcher) == []
    # The link's own directory does not change; what it leads to does.
    (elsewhere / "cfg").unlink()
    (elsewhere / "cfg").symlink_to(tree / ".env")
    assert _walk(tree / "src", matcher) == [f"{tree}/src/link"]


def test_a_directory_changed_just_now_is_listed_every_time(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[str] = []
    scandir = os.scandir

    def counting(path: str) -> object:
        listed.append(path)
        return scandir(path)

    monkeypatch.setattr(tree_walk.os, "scandir", counting)
    (tree / "src" / "c.py").write_text("z = 3\n")  # src changed within FRESH_S
    matcher = PathMatcher(["**/.env"], str(tree), "/nonexistent-home")
    _walk(tree, matcher)
    _walk(tree, matcher)
    assert listed.count(f"{tree}/src") == 2
    # The others changed an hour ago, ctime aside: their ctime is recent too,
    # so nothing set up just now is remembered either.
    assert listed.count(str(tree)) == 2


def test_each_rule_set_has_its_own_memory(tree: Path, remembered: list[str]) -> None:
    (tree / "src" / "id_rsa").write_text("key\n")
    _age(tree / "src")
    assert _walk(tree, PathMatcher(["**/.env"], str(tree), "/nonexistent-home")) == []
    keys = PathMatcher(["**/id_rsa"], str(tree), "/nonexistent-home")
    assert _walk(tree, keys) == [f"{tree}/src/id_rsa"]
