"""The OpenAI chat-completions provider, for any OpenAI-compatible endpoint.

OpenAI, OpenRouter, vLLM, Ollama, llama.cpp's server and Cloudflare's
``compat`` gateway all speak this format. One request is one
``POST {base_url}/chat/completions`` with ``stream: true`` and
``stream_options.include_usage: true``; the answer is server-sent events, each
a JSON chunk, ended by ``data: [DONE]``.

Choices made for compatibility, in one place:

- The output limit is sent as ``max_tokens``: every compatible server knows
  it, while ``max_completion_tokens`` is newer and not understood everywhere.
- Assistant reasoning is not sent back: the format has no field for it, and
  some servers reject unknown ones.
- A `SummaryMessage` becomes a user message that says it is a summary of the
  earlier conversation.
- ``ModelRequest.metadata`` is not forwarded (OpenAI accepts it only with
  stored completions); subclasses for gateways that want it add a header.

Retries, idle timeouts and usage counting are `kfd.gateway.streaming`'s; see
`StreamingProvider.stream`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from kfd.gateway.streaming import StreamingProvider, non_negative_int
from kfd.gateway.types import (
    Delta,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolSpec,
)
from kfd.protocol import ToolCall, Usage
from kfd.transcript import (
    AssistantMessage,
    Message,
    SummaryMessage,
    ToolResultMessage,
    UserMessage,
)

SUMMARY_PREFIX = "[Summary of the earlier conversation, which was compacted to save space]\n\n"
"""Marks a `SummaryMessage`, which the format can only carry as a user message."""

_REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where compatible servers put reasoning deltas (DeepSeek/vLLM, then OpenRouter/Ollama)."""


# --------------------------------------------------------------------------
# Request translation (pure)


def openai_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    """The transcript in chat-completions form, system prompt first."""
    wire: list[dict[str, Any]] = []
    if system:
        wire.append({"role": "system", "content": system})
    for message in messages:
        match message:
            case UserMessage():
                wire.append({"role": "user", "content": message.text})
            case AssistantMessage():
                entry: dict[str, Any] = {"role": "assistant"}
                # OpenAI wants null, not "", beside tool calls; text alone stays text.
                entry["content"] = message.text or (None if message.tool_calls else "")
                if message.tool_calls:
                    entry["tool_calls"] = [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in message.tool_calls
                    ]
                wire.append(entry)
            case ToolResultMessage():
                # ``content`` is already what the model should read, errors included.
                wire.append(
                    {"role": "tool", "tool_call_id": message.call_id, "content": message.content}
                )
            case SummaryMessage():
                wire.append({"role": "user", "content": SUMMARY_PREFIX + message.text})
    return wire


def openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs as chat-completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def chat_completions_body(request: ModelRequest, default_max_tokens: int) -> dict[str, Any]:
    """The JSON body of a streamed chat-completions request."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": openai_messages(request.system, request.messages),
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_output_tokens or default_max_tokens,
    }
    if request.tools:
        # Left out when empty: some servers reject an empty list.
        body["tools"] = openai_tools(request.tools)
    return body


# --------------------------------------------------------------------------
# Stream assembly (pure)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAssembler:
    """Builds one answer from chat-completion chunks; no I/O.

    `feed` returns the text, reasoning and argument deltas a chunk carries;
    tool calls are assembled by their ``index`` (id and name first, arguments
    in pieces, parallel calls interleaved) and only come out whole, in
    `message` (their argument pieces pass on only to be counted).
    Usage is the last report seen, never a sum: some servers repeat it in
    every chunk.
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.completion_id: str | None = None
        self.model: str | None = None
        self.produced_output = False
        """Whether any text, reasoning or tool call has arrived (for time to first token)."""

    def feed(self, chunk: Any) -> list[Delta]:
        """Take one parsed chunk; the deltas to pass on. Raises ValueError on a bad shape."""
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk must be a JSON object, got {type(chunk).__name__}")
        if isinstance(chunk.get("id"), str):
            self.completion_id = chunk["id"]
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[Delta] = []
        for choice in chunk.get("choices") or ():
            # We never ask for n > 1: any other choice is noise.
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise ValueError("a choice's delta must be a JSON object")
            for name in _REASONING_FIELDS:
                piece = delta.get(name)
                if isinstance(piece, str) and piece:
                    self.reasoning.append(piece)
                    events.append(ReasoningDelta(piece))
                    break
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                events.append(TextDelta(content))
            for call_delta in delta.get("tool_calls") or ():
                arguments = self._feed_call(call_delta)
                if arguments:
                    events.append(ToolCallDelta(arguments))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if events:
            self.produced_output = True
        return events

    def _feed_call(self, call_delta: Any) -> str:
        """Take one tool-call delta; the piece of arguments it brought."""
        if not isinstance(call_delta, dict):
            raise ValueError("a tool-call delta must be a JSON object")
        self.produced_output = True
        call_id = call_delta.get("id") or ""
        index = call_delta.get("index")
        if not isinstance(index, int):
            # Some servers leave ``index`` out: a new id opens a call, else the last continues.
            known = {c.id for c in self.calls.values()}
            if (call_id and call_id not in known) or not self.calls:
                index = len(self.calls)
            else:
                index = max(self.calls)
        call = self.calls.setdefault(index, _PartialCall())
        if call_id and not call.id:
            call.id = call_id
        function = call_delta.get("function") or {}
        name = function.get("name")
        # Some servers repeat the name in every delta: the first one counts.
        if isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            # A few servers send the arguments as an object instead of text.
            arguments = json.dumps(arguments)
        if not isinstance(arguments, str):
            return ""
        call.arguments.append(arguments)
        return arguments

    @property
    def complete(self) -> bool:
        """Whether the answer has ended (a finish reason arrived)."""
        return self.finish_reason is not None

    def message(self) -> AssistantMessage:
        """The assembled assistant message. Calls without an id get a fresh one."""
        calls = [
            ToolCall(
                id=call.id or f"call_{uuid.uuid4().hex[:24]}",
                name=call.name,
                # A tool without parameters may stream no arguments at all.
                arguments="".join(call.arguments) or "{}",
            )
            for _, call in sorted(self.calls.items())
        ]
        return AssistantMessage(
            text="".join(self.text), reasoning="".join(self.reasoning), tool_calls=calls
        )

    def usage_counts(self) -> Usage:
        """This request's usage, counted once."""
        usage = self.usage or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return Usage(
            input_tokens=non_negative_int(usage.get("prompt_tokens")),
            # DeepSeek reports cache hits at the top level.
            cached_input_tokens=non_negative_int(
                prompt_details.get("cached_tokens", usage.get("prompt_cache_hit_tokens"))
            ),
            output_tokens=non_negative_int(usage.get("completion_tokens")),
            reasoning_tokens=non_negative_int(completion_details.get("reasoning_tokens")),
            requests=1,
        )

    def stop_reason(self) -> str:
        """The finish reason; ``[DONE]`` without one is inferred, not invented as an error."""
        if self.finish_reason:
            return self.finish_reason
        return "tool_calls" if self.calls else "stop"

    def extra(self, request: ModelRequest) -> dict[str, str]:
        """The completion id, a model other than the one asked, a missing usage report."""
        extra: dict[str, str] = {}
        if self.completion_id:
            extra["completion_id"] = self.completion_id
        if self.model and self.model != request.model:
            extra["response_model"] = self.model
        if self.usage is None:
            extra["usage"] = "missing"
        return extra


# --------------------------------------------------------------------------
# The provider


class OpenAIProvider(StreamingProvider):
    """Streams chat completions from an OpenAI-compatible endpoint.

    Subclasses for gateways that speak the same format (Cloudflare's
    ``compat`` endpoint) override `endpoint`, `headers` and
    ``request_id_headers``; retries and timeouts are `StreamingProvider`'s.
    """

    name = "openai"

    def endpoint(self) -> str:
        """``{base_url}/chat/completions``."""
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def headers(self, request: ModelRequest) -> dict[str, str]:
        """Request headers; the API key, when one is set, as a bearer token."""
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""
        return chat_completions_body(request, self.config.max_output_tokens)

    def assembler(self) -> StreamAssembler:
        """A fresh chat-completions assembler."""
        return StreamAssembler()
