"""Finding the daemon, and starting one on demand."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kfd import paths
from kfd.client.errors import DaemonUnavailable


def runtime_dir() -> Path:
    """The daemon's runtime directory (``$XDG_RUNTIME_DIR/kfd``)."""
    return paths.runtime_dir()


def state_dir() -> Path:
    """Where kfd keeps state (``$XDG_STATE_HOME/kfd``); frontends keep theirs here too."""
    return paths.state_dir()


def daemon_running(directory: Path) -> bool:
    """True if a daemon holds the lock of ``directory``."""
    return paths.daemon_pid(directory) is not None


def ensure_daemon(directory: Path | None = None, timeout: float = 10.0) -> None:
    """Start a daemon for ``directory`` unless one runs; wait until it is ready."""
    directory = directory or runtime_dir()
    if daemon_running(directory):
        return
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state / "daemon.stderr", "w+b") as stderr:
        try:
            start_daemon(dict(os.environ), stderr, timeout)
        except DaemonUnavailable:
            if daemon_running(directory):
                return  # another client started one first
            raise


def start_daemon(
    env: dict[str, str],
    stderr: Any,
    timeout: float = 10.0,
    argv: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``kfd daemon`` detached and return once it reports ready.

    The child is told to report readiness on a private ``$NOTIFY_SOCKET``
    (systemd's protocol), so we wait for the real event, not for a file.
    ``stderr`` is a binary file the daemon's early errors go to; they are
    quoted in the exception when it fails to start.
    """
    with tempfile.TemporaryDirectory(prefix="kfd-spawn-") as scratch:
        address = os.path.join(scratch, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            process = subprocess.Popen(
                # -P and cwd="/": the directory kfd was run in (a workspace, maybe a
                # hostile clone) is neither on the daemon's import path nor its cwd.
                argv or [sys.executable, "-P", "-m", "kfd", "daemon"],
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=dict(env, NOTIFY_SOCKET=address),
                start_new_session=True,
                close_fds=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                readable, _, _ = select.select([notify], [], [], 0.05)
                if readable and b"READY=1" in notify.recv(4096):
                    return process
                code = process.poll()
                if code is not None:
                    stderr.flush()
                    stderr.seek(0)
                    detail = stderr.read().decode(errors="replace").strip()
                    raise DaemonUnavailable(
                        f"the kfd daemon exited with status {code} while starting"
                        + (f":\n{detail[-2000:]}" if detail else "")
                    )
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()
    raise DaemonUnavailable(f"the kfd daemon did not become ready within {timeout:g} s")
