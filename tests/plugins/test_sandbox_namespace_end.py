"""A program in a bubblewrap of its own is over only once its PID namespace is empty
(`kfd.sandbox.pidns`), and the checks after it (`Confinement.finish`) run only then
(real bubblewrap, real processes).

bubblewrap's outer process exits as soon as its init says the program's first
process ended; the program's background processes die only once that init is
gone, milliseconds later. A loop recreating what the checks remove (an
instruction file kfd would read into every later session) could write it again
after they ran. Each test runs many rounds: the old race lost only some.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.hooks.run import Launch, run_hook
from kfd.sandbox import confine, pod
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd.testing.processes import processes_running
from kfd_shell import BashTool
from kfd_shell.process import run_command

pytestmark = needs_bubblewrap

ROUNDS = 16


WRITER = "while :; do echo $((n += 1)) > AGENTS.md; done"
"""Keeps writing ``AGENTS.md`` (a counter in it)."""


def mark(n: int) -> str:
    """A name for test ``n``'s writer, its own in this worker (the two sandboxes of a
    parametrised test may run at once on two workers, each seeing the other's)."""
    return f"kfd-planter-{n}-{os.getpid()}"


def nap(n: int) -> str:
    """How long test ``n``'s last process sleeps: its name, as `mark`'s."""
    return f"300.{os.getpid()}{n}"


def planter(marker: str, *, escape: str = "") -> str:
    """A command leaving ``WRITER`` behind once it writes, named ``marker`` (in its
    command line) to be found from the host; ``escape`` (``setsid``) runs it out of
    the command's process group."""
    writer = f"{escape} bash -c '{WRITER}' {marker} >/dev/null 2>&1 </dev/null &"
    return f"{writer} until [ -s AGENTS.md ]; do sleep 0.005; done; echo planted"


def context(repo: Path, session: str = "s") -> CallContext:
    return CallContext(session_id=session, workspace=repo, sandbox=Sandbox())


async def bash(ctx: CallContext, command: str, **args: Any) -> str:
    result = await BashTool().run(BashTool.Args(command=command, **args), ctx)
    return result.output


def assert_over(repo: Path, marker: str, output: str) -> None:
    """Nothing of the command lives on, and what the checks removed stayed removed."""
    assert processes_running(marker) == [], output
    assert not (repo / "AGENTS.md").exists(), output


async def test_run_command_returns_once_every_process_of_the_sandbox_is_gone(
    repo: Path,
) -> None:
    confinement = await confine(repo)
    for escape in ("", "setsid") * (ROUNDS // 2):
        said: list[str] = []
        outcome = await run_command(
            planter(mark(4401), escape=escape),
            repo,
            said.append,
            prefix=confinement.prefix,
            env=confinement.env,
        )
        assert (outcome.returncode, outcome.started) == (0, True), said
        assert processes_running(mark(4401)) == [], said
        await confinement.finish()  # removes AGENTS.md: nothing writes it again
        assert not (repo / "AGENTS.md").exists()


async def test_a_command_is_checked_only_once_all_of_it_is_gone(repo: Path, entry: str) -> None:
    ctx = context(repo)
    for _ in range(ROUNDS):
        output = await bash(ctx, planter(mark(4402)))
        assert "planted" in output
        assert_over(repo, mark(4402), output)


async def test_a_command_beside_a_busy_pod_is_checked_only_once_all_of_it_is_gone(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[bool] = []
    held = asyncio.Event()
    enter = pod.enter

    async def counted(*args: Any, **kwargs: Any) -> pod.PodProcess | None:
        process = await enter(*args, **kwargs)
        offered.append(process is not None)
        held.set()
        return process

    monkeypatch.setattr(pod.reuse, "remembered", lambda _layout: True)
    monkeypatch.setattr(pod, "enter", counted)
    pod.close()
    ctx = context(repo)
    try:
        # The first call holds the session's pod until the test lets it go.
        holder = asyncio.ensure_future(
            bash(ctx, "while [ ! -e release ]; do sleep 0.01; done; echo released")
        )
        await asyncio.wait_for(held.wait(), 30.0)
        for _ in range(ROUNDS):
            output = await bash(ctx, planter(mark(4403)))
            assert "planted" in output
            assert_over(repo, mark(4403), output)
        assert offered[0] and not any(offered[1:]), offered  # beside the pod, not in it
        (repo / "release").touch()
        assert "released" in await holder
    finally:
        pod.close()


async def test_a_timed_out_command_is_checked_only_once_all_of_it_is_gone(
    repo: Path, entry: str
) -> None:
    ctx = context(repo)
    for _ in range(3):
        command = planter(mark(4404), escape="setsid") + f"; trap '' TERM; sleep {nap(4404)}"
        output = await bash(ctx, command, timeout=0.3)
        assert "Timed out after 0.3 s" in output
        assert_over(repo, mark(4404), output)
        assert processes_running(nap(4404)) == []


async def test_a_hook_is_checked_only_once_all_of_it_is_gone(repo: Path) -> None:
    for _ in range(ROUNDS):
        confinement = await confine(repo)
        launch = Launch(tuple(confinement.prefix), confinement.env, confinement.finish)
        answer = await run_hook(
            planter(mark(4405), escape="setsid"), b"{}", repo, launch, 30.0, denies=False
        )
        assert answer.outcome == "ok", answer
        assert_over(repo, mark(4405), answer.note)


async def test_a_hook_that_times_out_is_checked_only_once_all_of_it_is_gone(repo: Path) -> None:
    confinement = await confine(repo)
    launch = Launch(tuple(confinement.prefix), confinement.env, confinement.finish)
    command = planter(mark(4406), escape="setsid") + f"; trap '' TERM; sleep {nap(4406)}"
    answer = await run_hook(command, b"{}", repo, launch, 0.3, denies=False)
    assert answer.outcome == "timeout", answer
    assert_over(repo, mark(4406), answer.message)
    assert processes_running(nap(4406)) == []
