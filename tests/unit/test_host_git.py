"""kfd's own git calls on the host run nothing a repository names, against real git.

Each attack is first shown to work with plain ``git`` (so the test would
fail if the payload were broken), then kfd's calls (the session's
environment block, the triggers' ignore check and diff) must leave the
canary untouched while still answering correctly.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kfd import git
from kfd.agent.environment import git_summary
from kfd.triggers.files import diff_of, git_ignored

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True)


def _plain_git(repo: Path, *args: str) -> None:
    """Git as a user would run it, with the repository's configuration."""
    subprocess.run(["git", "-C", str(repo), *args], capture_output=True)


def _fake_git_dir(path: Path, payload: Path) -> None:
    """A bare repository whose config runs the payload."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    with open(path / "config", "a") as config:
        config.write(f"[core]\n\tfsmonitor = {payload}\n")


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary"


@pytest.fixture
def payload(tmp_path: Path, canary: Path) -> Path:
    """A program that leaves the canary (and the environment it saw) when run."""
    script = tmp_path / "payload.sh"
    script.write_text(f"#!/bin/sh\nenv >> {canary}\ncat\n")
    script.chmod(0o755)
    return script


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    _git(workspace, "init", "-q", "-b", "main")
    (workspace / "a.txt").write_text("one\n")
    (workspace / ".gitignore").write_text("ignored/\n")
    _git(workspace, "add", ".")
    _git(workspace, "commit", "-qm", "first")
    return workspace


def _arm(repo: Path, payload: Path) -> None:
    """Every configuration key that makes git run a program, pointed at the payload."""
    hooks = repo / "hooks-elsewhere"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-commit", "post-checkout"):
        (hooks / hook).write_text(f"#!/bin/sh\n{payload} </dev/null\n")
        (hooks / hook).chmod(0o755)
    included = repo / "included.cfg"
    included.write_text(f"[core]\n\tfsmonitor = {payload}\n")
    with open(repo / ".git" / "config", "a") as config:
        config.write(
            f"[core]\n\tfsmonitor = {payload}\n\thooksPath = {hooks}\n\tpager = {payload}\n"
            f"\tsshCommand = {payload}\n\teditor = {payload}\n\tgitProxy = {payload}\n"
            f"\talternateRefsCommand = {payload}\n"
            f"[diff]\n\texternal = {payload}\n"
            f'[diff "evil"]\n\ttextconv = {payload}\n\tcommand = {payload}\n'
            f'[filter "evil"]\n\tclean = {payload}\n\tsmudge = {payload}\n'
            f"\tprocess = {payload}\n\trequired = true\n"
            f'[merge "evil"]\n\tdriver = {payload}\n'
            f"[credential]\n\thelper = !{payload}\n[gpg]\n\tprogram = {payload}\n"
            f"[log]\n\tshowSignature = true\n[uploadpack]\n\tpackObjectsHook = {payload}\n"
            f"[include]\n\tpath = {included}\n"
            f'[includeIf "gitdir:/"]\n\tpath = {included}\n'
        )
    (repo / ".gitattributes").write_text("* filter=evil diff=evil merge=evil\n")
    # A changed mtime makes git hash the file again, through the clean filter.
    (repo / "a.txt").write_text("two\n")
    os.utime(repo / "a.txt", (1, 1))


def test_plain_git_runs_every_planted_program(repo: Path, payload: Path, canary: Path) -> None:
    _arm(repo, payload)
    _plain_git(repo, "status")
    _plain_git(repo, "diff", "HEAD")
    assert canary.exists(), "the payload must really fire for the tests below to mean anything"


async def test_the_environment_block_runs_nothing_the_repository_names(
    repo: Path, payload: Path, canary: Path
) -> None:
    _arm(repo, payload)
    (repo / "new.txt").write_text("x\n")
    summary = await git_summary(repo)
    assert summary == "branch main; 1 modified, 4 untracked"  # new.txt and the attack's files
    assert not canary.exists()


async def test_trigger_ignore_checks_and_diffs_run_nothing_the_repository_names(
    repo: Path, payload: Path, canary: Path
) -> None:
    _arm(repo, payload)
    assert await git_ignored(repo, ["ignored/x.py", "a.txt"]) == {"ignored/x.py"}
    diff = await diff_of(repo, ["a.txt"])
    assert "-one\n+two" in diff
    assert not canary.exists()


def _nest(repo: Path, payload: Path) -> None:
    """A repository inside the workspace, added as a gitlink, with a dirty file behind
    its own clean filter: what a sandboxed command may leave (no shadow covers its
    configuration)."""
    nested = repo / "vendor"
    nested.mkdir()
    _git(nested, "init", "-q")
    (nested / ".gitattributes").write_text("* filter=evil\n")
    (nested / "f").write_text("one\n")
    _git(nested, "add", ".")
    _git(nested, "commit", "-qm", "v")
    with open(nested / ".git" / "config", "a") as config:
        config.write(f'[filter "evil"]\n\tclean = {payload}\n\tprocess = {payload}\n')
    _git(repo, "add", "vendor")
    (repo / ".gitmodules").write_text('[submodule "vendor"]\n\tpath = vendor\n\tignore = none\n')
    (nested / "f").write_text("two\n")
    os.utime(nested / "f", (1, 1))


async def test_a_nested_repository_is_never_entered(
    repo: Path, payload: Path, canary: Path
) -> None:
    _nest(repo, payload)
    _plain_git(repo, "diff", "HEAD", "--", "vendor")
    assert canary.exists(), "plain git must run the nested repository's filter"
    canary.unlink()
    diff = await diff_of(repo, ["vendor"])
    assert diff == "--- vendor is not a regular file"  # named, never opened or entered
    assert await git_summary(repo) != ""
    assert not canary.exists()


async def test_host_git_runs_only_the_subcommands_it_knows(repo: Path) -> None:
    found = git.find(repo)
    assert isinstance(found, git.Repository)
    assert git.run.with_submodules_ignored(["--literal-pathspecs", "diff", "HEAD"]) == (
        "--literal-pathspecs",
        "diff",
        "--ignore-submodules=all",
        "HEAD",
    )
    with pytest.raises(ValueError, match="git submodule"):
        await git.run_git(found, repo, "submodule", "update")


async def test_a_planted_commondir_makes_kfd_refuse_the_repository(
    repo: Path, payload: Path, canary: Path
) -> None:
    # The attack of issue 12: .git/commondir pointing at a fake git directory.
    _fake_git_dir(repo / "fake", payload)
    (repo / ".git" / "commondir").write_text("../fake\n")
    _plain_git(repo, "status")
    assert canary.exists(), "plain git follows the planted commondir"
    canary.unlink()
    assert isinstance(git.find(repo), git.Refused)
    assert await git_summary(repo) == ""
    assert await git_ignored(repo, ["ignored/x"]) == set()
    assert not canary.exists()


@pytest.mark.parametrize("where", ["inside", "bare-inside"])
async def test_a_git_file_into_the_workspace_is_refused(
    tmp_path: Path, payload: Path, canary: Path, where: str
) -> None:
    workspace = tmp_path / "ws"
    fake = workspace / "fake"
    workspace.mkdir()
    _fake_git_dir(fake, payload)
    if where == "inside":
        (workspace / ".git").write_text("gitdir: fake\n")
    else:
        # Dressed up as a linked worktree, pointing back at itself: still inside.
        worktree = fake / "worktrees" / "ws"
        worktree.mkdir(parents=True)
        (worktree / "gitdir").write_text(f"{workspace / '.git'}\n")
        (worktree / "commondir").write_text("../..\n")
        (worktree / "HEAD").write_text("ref: refs/heads/main\n")
        (workspace / ".git").write_text(f"gitdir: {worktree}\n")
    found = git.find(workspace)
    assert isinstance(found, git.Refused), found
    assert await git_summary(workspace) == ""
    assert not canary.exists()


def test_a_symlinked_dot_git_is_refused(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / ".git").symlink_to(repo / ".git")
    found = git.find(other)
    assert isinstance(found, git.Refused)
    assert "symbolic link" in found.reason


async def test_a_linked_worktree_outside_the_workspace_is_used(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    _git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    (worktree / "b.txt").write_text("b\n")
    found = git.find(worktree)
    assert isinstance(found, git.Repository) and found.linked
    assert found.common_dir == (repo / ".git").resolve()
    assert await git_summary(worktree) == "branch feature; 1 untracked"


async def test_the_daemons_git_variables_and_a_planted_git_program_are_ignored(
    repo: Path, payload: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = repo / "fake"
    _fake_git_dir(fake, payload)
    (repo / "git").write_text(f"#!/bin/sh\n{payload} </dev/null\n")
    (repo / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f".:{repo}:{os.environ['PATH']}")
    monkeypatch.setenv("GIT_DIR", str(fake))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.fsmonitor'='{payload}'")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(payload))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(payload))
    monkeypatch.setenv("KFD_TEST_API_KEY", "sk-canary-0123456789abcdef")
    (repo / "a.txt").write_text("changed\n")
    assert await git_summary(repo) == "branch main; 1 modified, 2 untracked"  # fake/, git
    assert "-one\n+changed" in await diff_of(repo, ["a.txt"])
    assert not canary.exists()


def test_the_environment_of_host_git_is_built_from_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFD_TEST_API_KEY", "sk-canary")
    monkeypatch.setenv("GIT_SSH_COMMAND", "evil")
    monkeypatch.setenv("PATH", f"relative/bin:{repo}/bin:/usr/bin")
    found = git.find(repo)
    assert isinstance(found, git.Repository)
    env = git.run.environment(found, Path("/shadow"), repo)
    assert env["PATH"] == "/usr/bin"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_DIR"] == "/shadow"
    assert set(env) - {"HOME", "XDG_CONFIG_HOME"} == {
        "PATH",
        "LC_ALL",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_ATTR_NOSYSTEM",
        "GIT_OPTIONAL_LOCKS",
        "GIT_TERMINAL_PROMPT",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_LITERAL_PATHSPECS",
    }


def test_only_data_keys_are_copied_from_the_repository_config() -> None:
    listing = (
        b"core.repositoryformatversion\n0\0core.fsmonitor\n/evil\0"
        b"branch.main.remote\norigin\0branch.main.merge\nrefs/heads/main\0"
        b"remote.origin.fetch\n+refs/heads/*:refs/remotes/origin/*\0filter.x.clean\n/evil\0"
        b"remote.origin.url\next::sh -c evil\0include.path\n/evil.cfg\0"
    )
    kept = git.run.wanted_keys(listing)
    assert dict(kept) == {
        "core.repositoryformatversion": "0",
        "branch.main.remote": "origin",
        "branch.main.merge": "refs/heads/main",
        "remote.origin.fetch": "+refs/heads/*:refs/remotes/origin/*",
    }
    rendered = git.run.render_config([('branch.we"ird.name.merge', 'a"b\\c')])
    assert rendered == '[branch "we\\"ird.name"]\n\tmerge = "a\\"b\\\\c"\n'


async def test_upstream_tracking_still_shows(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / "c.txt").write_text("c\n")
    _git(clone, "add", "c.txt")
    _git(clone, "commit", "-qm", "c")
    assert await git_summary(clone) == "branch main (ahead 1); clean"


async def test_a_trigger_shows_no_file_a_planted_link_points_to(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = CANARY-TRIGGER-LINK\n")
    (repo / "notes.py").symlink_to(secret)
    (repo / "new.py").write_text("print('new')\n")
    diff = await diff_of(repo, ["notes.py", "new.py"])
    assert "CANARY" not in diff
    assert "notes.py is a symbolic link (not shown)" in diff
    assert "print('new')" in diff
