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

from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox
from kfd.hooks.run import Launch, run_hook
from kfd.sandbox import confine, seccomp
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd_shell import BashTool

pytestmark = needs_bubblewrap

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


async def under_prefix(repo: Path, *argv: str) -> str:
    """What ``argv`` printed, started under a confinement's bare prefix (how the MCP
    and language-server libraries start a server)."""
    confinement = await confine(repo)
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [*confinement.prefix, *argv],
            cwd=repo,
            env=confinement.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        await confinement.finish()
    return done.stdout + done.stderr


async def test_a_program_under_the_bare_prefix_makes_no_link(repo: Path) -> None:
    assert_no_links(repo, await under_prefix(repo, "bash", "-c", LINKS))


WHITEOUTS = """
import ctypes, os, stat
try:
    os.mknod("device", 0o600 | stat.S_IFCHR, 0)
except OSError as error:
    print("mknod:", error.strerror)
os.mkfifo("fifo")
libc = ctypes.CDLL(None, use_errno=True)
with open("moved", "w"):
    pass
renameat2 = {"x86_64": 316, "aarch64": 276}[os.uname().machine]
said = libc.syscall(renameat2, -100, b"moved", -100, b"there", 4)  # RENAME_WHITEOUT
print("whiteout:", said, os.strerror(ctypes.get_errno()))
print("rename:", libc.syscall(renameat2, -100, b"moved", -100, b"there", 0))
"""


async def test_no_whiteout_or_device_node_is_made_but_fifos_and_renames_are(repo: Path) -> None:
    """A 0:0 character device (a whiteout) any user may make since Linux 5.8 would
    stand in the workspace for the host's tools to meet (round 21)."""
    said = await under_prefix(repo, "python3", "-c", WHITEOUTS)
    assert "mknod: Operation not permitted" in said, said
    assert "whiteout: -1 Operation not permitted" in said, said
    assert "rename: 0" in said, said
    assert not (repo / "device").exists()
    assert (repo / "fifo").is_fifo() and (repo / "there").is_file()
    assert not (repo / "moved").exists() and not (repo / "moved").is_char_device()


def test_the_filter_is_compiled_for_this_machine() -> None:
    assert seccomp.problem() is None
    assert len(seccomp.program()) % 8 == 0 and len(seccomp.program()) >= 8 * 8


async def test_a_runtime_directory_cleaned_meanwhile_gets_the_filter_again(repo: Path) -> None:
    """A session's runtime directory may be emptied at logout while kfd runs."""
    first = await confine(repo)
    await first.finish()
    written = Path(first.prefix[first.prefix.index("-c") + 2])
    written.unlink()
    said = await under_prefix(repo, "bash", "-c", LINKS)
    assert written.exists()
    assert_no_links(repo, said)


async def test_a_filter_file_that_is_not_the_filter_is_written_again(repo: Path) -> None:
    """Whatever stands at the filter's name (an allow-all filter, a link) is replaced
    before a sandbox reads it (round 21)."""
    first = await confine(repo)
    await first.finish()
    written = Path(first.prefix[first.prefix.index("-c") + 2])
    written.write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # return ALLOW
    said = await under_prefix(repo, "bash", "-c", LINKS)
    assert written.read_bytes() == seccomp.program()
    assert_no_links(repo, said)
    written.unlink()
    written.symlink_to(repo / "elsewhere.bpf")
    said = await under_prefix(repo, "bash", "-c", LINKS)
    assert written.read_bytes() == seccomp.program() and not written.is_symlink()
    assert not (repo / "elsewhere.bpf").exists()
    assert_no_links(repo, said)
