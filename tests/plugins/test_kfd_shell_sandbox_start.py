"""A sandbox that fails while bubblewrap sets it up is told apart from a command that
fails, and the command is started once more (real bubblewrap, real processes).

The race it stands for: a directory the layout covers (one holding a socket)
is removed between the look and bubblewrap's start; bubblewrap then cannot
make the mount point in the read-only file system and exits before the
command. Here the stale layout is a prefix covering a directory that does not
exist.
"""

from __future__ import annotations

import dataclasses
import select
from pathlib import Path
from typing import Any

import pytest

import kfd_shell.bash as bash_module
from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.sandbox import Confinement, confine, pidns
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd_shell import BashTool
from kfd_shell.process import run_command

pytestmark = needs_bubblewrap

VANISHED = "/usr/kfd-vanished-directory"


def _stale(confinement: Confinement) -> Confinement:
    prefix = [*confinement.prefix[:-1], "--tmpfs", VANISHED, "--"]
    return dataclasses.replace(confinement, prefix=prefix)


async def test_a_sandbox_failing_as_it_starts_is_not_a_failing_command(repo: Path) -> None:
    confinement = await confine(repo)
    said: list[str] = []

    async def run(command: str, prefix: list[str]) -> bool:
        outcome = await run_command(command, repo, said.append, prefix=prefix, env=confinement.env)
        return outcome.started

    assert not await run("echo ran > ran.txt", _stale(confinement).prefix)
    assert not (repo / "ran.txt").exists()
    assert "Can't mkdir" in "".join(said)
    # A command cannot pass for one that never started, whatever it prints.
    fake = 'echo "bwrap: Can\'t mkdir /x: Read-only file system" >&2; exit 1'
    assert await run(fake, confinement.prefix)
    assert await run("exit 127", confinement.prefix)
    assert await run("exit 3", [])  # unconfined: started, or an OSError


async def test_the_bash_tool_starts_a_command_again_once_its_sandbox_failed_to_start(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Confinement] = []
    real = bash_module.confine

    async def racing(*args: Any, **kwargs: Any) -> Confinement:
        confinement = await real(*args, **kwargs)
        made.append(confinement)
        return _stale(confinement) if len(made) == 1 else confinement

    monkeypatch.setattr(bash_module, "confine", racing)
    ctx = CallContext(session_id="s", workspace=repo, sandbox=Sandbox())
    result = await BashTool().run(
        BashTool.Args(command="echo once >> count.txt; cat count.txt"), ctx
    )
    assert (repo / "count.txt").read_text() == "once\n"  # ran, and once only
    assert len(made) == 2
    assert "started again" in result.output
    assert "Can't mkdir" not in result.output  # bubblewrap's complaint is not the output
    assert "exit code 0" in result.output


async def test_a_sandbox_that_fails_before_it_takes_the_go_is_not_a_failing_command(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a fresh-clone run: bubblewrap said its init's PID, then failed setting up
    the sandbox, and its init was gone before kfd gave the go: the write of the go
    raised ``BrokenPipeError`` out of the command. Here kfd gives the go only once the
    init is gone, every time."""
    real = pidns._open_child

    def late(pid: int, parent: int) -> int | None:
        handle = real(pid, parent)
        if handle is not None:
            select.select([handle], [], [], 10)  # until the init exited
        return handle

    monkeypatch.setattr(pidns, "_open_child", late)
    confinement = await confine(repo)
    said: list[str] = []
    outcome = await run_command(
        "echo ran > ran.txt",
        repo,
        said.append,
        prefix=_stale(confinement).prefix,
        env=confinement.env,
    )
    assert not outcome.started
    assert not (repo / "ran.txt").exists()
