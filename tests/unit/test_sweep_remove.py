"""`kfd.sandbox.sweep.remove`: a tree removed without following a link or recursing,
and never past the directory it was asked to remove from, even when another
process moves the tree meanwhile (round 15: another session's command moved a
directory under removal, and ``..`` led kfd's clean-up out of the workspace)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kfd.sandbox.sweep import remove
from kfd.testing.trees import nest


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    parent = tmp_path / "parent"
    workspace = parent / "ws"
    (workspace / "AGENTS.md" / "ws" / "b" / "c").mkdir(parents=True)
    (workspace / "keep.txt").write_text("the user's\n")
    (parent / "victim.txt").write_text("outside the workspace\n")
    return parent, workspace


def test_a_tree_moved_while_it_is_removed_stops_the_removal_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, workspace = _tree(tmp_path)
    opened = os.open

    def open_and_move(path: str, flags: int, *args: object, **kwargs: object) -> int:
        fd = opened(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        if path == "c":  # at the bottom: another process moves `b` to the top
            os.rename(workspace / "AGENTS.md" / "ws" / "b", workspace / "b")
        return fd

    monkeypatch.setattr(os, "open", open_and_move)
    top = opened(workspace, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError, match="moved while kfd removed it"):
            remove(top, "AGENTS.md")
    finally:
        os.close(top)
    assert (workspace / "keep.txt").read_text() == "the user's\n"
    assert (parent / "victim.txt").read_text() == "outside the workspace\n"


def test_a_deep_tree_and_links_in_it_are_removed_and_what_links_lead_to_is_not(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("kept\n")
    deep = tmp_path / "top" / "AGENTS.md"
    deep.mkdir(parents=True)
    (deep / "dirlink").symlink_to(tmp_path)
    fd = nest(deep, "a", 1500)  # past Python's recursion limit (and PATH_MAX)
    os.symlink(outside, "link", dir_fd=fd)
    os.close(fd)
    top = os.open(tmp_path / "top", os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove(top, "AGENTS.md")
    finally:
        os.close(top)
    assert not deep.exists() and outside.read_text() == "kept\n"
