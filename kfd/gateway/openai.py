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

Retries, idle timeouts and usage counting are described in
`OpenAIProvider.stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import EventSource

from kfd.config import ModelConfig, api_key
from kfd.errors import (
    ContextTooLong,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from kfd.gateway.retry import RetryPolicy, is_retryable_status, parse_retry_after
from kfd.gateway.types import (
    Completed,
    ModelRequest,
    Provider,
    ReasoningDelta,
    RequestInfo,
    Retrying,
    StreamEvent,
    TextDelta,
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

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

SUMMARY_PREFIX = "[Summary of the earlier conversation, which was compacted to save space]\n\n"
"""Marks a `SummaryMessage`, which the format can only carry as a user message."""

_REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where compatible servers put reasoning deltas (DeepSeek/vLLM, then OpenRouter/Ollama)."""

_CONTEXT_PATTERN = re.compile(
    r"context.length|context.window|maximum context|too many tokens|too long|"
    r"reduce the length|exceeds? the (?:model'?s? )?(?:maximum|limit)",
    re.IGNORECASE,
)

_HINTS: Mapping[int, str] = {
    401: "check the API key (KFD_API_KEY, or the variable [model] api_key_env names)",
    403: "the API key may lack access to this model or endpoint; check KFD_API_KEY "
    "and the account's permissions",
    404: "check [model] base_url and model (KFD_BASE_URL, KFD_MODEL)",
}
_DEFAULT_HINT = (
    "the provider refused this request as malformed or unsupported; check [model] "
    "base_url and model, and report it if it persists"
)


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

    `feed` returns the text and reasoning deltas a chunk carries; tool calls
    are assembled by their ``index`` (id and name first, arguments in pieces,
    parallel calls interleaved) and only come out whole, in `message`.
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

    def feed(self, chunk: Any) -> list[TextDelta | ReasoningDelta]:
        """Take one parsed chunk; the deltas to pass on. Raises ValueError on a bad shape."""
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk must be a JSON object, got {type(chunk).__name__}")
        if isinstance(chunk.get("id"), str):
            self.completion_id = chunk["id"]
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[TextDelta | ReasoningDelta] = []
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
                self._feed_call(call_delta)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if events:
            self.produced_output = True
        return events

    def _feed_call(self, call_delta: Any) -> None:
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
        if isinstance(arguments, str):
            call.arguments.append(arguments)
        elif isinstance(arguments, dict):
            # A few servers send the arguments as an object instead of text.
            call.arguments.append(json.dumps(arguments))

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
            input_tokens=_int(usage.get("prompt_tokens")),
            # DeepSeek reports cache hits at the top level.
            cached_input_tokens=_int(
                prompt_details.get("cached_tokens", usage.get("prompt_cache_hit_tokens"))
            ),
            output_tokens=_int(usage.get("completion_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
            requests=1,
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


# --------------------------------------------------------------------------
# The provider


class _AttemptFailed(Exception):
    """One attempt failed in a way another attempt may not."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        garbled: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.garbled = garbled
        """The answer arrived but could not be understood."""


class OpenAIProvider(Provider):
    """Streams chat completions from an OpenAI-compatible endpoint.

    One `httpx.AsyncClient` per provider, reused across requests; call
    `aclose` when done. Subclasses for gateways that speak the same format
    (Cloudflare's ``compat`` endpoint) override `endpoint`, `headers` and
    ``request_id_headers``.
    """

    name = "openai"
    request_id_headers: tuple[str, ...] = ("x-request-id", "request-id")
    """Response headers that may carry the provider's id for the request."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``environ`` replaces ``os.environ`` for the API key lookup (tests);
        ``transport`` replaces the network."""
        self.config = config
        self.retry_policy = RetryPolicy.from_config(config)
        self._api_key = api_key(config, environ)
        # The read timeout is the idle timeout: httpx applies it to every read,
        # so a stream that goes silent that long fails, however long it runs.
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.idle_timeout_s,
            write=config.idle_timeout_s,
            pool=config.connect_timeout_s,
        )
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def endpoint(self) -> str:
        """The URL requests are posted to."""
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

    async def stream(self, request: ModelRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream ``request``: deltas, maybe `Retrying`, then one `Completed`.

        An attempt is retried after a retryable HTTP status (see
        `kfd.gateway.retry`), a refused or dropped connection, a stream that
        ends before its finish reason, a stream silent for ``idle_timeout_s``,
        or a chunk that is not JSON. Before each retry a `Retrying` says why
        and how long the pause is; what the failed attempt streamed is void.
        Other 4xx statuses raise `ProviderRejected` (`ContextTooLong` when the
        prompt does not fit) at once. When retries run out,
        `ProviderUnavailable` names the last failure, or `ProviderProtocolError`
        if the answers kept arriving garbled.

        ``Retrying.attempt`` numbers the failed attempt (1 for the first
        request), which is also the number of the retry that follows. In the
        `Completed`, ``usage`` is the last usage report of the successful
        attempt (``info.extra["usage"] == "missing"`` when the server sent
        none), and ``latency_ms`` and ``ttft_ms`` time that attempt alone.

        Closing the stream, or cancelling the task that reads it, closes the
        HTTP response at once.
        """
        body = self.body(request)
        retries = 0
        while True:
            try:
                async with contextlib.aclosing(self._attempt(request, body, retries)) as events:
                    async for event in events:
                        yield event
                return
            except _AttemptFailed as exc:
                failure = exc
            if retries >= self.retry_policy.max_retries:
                raise self._gave_up(failure, attempts=retries + 1) from failure
            delay = self.retry_policy.delay(retries, failure.retry_after)
            retries += 1
            yield Retrying(attempt=retries, delay_s=delay, reason=failure.reason)
            await asyncio.sleep(delay)

    async def _attempt(
        self, request: ModelRequest, body: dict[str, Any], retries: int
    ) -> AsyncGenerator[StreamEvent, None]:
        started = time.monotonic()
        ttft_ms: float | None = None
        assembler = StreamAssembler()
        request_id: str | None = None
        try:
            async with self._client.stream(
                "POST", self.endpoint(), json=body, headers=self.headers(request)
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._refusal(response)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    raise ProviderProtocolError(
                        f"{self.name} answered with {content_type or 'no content type'} "
                        "instead of an event stream; check [model] base_url",
                        status=response.status_code,
                    )
                request_id = next(
                    (response.headers[h] for h in self.request_id_headers if h in response.headers),
                    None,
                )
                done = False
                try:
                    sse_events = EventSource(response).aiter_sse()
                    async with contextlib.aclosing(sse_events) as sse_stream:
                        async for sse in sse_stream:
                            data = sse.data.strip()
                            # After [DONE] the body is drained, not parsed, so the
                            # connection can go back to the pool.
                            if done or not data:
                                continue
                            if data == "[DONE]":
                                done = True
                                continue
                            deltas = self._feed(assembler, data)
                            if ttft_ms is None and assembler.produced_output:
                                ttft_ms = (time.monotonic() - started) * 1000
                            for delta in deltas:
                                yield delta
                except httpx.TransportError as exc:
                    # A finished answer whose connection dropped before the
                    # trailer is still the answer: retrying would bill it twice.
                    if not (done or assembler.complete):
                        raise _AttemptFailed(_describe(exc, self.config)) from exc
                if not (done or assembler.complete):
                    raise _AttemptFailed("the stream ended before the answer was complete")
        except httpx.TransportError as exc:
            raise _AttemptFailed(_describe(exc, self.config)) from exc

        message = assembler.message()
        extra: dict[str, str] = {}
        if assembler.completion_id:
            extra["completion_id"] = assembler.completion_id
        if assembler.model and assembler.model != request.model:
            extra["response_model"] = assembler.model
        if assembler.usage is None:
            extra["usage"] = "missing"
        yield Completed(
            message=message,
            usage=assembler.usage_counts(),
            # [DONE] without a finish reason: infer it rather than invent an error.
            stop_reason=assembler.finish_reason or ("tool_calls" if message.tool_calls else "stop"),
            info=RequestInfo(
                provider=self.name,
                model=request.model,
                latency_ms=(time.monotonic() - started) * 1000,
                ttft_ms=ttft_ms,
                retries=retries,
                request_id=request_id,
                extra=extra,
            ),
        )

    def _feed(self, assembler: StreamAssembler, data: str) -> list[TextDelta | ReasoningDelta]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise _AttemptFailed(
                f"the stream carried a chunk that is not JSON: {_clip(data, 80)!r}", garbled=True
            ) from exc
        if isinstance(chunk, dict) and chunk.get("error") is not None:
            raise self._stream_error(chunk["error"])
        try:
            return assembler.feed(chunk)
        except ValueError as exc:
            raise _AttemptFailed(
                f"the stream carried a malformed chunk: {exc}", garbled=True
            ) from exc

    def _stream_error(self, error: Any) -> Exception:
        """An error a server reports inside a 200 stream (vLLM, OpenRouter do)."""
        message, code = _error_fields({"error": error})
        message = self._scrub(message or "unspecified error")
        if _is_context_error(code, message):
            return self._context_too_long(None, message)
        return _AttemptFailed(f"the provider reported an error mid-stream: {message}")

    def _refusal(self, response: httpx.Response) -> Exception:
        """What an error status means: a failed attempt, or a final rejection."""
        status = response.status_code
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        message, code = _error_fields(parsed)
        if not message:
            message = _clip(response.text.strip(), 300) or response.reason_phrase or "no details"
        message = self._scrub(message)
        if is_retryable_status(status, response.headers):
            return _AttemptFailed(
                f"HTTP {status}: {message}",
                retry_after=parse_retry_after(response.headers),
                status=status,
            )
        if status == 413 or (400 <= status < 500 and _is_context_error(code, message)):
            return self._context_too_long(status, message)
        if 300 <= status < 400:
            hint = "the endpoint redirects; set [model] base_url to where it points"
        else:
            hint = _HINTS.get(status, _DEFAULT_HINT)
        return ProviderRejected(
            f"{self.name} rejected the request to {self._where()} with HTTP {status}: "
            f"{message}; {hint}",
            status=status,
        )

    def _context_too_long(self, status: int | None, message: str) -> ContextTooLong:
        origin = f"HTTP {status}: " if status is not None else ""
        return ContextTooLong(
            f"the request does not fit {self.config.model}'s context window "
            f"({origin}{message}); compact the conversation or start a new session",
            status=status,
        )

    def _gave_up(self, failure: _AttemptFailed, attempts: int) -> ProviderError:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        if failure.garbled:
            return ProviderProtocolError(
                f"{self.name} at {self._where()} kept sending answers kfd cannot read "
                f"({tries}); last: {failure.reason}. Check that [model] base_url is an "
                "OpenAI-compatible endpoint",
                status=failure.status,
            )
        return ProviderUnavailable(
            f"{self.name} at {self._where()} failed {tries}; last: {failure.reason}. "
            "Check the network and the provider's status, then send the message again",
            status=failure.status,
        )

    def _where(self) -> str:
        return self._scrub(self.config.base_url)

    def _scrub(self, text: str) -> str:
        """``text`` without the API key, should a provider echo it back."""
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "[redacted]")
        return text


def _error_fields(parsed: Any) -> tuple[str, str]:
    """The message and code of an error body, in the shapes providers use."""
    if not isinstance(parsed, dict):
        return "", ""
    error = parsed.get("error", parsed)
    if isinstance(error, str):
        return error, ""
    if isinstance(error, list) and error and isinstance(error[0], dict):
        error = error[0]  # some gateways wrap errors in a list
    if not isinstance(error, dict):
        return "", ""
    message = error.get("message") or error.get("detail") or parsed.get("message") or ""
    code = error.get("code") or error.get("type") or ""
    return str(message), str(code)


def _is_context_error(code: str, message: str) -> bool:
    return code == "context_length_exceeded" or bool(_CONTEXT_PATTERN.search(message))


def _describe(exc: httpx.TransportError, config: ModelConfig) -> str:
    """A transport failure in words a user can act on."""
    match exc:
        case httpx.ConnectTimeout():
            return f"no connection within {config.connect_timeout_s:g}s"
        case httpx.ConnectError():
            return f"cannot connect ({str(exc) or type(exc).__name__})"
        case httpx.ReadTimeout():
            return f"the stream stalled: nothing received for {config.idle_timeout_s:g}s"
        case httpx.TimeoutException():
            return f"timed out ({type(exc).__name__})"
        case httpx.RemoteProtocolError():
            return f"the connection dropped mid-answer ({exc})"
        case _:
            return f"the connection failed ({type(exc).__name__}: {exc})"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
