"""Ways a command once made the host run a program of its own: each stays closed.

Every test runs a real sandboxed command, then what the host runs after it (its
``git status``, kfd's own lookup of a program by name, the bubblewrap probe),
and checks that the canary the command planted never ran.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfd import api
from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.sandbox import probe
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd_shell import BashTool

probing = importlib.import_module("kfd.sandbox.probe")  # the module: its name is the function's

pytestmark = [
    pytest.mark.usefixtures("entry"),
    needs_bubblewrap,
]

DEPTH = 1100
"""Deeper than Python's recursion limit lets `shutil.rmtree` go on 3.11."""


@pytest.fixture
def deep(repo: Path) -> Iterator[Path]:
    """``repo``, whatever deep tree a test leaves in it removed afterwards (pytest's own
    clean-up recurses too: it would fail on it, in a later test)."""
    yield repo
    # rm goes through any depth (and is no code under test).
    subprocess.run(["rm", "-rf", str(repo / ".venv"), str(repo / "AGENTS.md")], check=False)


async def run(workspace: Path, command: str) -> str:
    context = CallContext(session_id="s", workspace=workspace, sandbox=Sandbox(enabled=True))
    result = await BashTool().run(BashTool.Args(command=command), context)
    return result.output


def _commit(workspace: Path) -> None:
    (workspace / "README").write_text("x\n")
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "-C", str(workspace), "add", "README"], check=True)
    subprocess.run(["git", "-C", str(workspace), *identity, "commit", "-qm", "a"], check=True)


def _git_init(workspace: Path) -> None:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)


def _host_git_status(workspace: Path) -> None:
    subprocess.run(["git", "status", "--short"], cwd=workspace, capture_output=True)


def _deep_tree(path: str, depth: int = DEPTH) -> str:
    """A python3 one-liner (for a command) making ``path`` a chain ``depth`` deep."""
    return (
        "python3 -c 'import os\n"
        f'os.makedirs("{path}", exist_ok=True); fd = os.open("{path}", os.O_RDONLY)\n'
        f"for i in range({depth}):\n"
        '    os.mkdir("a", dir_fd=fd); n = os.open("a", os.O_RDONLY, dir_fd=fd)\n'
        "    os.close(fd); fd = n\n'"
    )


def _planted(name: str, canary: Path) -> str:
    """Shell lines planting an executable ``name`` that writes ``canary``, then runs
    the real bubblewrap (as a trojan would)."""
    script = f'#!/bin/sh\\ntouch {canary}\\nexec /usr/bin/bwrap "$@"\\n'
    return f"printf '{script}' > {name} && chmod +x {name}"


async def test_a_tree_too_deep_to_recurse_through_is_still_swept_from_path(
    private_home: Path, deep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory on PATH that did not exist yet, left holding a chain deeper than
    Python's recursion limit and a planted ``bwrap``: removed all the same."""
    canary = private_home / "ran"
    monkeypatch.setenv("PATH", f"{deep / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    output = await run(
        deep, f"{_deep_tree('.venv/bin/d')} && {_planted('.venv/bin/bwrap', canary)} && echo ok"
    )
    assert "ok" in output, output
    assert not (deep / ".venv" / "bin").exists(), output
    assert f"kfd removed {deep / '.venv' / 'bin'}" in output
    probing._working.clear()
    assert await probe("bwrap", network=False) is None
    assert not canary.exists()


async def test_a_step_that_cannot_finish_leaves_the_git_checks_to_run(
    private_home: Path, deep: Path
) -> None:
    """An ``AGENTS.md`` left as a very deep tree, and a new nested repository that sets
    ``core.fsmonitor`` listed in the index: its configuration is still moved aside."""
    canary = private_home / "ran"
    _commit(deep)
    output = await run(
        deep,
        "git init -q sub && git -C sub -c user.name=t -c user.email=t@t commit -q "
        f"--allow-empty -m s && git -C sub config core.fsmonitor 'touch {canary}; echo' && "
        "git update-index --add --cacheinfo 160000,$(git -C sub rev-parse HEAD),sub && "
        f"{_deep_tree('AGENTS.md')} && echo ok",
    )
    assert "ok" in output, output
    assert not (deep / "AGENTS.md").exists(), output
    _host_git_status(deep)
    assert not canary.exists(), output


async def test_a_git_directory_in_the_cache_home_stays_harmless_after_it_is_new(
    private_home: Path, repo: Path
) -> None:
    """A ``.git`` file leading into the project's cache home, harmless in one command,
    armed in the next: the host's ``git status`` runs nothing."""
    canary = private_home / "ran"
    _commit(repo)
    first = await run(
        repo,
        'E="$XDG_CACHE_HOME/evil.git" && git init -q "$E.tmp" && mv "$E.tmp/.git" "$E" && '
        'rmdir "$E.tmp" && mkdir sub && echo "gitdir: $E" > sub/.git && '
        "git -C sub -c user.name=t -c user.email=t@t commit -q --allow-empty -m s && "
        "git update-index --add --cacheinfo 160000,$(git -C sub rev-parse HEAD),sub && echo ok",
    )
    assert "ok" in first, first
    second = await run(
        repo,
        f"git config -f \"$XDG_CACHE_HOME/evil.git/config\" core.fsmonitor 'touch {canary}; echo'"
        '; mv "$XDG_CACHE_HOME/evil.git" "$XDG_CACHE_HOME/moved.git" && '
        'cp -r "$XDG_CACHE_HOME/moved.git" "$XDG_CACHE_HOME/evil.git" && '
        f"git config -f \"$XDG_CACHE_HOME/evil.git/config\" core.fsmonitor 'touch {canary}; echo'"
        "; echo done",
    )
    assert "done" in second, second
    _host_git_status(repo)
    assert not canary.exists(), second


async def test_a_gitdir_file_ending_in_a_space_is_read_as_git_reads_it(
    private_home: Path, repo: Path
) -> None:
    """``gitdir: <path> ``: git keeps the space; so does kfd, and checks what it names."""
    canary = private_home / "ran"
    _commit(repo)
    output = await run(
        repo,
        'E="$XDG_CACHE_HOME/evil.git " && git init -q "$XDG_CACHE_HOME/t" && '
        'mv "$XDG_CACHE_HOME/t/.git" "$E" && mkdir sub && '
        "printf 'gitdir: %s\\n' \"$E\" > sub/.git && "
        "git -C sub -c user.name=t -c user.email=t@t commit -q --allow-empty -m s && "
        f"git config -f \"$E/config\" core.fsmonitor 'touch {canary}; echo' && "
        "git update-index --add --cacheinfo 160000,$(git -C sub rev-parse HEAD),sub && echo ok",
    )
    assert "ok" in output, output
    _host_git_status(repo)
    assert not canary.exists(), output


async def test_a_gitdir_file_kfd_cannot_resolve_is_moved_aside(
    private_home: Path, repo: Path
) -> None:
    output = await run(repo, "mkdir sub && printf 'gitdir: /nowhere/x.git' > sub/.git && echo ok")
    assert "ok" in output, output
    assert not (repo / "sub" / ".git").exists(), output


async def test_a_program_planted_at_the_top_of_a_workspace_on_path_never_runs_on_the_host(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace is ``~/bin``, first on PATH: a new name there that would shadow a
    program further on PATH is removed, and kfd's own lookups never look there."""
    canary = private_home / "ran"
    workspace = private_home / "bin"
    workspace.mkdir()
    _git_init(workspace)
    monkeypatch.setenv("PATH", f"{workspace}{os.pathsep}{os.environ['PATH']}")
    output = await run(
        workspace, f"{_planted('bwrap', canary)} && {_planted('mine', canary)} && echo ok"
    )
    assert "ok" in output, output
    assert not (workspace / "bwrap").exists(), output
    assert f"kfd removed {workspace / 'bwrap'}" in output
    assert (workspace / "mine").exists()  # the user's own script names stay theirs
    probing._working.clear()
    assert await probe("bwrap", network=False) is None
    assert not canary.exists()


async def test_kfds_own_lookups_skip_the_workspace_on_path(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = private_home / "ran"
    workspace = private_home / "tools"
    workspace.mkdir()
    _git_init(workspace)
    monkeypatch.setenv("PATH", f"{workspace}{os.pathsep}{os.environ['PATH']}")
    await run(workspace, "echo ok")
    # Written as the command could have (an existing name it may rewrite).
    (workspace / "gh").write_text(f"#!/bin/sh\ntouch {canary}\n")
    (workspace / "gh").chmod(0o755)
    assert api.host_which("gh") != str(workspace / "gh")
