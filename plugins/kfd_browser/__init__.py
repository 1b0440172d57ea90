"""kfd_browser: ``browser_fetch``, a page rendered by headless Chromium.

Playwright drives the system's Chromium (installed from the OS packages; no
browser is downloaded at run time). The browser is shared by every call and
closed when idle or when the daemon stops. Every request the page makes goes
through the same private-address guard as ``web_fetch`` (kfd_web's), so a
page cannot make the browser reach the user's network. Configuration::

    [tools.browser_fetch]
    executable = ""          # default: chromium, chromium-browser or google-chrome on PATH
    timeout_s = 30
    idle_close_s = 120
    screenshot_dir = ""      # default: $XDG_CACHE_HOME/kfd/screenshots
    allow_private = []       # e.g. ["127.0.0.1"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import hookimpl

from .browser import BrowserPool
from .fetch import BrowserFetchTool

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from kfd.api import Tool

__all__ = ["BrowserFetchTool", "BrowserPool", "kfd_shutdown", "kfd_tools"]

_pool = BrowserPool()
"""The daemon's one browser (a plugin module is loaded once per daemon)."""


@hookimpl
def kfd_tools(config: Mapping[str, Any]) -> list[Tool[Any]]:
    """The browser tool; it reads ``[tools.browser_fetch]`` when it runs, and is
    offered only where a Chromium is installed."""
    return [BrowserFetchTool(_pool)]


@hookimpl
def kfd_shutdown() -> Coroutine[Any, Any, None]:
    """Close the browser."""
    return _pool.close()
