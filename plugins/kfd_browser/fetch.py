"""The ``browser_fetch`` tool: a page as a browser renders it, JavaScript included."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from kfd.api import Tool, ToolContext, ToolError, ToolResult
from kfd_web.fetch import count_call, page
from kfd_web.guard import AddressGuard
from kfd_web.settings import settings

from .browser import BrowserPool, browser_missing, find_chromium

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

# Content that needs no network and cannot reach the user's: always allowed.
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})


class BrowserSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.browser_fetch]``."""

    executable: str = ""
    """Chromium to run; default: the first of chromium, chromium-browser, google-chrome."""
    timeout_s: float = 30.0
    idle_close_s: float = 120.0
    """Close the shared browser after this long without calls."""
    max_chars: int = 25_000
    max_fetches_per_turn: int = 10
    screenshot_dir: str = ""
    """Where screenshots go; default ``$XDG_CACHE_HOME/kfd/screenshots``."""
    allow_private: list[str] = msgspec.field(default_factory=list)
    """Addresses or networks the page and its resources may reach (see web_fetch)."""


class BrowserArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of browser_fetch."""

    url: Annotated[str, msgspec.Meta(max_length=8192)]
    wait_for: Annotated[
        str, msgspec.Meta(max_length=500, description="CSS selector of late content to await.")
    ] = ""
    screenshot: Annotated[bool, msgspec.Meta(description="Also save a PNG.")] = False
    start: Annotated[int, msgspec.Meta(ge=0, description="Offset to go on from.")] = 0


class BrowserFetchTool(Tool[BrowserArgs]):
    """Open a URL in headless Chromium and return the rendered content."""

    name = "browser_fetch"
    description = (
        "Open a URL in headless Chromium: the page as Markdown once JavaScript ran. Slower "
        "than web_fetch; for pages that need JavaScript."
    )
    Args = BrowserArgs
    schema_budget = 500
    read_only = True
    network = True

    def __init__(self, pool: BrowserPool) -> None:
        self.pool = pool
        self._checked: tuple[tuple[str, str], str | None] | None = None

    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        """Offered only where a Chromium (and Playwright to drive it) is installed:
        checked again when ``executable`` or ``PATH`` changes."""
        key = (str(config.get("executable") or ""), os.environ.get("PATH", ""))
        if self._checked is None or self._checked[0] != key:
            self._checked = (key, browser_missing(key[0]))
        return self._checked[1]

    def summary(self, args: BrowserArgs) -> str:
        return args.url

    def session_rule(self, args: BrowserArgs) -> str:
        """``browser_fetch(domain:<host>)``."""
        return f"browser_fetch(domain:{(urlsplit(args.url).hostname or args.url).lower()})"

    def domains(self, args: BrowserArgs, config: Mapping[str, Any]) -> list[str]:
        """The page's host. What the page itself loads is the page's choice: a page on
        an allowed domain may still reach others (the address guard keeps private
        addresses out)."""
        return [(urlsplit(args.url).hostname or args.url).lower()]

    async def run(self, args: BrowserArgs, ctx: ToolContext) -> ToolResult:
        from kfd_web.convert import html_to_markdown  # trafilatura: imported on first use

        config = settings(self.name, ctx.config, BrowserSettings)
        guard = AddressGuard(self.name, config.allow_private)
        try:
            target = httpx.URL(args.url)
        except httpx.InvalidURL as exc:
            raise ToolError(f"not a valid URL: {args.url!r} ({exc})") from None
        await guard.resolve(target)  # refuse before starting a browser
        count_call(ctx, self.name, config.max_fetches_per_turn)
        executable = find_chromium(config.executable)
        async with self.pool.context(executable, config.idle_close_s) as context:
            refused: dict[str, str] = {}
            host = (target.host or "").lower()
            await context.route("**/*", lambda route: _guarded(route, guard, refused, host))
            browser_page = await context.new_page()
            html, final_url, shot = await _render(browser_page, args, config, refused, ctx)
        text = html_to_markdown(html)
        header = f"URL: {final_url}\n"
        if shot is not None:
            header += f"Screenshot: {shot}\n"
        if refused:
            header += f"Blocked {len(refused)} request(s) to private addresses.\n"
        return ToolResult(
            output=header + "\n" + page(text, args.start, config.max_chars), untrusted=True
        )


async def _render(
    browser_page: Page,
    args: BrowserArgs,
    config: BrowserSettings,
    refused: dict[str, str],
    ctx: ToolContext,
) -> tuple[str, str, Path | None]:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    timeout_ms = config.timeout_s * 1000
    try:
        response = await browser_page.goto(args.url, timeout=timeout_ms, wait_until="load")
        if args.wait_for:
            await browser_page.wait_for_selector(args.wait_for, timeout=timeout_ms)
        shot = None
        if args.screenshot:
            shot = _screenshot_path(config, ctx)
            await browser_page.screenshot(path=str(shot), full_page=True, timeout=timeout_ms)
        html = await browser_page.content()
    except PlaywrightTimeout:
        waited = f"for {args.wait_for!r} " if args.wait_for else ""
        raise ToolError(
            f"the page did not finish loading {waited}within {config.timeout_s:g} s; "
            "check the selector, or raise [tools.browser_fetch] timeout_s"
        ) from None
    except PlaywrightError as exc:
        if args.url in refused or browser_page.url in refused:
            raise ToolError(refused.get(args.url) or refused[browser_page.url]) from None
        first = next(iter(refused.values()), "")
        reason = f" ({first})" if first else ""
        raise ToolError(f"the browser could not load {args.url}: {exc.message}{reason}") from None
    if response is not None and response.status >= 400:
        raise ToolError(f"HTTP {response.status} from {browser_page.url}")
    return html, browser_page.url, shot


async def _guarded(route: Route, guard: AddressGuard, refused: dict[str, str], host: str) -> None:
    """Let a request through only to addresses the guard allows, every hop of it.

    Chromium follows redirects without asking the route again, so each request
    is made here without following them (``max_redirects=0``) and a redirect is
    handed to the browser only once its target passes: the guard for every
    request, and for the page itself the page's host (an open redirect on an
    allowed site must not carry the URL's data elsewhere, as in web_fetch).
    """
    from playwright.async_api import Error as PlaywrightError

    request = route.request
    url = request.url
    if urlsplit(url).scheme in LOCAL_SCHEMES:
        await route.continue_()
        return
    try:
        main = request.is_navigation_request() and request.frame.parent_frame is None
    except PlaywrightError:  # a service worker's request has no frame
        main = False
    problem = await _refusal(url, guard, host if main else None)
    if problem is None:
        try:
            response = await route.fetch(max_redirects=0)
        except PlaywrightError as exc:
            await route.abort("failed")
            refused.setdefault(url, f"the browser could not load {url}: {exc.message}")
            return
        location = response.headers.get("location")
        if not (300 <= response.status < 400 and location):
            await route.fulfill(response=response)
            return
        target = urljoin(url, location)
        problem = await _refusal(target, guard, host if main else None, redirected_from=url)
        if problem is None:
            await route.fulfill(response=response)
            return
    refused[url] = problem
    await route.abort("blockedbyclient")


async def _refusal(
    url: str, guard: AddressGuard, host: str | None, *, redirected_from: str = ""
) -> str | None:
    """Why the browser may not request ``url`` (None: it may)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"not a valid URL: {url!r} ({exc})"
    if host is not None and (parsed.host or "").lower() != host:
        source = redirected_from or "the page"
        return (
            f"{source} leads to {url}, on another host: fetch that URL itself if it is "
            "meant (its host is then what is allowed or asked)"
        )
    try:
        await guard.resolve(parsed)
    except ToolError as exc:
        return str(exc)
    return None


def _screenshot_path(config: BrowserSettings, ctx: ToolContext) -> Path:
    base = Path(config.screenshot_dir).expanduser() if config.screenshot_dir else None
    if base is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        base = Path(cache) / "kfd" / "screenshots"
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return base / f"{ctx.session_id}-{stamp}-{time.monotonic_ns() % 10**6}.png"
