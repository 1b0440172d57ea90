"""`kfd.policy.real.where`: where a path really is, as `os.path.realpath` says, at a
cost the file system cannot choose (round 24: 1,024 links each through 800
components made one `realpath` take 3.3 s). Real trees of links, no stand-ins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfd.policy import real
from kfd.policy.paths import real_path
from kfd.policy.real import where

NAMES = ["a", "b", "c", "d"]
TARGETS = ["a", "b", "../a", "c/d", "/nowhere/x", "..", ".", "b/../c", "d/a", "../../b"]


def build(root: Path, entries: list[tuple[str, str, str]]) -> None:
    for directory, name, kind in entries:
        place = root / directory / name
        if os.path.lexists(place) or not (root / directory).is_dir():
            continue
        if kind == "dir":
            place.mkdir()
        elif kind == "file":
            place.write_text("x")
        else:
            place.symlink_to(kind)


ENTRIES = st.lists(
    st.tuples(
        st.sampled_from(["", "a", "b", "a/b", "c"]),
        st.sampled_from(NAMES),
        st.sampled_from(["dir", "dir", "file", *TARGETS]),
    ),
    max_size=14,
)
PATHS = st.lists(st.sampled_from([*NAMES, "..", ".", "", "missing"]), min_size=1, max_size=7)


@given(entries=ENTRIES, parts=PATHS)
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_where_says_what_realpath_says(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[str, str, str]], parts: list[str]
) -> None:
    root = tmp_path_factory.mktemp("tree").resolve()
    build(root, entries)
    path = str(root) + "/" + "/".join(parts)
    try:
        there: str | None = os.path.realpath(path, strict=True)
    except FileNotFoundError:
        there = None
    except OSError:
        return  # a loop: the kernel gives up where realpath makes something up
    found = where(path)
    if found is None:  # unknown: only where no program gets anything either
        assert there is None, path
    else:
        assert found == os.path.realpath(path), path


def test_a_costly_chain_of_links_costs_a_bounded_number_of_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 24's tree, smaller: a path through 300 links, each pointing through 800
    components. Whatever the tree, `where` looks a bounded number of times; a path the
    kernel can follow (up to 40 links) is where `os.path.realpath` says."""
    (tmp_path / "x").mkdir()
    through = "/".join(["x", ".."] * 400)
    for index in range(300):
        (tmp_path / f"l{index}").symlink_to(f"{through}/l{index + 1}")
    (tmp_path / "l300").mkdir()
    looks: list[str] = []
    real_open, real_readlink = os.open, os.readlink

    def counting_open(path: str, flags: int, *args: object) -> int:
        looks.append(path)
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    def counting_readlink(path: str) -> str:
        looks.append(path)
        return real_readlink(path)

    monkeypatch.setattr(real.os, "open", counting_open)
    monkeypatch.setattr(real.os, "readlink", counting_readlink)
    assert where(str(tmp_path / "l0" / "secret")) is None  # 300 links: the kernel stops at 40
    assert len(looks) <= real._BUDGET + 1
    looks.clear()
    near = str(tmp_path / "l265" / "secret")  # 35 links to the end
    assert where(near) == os.path.realpath(near) == str(tmp_path / "l300" / "secret")
    assert len(looks) <= real._BUDGET + 1
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    assert where(str(loop / "a")) is None  # past the kernel's limit: nothing reaches it


def test_a_dangling_link_is_followed_where_a_write_would_go(tmp_path: Path) -> None:
    (tmp_path / "out").symlink_to("/nowhere-kfd/cron.d/job")
    (tmp_path / "chain").symlink_to("out")
    assert where(str(tmp_path / "out")) == "/nowhere-kfd/cron.d/job"
    assert where(str(tmp_path / "chain")) == "/nowhere-kfd/cron.d/job"
    assert where(str(tmp_path / "missing" / ".." / "out")) == "/nowhere-kfd/cron.d/job"
    assert where("/tmp/a\0b") == "/tmp/a\0b"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert where(str(fifo)) == str(fifo)  # opened without blocking


def test_what_cannot_be_looked_at_is_unknown_not_missing(tmp_path: Path) -> None:
    """Round 25: past 4,096 bytes the kernel opens nothing (ENAMETOOLONG), and the
    directories there were taken as names not made yet, so a link at the bottom to
    the secrets went unseen; a directory named `x (deleted)` was taken as a deleted
    one. Unknown now (real_path: outside every workspace, it asks)."""
    (tmp_path / "secrets").mkdir()
    deep, descriptor = tmp_path, os.open(tmp_path, os.O_RDONLY)
    while len(str(deep)) < 4200:  # made a directory at a time: no call takes the whole
        os.mkdir("d" * 200, dir_fd=descriptor)
        inner = os.open("d" * 200, os.O_RDONLY, dir_fd=descriptor)
        os.close(descriptor)
        deep, descriptor = deep / ("d" * 200), inner
    os.symlink(tmp_path / "secrets", "l", dir_fd=descriptor)
    os.close(descriptor)
    assert where(str(deep / "l" / "k")) is None
    assert real_path(str(deep / "l" / "k")).startswith("/proc/")
    named = tmp_path / "x (deleted)"
    (named / "n").mkdir(parents=True)
    (named / "l").symlink_to(tmp_path / "secrets")
    assert where(str(named / "n" / ".." / "l" / "k")) == str(tmp_path / "secrets" / "k")
    gone = tmp_path / "gone"
    gone.mkdir()
    descriptor = os.open(gone, os.O_PATH)
    try:
        gone.rmdir()  # what the kernel names "… (deleted)"
        assert where(f"/proc/self/fd/{descriptor}/x") is None
    finally:
        os.close(descriptor)
