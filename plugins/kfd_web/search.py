"""The ``web_search`` tool: a query to titles, URLs and snippets, from configured backends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import msgspec

from kfd.api import Tool, ToolContext, ToolError, ToolResult

if TYPE_CHECKING:
    from .backends import Endpoint, SearchResult

from .fetch import count_call
from .settings import settings

DEFAULT_URLS = {
    "brave": "https://api.search.brave.com",
    "tavily": "https://api.tavily.com",
    "searxng": "",
    "duckduckgo": "https://html.duckduckgo.com",
}
KEY_ENV = {"brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY"}
BACKENDS = tuple(DEFAULT_URLS)


class SearchSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.web_search]``: the backends, tried in order until one answers."""

    backends: list[str] = msgspec.field(default_factory=list)
    brave_url: str = DEFAULT_URLS["brave"]
    brave_api_key_env: str = KEY_ENV["brave"]
    tavily_url: str = DEFAULT_URLS["tavily"]
    tavily_api_key_env: str = KEY_ENV["tavily"]
    searxng_url: str = ""
    duckduckgo_url: str = DEFAULT_URLS["duckduckgo"]
    timeout_s: float = 15.0
    max_results: int = 8
    max_searches_per_turn: int = 10


NOT_CONFIGURED = (
    "web_search has no backend configured. Ask the user to add one to the kfd config, e.g.\n"
    "[tools.web_search]\n"
    'backends = ["brave", "duckduckgo"]   # tried in order; also "tavily", "searxng"\n'
    "with BRAVE_API_KEY (or TAVILY_API_KEY) in the daemon's environment, or "
    'searxng_url = "https://search.example.org" for a SearXNG instance; "duckduckgo" needs '
    "no key. Meanwhile, use web_fetch on a URL you know."
)


class SearchArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of web_search."""

    query: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
    count: Annotated[int, msgspec.Meta(ge=1, le=20, description="Results (default 8).")] = 0


class WebSearchTool(Tool[SearchArgs]):
    """Search the web through the configured backends."""

    name = "web_search"
    description = "Search the web: titles, URLs and snippets. Read a result with web_fetch."
    Args = SearchArgs
    schema_budget = 320
    read_only = True
    network = True

    def summary(self, args: SearchArgs) -> str:
        return args.query

    def session_rule(self, args: SearchArgs) -> str:
        """``web_search``: the queries go to the backends the user configured."""
        return "web_search"

    def domains(self, args: SearchArgs, config: Mapping[str, Any]) -> list[str] | None:
        """The hosts of the configured backends: the query goes to them, in order."""
        try:
            settings_ = msgspec.convert(dict(config), SearchSettings)
        except msgspec.ValidationError:
            return None
        urls = {
            "brave": settings_.brave_url,
            "tavily": settings_.tavily_url,
            "searxng": settings_.searxng_url,
            "duckduckgo": settings_.duckduckgo_url,
        }
        hosts = [urlsplit(urls.get(b, "")).hostname or "" for b in settings_.backends]
        return [h.lower() for h in hosts if h] or None

    async def run(self, args: SearchArgs, ctx: ToolContext) -> ToolResult:
        import httpx  # imported on first use, with lxml (the backends): a faster daemon start

        from .backends import SEARCHES, BackendError

        config = settings(self.name, ctx.config, SearchSettings)
        unknown = [b for b in config.backends if b not in BACKENDS]
        if unknown:
            raise ToolError(
                f"[tools.web_search] backends: unknown {unknown}; the backends are "
                f"{', '.join(BACKENDS)}"
            )
        if not config.backends:
            return ToolResult(output=NOT_CONFIGURED, is_error=True)
        count_call(ctx, "web_search", config.max_searches_per_turn)
        count = args.count or config.max_results
        failures: list[str] = []
        async with httpx.AsyncClient(timeout=config.timeout_s, trust_env=False) as client:
            for backend in config.backends:
                endpoint, missing = _endpoint(config, backend)
                if missing:
                    failures.append(missing)
                    continue
                try:
                    results = await SEARCHES[backend](client, endpoint, args.query, count)
                except BackendError as exc:
                    failures.append(str(exc))
                    continue
                except httpx.HTTPError as exc:
                    failures.append(f"{backend}: {type(exc).__name__}: {exc or 'no answer'}")
                    continue
                return ToolResult(
                    output=_format(args.query, backend, results[:count], failures),
                    untrusted=True,
                )
        return ToolResult(
            output="web_search failed on every backend:\n- " + "\n- ".join(failures),
            is_error=True,
        )


def _endpoint(config: SearchSettings, backend: str) -> tuple[Endpoint, str | None]:
    from .backends import Endpoint, api_key

    base = {
        "brave": config.brave_url,
        "tavily": config.tavily_url,
        "searxng": config.searxng_url,
        "duckduckgo": config.duckduckgo_url,
    }[backend].rstrip("/")
    if not base:
        return Endpoint("", None), f"{backend}: set [tools.web_search] {backend}_url"
    key_env = {"brave": config.brave_api_key_env, "tavily": config.tavily_api_key_env}.get(backend)
    key = api_key(key_env) if key_env else None
    if key_env and key is None:
        return Endpoint(base, None), f"{backend}: no API key in the environment variable {key_env}"
    return Endpoint(base, key), None


def _format(query: str, backend: str, results: list[SearchResult], failures: list[str]) -> str:
    lines = [f"Results for {query!r} ({backend}):"]
    if not results:
        lines.append("(no results; try other words)")
    for n, result in enumerate(results, 1):
        lines.append(f"\n{n}. {result.title or '(untitled)'}\n   {result.url}")
        if result.snippet:
            lines.append(f"   {result.snippet}")
    if failures:
        lines.append("\n(skipped: " + "; ".join(failures) + ")")
    return "\n".join(lines)
