"""Two sessions in one workspace, both hostile, against real bubblewrap.

One command replaces a protected name (its parent renamed away and remade, with a
plant in it); a command of the other session holds the plant renamed away while
the first one's checks look, and brings it back before its own. The race is made
deterministic: each step is a process of one of the two confinements, run to its
end before the next check (`kfd.sandbox.expected`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kfd.sandbox import Confinement, confine
from kfd.testing.bubblewrap import needs_bubblewrap

pytestmark = needs_bubblewrap

PLANT = (
    "mv tools tools.old; mkdir -p tools/bin && "
    "printf '#!/bin/sh\\necho PLANTED\\n' > tools/bin/kfdtool && chmod +x tools/bin/kfdtool"
)


@pytest.fixture
def workspace(repo: Path, private_home: Path) -> Path:
    """A repository whose ``tools/bin`` holds the user's ``kfdtool`` (on the daemon's
    PATH, `environ`)."""
    (repo / "tools" / "bin").mkdir(parents=True)
    tool = repo / "tools" / "bin" / "kfdtool"
    tool.write_text("#!/bin/sh\necho mine\n")
    tool.chmod(0o755)
    return repo


def environ(workspace: Path) -> dict[str, str]:
    return dict(os.environ, PATH=f"{workspace / 'tools' / 'bin'}:{os.environ['PATH']}")


async def start(workspace: Path) -> Confinement:
    """A command's confinement: counted from here until its checks end (`finish`)."""
    return await confine(workspace, environ=environ(workspace))


async def sh(confinement: Confinement, workspace: Path, command: str) -> None:
    """One process of the command ``confinement`` is for, run to its end."""
    process = await asyncio.create_subprocess_exec(
        *confinement.prefix, "bash", "-c", command, cwd=workspace, env=confinement.env
    )
    assert await process.wait() == 0, command


@contextlib.asynccontextmanager
async def held_away(
    confinement: Confinement, workspace: Path, name: str = "tools", away: str = "tools.h"
) -> AsyncIterator[None]:
    """A process of the command ``confinement`` is for holds ``name`` renamed to ``away``
    while the block runs (another command's checks), and brings it back after."""
    command = f"mv {name} {away} && echo held && read _ && mv {away} {name}"
    process = await asyncio.create_subprocess_exec(
        *confinement.prefix,
        "bash",
        "-c",
        command,
        cwd=workspace,
        env=confinement.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    assert await process.stdout.readline() == b"held\n"
    try:
        yield
    finally:
        process.stdin.write(b"\n")
        await process.stdin.drain()
        assert await process.wait() == 0


def git_init(path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)


def host_runs(workspace: Path) -> str:
    """What the host's shell with the daemon's PATH runs as ``kfdtool``."""
    found = shutil.which("kfdtool", path=environ(workspace)["PATH"])
    if found is None:
        return ""
    return subprocess.run([found], capture_output=True, text=True, check=True).stdout.strip()


async def test_a_plant_held_away_from_one_sessions_checks_is_moved_aside_by_the_others(
    workspace: Path,
) -> None:
    """Session B starts after A planted, so its layout finds A's copy where the user's
    ``tools`` was; B holds it renamed away while A's checks look, brings it back,
    and B's own checks must not take it for what B found."""
    a = await start(workspace)
    await sh(a, workspace, PLANT)
    b = await start(workspace)  # gathered while A's command has not finished
    async with held_away(b, workspace):
        notes = await a.finish()
    notes += await b.finish()
    assert host_runs(workspace) != "PLANTED", notes
    assert any(f"kfd moved {workspace / 'tools'} to" in note for note in notes), notes
    assert (workspace / "tools.old" / "bin" / "kfdtool").read_text().endswith("mine\n")


async def test_a_plant_hidden_from_the_first_sessions_checks_by_the_planter(
    workspace: Path,
) -> None:
    """The other order: H starts first (its layout is the user's), then P, which plants
    and holds the plant away while H's checks look; H's next command, started while
    P's runs, holds it away while P's checks look, and brings it back."""
    h = await start(workspace)
    p = await start(workspace)
    await sh(p, workspace, PLANT)
    async with held_away(p, workspace):
        notes = await h.finish()
    h2 = await start(workspace)  # gathered while P's command has not finished
    async with held_away(h2, workspace):
        notes += await p.finish()
    notes += await h2.finish()
    assert host_runs(workspace) != "PLANTED", notes
    assert any(f"kfd moved {workspace / 'tools'} to" in note for note in notes), notes


async def test_a_directory_on_path_made_where_none_was_is_moved_aside_by_the_other_session(
    repo: Path, private_home: Path
) -> None:
    """No ``tools`` at first: the first command's layout sweeps ``tools/bin``; the other
    session's layout, gathered after it was made, finds it there and keeps it
    read-only, and holds it away from the first one's sweep."""
    a = await start(repo)
    await sh(a, repo, PLANT)
    b = await start(repo)
    async with held_away(b, repo):
        notes = await a.finish()
    notes += await b.finish()
    assert host_runs(repo) == "", notes
    assert any("nothing stood" in note for note in notes), notes


async def test_a_repository_remade_after_its_parent_was_held_away_is_removed(
    repo: Path, private_home: Path
) -> None:
    """``sub`` is a repository below the workspace: a copy made after ``sub`` was
    renamed away, held away from the first session's checks, is not the other's."""
    sub = repo / "sub"
    git_init(sub)
    a = await start(repo)
    await sh(a, repo, "mv sub sub.old && mkdir sub && git init -q sub")
    b = await start(repo)
    async with held_away(b, repo, "sub", "sub.h"):
        notes = await a.finish()
    notes += await b.finish()
    assert not (sub / ".git").exists(), notes
    assert (repo / "sub.old" / ".git").is_dir()


async def test_a_configuration_entry_made_in_a_home_in_the_workspace_held_away_is_moved_aside(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HOME=<workspace>/u``: a new dot-entry there is configuration the host reads.
    The other session's layout finds A's ``.gitconfig`` there (so would keep it), and
    holds ``u`` away while A's checks look."""
    workspace = private_home / "ws"
    home = workspace / "u"
    home.mkdir(parents=True)
    git_init(workspace)
    monkeypatch.setenv("HOME", str(home))
    a = await start(workspace)
    await sh(a, workspace, "printf '[core]\\n\\tfsmonitor = touch ran\\n' > u/.gitconfig")
    b = await start(workspace)
    async with held_away(b, workspace, "u", "held"):
        notes = await a.finish()
    notes += await b.finish()
    assert not (home / ".gitconfig").exists(), notes
    assert any("nothing stood" in note for note in notes), notes


async def test_what_the_user_puts_at_an_emptied_name_between_commands_is_theirs(
    workspace: Path,
) -> None:
    """A command renamed ``tools`` away; the user makes another while no command runs:
    the next command's layout records it, and moves nothing aside."""
    first = await start(workspace)
    await sh(first, workspace, "mv tools tools.old")
    assert await first.finish() == []
    (workspace / "tools" / "bin").mkdir(parents=True)
    (workspace / "tools.old" / "bin" / "kfdtool").rename(workspace / "tools/bin/kfdtool")
    second = await start(workspace)
    await sh(second, workspace, "true")
    assert await second.finish() == []
    assert host_runs(workspace) == "mine"


async def test_a_command_whose_checks_never_ran_is_checked_before_the_next_one(
    workspace: Path,
) -> None:
    """Its confinement dropped unfinished: the next command, finding the workspace
    quiet, first moves aside what differs from the record that command had."""
    planter = await start(workspace)
    await sh(planter, workspace, PLANT)
    del planter
    gc.collect()
    after = await start(workspace)
    notes = await after.finish()
    assert f"kfd moved {workspace / 'tools'} to {workspace / 'tools.kfd-unsafe'}" in notes[0]
    assert "whose checks never ran" in notes[0]
    assert host_runs(workspace) == ""


async def test_a_repository_another_sessions_layout_found_is_checked_as_new(
    workspace: Path, tmp_path: Path
) -> None:
    """A makes a repository whose configuration runs a program; B starts while A's
    command runs, so B's layout finds that repository. Whatever keeps it from A's
    checks (here it is moved out of the workspace while they look, which no sandboxed
    command can do: a stand-in for one that hid it), B's checks must take it for a new
    one, not the user's: the record made while no command ran has none."""
    a = await start(workspace)
    await sh(a, workspace, "git init -q sub && git -C sub config core.fsmonitor 'echo x'")
    b = await start(workspace)  # gathered while A's command has not finished
    (workspace / "sub").rename(tmp_path / "sub")
    notes = await a.finish()
    (tmp_path / "sub").rename(workspace / "sub")
    notes += await b.finish()
    config = workspace / "sub" / ".git" / "config"
    assert not (config.exists() and "fsmonitor" in config.read_text()), notes
