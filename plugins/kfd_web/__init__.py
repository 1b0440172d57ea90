"""kfd_web: ``web_fetch`` and ``web_search``.

A plugin like any other: it imports only `kfd.api`. Both tools reach the
network and return untrusted content. ``web_fetch`` refuses private, loopback
and link-local addresses (checked on every redirect hop, on the resolved
address) unless ``[tools.web_fetch] allow_private`` lists them.

Configuration (all optional)::

    [tools.web_fetch]
    timeout_s = 20
    max_bytes = 5242880
    max_redirects = 5
    max_chars = 25000           # per call; the model pages on with `start`
    max_fetches_per_turn = 20
    allow_private = []          # e.g. ["127.0.0.1", "10.0.0.0/8"]

    [tools.web_search]
    backends = ["brave", "duckduckgo"]   # tried in order: brave, tavily, searxng, duckduckgo
    brave_api_key_env = "BRAVE_API_KEY"
    tavily_api_key_env = "TAVILY_API_KEY"
    searxng_url = ""            # a SearXNG instance with the json format enabled
    # brave_url, tavily_url, duckduckgo_url: the API bases
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfd.api import hookimpl

from .fetch import WebFetchTool
from .guard import AddressGuard
from .search import WebSearchTool

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kfd.api import Tool

__all__ = ["AddressGuard", "WebFetchTool", "WebSearchTool", "kfd_tools"]


@hookimpl
def kfd_tools(config: Mapping[str, Any]) -> list[Tool[Any]]:
    """The web tools; each reads its ``[tools.<name>]`` table when it runs."""
    return [WebFetchTool(), WebSearchTool()]
