"""The one place that counts tokens: a local estimate, calibrated per session.

kfd cannot ship every provider's tokenizer, and must know a request's size
before sending it (to compact in time). The estimate is UTF-8 bytes divided by
four, which tokenizers of current models land near for English and code; each
session then learns its own ratio from the input tokens the provider reports
(`Calibration`), so the figures converge on the real ones after a request or
two, whatever the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from kfd.gateway.types import ModelRequest, ToolSpec
from kfd.transcript import AssistantMessage, Message, SummaryMessage, ToolResultMessage, UserMessage

BYTES_PER_TOKEN = 4.0
MESSAGE_OVERHEAD = 4
"""Tokens each message costs beyond its text (role markers, separators)."""

_json = msgspec.json.Encoder()


def estimate(text: str) -> int:
    """Estimated tokens of ``text``, before calibration."""
    if not text:
        return 0
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)


def message_tokens(message: Message) -> int:
    """Estimated tokens of one transcript message as a provider sends it."""
    match message:
        case UserMessage() | SummaryMessage():
            size = estimate(message.text)
        case AssistantMessage():
            size = estimate(message.text) + estimate(message.reasoning)
            for call in message.tool_calls:
                size += estimate(call.name) + estimate(call.arguments) + MESSAGE_OVERHEAD
        case ToolResultMessage():
            size = estimate(message.content) + estimate(message.call_id)
    return size + MESSAGE_OVERHEAD


def messages_tokens(messages: Iterable[Message]) -> int:
    return sum(message_tokens(m) for m in messages)


def tools_tokens(tools: list[ToolSpec]) -> int:
    """Estimated tokens of the tool definitions (sent as JSON schemas)."""
    return estimate(_json.encode(tools).decode()) if tools else 0


class Calibration:
    """A session's ratio of reported to estimated input tokens.

    The first report sets it; later ones are smoothed (a single odd request,
    such as one served by a different model, moves it only part way), and it
    is bounded, so a provider that reports nonsense cannot make kfd compact at
    every step, or never.
    """

    LOW, HIGH = 0.4, 2.5
    WEIGHT = 0.5

    def __init__(self) -> None:
        self.ratio = 1.0
        self.reported = 0
        """Input tokens the provider reported for the last request."""

    def scale(self, estimated: int) -> int:
        """``estimated`` in this session's real tokens, as far as known."""
        return math.ceil(estimated * self.ratio)

    def observe(self, estimated: int, reported: int) -> None:
        """Learn from one request: ``estimated`` locally, ``reported`` by the provider."""
        if estimated <= 0 or reported <= 0:
            return  # a provider that reports no usage teaches nothing
        observed = min(max(reported / estimated, self.LOW), self.HIGH)
        first = self.reported == 0
        self.reported = reported
        self.ratio = observed if first else self.ratio + (observed - self.ratio) * self.WEIGHT


def request_tokens(request: ModelRequest) -> int:
    """Estimated (uncalibrated) input tokens of a request."""
    system = estimate(request.system) + tools_tokens(request.tools)
    return system + messages_tokens(request.messages)
