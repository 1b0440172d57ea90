"""Test support: a frontend (``kfd notify``, ``kfd chat …``) as a real subprocess."""

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kfd.testing.daemon import KfdDaemon


class FrontendProcess:
    """A running ``kfd`` frontend; `line` waits for what it says on stderr."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.said: list[str] = []

    async def line(self, wanted: str, timeout: float = 15.0) -> str:
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stderr.readline()
                assert raw, f"{self.name} exited ({self.process.returncode}): {self.said}"
                self.said.append(raw.decode())
                if wanted in self.said[-1]:
                    return self.said[-1]


@asynccontextmanager
async def frontend(
    daemon: KfdDaemon, *args: str, ready: str | None = None, **env: str
) -> AsyncIterator[FrontendProcess]:
    """Run ``kfd ARGS`` against ``daemon``; wait for ``ready`` on stderr; SIGTERM at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kfd",
        *args,
        env={**daemon.env, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = FrontendProcess(process, "kfd " + " ".join(args))
    try:
        if ready is not None:
            await running.line(ready)
        yield running
    finally:
        if process.returncode is None:
            process.terminate()
        code = await process.wait()
        assert code in (0, -15), f"{running.name} exited with {code}: {running.said}"
