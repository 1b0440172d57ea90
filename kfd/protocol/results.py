"""Replies and the results requests return."""

from __future__ import annotations

from typing import Any

import msgspec

from kfd.protocol.events import (
    ApprovalRequested,
)
from kfd.protocol.records import (
    BudgetName,
    ChangedFile,
    CommandInfo,
    ContextPart,
    CostSource,
    EnvFact,
    ErrorCode,
    FrontendInfo,
    FrontendRef,
    LedgerState,
    Memory,
    MissingTool,
    Mode,
    RuleDecision,
    RuleSource,
    SessionInfo,
    Task,
    TrustedFile,
    TurnCheckpoint,
    UndoStep,
    _Struct,
)

__all__ = [
    "RESULT_TYPES",
    "AttachResult",
    "BudgetState",
    "CheckpointListResult",
    "CommandListResult",
    "CompactResult",
    "ContextResult",
    "CostResult",
    "CostRow",
    "DiffResult",
    "Empty",
    "ErrorInfo",
    "ExplainResult",
    "ExplainedCommand",
    "HelloResult",
    "LedgerEntry",
    "MemoryListResult",
    "MemoryResult",
    "MessageSendResult",
    "ModelInfo",
    "ModelListResult",
    "QueuedMessage",
    "Reply",
    "RuleInfo",
    "RulesResult",
    "RunningTool",
    "SessionListResult",
    "SessionResult",
    "Snapshot",
    "StatusResult",
    "StreamingMessage",
    "TriggerInfo",
    "TriggerListResult",
    "TrustInfo",
    "TrustListResult",
    "UndoResult",
]


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
    environment: dict[str, EnvFact] = msgspec.field(default_factory=dict)
    """The daemon's provider environment (``KFD_*``, provider keys), to compare
    with the client's own (`kfd.client.environment_drift`)."""
    env_salt: str = ""
    """The salt of the digests in ``environment``."""


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
    draining: bool = False
    """A graceful stop or restart waits for the running turns to finish."""
    trouble: str = ""
    """What keeps the daemon from writing its state right now ("disk full"), or ""."""
    config_path: str = ""
    """The user config file the daemon reads (and watches)."""
    config_loaded_at: float = 0.0
    """When the config in use was read (at start, or its last good reload)."""
    config_error: str = ""
    """Why the config file's current content does not load; the daemon keeps
    the config read at ``config_loaded_at`` until it is fixed."""
    tools_missing: list[MissingTool] = msgspec.field(default_factory=list)
    """Tools that cannot work in the requested ``cwd``, and why (not offered there)."""


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
    refused: int = 0
    """Firings a spent budget stopped since the daemon started (``problem`` says which)."""


class TriggerListResult(_Struct):
    triggers: list[TriggerInfo] = msgspec.field(default_factory=list)
    problems: list[str] = msgspec.field(default_factory=list)
    """Trigger tables that could not be used, each with what to fix."""
    not_reloaded: str = ""
    """Set by ``trigger.reload`` when the config could not be read: why. The
    triggers listed are the ones still running, unchanged."""


class CompactResult(_Struct):
    """What ``session.compact`` did; ``message`` says why when nothing was."""

    compacted: bool
    tokens_before: int = 0
    tokens_after: int = 0
    summary: str = ""
    message: str = ""


class ContextResult(_Struct):
    """What fills a session's context window, as ``/context`` shows it.

    Token figures are counted with the model's tokenizer where kfd has it
    (``tokenizer``), else estimated; either way calibrated by what the
    provider reported for this session's requests (``calibration``).
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
    tokenizer: str = ""
    """The tokenizer that counted the text (``o200k_base``): the model's own,
    so counts are exact but for the provider's framing; empty: estimated from
    the text's size, calibrated by ``calibration``."""
    tools_missing: list[MissingTool] = msgspec.field(default_factory=list)
    """Tools not offered because they cannot work in the session's workspace."""
    tools_deferred: int = 0
    """Tools not listed, that the model finds with ``tool_search``."""
    tools_loaded: list[str] = msgspec.field(default_factory=list)
    """Tools ``tool_search`` added to the session's list."""


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


class TrustInfo(_Struct):
    """Whether a project's ``.kfd/config.toml`` is trusted, and what that changes.

    Until the user trusts its exact content, a project config only narrows
    rights: its ``ask`` and ``deny`` rules apply, what widens them waits.
    """

    project: str
    """The project (repository root)."""
    path: str
    """The project config file."""
    exists: bool = False
    sha256: str = ""
    """The hash of the file's content now (what ``trust.set`` takes)."""
    trusted: bool = False
    """Whether this content is trusted."""
    pinned: TrustedFile | None = None
    """What the user trusted for this file, if anything (a different
    ``sha256``: the file changed since)."""
    grants: list[str] = msgspec.field(default_factory=list)
    """What trusting this content applies (``allow bash(make *)``)."""
    ignored: list[str] = msgspec.field(default_factory=list)
    """What does not apply now, each with why."""
    problem: str = ""
    """Why the file does not load (then the rules of its last content that loaded
    apply, or, without one, every call asks until it is fixed)."""


class TrustListResult(_Struct):
    files: list[TrustedFile] = msgspec.field(default_factory=list)
    changed: list[str] = msgspec.field(default_factory=list)
    """Paths among ``files`` whose content is no longer what was trusted (or gone)."""


class RulesResult(_Struct):
    rules: list[RuleInfo] = msgspec.field(default_factory=list)
    project: str = ""
    """The project of ``cwd``, when the request named one."""
    problems: list[str] = msgspec.field(default_factory=list)
    """Rule sources that could not be read (a broken ``.kfd/config.toml``)."""
    ignored: list[str] = msgspec.field(default_factory=list)
    """What the project config holds that does not apply (until it is trusted:
    `TrustInfo`), each with why."""


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
    ignored: list[str] = msgspec.field(default_factory=list)
    """What the project config holds that does not apply (until it is trusted)."""


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
    command: str = ""
    """The custom command this message runs (its prompt is made when its turn starts)."""
    arguments: str = ""
    """The command's arguments."""


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
    focused: list[FrontendRef] = msgspec.field(default_factory=list)
    """Frontends that said they have the user's focus on the session (the last
    ``session.focus`` of each; some may have disconnected since)."""


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
    interrupted: int = 0
    """Requests cut short (cancelled, stopped, crashed): their tokens are estimated."""
    in_flight: int = 0
    """Requests sent and not finished yet (counted at their estimate)."""


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
    state: LedgerState = "completed"
    """``sent``: written before the request's first byte, not finished yet;
    ``completed``; ``failed`` (the provider refused, or retries ran out);
    ``interrupted`` (cancelled, stopped, or the daemon crashed meanwhile)."""
    estimated: bool = False
    """The token counts are kfd's estimates (an unfinished or interrupted request):
    input from what was sent, output from what was received."""


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


class CheckpointListResult(_Struct):
    """The turns of a session that changed files (``kfd undo --list``, ``/rewind``)."""

    session: str
    root: str = ""
    """The project root the files' paths are relative to."""
    turns: list[TurnCheckpoint] = msgspec.field(default_factory=list)


class DiffResult(_Struct):
    """What turns changed, as one unified diff."""

    session: str
    turns: list[int] = msgspec.field(default_factory=list)
    files: list[ChangedFile] = msgspec.field(default_factory=list)
    diff: str = ""
    root: str = ""


class UndoResult(_Struct):
    """What an undo did (``applied``), or would do: files, conflicts, a fork."""

    session: str
    turns: list[int] = msgspec.field(default_factory=list)
    """The turns undone (or that would be)."""
    applied: bool = False
    steps: list[UndoStep] = msgspec.field(default_factory=list)
    fingerprint: str = ""
    """The state of the files shown: send it back as ``expect`` with the user's choice."""
    forked: SessionInfo | None = None
    """The session forked from before the turn (``conversation``)."""
    message: str = ""
    root: str = ""


class CommandListResult(_Struct):
    commands: list[CommandInfo] = msgspec.field(default_factory=list)
    ignored: list[str] = msgspec.field(default_factory=list)
    """Project commands not offered (the repository is not trusted), each with why."""


RESULT_TYPES: dict[str, type[msgspec.Struct]] = {
    "daemon.hello": HelloResult,
    "daemon.status": StatusResult,
    "daemon.shutdown": Empty,
    "events.subscribe": Empty,
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
    "trust.show": TrustInfo,
    "trust.set": TrustInfo,
    "trust.list": TrustListResult,
    "session.mcp_servers": Empty,
    "files.serve": Empty,
    "files.answer": Empty,
    "checkpoint.list": CheckpointListResult,
    "checkpoint.diff": DiffResult,
    "checkpoint.undo": UndoResult,
    "commands.list": CommandListResult,
    "commands.run": MessageSendResult,
}
"""What each request's ``result`` decodes to."""
