"""Reading model streams: the event-stream decoder, the deltas of one read, paced reads."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import httpx
import pytest

from kfd.config import ModelConfig
from kfd.gateway import Completed, ModelRequest, ReasoningDelta, TextDelta
from kfd.gateway.openai import OpenAIProvider
from kfd.gateway.pacing import MOST_S, PACING, ReadPacing, paced_transport, pause_between_reads
from kfd.gateway.sse import MAX_LINE_BYTES, SseDecoder
from kfd.gateway.streaming import merge_deltas
from kfd.testing import Reply, ScriptedModelServer
from kfd.transcript import UserMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

STREAM = (
    b": a comment the server sends to keep the line open\n"
    b'data: {"a": 1}\n\n'
    b"event: message\r\n"
    b'data: {"b": "\xc3\xa9t\xc3\xa9"}\r\n\r\n'
    b"data: first line\rdata:second line\r\r"
    b"id: 7\nretry: 10\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = ['{"a": 1}', '{"b": "été"}', "first line\nsecond line", "[DONE]"]


def feed_all(decoder: SseDecoder, chunks: list[bytes]) -> list[str]:
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_a_whole_stream_in_one_read_gives_every_event_in_order() -> None:
    assert SseDecoder().feed(STREAM) == EVENTS


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_a_stream_cut_anywhere_gives_the_same_events(size: int) -> None:
    # Cuts fall inside CRLF pairs, inside a UTF-8 character, inside "data:".
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert feed_all(SseDecoder(), chunks) == EVENTS


def test_a_read_that_ends_in_cr_is_not_taken_for_two_line_ends() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CRLF: not a blank line
    assert decoder.feed(b"\r\n") == ["x"]


def test_an_event_the_stream_ends_in_the_middle_of_is_not_given() -> None:
    assert SseDecoder().feed(b'data: {"whole": 1}\n\ndata: {"cut') == ['{"whole": 1}']
    assert SseDecoder().feed(b"data: no blank line after it\n") == []


def test_a_blank_line_without_data_gives_no_event() -> None:
    assert SseDecoder().feed(b"\n\n: ping\n\nevent: ping\n\n") == []


def test_a_line_that_never_ends_is_refused_before_it_fills_memory() -> None:
    decoder = SseDecoder()
    decoder.feed(b"data: " + b"x" * (MAX_LINE_BYTES // 2))
    with pytest.raises(ValueError, match="longer than"):
        decoder.feed(b"x" * (MAX_LINE_BYTES // 2 + 16))


def test_deltas_of_one_read_are_joined_per_run_of_a_kind_in_order() -> None:
    deltas: list[TextDelta | ReasoningDelta] = [
        ReasoningDelta("Think"),
        ReasoningDelta("ing."),
        TextDelta("Hel"),
        TextDelta("lo"),
        ReasoningDelta("More."),
        TextDelta("!"),
    ]
    assert merge_deltas(deltas) == [
        ReasoningDelta("Thinking."),
        TextDelta("Hello"),
        ReasoningDelta("More."),
        TextDelta("!"),
    ]
    assert merge_deltas([TextDelta("one")]) == [TextDelta("one")]
    assert merge_deltas([]) == []


class Chunks(httpx.AsyncByteStream):
    """A response body that arrives in exactly these reads."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def sse(*pieces: str, finish: bool = False) -> bytes:
    events = [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    if finish:
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)


async def test_the_events_of_one_read_travel_on_as_one_delta() -> None:
    # A busy server (or a proxy) packs many events into one read; one of them
    # is cut in two across reads.
    first = sse("The ", "quick ", "brown ")
    second = sse("fox ", "jumps", finish=True) + b"data: [DONE]\n\n"
    chunks = [first + second[:10], second[10:]]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Chunks(chunks)
        )

    config = ModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1", model="m")
    provider = OpenAIProvider(
        config, environ={"KFD_API_KEY": "k"}, transport=httpx.MockTransport(answer)
    )
    request = ModelRequest(model="m", system="", messages=[UserMessage(text="go")])
    try:
        events = [event async for event in provider.stream(request)]
    finally:
        await provider.aclose()
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert deltas == [TextDelta("The quick brown "), TextDelta("fox jumps")]
    assert isinstance(events[-1], Completed)
    assert events[-1].message.text == "The quick brown fox jumps"


def test_a_lone_stream_is_read_at_once_and_many_wait_up_to_a_bound() -> None:
    assert pause_between_reads(1) == 0
    assert 0 < pause_between_reads(2) < pause_between_reads(5) < MOST_S
    assert pause_between_reads(1000) == MOST_S
    pacing = ReadPacing()
    with pacing.reading():
        assert pacing.pause() == 0
        with pacing.reading():
            assert pacing.pause() == pause_between_reads(2)
    assert pacing.streams == 0


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


async def test_streams_read_side_by_side_take_many_tokens_a_read_and_lose_none(
    server: ScriptedModelServer,
) -> None:
    # Twenty streams at once, a token every 2 ms each: a paced connection is
    # read every few milliseconds and each read takes several tokens; every
    # character still arrives, in order.
    text = "".join(f"t{i}." for i in range(100))
    streams, chunk_chars = 20, 4
    for _ in range(streams):
        server.add(Reply(text=text, chunk_chars=chunk_chars, chunk_delay_s=0.002))
    pacing = ReadPacing()
    config = ModelConfig(provider="openai", base_url=server.base_url, model="m")
    provider = OpenAIProvider(
        config, environ={"KFD_API_KEY": "k"}, transport=paced_transport(pacing)
    )
    request = ModelRequest(model="m", system="", messages=[UserMessage(text="go")])

    async def one() -> str:
        with pacing.reading():  # as the provider counts its own in PACING
            pieces = [
                event.text
                async for event in provider.stream(request)
                if isinstance(event, TextDelta)
            ]
        return "".join(pieces)

    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(one() for _ in range(streams))), timeout=60
        )
    finally:
        await provider.aclose()
    assert results == [text] * streams
    assert PACING.streams == 0
    chunks = streams * -(-len(text) // chunk_chars)
    assert 0 < pacing.reads < chunks * 0.6
