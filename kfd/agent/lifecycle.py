"""The session/turn lifecycle as a pure state machine: typed states, events, `transition`.

No I/O and no clock here: `kfd.agent.session` (the queue, the driver task,
approvals) and `kfd.agent.turn` (the loop) are the shell. They tell the
machine what happened (an event), and act on the state it returns: the
session's status (`status_of`), whether the turn goes on, how it ends and
what its unanswered tool calls are told. Every decision is then a plain
function call away from a test (``tests/unit/test_lifecycle.py``)::

    Idle ──TurnBegan──▶ Running ──ModelAnswered(0 calls, maybe cut short) / CallChosen (repeat)
      ▲                   │         / ResultsRead (step limit) / Aborted──▶ Running(ending=…)
      └────TurnClosed─────┘

A running turn is ``running``, or ``awaiting_approval`` while an approval is
open; once its end is decided (``Running.ending``) it only closes: every
unanswered call gets one result (`unanswered_result`), ``turn.completed``
says why, and `TurnClosed` leaves the session ``idle`` (``error`` after a
failed turn). After a crash nothing ran the shell's closing: `open_turn`
reads the log back, and the daemon closes what it left open
(`recovered_result`: "interrupted; side effects unknown").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import msgspec

from kfd.protocol import (
    ApprovalRequested,
    ApprovalResolved,
    Event,
    MessageQueued,
    MessageUser,
    SessionStatus,
    SessionUpdated,
    StopReason,
    ToolRequested,
    ToolStarted,
    ToolStatus,
    TurnCompleted,
    TurnOverride,
    TurnStarted,
)

CancelReason = Literal["cancelled", "interrupted"]
"""What cancelling the running turn means: the user's cancel, or the daemon stopping."""

Failure = Literal["budget", "provider", "internal"]
"""Why a turn failed; also the ``code`` of the ``error`` event that says so."""


# -- states -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ending:
    """How a turn ends, once decided."""

    stop: StopReason
    note: str = ""
    """What the user and the unanswered calls are told ("" for a plain end)."""
    failure: Failure | None = None
    """Set when the turn failed: the shell emits an ``error`` event with it."""


@dataclass(frozen=True, slots=True)
class Idle:
    """No turn runs."""

    failed: bool = False
    """The last turn ended in an error: the status is ``error`` until the next one."""


@dataclass(frozen=True, slots=True)
class Running:
    """A turn runs (or closes, once ``ending`` is set)."""

    turn: int
    max_steps: int
    """Model requests the turn may make."""
    repeat_limit: int
    """The same call this many times in a row stops the turn."""
    steps: int = 0
    """Model answers so far."""
    approvals: int = 0
    """Approvals waiting for an answer."""
    cancel: CancelReason = "cancelled"
    """What a cancellation of the turn means, when it comes."""
    repeated: tuple[str, int] = ("", 0)
    """The last call's signature, and how many times in a row it came."""
    untrusted: str | None = None
    """The tool whose untrusted output the model read this turn: later calls ask more."""
    unread_untrusted: str | None = None
    """The first untrusted result the model has not read yet (it reads it with the others)."""
    ending: Ending | None = None
    """Decided: the turn closes this way and makes no further request."""


State = Idle | Running


# -- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnBegan:
    """The queued messages start turn ``turn``, with the limits of the config."""

    turn: int
    max_steps: int
    repeat_limit: int


@dataclass(frozen=True, slots=True)
class ModelAnswered:
    """The model answered, calling ``calls`` tools (none: the turn is done).

    ``stop`` is the provider's own reason the answer ended (``stop``,
    ``length``, ``max_tokens``, ``content_filter``...): a final answer cut
    short ends the turn saying so (`answer_ending`).
    """

    calls: int
    stop: str = ""


@dataclass(frozen=True, slots=True)
class CallChosen:
    """A call of the answer is about to be decided; ``signature`` is name and arguments."""

    name: str
    signature: str


@dataclass(frozen=True, slots=True)
class UntrustedResult:
    """A call of the answer brought content from outside the user's control."""

    tool: str


@dataclass(frozen=True, slots=True)
class ResultsRead:
    """The results of the answer's calls go back to the model (the step is over)."""


@dataclass(frozen=True, slots=True)
class ApprovalAsked:
    """An approval now waits for a frontend's answer."""


@dataclass(frozen=True, slots=True)
class ApprovalSettled:
    """An approval was answered, or dismissed because the turn ended."""


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Someone asks the running turn to end: the user, or the daemon stopping."""

    reason: CancelReason


@dataclass(frozen=True, slots=True)
class Aborted:
    """The turn cannot go on: its cancellation arrived, the answer ran so far
    past its output limit that it was no longer read (``max_tokens``), or it failed."""

    cause: Literal["cancelled", "max_tokens"] | Failure
    message: str = ""


@dataclass(frozen=True, slots=True)
class TurnClosed:
    """Every call has its result and ``turn.completed`` is out."""


LifecycleEvent = (
    TurnBegan
    | ModelAnswered
    | CallChosen
    | UntrustedResult
    | ResultsRead
    | ApprovalAsked
    | ApprovalSettled
    | CancelRequested
    | Aborted
    | TurnClosed
)


# -- the machine ----------------------------------------------------------------


def transition(state: State, event: LifecycleEvent) -> State:
    """The state after ``event``. Events that mean nothing in ``state`` leave it as it is."""
    match state, event:
        case Idle(), TurnBegan():
            running = Running(event.turn, event.max_steps, event.repeat_limit)
            return running if event.max_steps > 0 else _over_steps(running)
        case Running(), ModelAnswered():
            steps = state.steps + 1
            if event.calls == 0:
                return _end(replace(state, steps=steps), answer_ending(event.stop))
            return replace(state, steps=steps)
        case Running(), CallChosen():
            return _repeat(state, event)
        case Running(), UntrustedResult():
            return replace(state, unread_untrusted=state.unread_untrusted or event.tool)
        case Running(), ResultsRead():
            return _results_read(state)
        case Running(), ApprovalAsked():
            return replace(state, approvals=state.approvals + 1)
        case Running(), ApprovalSettled():
            return replace(state, approvals=max(0, state.approvals - 1))
        case Running(), CancelRequested():
            return replace(state, cancel=event.reason)
        case Running(), Aborted():
            # A cancellation or a failure overrides an end decided before it:
            # it is what actually stopped the turn.
            return replace(state, ending=_aborted(state, event))
        case Running(), TurnClosed():
            # A turn closed with no end decided broke somewhere: that is an error too.
            return Idle(failed=state.ending is None or state.ending.stop == "error")
    return state


def _end(state: Running, ending: Ending) -> Running:
    return state if state.ending is not None else replace(state, ending=ending)


def answer_ending(provider_stop: str) -> Ending:
    """How a turn ends on a final answer (one without tool calls): normally, or
    cut short by the model's output limit (OpenAI ``length``, Anthropic
    ``max_tokens``) or by a refusal (``content_filter``, ``refusal``)."""
    if provider_stop in ("length", "max_tokens"):
        return Ending(
            "max_tokens",
            "the answer reached the model's output limit; raise [model] max_output_tokens "
            "or ask for a shorter answer",
        )
    if provider_stop in ("content_filter", "refusal"):
        return Ending("refusal", "the model refused to answer (the provider's content filter)")
    return Ending("end_turn")


def _repeat(state: Running, event: CallChosen) -> Running:
    last, count = state.repeated
    count = count + 1 if last == event.signature else 1
    state = replace(state, repeated=(event.signature, count))
    if count < state.repeat_limit:
        return state
    message = (
        f"stopped: `{event.name}` was called with the same arguments "
        f"{state.repeat_limit} times in a row"
    )
    return _end(state, Ending("repeated_tool_call", message))


def _results_read(state: Running) -> Running:
    # Calls of the answer that brought untrusted content are not affected: the
    # model chose them all before it read any of their results.
    untrusted = state.untrusted or state.unread_untrusted
    state = replace(state, untrusted=untrusted, unread_untrusted=None)
    return state if state.steps < state.max_steps else _over_steps(state)


def _over_steps(state: Running) -> Running:
    note = f"stopped after {state.max_steps} model requests; raise [agent] max_steps to allow more"
    return _end(state, Ending("max_steps", note))


def _aborted(state: Running, event: Aborted) -> Ending:
    if event.cause == "cancelled":
        if state.cancel == "interrupted":
            return Ending("interrupted", "the daemon stopped")
        return Ending("cancelled", "cancelled by the user")
    if event.cause == "max_tokens":
        return Ending("max_tokens", event.message)
    return Ending("error", event.message, failure=event.cause)


# -- what the shell asks ----------------------------------------------------------


def status_of(state: State) -> SessionStatus:
    """The session status a frontend sees in ``state``."""
    match state:
        case Idle(failed=True):
            return "error"
        case Idle():
            return "idle"
        case Running(approvals=0):
            return "running"
    return "awaiting_approval"


def goes_on(state: State) -> bool:
    """Whether the turn makes another model request or decides another call."""
    return isinstance(state, Running) and state.ending is None


def cancellable(state: State) -> bool:
    """Whether a cancel has a turn to end (not one that is already closing)."""
    return goes_on(state)


def closing(state: State) -> Ending:
    """How the turn in ``state`` ends. A turn that stopped with no end decided
    broke somewhere: it ends as an internal error rather than not at all."""
    if isinstance(state, Running) and state.ending is not None:
        return state.ending
    return Ending("error", "internal error: the turn stopped undecided", failure="internal")


def unanswered_result(ending: Ending) -> tuple[ToolStatus, str]:
    """What a call left without a result is told when its turn ends that way."""
    if ending.stop == "interrupted":
        return (
            "interrupted",
            "interrupted; side effects unknown: the daemon stopped during this call",
        )
    return "cancelled", f"not completed: the turn ended ({ending.note or ending.stop})"


# -- after a crash ------------------------------------------------------------------


@dataclass(slots=True)
class OpenTurn:
    """What a crash left open in a session's log (`open_turn`)."""

    turn: int | None = None
    """The turn started and never completed, if any."""
    started: set[str] = field(default_factory=set)
    """Calls that started: their side effects are unknown."""
    approvals: dict[str, ApprovalRequested] = field(default_factory=dict)
    """Approvals never answered, by approval id."""
    queued: dict[str, MessageQueued] = field(default_factory=dict)
    """Queued messages no turn took, by message id."""
    requested: set[str] = field(default_factory=set)
    """Calls of the open turn whose ``tool.requested`` is logged."""
    carried: dict[str, int] = field(default_factory=dict)
    """How many times each message was queued (a restart queues one again)."""
    put_back: dict[str, Any] = field(default_factory=dict)
    """Session settings changed for the open turn only (a custom command's mode or
    model), with the values to put back: the earliest replaced value of each."""


def open_turn(events: Iterable[Event]) -> OpenTurn:
    """Read back a session's lifecycle events: what is still open."""
    found = OpenTurn()
    for event in events:
        match event:
            case TurnStarted():
                found.turn = event.turn
                found.requested.clear()
            case TurnCompleted():
                found.turn = None
                found.put_back.clear()
            case SessionUpdated(put_back=TurnOverride() as replaced):
                for name, value in msgspec.structs.asdict(replaced).items():
                    if value is not None:
                        found.put_back.setdefault(name, value)
            case ToolRequested():
                found.requested.add(event.call_id)
            case ToolStarted():
                found.started.add(event.call_id)
            case ApprovalRequested():
                found.approvals[event.approval_id] = event
            case ApprovalResolved():
                found.approvals.pop(event.approval_id, None)
            case MessageQueued():
                found.queued[event.message_id] = event
                found.carried[event.message_id] = found.carried.get(event.message_id, 0) + 1
            case MessageUser():
                found.queued.pop(event.message_id, None)
    return found


OPEN_TURN_EVENTS = (
    "turn.started",
    "turn.completed",
    "tool.requested",
    "tool.started",
    "approval.requested",
    "approval.resolved",
    "message.queued",
    "message.user",
    "session.updated",
)
"""The event types `open_turn` reads."""


def recovered_result(started: bool) -> str:
    """What a call the crash left without a result is told (its status: ``interrupted``)."""
    if started:
        return (
            "interrupted; side effects unknown: the daemon stopped while this call "
            "ran. Check the state before running it again."
        )
    return "not run: the daemon stopped before this call started"
