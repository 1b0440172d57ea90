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

ApprovalDecision = Literal["allow", "allow_session", "allow_always", "deny"]
"""``allow_session`` keeps the approval's ``session_rule`` for the session;
``allow_always`` keeps it for the project, in the store (``kfd rules``)."""

RuleDecision = Literal["allow", "ask", "deny"]

RuleSource = Literal["built-in", "user", "project", "always"]

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
    cache_write_tokens: int = 0
    """Of ``input_tokens``, those written to the provider's prompt cache (Anthropic)."""
    confirmed_cost_usd: float = 0.0
    """The part of ``cost_usd`` a gateway confirmed; the rest is kfd's estimate."""


CostSource = Literal["estimate", "gateway", "unpriced"]
"""Where a cost figure comes from: kfd's price table, the gateway's own log,
or nowhere (a model without a price counts as free until one is configured)."""

BudgetName = Literal["session", "daily", "monthly"]


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
    budget_usd: float | None = None
    """This session's spending limit in US dollars (``kfd budget``); None: the
    ``[budget] session_usd`` of the config."""


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


TaskStatus = Literal["pending", "in_progress", "done"]

MemoryScope = Literal["project", "global"]

CompactReason = Literal[
    "auto",  # the context passed the threshold ([context] compact_at)
    "manual",  # session.compact (``/compact``, ``kfd compact``)
    "overflow",  # the provider rejected a request as too long
]


class Task(_Struct):
    """One item of the plan the model keeps with its ``tasks_set`` tool."""

    text: str
    status: TaskStatus = "pending"


class Memory(_Struct):
    """A remembered fact. ``id`` is what ``forget`` (and ``memory.forget``) takes."""

    id: int
    text: str
    scope: MemoryScope = "project"
    project: str = ""
    """The project (repository root) a project memory belongs to."""
    created_at: float = 0.0
    source: Literal["model", "user"] = "user"
    session: str | None = None
    """The session whose model remembered it."""


class ContextPart(_Struct):
    """One part of what fills a session's context window, in estimated tokens."""

    name: str
    """``system``, ``tools``, ``instructions``, ``memory``, ``summary``,
    ``transcript`` or ``tool_outputs``."""
    tokens: int
    detail: str = ""


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

    refresh_tools: bool = False
    """Ask the tool sources for their tools first (starts MCP servers not yet
    running), so ``tools`` and ``plugin_status`` list them."""


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


class FrontendFocus(Request, tag="frontend.focus", kw_only=True):
    """Tell the other frontends that this one has (or lost) the user's focus on
    ``session`` (a REPL in a focused terminal): the notifier stays quiet for it."""

    session: str
    focused: bool = True


class TriggerList(Request, tag="trigger.list", kw_only=True):
    """The file-watch triggers of the configuration, with their last firing."""


class TriggerReload(Request, tag="trigger.reload", kw_only=True):
    """Read ``[[triggers]]`` from the configuration again and restart the watchers."""


class SessionCompact(Request, tag="session.compact", kw_only=True):
    """Summarise the older part of the transcript now (``/compact``).

    ``instructions`` say what the summary must keep. The reply comes when the
    summary is made (the model writes it: allow a minute); refused with
    ``conflict`` while a turn runs.
    """

    session: str
    instructions: str = ""


class SessionContext(Request, tag="session.context", kw_only=True):
    """What fills the session's context window (``/context``)."""

    session: str


class MemoryList(Request, tag="memory.list", kw_only=True):
    """Remembered facts, newest first: with ``cwd``, those of its project and
    the global ones; without, all of them."""

    cwd: str | None = None
    scope: Literal["project", "global", "all"] = "all"
    limit: int = 100


class MemorySearch(Request, tag="memory.search", kw_only=True):
    """Remembered facts ranked by relevance to ``query`` (full-text search)."""

    query: str
    cwd: str | None = None
    limit: int = 10


class MemoryAdd(Request, tag="memory.add", kw_only=True):
    """Remember a fact for the project of ``cwd`` or for every project.

    Secrets (API keys, tokens, private keys) are redacted before it is stored.
    """

    text: str
    scope: MemoryScope = "project"
    cwd: str | None = None


class RulesList(Request, tag="rules.list", kw_only=True):
    """The permission rules that apply in ``cwd``: built-in, user config, project
    config and "always" rules (``kfd rules list``). Without ``cwd``: the
    "always" rules of every project."""

    cwd: str | None = None


class RulesRemove(Request, tag="rules.remove", kw_only=True):
    """Remove an "always" rule: by ``rule_id``, or by its text in the project of ``cwd``."""

    rule_id: int | None = None
    rule: str = ""
    cwd: str | None = None


class RulesExplain(Request, tag="rules.explain", kw_only=True):
    """How the permission engine decides the bash ``command`` in ``cwd`` in ``mode``,
    with that directory's rules; nothing runs (``kfd explain``)."""

    command: str
    cwd: str
    mode: Mode = "default"


class MemoryForget(Request, tag="memory.forget", kw_only=True):
    """Delete a remembered fact by id."""

    memory_id: int


class CostQuery(Request, tag="cost.query", kw_only=True):
    """What model requests cost, from the ledger: totals, groups, and rows.

    ``since`` and ``until`` are Unix times (``until`` excluded). ``by`` groups
    the rows (``day`` in the daemon's local time); ``entries`` asks for that
    many individual ledger rows too, newest first.
    """

    session: str | None = None
    since: float | None = None
    until: float | None = None
    by: Literal["session", "model", "day"] | None = None
    entries: int = 0


class ModelList(Request, tag="model.list", kw_only=True):
    """The models kfd knows, with context windows and prices (``kfd models``)."""


class SessionSetBudget(Request, tag="session.set_budget", kw_only=True):
    """Set a session's spending limit in US dollars; None goes back to the config's."""

    session: str
    usd: float | None


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
    | CostQuery
    | ModelList
    | SessionSetBudget
    | FrontendFocus
    | TriggerList
    | TriggerReload
    | SessionCompact
    | SessionContext
    | MemoryList
    | MemorySearch
    | MemoryAdd
    | MemoryForget
    | RulesList
    | RulesRemove
    | RulesExplain
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
    plugin_status: dict[str, Any] = msgspec.field(default_factory=dict)
    """Each plugin's own state report, by plugin name (``mcp``: its servers)."""


class Empty(_Struct):
    """The result of requests that return nothing but success."""


class SessionResult(_Struct):
    session: SessionInfo


class SessionListResult(_Struct):
    sessions: list[SessionInfo]


class MessageSendResult(_Struct):
    message_id: str
    queued: bool


class TriggerInfo(_Struct):
    """A file-watch trigger as configured, and what it last did."""

    name: str
    workspace: str
    paths: list[str] = msgspec.field(default_factory=list)
    mode: Mode = "plan"
    session: str = "new"
    debounce_ms: int = 0
    cooldown_s: float = 0.0
    budget_usd: float | None = None
    watching: bool = False
    """False when the trigger could not start (see ``problem``)."""
    problem: str = ""
    fired: int = 0
    last_fired_at: float | None = None
    last_files: list[str] = msgspec.field(default_factory=list)
    last_session: str | None = None
    spent_usd: float = 0.0
    """What the turns this trigger started cost, counted against ``budget_usd``."""


class TriggerListResult(_Struct):
    triggers: list[TriggerInfo] = msgspec.field(default_factory=list)
    problems: list[str] = msgspec.field(default_factory=list)
    """Trigger tables that could not be used, each with what to fix."""


class CompactResult(_Struct):
    """What ``session.compact`` did; ``message`` says why when nothing was."""

    compacted: bool
    tokens_before: int = 0
    tokens_after: int = 0
    summary: str = ""
    message: str = ""


class ContextResult(_Struct):
    """What fills a session's context window, as ``/context`` shows it.

    Token figures are the local estimate, calibrated by what the provider
    reported for this session's requests (``calibration``).
    """

    session: str
    model: str
    context_window: int
    output_reserve: int
    threshold: int
    """Estimated tokens at which the context is compacted automatically."""
    auto_compact: bool
    tokens: int
    """The next request's estimated size: the sum of ``parts``."""
    parts: list[ContextPart] = msgspec.field(default_factory=list)
    reported_tokens: int = 0
    """Input tokens the provider reported for the last request."""
    calibration: float = 1.0
    compactions: int = 0


class MemoryListResult(_Struct):
    memories: list[Memory] = msgspec.field(default_factory=list)


class RuleInfo(_Struct):
    """A permission rule and where it comes from."""

    rule: str
    """``tool(specifier)``, exactly as written or shown when it was allowed."""
    decision: RuleDecision
    source: RuleSource
    id: int | None = None
    """An "always" rule's id in the store (what ``rules.remove`` takes)."""
    project: str = ""
    """The project (repository root) an "always" or project rule belongs to."""
    created_at: float = 0.0
    session: str | None = None
    """The session whose approval made an "always" rule."""


class RulesResult(_Struct):
    rules: list[RuleInfo] = msgspec.field(default_factory=list)
    project: str = ""
    """The project of ``cwd``, when the request named one."""
    problems: list[str] = msgspec.field(default_factory=list)
    """Rule sources that could not be read (a broken ``.kfd/config.toml``)."""


class ExplainedCommand(_Struct):
    """One command of an explained line and the allow rule that covers it, if any."""

    command: str
    argv: list[str] = msgspec.field(default_factory=list)
    allowed_by: str = ""
    source: str = ""


class ExplainResult(_Struct):
    """How the engine decides a bash command: ``decision`` and the ``reason`` it gives."""

    decision: RuleDecision
    reason: str
    rule: str = ""
    """The rule that decided, if one did."""
    source: str = ""
    """Where that rule comes from, or ``mode``."""
    mode: Mode = "default"
    cwd: str = ""
    project: str = ""
    commands: list[ExplainedCommand] = msgspec.field(default_factory=list)
    risks: list[str] = msgspec.field(default_factory=list)
    """What the shell analyzer found that needs a human (substitutions, ...)."""
    sandboxed: bool = True
    """Whether the command would run in the sandbox ([sandbox] enabled)."""


class MemoryResult(_Struct):
    memory: Memory


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
    tasks: list[Task] = msgspec.field(default_factory=list)
    """The model's current plan (the last ``tasks.updated``)."""


class AttachResult(_Struct):
    """Snapshot plus raw durable events after ``since_seq`` (or the tail)."""

    snapshot: Snapshot
    events: list[msgspec.Raw] = msgspec.field(default_factory=list)
    first_seq: int = 1
    more: bool = False
    """More events than one reply carries: attach again from the last one."""


class CostRow(_Struct):
    """Ledger rows added up: all of them (``total``) or one group."""

    key: str = ""
    """The group: a session id, a model, or a day (``YYYY-MM-DD``); empty for totals."""
    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    confirmed_usd: float = 0.0
    """The part of ``cost_usd`` the gateway confirmed."""
    estimated_usd: float = 0.0
    """The part of ``cost_usd`` that is kfd's estimate."""
    unpriced: int = 0
    """Requests to models without a price (counted as free)."""
    errors: int = 0
    """Requests that failed for good."""
    retries: int = 0
    first_at: float = 0.0
    last_at: float = 0.0


class LedgerEntry(_Struct):
    """One model request as the ledger holds it."""

    id: str
    session: str
    turn: int
    ts: float
    provider: str
    model: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    estimate_usd: float = 0.0
    """kfd's estimate, kept when the gateway's cost replaced it."""
    cost_source: CostSource = "estimate"
    latency_ms: float | None = None
    ttft_ms: float | None = None
    retries: int = 0
    request_id: str = ""
    gateway_log_id: str = ""
    cache_status: str = ""
    error: str = ""


class BudgetState(_Struct):
    """A spending limit and what has been spent against it."""

    budget: BudgetName
    limit_usd: float
    spent_usd: float
    session: str = ""


class CostResult(_Struct):
    """The ledger's answer: totals, groups (``by``), rows (``entries``), budgets."""

    total: CostRow
    rows: list[CostRow] = msgspec.field(default_factory=list)
    entries: list[LedgerEntry] = msgspec.field(default_factory=list)
    budgets: list[BudgetState] = msgspec.field(default_factory=list)
    """The limits that apply (the session's only when the query names one)."""


class ModelInfo(_Struct):
    """A model of the model table; prices in US dollars per million tokens."""

    name: str
    provider: str = ""
    context_window: int | None = None
    input: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    output: float | None = None
    aliases: list[str] = msgspec.field(default_factory=list)


class ModelListResult(_Struct):
    models: list[ModelInfo]
    provider: str = ""
    """The configured provider."""
    default: str = ""
    """The configured model (``[model] model``)."""


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
    """The rule "allow for this session" (and "allow always") would keep, shown
    before confirming. Empty: neither keeps anything. A ``grant(tool:what)``
    rule (the sandbox cannot start, say) can be kept for the session only."""


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


class MemoryRecalled(Event, tag="memory.recalled", kw_only=True):
    """Remembered facts placed in context beside the user message ``message_id``."""

    message_id: str
    memories: list[Memory] = msgspec.field(default_factory=list)


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
    | CostUpdated
    | BudgetWarning
    | TurnCompleted
    | ErrorEvent
    | FrontendsChanged
    | DaemonStopping
    | TriggerFired
    | FocusChanged
    | ContextCompacting
    | ContextCompacted
    | TasksUpdated
    | MemoryRecalled
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
    "cost.query": CostResult,
    "model.list": ModelListResult,
    "session.set_budget": SessionResult,
    "frontend.focus": Empty,
    "trigger.list": TriggerListResult,
    "trigger.reload": TriggerListResult,
    "session.compact": CompactResult,
    "session.context": ContextResult,
    "memory.list": MemoryListResult,
    "memory.search": MemoryListResult,
    "memory.add": MemoryResult,
    "memory.forget": MemoryResult,
    "rules.list": RulesResult,
    "rules.remove": RulesResult,
    "rules.explain": ExplainResult,
}
"""What each request's ``result`` decodes to."""
