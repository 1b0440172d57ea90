"""What every HTTP streaming provider shares: retries, refusals, idle timeouts.

A provider module (OpenAI chat completions, Anthropic Messages, Cloudflare's
gateway) supplies the wire format: where to post (`StreamingProvider.endpoint`),
which headers and body (`headers`, `body`), and an `Assembler` that turns the
server-sent events into one answer. This module supplies the rest, once: the
attempt loop with its backoff, reading a refusal (retry, reject, or "does not
fit"), noticing a stream that stalls or ends early, timing the first token,
and keeping the API key out of every message.

Provider errors, from `kfd.errors`::

    ProviderError
    ├── ProviderRejected      a 4xx other than 408/409/429: not retried
    │   └── ContextTooLong    the prompt does not fit the model's window
    ├── ProviderUnavailable   retries exhausted (429, 5xx, dropped or stalled streams)
    └── ProviderProtocolError the answers kept arriving garbled
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import re
import time
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from kfd.config import ModelConfig, api_key, api_key_variable
from kfd.errors import (
    ContextTooLong,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from kfd.gateway.pacing import PACING, paced_transport
from kfd.gateway.retry import RetryPolicy, is_retryable_status, parse_retry_after
from kfd.gateway.sse import SseDecoder
from kfd.gateway.types import (
    Completed,
    Delta,
    ModelRequest,
    Provider,
    RequestInfo,
    Retrying,
    SendObserver,
    StreamEvent,
)
from kfd.redact import learn_secrets, scrub

LABEL_HEADER = "X-Kfd-Request"
"""Carries the request's ledger row id (and attempt), for the provider's logs."""

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from kfd.protocol import Usage
    from kfd.transcript import AssistantMessage

_CONTEXT_PATTERN = re.compile(
    r"context.length|context.window|maximum context|too many tokens|too long|"
    r"reduce the length|exceeds? the (?:model'?s? )?(?:maximum|limit)",
    re.IGNORECASE,
)

_DEFAULT_HINT = (
    "the provider refused this request as malformed or unsupported; check [model] "
    "base_url and model, and report it if it persists"
)


class Assembler(Protocol):
    """Builds one answer from a provider's stream chunks; no I/O."""

    @property
    def complete(self) -> bool:
        """Whether the answer has ended properly (its finish marker arrived)."""

    @property
    def produced_output(self) -> bool:
        """Whether any text, reasoning or tool call has arrived yet."""

    def feed(self, chunk: Any) -> list[Delta]:
        """Take one parsed chunk; the deltas to pass on (text, reasoning, and the
        pieces of tool-call arguments). ValueError on a bad shape."""

    def message(self) -> AssistantMessage:
        """The assembled assistant message."""

    def usage_counts(self) -> Usage:
        """This request's usage, counted once."""

    def stop_reason(self) -> str:
        """Why the answer ended, in the provider's words."""

    def extra(self, request: ModelRequest) -> dict[str, str]:
        """Facts for the ledger (``usage: missing``, a response id, ...)."""


class AttemptFailed(Exception):
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


class StreamingProvider(Provider):
    """Streams one request over HTTP with server-sent events, retrying as it must.

    One `httpx.AsyncClient` per provider, reused across requests; call
    `aclose` when done. Subclasses implement `endpoint`, `headers`, `body` and
    `assembler`, and may override `response_facts`, `retryable_error` and
    `missing_settings`.
    """

    name = "streaming"
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
        self.config = config.resolved()
        self.retry_policy = RetryPolicy.from_config(self.config)
        self._api_key = api_key(self.config, environ)
        if self._api_key:
            # kfd.redact (the one place that redacts) takes it out of whatever is kept.
            learn_secrets({f"${api_key_variable(self.config)}": self._api_key})
        # The read timeout is the idle timeout: httpx applies it to every read,
        # so a stream that goes silent that long fails, however long it runs.
        timeout = httpx.Timeout(
            connect=self.config.connect_timeout_s,
            read=self.config.idle_timeout_s,
            write=self.config.idle_timeout_s,
            pool=self.config.connect_timeout_s,
        )
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport or paced_transport())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # -- what a wire format supplies ----------------------------------------

    @abc.abstractmethod
    def endpoint(self) -> str:
        """The URL requests are posted to."""

    @abc.abstractmethod
    def headers(self, request: ModelRequest) -> dict[str, str]:
        """Request headers, credentials included."""

    @abc.abstractmethod
    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""

    @abc.abstractmethod
    def assembler(self) -> Assembler:
        """A fresh assembler for one attempt."""

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        """Facts from the response headers for the ledger (e.g. a cache status)."""
        return {}

    def retryable_error(self, status: int, code: str, message: str) -> bool | None:
        """Whether an error answer is worth another attempt; None lets the status decide.

        For providers whose error codes say more than their statuses (Cloudflare
        answers "out of capacity" and "daily allocation used up" both with 429).
        """
        return None

    def missing_settings(self) -> str | None:
        """What the user must set before any request can work, or None."""
        return None

    # -- the attempt loop -------------------------------------------------------

    async def stream(
        self, request: ModelRequest, observer: SendObserver | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream ``request``: deltas, maybe `Retrying`, then one `Completed`.

        An attempt is retried after a retryable HTTP status (see
        `kfd.gateway.retry`), a refused or dropped connection, a stream that
        ends before its finish marker, a stream silent for ``idle_timeout_s``,
        or a chunk that is not JSON. Before each retry a `Retrying` says why
        and how long the pause is; what the failed attempt streamed is void.
        Other 4xx statuses raise `ProviderRejected` (`ContextTooLong` when the
        prompt does not fit) at once. When retries run out,
        `ProviderUnavailable` names the last failure, or `ProviderProtocolError`
        if the answers kept arriving garbled.

        ``Retrying.attempt`` numbers the failed attempt (1 for the first
        request), which is also the number of the retry that follows. In the
        `Completed`, ``usage`` is the usage the successful attempt reported
        (``info.extra["usage"] == "missing"`` when the server sent none), and
        ``latency_ms`` and ``ttft_ms`` time that attempt alone.

        Closing the stream, or cancelling the task that reads it, closes the
        HTTP response at once.

        ``observer`` (the write-ahead ledger) is awaited before each attempt's
        first byte, and told when its last byte has left (from httpcore's
        trace of the exchange).
        """
        problem = self.missing_settings()
        if problem is not None:
            raise ProviderRejected(problem)
        # Encoded once, before any ledger row is written: the time between the
        # row's commit and the first byte (a crash there bills nothing but
        # leaves a row) stays as short as it can be.
        body = json.dumps(self.body(request), ensure_ascii=False, separators=(",", ":")).encode()
        retries = 0
        while True:
            try:
                label = await observer.before_send(retries) if observer is not None else ""
                attempt = self._attempt(request, body, retries, label, observer)
                async with contextlib.aclosing(attempt) as events:
                    async for event in events:
                        yield event
                return
            except AttemptFailed as exc:
                failure = exc
            if retries >= self.retry_policy.max_retries:
                raise self._gave_up(failure, attempts=retries + 1) from failure
            delay = self.retry_policy.delay(retries, failure.retry_after)
            retries += 1
            yield Retrying(attempt=retries, delay_s=delay, reason=failure.reason)
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        request: ModelRequest,
        body: bytes,
        retries: int,
        label: str = "",
        observer: SendObserver | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        started = time.monotonic()
        ttft_ms: float | None = None
        assembler = self.assembler()
        request_id: str | None = None
        facts: dict[str, str] = {}
        headers = {**self.headers(request), "content-type": "application/json"}
        extensions: dict[str, Any] = {}
        if label:
            headers[LABEL_HEADER] = label
        if observer is not None:

            async def trace(name: str, info: Mapping[str, Any]) -> None:
                if name.endswith("send_request_body.complete"):
                    observer.sent(retries)

            extensions["trace"] = trace
        try:
            async with self._client.stream(
                "POST", self.endpoint(), content=body, headers=headers, extensions=extensions
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
                facts = self.response_facts(response.headers)
                done = False
                decoder = SseDecoder()
                try:
                    # Counted while read: other streams' reads wait for it
                    # (kfd.gateway.pacing).
                    with PACING.reading():
                        async for chunk in response.aiter_bytes():
                            deltas: list[Delta] = []
                            for event in self._decode(decoder, chunk):
                                data = event.strip()
                                # After the end the body is drained, not parsed, so
                                # the connection can go back to the pool.
                                if done or not data:
                                    continue
                                if data == "[DONE]":
                                    done = True
                                    continue
                                deltas += self._feed(assembler, data)
                            if ttft_ms is None and assembler.produced_output:
                                ttft_ms = (time.monotonic() - started) * 1000
                            for delta in merge_deltas(deltas):
                                yield delta
                except httpx.TransportError as exc:
                    # A finished answer whose connection dropped before the
                    # trailer is still the answer: retrying would bill it twice.
                    if not (done or assembler.complete):
                        raise AttemptFailed(describe(exc, self.config)) from exc
                if not (done or assembler.complete):
                    raise AttemptFailed("the stream ended before the answer was complete")
        except httpx.TransportError as exc:
            raise AttemptFailed(describe(exc, self.config)) from exc

        message = assembler.message()
        yield Completed(
            message=message,
            usage=assembler.usage_counts(),
            stop_reason=assembler.stop_reason(),
            info=RequestInfo(
                provider=self.name,
                model=request.model,
                latency_ms=(time.monotonic() - started) * 1000,
                ttft_ms=ttft_ms,
                retries=retries,
                request_id=request_id,
                extra=facts | assembler.extra(request),
            ),
        )

    def _decode(self, decoder: SseDecoder, chunk: bytes) -> list[str]:
        try:
            return decoder.feed(chunk)
        except ValueError as exc:
            raise AttemptFailed(f"the event stream is garbled: {exc}", garbled=True) from exc

    def _feed(self, assembler: Assembler, data: str) -> list[Delta]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise AttemptFailed(
                f"the stream carried a chunk that is not JSON: {clip(data, 80)!r}", garbled=True
            ) from exc
        if isinstance(chunk, dict) and chunk.get("error") is not None:
            raise self._stream_error(chunk["error"])
        try:
            return assembler.feed(chunk)
        except ValueError as exc:
            raise AttemptFailed(
                f"the stream carried a malformed chunk: {exc}", garbled=True
            ) from exc

    def _stream_error(self, error: Any) -> Exception:
        """An error a server reports inside a 200 stream (vLLM, OpenRouter, Anthropic do)."""
        message, code = error_fields({"error": error})
        message = self.scrub(message or "unspecified error")
        if is_context_error(code, message):
            return self._context_too_long(None, message)
        return AttemptFailed(f"the provider reported an error mid-stream: {message}")

    def _refusal(self, response: httpx.Response) -> Exception:
        """What an error status means: a failed attempt, or a final rejection."""
        status = response.status_code
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        message, code = error_fields(parsed)
        if not message:
            message = clip(response.text.strip(), 300) or response.reason_phrase or "no details"
        message = self.scrub(message)
        retryable = self.retryable_error(status, code, message)
        if retryable is None:
            retryable = is_retryable_status(status, response.headers)
        if retryable:
            return AttemptFailed(
                f"HTTP {status}: {message}",
                retry_after=parse_retry_after(response.headers),
                status=status,
            )
        if status == 413 or (400 <= status < 500 and is_context_error(code, message)):
            return self._context_too_long(status, message)
        return ProviderRejected(
            f"{self.name} rejected the request to {self._where()} with HTTP {status}: "
            f"{message}; {self.hint(status)}",
            status=status,
        )

    def hint(self, status: int) -> str:
        """What the user can do about a final refusal with ``status``."""
        keys = f"KFD_API_KEY, or {api_key_variable(self.config)}"
        if 300 <= status < 400:
            return "the endpoint redirects; set [model] base_url to where it points"
        if status == 401:
            return f"check the API key ({keys})"
        if status == 403:
            return (
                f"the API key may lack access to this model or endpoint; check {keys} "
                "and the account's permissions"
            )
        if status == 404:
            return "check [model] base_url and model (KFD_BASE_URL, KFD_MODEL)"
        if status == 429:
            return "the provider's quota or rate limit is used up; wait, or raise the limit"
        return _DEFAULT_HINT

    def _context_too_long(self, status: int | None, message: str) -> ContextTooLong:
        origin = f"HTTP {status}: " if status is not None else ""
        return ContextTooLong(
            f"the request does not fit {self.config.model}'s context window "
            f"({origin}{message}); compact the conversation or start a new session",
            status=status,
        )

    def _gave_up(self, failure: AttemptFailed, attempts: int) -> ProviderError:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        if failure.garbled:
            return ProviderProtocolError(
                f"{self.name} at {self._where()} kept sending answers kfd cannot read "
                f"({tries}); last: {failure.reason}. Check that [model] base_url points "
                f"at the {self.name} API",
                status=failure.status,
                retries=attempts - 1,
            )
        return ProviderUnavailable(
            f"{self.name} at {self._where()} failed {tries}; last: {failure.reason}. "
            "Check the network and the provider's status, then send the message again",
            status=failure.status,
            retries=attempts - 1,
        )

    def _where(self) -> str:
        return self.scrub(self.endpoint())

    def scrub(self, text: str) -> str:
        """``text`` without the API key (or any other secret), should a provider echo it."""
        return scrub(text)


# --------------------------------------------------------------------------
# Helpers every wire format uses


def error_fields(parsed: Any) -> tuple[str, str]:
    """The message and code of an error body, in the shapes providers use.

    ``{"error": {"message", "code"|"type"}}`` (OpenAI, Anthropic), ``{"error":
    "text"}``, a list of such errors (some gateways), and Cloudflare's
    ``{"errors": [{"code": 3040, "message": ...}]}``.
    """
    if not isinstance(parsed, dict):
        return "", ""
    if "error" not in parsed and isinstance(parsed.get("errors"), list) and parsed["errors"]:
        error: Any = parsed["errors"][0]
    else:
        error = parsed.get("error", parsed)
    if isinstance(error, str):
        return error, ""
    if isinstance(error, list) and error and isinstance(error[0], dict):
        error = error[0]
    if not isinstance(error, dict):
        return "", ""
    message = error.get("message") or error.get("detail") or parsed.get("message") or ""
    code = error.get("code") or error.get("type") or ""
    return str(message), str(code)


def is_context_error(code: str, message: str) -> bool:
    """Whether an error says the prompt does not fit the context window."""
    return code == "context_length_exceeded" or bool(_CONTEXT_PATTERN.search(message))


def describe(exc: httpx.TransportError, config: ModelConfig) -> str:
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


def merge_deltas(deltas: list[Delta]) -> list[Delta]:
    """``deltas`` with each run of the same kind joined into one, in order.

    What one read brought travels on as one piece of text (and of reasoning,
    and of tool-call arguments): the session redacts, records and publishes
    per piece, not per token.
    """
    if len(deltas) < 2:
        return deltas
    merged: list[Delta] = []
    run: list[str] = []
    kind: type[Delta] | None = None
    for delta in deltas:
        if type(delta) is not kind:
            if kind is not None:
                merged.append(kind("".join(run)))
            kind, run = type(delta), []
        run.append(delta.text)
    if kind is not None:
        merged.append(kind("".join(run)))
    return merged


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def non_negative_int(value: Any) -> int:
    """A token count from a usage report; anything else counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
