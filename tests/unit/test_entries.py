"""`kfd.policy.entries`: a path's facts kept between decisions are the facts read afresh.

A long command's words are resolved from their directories' entries, kept
while each directory's stamp holds (`kfd.policy.line_facts` keeps each word's
fact with them). Whatever happens to a workspace between two decisions (files
made, removed, renamed over, made symlinks, directories or FIFOs, the secret
linked in under another name), the next decision's facts are those
`path_fact` reads afresh. (A file given a new name from another directory
keeps its kept link count: no sandboxed program can make a link,
`tests/plugins/test_sandbox_no_links.py`.)
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from kfd.policy import entries
from kfd.policy.line_facts import _Gatherer
from kfd.policy.paths import real_path
from kfd.policy.word_paths import path_fact
from kfd.testing.clock import next_tick

NAMES = ["a.py", "b.py", "x", "sub", "sub/c.py", "link", "fifo", "gone"]
DIRECTORIES = ["", "src", "src/sub"]


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every directory taken as old enough to keep (the tests wait for a new tick)."""
    monkeypatch.setattr(entries, "FRESH_S", -3600.0)
    entries.forget()


def _workspace(root: Path) -> Path:
    workspace = root / "ws"
    (workspace / "src" / "sub").mkdir(parents=True)
    for directory in DIRECTORIES:
        (workspace / directory / "a.py").write_text("x")
    (workspace / ".env").write_text("TOKEN=x\n")
    return workspace


def _mutate(rng: random.Random, workspace: Path) -> str:
    """One change, of the kind a command run in the workspace makes."""
    directory = workspace / rng.choice(DIRECTORIES)
    path = directory / rng.choice(["a.py", "b.py", "x", "link", "fifo", "sub"])
    if path.is_dir() and not path.is_symlink():
        if rng.random() < 0.5 or (path.name == "sub" and directory.name != "sub"):
            return "kept a directory"
        shutil.rmtree(path)
        return f"removed {path}"
    if path.exists() or path.is_symlink():
        path.unlink()
        if rng.random() < 0.5:
            return f"removed {path}"
    choice = rng.randrange(6)
    if choice == 0:
        path.write_text("x" * rng.randrange(3))
    elif choice == 1:
        path.symlink_to(rng.choice(["a.py", "../.env", "/", "nowhere", str(workspace / ".env")]))
    elif choice == 2:
        path.mkdir()
    elif choice == 3:
        os.mkfifo(path)
    elif choice == 4:
        os.link(workspace / ".env", path)  # the secret under another name, here
    else:
        temporary = directory / ".new"
        temporary.write_text("y")
        temporary.replace(path)  # renamed over, as git and editors write
    return f"made {path} ({choice})"


def _words(workspace: Path) -> list[tuple[str, str]]:
    bases = [str(workspace / d) if d else str(workspace) for d in DIRECTORIES]
    return [(name, base) for base in bases for name in NAMES] + [
        (f"src/{name}", str(workspace)) for name in NAMES
    ]


@pytest.mark.parametrize("seed", range(4))
def test_kept_facts_are_the_facts_read_afresh(tmp_path: Path, trusting: None, seed: int) -> None:
    rng = random.Random(seed)
    workspace = _workspace(tmp_path)
    root = real_path(str(workspace))
    probe = tmp_path / "probe"
    words = _words(workspace)
    history: list[str] = []
    for _ in range(60):
        gatherer = _Gatherer(str(workspace), root, [str(workspace)], None, [], [], {})
        for word, base in words:
            fact, afresh = gatherer.resolve(word, base), path_fact(word, base, root)
            if fact.links > 1 and afresh.links > 1:
                # The secret linked in once more from elsewhere: its other names
                # counted above one, and still are (all a decision asks of them).
                fact = msgspec.structs.replace(fact, links=afresh.links)
            assert fact == afresh, (word, base, history)
        newest = max((workspace / d).stat().st_ctime_ns for d in DIRECTORIES)
        next_tick(probe, newest)
        history.append(_mutate(rng, workspace))


def test_a_directory_changed_just_now_is_looked_at_every_time(tmp_path: Path) -> None:
    directory = tmp_path / "fresh"
    directory.mkdir()
    first = entries.current(str(directory))
    assert first is not None and not first.kept
    again = entries.current(str(directory))
    assert again is not None and again is not first
    os.utime(directory, (0, 0))  # old times, but its change time is the kernel's: now
    third = entries.current(str(directory))
    assert third is not None and not third.kept


def test_a_symlink_or_a_name_that_cannot_be_looked_at_is_never_kept(
    tmp_path: Path, trusting: None
) -> None:
    (tmp_path / "link").symlink_to("target")
    kept = entries.current(str(tmp_path))
    assert kept is not None and kept.kept
    assert kept.entry("link") is None
    assert kept.entry("name\0with a NUL") is None
    assert "link" not in kept.names
    assert entries.current(str(tmp_path / "link")) is None  # not a directory
    assert kept.entry("missing") == ("missing", 1)


def test_the_secret_linked_in_under_another_name_has_two_links_at_the_next_decision(
    tmp_path: Path, trusting: None
) -> None:
    workspace = _workspace(tmp_path)
    root = real_path(str(workspace))
    src = str(workspace / "src")

    def resolve(word: str) -> tuple[str, int]:
        fact = _Gatherer(str(workspace), root, [src], None, [], [], {}).resolve(word, src)
        return fact.kind, fact.links

    assert resolve("a.py") == ("file", 1)
    assert resolve("x") == ("missing", 1)
    next_tick(tmp_path / "probe", (workspace / "src").stat().st_ctime_ns)
    os.link(workspace / ".env", workspace / "src" / "x")
    assert resolve("x") == ("file", 2)
    next_tick(tmp_path / "probe", (workspace / "src").stat().st_ctime_ns)
    (workspace / "src" / "a.py").unlink()
    os.link(workspace / ".env", workspace / "src" / "a.py")
    assert resolve("a.py") == ("file", 3)


def test_what_is_kept_stays_bounded_and_right_when_it_starts_over(
    tmp_path: Path, trusting: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entries, "_MAX_NAMES", 8)
    workspace = _workspace(tmp_path)
    root = real_path(str(workspace))
    for _ in range(3):
        gatherer = _Gatherer(str(workspace), root, [str(workspace)], None, [], [], {})
        for word, base in _words(workspace):
            assert gatherer.resolve(word, base) == path_fact(word, base, root)
            assert len(entries._kept) + entries._count[0] <= 8


_UNLISTED = """
import sys
from pathlib import Path
from kfd.config import PermissionsConfig
from kfd.policy.defaults import builtin_rules
from kfd.policy.rulebook import configured
from kfd.testing.decide import decide_line
rules = [*configured(PermissionsConfig(allow=["bash(cat *)"]), "user"), *builtin_rules()]
workspace = Path(sys.argv[1])
for line in sys.argv[2:]:
    print(decide_line(workspace, line, "auto", rules))
"""


def test_a_name_in_a_directory_kfd_cannot_list_is_looked_up_not_taken_as_missing(
    tmp_path: Path,
) -> None:
    """A directory that can be searched but not listed (``chmod 311``), changed in the
    future (never kept): a name in it must be looked up like any path, since what
    the command opens there may be a link to a secret (round 19)."""
    workspace = _workspace(tmp_path)
    unlisted = workspace / "d"
    unlisted.mkdir()
    (unlisted / "x").symlink_to("../.env")
    os.utime(unlisted, (4_000_000_000, 4_000_000_000))
    unlisted.chmod(0o311)
    os.utime(workspace, (4_000_000_000, 4_000_000_000))
    (workspace / "cfg").symlink_to(".env")
    workspace.chmod(0o311)
    try:
        # Without root's overrides, as a user's daemon runs: listing them fails.
        drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        lines = ["env -C d cat x", "cd d && cat x", "cat cfg", "cat d/x"]
        found = subprocess.run(
            [
                *(drop if os.geteuid() == 0 else []),
                sys.executable,
                "-c",
                _UNLISTED,
                str(workspace),
                *lines,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        workspace.chmod(0o755)
        unlisted.chmod(0o755)
    assert found.stdout.split() == ["deny", "deny", "deny", "deny"], found.stderr
