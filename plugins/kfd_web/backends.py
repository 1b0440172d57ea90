"""Search backends: each turns a query into results, or a message saying why not.

Every backend speaks its service's documented API; the base URL of each is
configurable (a self-hosted SearXNG, a test server). The key-less
``duckduckgo`` backend reads DuckDuckGo's HTML results page, so it breaks when
that page changes: use it as the fallback, not the first choice.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import lxml.html
from lxml.cssselect import CSSSelector
from lxml.etree import ParserError


@dataclass(frozen=True, slots=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class BackendError(Exception):
    """A backend could not answer; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a backend lives and the key it sends."""

    base_url: str
    api_key: str | None


Search = Callable[[httpx.AsyncClient, Endpoint, str, int], Awaitable[list[SearchResult]]]


async def brave(
    client: httpx.AsyncClient, endpoint: Endpoint, query: str, count: int
) -> list[SearchResult]:
    """Brave Search API: ``GET /res/v1/web/search`` with ``X-Subscription-Token``."""
    response = await client.get(
        f"{endpoint.base_url}/res/v1/web/search",
        params={"q": query, "count": min(count, 20)},
        headers={"X-Subscription-Token": endpoint.api_key or "", "Accept": "application/json"},
    )
    data = _json(response, "brave")
    results = (data.get("web") or {}).get("results") or []
    return [
        SearchResult(_text(r.get("title")), _text(r.get("url")), _strip(r.get("description")))
        for r in results
        if isinstance(r, dict)
    ]


async def tavily(
    client: httpx.AsyncClient, endpoint: Endpoint, query: str, count: int
) -> list[SearchResult]:
    """Tavily: ``POST /search`` with a bearer key."""
    response = await client.post(
        f"{endpoint.base_url}/search",
        json={"query": query, "max_results": min(count, 20), "search_depth": "basic"},
        headers={"Authorization": f"Bearer {endpoint.api_key or ''}"},
    )
    data = _json(response, "tavily")
    return [
        SearchResult(_text(r.get("title")), _text(r.get("url")), _text(r.get("content")))
        for r in data.get("results") or []
        if isinstance(r, dict)
    ]


async def searxng(
    client: httpx.AsyncClient, endpoint: Endpoint, query: str, count: int
) -> list[SearchResult]:
    """A SearXNG instance: ``GET /search?format=json`` (the json format must be enabled)."""
    response = await client.get(
        f"{endpoint.base_url}/search", params={"q": query, "format": "json"}
    )
    if response.status_code == 403:
        raise BackendError(
            "searxng refused the JSON format (HTTP 403): enable it in the instance's "
            "settings.yml (search: formats: [html, json])"
        )
    data = _json(response, "searxng")
    return [
        SearchResult(_text(r.get("title")), _text(r.get("url")), _text(r.get("content")))
        for r in (data.get("results") or [])[:count]
        if isinstance(r, dict)
    ]


_DDG_RESULT = CSSSelector(".result")
_DDG_LINK = CSSSelector("a.result__a")
_DDG_SNIPPET = CSSSelector(".result__snippet")


async def duckduckgo(
    client: httpx.AsyncClient, endpoint: Endpoint, query: str, count: int
) -> list[SearchResult]:
    """DuckDuckGo's HTML results page, no key needed."""
    response = await client.post(f"{endpoint.base_url}/html/", data={"q": query})
    if response.status_code != 200:
        raise BackendError(f"duckduckgo answered HTTP {response.status_code}; try again later")
    try:
        document = lxml.html.document_fromstring(response.text or "<html></html>")
    except ParserError:
        return []
    results: list[SearchResult] = []
    for node in _DDG_RESULT(document):
        links = _DDG_LINK(node)
        if not links or "result--ad" in (node.get("class") or ""):
            continue
        snippets = _DDG_SNIPPET(node)
        results.append(
            SearchResult(
                title=" ".join(links[0].text_content().split()),
                url=_ddg_target(links[0].get("href") or ""),
                snippet=" ".join(snippets[0].text_content().split()) if snippets else "",
            )
        )
        if len(results) >= count:
            break
    return results


def _ddg_target(href: str) -> str:
    """The real URL of a DuckDuckGo redirect link (``//duckduckgo.com/l/?uddg=...``)."""
    parts = urlsplit(href)
    if parts.path.startswith("/l/"):
        target = parse_qs(parts.query).get("uddg")
        if target:
            return target[0]
    return href


SEARCHES: Mapping[str, Search] = {
    "brave": brave,
    "tavily": tavily,
    "searxng": searxng,
    "duckduckgo": duckduckgo,
}


def _json(response: httpx.Response, backend: str) -> dict[str, Any]:
    if response.status_code == 429:
        retry = response.headers.get("retry-after") or response.headers.get("x-ratelimit-reset")
        when = f"; retry after {retry} s" if retry else ""
        raise BackendError(f"{backend} rate limit reached (HTTP 429){when}")
    if response.status_code in (401, 403):
        raise BackendError(
            f"{backend} refused the API key (HTTP {response.status_code}): {_detail(response)}; "
            "check the key in the environment variable the config names"
        )
    if response.status_code >= 400:
        raise BackendError(f"{backend} answered HTTP {response.status_code}: {_detail(response)}")
    try:
        data = response.json()
    except ValueError:
        raise BackendError(f"{backend} answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise BackendError(f"{backend} answered JSON that is not an object")
    return data


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error") or data.get("detail") or data.get("message")
        if isinstance(error, dict):
            error = error.get("detail") or error.get("error") or error.get("message")
        if error:
            return str(error)[:300]
    return str(data)[:300]


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _strip(value: Any) -> str:
    """Brave marks matches with ``<strong>``: keep the text."""
    text = _text(value)
    if "<" not in text:
        return text
    return " ".join(lxml.html.fragment_fromstring(text, create_parent="p").text_content().split())


def api_key(env_var: str, environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get(env_var) or None
