"""The Anthropic Messages provider (``POST {base_url}/messages``, streamed).

The answer is server-sent events: ``message_start`` (id, model, input usage),
then per content block ``content_block_start`` / ``content_block_delta`` /
``content_block_stop`` (text, ``thinking``, or ``tool_use`` whose input
arrives as ``input_json_delta`` pieces), then ``message_delta`` (stop reason,
cumulative output usage) and ``message_stop``. ``ping`` events and event types
kfd does not know are skipped.

Choices, in one place:

- Prompt caching: ``cache_control: ephemeral`` marks the end of the tool
  definitions, of the system prompt (kfd's stable prefix), and of the last
  message, so each request re-reads what the previous one cached.
- Tool results, and a user message that follows them, travel in one user
  turn, tool results first, as the API requires.
- Reasoning (``thinking`` blocks) is shown and kept, but not sent back: kfd
  does not ask for extended thinking, and without its signature the API would
  refuse it.
- Usage: Anthropic's ``input_tokens`` leaves out cache reads and writes; kfd's
  ``input_tokens`` counts every prompt token, with ``cached_input_tokens``
  (reads) and ``cache_write_tokens`` (writes) among them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from kfd.config import api_key_variable
from kfd.gateway.openai import SUMMARY_PREFIX
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

API_VERSION = "2023-06-01"
"""The ``anthropic-version`` header: the Messages API as kfd speaks it."""

_CACHE = {"type": "ephemeral"}


# --------------------------------------------------------------------------
# Request translation (pure)


def anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The transcript as Messages API turns (same-role neighbours merged)."""
    wire: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return  # the API refuses empty turns and empty text blocks
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})

    for message in messages:
        match message:
            case UserMessage():
                add("user", _text(message.text))
            case SummaryMessage():
                add("user", _text(SUMMARY_PREFIX + message.text))
            case AssistantMessage():
                blocks = _text(message.text)
                blocks += [
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": _input(call.arguments),
                    }
                    for call in message.tool_calls
                ]
                add("assistant", blocks)
            case ToolResultMessage():
                add(
                    "user",
                    [
                        {
                            "type": "tool_result",
                            "tool_use_id": message.call_id,
                            "content": message.content or "(no output)",
                            "is_error": message.is_error,
                        }
                    ],
                )
    return wire


def anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs as Messages API tools."""
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        for tool in tools
    ]


def messages_body(request: ModelRequest, default_max_tokens: int) -> dict[str, Any]:
    """The JSON body of a streamed Messages request, with cache breakpoints."""
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_output_tokens or default_max_tokens,
        "messages": anthropic_messages(request.messages),
        "stream": True,
    }
    if request.system:
        body["system"] = [{"type": "text", "text": request.system, "cache_control": _CACHE}]
    if request.tools:
        tools = anthropic_tools(request.tools)
        tools[-1]["cache_control"] = _CACHE
        body["tools"] = tools
    if body["messages"]:
        last = body["messages"][-1]["content"][-1]
        last["cache_control"] = _CACHE
    return body


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}] if text else []


def _input(arguments: str) -> dict[str, Any]:
    """A tool call's input object; malformed arguments (already answered as an error) send {}."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --------------------------------------------------------------------------
# Stream assembly (pure)


@dataclass
class _Block:
    kind: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    initial_input: Any = None


class MessagesAssembler:
    """Builds one answer from Messages API stream events; no I/O.

    Usage is merged, never summed: ``message_start`` reports the input,
    ``message_delta`` the cumulative output (some servers repeat all of it).
    """

    def __init__(self) -> None:
        self.blocks: dict[int, _Block] = {}
        self.usage: dict[str, Any] | None = None
        self.stop: str | None = None
        self.message_id: str | None = None
        self.model: str | None = None
        self.produced_output = False

    @property
    def complete(self) -> bool:
        """Whether the answer has ended (a stop reason arrived)."""
        return self.stop is not None

    def feed(self, chunk: Any) -> list[Delta]:
        """Take one parsed event; the deltas to pass on. Raises ValueError on a bad shape."""
        if not isinstance(chunk, dict):
            raise ValueError(f"an event must be a JSON object, got {type(chunk).__name__}")
        kind = chunk.get("type")
        if kind == "message_start":
            message = _object(chunk.get("message"), "message_start.message")
            if isinstance(message.get("id"), str):
                self.message_id = message["id"]
            if isinstance(message.get("model"), str):
                self.model = message["model"]
            self._merge_usage(message.get("usage"))
        elif kind == "content_block_start":
            block = _object(chunk.get("content_block"), "content_block_start.content_block")
            self.blocks[_index(chunk)] = _Block(
                kind=str(block.get("type", "")),
                call_id=str(block.get("id") or ""),
                name=str(block.get("name") or ""),
                initial_input=block.get("input"),
                text=[block["text"]] if isinstance(block.get("text"), str) else [],
            )
            if block.get("type") == "tool_use":
                self.produced_output = True
        elif kind == "content_block_delta":
            return self._delta(_index(chunk), _object(chunk.get("delta"), "delta"))
        elif kind == "message_delta":
            delta = chunk.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop = delta["stop_reason"]
            self._merge_usage(chunk.get("usage"))
        # content_block_stop, message_stop, ping and newer types carry nothing kfd needs.
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[Delta]:
        block = self.blocks.setdefault(index, _Block(kind="text"))
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            block.text.append(delta["text"])
            self.produced_output = True
            return [TextDelta(delta["text"])]
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            if delta["thinking"]:
                block.text.append(delta["thinking"])
                self.produced_output = True
                return [ReasoningDelta(delta["thinking"])]
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            block.arguments.append(delta["partial_json"])
            if delta["partial_json"]:
                return [ToolCallDelta(delta["partial_json"])]
        return []

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage = {**(self.usage or {}), **usage}

    def message(self) -> AssistantMessage:
        """The assembled message; tool calls in block order, text blocks joined."""
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for _, block in sorted(self.blocks.items()):
            if block.kind == "text":
                text.extend(block.text)
            elif block.kind == "thinking":
                reasoning.extend(block.text)
            elif block.kind == "tool_use":
                arguments = "".join(block.arguments)
                if not arguments and isinstance(block.initial_input, dict) and block.initial_input:
                    arguments = json.dumps(block.initial_input)
                calls.append(
                    ToolCall(
                        id=block.call_id or f"toolu_{uuid.uuid4().hex[:24]}",
                        name=block.name,
                        arguments=arguments or "{}",
                    )
                )
        return AssistantMessage(text="".join(text), reasoning="".join(reasoning), tool_calls=calls)

    def usage_counts(self) -> Usage:
        """This request's usage in kfd's terms (every prompt token in ``input_tokens``)."""
        usage = self.usage or {}
        fresh = non_negative_int(usage.get("input_tokens"))
        read = non_negative_int(usage.get("cache_read_input_tokens"))
        written = non_negative_int(usage.get("cache_creation_input_tokens"))
        return Usage(
            input_tokens=fresh + read + written,
            cached_input_tokens=read,
            cache_write_tokens=written,
            output_tokens=non_negative_int(usage.get("output_tokens")),
            requests=1,
        )

    def stop_reason(self) -> str:
        """Anthropic's stop reason (``end_turn``, ``tool_use``, ``max_tokens``, ...)."""
        if self.stop:
            return self.stop
        return "tool_use" if any(b.kind == "tool_use" for b in self.blocks.values()) else "end_turn"

    def extra(self, request: ModelRequest) -> dict[str, str]:
        """The message id, a model other than the one asked, a missing usage report."""
        extra: dict[str, str] = {}
        if self.message_id:
            extra["completion_id"] = self.message_id
        if self.model and self.model != request.model:
            extra["response_model"] = self.model
        if self.usage is None:
            extra["usage"] = "missing"
        return extra


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def _index(chunk: dict[str, Any]) -> int:
    index = chunk.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"a content block index must be a non-negative integer, got {index!r}")
    return index


# --------------------------------------------------------------------------
# The provider


class AnthropicProvider(StreamingProvider):
    """Streams the Messages API; retries and timeouts are `StreamingProvider`'s."""

    name = "anthropic"
    request_id_headers = ("request-id", "x-request-id")

    def missing_settings(self) -> str | None:
        """Names the key variable when no key is set."""
        if self._api_key:
            return None
        return (
            f"the model provider is Anthropic, which needs an API key in "
            f"{api_key_variable(self.config)} (or KFD_API_KEY)"
        )

    def endpoint(self) -> str:
        """``{base_url}/messages``."""
        return self.config.base_url.rstrip("/") + "/messages"

    def headers(self, request: ModelRequest) -> dict[str, str]:
        """The key as ``x-api-key`` and the API version."""
        headers = {"Accept": "text/event-stream", "anthropic-version": API_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""
        return messages_body(request, self.config.max_output_tokens)

    def assembler(self) -> MessagesAssembler:
        """A fresh Messages assembler."""
        return MessagesAssembler()
