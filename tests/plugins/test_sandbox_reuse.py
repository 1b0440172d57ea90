"""A command's sandbox layout is reused for the next only while nothing it was
gathered from changed: whatever appears between two commands is covered in the
second, against real bubblewrap.

Each test first makes its workspace's layout remembered (trusting stamps however
recent: a test cannot wait for them to age) and checks that it is, so the
second command goes through the reuse path, then changes something and shows
the second command cannot reach it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.sandbox import layout, reuse
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd_shell import BashTool

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"

pytestmark = needs_bubblewrap


@pytest.fixture
def home(private_home: Path) -> Path:
    return private_home


def context(repo: Path, **sandbox: Any) -> CallContext:
    return CallContext(session_id="s", workspace=repo, sandbox=Sandbox(**sandbox))


async def run(ctx: CallContext, command: str) -> str:
    result = await BashTool().run(BashTool.Args(command=command), ctx)
    return result.output


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stamps are trusted however recent (a test cannot wait seconds for them to age)."""
    monkeypatch.setattr(layout, "RACY_NS", 0)


async def _remembered(ctx: CallContext) -> None:
    """Run a command whose layout the next command reuses."""
    await run(ctx, "true")  # bubblewrap's stand-ins (an empty .kfd) appear once
    await run(ctx, "true")
    assert reuse.remembers(ctx.workspace)


async def test_a_dotenv_written_by_one_command_is_hidden_in_the_next(
    home: Path, repo: Path, trusting: None
) -> None:
    (repo / "config").mkdir()
    hidden = (str(repo / ".env"), str(repo / "config" / ".env"))
    ctx = context(repo, hide=hidden)
    await _remembered(ctx)
    await run(ctx, "echo CANARY-ENV-ROOT > .env; echo CANARY-ENV-SUB > config/.env")
    assert "CANARY-ENV-ROOT" in (repo / ".env").read_text()  # it was written
    output = await run(ctx, "cat .env config/.env; echo done")
    assert "done" in output
    assert "CANARY" not in output


async def test_a_credential_store_created_between_commands_is_hidden(
    home: Path, repo: Path, trusting: None
) -> None:
    ctx = context(repo)
    await _remembered(ctx)
    # In a directory the layout knew, one it did not (under one it knew), and one
    # whose parents did not exist either.
    stores = {
        ".pgpass": "CANARY-PGPASS-1a1a",
        ".config/gh/hosts.yml": "CANARY-GH-2b2b",
        ".local/share/keyrings/login.keyring": "CANARY-KEYRING-3c3c",
    }
    for name, canary in stores.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(canary + "\n")
    output = await run(ctx, f"cat {' '.join('~/' + name for name in stores)}; echo done")
    assert "done" in output
    assert "CANARY" not in output


async def test_a_git_directory_entry_added_between_commands_is_read_only(
    home: Path, repo: Path, trusting: None
) -> None:
    ctx = context(repo)
    await _remembered(ctx)
    (repo / ".git" / "fsmonitor-settings").write_text("kept\n")
    await run(ctx, "echo planted > .git/fsmonitor-settings")
    assert (repo / ".git" / "fsmonitor-settings").read_text() == "kept\n"


async def test_a_directory_on_path_installed_between_commands_is_read_only_and_kept(
    home: Path, repo: Path, trusting: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing, it is removed after each command; made on the host since (a parent that
    existed, so the workspace's own stamp does not move), it is the user's."""
    (repo / "tools").mkdir()
    monkeypatch.setenv("PATH", f"{repo / 'tools' / 'bin'}:{os.environ['PATH']}")
    ctx = context(repo, enabled=True)
    await _remembered(ctx)
    (repo / "tools" / "bin").mkdir()
    (repo / "tools" / "bin" / "tool").write_text("kept\n")
    output = await run(ctx, "echo planted > tools/bin/git; echo tried")
    assert "tried" in output and "Read-only file system" in output, output
    assert (repo / "tools" / "bin" / "tool").read_text() == "kept\n"
    assert not (repo / "tools" / "bin" / "git").exists()


async def test_a_link_on_path_repointed_between_commands_is_the_users_not_moved_aside(
    home: Path, repo: Path, trusting: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``sub/.venv`` (on PATH through ``sub/.venv/bin``) re-pointed on the host: no
    stamp sees it, but the remembered layout recorded the old target, so it is not
    reused (kfd would take the user's link for the command's); one the next command
    replaces is still moved aside."""
    for name in ("a", "b"):
        (tmp_path / name / "bin").mkdir(parents=True)
    (repo / "sub").mkdir()
    (repo / "sub" / ".venv").symlink_to(tmp_path / "a")
    monkeypatch.setenv("PATH", f"{repo / 'sub' / '.venv' / 'bin'}:{os.environ['PATH']}")
    ctx = context(repo, enabled=True)
    await _remembered(ctx)
    (repo / "sub" / ".venv").unlink()
    (repo / "sub" / ".venv").symlink_to(tmp_path / "b")
    output = await run(ctx, "echo fine")
    assert "fine" in output and "kfd moved" not in output, output
    assert os.readlink(repo / "sub" / ".venv") == str(tmp_path / "b")
    output = await run(ctx, "rm sub/.venv && mkdir -p sub/.venv/bin && echo made")
    assert f"kfd moved {repo / 'sub' / '.venv'} to" in output, output


async def test_a_socket_bound_between_commands_is_unreachable(
    home: Path, repo: Path, trusting: None
) -> None:
    # In a directory that exists already and that no stamp watches: only the
    # listing of bound sockets tells.
    directory = Path(tempfile.mkdtemp(prefix="kfd-sockets-", dir="/var/tmp"))
    ctx = context(repo)
    await _remembered(ctx)
    server = socket.socket(socket.AF_UNIX)
    path = directory / "agent.sock"
    server.bind(str(path))
    server.listen()
    connect = (
        f'{SYSTEM_PYTHON} -c "import socket,sys; s = socket.socket(socket.AF_UNIX); '
        f"s.connect(sys.argv[1]); print('connected')\" {path}"
    )
    try:
        assert "connected" in await run(context(repo, enabled=False), connect)
        assert "connected" not in await run(ctx, connect)
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_glob_over_directories_is_looked_at_for_every_command(
    home: Path, repo: Path, trusting: None
) -> None:
    (home / "projects").mkdir()
    ctx = context(repo, hide=(str(home / "projects" / "*" / ".env"),))
    await run(ctx, "true")
    await run(ctx, "true")
    # No mtime watches every directory a glob may match in: nothing is remembered.
    assert not reuse.remembers(repo)
    (home / "projects" / "shop").mkdir()
    (home / "projects" / "shop" / ".env").write_text("CANARY-GLOB-4d4d\n")
    output = await run(ctx, f"cat {home}/projects/shop/.env; echo done")
    assert "done" in output
    assert "CANARY" not in output


async def test_an_unchanged_workspace_reuses_its_layout_and_a_recent_change_is_not_trusted(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout, "RACY_NS", 0)
    # The first gathering creates the cache home, which its own stamps saw missing.
    await asyncio.to_thread(reuse.gather, repo, writable=True)
    first = await asyncio.to_thread(reuse.gather, repo, writable=True)
    second = await asyncio.to_thread(reuse.gather, repo, writable=True)
    assert second is first
    assert reuse.remembers(repo)
    monkeypatch.undo()  # from here on, what changed within two seconds is not trusted
    reuse.forget()
    (repo / "notes.txt").write_text("x")
    third = await asyncio.to_thread(reuse.gather, repo, writable=True)
    assert third.workspace == second.workspace
    assert not reuse.remembers(repo)
    assert await asyncio.to_thread(reuse.gather, repo, writable=True) is not third


def _git_init(*paths: Path) -> None:
    for path in paths:
        subprocess.run(["git", "init", "-q", str(path)], check=True)


async def test_a_repository_that_appears_between_commands_is_protected_in_the_next(
    home: Path, repo: Path, trusting: None
) -> None:
    """One cloned by a command (the command's) or by the user in an existing directory,
    one in a new directory, one moved in: the next command finds each protected."""
    (repo / "deep" / "er").mkdir(parents=True)
    ctx = context(repo)
    await _remembered(ctx)
    await run(ctx, "git init -q cloned")
    _git_init(repo / "deep" / "er" / "mine", home / "outside", repo / "fresh" / "dir" / "new")
    (home / "outside").rename(repo / "deep" / "moved")
    names = ("cloned", "deep/er/mine", "fresh/dir/new", "deep/moved")
    output = await run(ctx, "; ".join(f"echo '[core]' >> {name}/.git/config" for name in names))
    assert output.count("Read-only file system") == len(names), output
