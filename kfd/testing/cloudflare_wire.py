"""Cloudflare's paths for the scripted model server: AI Gateway, Workers AI, gateway logs.

Model requests, in the OpenAI chat-completions format (`OpenAIChatFormat`):

- ``POST /v1/{account}/{gateway}/compat/chat/completions`` -- the AI
  Gateway's compat endpoint (``KFD_BASE_URL`` = ``server.base_url``). Answers
  carry ``cf-aig-log-id: log-<request index>`` and ``cf-aig-cache-status``.
- ``POST /client/v4/accounts/{account}/ai/v1/chat/completions`` -- Workers AI
  without a gateway (``[model] cloudflare_api_url`` =
  ``server.cloudflare_api_url``).

And one side answer, which consumes no scripted reply:

- ``GET /client/v4/accounts/{account}/ai-gateway/gateways/{gateway}/logs/{id}``
  -- the gateway's log entry for a request it answered, with
  ``Reply.gateway_cost_usd`` as its ``cost`` (no ``cost`` when that is None).
  The first ``log_misses`` look-ups of each entry answer 404, as the real
  gateway does before the log lands. Look-ups are recorded in
  `CloudflareFormat.lookups`.

Errors use Cloudflare's envelope: ``{"success": false, "errors": [{"code",
"message"}]}``; a numeric ``HttpError.code`` (``"3040"``) is sent as a number.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from kfd.testing.script import RecordedRequest, Reply
from kfd.testing.wire import OpenAIChatFormat, estimated_usage, requested_model

__all__ = ["CloudflareFormat"]

_GATEWAY = re.compile(r"/v1/(?P<account>[^/]+)/(?P<gateway>[^/]+)/compat/chat/completions")
_WORKERS_AI = re.compile(r"/client/v4/accounts/(?P<account>[^/]+)/ai/v1/chat/completions")
_LOG = re.compile(
    r"/client/v4/accounts/(?P<account>[^/]+)/ai-gateway/gateways/(?P<gateway>[^/]+)"
    r"/logs/(?P<id>[^/]+)"
)


class CloudflareFormat(OpenAIChatFormat):
    """The AI Gateway compat endpoint, Workers AI's own, and the gateway's log look-up."""

    name = "cloudflare"
    paths = (
        "/v1/{account}/{gateway}/compat/chat/completions",
        "/client/v4/accounts/{account}/ai/v1/chat/completions",
    )

    def __init__(self, *, log_misses: int = 1) -> None:
        self.log_misses = log_misses
        """Look-ups of each log entry answered 404 before it appears."""
        self.lookups: list[RecordedRequest] = []
        """Every log look-up received, in order."""
        self._logs: dict[str, tuple[Reply, RecordedRequest]] = {}
        self._asked: dict[str, int] = {}
        self._lock = threading.Lock()

    def serves(self, path: str) -> bool:
        return bool(_GATEWAY.fullmatch(path) or _WORKERS_AI.fullmatch(path))

    def response_headers(self, reply: Reply, request: RecordedRequest) -> dict[str, str]:
        if not _GATEWAY.fullmatch(request.path):
            return {}
        log_id = f"log-{request.index}"
        with self._lock:
            self._logs[log_id] = (reply, request)
        return {"cf-aig-log-id": log_id, "cf-aig-cache-status": "MISS"}

    def side_answer(self, request: RecordedRequest) -> tuple[int, Any] | None:
        match = _LOG.fullmatch(request.path)
        if match is None or request.method != "GET":
            return None
        log_id = match["id"]
        with self._lock:
            self.lookups.append(request)
            asked = self._asked[log_id] = self._asked.get(log_id, 0) + 1
            logged = self._logs.get(log_id)
        if logged is None or asked <= self.log_misses:
            return 404, self.error_body(404, "Not Found", "7002")
        reply, model_request = logged
        usage = estimated_usage(reply, model_request)
        entry: dict[str, Any] = {
            "id": log_id,
            "cached": False,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration": 10,
            "model": requested_model(model_request),
            "path": "compat/chat/completions",
            "provider": "workers-ai",
            "success": reply.fault is None,
            "tokens_in": usage.input_tokens,
            "tokens_out": usage.output_tokens,
            "metadata": model_request.headers.get("cf-aig-metadata", ""),
        }
        if reply.gateway_cost_usd is not None:
            entry["cost"] = reply.gateway_cost_usd
        return 200, {"success": True, "errors": [], "messages": [], "result": entry}

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        wire_code: int | str = int(code) if code and code.isdigit() else (code or status)
        return {
            "success": False,
            "errors": [{"code": wire_code, "message": message}],
            "messages": [],
            "result": None,
        }
