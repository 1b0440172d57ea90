"""The ``web_fetch`` tool: a URL to readable text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from kfd.api import Tool, ToolContext, ToolError, ToolResult

from .guard import AddressGuard
from .settings import settings


class FetchSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tools.web_fetch]``."""

    timeout_s: float = 20.0
    max_bytes: int = 5 * 1024 * 1024
    """Bytes read from the server at most (the rest is not downloaded)."""
    max_redirects: int = 5
    max_chars: int = 25_000
    """Characters of text returned per call; the model pages on with ``start``."""
    max_fetches_per_turn: int = 20
    allow_private: list[str] = msgspec.field(default_factory=list)
    """Addresses or networks the guard lets through (``"127.0.0.1"``, ``"10.0.0.0/8"``)."""


class FetchArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of web_fetch."""

    url: Annotated[str, msgspec.Meta(max_length=8192)]
    selector: Annotated[
        str, msgspec.Meta(max_length=500, description="CSS selector of the parts to keep.")
    ] = ""
    prompt: Annotated[
        str,
        msgspec.Meta(max_length=500, description="What you need: keeps the parts matching it."),
    ] = ""
    start: Annotated[int, msgspec.Meta(ge=0, description="Offset to go on from.")] = 0


class WebFetchTool(Tool[FetchArgs]):
    """Fetch a URL and return its main content as Markdown (untrusted)."""

    name = "web_fetch"
    description = "Fetch a URL as readable text: a page's main content as Markdown, JSON, PDF text."
    Args = FetchArgs
    schema_budget = 460
    read_only = True
    network = True

    def summary(self, args: FetchArgs) -> str:
        return args.url

    def session_rule(self, args: FetchArgs) -> str:
        """``web_fetch(domain:<host>)``."""
        return f"web_fetch(domain:{_host(args.url)})"

    def domains(self, args: FetchArgs, config: Mapping[str, Any]) -> list[str]:
        """The URL's host (redirects to other hosts are the server's choice, not the call's)."""
        return [_host(args.url)]

    async def run(self, args: FetchArgs, ctx: ToolContext) -> ToolResult:
        # Imported on first use: trafilatura, lxml and pypdf cost a second at daemon start.
        from .convert import to_text
        from .download import Limits, download
        from .focus import focus

        config = settings(self.name, ctx.config, FetchSettings)
        count_call(ctx, "web_fetch", config.max_fetches_per_turn)
        guard = AddressGuard(self.name, config.allow_private)
        limits = Limits(config.max_bytes, config.timeout_s, config.max_redirects)
        fetched = await download(args.url, guard, limits)
        text = to_text(fetched.body, fetched.content_type, fetched.charset, args.selector)
        if args.prompt and fetched.status < 400:
            text = focus(text, args.prompt, config.max_chars)
        header = f"URL: {fetched.url}\nContent-Type: {fetched.content_type or 'unknown'}\n"
        if fetched.truncated:
            header += f"(only the first {config.max_bytes:,} bytes were downloaded)\n"
        if fetched.status >= 400:
            excerpt = text[:2000]
            return ToolResult(
                output=f"HTTP {fetched.status} from {fetched.url}\n\n{excerpt}",
                is_error=True,
                untrusted=True,
            )
        return ToolResult(
            output=header + "\n" + page(text, args.start, config.max_chars), untrusted=True
        )


def page(text: str, start: int, size: int) -> str:
    """``size`` characters of ``text`` from ``start``, with how to get the rest."""
    if start >= len(text) and text:
        raise ToolError(f"start={start} is past the end of the text ({len(text):,} characters)")
    window = text[start : start + size]
    end = start + len(window)
    if end < len(text):
        window += f"\n\n[… {len(text) - end:,} more characters; continue with start={end}]"
    return window


def count_call(ctx: ToolContext, key: str, limit: int) -> None:
    """Count a call against a per-turn limit kept in the session state."""
    turn, count = ctx.state.get(key, (ctx.turn, 0))
    if turn != ctx.turn:
        count = 0
    if count >= limit:
        raise ToolError(
            f"{key} was already used {count} times this turn (the limit); work with what "
            "you have, or ask the user"
        )
    ctx.state[key] = (ctx.turn, count + 1)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or url).lower()
    except ValueError:
        return url
