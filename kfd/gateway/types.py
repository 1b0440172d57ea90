"""Provider-neutral model requests and stream events.

The turn loop builds a `ModelRequest`, asks a `Provider` to stream it, and
reads `StreamEvent` values: text, reasoning and tool-call argument deltas
as they arrive, a `Retrying` notice when an attempt failed and another follows, and exactly one
`Completed` at the end (or a `kfd.errors.ProviderError`). A provider adapts one
wire format (OpenAI chat completions, Anthropic Messages, Cloudflare's gateway)
to this shape; retries, idle timeouts and usage counting live behind it.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from typing import Any, Protocol

import msgspec

from kfd.protocol import Usage
from kfd.transcript import AssistantMessage, Message


class ToolSpec(msgspec.Struct, kw_only=True):
    """A tool as the model sees it: name, description, JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


class ModelRequest(msgspec.Struct, kw_only=True):
    """One request to a model. ``system`` is the stable prefix, sent first."""

    model: str
    system: str
    messages: list[Message]
    tools: list[ToolSpec] = msgspec.field(default_factory=list)
    max_output_tokens: int | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    """Opaque labels (session id, turn) a provider may forward, e.g. as
    Cloudflare's ``cf-aig-metadata``."""


class TextDelta(msgspec.Struct):
    text: str


class ReasoningDelta(msgspec.Struct):
    text: str


class ToolCallDelta(msgspec.Struct):
    """A piece of a tool call's arguments, as it arrived.

    Nothing shows it (a call comes out whole, in `Completed`); it is output
    the model produced, so what arrived of an interrupted answer counts it.
    """

    text: str


Delta = TextDelta | ReasoningDelta | ToolCallDelta
"""What one piece of an answer can be."""


class Retrying(msgspec.Struct, kw_only=True):
    """An attempt failed; another follows after ``delay_s``.

    Any text streamed by the failed attempt is void: the next attempt starts
    the message again from nothing.
    """

    attempt: int
    delay_s: float
    reason: str


class RequestInfo(msgspec.Struct, kw_only=True):
    """Facts about the request for the ledger."""

    provider: str
    model: str
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    retries: int = 0
    request_id: str | None = None
    """The provider's id for the request (e.g. Cloudflare's cf-aig-log-id)."""
    extra: dict[str, str] = msgspec.field(default_factory=dict)
    """More facts: ``gateway_log_id`` and ``cache_status`` behind a gateway,
    ``usage: missing`` when the provider reported none, ..."""


class Completed(msgspec.Struct, kw_only=True):
    """The whole answer. ``usage`` counts this request once."""

    message: AssistantMessage
    usage: Usage
    stop_reason: str
    info: RequestInfo


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | Retrying | Completed


class SendObserver(Protocol):
    """Told about every attempt of a request around its sending (the write-ahead ledger).

    `before_send` is awaited before an attempt's first byte leaves (attempt 0
    is the first request, 1 the first retry): the ledger commits its row
    there. It returns a label sent with the attempt (``X-Kfd-Request``), so
    the provider's or a proxy's logs name the ledger row. `sent` is called
    once the attempt's last byte is out (the provider has received it).
    """

    async def before_send(self, attempt: int) -> str:
        """Prepare for attempt ``attempt``; its label."""

    def sent(self, attempt: int) -> None:
        """Attempt ``attempt`` has been sent whole."""


class Provider(abc.ABC):
    """Speaks one provider's wire format."""

    name: str

    @abc.abstractmethod
    def stream(
        self, request: ModelRequest, observer: SendObserver | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream one request: deltas, maybe `Retrying`, then one `Completed`.

        ``observer`` is told before and after each attempt is sent.
        Raises `kfd.errors.ProviderError` when the request fails for good.
        Cancelling the consumer, or closing the generator, closes the
        connection at once.
        """

    def reports_cost(self, info: RequestInfo) -> bool:
        """Whether `reported_cost` can tell what the request of ``info`` cost.

        True for a request a gateway logged with its cost (Cloudflare's AI
        Gateway); the ledger then looks the cost up in the background.
        """
        return False

    async def reported_cost(self, info: RequestInfo) -> float | None:
        """The provider's own figure for what a finished request cost, in US dollars.

        None while the provider does not know yet (ask again later). Raises
        `kfd.errors.ProviderRejected` when it never will (the credentials lack
        the permission), another `kfd.errors.ProviderError` when the look-up
        failed this time.
        """
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
