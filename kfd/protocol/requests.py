"""Requests: what a client asks the daemon (tagged by ``method``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from kfd.protocol.records import (
    PROTOCOL_VERSION,
    ApprovalDecision,
    ConflictChoice,
    McpServer,
    MemoryScope,
    Mode,
    _Struct,
)

Directory = Annotated[str, msgspec.Meta(max_length=4096, pattern="^[^\x00]*$")]
"""A directory a client names (``cwd``): no NUL (no system call takes one) and no longer
than a path can be; what it must be beyond that each method checks."""

__all__ = [
    "REQUEST_METHODS",
    "AnyRequest",
    "ApprovalRespond",
    "CheckpointDiff",
    "CheckpointList",
    "CheckpointUndo",
    "CommandList",
    "CommandRun",
    "CostQuery",
    "EventsSubscribe",
    "FilesAnswer",
    "FilesServe",
    "FrontendFocus",
    "Hello",
    "MemoryAdd",
    "MemoryForget",
    "MemoryList",
    "MemorySearch",
    "MessageSend",
    "ModelList",
    "Request",
    "RulesExplain",
    "RulesList",
    "RulesRemove",
    "SessionArchive",
    "SessionAttach",
    "SessionCompact",
    "SessionContext",
    "SessionCreate",
    "SessionFork",
    "SessionGet",
    "SessionList",
    "SessionMcpServers",
    "SessionSetBudget",
    "SessionSetMode",
    "SessionSetModel",
    "Shutdown",
    "Status",
    "TriggerList",
    "TriggerReload",
    "TrustList",
    "TrustSet",
    "TrustShow",
    "TurnCancel",
    "method_name",
]


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
    cwd: Directory = ""
    """A directory (absolute): report the tools that cannot work there
    (`StatusResult.tools_missing`)."""


class Shutdown(Request, tag="daemon.shutdown", kw_only=True):
    """Stop the daemon cleanly (running turns end as interrupted).

    ``wait_for_turns``: let running turns finish first (``kfd restart``);
    meanwhile new messages are accepted and queued, and run after the next
    start. ``restart`` tells the frontends the daemon comes back at once.
    """

    wait_for_turns: bool = False
    restart: bool = False


class EventsSubscribe(Request, tag="events.subscribe", kw_only=True):
    """Receive (or, with ``subscribe=False``, stop receiving) the events of topics.

    A topic is a session id, or a prefix of session ids (``"s"``: every
    session). Events come on the request socket, batched (see `kfd.client`);
    the reply means the subscription is live: every event published after
    it reaches this client.
    """

    topics: list[str]
    subscribe: bool = True


class SessionCreate(Request, tag="session.create", kw_only=True):
    """Start a session bound to the workspace ``cwd``."""

    cwd: Directory
    title: str = ""
    model: str | None = None
    mode: Mode = "default"


class SessionList(Request, tag="session.list", kw_only=True):
    """Sessions, most recently active first; optionally only those of ``cwd``."""

    cwd: Directory | None = None
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

    cwd: Directory | None = None
    scope: Literal["project", "global", "all"] = "all"
    limit: int = 100


class MemorySearch(Request, tag="memory.search", kw_only=True):
    """Remembered facts ranked by relevance to ``query`` (full-text search)."""

    query: str
    cwd: Directory | None = None
    limit: int = 10


class MemoryAdd(Request, tag="memory.add", kw_only=True):
    """Remember a fact for the project of ``cwd`` or for every project.

    Secrets (API keys, tokens, private keys) are redacted before it is stored.
    """

    text: str
    scope: MemoryScope = "project"
    cwd: Directory | None = None


class RulesList(Request, tag="rules.list", kw_only=True):
    """The permission rules that apply in ``cwd``: built-in, user config, project
    config and "always" rules (``kfd rules list``). Without ``cwd``: the
    "always" rules of every project."""

    cwd: Directory | None = None


class RulesRemove(Request, tag="rules.remove", kw_only=True):
    """Remove an "always" rule: by ``rule_id``, or by its text in the project of ``cwd``."""

    rule_id: int | None = None
    rule: str = ""
    cwd: Directory | None = None


class RulesExplain(Request, tag="rules.explain", kw_only=True):
    """How the permission engine decides the bash ``command`` in ``cwd`` in ``mode``,
    with that directory's rules; nothing runs (``kfd explain``)."""

    command: str
    cwd: Directory
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


class TrustShow(Request, tag="trust.show", kw_only=True):
    """Whether the project config of ``cwd`` is trusted, and what it grants
    and what is ignored until it is (``kfd trust``)."""

    cwd: Directory


class TrustSet(Request, tag="trust.set", kw_only=True):
    """Trust the project config of ``cwd`` at content ``sha256``, or revoke its trust.

    ``sha256`` is the hash the user was shown (`TrustInfo.sha256`): if the
    file changed since, the request is refused with ``conflict`` and nothing
    is trusted. ``trusted = false`` revokes (``sha256`` may be empty).
    """

    cwd: Directory
    sha256: str = ""
    trusted: bool = True


class TrustList(Request, tag="trust.list", kw_only=True):
    """Every trusted file, with whether it still has the trusted content."""


class SessionMcpServers(Request, tag="session.mcp_servers", kw_only=True):
    """Run these MCP servers for ``session`` while this frontend stays connected
    (an editor's ``mcpServers``): their tools are offered in that session like
    those of the config's servers, asked for before each call unless allowed.

    They replace what this frontend supplied for the session before; an empty
    list stops them, and so does the frontend going away. A stdio server runs
    in kfd's sandbox, in the session's workspace. Refused with ``bad_request``
    (nothing changes) when a server is malformed.
    """

    session: str
    servers: list[McpServer] = msgspec.field(default_factory=list)


class FilesServe(Request, tag="files.serve", kw_only=True):
    """Serve the file reads and/or writes of ``session``'s tools (an editor: a
    read sees its unsaved buffer, a write goes into its buffer and its undo
    history, then to disk).

    The permission decision is made first, in the daemon; then the daemon sends
    this frontend alone a ``file.requested`` event for a file inside the
    session's workspace and waits up to ``timeout_s`` for ``files.answer``,
    after which (or when the frontend goes away) the tool uses the disk. The
    latest frontend to serve a session serves it; ``read`` and ``write`` both
    false stops serving.
    """

    session: str
    read: bool = False
    write: bool = False
    timeout_s: float = 5.0


class FilesAnswer(Request, tag="files.answer", kw_only=True):
    """The answer to a ``file.requested`` (``request_id``): the text read, or
    nothing for a write done; ``error`` when the frontend could not (a refused
    write fails the tool call with it); ``fallback`` when it cannot ask at all
    (its editor is gone): the tool uses the disk. Only the frontend asked may
    answer."""

    request_id: str
    text: str = ""
    error: str = ""
    fallback: bool = False


class CheckpointList(Request, tag="checkpoint.list", kw_only=True):
    """The turns of ``session`` that changed files, newest last, with those files."""

    session: str


class CheckpointDiff(Request, tag="checkpoint.diff", kw_only=True):
    """What turn ``turn`` of ``session`` changed, as a unified diff (bash-made changes
    included); without ``turn``, what the whole session changed (``kfd diff``)."""

    session: str
    turn: int | None = None


class CheckpointUndo(Request, tag="checkpoint.undo", kw_only=True):
    """Put the files back as they were before turn ``turn`` of ``session`` (that turn
    and every later one undone); without ``turn``, the last turn that changed files.

    With ``conversation``, also fork the session from before that turn (the
    reply names the new session). A file changed since the turn is a conflict:
    with ``on_conflict = "ask"`` nothing is applied and the reply lists them,
    with their diffs and a ``fingerprint``; send the user's choice with that
    ``expect``ed fingerprint and it applies only if the files are still what
    was shown (else ``conflict``). ``dry_run`` only says what it would do.
    """

    session: str
    turn: int | None = None
    files: bool = True
    conversation: bool = False
    on_conflict: ConflictChoice = "ask"
    expect: str = ""
    dry_run: bool = False


class CommandList(Request, tag="commands.list", kw_only=True):
    """The custom commands of the workspace ``cwd`` (or of ``session``'s): the
    user's, and the project's once trusted (the untrusted ones are named in
    ``ignored``)."""

    cwd: Directory | None = None
    session: str | None = None


class CommandRun(Request, tag="commands.run", kw_only=True):
    """Run custom command ``name`` with ``arguments`` in ``session``: its prompt,
    made from its template, is sent as the user's message (queued like one)."""

    session: str
    name: str
    arguments: str = ""
    client_msg_id: str | None = None


AnyRequest = (
    Hello
    | Status
    | Shutdown
    | EventsSubscribe
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
    | TrustShow
    | TrustSet
    | TrustList
    | SessionMcpServers
    | FilesServe
    | FilesAnswer
    | CheckpointList
    | CheckpointDiff
    | CheckpointUndo
    | CommandList
    | CommandRun
)

REQUEST_METHODS: frozenset[str] = frozenset(t.__struct_config__.tag for t in AnyRequest.__args__)


def method_name(request: Request) -> str:
    """The wire name of a request (``"session.create"``)."""
    tag = type(request).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
