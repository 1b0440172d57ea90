"""A hooks directory named by ``core.hooksPath`` inside the workspace (husky's
``.husky``) is git's hooks as much as ``.git/hooks``: the host's ``git commit``
runs what is written there, so writing there always asks (decided through the
gate, with a real repository, store and rule book)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kfd.api import PathAccess, PolicyRequest
from kfd.config import PermissionsConfig
from kfd.policy.engine import decide_facts
from kfd.policy.gate import gather
from kfd.policy.gitconfig import hooks_directories
from kfd.policy.rulebook import RuleBook
from kfd.store.db import Store
from kfd.store.rules import RuleStore
from kfd.store.trust import TrustStore


def _repository(root: Path, hooks_path: str = "") -> Path:
    repo = root / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    if hooks_path:
        subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", hooks_path], check=True)
    (repo / "src").mkdir()
    return repo


async def _decide(
    tmp_path: Path, repo: Path, tool: str, arguments: dict[str, object], mode: str
) -> str:
    store = await Store.open(tmp_path / "kfd.db")
    try:
        book = RuleBook(PermissionsConfig(), RuleStore(store), TrustStore(store))
        request = PolicyRequest(
            session_id="s",
            tool=tool,
            arguments=arguments,
            read_only=False,
            edits_files=tool != "bash",
            workspace=str(repo),
            mode=mode,
        )
        accesses = [PathAccess(str(arguments["path"]), True)] if "path" in arguments else []
        gathered = await gather(book, request, accesses, "", False)
        return decide_facts(gathered.facts).decision
    finally:
        await store.close()


@pytest.mark.parametrize("where", ["repository", "user"])
async def test_writing_the_hooks_directory_asks_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    repo = _repository(tmp_path, ".husky" if where == "repository" else "")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    if where == "user":
        (home / ".gitconfig").write_text("[core]\n\thooksPath = .husky\n")
    (repo / ".husky").mkdir()
    (repo / ".husky" / "pre-commit").write_text("#!/bin/sh\nnpm test\n")
    assert hooks_directories(str(repo.resolve()), str(home)) == [str((repo / ".husky").resolve())]
    await _guarded(
        tmp_path, repo, "echo 'id > /tmp/x' >> .husky/pre-commit", ".husky/pre-commit", "src"
    )


async def _guarded(tmp_path: Path, repo: Path, hook: str, edited: str, other: str) -> None:
    """Writing a hook by a command (``hook``) and by the write tool (``edited``) asks in
    every mode that otherwise allows both; a file in ``other`` is written unasked."""
    for mode in ("accept-edits", "auto"):
        command = {"command": hook}
        assert await _decide(tmp_path, repo, "bash", command, mode) == "ask", mode
        edit = {"path": edited, "content": "x"}
        assert await _decide(tmp_path, repo, "write", edit, mode) == "ask", mode
        plain = {"command": f"echo x >> {other}/notes.txt"}
        assert await _decide(tmp_path, repo, "bash", plain, mode) == "allow", mode


def test_husky_nine_keeps_its_hooks_beside_the_directory_git_runs(tmp_path: Path) -> None:
    repo = _repository(tmp_path, ".husky/_")
    top = str(repo.resolve())
    assert hooks_directories(top, str(tmp_path)) == [f"{top}/.husky/_", f"{top}/.husky"]


def test_a_hooks_directory_outside_the_work_tree_is_not_ours(tmp_path: Path) -> None:
    repo = _repository(tmp_path, "../elsewhere")
    assert hooks_directories(str(repo.resolve()), str(tmp_path)) == []


async def test_a_hooks_path_naming_the_top_guards_the_hook_names_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``core.hooksPath = .``: git runs ``./pre-commit`` at the next commit; the other
    files of the top are not hooks."""
    repo = _repository(tmp_path, ".")
    monkeypatch.setenv("HOME", str(tmp_path))
    top = str(repo.resolve())
    assert f"{top}/pre-commit" in hooks_directories(top, str(tmp_path))
    assert top not in hooks_directories(top, str(tmp_path))
    await _guarded(tmp_path, repo, "printf '#!/bin/sh\\nid\\n' > pre-commit", "post-checkout", ".")


@pytest.mark.parametrize("value", ["~", "~/", "~root/../{home}"])
def test_a_hooks_path_is_expanded_as_git_expands_it(tmp_path: Path, value: str) -> None:
    """``~`` alone and ``~user/`` are homes to git as ``~/`` is (git's
    ``interpolate_path``): a home workspace's own hooks directory."""
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["git", "init", "-q", str(home)], check=True)
    relative = os.path.relpath(home, os.path.expanduser("~root"))
    subprocess.run(
        ["git", "-C", str(home), "config", "core.hooksPath", value.format(home=relative)],
        check=True,
    )
    top = str(home.resolve())
    found = subprocess.run(
        ["git", "-C", top, "rev-parse", "--git-path", "hooks"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": top},
        check=True,
    ).stdout.strip()
    assert os.path.realpath(os.path.join(top, found)) == top  # what git itself takes
    assert f"{top}/pre-commit" in hooks_directories(top, top)


def test_a_hooks_path_of_an_unknown_user_names_nothing(tmp_path: Path) -> None:
    repo = _repository(tmp_path, "~no-such-user-kfd/hooks")
    assert hooks_directories(str(repo.resolve()), str(tmp_path)) == []
