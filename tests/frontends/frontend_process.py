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
        self.killed = False

    async def kill(self) -> None:
        """SIGKILL: the frontend dies wherever it is, saving nothing."""
        self.killed = True
        self.process.kill()
        await self.process.wait()

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
        assert process.stderr is not None
        running.said.extend((await process.stderr.read()).decode().splitlines(keepends=True))
        print(f"--- {running.name} said:\n" + "".join(running.said))  # shown when a test fails
        expected = (0, -15, -9) if running.killed else (0, -15)
        assert code in expected, f"{running.name} exited with {code}: {running.said}"
