"""The scripted model server speaks real HTTP and real SSE, and follows its script."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from kfd.testing import (
    CONTEXT_TOO_LONG,
    CutStream,
    HttpError,
    InvalidChunk,
    RecordedRequest,
    Reply,
    ScriptedModelServer,
    ScriptedToolCall,
    ScriptedUsage,
    Stall,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as client:
        yield client


def chat_body(*, stream: bool = True, include_usage: bool = True, text: str = "hi") -> Any:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": text}]}
    body["stream"] = stream
    if stream and include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def sse_data(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a whole streamed response."""
    return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


def post_stream(http: httpx.Client, server: ScriptedModelServer, body: Any) -> list[str]:
    with http.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_data(response)


def chunks(data: list[str]) -> list[Any]:
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def content_of(parsed: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"])


def test_streams_openai_chunks_as_server_sent_events_ending_with_done(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="hello streaming world", chunk_chars=5))

    parsed = chunks(post_stream(http, server, chat_body()))

    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content_of(parsed) == "hello streaming world"
    text_chunks = [c for c in parsed if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(text_chunks) == 5
    assert parsed[-2]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"]["completion_tokens"] > 0
    assert server.requests[0].wait_done() == "completed"


def test_usage_chunk_is_sent_only_when_the_request_asks_for_it(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="no usage"))

    parsed = chunks(post_stream(http, server, chat_body(include_usage=False)))

    assert all("usage" not in c for c in parsed)


def test_streaming_is_incremental_not_buffered_until_the_end(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    # The server stalls for 30 s after two chunks: seeing them within the client's
    # 2 s read timeout proves each chunk was flushed as it was written.
    server.add(Reply(text="abcdef", chunk_chars=1, fault=Stall(after_chunks=2, seconds=30)))

    with http.stream("POST", f"{server.base_url}/chat/completions", json=chat_body()) as response:
        received: list[Any] = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line[6:]))
            if len(received) == 2:
                break

    assert received[1]["choices"][0]["delta"]["content"] == "a"
    assert server.requests[0].wait_done(timeout=2.0) == "client_disconnected"


def test_non_streaming_request_gets_a_json_completion(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(
        Reply(
            text="calling",
            reasoning="thinking",
            tool_calls=[ScriptedToolCall("read_file", {"path": "a.txt"}, id="call_x")],
            usage=ScriptedUsage(input_tokens=10, output_tokens=3, cached_input_tokens=4),
        )
    )

    response = http.post(f"{server.base_url}/chat/completions", json=chat_body(stream=False))

    assert response.headers["content-type"] == "application/json"
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "calling"
    assert choice["message"]["reasoning_content"] == "thinking"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_x",
            "type": "function",
            "function": {"name": "read_file", "arguments": '{"path": "a.txt"}'},
        }
    ]
    usage = response.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (10, 3)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4


def test_a_fault_consumes_one_request_and_the_next_reply_answers_the_next(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(fault=HttpError(429, message="slow down", retry_after=3)), Reply(text="hi"))

    refused = http.post(f"{server.base_url}/chat/completions", json=chat_body())
    answered = post_stream(http, server, chat_body())

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "3"
    assert refused.json()["error"]["message"] == "slow down"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert content_of(chunks(answered)) == "hi"
    assert [r.wait_done() for r in server.requests] == ["error_status", "completed"]


def test_context_too_long_fault_carries_openais_error_code(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(fault=CONTEXT_TOO_LONG))

    response = http.post(f"{server.base_url}/chat/completions", json=chat_body())

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert "maximum context length" in response.json()["error"]["message"]


def test_an_error_body_can_be_replaced_entirely(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(fault=HttpError(502, body="<html>Bad Gateway</html>")))

    response = http.post(f"{server.base_url}/chat/completions", json=chat_body())

    assert response.status_code == 502
    assert response.text == "<html>Bad Gateway</html>"


def test_an_exhausted_script_answers_500_saying_so(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    response = http.post(f"{server.base_url}/chat/completions", json=chat_body())

    assert response.status_code == 500
    assert "script exhausted" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "script_exhausted"
    assert server.requests[0].wait_done() == "exhausted"


def test_cut_stream_closes_the_connection_without_done(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="abcdefgh", chunk_chars=1, fault=CutStream(after_chunks=3)))

    received: list[str] = []

    def read_all() -> None:
        with http.stream("POST", f"{server.base_url}/chat/completions", json=chat_body()) as r:
            received.extend(line[6:] for line in r.iter_lines() if line.startswith("data: "))

    with pytest.raises(httpx.RemoteProtocolError):
        read_all()

    assert len(received) == 3
    assert "[DONE]" not in received
    assert server.requests[0].wait_done() == "cut"


def test_a_clean_cut_ends_the_body_early_without_done(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="abcdefgh", chunk_chars=1, fault=CutStream(after_chunks=3, clean=True)))

    data = post_stream(http, server, chat_body())

    assert len(data) == 3
    assert "[DONE]" not in data
    assert server.requests[0].wait_done() == "cut"


def test_invalid_chunk_is_sent_verbatim_and_the_stream_goes_on(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="ok", fault=InvalidChunk(after_chunks=1, data="{oops")))

    data = post_stream(http, server, chat_body())

    assert data[1] == "{oops"
    assert data[-1] == "[DONE]"
    assert content_of([json.loads(d) for d in data if d not in ("{oops", "[DONE]")]) == "ok"


def test_repeat_usage_puts_the_same_usage_in_every_chunk(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    usage = ScriptedUsage(input_tokens=7, output_tokens=2)
    server.add(Reply(text="abc", chunk_chars=1, usage=usage, repeat_usage=True))

    parsed = chunks(post_stream(http, server, chat_body()))

    assert len(parsed) > 3
    assert all(c["usage"]["prompt_tokens"] == 7 for c in parsed)


def test_parallel_tool_calls_open_first_then_interleave_argument_pieces(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    calls = [
        ScriptedToolCall("a", '{"x": 111}'),
        ScriptedToolCall("b", '{"y": 222}', send_id=False),
    ]
    server.add(Reply(tool_calls=calls, chunk_chars=3))

    parsed = chunks(post_stream(http, server, chat_body()))

    pieces = [
        tc for c in parsed if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert pieces[0]["id"] == "call_0_0"
    assert pieces[0]["function"]["name"] == "a"
    assert "id" not in pieces[1]
    assert pieces[1]["function"]["name"] == "b"
    argument_order = [p["index"] for p in pieces[2:]]
    assert argument_order[:4] == [0, 1, 0, 1]
    for index, call in enumerate(calls):
        arguments = "".join(p["function"]["arguments"] for p in pieces if p["index"] == index)
        assert arguments == call.arguments
    assert parsed[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_reasoning_goes_in_the_field_the_reply_names(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="t", reasoning="because", reasoning_field="reasoning"))

    parsed = chunks(post_stream(http, server, chat_body()))

    reasoning = "".join(
        c["choices"][0]["delta"].get("reasoning", "") for c in parsed if c["choices"]
    )
    assert reasoning == "because"


def test_requests_are_recorded_with_path_headers_body_and_time(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="x"))
    before = time.monotonic()

    http.post(
        f"{server.url}/chat/completions",
        json=chat_body(stream=False, text="recorded"),
        headers={"X-Custom": "yes"},
    )

    record = server.wait_for_request(0)
    assert record.index == 0
    assert record.method == "POST"
    assert record.path == "/chat/completions"
    assert record.headers["x-custom"] == "yes"
    assert record.body["messages"][0]["content"] == "recorded"
    assert before <= record.received_at <= time.monotonic()
    assert record.reply == Reply(text="x")


def test_an_unknown_path_gets_404_and_leaves_the_script_alone(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="kept"))

    response = http.post(f"{server.url}/v1/embeddings", json={})

    assert response.status_code == 404
    assert "/v1/chat/completions" in response.json()["error"]["message"]
    assert server.pending == 1


def test_a_responder_answers_once_the_fixed_script_is_used_up(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    def echo(request: RecordedRequest) -> Reply:
        return Reply(text="echo: " + request.body["messages"][-1]["content"])

    with ScriptedModelServer([Reply(text="scripted")], responder=echo) as responsive:
        first = http.post(f"{responsive.base_url}/chat/completions", json=chat_body(stream=False))
        second = http.post(
            f"{responsive.base_url}/chat/completions", json=chat_body(stream=False, text="ping")
        )

    assert first.json()["choices"][0]["message"]["content"] == "scripted"
    assert second.json()["choices"][0]["message"]["content"] == "echo: ping"


def test_a_failing_responder_answers_500_naming_the_error(http: httpx.Client) -> None:
    def broken(request: RecordedRequest) -> Reply:
        raise LookupError("no idea")

    with ScriptedModelServer(responder=broken) as responsive:
        response = http.post(f"{responsive.base_url}/chat/completions", json=chat_body())
        assert responsive.requests[0].wait_done() == "server_error"

    assert response.status_code == 500
    assert "no idea" in response.json()["error"]["message"]


def test_wait_for_request_wakes_when_another_thread_sends_it(
    server: ScriptedModelServer, http: httpx.Client
) -> None:
    server.add(Reply(text="late"))
    sender = threading.Thread(
        target=http.post,
        args=(f"{server.base_url}/chat/completions",),
        kwargs={"json": chat_body(stream=False)},
    )
    sender.start()

    record = server.wait_for_request(0, timeout=5.0)
    sender.join(timeout=5.0)

    assert record.wait_done(timeout=5.0) == "completed"


def test_wait_for_request_times_out_saying_how_many_arrived(
    server: ScriptedModelServer,
) -> None:
    with pytest.raises(TimeoutError, match=r"request 0 did not arrive .*0 received"):
        server.wait_for_request(0, timeout=0.05)


async def test_waits_are_usable_from_asyncio(server: ScriptedModelServer) -> None:
    server.add(Reply(text="async"))
    async with httpx.AsyncClient(timeout=2.0) as client:
        response = await client.post(
            f"{server.base_url}/chat/completions", json=chat_body(stream=False)
        )

    record = await server.wait_for_request_async(0)
    assert await record.wait_done_async() == "completed"
    assert response.json()["choices"][0]["message"]["content"] == "async"


def test_stop_ends_a_stalled_answer_promptly_and_releases_the_port(
    http: httpx.Client,
) -> None:
    server = ScriptedModelServer([Reply(text="abc", fault=Stall(after_chunks=1, seconds=60))])
    server.start()
    port = server.port
    failures: list[Exception] = []

    def read() -> None:
        try:
            with http.stream("POST", f"{server.base_url}/chat/completions", json=chat_body()) as r:
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    record = server.wait_for_request(0)
    started = time.monotonic()
    server.stop()
    server.stop()  # idempotent

    assert record.wait_done(timeout=2.0) == "server_stopped"
    assert time.monotonic() - started < 2.0
    reader.join(timeout=5.0)
    assert failures, "the client should see the connection drop"
    with pytest.raises(httpx.ConnectError):
        http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=chat_body())


def test_start_twice_is_refused_and_addresses_need_a_running_server() -> None:
    server = ScriptedModelServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
