"""A real kfd daemon in a subprocess, with its own private XDG directories.

For kfd's own end-to-end tests and for plugin authors::

    with ScriptedModelServer([Reply(text="hi")]) as model, KfdDaemon(model=model) as daemon:
        async with await daemon.client() as client:
            ...

Nothing is shared with the user's real kfd: runtime, state, config and home
directories all live under one temporary directory (short, because ``ipc://``
paths are limited to about 100 bytes).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Protocol

from kfd.client import Client, start_daemon


class _ModelEndpoint(Protocol):
    @property
    def base_url(self) -> str: ...


FAST_RETRIES = """
[model]
retry_base_s = 0.01
retry_max_s = 0.2
idle_timeout_s = 5
"""


class KfdDaemon:
    """Start with `start` (or ``with``); `kill` and `restart` for crash tests."""

    #: Every daemon made in this process, oldest first (for failure reports).
    made: ClassVar[list[weakref.ref[KfdDaemon]]] = []

    def __init__(
        self,
        *,
        model: _ModelEndpoint | None = None,
        config: str = FAST_RETRIES,
        env: dict[str, str] | None = None,
        root: Path | None = None,
        wrap: list[str] | None = None,
    ) -> None:
        """``wrap`` runs the daemon (and `cli`) under a command, such as
        ``ip netns exec NAME`` (`kfd.testing.netns`)."""
        self.root = root or Path(tempfile.mkdtemp(prefix="kfd-"))
        self._owns_root = root is None
        self.home = self.root / "home"
        self.runtime_dir = self.root / "run" / "kfd"
        self.state_dir = self.root / "state" / "kfd"
        self.config_dir = self.root / "config" / "kfd"
        for directory in (self.home, self.config_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (self.root / "run").mkdir(mode=0o700, exist_ok=True)
        (self.config_dir / "config.toml").write_text(config)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("KFD_", "XDG_", "NOTIFY_SOCKET"))
        }
        self.env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.root / "run"),
            XDG_STATE_HOME=str(self.root / "state"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            KFD_PROVIDER="openai",
            KFD_MODEL="scripted-model",
            KFD_API_KEY="sk-test-not-a-real-key",
        )
        if model is not None:
            self.env["KFD_BASE_URL"] = model.base_url
        self.env.update(env or {})
        self.wrap = list(wrap or [])
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        KfdDaemon.made.append(weakref.ref(self))

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 20.0) -> KfdDaemon:
        """Start the daemon; returns once it reported READY=1."""
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = open(self.root / "daemon.stderr", "a+b")  # noqa: SIM115 - kept open
        self.process = start_daemon(
            self.env,
            self._stderr,
            timeout,
            argv=[*self.wrap, sys.executable, "-m", "kfd", "daemon", "--log-stderr"],
        )
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: a crash at whatever instant the daemon is in."""
        return self._signal(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 20.0) -> KfdDaemon:
        if self.running:
            self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _signal(self, signum: int, timeout: float) -> int:
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signum)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def close(self) -> None:
        if self.running:
            self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> KfdDaemon:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- use ---------------------------------------------------------------

    async def client(self, name: str = "test", timeout: float = 10.0) -> Client:
        """A connected client (use as ``async with await daemon.client():``)."""
        return await Client.connect(self.runtime_dir, name=name, timeout=timeout)

    def cli(
        self, *args: str, timeout: float = 60.0, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``kfd`` command line against this daemon."""
        return subprocess.run(
            [*self.wrap, sys.executable, "-m", "kfd", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    @property
    def database(self) -> Path:
        return self.state_dir / "kfd.db"

    def log_text(self) -> str:
        """The daemon's log file and early stderr, for assertions and failures."""
        parts = []
        for path in (self.state_dir / "daemon.log", self.root / "daemon.stderr"):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    async def wait_for_log(
        self, done: Callable[[str], bool], timeout: float = 10.0, every_s: float = 0.2
    ) -> str:
        """The log text once ``done(text)`` holds, woken by writes to the state
        directory (and every ``every_s`` for a write made before the watch
        began); TimeoutError with the log's tail after ``timeout``."""
        import watchfiles

        text = self.log_text()
        try:
            async with asyncio.timeout(timeout):
                async for _ in watchfiles.awatch(
                    self.state_dir, rust_timeout=int(every_s * 1000), yield_on_timeout=True
                ):
                    if done(text):
                        return text
                    text = self.log_text()
        except TimeoutError:
            tail = text[-3000:]
            raise TimeoutError(f"not in the daemon's log within {timeout:g} s:\n{tail}") from None
        return text  # pragma: no cover (awatch never ends by itself)
