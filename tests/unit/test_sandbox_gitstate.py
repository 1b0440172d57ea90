"""The pure decisions over git's state after a sandboxed command, on good and bad input."""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
from pathlib import Path

import pytest

from kfd.sandbox import gitchecks, gitnames, gitstate, hookspath


def _index(repo: Path) -> bytes:
    return (repo / ".git" / "index").read_bytes()


@pytest.fixture
def index(tmp_path: Path) -> bytes:
    """A real index of git's, version 2, with a few entries and a cache-tree."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name in ("a", "dir/b", "dir/sub/.gitkeep", ".github/x"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "write-tree"], check=True, capture_output=True)
    return _index(tmp_path)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../outside",
        "sub/../../x",
        "./a",
        "a//b",
        ".git/hooks/pre-commit",
        ".GIT/config",
        "sub/.Git/hooks/x",
        ".git./x",
        ".git /x",
        "GIT~1/hooks/x",
        ".git::$INDEX_ALLOCATION/x",
    ],
)
def test_paths_git_would_refuse_from_a_tree_are_refused(path: str) -> None:
    assert gitchecks.refused_path(path) is not None


@pytest.mark.parametrize("path", ["a", "dir/b", ".github/x", ".gitignore", "a.git/b", "dir/"])
def test_ordinary_paths_are_accepted(path: str) -> None:
    assert gitchecks.refused_path(path) is None


def test_an_index_git_wrote_is_accepted_in_every_version(index: bytes, tmp_path: Path) -> None:
    assert gitchecks.index_refusal(index) is None
    for version in ("3", "4"):
        subprocess.run(
            ["git", "-C", str(tmp_path), "update-index", "--index-version", version], check=True
        )
        assert gitchecks.index_refusal(_index(tmp_path)) is None, version


def test_garbage_and_truncated_indexes_are_refused_without_an_error(index: bytes) -> None:
    """Fail closed: what kfd cannot read, the host's git does not obey."""
    generator = random.Random(7)
    samples = [b"", b"DIRC", index[:40], b"DIRC" + struct.pack(">II", 9, 1) + index[12:]]
    samples += [bytes(generator.randrange(256) for _ in range(n)) for n in (1, 12, 64, 4096)]
    samples += [b"DIRC" + struct.pack(">II", 2, 1_000_000) + index[12:]]
    for sample in samples:
        assert gitchecks.index_refusal(sample) is not None, sample[:16]
    # Cut after its last entry, an index lists only paths git accepts (git itself then
    # refuses it for its checksum): either answer, never an exception.
    for cut in range(12, len(index)):
        gitchecks.index_refusal(index[:cut])


def test_every_flipped_byte_of_an_index_is_read_or_refused_without_an_error(
    index: bytes,
) -> None:
    for offset in range(len(index)):
        damaged = bytearray(index)
        damaged[offset] ^= 0xFF
        gitchecks.index_refusal(bytes(damaged))  # an answer, never an exception


def test_an_index_entry_leading_into_the_git_directory_is_refused() -> None:
    name = b".git/hooks/pre-commit"
    body = struct.pack(">4sII", b"DIRC", 2, 1)
    entry = struct.pack(">10I", 0, 0, 0, 0, 0, 0, 0o100755, 0, 0, 0) + b"\0" * 20
    entry += struct.pack(">H", len(name)) + name
    body += entry + b"\0" * (8 - len(entry) % 8)
    why = gitchecks.index_refusal(body + hashlib.sha1(body).digest())
    assert why is not None and ".git/hooks/pre-commit" in why


def test_exec_lines_of_a_todo_list_become_comments_and_nothing_else_changes() -> None:
    todo = (
        b"pick 1234 a\n"
        b"exec make test\n"
        b"  x rm -rf ~\n"
        b"\tEXEC id\r\n"
        b"# exec already a comment\n"
        b"execute-not-a-command\n"
        b"fixup 5678 b\n"
        b"x\n"
    )
    disarmed, count = gitchecks.disarmed(todo)
    assert count == 4
    assert disarmed == (
        b"pick 1234 a\n"
        b"# kfd: exec make test\n"
        b"# kfd:   x rm -rf ~\n"
        b"# kfd: \tEXEC id\r\n"
        b"# exec already a comment\n"
        b"execute-not-a-command\n"
        b"fixup 5678 b\n"
        b"# kfd: x\n"
    )


def test_a_todo_list_of_garbage_is_handled_as_bytes() -> None:
    generator = random.Random(3)
    garbage = bytes(generator.randrange(256) for _ in range(10_000))
    disarmed, count = gitchecks.disarmed(garbage + b"\nexec \xff\xfe\n")
    assert count >= 1 and b"\n# kfd: exec \xff\xfe\n" in disarmed
    assert gitchecks.disarmed(b"") == (b"", 0)


def test_only_names_git_records_work_in_may_appear_in_a_git_directory() -> None:
    before = ["HEAD", "config", "objects", "refs"]
    now = [*before, "index", "index.lock", "rebase-merge", "modules", "worktrees", "remotes"]
    now += ["hooks", "commondir", "sharedindex.0123", "fsmonitor--daemon.ipc"]
    assert gitstate.unexpected_entries(before, now) == [
        "modules",
        "remotes",
        "sharedindex.0123",
        "worktrees",
    ]


def test_every_hooks_directory_core_hooks_path_names_is_found_where_git_finds_it(
    tmp_path: Path,
) -> None:
    """Relative to the work tree, ``~`` as the home; every file's value, whichever wins."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".config" / "git").mkdir(parents=True)
    work.mkdir()
    (home / ".gitconfig").write_text("[core]\n\thooksPath = ~/hooks\n")
    (home / ".config" / "git" / "config").write_text('[CORE]\n  HooksPath = ".husky/_"\n')
    (tmp_path / "repo.config").write_text("[core]\nhookspath=.githooks\n[other]\nhookspath=x\n")
    files = hookspath.configuration_files(str(home), {}, [])
    assert files[1:] == [str(home / ".config" / "git" / "config"), str(home / ".gitconfig")]
    found = hookspath.hooks_directories(
        str(work), [*files, str(tmp_path / "repo.config"), str(tmp_path / "none")], str(home)
    )
    assert found[-3:] == [str(work / ".husky" / "_"), str(home / "hooks"), str(work / ".githooks")]


@pytest.mark.parametrize(
    "data",
    [
        b"a" * 40 + b"\t../../.bashrc\0",
        b"a" * 40 + b".1\t.git/hooks/pre-commit\0",
        b"a" * 40 + b"\t/etc/passwd\0",
        b"../x\tfile\0",
        b"a" * 40 + b"\tfile",
    ],
)
def test_a_list_of_conflicts_naming_a_path_git_would_refuse_is_refused(data: bytes) -> None:
    assert gitnames.merge_rr_refusal(data)[0] is not None


def test_a_list_of_conflicts_git_wrote_is_accepted_with_its_ids() -> None:
    data = b"a" * 40 + b"\tsrc/x.c\0" + b"b" * 40 + b".2\tREADME\0"
    assert gitnames.merge_rr_refusal(data) == (None, ["a" * 40, "b" * 40])


@pytest.mark.parametrize("strategy", ["x/evil", "./evil", "/usr/bin/evil"])
def test_a_strategy_naming_a_path_is_refused(strategy: str) -> None:
    assert gitnames.strategy_refusal(strategy) is not None


@pytest.mark.parametrize("strategy", ["ort", "recursive", "octopus", "resolve", "subtree"])
def test_a_plain_strategy_is_accepted(strategy: str) -> None:
    assert gitnames.strategy_refusal(strategy) is None


def test_a_git_directory_anywhere_a_command_writes_to_stay_is_in_its_reach() -> None:
    """The workspace, the project's cache home and what git records work in of a
    protected git directory (a linked worktree's too, outside the workspace)."""
    places = ("/w", "/home/u/.cache/kfd/sandbox/w-1")
    protected = ("/w/.git", "/w/sub/.git", "/repos/main/.git/worktrees/w")
    for path in (
        "/w/vendor/lib/.git",
        "/home/u/.cache/kfd/sandbox/w-1/cache/evil.git",
        "/w/.git/refs/evil",
        "/w/.git/objects/ab/evil",
        "/w/.git/x.lock/evil",
        "/w/sub/.git/logs/evil",
        "/repos/main/.git/worktrees/w/refs/evil",
    ):
        assert gitstate.in_reach(path, places, protected), path


def test_a_protected_git_directory_and_what_is_read_only_in_one_are_the_users() -> None:
    places = ("/w", "/home/u/.cache/kfd/sandbox/w-1")
    protected = ("/w/.git", "/repos/main/.git/worktrees/w")
    for path in (
        "/w/.git",
        "/w/.git/modules/lib",
        "/w/.git/worktrees/other",
        "/repos/main/.git/worktrees/w",
        "/repos/other/.git",
        "/home/u/.cache/kfd/sandbox/w-10/evil.git",
        "/w2/.git",
    ):
        assert not gitstate.in_reach(path, places, protected), path
