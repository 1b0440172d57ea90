"""One guarded download: redirects followed by hand (each hop checked), a size cap."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from kfd.api import ToolError

from .guard import AddressGuard

USER_AGENT = "kfd-web-fetch/1 (+a coding agent fetching a page for its user)"

REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Download:
    """A fetched body (at most the cap) and what the server said about it."""

    url: str
    """The final URL, after redirects."""
    status: int
    content_type: str
    charset: str | None
    body: bytes
    truncated: bool
    """The body was longer than the cap; ``body`` holds its start."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    timeout_s: float
    max_redirects: int


async def download(url: str, guard: AddressGuard, limits: Limits) -> Download:
    """GET ``url`` through the guard; raises ToolError with a reason the model can act on."""
    try:
        current = first = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolError(f"not a valid URL: {url!r} ({exc})") from None
    timeout = httpx.Timeout(limits.timeout_s)
    # trust_env=False: a proxy from the environment would bypass the address check.
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        for _hop in range(limits.max_redirects + 1):
            request = await guard.pinned_request(
                client,
                "GET",
                current,
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
                },
            )
            if current.host != first.host:
                # The permission engine decided about the first URL's domain only: a
                # redirect elsewhere (an open redirect on an allowed site) must not carry
                # the request past a deny rule or an unasked domain.
                raise ToolError(
                    f"{first} redirects to {current}, on another host: fetch that URL "
                    "itself if you need it, so that its domain is checked"
                )
            try:
                response = await client.send(request, stream=True)
            except httpx.TimeoutException:
                raise ToolError(
                    f"{current} did not answer within {limits.timeout_s:g} s; try again later "
                    "or raise [tools.web_fetch] timeout_s"
                ) from None
            except httpx.HTTPError as exc:
                raise ToolError(f"cannot fetch {current}: {type(exc).__name__}: {exc}") from None
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    try:
                        current = current.join(response.headers["location"])
                    except httpx.InvalidURL:
                        raise ToolError(
                            f"{current} redirects to an invalid URL: "
                            f"{response.headers['location']!r}"
                        ) from None
                    continue
                body, truncated = await _read_capped(response, limits.max_bytes)
            finally:
                await response.aclose()
            content_type = response.headers.get("content-type", "").partition(";")[0]
            return Download(
                url=str(current),
                status=response.status_code,
                content_type=content_type.strip().lower(),
                charset=response.charset_encoding,
                body=body,
                truncated=truncated,
            )
    raise ToolError(
        f"stopped after {limits.max_redirects} redirects (last: {current}); the site loops, "
        "or raise [tools.web_fetch] max_redirects"
    )


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False
