"""Running one shell command in a process group kfd owns, and stopping all of it.

The command runs in a new session (so a new process group), with stdin from
/dev/null and stdout and stderr merged into one pipe that kfd reads. Stopping
means the whole group: SIGTERM, a short grace, then SIGKILL, so grandchildren
(``sleep`` started by the shell, ``cmd &``) never outlive a timeout or a
cancellation.

A background child that keeps the pipe open would keep the read from ever
ending; once the shell has exited, the pipe gets `PIPE_GRACE_S` to close
before the group is stopped.

A sandboxed command that starts here (under bubblewrap) is over only once its
PID namespace is empty (`kfd.api.NamespaceWatch`): bubblewrap exits before its
background processes are gone, and the sandbox's checks must not overlap them.

A sandboxed command may instead enter its session's pod (``enter``: see
`kfd.api.enter_pod`): the same pipe, the same stopping (SIGTERM, grace,
SIGKILL), sent to every process of the command by the pod's zygote.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import os
import shutil
import signal
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from kfd.api import NamespaceWatch

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
    from pathlib import Path

PIPE_GRACE_S = 0.25
"""After the shell exits, how long its background children may keep the pipe open."""

TERM_GRACE_S = 0.5
"""Between SIGTERM and SIGKILL to the process group."""

KILL_GRACE_S = 0.3
"""After SIGKILL, how long to wait for the pipe to close before abandoning it."""

READ_CHUNK = 65536


class Outcome(NamedTuple):
    """How a command ended."""

    returncode: int
    """The shell's exit status; negative: killed by that signal."""
    strays_stopped: bool
    """Background processes held the output open after the shell exited and were stopped."""
    started: bool = True
    """False when the sandbox failed while it was being set up (bubblewrap never
    reached the command, so nothing of it ran: it may be started again)."""


class Running(Protocol):
    """A started command, as `run_command` waits for it and stops it."""

    @property
    def returncode(self) -> int | None:
        """Its exit status once it ended."""

    async def wait(self) -> int:
        """Wait for it to end."""

    def send_signal(self, signum: int) -> None:
        """Signal all of it."""


class _Group:
    """A command started here: its process group (the shell leads its own)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await self._process.wait()

    def send_signal(self, signum: int) -> None:
        _signal_group(self._process.pid, signal.Signals(signum))


class _Confined(_Group):
    """A command started here under bubblewrap: over once its PID namespace is empty
    (`kfd.api.NamespaceWatch`), not merely once bubblewrap exited."""

    def __init__(self, process: asyncio.subprocess.Process, watch: NamespaceWatch) -> None:
        super().__init__(process)
        self.watch = watch

    async def wait(self) -> int:
        code = await self._process.wait()
        await self.watch.emptied()
        return code


@functools.cache
def shell() -> str:
    """The shell commands run under: bash if installed, else /bin/sh."""
    return shutil.which("bash") or "/bin/sh"


async def spawn(
    command: str,
    cwd: Path,
    output_fd: int,
    *,
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    """Start ``command`` under the shell in its own session, writing to ``output_fd``.

    The one place a command starts: ``prefix`` is the sandbox that wraps the
    shell (`kfd_shell.sandbox.command_prefix`), ``env`` its environment.
    """
    return await asyncio.create_subprocess_exec(
        *prefix,
        shell(),
        "-c",
        command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output_fd,
        stderr=output_fd,
        start_new_session=True,
        pass_fds=pass_fds,
    )


async def run_command(
    command: str,
    cwd: Path,
    on_output: Callable[[str], None],
    *,
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    enter: Callable[[Sequence[str], int], Awaitable[Running | None]] | None = None,
) -> Outcome:
    """Run ``command`` to its end, streaming its output to ``on_output``.

    ``on_output`` gets the output as text, decoded incrementally (a UTF-8
    character split across reads is never broken; invalid bytes become U+FFFD).
    On cancellation (a timeout is one) the whole process group is stopped
    before re-raising. ``enter`` tries the sandbox's pod first (it answers None
    when the command must start here, under ``prefix``).
    """
    read_fd, write_fd = os.pipe()
    watch: NamespaceWatch | None = None
    try:
        process: Running | None = None
        if enter is not None:
            process = await enter([shell(), "-c", command], write_fd)
        if process is None:
            if prefix and prefix[-1] == "--":  # bubblewrap's
                watch = NamespaceWatch()
            try:
                spawned = await spawn(
                    command,
                    cwd,
                    write_fd,
                    prefix=watch.wrap(prefix) if watch else prefix,
                    env=env,
                    pass_fds=watch.passed if watch else (),
                )
            finally:
                if watch is not None:
                    watch.spawned()
            process = _Group(spawned) if watch is None else _Confined(spawned, watch)
    except BaseException:
        os.close(read_fd)
        if watch is not None:
            watch.close()
        raise
    finally:
        # Only the children may hold the write end, so EOF means they all closed it.
        os.close(write_fd)
    group = process
    exited = asyncio.create_task(process.wait())
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    pump: asyncio.Task[None] | None = None
    transport: asyncio.ReadTransport | None = None
    try:
        if isinstance(group, _Confined) and not await group.watch.start(group.pid):
            # Its init is not known for sure: it never runs the command, and goes.
            group.send_signal(signal.SIGKILL)
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        pump = asyncio.create_task(_pump(reader, on_output))
        # asyncio.wait, not await: a cancellation must not cancel the exit watch,
        # which stop_group still needs.
        await asyncio.wait({exited})
        done, _ = await asyncio.wait({pump}, timeout=PIPE_GRACE_S)
        strays = not done
        if strays:
            await stop_group(group, (pump,))
        if pump.done():
            pump.result()  # surfaces a failing on_output
        returncode = process.returncode
        started = watch is None or watch.reached()
        return Outcome(-signal.SIGKILL if returncode is None else returncode, strays, started)
    except BaseException:
        await stop_group(group, (exited,) if pump is None else (exited, pump))
        if isinstance(group, _Confined) or not isinstance(group, _Group):
            # A pod's zygote says when all of the command is gone (or the pod dies);
            # bubblewrap's PID namespace, once its init is gone. The checks after
            # the command may run only then.
            await _through(exited)
        raise
    finally:
        if watch is not None:
            watch.close()
        # Still pending only if a process escaped the group (setsid) and holds the pipe.
        exited.cancel()
        if pump is not None:
            pump.cancel()
        if transport is not None:
            transport.close()
        else:
            pipe.close()


async def _through(task: asyncio.Task[Any]) -> None:
    """Wait for ``task`` to end, also through cancellations (the last one is raised
    after it ended)."""
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


async def stop_group(group: Running, waiters: Collection[asyncio.Future[Any]]) -> None:
    """SIGTERM all of the command, give it `TERM_GRACE_S`, then SIGKILL it.

    ``waiters`` (the shell's exit, the pipe's end) cut the grace short when
    they all finish. SIGKILL is sent whatever happens, also when a second
    cancellation interrupts the grace.
    """
    group.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait(waiters, timeout=TERM_GRACE_S)
    finally:
        group.send_signal(signal.SIGKILL)
    await asyncio.wait(waiters, timeout=KILL_GRACE_S)


def _signal_group(group: int, signum: signal.Signals) -> None:
    # Gone already is fine: nothing is left to stop.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


async def _pump(reader: asyncio.StreamReader, on_output: Callable[[str], None]) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await reader.read(READ_CHUNK):
        if text := decoder.decode(chunk):
            on_output(text)
    if text := decoder.decode(b"", final=True):
        on_output(text)
