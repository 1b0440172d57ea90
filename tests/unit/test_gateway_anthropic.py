"""The Anthropic Messages provider, against the scripted model server over real HTTP."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from kfd.config import ModelConfig
from kfd.errors import ContextTooLong, ProviderProtocolError, ProviderRejected
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
from kfd.gateway.anthropic import API_VERSION, AnthropicProvider
from kfd.protocol import ToolCall, Usage
from kfd.testing import (
    CutStream,
    HttpError,
    InvalidChunk,
    Reply,
    ScriptedModelServer,
    ScriptedToolCall,
    ScriptedUsage,
)
from kfd.transcript import AssistantMessage, ToolResultMessage, UserMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

SECRET = "sk-ant-test-0123456789abcdef"
MODEL = "claude-sonnet-4-5"


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
async def make(server: ScriptedModelServer) -> AsyncIterator[Callable[..., AnthropicProvider]]:
    made: list[AnthropicProvider] = []

    def build(**overrides: Any) -> AnthropicProvider:
        settings: dict[str, Any] = {
            "provider": "anthropic",
            "base_url": server.base_url,
            "model": MODEL,
            "idle_timeout_s": 2.0,
            "max_retries": 3,
            "retry_base_s": 0.001,
            "retry_max_s": 0.01,
        }
        provider = AnthropicProvider(
            ModelConfig(**(settings | overrides)), environ={"ANTHROPIC_API_KEY": SECRET}
        )
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


def ask(*messages: Any, tools: list[ToolSpec] | None = None) -> ModelRequest:
    return ModelRequest(
        model=MODEL,
        system="You are terse.",
        messages=list(messages) or [UserMessage(text="hi")],
        tools=tools or [],
        metadata={"session": "s1", "turn": "1"},
    )


async def collect(provider: AnthropicProvider, request: ModelRequest | None = None) -> list[Any]:
    return [event async for event in provider.stream(request or ask())]


def completed(events: list[StreamEvent]) -> Completed:
    [final] = [e for e in events if isinstance(e, Completed)]
    assert events[-1] is final
    return final


async def test_text_streams_in_deltas_and_completes_with_anthropics_stop_reason(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    server.add(Reply(text="The quick brown fox", chunk_chars=5))

    events = await collect(make())

    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "The q",
        "uick ",
        "brown",
        " fox",
    ]
    final = completed(events)
    assert final.message == AssistantMessage(text="The quick brown fox")
    assert final.stop_reason == "end_turn"
    assert final.info.provider == "anthropic"
    assert final.info.request_id == "req_0"
    assert final.info.extra["completion_id"] == "msg_0"
    record = server.wait_for_request(0)
    assert record.path == "/v1/messages"
    assert record.headers["x-api-key"] == SECRET
    assert record.headers["anthropic-version"] == API_VERSION
    assert "authorization" not in record.headers


async def test_thinking_blocks_arrive_as_reasoning_before_the_text(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    server.add(Reply(text="42.", reasoning="Six times seven is forty-two."))

    events = await collect(make())

    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    assert len(reasoning) > 1
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(not isinstance(e, TextDelta) for e in events[:first_text])
    assert completed(events).message.reasoning == "Six times seven is forty-two."
    assert completed(events).message.text == "42."


async def test_parallel_tool_use_blocks_become_tool_calls_in_order(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    calls = [
        ScriptedToolCall("grep", {"pattern": "def main", "path": "."}, id="toolu_a"),
        ScriptedToolCall("read", {"path": "README.md"}, id="toolu_b"),
        ScriptedToolCall("list_dir", {}, id="toolu_c"),
    ]
    server.add(Reply(text="Looking.", tool_calls=calls, chunk_chars=3))

    events = await collect(make())

    final = completed(events)
    # Every piece of arguments passes on as it arrives, for the ledger to count.
    pieces = "".join(e.text for e in events if isinstance(e, ToolCallDelta))
    assert pieces == "".join(c.arguments_json() for c in calls)

    assert final.stop_reason == "tool_use"
    assert final.message.text == "Looking."
    assert final.message.tool_calls == [
        ToolCall(id="toolu_a", name="grep", arguments=calls[0].arguments_json()),
        ToolCall(id="toolu_b", name="read", arguments=calls[1].arguments_json()),
        ToolCall(id="toolu_c", name="list_dir", arguments="{}"),
    ]


async def test_usage_counts_cache_reads_and_writes_once_even_when_repeated(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    usage = ScriptedUsage(
        input_tokens=1000, output_tokens=50, cached_input_tokens=600, cache_write_tokens=300
    )
    server.add(Reply(text="cached", usage=usage, repeat_usage=True))

    final = completed(await collect(make()))

    assert final.usage == Usage(
        input_tokens=1000,
        cached_input_tokens=600,
        cache_write_tokens=300,
        output_tokens=50,
        requests=1,
    )


async def test_the_body_marks_cache_breakpoints_and_pairs_tool_results_with_their_calls(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    server.add(Reply(text="ok"))
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    request = ask(
        UserMessage(text="read a.py and b.py"),
        AssistantMessage(
            text="Reading both.",
            reasoning="not sent back",
            tool_calls=[
                ToolCall(id="t1", name="read", arguments='{"path": "a.py"}'),
                ToolCall(id="t2", name="read", arguments='{"path": '),  # malformed
            ],
        ),
        ToolResultMessage(call_id="t1", name="read", content="print(1)"),
        ToolResultMessage(call_id="t2", name="read", content="bad arguments", is_error=True),
        UserMessage(text="and now?"),
        tools=[ToolSpec(name="read", description="Read a file.", parameters=schema)],
    )

    completed(await collect(make(max_output_tokens=321), request))

    body = server.wait_for_request(0).body
    ephemeral = {"type": "ephemeral"}
    assert body["model"] == MODEL
    assert body["max_tokens"] == 321
    assert body["stream"] is True
    assert body["system"] == [
        {"type": "text", "text": "You are terse.", "cache_control": ephemeral}
    ]
    assert body["tools"] == [
        {
            "name": "read",
            "description": "Read a file.",
            "input_schema": schema,
            "cache_control": ephemeral,
        }
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "read a.py and b.py"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading both."},
                {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "a.py"}},
                {"type": "tool_use", "id": "t2", "name": "read", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": "print(1)",
                    "is_error": False,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": "bad arguments",
                    "is_error": True,
                },
                {"type": "text", "text": "and now?", "cache_control": ephemeral},
            ],
        },
    ]


@pytest.mark.parametrize("status", [429, 500, 529])
async def test_overload_and_rate_limits_are_retried_honouring_retry_after(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider], status: int
) -> None:
    server.add(Reply(fault=HttpError(status, retry_after=0.005)), Reply(text="fine"))

    events = await collect(make())

    [retry] = [e for e in events if isinstance(e, Retrying)]
    assert f"HTTP {status}" in retry.reason
    assert retry.delay_s == pytest.approx(0.005)
    assert completed(events).info.retries == 1


async def test_an_overloaded_error_event_mid_stream_is_retried(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    error = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}})
    server.add(
        Reply(text="partial", fault=InvalidChunk(after_chunks=3, data=error)),
        Reply(text="whole"),
    )

    events = await collect(make())

    assert "Busy" in next(e for e in events if isinstance(e, Retrying)).reason
    assert completed(events).message.text == "whole"


async def test_a_stream_cut_before_message_stop_is_retried(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    server.add(Reply(text="lost half way", fault=CutStream(after_chunks=4)), Reply(text="again"))

    events = await collect(make())

    assert any(isinstance(e, Retrying) for e in events)
    assert completed(events).message.text == "again"


async def test_a_prompt_too_long_is_context_too_long(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    server.add(Reply(fault=HttpError(400, message="prompt is too long: 210000 tokens > 200000")))

    with pytest.raises(ContextTooLong, match="compact"):
        await collect(make())


async def test_a_bad_key_is_rejected_naming_the_variable_without_showing_the_key(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    server.add(Reply(fault=HttpError(401, message=f"invalid x-api-key {SECRET}")))

    with pytest.raises(ProviderRejected) as caught:
        await collect(make())

    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_without_a_key_nothing_is_sent_and_the_error_names_the_variable(
    server: ScriptedModelServer,
) -> None:
    config = ModelConfig(provider="anthropic", base_url=server.base_url, model=MODEL)
    provider = make_provider(config)
    assert isinstance(provider, AnthropicProvider)
    provider._api_key = None  # as if neither variable were set
    try:
        with pytest.raises(ProviderRejected, match="ANTHROPIC_API_KEY"):
            await collect(provider)
    finally:
        await provider.aclose()
    assert server.requests == []


async def test_garbled_events_are_retried_then_reported(
    server: ScriptedModelServer, make: Callable[..., AnthropicProvider]
) -> None:
    bad_index = json.dumps(
        {"type": "content_block_delta", "index": -1, "delta": {"type": "text_delta"}}
    )
    garbled = Reply(text="x", fault=InvalidChunk(after_chunks=1, data=bad_index))
    server.add(garbled, garbled)

    with pytest.raises(ProviderProtocolError) as caught:
        await collect(make(max_retries=1))

    assert "2 attempts" in str(caught.value)
    assert "index" in str(caught.value)
