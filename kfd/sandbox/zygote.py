"""The zygote: the first process of a pod (`kfd.sandbox.pod`), which starts commands in it.

Never imported by the daemon: `kfd.sandbox.pod` reads this file's text and
runs it as ``python -I -S -c <text> <fd>`` inside bubblewrap (``--as-pid-1``),
so nothing of the workspace is ever run as the zygote. Only the standard
library, imported before the first request.

The zygote is the pod's PID 1: a command (same user, no capabilities) can
neither kill nor stop it, and it is not dumpable, so a command can neither
trace it nor open its ``/proc/1/fd`` or ``environ``. Whatever a command
leaves behind is handed to it, as to any PID 1. It reads requests from its
end of a ``SOCK_SEQPACKET`` pair, one message each and one at a time (the
daemon sends the next once the previous command is gone): a JSON object
with ``argv``, ``env`` and ``cwd``, and two descriptors (`SCM_RIGHTS`): the
command's output and the command's own socket to the daemon. On that socket
it keeps the command (`Keeper`):

- it says ``A`` (accepted) before it forks the command, so a pod that dies
  before that has run nothing; then ``S`` once ``execve`` worked or ``F``
  with the errno and what failed (``chdir``, ``exec``);
- the command: a new session, stdin from ``/dev/null``, stdout and stderr
  the output descriptor, every other descriptor closed, signals at their
  defaults, exactly the given environment;
- ``T`` from the daemon sends SIGTERM to every process of the command, ``K``
  SIGKILL (and the daemon's end closing kills them too);
- when the shell ends, every process it left is killed (as a PID namespace's
  death would), and only when none is left does the zygote say ``D`` with the
  exit status (128 + the signal that killed the shell, as bubblewrap says it).

A zygote that cannot make sure a command's processes are gone exits without
``D``: the pod dies with it.
"""

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import struct
import sys

PR_SET_DUMPABLE = 4
MAX_REQUEST = 256 * 1024
KILL_ROUNDS = 2000
"""Rounds of killing whatever of a command is left before giving up (the pod dies)."""
CAUGHT = tuple(
    getattr(signal, f"SIG{name}")
    for name in ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "ALRM")  # noqa: RUF005
    + ("PIPE", "TSTP", "TTIN", "TTOU", "XFSZ")
)
"""Signals the zygote and keepers ignore (a command cannot stop them with these)."""

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def _descendants(root: int) -> list[int]:
    """Every process under ``root`` (children first found, by their parent links)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            continue
        # The name in parentheses may hold anything: the fields after the last ")".
        fields = text[text.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


class Keeper:
    """What the zygote does for one command."""

    def __init__(self, channel: socket.socket, wake: int) -> None:
        self.channel = channel
        self.wake = wake
        """Readable when SIGCHLD arrived (`signal.set_wakeup_fd`)."""
        self.shell = 0
        self.status: int | None = None
        self.me = os.getpid()

    def reap(self) -> bool:
        """Reap every ended child; False once none is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.shell:
                self.status = status

    def signal_all(self, signum: int) -> list[int]:
        """Send ``signum`` to every process under the keeper; the PIDs found."""
        found = _descendants(self.me)
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        return found

    def kill_all(self) -> bool:
        """SIGKILL everything of the command until none is left; False if that fails."""
        for _ in range(KILL_ROUNDS):
            self.signal_all(signal.SIGKILL)
            if not self.reap():
                return True
            # Killed processes end a moment later: wait for the next one (or 10 ms).
            signal.sigtimedwait([signal.SIGCHLD], 0.01)
        return False

    def report(self, message: bytes) -> None:
        """Tell the daemon (gone already: nothing to tell)."""
        with contextlib.suppress(OSError):
            self.channel.send(message)

    def run(self, argv: list[str], env: dict[str, str], cwd: str, output: int) -> None:
        """Start the command, watch it, and report once all of it is gone."""
        self.report(b"A")
        errors_r, errors_w = os.pipe2(os.O_CLOEXEC)
        self.shell = os.fork()
        if self.shell == 0:
            _exec(argv, env, cwd, output, errors_w)
        os.close(errors_w)
        os.close(output)
        failure = os.read(errors_r, 64)
        os.close(errors_r)
        if failure:
            self.report(b"F" + failure)
        else:
            self.report(b"S")
        self.watch()

    def watch(self) -> None:
        """Until the shell ends: reap what ends, pass on the daemon's signals. Then
        kill all that is left and report. A keeper unsure that all of it is gone
        exits (the pod dies with it)."""
        poller = select.poll()
        poller.register(self.channel, select.POLLIN)
        poller.register(self.wake, select.POLLIN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
        while True:
            self.reap()
            if self.status is not None:
                break
            for fd, _ in poller.poll():
                if fd == self.wake:
                    _drain(self.wake)
                    continue
                try:
                    order = self.channel.recv(16)
                except OSError:
                    order = b""
                if order == b"T":
                    self.signal_all(signal.SIGTERM)
                elif order == b"K":
                    self.signal_all(signal.SIGKILL)
                else:  # the daemon went away (or said nonsense): nothing may stay
                    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
                    if not self.kill_all():
                        os._exit(1)
                    return
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        if not self.kill_all():
            os._exit(1)
        status = self.status or 0
        if os.WIFSIGNALED(status):
            code = 128 + os.WTERMSIG(status)
        else:
            code = os.waitstatus_to_exitcode(status)
        self.report(b"D" + struct.pack("!i", code))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _parse(data: bytes) -> tuple[list[str], dict[str, str], str] | None:
    """A request's argv, environment and directory; None if it is not one."""
    try:
        request = json.loads(data)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    argv, env, cwd = request.get("argv"), request.get("env"), request.get("cwd")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        return None
    if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        return None
    if not isinstance(cwd, str):
        return None
    return argv, env, cwd


def _exec(argv: list[str], env: dict[str, str], cwd: str, output: int, errors: int) -> None:
    """In the command's process: become the command, or report why not (never returns)."""
    step = b"setup"
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.closerange(3, errors)
        os.closerange(errors + 1, 1 << 20)
        for signum in range(1, signal.NSIG):
            if signum not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        step = b"chdir"
        os.chdir(cwd)
        step = b"exec"
        os.execve(argv[0], argv, env)
    except OSError as exc:
        os.write(errors, struct.pack("!i", exc.errno or 0) + step)
    except BaseException:
        os.write(errors, struct.pack("!i", 0) + step)
    os._exit(127)


def serve(channel: socket.socket, wake: int) -> None:
    """Answer requests until the daemon's end closes."""
    space = socket.CMSG_SPACE(2 * struct.calcsize("i"))
    while True:
        try:
            data, ancillary, _, _ = channel.recvmsg(MAX_REQUEST, space)
        except InterruptedError:
            continue
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % struct.calcsize("i")
                fds += struct.unpack(f"{usable // 4}i", payload[:usable])
        if not data:
            return
        request = _parse(data) if len(fds) == 2 else None
        if request is None:
            for fd in fds:
                os.close(fd)
            continue
        keeper = Keeper(socket.socket(fileno=fds[1]), wake)
        try:
            keeper.run(*request, fds[0])
        finally:
            keeper.channel.close()


def main() -> None:
    """The zygote's life: set up, then serve."""
    _prctl(PR_SET_DUMPABLE, 0)
    fd = int(sys.argv[1])
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 20)
    # Children are reaped by waitpid (their CPU time then counts in the zygote's, for
    # the benchmark); SIGCHLD only wakes the poll, and is blocked but while it does.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
    wake, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for signum in CAUGHT:
        signal.signal(signum, signal.SIG_IGN)
    channel = socket.socket(fileno=fd)
    channel.send(b"R")  # set up: the daemon may now look at the pod's mounts
    serve(channel, wake)


if __name__ == "__main__":
    main()
