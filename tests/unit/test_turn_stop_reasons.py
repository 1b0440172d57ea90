"""A final answer that did not end by itself says why: the output limit, or a refusal."""

from __future__ import annotations

import pytest

from kfd.agent.lifecycle import (
    Aborted,
    Idle,
    ModelAnswered,
    Running,
    TurnBegan,
    TurnClosed,
    closing,
    transition,
)


def answered(provider_stop: str, calls: int = 0) -> Running:
    running = transition(Idle(), TurnBegan(turn=1, max_steps=5, repeat_limit=3))
    state = transition(running, ModelAnswered(calls, provider_stop))
    assert isinstance(state, Running)
    return state


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
    ending = closing(answered(provider_stop))
    assert ending.stop == reason and ending.note and ending.failure is None


@pytest.mark.parametrize("provider_stop", ["stop", "end_turn", "tool_calls", ""])
def test_an_answer_that_ended_by_itself_ends_the_turn_normally(provider_stop: str) -> None:
    assert closing(answered(provider_stop)).stop == "end_turn"


def test_an_answer_with_calls_goes_on_whatever_its_stop_reason() -> None:
    assert answered("length", calls=1).ending is None


def test_an_answer_no_longer_read_past_its_output_limit_ends_the_turn_at_max_tokens() -> None:
    running = transition(Idle(), TurnBegan(turn=1, max_steps=5, repeat_limit=3))
    state = transition(running, Aborted("max_tokens", "the answer ran past its output limit"))
    ending = closing(state)
    assert (ending.stop, ending.note) == ("max_tokens", "the answer ran past its output limit")
    assert ending.failure is None
    assert transition(state, TurnClosed()) == Idle(failed=False)
