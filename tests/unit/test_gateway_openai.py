"""The OpenAI-compatible provider, against the scripted model server over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from kfd.config import ModelConfig
from kfd.errors import (
    ConfigError,
    ContextTooLong,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
)
from kfd.gateway import (
    Completed,
    ModelRequest,
    ReasoningDelta,
    Retrying,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolSpec,
    make_provider,
)
from kfd.gateway.openai import SUMMARY_PREFIX, OpenAIProvider
from kfd.gateway.retry import RetryPolicy, is_retryable_status, parse_retry_after
from kfd.protocol import ToolCall, Usage
from kfd.testing import (
    CONTEXT_TOO_LONG,
    CutStream,
    HttpError,
    InvalidChunk,
    Reply,
    ScriptedModelServer,
    ScriptedToolCall,
    ScriptedUsage,
    Stall,
)
from kfd.transcript import AssistantMessage, SummaryMessage, ToolResultMessage, UserMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


def fast_config(base_url: str, **overrides: Any) -> ModelConfig:
    """A config whose retries and timeouts fit a unit test."""
    settings: dict[str, Any] = {
        "provider": "openai",
        "base_url": base_url,
        "model": "test-model",
        "connect_timeout_s": 2.0,
        "idle_timeout_s": 2.0,
        "max_retries": 3,
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
    }
    return ModelConfig(**(settings | overrides))


@pytest.fixture
async def make(server: ScriptedModelServer) -> AsyncIterator[Callable[..., OpenAIProvider]]:
    """Builds providers aimed at ``server`` (overrides go to the config); closes them."""
    made: list[OpenAIProvider] = []

    def build(**overrides: Any) -> OpenAIProvider:
        provider = OpenAIProvider(
            fast_config(server.base_url, **overrides), environ={"KFD_API_KEY": SECRET}
        )
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


def ask(text: str = "hi", **fields: Any) -> ModelRequest:
    return ModelRequest(
        model="test-model", system="You are terse.", messages=[UserMessage(text=text)], **fields
    )


async def collect(
    provider: OpenAIProvider, request: ModelRequest | None = None
) -> list[StreamEvent]:
    return [event async for event in provider.stream(request or ask())]


def completed(events: list[StreamEvent]) -> Completed:
    finals = [e for e in events if isinstance(e, Completed)]
    assert len(finals) == 1
    assert events[-1] is finals[0]
    return finals[0]


def retries(events: list[StreamEvent]) -> list[Retrying]:
    return [e for e in events if isinstance(e, Retrying)]


async def collect_until_error(
    provider: OpenAIProvider, error: type[Exception]
) -> tuple[list[StreamEvent], pytest.ExceptionInfo[Exception]]:
    events: list[StreamEvent] = []

    async def drain() -> None:
        async for event in provider.stream(ask()):
            events.append(event)

    with pytest.raises(error) as caught:
        await drain()
    return events, caught


# --------------------------------------------------------------------------
# Streaming


async def test_text_arrives_as_several_deltas_that_make_up_the_message(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(Reply(text="The quick brown fox jumps", chunk_chars=5))

    events = await collect(make())

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["The q", "uick ", "brown", " fox ", "jumps"]
    final = completed(events)
    assert final.message == AssistantMessage(text="The quick brown fox jumps")
    assert final.stop_reason == "stop"
    assert final.info.provider == "openai"
    assert final.info.model == "test-model"
    assert final.info.request_id == "req_0"
    assert final.info.retries == 0
    assert final.info.ttft_ms is not None
    assert 0 < final.info.ttft_ms <= final.info.latency_ms


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_stream_before_the_text_and_are_kept(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider], field: str
) -> None:
    server.add(Reply(text="42.", reasoning="Six times seven.", reasoning_field=field))

    events = await collect(make())

    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    assert len(reasoning) > 1
    assert "".join(reasoning) == "Six times seven."
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])
    assert completed(events).message.reasoning == "Six times seven."


async def test_tool_call_arguments_split_over_many_deltas_are_assembled(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    arguments = {"path": "src/main.py", "start": 10, "end": 120}
    server.add(
        Reply(
            text="Reading.",
            tool_calls=[ScriptedToolCall("read_file", arguments, id="call_r")],
            chunk_chars=2,
        )
    )

    events = await collect(make())

    final = completed(events)
    assert final.stop_reason == "tool_calls"
    assert final.message.text == "Reading."
    assert final.message.tool_calls == [
        ToolCall(id="call_r", name="read_file", arguments=json.dumps(arguments))
    ]


async def test_parallel_tool_calls_interleaved_by_index_are_kept_apart(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    calls = [
        ScriptedToolCall("grep", {"pattern": "def main", "path": "."}, id="call_a"),
        ScriptedToolCall("read_file", {"path": "README.md"}, id="call_b"),
        ScriptedToolCall("list_dir", {}, id="call_c"),
    ]
    server.add(Reply(tool_calls=calls, chunk_chars=3, interleave_tool_calls=True))

    events = await collect(make())

    final = completed(events)
    assert final.message.tool_calls == [
        ToolCall(id=c.id or "", name=c.name, arguments=c.arguments_json()) for c in calls
    ]
    # Every piece of arguments passes on as it arrives, for the ledger to count.
    pieces = "".join(e.text for e in events if isinstance(e, ToolCallDelta))
    assert sorted(pieces) == sorted("".join(c.arguments_json() for c in calls))


async def test_tool_calls_without_ids_get_unique_ones(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    calls = [ScriptedToolCall("a", {"n": 1}, send_id=False), ScriptedToolCall("a", send_id=False)]
    server.add(Reply(tool_calls=calls))

    final = completed(await collect(make()))

    ids = [call.id for call in final.message.tool_calls]
    assert all(ids)
    assert len(set(ids)) == 2
    assert [call.arguments for call in final.message.tool_calls] == ['{"n": 1}', "{}"]


async def test_usage_repeated_in_every_chunk_is_counted_once(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    usage = ScriptedUsage(
        input_tokens=100, output_tokens=20, cached_input_tokens=30, reasoning_tokens=5
    )
    server.add(Reply(text="counted once", usage=usage, repeat_usage=True, chunk_chars=2))

    final = completed(await collect(make()))

    assert final.usage == Usage(
        input_tokens=100, cached_input_tokens=30, output_tokens=20, reasoning_tokens=5, requests=1
    )


async def test_a_drop_after_the_finish_reason_keeps_the_answer_without_retrying(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    # Events: role, "hi", finish, usage, [DONE]: the cut comes after the finish.
    server.add(Reply(text="hi", fault=CutStream(after_chunks=3)), Reply(text="not asked"))

    events = await collect(make())

    assert retries(events) == []
    final = completed(events)
    assert final.message.text == "hi"
    assert final.info.extra["usage"] == "missing"
    assert final.usage.requests == 1
    assert server.pending == 1


# --------------------------------------------------------------------------
# Request translation


async def test_the_request_body_translates_the_transcript_and_tools(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(Reply(text="ok"))
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    request = ModelRequest(
        model="test-model",
        system="You are kfd.",
        messages=[
            SummaryMessage(text="We fixed the parser."),
            UserMessage(text="Now read a.py"),
            AssistantMessage(
                reasoning="I should read it.",
                tool_calls=[ToolCall(id="call_1", name="read_file", arguments='{"path":"a.py"}')],
            ),
            ToolResultMessage(call_id="call_1", name="read_file", content="print(1)"),
            AssistantMessage(text="It prints 1."),
            UserMessage(text="Thanks"),
        ],
        tools=[ToolSpec(name="read_file", description="Read a file.", parameters=schema)],
        max_output_tokens=512,
    )

    completed(await collect(make(), request))

    record = server.wait_for_request(0)
    assert record.path == "/v1/chat/completions"
    assert record.headers["authorization"] == f"Bearer {SECRET}"
    assert record.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You are kfd."},
            {"role": "user", "content": SUMMARY_PREFIX + "We fixed the parser."},
            {"role": "user", "content": "Now read a.py"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path":"a.py"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "print(1)"},
            {"role": "assistant", "content": "It prints 1."},
            {"role": "user", "content": "Thanks"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 512,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read_file",
                    "description": "Read a file.",
                    "parameters": schema,
                },
            }
        ],
    }
    assert "summary" in SUMMARY_PREFIX.lower()


async def test_without_a_key_no_authorization_header_is_sent_and_config_limits_apply(
    server: ScriptedModelServer,
) -> None:
    server.add(Reply(text="ok"))
    provider = OpenAIProvider(fast_config(server.base_url, max_output_tokens=77), environ={})
    try:
        completed(await collect(provider))
    finally:
        await provider.aclose()

    record = server.wait_for_request(0)
    assert "authorization" not in record.headers
    assert record.body["max_tokens"] == 77
    assert "tools" not in record.body


# --------------------------------------------------------------------------
# Retries


async def test_429_is_retried_after_the_delay_retry_after_asks(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(
        Reply(fault=HttpError(429, message="rate limited", retry_after=0.2)), Reply(text="ok")
    )

    events = await collect(make(retry_max_s=1.0))

    [retry] = retries(events)
    assert retry.delay_s == pytest.approx(0.2)
    assert retry.attempt == 1
    assert "429" in retry.reason
    assert "rate limited" in retry.reason
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.2
    assert completed(events).info.retries == 1


async def test_retry_after_is_capped_by_retry_max_s(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(Reply(fault=HttpError(503, retry_after=3600)), Reply(text="ok"))

    events = await collect(make(retry_max_s=0.05))

    assert retries(events)[0].delay_s == pytest.approx(0.05)


async def test_500_is_retried_then_the_answer_completes(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(Reply(fault=HttpError(500, message="upstream hiccup")), Reply(text="fine"))

    events = await collect(make())

    [retry] = retries(events)
    assert "HTTP 500" in retry.reason
    assert "upstream hiccup" in retry.reason
    assert 0 < retry.delay_s <= 0.01
    assert completed(events).message.text == "fine"


async def test_a_stream_cut_midway_is_retried_and_only_the_last_attempt_counts(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(
        Reply(text="partial answer that is lost", fault=CutStream(after_chunks=3)),
        Reply(text="whole answer"),
    )

    events = await collect(make())

    [retry] = retries(events)
    before = events[: events.index(retry)]
    assert [e.text for e in before if isinstance(e, TextDelta)] == ["part", "ial "]
    assert "dropped" in retry.reason
    assert completed(events).message.text == "whole answer"
    assert await server.requests[0].wait_done_async() == "cut"


async def test_a_stream_that_ends_cleanly_but_early_is_retried(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(
        Reply(text="short", fault=CutStream(after_chunks=2, clean=True)),
        Reply(text="complete"),
    )

    events = await collect(make())

    [retry] = retries(events)
    assert "ended before the answer was complete" in retry.reason
    assert completed(events).message.text == "complete"


async def test_a_stall_longer_than_the_idle_timeout_is_retried(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(
        Reply(text="hello there", fault=Stall(after_chunks=2, seconds=30)),
        Reply(text="recovered"),
    )
    started = time.monotonic()

    events = await collect(make(idle_timeout_s=0.3))

    [retry] = retries(events)
    assert "stalled" in retry.reason
    assert "0.3s" in retry.reason
    assert completed(events).message.text == "recovered"
    assert time.monotonic() - started < 5
    # The client hung up on the stalled stream instead of waiting it out.
    assert await server.requests[0].wait_done_async(timeout=2.0) == "client_disconnected"


async def test_an_invalid_json_chunk_fails_the_attempt_and_is_retried(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(
        Reply(text="garbled", fault=InvalidChunk(after_chunks=2, data="{not json")),
        Reply(text="clean"),
    )

    events = await collect(make())

    [retry] = retries(events)
    assert "not JSON" in retry.reason
    assert "{not json" in retry.reason
    assert completed(events).message.text == "clean"


async def test_invalid_json_that_persists_is_reported_as_a_protocol_error(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    garbage = Reply(text="x", fault=InvalidChunk(after_chunks=1, data="<html>"))
    server.add(garbage, garbage)

    events, caught = await collect_until_error(make(max_retries=1), ProviderProtocolError)

    assert len(retries(events)) == 1
    assert "2 attempts" in str(caught.value)
    assert "not JSON" in str(caught.value)
    assert "base_url" in str(caught.value)


async def test_an_error_inside_the_stream_is_retried(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    error_chunk = json.dumps({"error": {"message": "model overloaded", "code": 503}})
    server.add(
        Reply(text="abc", fault=InvalidChunk(after_chunks=1, data=error_chunk)),
        Reply(text="second try"),
    )

    events = await collect(make())

    assert "model overloaded" in retries(events)[0].reason
    assert completed(events).message.text == "second try"


async def test_exhausted_retries_raise_provider_unavailable_naming_the_last_failure(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    overloaded = Reply(fault=HttpError(503, message="overloaded, try later"))
    server.add(overloaded, overloaded, overloaded, Reply(text="too late"))

    events, caught = await collect_until_error(make(max_retries=2), ProviderUnavailable)

    assert [r.attempt for r in retries(events)] == [1, 2]
    message = str(caught.value)
    assert "3 attempts" in message
    assert "HTTP 503" in message
    assert "overloaded, try later" in message
    assert caught.value.status == 503  # type: ignore[attr-defined]
    assert server.pending == 1


async def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Closed again: nothing listens on the port now.
    provider = OpenAIProvider(fast_config(f"http://127.0.0.1:{port}/v1", max_retries=1), environ={})
    try:
        events, caught = await collect_until_error(provider, ProviderUnavailable)
    finally:
        await provider.aclose()

    assert "cannot connect" in retries(events)[0].reason
    assert "cannot connect" in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


# --------------------------------------------------------------------------
# Rejections


async def test_401_is_not_retried_and_says_what_to_do_without_leaking_the_key(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(
        Reply(
            fault=HttpError(
                401, message=f"Incorrect API key provided: {SECRET}", code="invalid_api_key"
            )
        ),
        Reply(text="never sent"),
    )

    events, caught = await collect_until_error(make(), ProviderRejected)

    assert events == []
    assert not isinstance(caught.value, ContextTooLong)
    assert caught.value.status == 401  # type: ignore[attr-defined]
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "Incorrect API key provided" in message
    assert "KFD_API_KEY" in message
    assert SECRET not in message
    assert SECRET not in repr(caught.value.args)
    assert server.pending == 1


@pytest.mark.parametrize(
    "fault",
    [
        CONTEXT_TOO_LONG,
        HttpError(400, message="prompt is too long: 300000 tokens > 262144 maximum"),
        HttpError(413, message="Request Entity Too Large"),
    ],
    ids=["openai-code", "message-only", "413"],
)
async def test_a_context_overflow_raises_context_too_long(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider], fault: HttpError
) -> None:
    server.add(Reply(fault=fault), Reply(text="never sent"))

    _, caught = await collect_until_error(make(), ContextTooLong)

    assert f"HTTP {fault.status}" in str(caught.value)
    assert "compact" in str(caught.value)
    assert server.pending == 1


async def test_a_bad_request_is_rejected_with_the_providers_message(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(Reply(fault=HttpError(404, message="The model `nope` does not exist")))

    _, caught = await collect_until_error(make(), ProviderRejected)

    assert "The model `nope` does not exist" in str(caught.value)
    assert "KFD_MODEL" in str(caught.value)
    assert len(server.requests) == 1


# --------------------------------------------------------------------------
# Cancellation


async def test_cancelling_the_reader_closes_the_connection_at_once(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    # 100 chunks 50 ms apart: about 5 s of stream if nobody hangs up.
    server.add(Reply(text="x" * 400, chunk_chars=4, chunk_delay_s=0.05))
    provider = make()
    first_delta = asyncio.Event()

    async def read() -> None:
        async for event in provider.stream(ask()):
            if isinstance(event, TextDelta):
                first_delta.set()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(first_delta.wait(), timeout=5)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader

    assert await server.requests[0].wait_done_async(timeout=1.0) == "client_disconnected"


async def test_closing_the_stream_closes_the_connection_at_once(
    server: ScriptedModelServer, make: Callable[..., OpenAIProvider]
) -> None:
    server.add(Reply(text="y" * 400, chunk_chars=4, chunk_delay_s=0.05))
    stream = make().stream(ask())

    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()

    assert await server.requests[0].wait_done_async(timeout=1.0) == "client_disconnected"


# --------------------------------------------------------------------------
# Factory and retry policy


async def test_make_provider_builds_the_configured_provider() -> None:
    provider = make_provider(ModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1"))
    try:
        assert isinstance(provider, OpenAIProvider)
        assert provider.endpoint() == "http://127.0.0.1:9/v1/chat/completions"
    finally:
        await provider.aclose()


def test_make_provider_refuses_an_unknown_provider_naming_the_known_ones() -> None:
    config = msgspec.structs.replace(ModelConfig(), provider="nonesuch")  # type: ignore[arg-type]

    with pytest.raises(
        ConfigError, match=r"'nonesuch' is not known; use one of anthropic, cloudflare, openai"
    ):
        make_provider(config)


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=10, base_s=1.0, max_s=8.0)

    assert [policy.delay(n, rng=lambda: 0.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [policy.delay(n, rng=lambda: 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(2, retry_after=3.0) == 3.0
    assert policy.delay(2, retry_after=100.0) == 8.0
    assert policy.delay(10_000) <= 8.0


def test_retry_after_is_read_as_seconds_milliseconds_or_an_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)

    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    assert parse_retry_after({"retry-after": later}, now=now) == 30.0
    assert parse_retry_after({"retry-after": later}, now=now + timedelta(minutes=5)) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "headers", "retryable"),
    [
        (429, {}, True),
        (500, {}, True),
        (502, {}, True),
        (503, {}, True),
        (504, {}, True),
        (529, {}, True),
        (501, {}, False),
        (400, {}, False),
        (401, {}, False),
        (403, {}, False),
        (404, {}, False),
        (422, {}, False),
        (400, {"x-should-retry": "true"}, True),
        (503, {"x-should-retry": "false"}, False),
    ],
)
def test_which_statuses_are_retried(status: int, headers: dict[str, str], retryable: bool) -> None:
    assert is_retryable_status(status, headers) is retryable
