"""Wire formats: how a scripted `Reply` becomes one provider's bytes.

`WireFormat` is what every format implements; `OpenAIChatFormat` is OpenAI's
chat completions, which the Cloudflare format (`kfd.testing.cloudflare_wire`)
builds on; Anthropic's is `kfd.testing.anthropic_wire`. The helpers here
(`ServerEvent`, `estimated_usage`, `call_id`, `pieces`, ...) are what formats
share. The server that applies faults and records requests around them is
`kfd.testing.model_server`.
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from kfd.testing.script import RecordedRequest, Reply, ScriptedToolCall, ScriptedUsage

__all__ = [
    "OpenAIChatFormat",
    "ServerEvent",
    "WireFormat",
    "call_id",
    "estimated_usage",
    "pieces",
    "requested_model",
]


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: ``event:`` (optional) and ``data:`` lines."""

    data: str
    event: str | None = None

    def encode(self) -> bytes:
        """The event's bytes, blank line included."""
        lines = [f"event: {self.event}"] if self.event else []
        lines.extend(f"data: {line}" for line in self.data.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()


def estimated_usage(reply: Reply, request: RecordedRequest) -> ScriptedUsage:
    """The reply's usage, or a rough estimate (4 characters a token) from sizes."""
    if reply.usage is not None:
        return reply.usage
    output_chars = len(reply.text) + len(reply.reasoning)
    output_chars += sum(len(c.name) + len(c.arguments_json()) for c in reply.tool_calls)
    return ScriptedUsage(
        input_tokens=max(1, len(request.raw_body) // 4),
        output_tokens=max(1, output_chars // 4),
        reasoning_tokens=len(reply.reasoning) // 4,
    )


def requested_model(request: RecordedRequest) -> str:
    """The model the request named (``scripted`` when it named none)."""
    body = request.body
    return str(body.get("model", "scripted")) if isinstance(body, dict) else "scripted"


def call_id(
    request: RecordedRequest, position: int, call: ScriptedToolCall, prefix: str = "call"
) -> str:
    """The call's scripted id, or one made up: ``<prefix>_<request>_<position>``."""
    return call.id if call.id is not None else f"{prefix}_{request.index}_{position}"


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of ``size`` characters (none for empty text)."""
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


class WireFormat(abc.ABC):
    """One provider's wire format: which paths it serves and how it encodes a reply.

    Subclasses encode; the server applies faults, delays and recording to
    whatever they produce, so a new format is a small class.
    """

    name: ClassVar[str]
    paths: ClassVar[tuple[str, ...]]

    def serves(self, path: str) -> bool:
        """Whether this format answers requests to ``path`` (query removed)."""
        return path in self.paths

    @abc.abstractmethod
    def wants_stream(self, request: RecordedRequest) -> bool:
        """Whether the request asked for a streamed answer."""

    @abc.abstractmethod
    def stream_events(self, reply: Reply, request: RecordedRequest) -> list[ServerEvent]:
        """The whole stream, terminator included, as server-sent events."""

    @abc.abstractmethod
    def completion(self, reply: Reply, request: RecordedRequest) -> Any:
        """The JSON body of a non-streamed answer."""

    @abc.abstractmethod
    def error_body(self, status: int, message: str, code: str | None) -> Any:
        """The JSON body of an error answer."""

    def response_headers(self, reply: Reply, request: RecordedRequest) -> dict[str, str]:
        """Headers this format adds to the answer of ``request`` (a gateway's log id)."""
        return {}

    def side_answer(self, request: RecordedRequest) -> tuple[int, Any] | None:
        """Answer a request that is not a model request (status, JSON body), or None.

        Side answers consume no scripted reply and are not recorded in
        `ScriptedModelServer.requests`; a format that offers them keeps its
        own record.
        """
        return None


class OpenAIChatFormat(WireFormat):
    """OpenAI chat completions (``POST /v1/chat/completions``), streamed or not.

    Streams the way OpenAI does: a role chunk, reasoning deltas, content
    deltas, tool-call deltas (id and name first, arguments in pieces, by
    ``index``), a chunk with ``finish_reason``, a usage chunk with empty
    ``choices`` when ``stream_options.include_usage`` is set, then
    ``data: [DONE]``.
    """

    name = "openai"
    paths = ("/v1/chat/completions", "/chat/completions")

    def wants_stream(self, request: RecordedRequest) -> bool:
        return isinstance(request.body, dict) and bool(request.body.get("stream"))

    def stream_events(self, reply: Reply, request: RecordedRequest) -> list[ServerEvent]:
        base: dict[str, Any] = {
            "id": f"chatcmpl-{request.index}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": requested_model(request),
        }
        usage = self._usage(estimated_usage(reply, request))

        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{reply.reasoning_field: p} for p in pieces(reply.reasoning, reply.chunk_chars)]
        deltas += [{"content": p} for p in pieces(reply.text, reply.chunk_chars)]
        deltas += self._tool_call_deltas(reply, request)

        choices: list[dict[str, Any]] = [
            {"index": 0, "delta": d, "finish_reason": None} for d in deltas
        ]
        choices.append({"index": 0, "delta": {}, "finish_reason": reply.resolved_finish_reason()})
        chunks = [base | {"choices": [choice]} for choice in choices]
        if reply.repeat_usage:
            chunks = [chunk | {"usage": usage} for chunk in chunks]
        options = request.body.get("stream_options") if isinstance(request.body, dict) else None
        if reply.repeat_usage or (isinstance(options, dict) and options.get("include_usage")):
            chunks.append(base | {"choices": [], "usage": usage})
        events = [ServerEvent(json.dumps(chunk)) for chunk in chunks]
        events.append(ServerEvent("[DONE]"))
        return events

    def completion(self, reply: Reply, request: RecordedRequest) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.reasoning:
            message[reply.reasoning_field] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    **({"id": call_id(request, i, call)} if call.send_id else {}),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{request.index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": requested_model(request),
            "choices": [
                {"index": 0, "message": message, "finish_reason": reply.resolved_finish_reason()}
            ],
            "usage": self._usage(estimated_usage(reply, request)),
        }

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            kind = "rate_limit_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    @staticmethod
    def _usage(usage: ScriptedUsage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }

    def _tool_call_deltas(self, reply: Reply, request: RecordedRequest) -> list[dict[str, Any]]:
        heads: list[dict[str, Any]] = []
        tails: list[list[dict[str, Any]]] = []
        for index, call in enumerate(reply.tool_calls):
            head: dict[str, Any] = {"index": index, "type": "function"}
            if call.send_id:
                head["id"] = call_id(request, index, call)
            head["function"] = {"name": call.name, "arguments": ""}
            heads.append({"tool_calls": [head]})
            tails.append(
                [
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    for piece in pieces(call.arguments_json(), reply.chunk_chars)
                ]
            )
        if not reply.interleave_tool_calls:
            return [d for head, tail in zip(heads, tails, strict=True) for d in (head, *tail)]
        # Every call opens, then argument pieces alternate between calls.
        interleaved = list(heads)
        for round_ in range(max((len(t) for t in tails), default=0)):
            interleaved += [tail[round_] for tail in tails if round_ < len(tail)]
        return interleaved
