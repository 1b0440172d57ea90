"""No hard link is made in the sandbox, by any way in (`kfd.sandbox.seccomp`; real
bubblewrap, real programs).

A link made in the sandbox could give a file a name elsewhere that kfd's
remembered listings never see (round 19: ``secrets/api.key`` made another name
of ``src/notes.txt``, the key written into it later, then read through the old
name). ``link``/``linkat`` fail with ``EXDEV`` for the bash tool (in a bubblewrap
of its own and in the session's pod), a hook, and a program started under the
bare prefix (how MCP and language servers start); ``io_uring``, which makes
links without a system call the filter sees, is refused. Everything else still
works, git included (it makes objects by link, falling back to a rename).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.hooks.run import Launch, run_hook
from kfd.sandbox import confine, probe, seccomp
from kfd_shell import BashTool

BWRAP_PROBLEM = asyncio.run(probe("bwrap", network=False))
pytestmark = pytest.mark.skipif(
    BWRAP_PROBLEM is not None, reason=f"bubblewrap cannot run here: {BWRAP_PROBLEM}"
)

LINKS = (
    "echo notes > notes.txt; mkdir -p secrets; "
    "ln notes.txt secrets/api.key; echo ln=$?; "
    "cp -l notes.txt copy; echo cp=$?; "
    'python3 -c \'import os; os.link("notes.txt", "py")\' 2>&1 | tail -1; '
    "python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
    'print("io_uring", libc.syscall(425, 1, bytes(120)), os.strerror(ctypes.get_errno()))\'; '
    "ls"
)


def assert_no_links(repo: Path, output: str) -> None:
    assert "ln=1" in output and "cp=1" in output, output
    assert "Invalid cross-device link" in output, output
    assert "io_uring -1 Function not implemented" in output, output
    assert not (repo / "secrets" / "api.key").exists()
    assert not (repo / "copy").exists() and not (repo / "py").exists()
    assert (repo / "notes.txt").stat().st_nlink == 1


async def test_the_bash_tool_makes_no_link(repo: Path, entry: str) -> None:
    ctx = CallContext(session_id="s", workspace=repo, sandbox=Sandbox())
    result = await BashTool().run(BashTool.Args(command=LINKS), ctx)
    assert_no_links(repo, result.output)
    # The rest of the sandbox works as it did: git too.
    work = "git add notes.txt && git -c user.name=t -c user.email=t@t commit -qm x && git log"
    result = await BashTool().run(BashTool.Args(command=work), ctx)
    assert "commit " in result.output, result.output


async def test_a_hook_makes_no_link(repo: Path) -> None:
    confinement = await confine(repo)
    launch = Launch(tuple(confinement.prefix), confinement.env, confinement.finish)
    # Exit status 2 of a hook that cannot deny: its output comes back as a note.
    hook = f"{{ {LINKS}; }} 2>&1; exit 2"
    answer = await run_hook(hook, b"{}", repo, launch, 30.0, denies=False)
    assert answer.outcome == "ok", answer
    assert_no_links(repo, answer.note)


async def test_a_program_under_the_bare_prefix_makes_no_link(repo: Path) -> None:
    """How the MCP and language-server libraries start a server: the prefix's argv."""
    confinement = await confine(repo)
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [*confinement.prefix, "bash", "-c", LINKS],
            cwd=repo,
            env=confinement.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        await confinement.finish()
    assert_no_links(repo, done.stdout + done.stderr)


def test_the_filter_is_compiled_for_this_machine() -> None:
    assert seccomp.problem() is None
    assert len(seccomp.program()) % 8 == 0 and len(seccomp.program()) >= 8 * 8


async def test_a_runtime_directory_cleaned_meanwhile_gets_the_filter_again(repo: Path) -> None:
    """A session's runtime directory may be emptied at logout while kfd runs."""
    first = await confine(repo)
    await first.finish()
    written = Path(first.prefix[first.prefix.index("-c") + 2])
    written.unlink()
    confinement = await confine(repo)
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [*confinement.prefix, "bash", "-c", LINKS],
            cwd=repo,
            env=confinement.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        await confinement.finish()
    assert written.exists()
    assert_no_links(repo, done.stdout + done.stderr)


async def test_a_filter_file_that_is_not_the_filter_is_written_again(repo: Path) -> None:
    """Whatever stands at the filter's name (an allow-all filter, a link) is replaced
    before a sandbox reads it."""
    first = await confine(repo)
    await first.finish()
    written = Path(first.prefix[first.prefix.index("-c") + 2])
    written.write_bytes(b"\\x06\\x00\\x00\\x00\\x00\\x00\\xff\\x7f")  # return ALLOW
    await asyncio.to_thread(assert_filtered, repo, written)
    written.unlink()
    written.symlink_to(repo / "elsewhere.bpf")
    await asyncio.to_thread(assert_filtered, repo, written)
    assert not (repo / "elsewhere.bpf").exists()


def assert_filtered(repo: Path, written: Path) -> None:
    confinement = asyncio.run(confine(repo))
    try:
        done = subprocess.run(
            [*confinement.prefix, "bash", "-c", LINKS],
            cwd=repo,
            env=confinement.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        asyncio.run(confinement.finish())
    assert written.read_bytes() == seccomp.program() and not written.is_symlink()
    assert_no_links(repo, done.stdout + done.stderr)
