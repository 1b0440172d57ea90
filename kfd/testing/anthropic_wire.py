"""The Anthropic Messages wire format for the scripted model server.

Streams the way the Messages API does (``POST /v1/messages`` with ``stream:
true``): ``message_start`` with the input usage, a ``ping``, then one content
block after another (``thinking`` with ``thinking_delta`` pieces and a
``signature_delta``, ``text`` with ``text_delta`` pieces, each ``tool_use``
with ``input_json_delta`` pieces), ``message_delta`` with the stop reason and
the output usage, and ``message_stop``. Every event carries its ``event:``
name. Anthropic never interleaves blocks, so parallel tool calls arrive one
whole block after another.

``Reply(repeat_usage=True)`` makes ``message_delta`` repeat every usage
figure, as some compatible servers do. A ``Reply.finish_reason`` in OpenAI's
words is translated (``stop`` -> ``end_turn``, ``tool_calls`` -> ``tool_use``,
``length`` -> ``max_tokens``); others pass through.
"""

from __future__ import annotations

import json
from typing import Any

from kfd.testing.script import RecordedRequest, Reply, ScriptedToolCall, ScriptedUsage
from kfd.testing.wire import (
    ServerEvent,
    WireFormat,
    call_id,
    estimated_usage,
    pieces,
    requested_model,
)

__all__ = ["AnthropicMessagesFormat"]

_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicMessagesFormat(WireFormat):
    """Anthropic Messages (``POST /v1/messages``), streamed or not."""

    name = "anthropic"
    paths = ("/v1/messages", "/messages")

    def wants_stream(self, request: RecordedRequest) -> bool:
        return isinstance(request.body, dict) and bool(request.body.get("stream"))

    def stream_events(self, reply: Reply, request: RecordedRequest) -> list[ServerEvent]:
        usage = estimated_usage(reply, request)
        start_usage = self._input_usage(usage) | {"output_tokens": 1}
        message: dict[str, Any] = {
            "id": f"msg_{request.index}",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": requested_model(request),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": message},
            {"type": "ping"},
        ]
        for index, (block, deltas) in enumerate(self._blocks(reply, request)):
            events.append({"type": "content_block_start", "index": index, "content_block": block})
            events += [
                {"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas
            ]
            events.append({"type": "content_block_stop", "index": index})
        final_usage: dict[str, Any] = {"output_tokens": usage.output_tokens}
        if reply.repeat_usage:
            final_usage = self._input_usage(usage) | final_usage
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
                "usage": final_usage,
            }
        )
        events.append({"type": "message_stop"})
        return [ServerEvent(json.dumps(event), event=event["type"]) for event in events]

    def completion(self, reply: Reply, request: RecordedRequest) -> Any:
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            content.append({"type": "thinking", "thinking": reply.reasoning, "signature": "sig"})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for position, call in enumerate(reply.tool_calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": call_id(request, position, call, "toolu"),
                    "name": call.name,
                    "input": _input(call),
                }
            )
        usage = estimated_usage(reply, request)
        return {
            "id": f"msg_{request.index}",
            "type": "message",
            "role": "assistant",
            "model": requested_model(request),
            "content": content,
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": self._input_usage(usage) | {"output_tokens": usage.output_tokens},
        }

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        kind = code or _ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    # -- pieces ---------------------------------------------------------------

    def _blocks(
        self, reply: Reply, request: RecordedRequest
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if reply.reasoning:
            deltas = [
                {"type": "thinking_delta", "thinking": p}
                for p in pieces(reply.reasoning, reply.chunk_chars)
            ]
            deltas.append({"type": "signature_delta", "signature": "c2lnbmF0dXJl"})
            blocks.append(({"type": "thinking", "thinking": ""}, deltas))
        if reply.text:
            deltas = [
                {"type": "text_delta", "text": p} for p in pieces(reply.text, reply.chunk_chars)
            ]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for position, call in enumerate(reply.tool_calls):
            head = {
                "type": "tool_use",
                "id": call_id(request, position, call, "toolu"),
                "name": call.name,
                "input": {},
            }
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in pieces(call.arguments_json(), reply.chunk_chars)
            ]
            blocks.append((head, deltas))
        return blocks

    @staticmethod
    def _input_usage(usage: ScriptedUsage) -> dict[str, Any]:
        # Anthropic's input_tokens leaves out what was read from or written to the cache.
        fresh = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        return {
            "input_tokens": max(0, fresh),
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cached_input_tokens,
        }

    @staticmethod
    def _stop_reason(reply: Reply) -> str:
        reason = reply.resolved_finish_reason()
        return _STOP_REASONS.get(reason, reason)


def _input(call: ScriptedToolCall) -> Any:
    try:
        return json.loads(call.arguments_json() or "{}")
    except ValueError:
        return {"_unparsed": call.arguments_json()}  # a test scripting garbage
