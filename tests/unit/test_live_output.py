"""The streaming answer as frontends see it: redacted once per published piece,
however the model cut its tokens, and placed by offsets without gaps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kfd.agent.live import LiveOutput
from kfd.protocol import Event, MessageDelta
from kfd.redact import learn_secrets
from kfd.redact.values import known

SECRET = "Tr0ub4dor-pw-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def learned() -> Iterator[None]:
    saved = known.snapshot()
    learn_secrets({"$DB_PASSWORD": SECRET})
    yield
    known.restore(saved)


class Windows:
    delta_window_s = 0.0
    output_window_s = 0.0


def _shown(events: list[Event], kind: str = "text") -> str:
    text = ""
    for event in events:
        assert isinstance(event, MessageDelta)
        if event.kind != kind:
            continue
        assert event.offset == len(text)  # no gap, no overlap
        text += event.text
    return text


@pytest.mark.parametrize("cut", [1, 5, 12, len(SECRET) - 1])
async def test_a_secret_cut_across_tokens_and_pieces_never_shows(cut: int) -> None:
    published: list[Event] = []
    live = LiveOutput("s1", published.append, Windows())
    live.begin_stream()
    live.stream_text("the password is ")
    live.stream_text(SECRET[:cut])
    await asyncio.sleep(0)  # one piece leaves, the secret's start held back
    live.stream_text(SECRET[cut:])
    live.stream_text(" and more")
    await asyncio.sleep(0)
    live.stream_text(" text", reasoning=True)
    live.end_stream()
    assert _shown(published) == "the password is [redacted $DB_PASSWORD] and more"
    assert _shown(published, "reasoning") == " text"
    assert all(SECRET not in event.text for event in published if isinstance(event, MessageDelta))


async def test_tokens_that_arrive_together_leave_as_one_piece() -> None:
    published: list[Event] = []
    live = LiveOutput("s1", published.append, Windows())
    live.begin_stream()
    for index in range(20):
        live.stream_text(f"r0i{index}.")
    await asyncio.sleep(0)
    live.stream_text("end.")
    live.end_stream()
    assert len(published) == 2
    assert _shown(published) == "".join(f"r0i{index}." for index in range(20)) + "end."


async def test_a_dropped_stream_publishes_nothing_more() -> None:
    published: list[Event] = []
    live = LiveOutput("s1", published.append, Windows())
    live.begin_stream()
    live.stream_text("pending")
    live.end_stream(publish_pending=False)
    await asyncio.sleep(0)
    assert published == []
