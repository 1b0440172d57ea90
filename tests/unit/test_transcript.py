"""The transcript's own rules: one id names one call of a session."""

from __future__ import annotations

import itertools

from kfd.protocol import ToolCall
from kfd.transcript import (
    AssistantMessage,
    ToolResultMessage,
    UserMessage,
    call_ids,
    distinct_call_ids,
    unanswered_calls,
)


def fresh_ids():
    counter = itertools.count(1)
    return lambda: f"c{next(counter)}"


def test_calls_with_ids_of_their_own_keep_the_providers_ids() -> None:
    calls = [
        ToolCall(id="call_a", name="read", arguments="{}"),
        ToolCall(id="b", name="x", arguments="{}"),
    ]
    assert distinct_call_ids(calls, {"call_z"}, fresh_ids()) == calls


def test_a_repeated_empty_or_unusable_id_gets_a_fresh_one() -> None:
    calls = [
        ToolCall(id="dup", name="bash", arguments='{"command": "echo pwned"}'),
        ToolCall(id="dup", name="write", arguments="{}"),
        ToolCall(id="", name="read", arguments="{}"),
        ToolCall(id="has space\n", name="read", arguments="{}"),
        ToolCall(id="x" * 65, name="read", arguments="{}"),
        ToolCall(id="earlier", name="read", arguments="{}"),
    ]
    distinct = distinct_call_ids(calls, {"earlier", "c2"}, fresh_ids())
    assert [c.id for c in distinct] == ["dup", "c1", "c3", "c4", "c5", "c6"]
    assert [(c.name, c.arguments) for c in distinct] == [(c.name, c.arguments) for c in calls]


def test_each_call_of_a_repeated_id_waits_for_its_own_result() -> None:
    first = ToolCall(id="dup", name="read", arguments="{}")
    second = ToolCall(id="dup", name="bash", arguments="{}")
    calls = distinct_call_ids([first, second], set(), fresh_ids())
    messages = [
        UserMessage(text="go"),
        AssistantMessage(tool_calls=calls),
        ToolResultMessage(call_id="dup", name="read", content="ok"),
    ]
    assert [c.name for c in unanswered_calls(messages)] == ["bash"]
    assert call_ids(messages) == {"dup", "c1"}
