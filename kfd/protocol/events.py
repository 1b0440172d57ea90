"""Events: what the daemon publishes (tagged by ``type``)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from kfd.protocol.records import (
    ApprovalDecision,
    BudgetName,
    CompactReason,
    CostSource,
    FileOp,
    FrontendRef,
    Memory,
    Preview,
    SessionInfo,
    SessionStatus,
    StopReason,
    Task,
    ToolCall,
    ToolStatus,
    TurnOverride,
    Usage,
    _Struct,
)

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "ApprovalRequested",
    "ApprovalResolved",
    "BudgetWarning",
    "CheckpointRestored",
    "ConfigInvalid",
    "ConfigReloaded",
    "ContextCompacted",
    "ContextCompacting",
    "CostUpdated",
    "DaemonStopping",
    "DaemonTrouble",
    "ErrorEvent",
    "Event",
    "EventHeader",
    "EventsDropped",
    "FileRequested",
    "FocusChanged",
    "FrontendsChanged",
    "HookReported",
    "MemoryRecalled",
    "MessageCompleted",
    "MessageDelta",
    "MessageDiscarded",
    "MessageQueued",
    "MessageUser",
    "ModelRetry",
    "SessionCreated",
    "SessionStatusChanged",
    "SessionUpdated",
    "TasksUpdated",
    "ToolCompleted",
    "ToolOutput",
    "ToolRequested",
    "ToolStarted",
    "ToolsLoaded",
    "TriggerFired",
    "TriggerSpot",
    "TrustChanged",
    "TrustRequired",
    "TurnCompleted",
    "TurnStarted",
    "UsageReported",
    "event_type",
]


class Event(_Struct, tag_field="type"):
    """Base of every event. ``seq`` orders a session's events."""

    session: str
    seq: int = 0
    ts: float = 0.0
    ephemeral: bool = False


class EventHeader(_Struct):
    """The part of any event a client can always read, known type or not."""

    type: str
    session: str
    seq: int = 0
    ephemeral: bool = False


class SessionCreated(Event, tag="session.created", kw_only=True):
    info: SessionInfo
    forked_from: str | None = None
    forked_at: str | None = None


class SessionUpdated(Event, tag="session.updated", kw_only=True):
    """Title, mode, model or archived flag changed."""

    info: SessionInfo
    by: FrontendRef | None = None
    put_back: TurnOverride | None = None
    """Set when the change is for the running turn only: the values it replaced."""


class SessionStatusChanged(Event, tag="session.status", kw_only=True):
    status: SessionStatus
    detail: str = ""


class TurnStarted(Event, tag="turn.started", kw_only=True):
    turn: int
    message_ids: list[str] = msgspec.field(default_factory=list)


class MessageQueued(Event, tag="message.queued", kw_only=True):
    """A user message arrived while a turn runs (it runs next), or a custom command
    to run (its prompt is made when its turn starts)."""

    message_id: str
    text: str
    frontend: FrontendRef | None = None
    command: str = ""
    """The custom command the message runs (``commands.run``), if any."""
    arguments: str = ""


class MessageUser(Event, tag="message.user", kw_only=True):
    """A user message entered the transcript (a turn picked it up)."""

    message_id: str
    text: str
    frontend: FrontendRef | None = None


class MessageDelta(Event, tag="message.delta", kw_only=True):
    """A piece of streamed model output (ephemeral).

    ``offset`` is the length of this ``kind`` of text before this piece.
    """

    message_id: str
    text: str
    offset: int = 0
    kind: Literal["text", "reasoning"] = "text"


class MessageCompleted(Event, tag="message.completed", kw_only=True):
    """An assistant message, complete, as it entered the transcript."""

    message_id: str
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)


class MessageDiscarded(Event, tag="message.discarded", kw_only=True):
    """A partly streamed message was dropped (the request is being retried)."""

    message_id: str
    reason: str = ""


class ModelRetry(Event, tag="model.retry", kw_only=True):
    attempt: int
    delay_s: float
    reason: str


class ToolRequested(Event, tag="tool.requested", kw_only=True):
    call_id: str
    name: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)
    summary: str = ""
    read_only: bool = False


class ApprovalRequested(Event, tag="approval.requested", kw_only=True):
    approval_id: str
    call_id: str
    tool: str
    preview: Preview = msgspec.field(default_factory=Preview)
    reason: str = ""
    session_rule: str = ""
    """The rule "allow for this session" (and "allow always") would keep, shown
    before confirming. Empty: neither keeps anything. A ``grant(tool:what)``
    rule (the sandbox cannot start, say) can be kept for the session only."""
    can_keep: bool = False
    """Whether "allow always" can keep ``session_rule`` for the project. The
    daemon decides; frontends offer "always" only when this is true."""


class ApprovalResolved(Event, tag="approval.resolved", kw_only=True):
    approval_id: str
    call_id: str
    decision: ApprovalDecision
    message: str = ""
    by: FrontendRef | None = None
    rule: str = ""
    """With ``allow_session``: the rule now allowed for the rest of the session;
    with ``allow_always``: the rule now allowed in this project (``kfd rules``)."""


class ToolStarted(Event, tag="tool.started", kw_only=True):
    call_id: str
    name: str
    summary: str = ""


class ToolOutput(Event, tag="tool.output", kw_only=True):
    """A chunk of a running tool's output (ephemeral); ``offset`` in chars."""

    call_id: str
    data: str
    offset: int = 0


class ToolCompleted(Event, tag="tool.completed", kw_only=True):
    """A tool call's result, exactly as the model will read it."""

    call_id: str
    name: str
    status: ToolStatus = "ok"
    output: str = ""
    display: Preview | None = None
    duration_ms: float = 0.0
    reason: str = ""
    """Why the call was allowed or denied (rule, mode, or who approved)."""
    truncated: bool = False
    untrusted: bool = False
    """The output is content from outside the user's control (a web page, an MCP
    server): the model reads it fenced, and the rest of the turn asks more."""


class UsageReported(Event, tag="usage", kw_only=True):
    """After each model request: that request's usage and the session totals."""

    request: Usage
    total: Usage
    model: str = ""
    context_tokens: int = 0
    context_window: int = 0
    ledger_id: str = ""
    """The ledger row of this request (a later ``cost.updated`` names it)."""
    cost_source: CostSource = "estimate"


class CostUpdated(Event, tag="cost.updated", kw_only=True):
    """The gateway reported what a request really cost; it replaces the estimate."""

    ledger_id: str
    cost_usd: float
    estimate_usd: float
    total: Usage
    """The session totals with the new figure."""
    cost_source: CostSource = "gateway"


class BudgetWarning(Event, tag="budget.warning", kw_only=True):
    """Spending passed the warning fraction (``[budget] warn_at``) of a limit."""

    budget: BudgetName
    limit_usd: float
    spent_usd: float
    message: str = ""


class TurnCompleted(Event, tag="turn.completed", kw_only=True):
    turn: int
    stop_reason: StopReason
    message: str = ""


class ErrorEvent(Event, tag="error", kw_only=True):
    """Something failed. ``code``: ``provider`` (the model could not be reached or
    refused), ``budget`` (a spending limit stopped the turn), ``internal``, ..."""

    code: str
    message: str


class FrontendsChanged(Event, tag="session.frontends", kw_only=True):
    """How many frontends watch the session (ephemeral)."""

    count: int


class TriggerSpot(_Struct):
    """A comment ending in ``AI!`` (do it) or ``AI?`` (answer it) in a watched file."""

    path: str
    line: int
    text: str
    kind: Literal["do", "ask"] = "do"


class TriggerFired(Event, tag="trigger.fired", kw_only=True):
    """A file-watch trigger started a turn in ``session``.

    Durable in the target session's log, and published on the ``global`` topic
    too so a frontend that watches no session sees it. ``files`` are relative
    to ``workspace``; ``kind`` is ``ask`` when the turn answers an ``AI?``
    comment (the answer is for the user, not for the files).
    """

    trigger: str
    kind: Literal["change", "do", "ask"] = "change"
    workspace: str = ""
    files: list[str] = msgspec.field(default_factory=list)
    spots: list[TriggerSpot] = msgspec.field(default_factory=list)
    message_id: str = ""


class FocusChanged(Event, tag="session.focus", kw_only=True):
    """A frontend gained or lost the user's focus on the session (ephemeral)."""

    frontend: FrontendRef
    focused: bool = True


class ContextCompacting(Event, tag="context.compacting", kw_only=True):
    """A compaction started (ephemeral): the summary is being written."""

    reason: CompactReason
    tokens: int = 0


class ContextCompacted(Event, tag="context.compacted", kw_only=True):
    """The older part of the transcript was replaced by a summary for the model.

    The model now reads ``summary`` followed by the transcript from message
    index ``first_kept`` on; the transcript itself is kept whole.
    """

    reason: CompactReason
    tokens_before: int
    tokens_after: int
    summary: str
    first_kept: int
    summarized: int = 0
    """Transcript messages the summary stands for, this time."""
    instructions: str = ""


class TasksUpdated(Event, tag="tasks.updated", kw_only=True):
    """The model set its plan (``tasks_set``); ``tasks`` is the whole list."""

    tasks: list[Task] = msgspec.field(default_factory=list)


class ToolsLoaded(Event, tag="tools.loaded", kw_only=True):
    """The model found tools with ``tool_search``: their full definitions are in
    the session's tool list from now on, for the rest of the session."""

    names: list[str] = msgspec.field(default_factory=list)
    """The tools added, in the order they were added."""


class MemoryRecalled(Event, tag="memory.recalled", kw_only=True):
    """Remembered facts placed in context beside the user message ``message_id``."""

    message_id: str
    memories: list[Memory] = msgspec.field(default_factory=list)


class DaemonStopping(Event, tag="daemon.stopping", kw_only=True):
    """On the global topic: the daemon is shutting down."""

    reason: str = ""
    restart: bool = False
    """The daemon will be started again at once (``kfd restart``)."""


class EventsDropped(Event, tag="events.dropped", kw_only=True):
    """This client fell behind and the daemon shed some of its events (ephemeral).

    Durable events ``first_seq`` to ``last_seq`` (0, 0: none) and, with
    ``deltas``, streamed pieces were not sent; `kfd.client` re-reads what it
    missed from the log by itself and then goes on live.
    """

    first_seq: int = 0
    last_seq: int = 0
    deltas: bool = False


class DaemonTrouble(Event, tag="daemon.trouble", kw_only=True):
    """The daemon cannot write its state, or can again (ephemeral, on every session).

    ``problem`` is empty once writes succeed again. Meanwhile turns pause at
    their next step rather than go on unrecorded.
    """

    problem: str = ""
    message: str = ""


class TrustRequired(Event, tag="trust.required", kw_only=True):
    """The session's project config holds what kfd ignores until the user trusts it.

    Logged in the session when it starts (and when the file changes while it
    runs). ``ignored`` says, line by line, what does not apply; ``grants`` is
    what trusting this exact content (``sha256``) would apply: answer with
    ``trust.set`` (``kfd trust``), from any frontend. Empty ``grants``: only
    what trust cannot change is ignored (a project's ``defaults = false``).
    """

    project: str
    path: str
    sha256: str
    ignored: list[str] = msgspec.field(default_factory=list)
    grants: list[str] = msgspec.field(default_factory=list)


class TrustChanged(Event, tag="trust.changed", kw_only=True):
    """A project file was trusted (at ``sha256``) or its trust revoked.

    On the ``global`` topic, and logged in every loaded session of the
    project, so a frontend still showing a `TrustRequired` question drops it.
    """

    project: str
    path: str
    sha256: str = ""
    trusted: bool = True
    by: FrontendRef | None = None


class ConfigReloaded(Event, tag="config.reloaded", kw_only=True):
    """On the ``global`` topic: the user config changed and was applied (or a
    project config that did not load loads again).

    Also logged in each session that was told ``path`` did not load
    (`ConfigInvalid`): a frontend drops what it showed about that file.

    ``applied`` names what changed and now applies (for the next decision,
    request or turn); ``not_applied`` says what changed but needs a daemon
    restart, and why.
    """

    path: str
    applied: list[str] = msgspec.field(default_factory=list)
    not_applied: list[str] = msgspec.field(default_factory=list)


class ConfigInvalid(Event, tag="config.error", kw_only=True):
    """A config file changed and does not load.

    On the ``global`` topic, and logged in the sessions the file concerns
    (every one for the user config, the project's for its ``.kfd/config.toml``)
    when they start, when a message is sent to them, and when the file breaks
    while they are loaded: show a given ``path`` and ``message`` once, until a
    `ConfigReloaded` for ``path``. The daemon keeps the last good config (for
    a project config: the rules of its last content that loaded, trusted only
    if that content was; with none since the daemon started, every call asks
    until it is fixed); ``message`` names the file, the key and what to fix.
    """

    path: str
    message: str


class FileRequested(Event, tag="file.requested", kw_only=True):
    """The daemon asks the frontend serving a session's files (``files.serve``)
    to read or write one, for a tool call already allowed.

    Sent to that frontend alone, outside the session's log (``seq`` 0, on the
    topic ``~files``): it carries file content, which no other frontend is
    sent. ``path`` is absolute and inside the session's workspace; ``text`` is
    a write's whole new content. Answer with ``files.answer`` and
    ``request_id`` within the ``timeout_s`` the frontend chose.
    """

    request_id: str
    op: FileOp
    path: str
    text: str = ""


class CheckpointRestored(Event, tag="checkpoint.restored", kw_only=True):
    """Files were put back as they were before ``turns`` (``kfd undo``, ``/rewind``)."""

    turns: list[int] = msgspec.field(default_factory=list)
    files: list[str] = msgspec.field(default_factory=list)
    """The files written or removed."""
    kept: list[str] = msgspec.field(default_factory=list)
    """Files changed since the turns and left as they are."""
    forked: str = ""
    """The session forked from before the first undone turn, if asked."""
    by: FrontendRef | None = None


class HookReported(Event, tag="hook.reported", kw_only=True):
    """A shell hook (``[[hooks]]``) failed, hung and was killed, or denied a call.

    A hook never fails a turn: the turn goes on, and this says what happened.
    """

    hook: str
    """The hook's event and command, shortened (``before_tool: ./check.sh``)."""
    outcome: Literal["denied", "failed", "timeout", "unavailable"]
    message: str = ""
    duration_ms: float = 0.0


AnyEvent = (
    SessionCreated
    | SessionUpdated
    | SessionStatusChanged
    | TurnStarted
    | MessageQueued
    | MessageUser
    | MessageDelta
    | MessageCompleted
    | MessageDiscarded
    | ModelRetry
    | ToolRequested
    | ApprovalRequested
    | ApprovalResolved
    | ToolStarted
    | ToolOutput
    | ToolCompleted
    | UsageReported
    | CostUpdated
    | BudgetWarning
    | TurnCompleted
    | ErrorEvent
    | FrontendsChanged
    | DaemonStopping
    | EventsDropped
    | DaemonTrouble
    | TriggerFired
    | FocusChanged
    | ContextCompacting
    | ContextCompacted
    | TasksUpdated
    | MemoryRecalled
    | TrustRequired
    | TrustChanged
    | ConfigReloaded
    | ConfigInvalid
    | ToolsLoaded
    | FileRequested
    | CheckpointRestored
    | HookReported
)

EVENT_TYPES: frozenset[str] = frozenset(t.__struct_config__.tag for t in AnyEvent.__args__)


def event_type(event: Event) -> str:
    """The wire name of an event (``"message.delta"``)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
