"""The bus protocol: every message a frontend and the daemon exchange.

This module is one of kfd's three public contracts (with `kfd.api` and
`kfd.client`). It imports nothing but msgspec, so a frontend pays for nothing
else.

Wire format
-----------
JSON, one message per ZeroMQ frame.

*Requests* travel over a DEALER socket to the daemon's ROUTER. Every request is
an object whose ``method`` field names it (``"session.create"``) and whose
``id`` the reply echoes. Every request gets exactly one reply::

    {"id": "7", "ok": true, "result": {...}}
    {"id": "7", "ok": false, "error": {"code": "not_found", "message": "..."}}

*Events* travel over the daemon's XPUB socket as two frames: the topic (a
session id, or ``global``) and the event object, whose ``type`` field names it.
Every durable session event carries the session's ``seq``, which grows by one
per event. Streaming events (``message.delta``, ``tool.output``) are marked
``ephemeral``: they are not logged, carry the ``seq`` of the last durable event
before them and an ``offset`` into the text they extend, so a client can place
them exactly.

Compatibility
-------------
New fields always get defaults. A client that meets an event ``type`` it does
not know skips it (`kfd.client` does this for you) but still counts its seq.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

PROTOCOL_VERSION = 1
"""Bumped only for changes an older peer cannot ignore."""

MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""The daemon refuses (and drops) larger request frames."""

GLOBAL_TOPIC = "global"
"""Topic of daemon-wide events (sessions created, daemon stopping)."""

Mode = Literal["default", "accept-edits", "plan", "auto"]
MODES: tuple[Mode, ...] = ("default", "accept-edits", "plan", "auto")

SessionStatus = Literal["idle", "running", "awaiting_approval", "error"]

ApprovalDecision = Literal["allow", "allow_session", "deny"]

ErrorCode = Literal["bad_request", "not_found", "conflict", "overloaded", "internal"]

StopReason = Literal[
    "end_turn",  # the model answered without calling tools
    "cancelled",  # turn.cancel
    "max_steps",  # the configured step limit was reached
    "repeated_tool_call",  # same tool, same arguments, three times in a row
    "error",  # the model could not be reached, or the turn failed
    "interrupted",  # the daemon stopped or crashed during the turn
    "forked",  # the turn was still open where a fork was cut
]

ToolStatus = Literal["ok", "error", "denied", "cancelled", "interrupted"]


class _Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every wire struct: keyword-only, defaults left off the wire."""


# --------------------------------------------------------------------------
# Shared records


class FrontendRef(_Struct):
    """Who did something: a frontend as it introduced itself in daemon.hello."""

    id: str
    name: str = "unknown"


class Usage(_Struct):
    """Token counts and cost. Used per request and as session totals."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0
    cost_usd: float = 0.0


class SessionInfo(_Struct):
    """What a session list or header shows."""

    id: str
    cwd: str
    title: str = ""
    model: str = ""
    mode: Mode = "default"
    status: SessionStatus = "idle"
    created_at: float = 0.0
    updated_at: float = 0.0
    last_seq: int = 0
    turns: int = 0
    archived: bool = False
    forked_from: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    frontends: int = 0


class ToolCall(_Struct):
    """A tool call as the model made it. ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


class Preview(_Struct):
    """What an approval prompt shows: a unified diff, a command, or a summary."""

    summary: str = ""
    diff: str | None = None
    command: str | None = None
    cwd: str | None = None


class FrontendInfo(_Struct):
    """A connected frontend, in daemon.status."""

    id: str
    name: str
    pid: int = 0
    connected_at: float = 0.0
    last_seen: float = 0.0


# --------------------------------------------------------------------------
# Requests


class Request(_Struct, tag_field="method"):
    """Base of every request. ``id`` is chosen by the client and echoed."""

    id: str


class Hello(Request, tag="daemon.hello", kw_only=True):
    """Introduce a frontend; the reply carries the daemon's protocol version."""

    protocol: int = PROTOCOL_VERSION
    name: str = "unknown"
    pid: int = 0


class Status(Request, tag="daemon.status", kw_only=True):
    """Daemon pid, version, uptime, sessions and attached frontends."""


class Shutdown(Request, tag="daemon.shutdown", kw_only=True):
    """Stop the daemon cleanly (running turns end as interrupted)."""


class SessionCreate(Request, tag="session.create", kw_only=True):
    """Start a session bound to the workspace ``cwd``."""

    cwd: str
    title: str = ""
    model: str | None = None
    mode: Mode = "default"


class SessionList(Request, tag="session.list", kw_only=True):
    """Sessions, most recently active first; optionally only those of ``cwd``."""

    cwd: str | None = None
    include_archived: bool = False
    limit: int = 100


class SessionGet(Request, tag="session.get", kw_only=True):
    """One session's info. ``session`` may be a unique id prefix."""

    session: str


class SessionAttach(Request, tag="session.attach", kw_only=True):
    """A snapshot of the session and the durable events after ``since_seq``.

    ``tail`` limits the events returned to the last N (for a late-attaching
    frontend that only wants recent history); the snapshot is always complete.
    """

    session: str
    since_seq: int = 0
    tail: int | None = None


class SessionFork(Request, tag="session.fork", kw_only=True):
    """A new session sharing the transcript up to and including ``message_id``.

    Without ``message_id`` the whole transcript is shared.
    """

    session: str
    message_id: str | None = None
    title: str = ""


class SessionArchive(Request, tag="session.archive", kw_only=True):
    """Hide a session from listings; ``archived=False`` restores it."""

    session: str
    archived: bool = True


class SessionSetMode(Request, tag="session.set_mode", kw_only=True):
    """Change the permission mode; takes effect at the next decision."""

    session: str
    mode: Mode


class SessionSetModel(Request, tag="session.set_model", kw_only=True):
    """Change the model of the session; takes effect at the next request."""

    session: str
    model: str


class MessageSend(Request, tag="message.send", kw_only=True):
    """A user message. Queued when a turn is running, run next.

    ``client_msg_id`` makes a retried send idempotent.
    """

    session: str
    text: str
    client_msg_id: str | None = None


class TurnCancel(Request, tag="turn.cancel", kw_only=True):
    """Stop the running turn: the model stream and any running tool.

    With ``clear_queue`` the queued messages are dropped too.
    """

    session: str
    clear_queue: bool = False


class ApprovalRespond(Request, tag="approval.respond", kw_only=True):
    """Answer a pending approval. The first answer wins; later ones conflict."""

    session: str
    approval_id: str
    decision: ApprovalDecision
    message: str = ""


AnyRequest = (
    Hello
    | Status
    | Shutdown
    | SessionCreate
    | SessionList
    | SessionGet
    | SessionAttach
    | SessionFork
    | SessionArchive
    | SessionSetMode
    | SessionSetModel
    | MessageSend
    | TurnCancel
    | ApprovalRespond
)

REQUEST_METHODS: frozenset[str] = frozenset(t.__struct_config__.tag for t in AnyRequest.__args__)


# --------------------------------------------------------------------------
# Replies


class ErrorInfo(_Struct):
    """A typed error: ``code`` for programs, ``message`` for people."""

    code: ErrorCode
    message: str


class Reply(_Struct):
    """The envelope of every reply. ``result`` is decoded by the caller."""

    id: str
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: ErrorInfo | None = None


class HelloResult(_Struct):
    protocol: int
    version: str
    daemon_id: str
    pid: int
    frontend_id: str


class StatusResult(_Struct):
    pid: int
    version: str
    daemon_id: str
    started_at: float
    uptime_s: float
    sessions: int
    """Sessions in the store (archived ones included)."""
    loaded: int
    """Sessions in memory."""
    running: int
    frontends: list[FrontendInfo] = msgspec.field(default_factory=list)
    runtime_dir: str = ""
    state_dir: str = ""
    plugins: list[str] = msgspec.field(default_factory=list)
    tools: list[str] = msgspec.field(default_factory=list)
    problems: list[str] = msgspec.field(default_factory=list)
    """Plugins that failed to load, and similar things the user should fix."""


class Empty(_Struct):
    """The result of requests that return nothing but success."""


class SessionResult(_Struct):
    session: SessionInfo


class SessionListResult(_Struct):
    sessions: list[SessionInfo]


class MessageSendResult(_Struct):
    message_id: str
    queued: bool


class StreamingMessage(_Struct):
    """An assistant message being streamed, as far as it has come."""

    message_id: str
    text: str = ""
    reasoning: str = ""


class RunningTool(_Struct):
    """A tool that is running; ``output`` is its tail from ``output_offset``."""

    call_id: str
    name: str
    summary: str = ""
    started_at: float = 0.0
    output: str = ""
    output_offset: int = 0


class QueuedMessage(_Struct):
    message_id: str
    text: str
    frontend: FrontendRef | None = None


class Snapshot(_Struct):
    """Everything a frontend needs to draw a session's live state at ``seq``.

    Durable history is in the events of the attach reply; the snapshot adds
    what is not durable: partial streams and running tool output.
    """

    seq: int
    session: SessionInfo
    pending_approvals: list[ApprovalRequested] = msgspec.field(default_factory=list)
    queued: list[QueuedMessage] = msgspec.field(default_factory=list)
    streaming: StreamingMessage | None = None
    running_tools: list[RunningTool] = msgspec.field(default_factory=list)


class AttachResult(_Struct):
    """Snapshot plus raw durable events after ``since_seq`` (or the tail)."""

    snapshot: Snapshot
    events: list[msgspec.Raw] = msgspec.field(default_factory=list)
    first_seq: int = 1
    more: bool = False
    """More events than one reply carries: attach again from the last one."""


# --------------------------------------------------------------------------
# Events


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


class SessionStatusChanged(Event, tag="session.status", kw_only=True):
    status: SessionStatus
    detail: str = ""


class TurnStarted(Event, tag="turn.started", kw_only=True):
    turn: int
    message_ids: list[str] = msgspec.field(default_factory=list)


class MessageQueued(Event, tag="message.queued", kw_only=True):
    """A user message arrived while a turn runs; it runs next."""

    message_id: str
    text: str
    frontend: FrontendRef | None = None


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
    """The rule "allow for this session" would add, shown before confirming."""


class ApprovalResolved(Event, tag="approval.resolved", kw_only=True):
    approval_id: str
    call_id: str
    decision: ApprovalDecision
    message: str = ""
    by: FrontendRef | None = None
    rule: str = ""
    """With ``allow_session``: the rule now allowed for the rest of the session."""


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


class UsageReported(Event, tag="usage", kw_only=True):
    """After each model request: that request's usage and the session totals."""

    request: Usage
    total: Usage
    model: str = ""
    context_tokens: int = 0
    context_window: int = 0


class TurnCompleted(Event, tag="turn.completed", kw_only=True):
    turn: int
    stop_reason: StopReason
    message: str = ""


class ErrorEvent(Event, tag="error", kw_only=True):
    code: str
    message: str


class FrontendsChanged(Event, tag="session.frontends", kw_only=True):
    """How many frontends watch the session (ephemeral)."""

    count: int


class DaemonStopping(Event, tag="daemon.stopping", kw_only=True):
    """On the global topic: the daemon is shutting down."""

    reason: str = ""


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
    | TurnCompleted
    | ErrorEvent
    | FrontendsChanged
    | DaemonStopping
)

EVENT_TYPES: frozenset[str] = frozenset(t.__struct_config__.tag for t in AnyEvent.__args__)


def event_type(event: Event) -> str:
    """The wire name of an event (``"message.delta"``)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def method_name(request: Request) -> str:
    """The wire name of a request (``"session.create"``)."""
    tag = type(request).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


RESULT_TYPES: dict[str, type[msgspec.Struct]] = {
    "daemon.hello": HelloResult,
    "daemon.status": StatusResult,
    "daemon.shutdown": Empty,
    "session.create": SessionResult,
    "session.list": SessionListResult,
    "session.get": SessionResult,
    "session.attach": AttachResult,
    "session.fork": SessionResult,
    "session.archive": SessionResult,
    "session.set_mode": SessionResult,
    "session.set_model": SessionResult,
    "message.send": MessageSendResult,
    "turn.cancel": Empty,
    "approval.respond": Empty,
}
"""What each request's ``result`` decodes to."""
