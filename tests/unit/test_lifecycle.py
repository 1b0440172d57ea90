"""The session/turn lifecycle, decided by plain function calls (`kfd.agent.lifecycle`)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from kfd.agent.lifecycle import (
    Aborted,
    ApprovalAsked,
    ApprovalSettled,
    CallChosen,
    CancelRequested,
    Ending,
    Failure,
    Idle,
    LifecycleEvent,
    ModelAnswered,
    ResultsRead,
    Running,
    State,
    TurnBegan,
    TurnClosed,
    UntrustedResult,
    cancellable,
    closing,
    goes_on,
    open_turn,
    recovered_result,
    status_of,
    transition,
    unanswered_result,
)
from kfd.protocol import (
    ApprovalRequested,
    ApprovalResolved,
    MessageQueued,
    MessageUser,
    Preview,
    ToolStarted,
    TurnCompleted,
    TurnStarted,
)


def run(events: Iterable[LifecycleEvent], state: State | None = None) -> State:
    """The state after ``events``, from a fresh idle session unless told otherwise."""
    state = state if state is not None else Idle()
    for event in events:
        state = transition(state, event)
    return state


def began(max_steps: int = 10, repeat_limit: int = 3) -> TurnBegan:
    return TurnBegan(turn=1, max_steps=max_steps, repeat_limit=repeat_limit)


def ending_of(state: State) -> Ending | None:
    assert isinstance(state, Running), state
    return state.ending


# -- status ---------------------------------------------------------------------


def test_a_new_session_is_idle_and_a_turn_makes_it_running() -> None:
    assert status_of(Idle()) == "idle"
    state = run([began()])
    assert status_of(state) == "running"
    assert goes_on(state) and cancellable(state)


def test_an_open_approval_makes_the_session_await_it_until_every_one_settles() -> None:
    state = run([began(), ApprovalAsked(), ApprovalAsked()])
    assert status_of(state) == "awaiting_approval"
    state = run([ApprovalSettled()], state)
    assert status_of(state) == "awaiting_approval"
    state = run([ApprovalSettled()], state)
    assert status_of(state) == "running"


def test_a_settled_approval_never_counts_below_zero() -> None:
    state = run([began(), ApprovalSettled(), ApprovalAsked()])
    assert status_of(state) == "awaiting_approval"


def test_a_failed_turn_leaves_the_session_in_error_until_the_next_turn() -> None:
    state = run([began(), Aborted("provider", "the model is down"), TurnClosed()])
    assert state == Idle(failed=True)
    assert status_of(state) == "error"
    assert status_of(run([began()], state)) == "running"


def test_a_turn_that_ends_normally_leaves_the_session_idle() -> None:
    state = run([began(), ModelAnswered(calls=0), TurnClosed()])
    assert state == Idle(failed=False)
    assert status_of(state) == "idle"


def test_a_turn_closed_before_its_end_was_decided_counts_as_failed() -> None:
    assert run([began(), TurnClosed()]) == Idle(failed=True)


def test_events_outside_a_turn_change_nothing() -> None:
    idle = Idle()
    for event in (
        ModelAnswered(calls=2),
        CallChosen("read", "read{}"),
        ResultsRead(),
        ApprovalAsked(),
        CancelRequested("cancelled"),
        Aborted("cancelled"),
        TurnClosed(),
    ):
        assert transition(idle, event) is idle


def test_a_second_turn_cannot_begin_while_one_runs() -> None:
    state = run([began(), ModelAnswered(calls=1)])
    assert run([TurnBegan(turn=2, max_steps=10, repeat_limit=3)], state) == state


# -- how a turn goes on and ends ---------------------------------------------------


def test_an_answer_without_tool_calls_ends_the_turn() -> None:
    state = run([began(), ModelAnswered(calls=0)])
    assert ending_of(state) == Ending("end_turn")
    assert not goes_on(state)
    assert not cancellable(state)
    assert status_of(state) == "running"  # still closing: results and turn.completed


def test_an_answer_with_calls_goes_on_after_their_results_are_read() -> None:
    state = run([began(), ModelAnswered(calls=2), ResultsRead()])
    assert goes_on(state)
    assert isinstance(state, Running) and state.steps == 1


def test_the_step_limit_stops_the_turn_once_the_last_steps_results_are_in() -> None:
    state = run([began(max_steps=2), ModelAnswered(calls=1), ResultsRead(), ModelAnswered(1)])
    assert goes_on(state)  # the calls of the last allowed answer still run
    state = run([ResultsRead()], state)
    ending = ending_of(state)
    assert ending is not None and ending.stop == "max_steps"
    assert "2 model requests" in ending.note and "max_steps" in ending.note


@pytest.mark.parametrize("max_steps", [0, -1])
def test_a_step_limit_below_one_allows_no_request_at_all(max_steps: int) -> None:
    ending = ending_of(run([began(max_steps=max_steps)]))
    assert ending is not None and ending.stop == "max_steps"


def test_the_same_call_three_times_in_a_row_stops_the_turn() -> None:
    same = CallChosen("bash", 'bash{"command":"ls"}')
    state = run([began(repeat_limit=3), same, same])
    assert goes_on(state)
    ending = ending_of(run([same], state))
    assert ending is not None and ending.stop == "repeated_tool_call"
    assert ending.note == "stopped: `bash` was called with the same arguments 3 times in a row"


def test_repeats_count_across_steps_and_a_different_call_resets_them() -> None:
    same = CallChosen("read", "read{}")
    other = CallChosen("read", 'read{"path":"x"}')
    state = run([began(), same, ModelAnswered(1), ResultsRead(), same, other, same, same])
    assert goes_on(state)
    assert isinstance(state, Running) and state.repeated == ("read{}", 2)


def test_a_repeat_limit_of_one_stops_at_the_first_call() -> None:
    ending = ending_of(run([began(repeat_limit=1), CallChosen("read", "read{}")]))
    assert ending is not None and ending.stop == "repeated_tool_call"


def test_the_first_end_decided_stands_against_later_limits() -> None:
    same = CallChosen("read", "read{}")
    state = run([began(max_steps=1, repeat_limit=1), ModelAnswered(1), same, ResultsRead()])
    ending = ending_of(state)
    assert ending is not None and ending.stop == "repeated_tool_call"


@pytest.mark.parametrize("cause", ["budget", "provider", "internal"])
def test_a_failure_ends_the_turn_in_error_and_names_its_code(cause: Failure) -> None:
    state = run([began(), Aborted(cause, "what went wrong")])
    assert ending_of(state) == Ending("error", "what went wrong", failure=cause)


# -- cancel ---------------------------------------------------------------------------


def test_a_cancelled_turn_ends_cancelled_by_the_user() -> None:
    state = run([began(), CancelRequested("cancelled"), Aborted("cancelled")])
    assert ending_of(state) == Ending("cancelled", "cancelled by the user")
    assert run([TurnClosed()], state) == Idle(failed=False)


def test_a_turn_the_daemon_stops_ends_interrupted() -> None:
    state = run([began(), CancelRequested("interrupted"), Aborted("cancelled")])
    assert ending_of(state) == Ending("interrupted", "the daemon stopped")


def test_a_cancellation_overrides_an_end_decided_before_it() -> None:
    same = CallChosen("read", "read{}")
    state = run([began(repeat_limit=1), same, CancelRequested("cancelled"), Aborted("cancelled")])
    ending = ending_of(state)
    assert ending is not None and ending.stop == "cancelled"


def test_a_closing_turn_cannot_be_cancelled() -> None:
    state = run([began(), ModelAnswered(calls=0)])
    assert not cancellable(state)
    assert not cancellable(Idle())


# -- untrusted content -------------------------------------------------------------------


def test_untrusted_content_weighs_only_once_the_model_has_read_it() -> None:
    state = run([began(), ModelAnswered(2), UntrustedResult("web_fetch")])
    assert isinstance(state, Running) and state.untrusted is None  # its siblings were chosen blind
    state = run([ResultsRead()], state)
    assert isinstance(state, Running) and state.untrusted == "web_fetch"


def test_the_first_untrusted_tool_read_in_a_turn_is_the_one_named() -> None:
    state = run(
        [
            began(),
            ModelAnswered(2),
            UntrustedResult("web_fetch"),
            UntrustedResult("mcp__x"),
            ResultsRead(),
            ModelAnswered(1),
            UntrustedResult("browser"),
            ResultsRead(),
        ]
    )
    assert isinstance(state, Running) and state.untrusted == "web_fetch"


def test_untrusted_content_is_forgotten_with_the_turn() -> None:
    state = run([began(), ModelAnswered(1), UntrustedResult("web_fetch"), ResultsRead()])
    state = run([Aborted("cancelled"), TurnClosed(), began()], state)
    assert isinstance(state, Running) and state.untrusted is None


def test_a_turn_that_stopped_undecided_closes_as_an_internal_error() -> None:
    assert closing(run([began()])) == Ending(
        "error", "internal error: the turn stopped undecided", failure="internal"
    )
    assert closing(run([began(), ModelAnswered(0)])) == Ending("end_turn")


# -- results of calls a turn leaves unanswered -----------------------------------------------


def test_calls_left_by_a_stopped_daemon_are_interrupted_with_side_effects_unknown() -> None:
    status, text = unanswered_result(Ending("interrupted", "the daemon stopped"))
    assert status == "interrupted"
    assert "side effects unknown" in text


def test_calls_left_by_any_other_end_are_cancelled_with_the_reason() -> None:
    assert unanswered_result(Ending("cancelled", "cancelled by the user")) == (
        "cancelled",
        "not completed: the turn ended (cancelled by the user)",
    )
    assert unanswered_result(Ending("end_turn")) == (
        "cancelled",
        "not completed: the turn ended (end_turn)",
    )


# -- after a crash ------------------------------------------------------------------------------


def _approval(approval_id: str) -> ApprovalRequested:
    return ApprovalRequested(
        session="s",
        approval_id=approval_id,
        call_id="c1",
        tool="bash",
        preview=Preview(command="ls"),
        reason="asks",
    )


def test_open_turn_finds_what_a_crash_left_open() -> None:
    found = open_turn(
        [
            TurnStarted(session="s", turn=1),
            TurnCompleted(session="s", turn=1, stop_reason="end_turn"),
            MessageQueued(session="s", message_id="u.taken", text="first"),
            MessageUser(session="s", message_id="u.taken", text="first"),
            MessageQueued(session="s", message_id="u.lost", text="second"),
            TurnStarted(session="s", turn=2),
            ToolStarted(session="s", call_id="c1", name="bash"),
            _approval("a.answered"),
            ApprovalResolved(session="s", approval_id="a.answered", call_id="c1", decision="allow"),
            _approval("a.open"),
        ]
    )
    assert found.turn == 2
    assert found.started == {"c1"}
    assert list(found.approvals) == ["a.open"]
    assert list(found.queued) == ["u.lost"]


def test_a_log_whose_turns_all_completed_has_nothing_open() -> None:
    found = open_turn(
        [
            TurnStarted(session="s", turn=1),
            TurnCompleted(session="s", turn=1, stop_reason="cancelled"),
        ]
    )
    assert found.turn is None and not found.started and not found.approvals


def test_a_call_that_started_before_a_crash_has_unknown_side_effects() -> None:
    assert "side effects unknown" in recovered_result(started=True)
    assert recovered_result(started=False) == (
        "not run: the daemon stopped before this call started"
    )
