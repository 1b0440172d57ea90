"""A hooks directory named by ``core.hooksPath`` inside the workspace (husky's
``.husky``) is git's hooks as much as ``.git/hooks``: the host's ``git commit``
runs what is written there, so writing there always asks (decided through the
gate, with a real repository, store and rule book)."""

from __future__ import annotations

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
    for mode in ("accept-edits", "auto"):
        hook = {"command": "echo 'id > /tmp/x' >> .husky/pre-commit"}
        assert await _decide(tmp_path, repo, "bash", hook, mode) == "ask", mode
        edit = {"path": ".husky/pre-commit", "content": "x"}
        assert await _decide(tmp_path, repo, "write", edit, mode) == "ask", mode
        other = {"command": "echo x >> src/notes.txt"}
        assert await _decide(tmp_path, repo, "bash", other, mode) == "allow", mode


def test_husky_nine_keeps_its_hooks_beside_the_directory_git_runs(tmp_path: Path) -> None:
    repo = _repository(tmp_path, ".husky/_")
    top = str(repo.resolve())
    assert hooks_directories(top, str(tmp_path)) == [f"{top}/.husky/_", f"{top}/.husky"]


def test_a_hooks_directory_outside_the_work_tree_is_not_ours(tmp_path: Path) -> None:
    repo = _repository(tmp_path, "../elsewhere")
    assert hooks_directories(str(repo.resolve()), str(tmp_path)) == []
