"""A small read-only GitHub REST client: GET with the token, errors as ToolErrors."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

import httpx

from kfd.api import ToolError

ACCEPT_JSON = "application/vnd.github+json"
API_VERSION = "2022-11-28"


class GitHub:
    """GETs against one API base (github.com's, or a GitHub Enterprise one)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str | None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.token = token

    async def get(
        self, path: str, *, params: dict[str, Any] | None = None, accept: str = ACCEPT_JSON
    ) -> httpx.Response:
        if any(segment in (".", "..") for segment in unquote(path).split("/")):
            # Resolved before the request: it would reach another repository.
            raise ToolError(f"refused to request {path}: it has '.' or '..' segments")
        headers = {"Accept": accept, "X-GitHub-Api-Version": API_VERSION}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self.client.get(self.base_url + path, params=params, headers=headers)
        except httpx.TimeoutException:
            raise ToolError(f"GitHub did not answer {path} in time; try again") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"cannot reach GitHub at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise ToolError(self._explain(path, response))
        return response

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, params=params or None)
        try:
            return response.json()
        except ValueError:
            raise ToolError(f"GitHub answered {path} with something that is not JSON") from None

    def _explain(self, path: str, response: httpx.Response) -> str:
        status = response.status_code
        message = _message(response)
        limited = response.headers.get("x-ratelimit-remaining") == "0"
        if status == 429 or (status == 403 and (limited or "rate limit" in message.lower())):
            return self._rate_limited(response, message)
        if status == 404:
            return f"GitHub: {path} not found (404). Check the owner/name, path, number and ref" + (
                "" if self.token else "; a private repository needs GITHUB_TOKEN"
            )
        if status == 401:
            return f"GitHub refused the token (401: {message}); check GITHUB_TOKEN / gh auth"
        if status == 422:
            return f"GitHub rejected the request (422: {message})"
        return f"GitHub answered {status} for {path}: {message}"

    def _rate_limited(self, response: httpx.Response, message: str) -> str:
        reset = response.headers.get("x-ratelimit-reset")
        retry_after = response.headers.get("retry-after")
        when = ""
        if reset and reset.isdigit():
            seconds = max(0, int(reset) - int(time.time()))
            stamp = time.strftime("%H:%M:%S UTC", time.gmtime(int(reset)))
            when = f"; it resets at {stamp} (in {seconds // 60} min {seconds % 60} s)"
        elif retry_after:
            when = f"; retry after {retry_after} s"
        limit = response.headers.get("x-ratelimit-limit")
        hint = (
            ""
            if self.token
            else "; without a token the limit is low: set GITHUB_TOKEN (or log in with gh)"
        )
        quota = f" ({limit} requests per hour)" if limit else ""
        return f"GitHub rate limit reached{quota}: {message}{when}{hint}"


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])[:300]
    return response.reason_phrase
