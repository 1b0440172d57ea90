"""browser_fetch with the system's Chromium against a page that only JavaScript fills."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sites import Page, Site, running_site

from kfd.agent.toolcall import CallContext
from kfd.api import ToolError, ToolResult
from kfd_browser import BrowserFetchTool, BrowserPool

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Chromium is installed by ./test (apt-test.txt)"
)

APP = """<!doctype html><html><head><title>App</title></head><body>
<main id="app"><p>Loading…</p></main>
<script>
setTimeout(() => {
  document.getElementById("app").innerHTML =
    '<article><h1>Rendered by JavaScript</h1><p id="late">The price is 42 widgets, computed ' +
    'in the browser after the page loaded, so a plain fetch never sees it.</p></article>';
}, 150);
</script></body></html>"""

SNOOP = """<!doctype html><html><body><h1>Snoop</h1>
<p>This page tries to reach a private address behind the user's back.</p>
<img src="http://10.9.8.7/pixel.png">
<script>fetch("http://192.168.1.1/api").catch(() => {});</script>
</body></html>"""


@pytest.fixture
def site() -> Iterator[Site]:
    with running_site() as site:
        site.route("/app", Page(body=APP))
        site.route("/snoop", Page(body=SNOOP))
        site.route("/moved", Page(status=302, headers={"Location": "/app"}))
        away = f"http://localhost:{site.port}/app?d=SECRET"
        site.route("/jump", Page(status=302, headers={"Location": away}))
        site.route("/pixel", Page(status=302, headers={"Location": "http://10.9.8.7/p.png"}))
        site.route("/hops", Page(body='<!doctype html><p>Hops</p><img src="/pixel">'))
        yield site


@pytest.fixture
async def pool() -> AsyncIterator[BrowserPool]:
    pool = BrowserPool()
    yield pool
    await pool.close()


async def open_page(
    pool: BrowserPool, tmp_path: Path, config: dict[str, Any] | None = None, **kwargs: Any
) -> ToolResult:
    settings = {"allow_private": ["127.0.0.1"], "screenshot_dir": str(tmp_path), **(config or {})}
    ctx = CallContext(session_id="s-test", workspace=tmp_path, config=settings)
    return await BrowserFetchTool(pool).run(BrowserFetchTool.Args(**kwargs), ctx)


async def test_content_added_by_javascript_is_read_after_waiting_for_it(
    site: Site, pool: BrowserPool, tmp_path: Path
) -> None:
    result = await open_page(
        pool, tmp_path, url=f"{site.url}/app", wait_for="#late", screenshot=True
    )
    assert result.untrusted
    assert "# Rendered by JavaScript" in result.output
    assert "The price is 42 widgets" in result.output and "Loading" not in result.output
    shot = Path(result.output.split("Screenshot: ", 1)[1].splitlines()[0])
    assert shot.parent == tmp_path and shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # The browser stays up for the next call, and is reused.
    assert pool.running
    again = await open_page(pool, tmp_path, url=f"{site.url}/app", wait_for="#late")
    assert "42 widgets" in again.output


async def test_a_selector_that_never_appears_times_out_with_a_clear_message(
    site: Site, pool: BrowserPool, tmp_path: Path
) -> None:
    with pytest.raises(ToolError, match=r"did not finish loading for '#never' within 1 s"):
        await open_page(pool, tmp_path, {"timeout_s": 1}, url=f"{site.url}/app", wait_for="#never")


async def test_requests_to_private_addresses_are_blocked_inside_the_page(
    site: Site, pool: BrowserPool, tmp_path: Path
) -> None:
    result = await open_page(pool, tmp_path, url=f"{site.url}/snoop")
    assert "Snoop\nThis page tries to reach" in result.output
    assert "Blocked 2 request(s) to private addresses." in result.output


async def test_a_private_url_is_refused_before_any_browser_starts(
    site: Site, pool: BrowserPool, tmp_path: Path
) -> None:
    with pytest.raises(ToolError, match=r"127\.0\.0\.1 is a loopback address"):
        await open_page(pool, tmp_path, {"allow_private": []}, url=f"{site.url}/app")
    assert not pool.running and site.requests == []
    with pytest.raises(ToolError, match="only http and https"):
        await open_page(pool, tmp_path, url="file:///etc/passwd")
    with pytest.raises(ToolError, match="executable 'no-such-chromium' was not found"):
        await open_page(pool, tmp_path, {"executable": "no-such-chromium"}, url=f"{site.url}/app")


async def test_the_browser_closes_when_idle(site: Site, pool: BrowserPool, tmp_path: Path) -> None:
    await open_page(pool, tmp_path, {"idle_close_s": 0.05}, url=f"{site.url}/app")
    await asyncio.wait_for(pool.stopped.wait(), 10)
    assert not pool.running


async def test_the_tool_is_offered_only_where_a_chromium_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = BrowserFetchTool(BrowserPool())
    assert await tool.unavailable(tmp_path, {}) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without Chromium
    assert await tool.unavailable(tmp_path, {}) == (
        "no Chromium is installed (Debian: apt install chromium), "
        "or set [tools.browser_fetch] executable"
    )
    # [tools.browser_fetch] as it stands now: the config reloads live.
    configured = {"executable": "my-chrome"}
    assert await tool.unavailable(tmp_path, configured) == (
        "[tools.browser_fetch] executable 'my-chrome' was not found"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "my-chrome").write_text("#!/bin/sh\n")
    (bin_dir / "my-chrome").chmod(0o755)
    # Answered from a cache until what it depends on changes: here, PATH.
    monkeypatch.setenv("PATH", f"{tmp_path}:{bin_dir}")
    assert await tool.unavailable(tmp_path, configured) is None


async def test_each_redirect_is_checked_before_the_browser_follows_it(
    site: Site, pool: BrowserPool, tmp_path: Path
) -> None:
    # On the page's host: followed.
    moved = await open_page(pool, tmp_path, url=f"{site.url}/moved", wait_for="#late")
    assert "42 widgets" in moved.output and moved.output.startswith(f"URL: {site.url}/app")
    # To another host (an open redirect carrying data): refused, nothing fetched there.
    with pytest.raises(
        ToolError, match=r"leads to http://localhost:\d+/app\?d=SECRET, on another host"
    ):
        await open_page(pool, tmp_path, url=f"{site.url}/jump")
    assert "SECRET" not in repr(site.requests)
    # A resource that redirects to a private address: blocked like a direct request.
    hops = await open_page(pool, tmp_path, url=f"{site.url}/hops")
    assert "Hops" in hops.output and "Blocked 1 request(s) to private addresses." in hops.output
