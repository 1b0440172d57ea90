"""Constants and the records shared by requests, results and events."""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

__all__ = [
    "FILES_TOPIC",
    "GLOBAL_TOPIC",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_DEPTH",
    "MODES",
    "PROTOCOL_VERSION",
    "ApprovalDecision",
    "BudgetName",
    "ChangedFile",
    "CommandInfo",
    "CompactReason",
    "ConflictChoice",
    "ContextPart",
    "CostSource",
    "EnvFact",
    "ErrorCode",
    "FileOp",
    "FrontendInfo",
    "FrontendRef",
    "LedgerState",
    "McpServer",
    "Memory",
    "MemoryScope",
    "MissingTool",
    "Mode",
    "Preview",
    "RuleDecision",
    "RuleSource",
    "SessionInfo",
    "SessionStatus",
    "StopReason",
    "Task",
    "TaskStatus",
    "ToolCall",
    "ToolStatus",
    "TrustedFile",
    "TurnCheckpoint",
    "TurnOverride",
    "UndoStep",
    "Usage",
    "env_digest",
]


PROTOCOL_VERSION = 1
"""Bumped only for changes an older peer cannot ignore."""

MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""The daemon refuses larger request frames (``too_large``)."""

MAX_REQUEST_DEPTH = 32
"""The daemon refuses requests whose JSON nests deeper (``too_deep``)."""

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

ErrorCode = Literal[
    "bad_request",
    "not_found",
    "conflict",
    "overloaded",  # too many requests at once: retry after a pause (kfd.client does)
    "internal",
    "too_large",  # the request frame is over MAX_REQUEST_BYTES
    "too_deep",  # the request nests deeper than MAX_REQUEST_DEPTH
]

StopReason = Literal[
    "end_turn",  # the model answered without calling tools
    "cancelled",  # turn.cancel
    "max_steps",  # the configured step limit was reached
    "repeated_tool_call",  # same tool, same arguments, three times in a row
    "error",  # the model could not be reached, or the turn failed
    "interrupted",  # the daemon stopped or crashed during the turn
    "forked",  # the turn was still open where a fork was cut
    "max_tokens",  # the answer reached its output limit ([model] max_output_tokens), or ran
    # so far past it (a provider ignoring it) that kfd stopped reading it
    "refusal",  # the model (or the provider's filter) refused to answer
]

ToolStatus = Literal["ok", "error", "denied", "cancelled", "interrupted"]


class _Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every wire struct: keyword-only, defaults left off the wire."""


# --------------------------------------------------------------------------
# Shared records


class FrontendRef(_Struct):
    """Who did something: a frontend as it introduced itself in daemon.hello.

    A frontend attached over TCP has the comment of its key in ``key`` (from
    the daemon's authorized_keys: who it is, whatever it calls itself), and
    its name ends with that comment in parentheses.
    """

    id: str
    name: str = "unknown"
    key: str = ""


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

LedgerState = Literal["sent", "completed", "failed", "interrupted"]
"""Where a model request's ledger row stands (see `LedgerEntry.state`)."""


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
    queued: int = 0
    """User messages accepted and waiting for a turn (they survive a restart)."""
    budget_usd: float | None = None
    """This session's spending limit in US dollars (``kfd budget``); None: the
    ``[budget] session_usd`` of the config."""


class TurnOverride(_Struct):
    """What a change for one turn only replaced (a custom command's mode or model):
    put back when the turn ends, or when the daemon recovers a turn a crash left open."""

    mode: Mode | None = None
    model: str | None = None


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
    """One part of what fills a session's context window, in tokens."""

    name: str
    """``system``, ``tools``, ``instructions``, ``memory``, ``summary``,
    ``transcript`` or ``tool_outputs``."""
    tokens: int
    detail: str = ""


class MissingTool(_Struct):
    """A tool not offered to the model because it cannot work there, and why."""

    name: str
    reason: str
    """What is missing and how to get it ("no Chromium installed: apt install chromium")."""


class FrontendInfo(_Struct):
    """A connected frontend, in daemon.status."""

    id: str
    name: str
    pid: int = 0
    connected_at: float = 0.0
    last_seen: float = 0.0
    key: str = ""
    """Over TCP: the comment of the key it attached with (empty: a local frontend)."""
    queued_bytes: int = 0
    """Events waiting in the daemon for this frontend (it reads slower than they come)."""
    peak_queued_bytes: int = 0
    shed_events: int = 0
    """Events not sent to it because it fell behind (it re-read them from the log)."""


class EnvFact(_Struct):
    """One variable of the provider environment, as a daemon or client sees it.

    Secrets are never sent: only whether they are set and a salted digest
    (the salt is the daemon's, per start), enough to tell "different"."""

    set: bool = False
    value: str = ""
    """The value itself, for variables that are not secret (``KFD_MODEL``)."""
    digest: str = ""


def env_digest(salt: str, value: str) -> str:
    """How an `EnvFact` digests a value: enough to tell two apart, useless to guess one."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:16]


class TrustedFile(_Struct):
    """A repository file the user trusted at one exact content (``kfd trust``).

    A project's ``.kfd/config.toml`` only narrows rights until its content
    is trusted; any change to the file makes it untrusted again.
    """

    path: str
    """The file, absolute (``<project>/.kfd/config.toml``)."""
    sha256: str
    """The hash of the content the user trusted."""
    trusted_at: float = 0.0
    by: str = ""
    """The frontend that trusted it (``kfd-trust``, ``repl``...)."""


FILES_TOPIC = "~files"
"""The topic of ``file.requested`` events: sent to one frontend, never subscribed to."""

FileOp = Literal["read", "write"]
"""What a frontend serving a session's files (``files.serve``) is asked to do."""


class McpServer(_Struct):
    """An MCP server a frontend supplies for one session (an editor's ``mcpServers``).

    Exactly one of ``command`` (a program speaking MCP on stdio) or ``url``
    (streamable HTTP). ``name`` is 1-32 letters, digits, ``_`` or ``-``: the
    server's tools are ``mcp__<name>__<tool>``. The values of ``env`` and
    ``headers`` are kept in the daemon's memory only and redacted from
    everything it keeps or shows.
    """

    name: str
    command: str = ""
    args: list[str] = msgspec.field(default_factory=list)
    env: dict[str, str] = msgspec.field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)


# --------------------------------------------------------------------------
# Checkpoints and undo

ConflictChoice = Literal["ask", "overwrite", "keep", "merge"]
"""What an undo does with a file changed since the turn (by the user, or another
session): ``ask`` applies nothing and returns the conflicts; ``overwrite`` puts
the file back anyway; ``keep`` leaves it as it is; ``merge`` takes the turn's
change out of the file and keeps the later edits (with conflict markers where
both touched the same lines)."""


class ChangedFile(_Struct):
    """A file a turn changed."""

    path: str
    """Relative to the project root."""
    change: Literal["added", "modified", "deleted", "mode"]


class TurnCheckpoint(_Struct):
    """One turn that changed files, as an undo or a rewind offers it."""

    turn: int
    started_at: float = 0.0
    files: list[ChangedFile] = msgspec.field(default_factory=list)
    undone: bool = False
    """Its changes were undone already."""
    prompt: str = ""
    """The first line of the user message that started the turn."""


class UndoStep(_Struct):
    """What an undo did (or would do) to one file."""

    path: str
    action: Literal[
        "restore",  # put back as before the turn
        "unchanged",  # already as before the turn
        "lost",  # its content before was not kept (too large, unreadable)
        "conflict",  # changed since the turn: not touched (ask)
        "overwritten",  # changed since the turn, put back anyway
        "kept",  # changed since the turn, left as it is
        "merged",  # the turn's change taken out, the later edits kept
        "merge_conflict",  # merged with conflict markers where both changed the same lines
        "failed",  # could not be written (``detail`` says why)
    ]
    turns: list[int] = msgspec.field(default_factory=list)
    """The undone turns that changed it."""
    detail: str = ""
    diff: str = ""
    """For a conflict: what undoing would do to the file as it is now."""


# --------------------------------------------------------------------------
# Custom commands


class CommandInfo(_Struct):
    """A custom command (a Markdown prompt template in a ``commands`` directory)."""

    name: str
    """Run as ``/name`` in the REPL, ``!name`` in chat, ``kfd run --command name``."""
    description: str = ""
    argument_hint: str = ""
    source: Literal["user", "project"] = "user"
    path: str = ""
    mode: Mode | None = None
    """The permission mode the command's turn runs in (the session's otherwise)."""
    model: str = ""
    """The model the command's turn uses ("": the session's)."""
    allowed_tools: list[str] = msgspec.field(default_factory=list)
    """Rules allowed for the command's turn (``bash(git status *)``)."""
    problem: str = ""
    """Why the command cannot run (its front matter does not load); it is still listed."""
