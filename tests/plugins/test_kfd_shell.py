"""The bash tool of kfd_shell, with real processes in a real git repository.

Tests never sleep to wait for an event. A command that must pause until the
test is ready waits for a gate file the test creates; the test waits for the
command's output through the context's streaming callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

import kfd_shell
from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox, ToolError
from kfd_shell import BashSettings, BashTool
from kfd_shell.capture import HEAD_CHARS, TAIL_CHARS, HeadTail

if TYPE_CHECKING:
    from kfd.api import ToolResult

WAIT_FOR_GATE = "while [ ! -e gate ]; do sleep 0.01; done"
"""Shell snippet: block until the test creates the file ``gate``."""


class Streamed:
    """Collects streamed chunks; lets a test await a piece of text."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self._waiters: list[tuple[str, asyncio.Event]] = []

    def __call__(self, text: str) -> None:
        self.chunks.append(text)
        joined = self.text
        for wanted, event in self._waiters:
            if wanted in joined:
                event.set()

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    async def until(self, wanted: str) -> None:
        event = asyncio.Event()
        self._waiters.append((wanted, event))
        if wanted in self.text:
            event.set()
        await asyncio.wait_for(event.wait(), timeout=10)


@pytest.fixture
def streamed() -> Streamed:
    return Streamed()


@pytest.fixture
def shell_ctx(repo: Path, streamed: Streamed) -> CallContext:
    """A call in ``repo``, confined by the sandbox as every call is by default."""
    return CallContext(session_id="s-test", workspace=repo, on_output=streamed)


@pytest.fixture
def host_ctx(repo: Path, streamed: Streamed) -> CallContext:
    """A call without the sandbox: for tests that follow a command's processes by
    their pids, which inside the sandbox's PID namespace mean nothing out here
    (the sandbox's own process tests are in test_kfd_shell_sandbox.py)."""
    return CallContext(
        session_id="s-test", workspace=repo, on_output=streamed, sandbox=Sandbox(enabled=False)
    )


async def bash(
    ctx: CallContext, command: str, tool: BashTool | None = None, **kwargs: Any
) -> ToolResult:
    tool = tool or BashTool()
    return await tool.run(BashTool.Args(command=command, **kwargs), ctx)


def is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"


async def gone_within(pid: int, seconds: float) -> bool:
    """Poll (bounded) until ``pid`` is no longer running."""
    deadline = time.monotonic() + seconds
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


# --------------------------------------------------------------------------
# the plugin


def test_plugin_configures_bash_from_its_tools_table() -> None:
    (tool,) = kfd_shell.kfd_tools({"bash": {"default_timeout_s": 30, "max_timeout_s": 90}})
    assert isinstance(tool, BashTool)
    assert tool.settings == BashSettings(default_timeout_s=30, max_timeout_s=90)
    assert not tool.read_only
    assert not tool.edits_files
    schema = msgspec.json.schema(BashTool.Args)["$defs"]["BashArgs"]
    assert set(schema["properties"]) == {"command", "timeout", "description", "network"}
    assert schema["required"] == ["command"]


def test_plugin_rejects_a_bad_bash_table() -> None:
    with pytest.raises(ValueError, match=r"\[tools.bash\]"):
        kfd_shell.kfd_tools({"bash": {"default_timeout_s": "soon"}})


async def test_preview_and_session_rule_name_the_exact_command(repo: Path) -> None:
    tool = BashTool()
    ctx = CallContext(session_id="s", workspace=repo)
    args = BashTool.Args(command="npm test -- --watch=false", description="Run the tests")
    assert tool.session_rule(args) == "bash(npm test -- --watch=false)"
    preview = await tool.preview(args, ctx)
    assert (preview.command, preview.cwd, preview.summary) == (
        "npm test -- --watch=false",
        str(repo),
        "Run the tests",
    )
    assert tool.summary(BashTool.Args(command="make\nmake install")) == "make …"


# --------------------------------------------------------------------------
# running


async def test_output_is_merged_and_ends_with_the_exit_code(shell_ctx: CallContext) -> None:
    result = await bash(shell_ctx, "echo out; echo err >&2; exit 3")
    assert result.output == "out\nerr\n[exit code 3]\n"
    assert not result.is_error


async def test_command_runs_in_the_workspace_with_empty_stdin(
    repo: Path, shell_ctx: CallContext
) -> None:
    # cat would wait forever on an inherited terminal or pipe.
    result = await bash(shell_ctx, "pwd; cat; git rev-parse --is-inside-work-tree")
    assert result.output == f"{repo}\ntrue\n[exit code 0]\n"


async def test_a_command_without_output_says_so(shell_ctx: CallContext) -> None:
    result = await bash(shell_ctx, "true")
    assert result.output == "(no output)\n[exit code 0]\n"


async def test_death_by_signal_is_named(host_ctx: CallContext, shell_ctx: CallContext) -> None:
    result = await bash(host_ctx, "kill -SEGV $$")
    assert result.output.endswith("[killed by SIGSEGV]\n")
    # The sandbox reports it as bash does: 128 + the signal's number.
    result = await bash(shell_ctx, "kill -SEGV $$")
    assert result.output.endswith("[exit code 139 (128 + SIGSEGV: killed by it?)]\n")


async def test_output_streams_in_chunks_while_the_command_runs(
    repo: Path, shell_ctx: CallContext, streamed: Streamed
) -> None:
    task = asyncio.create_task(bash(shell_ctx, f"echo first; {WAIT_FOR_GATE}; echo second"))
    await streamed.until("first")
    assert not task.done()
    early = list(streamed.chunks)
    (repo / "gate").touch()
    result = await asyncio.wait_for(task, timeout=10)
    assert "".join(early) == "first\n"
    assert len(streamed.chunks) > len(early)
    assert streamed.text == "first\nsecond\n"
    assert result.output == "first\nsecond\n[exit code 0]\n"


async def test_a_character_split_across_reads_is_not_broken(
    repo: Path, shell_ctx: CallContext, streamed: Streamed
) -> None:
    task = asyncio.create_task(
        bash(shell_ctx, rf"printf 'x\303'; {WAIT_FOR_GATE}; printf '\251\n'")
    )
    await streamed.until("x")
    (repo / "gate").touch()
    result = await asyncio.wait_for(task, timeout=10)
    assert streamed.chunks[0] == "x"
    assert streamed.text == "xé\n"
    assert result.output.startswith("xé\n")


async def test_invalid_utf8_output_is_replaced_not_fatal(shell_ctx: CallContext) -> None:
    result = await bash(shell_ctx, r"printf 'caf\303\251 \377 end\n'")
    assert result.output == "café \ufffd end\n[exit code 0]\n"


async def test_output_keeps_head_and_tail_within_bounds(
    shell_ctx: CallContext, streamed: Streamed
) -> None:
    command = "echo START; head -c 3000000 /dev/zero | tr '\\0' a; echo; echo END"
    result = await bash(shell_ctx, command)
    assert result.output.startswith("START\naaa")
    assert result.output.endswith("aaa\nEND\n[exit code 0]\n")
    assert "characters of output omitted" in result.output
    assert len(result.output) < HEAD_CHARS + TAIL_CHARS + 200
    assert len(streamed.text) == len("START\n") + 3_000_000 + len("\nEND\n")


def test_head_tail_drops_only_the_middle() -> None:
    captured = HeadTail(head=5, tail=4)
    for chunk in ("abc", "defg", "hij", "klmnop", "q"):
        captured.append(chunk)
    assert captured.omitted == 17 - 9
    assert captured.text() == "abcde\n\n[... 8 characters of output omitted ...]\n\nnopq"


@pytest.mark.parametrize(
    ("command", "timeout", "reason"),
    [(" \n", None, "command is empty"), ("true", 0, "timeout must be a positive number")],
)
async def test_an_empty_command_or_a_non_positive_timeout_is_refused(
    shell_ctx: CallContext, command: str, timeout: float | None, reason: str
) -> None:
    with pytest.raises(ToolError, match=reason):
        await bash(shell_ctx, command, timeout=timeout)


async def test_a_command_that_cannot_start_is_a_tool_error(repo: Path) -> None:
    ctx = CallContext(session_id="s", workspace=repo / "deleted")
    with pytest.raises(ToolError, match="could not be started"):
        await bash(ctx, "true")


# --------------------------------------------------------------------------
# timeouts, cancellation and stray processes

STUBBORN_CHILD = (
    # The shell and its child ignore SIGTERM, so only the SIGKILL to the group stops them.
    "trap '' TERM; sh -c 'echo $$ > child.pid; echo started; exec sleep 30' & wait"
)


async def test_timeout_kills_the_whole_process_group(repo: Path, host_ctx: CallContext) -> None:
    started = time.monotonic()
    result = await bash(host_ctx, "echo before; " + STUBBORN_CHILD, timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.is_error
    assert result.output.startswith("before\nstarted\n")
    assert "[Timed out after 1 s: the command and every process it started were stopped" in (
        result.output
    )
    assert elapsed < 2.5
    assert await gone_within(read_pid(repo / "child.pid"), 1.0)


async def test_default_timeout_comes_from_the_config(shell_ctx: CallContext) -> None:
    (tool,) = kfd_shell.kfd_tools({"bash": {"default_timeout_s": 0.3}})
    assert isinstance(tool, BashTool)
    result = await bash(shell_ctx, "sleep 30", tool=tool)
    assert result.is_error
    assert "Timed out after 0.3 s" in result.output


async def test_a_timeout_above_the_maximum_is_clamped_with_a_note(
    shell_ctx: CallContext,
) -> None:
    tool = BashTool(BashSettings(max_timeout_s=0.3))
    result = await bash(shell_ctx, "sleep 30", tool=tool, timeout=900)
    assert "[timeout 900 s is above the maximum; used 0.3 s]" in result.output
    assert "Timed out after 0.3 s" in result.output


async def test_cancellation_kills_grandchildren_within_a_second(
    repo: Path, host_ctx: CallContext, streamed: Streamed
) -> None:
    task = asyncio.create_task(bash(host_ctx, STUBBORN_CHILD))
    await streamed.until("started")
    child = read_pid(repo / "child.pid")
    assert is_running(child)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert await gone_within(child, 1.0 - (time.monotonic() - started))


async def test_a_background_child_holding_the_output_does_not_hang_the_call(
    repo: Path, host_ctx: CallContext
) -> None:
    started = time.monotonic()
    result = await bash(host_ctx, "sleep 30 & echo $! > bg.pid; echo hi")
    assert time.monotonic() - started < 2.0
    assert result.output.startswith("hi\n")
    assert "Background processes that kept the output open were stopped" in result.output
    assert result.output.endswith("[exit code 0]\n")
    assert await gone_within(read_pid(repo / "bg.pid"), 1.0)


async def test_a_background_child_with_redirected_output_keeps_running(
    repo: Path, host_ctx: CallContext
) -> None:
    result = await bash(host_ctx, "sleep 30 > /dev/null 2>&1 & echo $! > bg.pid")
    pid = read_pid(repo / "bg.pid")
    try:
        assert result.output == "(no output)\n[exit code 0]\n"
        assert is_running(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _bare_repository_with_a_payload(repo: Path, canary: Path) -> Path:
    """A directory laid out as a bare repository (a clone keeps it: no ``.git`` in its
    path) whose config runs ``canary``'s payload from any git command run in it."""
    evil = repo / "vendor" / "evil"
    evil.parent.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", str(evil)], check=True)
    for key, value in (
        ("core.bare", "false"),
        ("core.worktree", ".."),
        ("core.fsmonitor", f"touch {canary}; false"),
    ):
        subprocess.run(["git", "-C", str(evil), "config", key, value], check=True)
    return evil


@pytest.mark.parametrize("context", ["host_ctx", "shell_ctx"])
async def test_git_never_uses_a_bare_repository_it_was_not_named(
    repo: Path, tmp_path: Path, context: str, request: pytest.FixtureRequest
) -> None:
    canary = repo / "canary"  # the workspace: writable with and without the sandbox
    evil = _bare_repository_with_a_payload(repo, canary)
    plain = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(evil),
        "status",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await plain.wait()
    assert canary.exists(), "plain git must run the planted payload"
    canary.unlink()
    ctx: CallContext = request.getfixturevalue(context)
    result = await bash(ctx, "git -C vendor/evil status; git -C vendor/evil log")
    assert "safe.bareRepository" in result.output
    assert not canary.exists()
    # Named explicitly (which asks: git --git-dir), git still may.
    result = await bash(ctx, "git --git-dir=vendor/evil rev-parse --is-bare-repository")
    assert result.output.startswith("false\n")
