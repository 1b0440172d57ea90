"""`kfd.policy.gitindex.parse_index`: the tracked paths as git itself reads them, or
"unknown" (the engine asks) wherever a hand-made index could make kfd and git
disagree. Each index here is written by real git, then changed as an attacker
would (the trailing checksum made right again, so that git reads it)."""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
from pathlib import Path

from kfd.policy.defaults import builtin_rules
from kfd.policy.gitindex import gitlink_names, parse_index
from kfd.testing.decide import decide_line

_HASH = 20


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _repository(tmp_path: Path, *files: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("TOKEN=canary\n")
    _git(repo, "add", "--", *files)
    return repo


def _rewrite(repo: Path, change: bytes, to: bytes, *, length: int | None = None) -> bytes:
    """The index with ``change`` replaced by ``to`` in its first entry that holds it
    (and that entry's name length set to ``length``), its checksum made right."""
    index = repo / ".git" / "index"
    data = bytearray(index.read_bytes()[:-_HASH])
    at = data.index(change)
    data[at : at + len(change)] = to
    if length is not None:
        flags = 12 + 60  # the first entry's flags (the tests track one file)
        (old,) = struct.unpack_from(">H", data, flags)
        struct.pack_into(">H", data, flags, (old & ~0x0FFF) | length)
    written = bytes(data) + hashlib.sha1(data).digest()
    index.write_bytes(written)
    return written


def _plan(repo: Path, line: str) -> str:
    """The built-in rules' decision on ``line`` in plan mode."""
    return decide_line(repo, line, "plan", builtin_rules())


def test_a_name_whose_length_field_says_less_is_read_as_git_reads_it(tmp_path: Path) -> None:
    repo = _repository(tmp_path, ".envQ")
    data = _rewrite(repo, b".envQ", b".envQ", length=3)
    assert _git(repo, "ls-files").split() == [".env"]  # git copies by the field
    assert parse_index(data) is None
    (repo / ".env").write_text("TOKEN=changed\n")
    assert "TOKEN=changed" in _git(repo, "diff")
    assert _plan(repo, "git diff") != "allow"


def test_names_git_would_never_write_are_unknown(tmp_path: Path) -> None:
    repo = _repository(tmp_path, "src/aa/secrets/db.txt")
    data = _rewrite(repo, b"src/aa/", b"src/../")
    assert _git(repo, "ls-files").split() == ["src/../secrets/db.txt"]
    assert parse_index(data) is None
    for name in (b"../out/token", b"a//b", b"./a", b"x/.GIT/hooks/pre-commit", b"/etc/x"):
        repo = _repository(tmp_path / name.hex(), "z" * len(name))
        assert parse_index(_rewrite(repo, b"z" * len(name), name)) is None, name


def test_a_split_index_is_unknown(tmp_path: Path) -> None:
    repo = _repository(tmp_path, ".env", "app.py")
    plain = parse_index((repo / ".git" / "index").read_bytes())
    assert plain is not None and sorted(plain.paths) == [".env", "app.py"]
    assert _plan(repo, "git grep TOKEN") != "allow"
    _git(repo, "update-index", "--split-index")
    assert ".env" in _git(repo, "ls-files").split()
    assert parse_index((repo / ".git" / "index").read_bytes()) is None
    assert _plan(repo, "git grep TOKEN") != "allow"


def test_plain_indexes_of_every_version_are_read(tmp_path: Path) -> None:
    repo = _repository(tmp_path, "a.py", "src/b.py", "src/c/d.txt")
    assert _plan(repo, "git grep TOKEN") == "allow"  # nothing restricted is tracked
    for version in ("2", "3", "4"):
        _git(repo, "update-index", f"--index-version={version}")
        found = parse_index((repo / ".git" / "index").read_bytes())
        assert found is not None and found.paths == _git(repo, "ls-files").split(), version


def test_garbage_and_cut_indexes_never_raise(tmp_path: Path) -> None:
    repo = _repository(tmp_path, "a.py", "src/b.py")
    data = (repo / ".git" / "index").read_bytes()
    rng = random.Random(7)
    for cut in range(len(data)):
        parse_index(data[:cut])
    for _ in range(500):
        mangled = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        parse_index(bytes(mangled))


def _rehash(data: bytes) -> bytes:
    body = data[:-_HASH]
    return body + hashlib.sha1(body).digest()


def test_offset_tables_must_point_where_kfd_read(tmp_path: Path) -> None:
    """git reading entries in threads takes them from the IEOT offsets, and the
    extensions from EOIE's: a table pointing elsewhere (at entries hidden in an
    extension kfd skips) is unknown; git's own tables are read."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    for number in range(64):
        (repo / f"f{number}.txt").write_text(f"{number}\n")
    _git(
        repo,
        "-c",
        "index.threads=4",
        "-c",
        "index.recordOffsetTable=true",
        "-c",
        "index.recordEndOfIndexEntries=true",
        "add",
        ".",
    )
    data = (repo / ".git" / "index").read_bytes()
    found = parse_index(data)
    assert found is not None and len(found.paths) == 64
    for signature, field in ((b"IEOT", 12), (b"EOIE", 8)):
        at = data.index(signature)
        moved = bytearray(data)
        (value,) = struct.unpack_from(">I", moved, at + field)
        struct.pack_into(">I", moved, at + field, value + 8)
        assert parse_index(_rehash(bytes(moved))) is None, signature


def test_a_submodule_checkout_git_enters_is_judged_with_its_configuration(
    tmp_path: Path,
) -> None:
    """A checkout the index lists as a gitlink, with its own .git directory and no
    .gitmodules: git status enters it and runs its fsmonitor (shown with real git)."""
    repo = tmp_path / "repo"
    sub = repo / "sub"
    sub.mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(sub, "init", "-q")
    (sub / "f").write_text("x\n")
    _git(sub, "add", "f")
    _git(sub, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i")
    _git(repo, "add", "sub")
    assert gitlink_names((repo / ".git" / "index").read_bytes()) == ["sub"]
    assert _plan(repo, "git status") == "allow"
    marker = tmp_path / "ran"
    with (sub / ".git" / "config").open("a") as config:
        config.write(f"[core]\n\tfsmonitor = touch {marker}; false\n")
    assert _plan(repo, "git status") != "allow"
    assert _plan(repo, "git diff") != "allow"
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=False)
    assert marker.exists()


def test_every_gitlink_is_found_however_many_entries(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    blob = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    commit = "1" * 40
    lines = "".join(f"100644 {blob}\tf{n:04}.txt\n" for n in range(2000))
    lines += "".join(f"160000 {commit}\tmods/m{n}\n" for n in range(5))
    subprocess.run(
        ["git", "-C", str(repo), "update-index", "--add", "--index-info"],
        input=lines,
        text=True,
        check=True,
    )
    for version in ("2", "3", "4"):
        _git(repo, "update-index", f"--index-version={version}")
        found = gitlink_names((repo / ".git" / "index").read_bytes())
        assert found == [f"mods/m{n}" for n in range(5)], version
    assert gitlink_names(b"DIRC\x00\x00\x00\x09") is None
