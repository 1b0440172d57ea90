"""A final answer that did not end by itself says why: the output limit, or a refusal."""

from __future__ import annotations

import pytest

from kfd.agent.turn import answer_cut_short


@pytest.mark.parametrize(
    ("provider_stop", "reason"),
    [
        ("length", "max_tokens"),  # OpenAI-compatible
        ("max_tokens", "max_tokens"),  # Anthropic
        ("content_filter", "refusal"),
        ("refusal", "refusal"),
    ],
)
def test_an_answer_cut_short_ends_the_turn_with_its_reason(provider_stop: str, reason: str) -> None:
    stopped = answer_cut_short(provider_stop)
    assert stopped is not None and stopped[0] == reason and stopped[1]


@pytest.mark.parametrize("provider_stop", ["stop", "end_turn", "tool_calls", ""])
def test_an_answer_that_ended_by_itself_ends_the_turn_normally(provider_stop: str) -> None:
    assert answer_cut_short(provider_stop) is None
