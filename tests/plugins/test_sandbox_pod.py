"""The bash tool's pods (`kfd.sandbox.pod`), attacked from inside, against real bubblewrap.

A pod serves a session's commands once their layout is remembered: each test
first makes its workspace's layout remembered (stamps trusted however recent:
a test cannot wait for them to age) and checks that the next command runs in
the pod, whose PID 1 is the zygote (in a sandbox of its own, it is bubblewrap).
Processes are found from the host by a marker in their command line.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kfd.agent.toolcall import CallContext
from kfd.api import Sandbox, confine
from kfd.sandbox import layout, pod, reuse
from kfd.testing.bubblewrap import needs_bubblewrap
from kfd.testing.processes import processes_gone, processes_running
from kfd_shell import BashTool

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"

pytestmark = needs_bubblewrap

PID1 = "tr '\\0' ' ' </proc/1/cmdline; echo"
"""Prints PID 1's command line: the zygote's ``python -I -S -c`` in a pod."""


@pytest.fixture(autouse=True)
def home(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Stamps are trusted however recent: the layout is remembered at once.
    monkeypatch.setattr(layout, "RACY_NS", 0)
    pod.close()
    try:
        yield private_home
    finally:
        pod.close()


@pytest.fixture
def outside() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="kfd-pod-", dir="/var/tmp"))
    (directory / "target.txt").write_text("untouched\n")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def context(repo: Path, session: str = "s", **sandbox: Any) -> CallContext:
    return CallContext(session_id=session, workspace=repo, sandbox=Sandbox(**sandbox))


async def run(ctx: CallContext, command: str, **args: Any) -> str:
    result = await BashTool().run(BashTool.Args(command=command, **args), ctx)
    return result.output


def in_pod(output: str) -> bool:
    return " -I -S -c " in output


async def entered(ctx: CallContext) -> int:
    """Make the session's pod serve its next command; the zygote's host PID."""
    await run(ctx, "true")  # bubblewrap's stand-ins (an empty .kfd) appear once
    await run(ctx, "true")
    assert reuse.remembers(ctx.workspace)
    pod.close()  # a pod the first layout (before the stand-ins) may have started
    output = await run(ctx, PID1)
    assert in_pod(output), output
    [zygote] = pod.zygotes()
    return zygote


async def test_a_sessions_commands_enter_one_pod_and_another_session_gets_its_own(
    repo: Path, outside: Path
) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    output = await run(ctx, f"{PID1}; echo in > inside.txt; echo out > {outside}/target.txt")
    assert in_pod(output)
    assert pod.zygotes() == [zygote]  # the same pod, command after command
    assert (repo / "inside.txt").read_text() == "in\n"
    assert (outside / "target.txt").read_text() == "untouched\n"
    assert "Read-only file system" in output
    output = await run(context(repo, session="other"), f"{PID1}; echo tmp > /tmp/mine")
    assert in_pod(output)
    assert len(pod.zygotes()) == 2
    # /tmp is the session's pod's: the first session's commands never see another's.
    assert "No such file" in await run(ctx, "cat /tmp/mine")


async def test_the_exit_status_and_output_are_the_commands(repo: Path) -> None:
    ctx = context(repo)
    await entered(ctx)
    output = await run(ctx, "echo out; echo err >&2; exit 3")
    assert output == "out\nerr\n[exit code 3]\n"
    output = await run(ctx, "kill -TERM $$")
    assert "exit code 143 (128 + SIGTERM" in output
    names = (await run(ctx, "env | cut -d= -f1 | sort")).splitlines()[:-1]
    confinement = await confine(repo, Sandbox())
    # Exactly the confinement's environment, and what bash adds itself.
    assert set(names) == {*confinement.env, "PWD", "SHLVL", "_"}
    assert await run(ctx, "cat; echo end") == "end\n[exit code 0]\n"  # stdin: /dev/null


async def test_background_and_daemonised_processes_are_dead_before_the_result_returns(
    repo: Path,
) -> None:
    ctx = context(repo)
    await entered(ctx)
    output = await run(
        ctx,
        "sleep 300.4193 & (sleep 300.4194 &); setsid bash -c '(sleep 300.4195 &) &'; "
        "nohup bash -c 'while :; do echo x >> bg.log; sleep 0.0419; done' >/dev/null 2>&1 & "
        "disown -a; sleep 0.05; echo started",
    )
    assert "started" in output
    # No wait: already gone when the result came back.
    for marker in ("300.4193", "300.4194", "300.4195", "0.0419"):
        assert processes_running(marker) == [], marker
    size = (repo / "bg.log").stat().st_size
    assert "[exit code 0]" in await run(ctx, "true")
    assert (repo / "bg.log").stat().st_size == size


async def test_a_spawn_loop_racing_the_cleanup_leaves_nothing(repo: Path) -> None:
    ctx = context(repo)
    await entered(ctx)
    output = await run(
        ctx,
        "for i in $(seq 400); do (sleep 300.5511 &); setsid sleep 300.5512 & done & "
        "for i in $(seq 200); do bash -c 'sleep 300.5513 & sleep 300.5514 &' & done & "
        "echo spawning",
    )
    assert "spawning" in output
    for marker in ("300.5511", "300.5512", "300.5513", "300.5514"):
        assert processes_running(marker) == [], marker


async def test_the_zygote_cannot_be_signalled_traced_or_read_from_a_command(repo: Path) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    ptrace = (
        "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
        "pid = int(sys.argv[1]); r = libc.ptrace(16, pid, 0, 0); "
        "print('ptrace', pid, r, os.strerror(ctypes.get_errno()))"
    )
    output = await run(
        ctx,
        "kill -KILL 1; kill -STOP 1; kill -TERM 1; "
        "cat /proc/1/environ; cat /proc/$PPID/environ; cat /proc/1/mem; "
        "for fd in /proc/1/fd/* /proc/$PPID/fd/*; do cat $fd; done 2>&1 | grep -c denied; "
        "ls -l /proc/1/fd/ /proc/$PPID/fd/ 2>/dev/null | grep -c -- '->'; "
        f'{SYSTEM_PYTHON} -c "{ptrace}" 1; {SYSTEM_PYTHON} -c "{ptrace}" $PPID; '
        "ls -l /proc/self/fd | grep -c socket; echo done",
    )
    assert output.count("Permission denied") == 3, output
    # Every descriptor of the zygote and the keeper refused, no link readable.
    refused = re.search(r"\n(\d+)\n0\nptrace", output)
    assert refused is not None and int(refused.group(1)) >= 4, output
    assert "ptrace 1 -1 Operation not permitted" in output
    assert output.count("-1 Operation not permitted") == 2, output
    assert "\n0\ndone\n" in output  # no socket of kfd's reaches the command
    # Still there, not stopped, serving the same session.
    assert pod.zygotes() == [zygote]
    assert in_pod(await run(ctx, PID1))


async def test_a_command_cannot_kill_or_stop_what_keeps_it(repo: Path) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    # Its parent is the zygote, PID 1: signals from inside the pod do not reach it.
    output = await run(
        ctx, "sleep 300.6611 & kill -KILL $PPID; kill -STOP $PPID; echo parent=$PPID"
    )
    assert "parent=1\n[exit code 0]" in output
    assert processes_running("300.6611") == []
    assert pod.zygotes() == [zygote]
    assert in_pod(await run(ctx, PID1))


async def test_a_zygote_killed_mid_command_ends_the_command_and_the_next_one_runs(
    repo: Path,
) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    fifo = repo / "started"
    os.mkfifo(fifo)
    command = "sleep 300.7711 & echo up > started; sleep 300.7712; echo survived"
    running = asyncio.create_task(run(ctx, command))
    async with asyncio.timeout(10):
        assert await asyncio.to_thread(fifo.read_text) == "up\n"  # the command runs
    os.kill(zygote, signal.SIGKILL)  # as the kernel's OOM killer would
    output = await running
    assert "survived" not in output
    assert "exit code 137" in output
    assert processes_running("300.7711") == []
    output = await run(ctx, "echo next")
    assert "next\n[exit code 0]" in output
    assert zygote not in pod.zygotes()


async def test_a_zygote_that_does_not_confirm_the_kill_takes_the_pod_down(
    repo: Path,
) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    fifo = repo / "started"
    os.mkfifo(fifo)
    running = asyncio.create_task(
        run(ctx, "sleep 300.8811 & echo up > started; sleep 300.8812", timeout=1)
    )
    async with asyncio.timeout(10):
        assert await asyncio.to_thread(fifo.read_text) == "up\n"
    os.kill(zygote, signal.SIGSTOP)  # from the host: it cannot answer the timeout
    output = await running
    assert "Timed out after 1 s" in output
    assert processes_running("300.8811") == processes_running("300.8812") == []
    assert zygote not in pod.zygotes()
    assert "[exit code 0]" in await run(ctx, "true")


async def test_a_timeout_stops_everything_in_the_pod(repo: Path) -> None:
    ctx = context(repo)
    await entered(ctx)
    output = await run(ctx, "trap '' TERM; sleep 300.9911 & sleep 300.9912", timeout=0.5)
    assert "Timed out after 0.5 s" in output
    assert await processes_gone("300.991", within=0.1)
    assert in_pod(await run(ctx, PID1))


async def test_concurrent_commands_of_a_session_never_share_a_pod(repo: Path) -> None:
    ctx = context(repo)
    await entered(ctx)
    first, second = await asyncio.gather(
        run(ctx, f"sleep 0.5; {PID1}"), run(ctx, f"sleep 0.2; {PID1}; ls /proc | grep -c '^[0-9]'")
    )
    assert [in_pod(first), in_pod(second)].count(True) == 1, (first, second)


async def test_a_pod_that_cannot_start_falls_back_to_a_sandbox_of_its_own(
    repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pod, "interpreter", lambda _layout: "/nonexistent/python3")
    ctx = context(repo)
    for _ in range(3):
        output = await run(ctx, f"{PID1}; echo out > {outside}/target.txt")
        assert "bwrap" in output.splitlines()[0] and not in_pod(output)
        assert "Read-only file system" in output
    assert pod.zygotes() == []


async def test_a_pod_answering_nonsense_is_dropped_and_the_command_runs_in_its_own_sandbox(
    repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonsense = (
        "import socket, struct, sys\n"
        "c = socket.socket(fileno=int(sys.argv[1])); c.send(b'R')\n"
        "while True:\n"
        "    data, extra, _, _ = c.recvmsg(1 << 18, socket.CMSG_SPACE(8))\n"
        "    if not data: break\n"
        "    socket.socket(fileno=struct.unpack('2i', extra[0][2][:8])[1]).send(b'Dxx')\n"
    )
    monkeypatch.setattr(pod, "_SOURCE", nonsense)
    ctx = context(repo)
    for _ in range(3):
        output = await run(ctx, f"{PID1}; echo out > {outside}/target.txt; echo ran")
        assert not in_pod(output) and "ran\n" in output
        assert "Read-only file system" in output
    assert (outside / "target.txt").read_text() == "untouched\n"


async def test_a_mount_point_replaced_on_the_host_retires_the_pod(repo: Path) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    config = repo / ".git" / "config"
    # As `git config` writes: a new file renamed over the old, which detaches the
    # read-only mount over it in the pod (and so would leave it writable there).
    (repo / ".git" / "config.new").write_text(config.read_text())
    (repo / ".git" / "config.new").rename(config)
    output = await run(ctx, f"{PID1}; echo '[core]' >> .git/config")
    assert "Read-only file system" in output
    assert "[core]" not in config.read_text().splitlines()[-1:]
    assert zygote not in pod.zygotes()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="ip netns needs root and iproute2"
)
async def test_a_network_namespace_made_on_the_host_leaves_the_pod_serving(repo: Path) -> None:
    # `ip netns add` mounts a handle under /run/netns, which propagates into the
    # pod's mount table: no data a command could write, and other tests (and
    # users) make them all the time.
    ctx = context(repo)
    zygote = await entered(ctx)
    name = f"kfd-pod-{os.getpid()}"
    await asyncio.to_thread(subprocess.run, ["ip", "netns", "add", name], check=True)
    try:
        assert in_pod(await run(ctx, PID1))
    finally:
        await asyncio.to_thread(subprocess.run, ["ip", "netns", "delete", name], check=True)
    assert in_pod(await run(ctx, PID1))
    assert pod.zygotes() == [zygote]


def test_only_namespace_handles_may_come_and_go_in_a_pods_mount_table() -> None:
    before = frozenset({"/dev/vda / ext4 ro,relatime 0 0", "tmpfs /tmp tmpfs rw 0 0"})
    handle = "nsfs /run/netns/x nsfs rw 0 0"
    assert pod._unchanged(before, before | {handle})
    assert pod._unchanged(before | {handle}, before)
    assert not pod._unchanged(before, before | {"/dev/sdb /media/usb ext4 rw 0 0"})
    assert not pod._unchanged(before, before - {"tmpfs /tmp tmpfs rw 0 0"})
    changed = "/dev/vda / ext4 rw,relatime 0 0"  # remounted read-write
    assert not pod._unchanged(before, (before - {"/dev/vda / ext4 ro,relatime 0 0"}) | {changed})


async def test_a_timeout_while_the_command_enters_takes_the_pod_down(repo: Path) -> None:
    ctx = context(repo)
    zygote = await entered(ctx)
    os.kill(zygote, signal.SIGSTOP)  # from the host: it never says it accepted
    output = await run(ctx, "sleep 300.1212", timeout=0.5)
    assert "Timed out after 0.5 s" in output
    assert zygote not in pod.zygotes()
    assert not Path(f"/proc/{zygote}").exists() or "Z" in _state(zygote)
    assert processes_running("300.1212") == []
    assert "next\n[exit code 0]" in await run(ctx, "echo next")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"
