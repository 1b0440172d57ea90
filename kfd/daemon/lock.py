"""One daemon per runtime directory, enforced with an advisory lock.

The lock dies with the process (even on kill -9), so a crashed daemon never
blocks the next one; the pid in the file is only for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from kfd.errors import DaemonRunning


class DaemonLock:
    """Held for the daemon's whole life."""

    def __init__(self, runtime_dir: Path) -> None:
        self.path = runtime_dir / "daemon.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DaemonRunning(
                f"a kfd daemon (pid {holder}) already serves {self.path.parent}; "
                "use it, or stop it with `kfd stop`"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
