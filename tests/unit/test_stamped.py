"""`kfd.policy.stamped`: answers kept between decisions are the answers read afresh,
whatever a workspace goes through (repositories made, broken and replaced,
configuration rewritten, instruction files made links)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from kfd.policy import gitconfig, gitindex, paths, stamped
from kfd.policy.stamped import Kept
from kfd.testing.clock import next_tick


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every entry taken as old enough to keep (the tests wait for a new tick instead)."""
    monkeypatch.setattr(stamped, "FRESH_S", -3600.0)


def test_an_answer_is_kept_until_an_entry_it_read_changes(tmp_path: Path, trusting: None) -> None:
    reads: list[int] = []
    entry = tmp_path / "entry"
    entry.write_text("one")
    kept: Kept[str] = Kept()

    def read() -> tuple[str, list[str]]:
        reads.append(1)
        return entry.read_text(), [str(entry), str(tmp_path / "absent")]

    assert kept.get("k", read) == "one"
    assert kept.get("k", read) == "one"
    assert len(reads) == 1
    next_tick(tmp_path / "probe", entry.stat().st_ctime_ns)
    entry.write_text("two")  # same inode, same size: the times tell
    assert kept.get("k", read) == "two"
    (tmp_path / "absent").mkdir()  # something appears where nothing was
    assert kept.get("k", read) == "two"
    assert len(reads) == 3


def test_a_recent_entry_or_a_link_is_never_kept(tmp_path: Path) -> None:
    reads: list[int] = []
    entry = tmp_path / "entry"
    entry.write_text("x")  # just now: within FRESH_S
    (tmp_path / "link").symlink_to(entry)
    kept: Kept[int] = Kept()

    def read_recent() -> tuple[int, list[str]]:
        reads.append(1)
        return 1, [str(entry)]

    def read_link() -> tuple[int, list[str]]:
        reads.append(2)
        return 2, [str(tmp_path / "link")]

    for _ in range(3):
        kept.get("recent", read_recent)
    os.utime(tmp_path / "link", (0, 0), follow_symlinks=False)  # old times: still a link
    for _ in range(3):
        kept.get("link", read_link)
    assert reads == [1, 1, 1, 2, 2, 2]


def _replace(path: Path, text: str) -> None:
    """Write as git does (a new file renamed over the old one), or in place as an
    editor may (its directory unchanged): which, by the text's length."""
    if len(text) % 2 and path.is_file() and not path.is_symlink():
        path.write_text(text)
        return
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    temporary.replace(path)


def _mutate(rng: random.Random, top: Path) -> str:
    """One change of the kind a command (or a hostile repository) makes."""
    git = top / ".git"
    sub = top / "sub"
    choice = rng.randrange(14)
    target = git if choice < 10 else sub / ".git"
    if choice in (0, 10):
        shutil.rmtree(target, ignore_errors=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        return f"removed {target}"
    if choice in (1, 11):
        if target.exists() or target.is_symlink():
            return "kept"
        target.parent.mkdir(exist_ok=True)
        for name in ("objects", "refs"):
            (target / name).mkdir(parents=True)
        _replace(target / "HEAD", "ref: refs/heads/main\n")
        _replace(target / "config", "[core]\n\tbare = false\n")
        return f"made {target}"
    if choice == 12:
        target = rng.choice([git, target])
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(exist_ok=True)
        _replace(target, "gitdir: ../.git\n")
        return f"{target} a file"
    if choice == 13:
        for name in ("AGENTS.md", "CLAUDE.md"):
            path = sub / name if rng.random() < 0.5 else top / name
            if path.is_symlink() or path.exists():
                path.unlink()
            elif rng.random() < 0.5:
                path.parent.mkdir(exist_ok=True)
                path.symlink_to(top / ".env")
            else:
                path.parent.mkdir(exist_ok=True)
                path.write_text("# rules\n")
        return "instruction files"
    git = rng.choice([git, sub / ".git"])
    if not git.is_dir() or git.is_symlink():
        return "no .git directory"
    texts = {
        2: ("HEAD", rng.choice(["ref: refs/heads/main\n", "nonsense\n", "a" * 40 + "\n", "b\n"])),
        3: (
            "config",
            rng.choice(
                [
                    "",
                    "[core]\n\tfsmonitor = ./x\n",
                    "[diff]\n\texternal = y\n",
                    "[core]\n\tfsmonitor = ./xx\n",
                ]
            ),
        ),
        4: ("config.worktree", rng.choice(["", '[filter "f"]\n\tclean = z\n'])),
        5: ("commondir", "."),
    }
    if choice in texts:
        name, text = texts[choice]
        if choice == 5 and (git / name).exists():
            (git / name).unlink()
        else:
            _replace(git / name, text)
        return f"{name} = {text!r}"
    if choice == 6:
        name = rng.choice(["objects", "refs"])
        if (git / name).exists():
            shutil.rmtree(git / name)
        else:
            (git / name).mkdir()
        return f"toggled {name}"
    if choice == 7:
        modules = git / "modules" / "m"
        if modules.exists():
            shutil.rmtree(git / "modules")
        else:
            modules.mkdir(parents=True)
            _replace(modules / "HEAD", "ref: refs/heads/main\n")
            _replace(modules / "config", "[core]\n\tfsmonitor = ./m\n")
        return "toggled modules"
    if choice == 8:
        head = git / "HEAD"
        if head.exists() or head.is_symlink():
            head.unlink()
        head.symlink_to("refs/heads/main")
        return "HEAD a link"
    if choice == 9:
        hook = git / "hooks" / "post-index-change"
        hook.parent.mkdir(exist_ok=True)
        if not hook.exists():
            hook.write_text("#!/bin/sh\n")
            return "hook made"
        hook.chmod(hook.stat().st_mode ^ 0o111)  # its change time only
        return "hook executable or not"
    return "nothing"


@pytest.mark.parametrize("seed", range(8))
def test_kept_answers_are_the_answers_read_afresh(
    tmp_path: Path, trusting: None, seed: int
) -> None:
    rng = random.Random(seed)
    top = tmp_path / "ws"
    (top / "sub").mkdir(parents=True)
    (top / ".env").write_text("TOKEN=x\n")
    for kept in (gitindex._tops, gitconfig._configuration, paths._links):
        kept.clear()
    probe = tmp_path / "probe"
    last = 0
    for step in range(120):
        what = _mutate(rng, top)
        for directory in (str(top), str(top / "sub")):
            tops = gitindex.repository_tops(directory)
            assert tops == list(gitindex._repository_tops(directory)[0]), (step, what)
            for found in tops:
                keys = gitconfig.repository_keys(found)
                assert keys == list(gitconfig._read_configuration(found)[0][0]), (step, what)
            links = paths.instruction_links(directory)
            fresh: dict[str, str] = {}
            for path, label in paths._instruction_links(directory)[0]:
                fresh.setdefault(paths.real_path(path), label)
            assert links == fresh, (step, what)
        # The next change comes in a later tick than every stamp just taken.
        last = max(last, *(p.lstat().st_ctime_ns for p in top.rglob("*")), 0)
        next_tick(probe, last)
