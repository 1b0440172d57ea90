"""Streamed text coalescing and the cap on tool output."""

from __future__ import annotations

import asyncio

from kfd.agent.streams import StreamBuffer
from kfd.agent.truncate import cap


def test_short_output_is_left_alone() -> None:
    assert cap("hello", 100) == ("hello", False)


def test_long_output_keeps_head_and_tail_and_says_where_the_rest_is() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    capped, truncated = cap(text, 1000, output_id="call_1")
    assert truncated
    assert capped.startswith("line 0\n") and capped.endswith("line 9999\n")
    assert "characters omitted" in capped and "`call_1`" in capped
    assert len(capped) < 1200


async def test_a_quiet_stream_publishes_this_turn_of_the_loop_and_a_busy_one_is_batched() -> None:
    published: list[tuple[str, int]] = []
    done = asyncio.Event()

    def flush(text: str, offset: int) -> None:
        published.append((text, offset))
        if "".join(t for t, _ in published) == "abcdefgh":
            done.set()

    buffer = StreamBuffer(0.05, flush)
    buffer.add("a")  # quiet stream: published once this turn of the loop ends,
    buffer.add("b")  # with whatever else the turn brought
    assert published == []
    await asyncio.sleep(0)
    assert published == [("ab", 0)]
    for piece in "cdefgh":
        buffer.add(piece)  # within the window: gathered
    await asyncio.sleep(0)
    assert published == [("ab", 0)]
    await asyncio.wait_for(done.wait(), 2)
    assert published == [("ab", 0), ("cdefgh", 2)]


async def test_a_flush_publishes_what_is_pending_at_once_and_only_once() -> None:
    published: list[tuple[str, int]] = []
    buffer = StreamBuffer(0.05, lambda text, offset: published.append((text, offset)))
    buffer.add("end")
    buffer.flush()  # the completed message follows: nothing may trail it
    assert published == [("end", 0)]
    await asyncio.sleep(0.06)
    assert published == [("end", 0)]


async def test_kept_text_is_a_bounded_tail_with_its_offset() -> None:
    buffer = StreamBuffer(0.0, lambda text, offset: None, keep=10)
    for _ in range(10):
        buffer.add("12345")
    kept, offset = buffer.kept()
    assert offset + len(kept) == 50
    assert 10 <= len(kept) <= 15 and kept.endswith("12345")
