"""One headless Chromium, shared by every call, closed when idle.

The system's Chromium is driven by Playwright (``executable_path``): no browser
is downloaded at run time. Each call gets a fresh browser context (no cookies
or storage shared between calls); the browser process itself is reused, and
closed after ``idle_close_s`` without calls, or when the daemon stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from kfd.api import ToolError, host_which

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright

CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")

# Quiet, private and deterministic: no background traffic to Google's hosts,
# no GPU, no QUIC, nothing synced.
LAUNCH_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium(configured: str) -> str:
    """The Chromium executable: the configured one, else the first on PATH."""
    if configured:
        found = host_which(configured)
        if found is None:
            raise ToolError(f"[tools.browser_fetch] executable {configured!r} was not found")
        return found
    for name in CANDIDATES:
        found = host_which(name)
        if found is not None:
            return found
    raise ToolError(
        "browser_fetch needs Chromium, and none is installed: ask the user to install the "
        "system package (Debian: apt install chromium) or set [tools.browser_fetch] executable; "
        "meanwhile use web_fetch"
    )


def browser_missing(configured: str) -> str | None:
    """Why ``browser_fetch`` cannot work on this machine (None: it can), for the user."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if configured:
        if host_which(configured) is None:
            return f"[tools.browser_fetch] executable {configured!r} was not found"
        return None
    if not any(host_which(name) for name in CANDIDATES):
        return (
            "no Chromium is installed (Debian: apt install chromium), "
            "or set [tools.browser_fetch] executable"
        )
    return None


class BrowserPool:
    """The shared browser: started on first use, closed when idle."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._executable = ""
        self._users = 0
        self._idle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped = asyncio.Event()
        """Set while no browser runs (after an idle close, say)."""
        self.stopped.set()

    @property
    def running(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    @contextlib.asynccontextmanager
    async def context(self, executable: str, idle_close_s: float) -> AsyncIterator[BrowserContext]:
        """A fresh browser context on the shared browser."""
        from playwright.async_api import Error as PlaywrightError

        browser = await self._acquire(executable)
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, service_workers="block"
            )
            try:
                yield context
            finally:
                with contextlib.suppress(PlaywrightError):
                    await context.close()
        finally:
            self._release(idle_close_s)

    async def _acquire(self, executable: str) -> Browser:
        async with self._lock:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            if not self.running or executable != self._executable:
                await self._close()
                self._browser = await self._launch(executable)
                self._executable = executable
                self.stopped.clear()
            self._users += 1
            assert self._browser is not None
            return self._browser

    async def _launch(self, executable: str) -> Browser:
        # Imported on first use: Playwright costs most of a second at daemon start.
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        try:
            self._playwright = await async_playwright().start()
            return await self._playwright.chromium.launch(
                executable_path=executable, headless=True, args=LAUNCH_FLAGS
            )
        except PlaywrightError as exc:
            await self._close()
            raise ToolError(f"Chromium ({executable}) did not start: {exc.message}") from None

    def _release(self, idle_close_s: float) -> None:
        self._users -= 1
        if self._users == 0:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(idle_close_s, self._close_when_idle)

    def _close_when_idle(self) -> None:
        self._idle = None
        task = asyncio.ensure_future(self._close_if_idle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_if_idle(self) -> None:
        async with self._lock:
            if self._users == 0:
                await self._close()

    async def _close(self) -> None:
        if self._browser is None and self._playwright is None:
            self.stopped.set()
            return  # never started: importing Playwright (0.5 s) to close nothing is waste
        from playwright.async_api import Error as PlaywrightError

        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        self.stopped.set()
        if browser is not None:
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        if playwright is not None:
            with contextlib.suppress(PlaywrightError, OSError):
                await playwright.stop()

    async def close(self) -> None:
        """Close the browser now (the daemon is stopping)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        async with self._lock:
            await self._close()
