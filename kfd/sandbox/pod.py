"""Pods: long-lived sandboxes that commands enter, so bubblewrap's cost is paid once.

Starting bubblewrap costs about 11 ms per command with the full confinement
(namespaces, every bind mount re-reading the mount table, ``/dev``,
``/proc``). A pod is one bubblewrap with exactly the prefix a command would
get (`kfd.sandbox.Confinement.prefix`), running the zygote
(`kfd.sandbox.zygote`) as its PID 1; a command enters it with one message
and a fork.

What keeps a pod as tight as a sandbox per command:

- **Its mounts are those a new sandbox would get.** `kfd.sandbox.confine`
  still looks before every command (`kfd.sandbox.reuse`); a pod serves only
  a `Layout` equal to the one it was started for, and only while its own
  mount table is unchanged (a mount point renamed over on the host detaches
  the mount in the pod, which would uncover what it hid). A new layout, a
  changed mount, a dead zygote: a new pod (once `reuse` vouches for the
  layout), the old one closed once its command ended.
- **A command's processes end with it.** The zygote, PID 1 of the pod, kills
  all the command left behind before the result returns (as a PID namespace's
  death would); a zygote that cannot, or that stops answering, takes the
  whole pod down.
- **Commands cannot reach the zygote or each other's requests.** The zygote
  is not dumpable (no ptrace, no ``/proc/1/fd``), is PID 1 (a command cannot
  signal it), each command has a socket of its own, and the zygote is kfd's
  own code run by an interpreter outside every writable place of the
  sandbox.
- **A pod is one session's, and serves one command at a time.** A command
  entering it finds none of the previous command's processes; one that comes
  while the pod is busy runs in a sandbox of its own. The pod's private
  ``/tmp`` lives as long as the pod: the session's commands share it, other
  sessions never do.

Whenever a pod cannot take a command (it will not start, it died, it answered
nonsense, the layout is new), `enter` returns None and the caller runs the
command in a sandbox of its own, as before: never unconfined.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kfd.sandbox import pidns, reuse

if TYPE_CHECKING:
    from kfd.sandbox.layout import Layout


class Confinement(Protocol):
    """What a pod needs of a `kfd.sandbox.Confinement` (which imports this module)."""

    @property
    def prefix(self) -> list[str]:
        """``bwrap <options> --``."""

    @property
    def env(self) -> dict[str, str]:
        """The command's whole environment."""

    @property
    def layout(self) -> Layout:
        """The facts the prefix was made of."""


IDLE_S = 60.0
"""A pod no command used for this long is closed."""
MAX_IDLE_PODS = 4
"""Idle pods kept at once; the least recently used one beyond is closed."""
START_TIMEOUT_S = 10.0
"""How long a new pod may take to start, and a pod to accept a command."""
CONFIRM_S = 0.2
"""After SIGKILL was asked for, how long the zygote may take to say all is gone
before the whole pod is killed (it serves no other command)."""
MAX_REQUEST = 256 * 1024
"""Larger requests (a huge command or environment) run in a sandbox of their own."""

_SOURCE = (Path(__file__).with_name("zygote.py")).read_text(encoding="utf-8")


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def interpreter(layout: Layout) -> str | None:
    """The Python that runs the zygote in a pod of ``layout``; None if none is safe.

    Its real executable and its installation must lie outside everything a
    command can write or cannot see (the workspace, the cache home, git
    directories, the private ``/tmp``): a command that could change the
    standard library would run as the next pod's zygote.
    """
    writable = ["/tmp", "/dev", "/proc"]
    if layout.writable:
        writable.append(layout.workspace)
    writable += [layout.cache_home, layout.runtime_dir, *(d.path for d in layout.git_dirs)]
    writable += [path for path, _ in layout.hidden]
    candidates = [(os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix))]
    candidates.append((os.path.realpath("/usr/bin/python3"), "/usr"))
    for executable, prefix in candidates:
        places = [p for p in writable if p]
        if any(_under(executable, p) or _under(prefix, p) or _under(p, prefix) for p in places):
            continue
        if os.access(executable, os.X_OK):
            return executable
    return None


@dataclass(eq=False)
class Pod:
    """One long-lived sandbox and its zygote."""

    layout: Layout
    process: subprocess.Popen[bytes]
    channel: socket.socket
    watched: list[int] = field(default_factory=list)
    """The pod's mount table (``/proc/<zygote>/mounts``), polled: a change means the
    pod's mounts may no longer be those a new sandbox would get (a mount point
    renamed over on the host is detached in the pod; a mount made on the host
    and propagated into it). A change on the host that does not reach the pod
    leaves its view as it was when it started, with what it hid still hidden."""
    mounts: frozenset[str] = frozenset()
    """The pod's mount table as it started (`_unchanged` compares against it)."""
    zygote: int = 0
    """The zygote's PID on the host (0: not known yet)."""
    running: int = 0
    retired: bool = False
    used: float = field(default_factory=time.monotonic)

    def serves(self, layout: Layout) -> bool:
        """Whether a command of ``layout`` may enter this pod now."""
        if self.retired or not (self.layout is layout or self.layout == layout):
            return False
        if self.process.poll() is not None:
            self.retired = True
            return False
        events = select.poll()
        for fd in self.watched:
            events.register(fd, select.POLLPRI)
        if events.poll(0):
            now = _mount_table(self.watched[0])
            if not _unchanged(self.mounts, now):
                self.retired = True  # a mount changed: look again, in a new pod
                return False
            self.mounts = now
        return True

    async def enter(
        self, argv: Sequence[str], env: dict[str, str], cwd: str, output: int
    ) -> PodProcess | None:
        """Start ``argv`` in the pod; None if the pod failed before the command could
        start (it is then killed). Raises `OSError` if the command cannot start."""
        request = json.dumps({"argv": list(argv), "env": env, "cwd": cwd}).encode()
        if len(request) > MAX_REQUEST:
            return None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setblocking(False)
        self.running += 1
        self.used = time.monotonic()
        try:
            try:
                rights = struct.pack("2i", output, theirs.fileno())
                self.channel.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            finally:
                theirs.close()
            if await _receive(mine, START_TIMEOUT_S) != b"A":
                raise ConnectionError("the pod did not accept the command")
        except (OSError, TimeoutError):
            # Nothing was started: the zygote says "A" before it forks the command.
            mine.close()
            self.running -= 1
            await self.kill()
            return None
        except BaseException:
            # Cancelled (a timeout) while the command may be starting: nothing of it
            # may stay, so the pod goes.
            mine.close()
            self.running -= 1
            await asyncio.shield(self.kill())
            raise
        process = PodProcess(self, mine)
        try:
            started = await _receive(mine, START_TIMEOUT_S)
        except (OSError, TimeoutError):
            started = b""
        except BaseException:
            await asyncio.shield(self.kill())
            process.finish(128 + signal.SIGKILL)
            raise
        if started.startswith(b"F") and len(started) >= 5:
            (number,) = struct.unpack("!i", started[1:5])
            process.finish(127)
            named = cwd if started[5:] == b"chdir" else argv[0]
            raise OSError(number, os.strerror(number) if number else "failed", named)
        if started != b"S":
            await self.kill()
            process.finish(128 + signal.SIGKILL)
            return process
        process.start()
        return process

    def release(self) -> None:
        """A command of this pod ended."""
        self.running -= 1
        self.used = time.monotonic()
        if self.retired and self.running == 0:
            _background(self.kill())

    def _signal(self) -> None:
        self.retired = True
        with contextlib.suppress(OSError):
            if self.zygote:
                # The zygote is the pod's PID 1: once it is gone, so is every process
                # of the pod, and bubblewrap exits after it.
                os.kill(self.zygote, signal.SIGKILL)
            else:
                self.process.kill()
        self.channel.close()
        for fd in self.watched:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.watched = []

    async def kill(self) -> None:
        """Kill the pod and everything in it; return once all of it is gone."""
        self._signal()
        await _exited(self.process)

    def close_now(self) -> None:
        """Kill the pod, waiting a second at most (the daemon is stopping)."""
        self._signal()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1.0)


class PodProcess:
    """A command running in a pod: what `asyncio.subprocess.Process` offers a caller
    that waits for it and stops it."""

    def __init__(self, pod: Pod, channel: socket.socket) -> None:
        self._pod = pod
        self._channel = channel
        self.returncode: int | None = None
        """The shell's exit status (128 + the signal that killed it), once all of the
        command's processes are gone."""
        self._done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._watch: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch for the zygote's report."""
        self._watch = asyncio.ensure_future(self._follow())

    def finish(self, returncode: int) -> None:
        """The command ended (all of it gone) with ``returncode``."""
        if self._done.done():
            return
        self.returncode = returncode
        self._done.set_result(returncode)
        self._channel.close()
        self._pod.release()
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def _follow(self) -> None:
        try:
            said = await _receive(self._channel, None)
        except OSError:
            said = b""
        if said.startswith(b"D") and len(said) == 5:
            self.finish(struct.unpack("!i", said[1:])[0])
            return
        # The zygote died (or said nonsense): what it kept may live on in the pod.
        await self._pod.kill()
        self.finish(128 + signal.SIGKILL)

    async def wait(self) -> int:
        """Wait until the command and every process it started are gone."""
        return await asyncio.shield(self._done)

    def send_signal(self, signum: int) -> None:
        """SIGTERM or SIGKILL every process of the command."""
        if self._done.done():
            return
        with contextlib.suppress(OSError):
            self._channel.send(b"K" if signum == signal.SIGKILL else b"T")
        if signum == signal.SIGKILL and self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._confirm())

    async def _confirm(self) -> None:
        """A zygote that does not confirm the kill in time is not trusted: the pod
        dies."""
        try:
            async with asyncio.timeout(CONFIRM_S):
                await asyncio.shield(self._done)
        except TimeoutError:
            await self._pod.kill()
            self.finish(128 + signal.SIGKILL)


class Pool:
    """Live pods, by session and confinement."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, tuple[str, ...]], Pod] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def pod(self, owner: str, confinement: Confinement) -> Pod | None:
        """The live pod of ``owner`` for ``confinement``; a new one if ``reuse`` vouches
        for its layout (the next commands will enter it too); else None."""
        key = (owner, tuple(confinement.prefix))
        pod = self.pods.get(key)
        if pod is not None and pod.running:
            # One command at a time: commands of one pod share a PID namespace, and a
            # command could write to another's output through /proc/<pid>/fd.
            return None
        if pod is not None and pod.serves(confinement.layout):
            return pod
        if pod is not None:
            self._retire(key, pod)
        if not reuse.remembered(confinement.layout):
            return None
        pod = await _start(confinement)
        if pod is None:
            return None
        old = self.pods.get(key)
        if old is not None:  # another command started one meanwhile
            self._retire(key, old)
        self.pods[key] = pod
        self.trim()
        return pod

    def _retire(self, key: tuple[str, tuple[str, ...]], pod: Pod) -> None:
        pod.retired = True
        if self.pods.get(key) is pod:
            del self.pods[key]
        if pod.running == 0:
            _background(pod.kill())

    def trim(self) -> None:
        """Close dead pods, pods idle for `IDLE_S`, and the least recently used idle
        ones beyond `MAX_IDLE_PODS`; look again later while any is left."""
        now = time.monotonic()
        idle = sorted(
            ((pod.used, key) for key, pod in self.pods.items() if pod.running == 0),
            reverse=True,
        )
        for rank, (used, key) in enumerate(idle):
            pod = self.pods[key]
            if rank >= MAX_IDLE_PODS or now - used >= IDLE_S or pod.process.poll() is not None:
                self._retire(key, pod)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pods:
            self._timer = asyncio.get_running_loop().call_later(IDLE_S / 4, self.trim)

    def close(self) -> None:
        """Kill every pod now (the daemon is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pod in self.pods.values():
            pod.close_now()
        self.pods.clear()


_POOL = Pool()
"""One pool per daemon. A pod belongs to no event loop: only a command's own
waiting does (a pod outlives a test's loop until `close` or `IDLE_S`)."""


async def enter(
    confinement: Confinement,
    argv: Sequence[str],
    *,
    cwd: Path,
    output: int,
    owner: str,
) -> PodProcess | None:
    """Run ``argv`` (its environment: ``confinement.env``) in ``owner``'s pod for
    ``confinement``, writing to ``output``; None where no pod can take it (run it in a
    sandbox of its own then). Raises `OSError` when the command cannot start there
    (its directory is missing)."""
    pod = await _POOL.pod(owner, confinement)
    if pod is None:
        return None
    process = await pod.enter(argv, confinement.env, str(cwd), output)
    if process is None:
        _POOL.trim()
    return process


def close() -> None:
    """Kill every pod (the daemon is stopping)."""
    _POOL.close()


def zygotes() -> list[int]:
    """The host PIDs of the live pods' zygotes (``kfd status``, tests)."""
    return [pod.zygote for pod in _POOL.pods.values() if pod.zygote and not pod.retired]


async def _start(confinement: Confinement) -> Pod | None:
    """A new pod for ``confinement``, set up; None if it cannot start."""
    python = interpreter(confinement.layout)
    if python is None:
        return None
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mine.setblocking(False)
    info_read, info_write = os.pipe()
    options = confinement.prefix[:-1]  # without the final "--"
    argv = [*options, "--as-pid-1", "--info-fd", str(info_write), "--"]
    argv += [python, "-I", "-S", "-c", _SOURCE, str(theirs.fileno())]
    try:
        # From the event loop's thread (a fork, a millisecond, once per pod), not a
        # worker's: --die-with-parent follows the thread that started bubblewrap.
        process = subprocess.Popen(  # noqa: ASYNC220
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            pass_fds=(theirs.fileno(), info_write),
            start_new_session=True,
        )
    except OSError:
        mine.close()
        os.close(info_read)
        return None
    finally:
        theirs.close()
        os.close(info_write)
    pod = Pod(confinement.layout, process, mine)
    try:
        info = await pidns.read_all(info_read, START_TIMEOUT_S)
        pod.zygote = int(json.loads(info)["child-pid"])
        if await _receive(mine, START_TIMEOUT_S) != b"R":
            raise ConnectionError("the zygote did not start")
        # Only now: bubblewrap's own mounts are done once the zygote runs.
        pod.watched.append(os.open(f"/proc/{pod.zygote}/mounts", os.O_RDONLY | os.O_CLOEXEC))
        pod.mounts = _mount_table(pod.watched[0])
    except (OSError, ValueError, KeyError, TypeError, TimeoutError):
        await pod.kill()
        return None
    except BaseException:  # cancelled while starting: no half-started pod stays
        await asyncio.shield(pod.kill())
        raise
    finally:
        os.close(info_read)
    return pod


def _mount_table(fd: int) -> frozenset[str]:
    """The lines of the mount table open on ``fd``, read from its start."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return frozenset(b"".join(chunks).decode("utf-8", "replace").splitlines())


HARMLESS_MOUNTS = frozenset({"nsfs"})
"""File systems whose mounts may appear in a pod without retiring it: a network
namespace's handle (``ip netns add`` mounts one under ``/run/netns``, and the
host's mounts there propagate into the pod) holds no data a command could write."""


def _unchanged(before: frozenset[str], now: frozenset[str]) -> bool:
    """Whether the pod's mounts are still those it started with, as far as a
    command can tell: none gone or changed (a mount point renamed over on the
    host detaches it), none added, but namespace handles come and go (pure)."""
    return all(_fs_type(line) in HARMLESS_MOUNTS for line in before ^ now)


def _fs_type(line: str) -> str:
    fields = line.split()
    return fields[2] if len(fields) > 2 else ""


_tasks: set[asyncio.Task[None]] = set()


def _background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _receive(channel: socket.socket, timeout: float | None) -> bytes:
    """One message from ``channel`` (b"" when the other end closed)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        return await loop.sock_recv(channel, 64)


async def _exited(process: subprocess.Popen[bytes]) -> None:
    """Wait for bubblewrap to exit (and reap it)."""
    if process.poll() is not None:
        return
    try:
        handle = os.pidfd_open(process.pid)
    except OSError:
        await asyncio.to_thread(process.wait)
        return
    try:
        await pidns.ended(handle)
    finally:
        os.close(handle)
    process.wait()
