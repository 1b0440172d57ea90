"""Cloudflare Workers AI, through the user's AI Gateway or directly (the default provider).

Through a gateway (``[model] gateway_id`` set), requests go to the gateway's
OpenAI-compatible endpoint::

    POST {base_url}/{account_id}/{gateway_id}/compat/chat/completions
    model: workers-ai/@cf/moonshotai/kimi-k2.6

with the API token both as ``Authorization`` (for Workers AI) and as
``cf-aig-authorization`` (for an authenticated gateway), and kfd's session and
turn in ``cf-aig-metadata`` so the gateway's logs say where a request came
from. The answer's ``cf-aig-log-id`` and ``cf-aig-cache-status`` go to the
ledger; later, `CloudflareProvider.reported_cost` reads that log entry from
Cloudflare's API (``GET /accounts/{account_id}/ai-gateway/gateways/
{gateway_id}/logs/{id}``), whose ``cost`` replaces kfd's estimate.

Without a gateway, requests go to Workers AI's own OpenAI-compatible endpoint,
``{cloudflare_api_url}/accounts/{account_id}/ai/v1/chat/completions``, with
the model's Workers AI name (``@cf/...``); the estimate is then the cost.

Error code 3040 ("out of capacity") is retried like any 429; code 3036 (the
account's daily free allocation is used up) is not, since retrying cannot help.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from kfd.config import api_key_variable
from kfd.errors import ProviderProtocolError, ProviderRejected, ProviderUnavailable
from kfd.gateway.openai import OpenAIProvider
from kfd.gateway.streaming import describe, error_fields

if TYPE_CHECKING:
    from kfd.gateway.types import ModelRequest, RequestInfo

GATEWAY_MODEL_PREFIX = "workers-ai/"
"""How the gateway's compat endpoint names a Workers AI model."""

RETRYABLE_CODES = frozenset({"3040"})
"""Workers AI "out of capacity": another data center may have room in a moment."""

FINAL_CODES = frozenset({"3036"})
"""Workers AI "daily free allocation used up": no retry helps today."""

METADATA_ENTRIES = 5
"""The gateway keeps at most five ``cf-aig-metadata`` entries."""

_LOOKUP_TIMEOUT = httpx.Timeout(10.0)


class CloudflareProvider(OpenAIProvider):
    """Workers AI through an AI Gateway (or directly), in the chat-completions format."""

    name = "cloudflare"
    request_id_headers = ("cf-aig-log-id", "cf-ray", "x-request-id")

    @property
    def through_gateway(self) -> bool:
        """Whether requests go through the user's AI Gateway."""
        return bool(self.config.gateway_id)

    def missing_settings(self) -> str | None:
        """Names what to set when the account or the token is missing."""
        missing = []
        if not self.config.account_id:
            missing.append("CLOUDFLARE_ACCOUNT_ID (or [model] account_id)")
        if not self._api_key:
            missing.append(
                f"{api_key_variable(self.config)} (an API token allowed to run Workers AI"
                " and read AI Gateway logs)"
            )
        if not missing:
            return None
        return (
            f"the model provider is Cloudflare Workers AI (kfd's default), which needs "
            f"{' and '.join(missing)}; set KFD_GATEWAY_ID (or [model] gateway_id) too to go "
            "through your AI Gateway and see gateway-confirmed costs. To use another "
            'provider, set [model] provider = "openai" or "anthropic" in config.toml '
            "(or KFD_PROVIDER)"
        )

    def endpoint(self) -> str:
        """The gateway's compat endpoint, or Workers AI's own without a gateway."""
        account = quote(self.config.account_id, safe="")
        if self.through_gateway:
            gateway = quote(self.config.gateway_id, safe="")
            base = self.config.base_url.rstrip("/")
            return f"{base}/{account}/{gateway}/compat/chat/completions"
        api = self.config.cloudflare_api_url.rstrip("/")
        return f"{api}/accounts/{account}/ai/v1/chat/completions"

    def headers(self, request: ModelRequest) -> dict[str, str]:
        """The bearer token, and through a gateway its authorization and metadata."""
        headers = super().headers(request)
        if self.through_gateway:
            if self._api_key:
                headers["cf-aig-authorization"] = f"Bearer {self._api_key}"
            if request.metadata:
                entries = list(request.metadata.items())[:METADATA_ENTRIES]
                headers["cf-aig-metadata"] = json.dumps(
                    {f"kfd_{key}": value for key, value in entries}, ensure_ascii=True
                )
        return headers

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The chat-completions body, with the model named as the endpoint expects."""
        body = super().body(request)
        model = request.model
        if self.through_gateway and model.startswith("@cf/"):
            model = GATEWAY_MODEL_PREFIX + model
        elif not self.through_gateway and model.startswith(GATEWAY_MODEL_PREFIX):
            model = model[len(GATEWAY_MODEL_PREFIX) :]
        body["model"] = model
        return body

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        """The gateway's log id and cache status, for the ledger."""
        facts: dict[str, str] = {}
        if log_id := headers.get("cf-aig-log-id"):
            facts["gateway_log_id"] = log_id[:200]
        if cache_status := headers.get("cf-aig-cache-status"):
            facts["cache_status"] = cache_status[:40]
        return facts

    def retryable_error(self, status: int, code: str, message: str) -> bool | None:
        """3040 (out of capacity) is retried; 3036 (daily allocation used up) is not."""
        if code in RETRYABLE_CODES:
            return True
        if code in FINAL_CODES:
            return False
        return None

    def hint(self, status: int) -> str:
        """Cloudflare's settings, named."""
        if status in (401, 403):
            return (
                f"check {api_key_variable(self.config)} (or KFD_API_KEY): the token needs "
                "Workers AI access, and AI Gateway Run access for an authenticated gateway"
            )
        if status == 404:
            return (
                "check CLOUDFLARE_ACCOUNT_ID, KFD_GATEWAY_ID and the model ([model] "
                "account_id, gateway_id, model)"
            )
        if status == 429:
            return (
                "the account's Workers AI allocation is used up; upgrade to Workers Paid or "
                "wait for tomorrow's"
            )
        return super().hint(status)

    # -- the gateway's own cost --------------------------------------------

    def reports_cost(self, info: RequestInfo) -> bool:
        """True for a request the gateway logged."""
        return self.through_gateway and bool(info.extra.get("gateway_log_id"))

    async def reported_cost(self, info: RequestInfo) -> float | None:
        """The ``cost`` of the gateway's log entry for the request, once it is there."""
        log_id = info.extra.get("gateway_log_id", "")
        if not (self.through_gateway and log_id):
            return None
        api = self.config.cloudflare_api_url.rstrip("/")
        account = quote(self.config.account_id, safe="")
        gateway = quote(self.config.gateway_id, safe="")
        url = (
            f"{api}/accounts/{account}/ai-gateway/gateways/{gateway}/logs/{quote(log_id, safe='')}"
        )
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            response = await self._client.get(url, headers=headers, timeout=_LOOKUP_TIMEOUT)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"cannot look up the gateway's cost: {self.scrub(describe(exc, self.config))}"
            ) from exc
        if response.status_code == 404:
            return None  # the log lands a few seconds after the answer
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        if response.status_code in (401, 403):
            message, _ = error_fields(parsed)
            raise ProviderRejected(
                f"Cloudflare refused the gateway log look-up (HTTP {response.status_code}: "
                f"{self.scrub(message) or 'no details'}); give {api_key_variable(self.config)} "
                "the AI Gateway Read permission to see gateway-confirmed costs",
                status=response.status_code,
            )
        if not response.is_success:
            raise ProviderUnavailable(
                f"the gateway log look-up failed with HTTP {response.status_code}",
                status=response.status_code,
            )
        result = parsed.get("result") if isinstance(parsed, dict) else None
        if not isinstance(result, dict):
            raise ProviderProtocolError("the gateway log look-up answered without a result")
        cost = result.get("cost")
        if cost is None:
            return None  # logged, not priced yet
        if isinstance(cost, bool) or not isinstance(cost, int | float):
            raise ProviderProtocolError(f"the gateway logged a cost that is not a number: {cost!r}")
        if not math.isfinite(cost) or cost < 0:
            raise ProviderProtocolError(f"the gateway logged an impossible cost: {cost!r}")
        return float(cost)
