"""Knowing when all of a program started under `Confinement.prefix` is gone.

bubblewrap (``--unshare-pid``) runs the program under an init of its own, PID 1
of a new PID namespace, and its outer process exits as soon as that init says
the program's first process ended: not once the namespace is empty. The
program's background processes live on until the init is gone (killed as
bubblewrap exits, ``--die-with-parent``), milliseconds later: long enough for a
loop to write again what the checks after the program (`Confinement.finish`)
have just removed or disarmed.

The kernel kills and reaps every process of a PID namespace before it reports
its init's end (``zap_pid_ns_processes``), so a program is over once a pidfd
of the init says it exited. `Watch` gets that pidfd: bubblewrap reports the
init's PID (``--info-fd``) while the init waits for kfd (``--block-fd``) before
it starts anything of the program, so the PID is opened while it is surely
the init's (bubblewrap's child, alive). Once bubblewrap has exited, kfd kills
the init (nothing of the program may outlive it) and waits for the pidfd: as
the pod's zygote does for a command (`kfd.sandbox.zygote`), the result comes
only when none of the program's processes is left.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import os
import select
import signal
import termios
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

START_TIMEOUT_S = 10.0
"""How long bubblewrap may take to say its init's PID."""


class Watch:
    """One bubblewrap to start: its go, and the end of its PID namespace.

    Usage: start bubblewrap with `wrap` of the prefix, passing `passed`; call
    `spawned` whatever happened; `start` with bubblewrap's PID (False: it must be
    killed, nothing of the program ran); once bubblewrap exited, `emptied`; then
    `reached` says whether the program ran at all; `close` at last.
    """

    def __init__(self) -> None:
        self._info, info_write = os.pipe()
        # The go: one byte bubblewrap's init reads just before it runs the program.
        block_read, self._go = os.pipe()
        self.passed: tuple[int, ...] = (info_write, block_read)
        """bubblewrap's ends of the pipes (pass them to it, then call `spawned`)."""
        self._given = False
        self._init: int | None = None
        """A pidfd of the namespace's init, once known."""
        self._settled: asyncio.Event | None = None
        """Set once `start` ended: until then bubblewrap's end says nothing of the init's."""

    def wrap(self, prefix: Sequence[str]) -> list[str]:
        """``prefix`` (``bwrap … --``) told to report its init and wait for the go."""
        info, block = self.passed
        return [*prefix[:-1], "--info-fd", str(info), "--block-fd", str(block), "--"]

    def spawned(self) -> None:
        """bubblewrap has its copies (or never started): close kfd's."""
        for fd in self.passed:
            os.close(fd)
        self.passed = ()

    async def start(self, bwrap: int) -> bool:
        """Open the init of bubblewrap ``bwrap``, then let it run the program.

        False when that cannot be made sure (bubblewrap failed or died before it
        said, or the PID is not its child's): the program must not run, and
        bubblewrap's process group is to be killed (its init is in it, waiting).
        """
        self._settled = asyncio.Event()
        try:
            said = await read_all(self._info, START_TIMEOUT_S)
            pid = json.loads(said)["child-pid"]
        except (OSError, ValueError, KeyError, TypeError, TimeoutError):
            return False
        finally:
            self._settled.set()
        if not isinstance(pid, int):
            return False
        self._init = _open_child(pid, bwrap)
        if self._init is None:
            return False
        try:
            os.write(self._go, b"x")
        except BrokenPipeError:
            return False  # the init died before the go (bubblewrap failed setting up)
        self._given = True
        return True

    async def emptied(self) -> None:
        """Once bubblewrap exited: kill its init, and return when the PID namespace
        is empty (all of the program is gone)."""
        if self._settled is not None:
            await self._settled.wait()
        init, self._init = self._init, None
        if init is None:
            return  # never let go: the init ran nothing of the program
        try:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(init, signal.SIGKILL)
            await ended(init)
        finally:
            os.close(init)

    def reached(self) -> bool:
        """Whether bubblewrap reached the program: its init took the go.

        A go still in the pipe once bubblewrap exited means it failed while
        setting up the sandbox (a directory it was to cover vanished meanwhile),
        so nothing of the program ran. A program cannot fake that: the byte is
        gone before it starts. (bubblewrap's error text could be printed by anyone.)
        """
        if not self._given:
            return False
        left = array.array("i", [0])
        try:
            fcntl.ioctl(self._go, termios.FIONREAD, left)
        except OSError:
            return True  # unsure: as if it ran (never run twice)
        return left[0] == 0

    def close(self) -> None:
        """Close what is left (call once bubblewrap exited: a go pipe closed earlier
        would let a waiting init run the program)."""
        for fd in (self._info, self._go, *self.passed):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.passed = ()
        if self._init is not None:
            os.close(self._init)
            self._init = None


def _open_child(pid: int, parent: int) -> int | None:
    """A pidfd of ``pid`` if it is, while open, a live child of ``parent``; else None."""
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
        # The name in parentheses may hold anything: the fields after the last ")".
        ppid = int(text[text.rfind(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        ppid = 0
    # Alive after the read: the PID was this process's all along (no reuse).
    if ppid == parent and not select.select([handle], [], [], 0)[0]:
        return handle
    os.close(handle)
    return None


async def ended(handle: int) -> None:
    """Wait until the process of pidfd ``handle`` has exited."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(handle, readable)
    try:
        await gone
    finally:
        loop.remove_reader(handle)


async def read_all(fd: int, timeout: float) -> bytes:
    """Everything written to the pipe ``fd`` until its writers closed it."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if not ended.done():
                ended.set_exception(exc)
            return
        if chunk:
            chunks.append(chunk)
        elif not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(timeout):
            await ended
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)
