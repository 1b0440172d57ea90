"""The plugin API: what a kfd plugin implements and what it may use.

This module is one of kfd's three public contracts (with `kfd.protocol` and
`kfd.client`). A plugin imports this module and third-party packages, nothing
else of kfd. The built-in plugins (``kfd_fs``, ``kfd_shell``) are written
exactly like a third-party plugin: read one of them to write yours.

A plugin is a module (or object) with hook implementations, registered under
the ``kfd`` entry-point group::

    [project.entry-points.kfd]
    myplugin = "my_package.kfd_plugin"

Hooks, in the order the daemon calls them
-----------------------------------------
At start, once:

- `kfd_tools` -- the tools the plugin offers the model.
- `kfd_tool_sources` -- sources of tools that appear while the daemon runs.
- `kfd_policies` -- permission policies that vote on every tool call.
- `kfd_after_tool_hooks` -- hooks that may add a note to every tool result.

While serving:

- `kfd_event` -- every event of every session, after it is durable.
- `kfd_status` -- the plugin's state, for ``kfd status`` (and ``kfd mcp list``).

At stop, once:

- `kfd_shutdown` -- stop the processes the plugin started (servers, browsers).

Tools
-----
A tool subclasses `Tool`, declares its arguments as a `msgspec.Struct`
(the JSON schema the model sees is derived from it, docstrings included),
and implements ``run``. Whatever ``run`` raises as `ToolError` reaches the
model as an error result with that message; any other exception reaches it as
an error result naming the exception, and the turn goes on.

A tool whose schema is not known until run time (an MCP server's) sets
`Tool.parameters` to that JSON schema and ``Args = JsonArgs``: its arguments
arrive as the JSON object the model sent. Tools that come and go while the
daemon runs come from a `ToolSource` (hook `kfd_tool_sources`): the daemon
asks every source for its current tools before each model request.

A tool that reads files the model did not name (a search through a tree)
leaves out those `ToolContext.read_denied` names, and says so in its result.

A tool that starts programs confines them as `ToolContext.sandbox` says:
`probe_sandbox` tells whether bubblewrap works here, `confine` gives the
command prefix and the environment (an allow-list, never the daemon's
secrets), and `Confinement.finish` cleans up after the program. When it
cannot confine (bubblewrap will not start), it raises `ApprovalNeeded` before
any side effect: the daemon asks the user and, if allowed, runs the call again
with the grant in `ToolContext.granted`, with `command_environment` still.
Never fall back silently. A tool that runs many short commands (``bash``)
tries `enter_pod` first: the command enters a long-lived sandbox of its
session with the very same confinement, without paying bubblewrap's start
each time; where it answers None, run it under `Confinement.prefix` as usual,
with a `NamespaceWatch`: bubblewrap exits before the program's background
processes are gone, and `Confinement.finish` may run only once they are.

Files
-----
A tool that reads or writes files of the workspace on the host opens them
with `open_beneath`: no symbolic link is followed at any component, so a link
swapped in after the policy decided cannot send the access elsewhere; check
and replace the file through the returned `Beneath`, and do not touch a file
with several hard links without the user's consent (`HARD_LINKS`).

An editor's buffers
-------------------
When a frontend serves a session's files (an editor, through ``kfd acp``),
`ToolContext.files` reaches them: ``read_text`` gives a file's text as the
editor has it (unsaved changes included), ``write_text`` has the editor write
it (into its buffer and undo history, then to disk). Both answer None/False
when no frontend serves that file, when it goes away or does not answer in
time: the tool then uses the disk as usual. Only files inside the workspace
are served, and only after the permission decision (the call is already
allowed when ``run`` is called). The editor opens files by name: check the
path through `open_beneath` first (no link on the way, a regular file, not
hard-linked), as ``kfd_fs`` does, then ask.

Secrets
-------
Text a plugin keeps or shows outside a tool result (a log of its own) goes
through `scrub` first; a secret a plugin obtains itself (a token from a
credential helper) is announced with `keep_secret`, so it is redacted from
everything kfd stores or broadcasts.

Tools a frontend supplies for one session
-----------------------------------------
A frontend may supply MCP servers for one session (an editor passes its own
in ACP's ``mcpServers``): a `ToolSource` that also implements
`SessionToolSource` is asked for their tools before each of that session's
model requests (`SessionToolSource.session_tools`), and told when they are
withdrawn (`SessionToolSource.end_session`). Such a server is the user's
(their editor asked for it), not the repository's: it needs no trust, but
it runs confined (`confine`), and its tools are asked for like any other.

Only tools that can work are offered
-------------------------------------
Before each model request the daemon awaits `Tool.unavailable` for the
session's workspace; a tool that answers with a reason is left out of the
list the model sees (a call to it is refused with that reason), and the reason
is shown by ``kfd context`` and ``kfd status``, never in the prompt. The
language-server tools answer "no server for the languages here", say, and
``browser_fetch`` "no Chromium installed". Answer from a cache: the question
comes before every request.

Many tools, few listed
----------------------
A tool marked `Tool.deferrable` (every MCP tool unless its server says
``defer = false``) may be left out of the list once there are more than
``[context] defer_tools_after`` of them: the model then finds it with
``tool_search``, which adds its full schema to the session's list for the
rest of the session.

After a tool ran
----------------
`AfterToolHook` objects (hook `kfd_after_tool_hooks`) see every finished call
and may return a note that is appended to the result the model reads: the
language-server plugin appends the diagnostics an ``edit`` introduced.

Policies
--------
Every tool call is decided ``allow``, ``ask`` or ``deny`` before it runs. The
daemon's own engine votes first (the ``[permissions]`` rules of every source,
the workspace guard, the mode: see `kfd.policy.engine`), then every plugin
policy, in registration order; ``deny`` from anyone wins over ``ask``, which
wins over ``allow``. A
policy that has no opinion returns None. pluggy cannot await, so
`kfd_policies` returns `Policy` objects whose async ``check`` the daemon
awaits itself.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeVar

import msgspec
import pluggy

from kfd import hostpath, redact
from kfd import sandbox as _sandbox
from kfd.beneath import HARD_LINKS, Beneath, NotBeneath, open_beneath
from kfd.protocol import Event, FileOp, McpServer, Mode, Preview
from kfd.redact import looks_secret
from kfd.sandbox import Confinement
from kfd.sandbox.pidns import Watch as NamespaceWatch
from kfd.sandbox.pod import PodProcess

__all__ = [
    "HARD_LINKS",
    "AfterToolHook",
    "ApprovalNeeded",
    "Beneath",
    "Confinement",
    "EditorFiles",
    "Event",
    "FileOp",
    "FinishedCall",
    "JsonArgs",
    "McpServer",
    "NamespaceWatch",
    "NotBeneath",
    "PathAccess",
    "PodProcess",
    "Policy",
    "PolicyRequest",
    "Preview",
    "Sandbox",
    "SessionToolSource",
    "SuppliedServers",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "ToolSource",
    "Verdict",
    "close_pods",
    "command_environment",
    "confine",
    "enter_pod",
    "hookimpl",
    "hookspec",
    "host_which",
    "keep_secret",
    "looks_secret",
    "open_beneath",
    "probe_sandbox",
    "scrub",
]

PROJECT = "kfd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ArgsT = TypeVar("ArgsT", bound=msgspec.Struct)


class ToolError(Exception):
    """Raise from `Tool.run` to return an error result with this message.

    Write the message for the model: what failed, why, and what to do next
    ("old_string appears 3 times; add surrounding lines or set replace_all").

    Errors a tool raises::

        ToolError                 the call failed; the message goes to the model
         └── ApprovalNeeded       the call can only go on with the user's consent
    """


class ApprovalNeeded(ToolError):
    """Raise from `Tool.run`, before any side effect, when the call can only run
    with a permission the user must grant first (``bash`` when its sandbox
    cannot start: run it unconfined?).

    The daemon asks the user, showing ``message`` (say what failed and why) and
    the call's preview. Allowed, the call runs again with ``grant`` in
    `ToolContext.granted`; "allow for this session" grants it to the session's
    later calls of the tool too. Denied, the model reads that the user said no.
    Never ask silently for less: a tool that can do without the grant should.
    """

    def __init__(self, message: str, *, grant: str) -> None:
        super().__init__(message)
        self.grant = grant
        """What the user is asked to allow (``"unsandboxed"``); short, lowercase."""


def scrub(text: str) -> str:
    """``text`` with every secret kfd knows of replaced by a marker (`kfd.redact`)."""
    return redact.scrub(text)


def keep_secret(label: str, value: str) -> None:
    """Tell kfd about a secret this plugin holds (a token it obtained itself): from
    now on it is redacted, as ``[redacted <label>]``, from everything kfd keeps or shows."""
    redact.learn_secrets({label: value})


def host_which(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The program ``name`` on ``PATH`` (``environ``'s, else the daemon's), as
    `shutil.which` finds it, but never in a directory a sandboxed command could have
    written (a workspace, a cache home): the look-up for a program a plugin runs on
    the host, unconfined."""
    return hostpath.which(name, environ)


async def probe_sandbox(bwrap: str = "bwrap", *, network: bool = False) -> str | None:
    """None if bubblewrap can confine programs here, else why not (for the user)."""
    return await _sandbox.probe(bwrap, network=network)


async def confine(
    workspace: Path,
    sandbox: Sandbox,
    *,
    network: bool = False,
    writable: bool = True,
    bwrap: str = "bwrap",
    program: Sequence[str] = (),
) -> Confinement:
    """The confinement of a program run in ``workspace`` (see `kfd.sandbox`).

    ``network`` adds to ``sandbox.network``; ``writable=False`` mounts the
    workspace read-only (a language server reads, never writes); ``program``
    names the paths of a program the user or an editor configured (its
    executable and scripts), which stay reachable where the sandbox's private
    ``/tmp`` would cover them. Never pass what the model chose. Put the
    program after `Confinement.prefix`, run it with `Confinement.env`, then
    await `Confinement.finish` and add its notes to the result.
    """
    return await _sandbox.confine(
        workspace,
        network=network or sandbox.network,
        writable=writable,
        hide=sandbox.hide,
        env=(*sandbox.env, *sandbox.env_allow),
        sockets=sandbox.sockets,
        bwrap=bwrap,
        program=program,
    )


async def enter_pod(
    confinement: Confinement,
    argv: Sequence[str],
    *,
    cwd: Path,
    output: int,
    owner: str,
) -> PodProcess | None:
    """Start ``argv`` in the pod (a long-lived sandbox, see `kfd.sandbox.pod`) of
    session ``owner`` for ``confinement``, with ``confinement.env``, stdin from
    ``/dev/null`` and stdout and stderr to the descriptor ``output``.

    None when no pod can take it (a layout just changed, the pod failed): start it
    under `Confinement.prefix` then, never unconfined. Raises `OSError` when the
    command cannot start (``cwd`` missing). Await `PodProcess.wait` (every process
    of the command is gone when it returns), then `Confinement.finish` as usual.
    """
    return await _sandbox.pod.enter(confinement, argv, cwd=cwd, output=output, owner=owner)


async def close_pods() -> None:
    """Kill every pod (a plugin that entered them, at `kfd_shutdown`)."""
    _sandbox.pod.close()


def command_environment(sandbox: Sandbox) -> dict[str, str]:
    """The environment of a program that runs unconfined (the user allowed it):
    the same allow-list as in the sandbox, without the sandbox's cache home."""
    return _sandbox.environment.command_environment(os.environ, (*sandbox.env, *sandbox.env_allow))


class Sandbox(msgspec.Struct, frozen=True, kw_only=True):
    """How a tool that starts programs must confine them (``[sandbox]``).

    The daemon decides; the tool enforces it with `confine` (bubblewrap, as
    ``kfd_shell`` and ``kfd_lsp`` do).
    """

    enabled: bool = True
    """Confine programs: read-only file system but the workspace and a private
    /tmp, no network, a PID namespace of their own."""
    network: bool = False
    """Programs may reach the network (``[sandbox] network = true``)."""
    env_allow: tuple[str, ...] = ()
    """Names (or ``fnmatch`` globs) of variables passed to programs (``[sandbox] env_allow``,
    the older spelling of ``env``)."""
    env: tuple[str, ...] = ()
    """Names (or ``fnmatch`` globs) of variables passed to programs beyond the allow-list."""
    hide: tuple[str, ...] = ()
    """Paths unreadable in the sandbox besides the built-in credential locations."""
    sockets: tuple[str, ...] = ()
    """Unix sockets outside the workspace that programs may still connect to."""


class ToolResult(msgspec.Struct, kw_only=True):
    """What a tool returns. ``output`` is what the model reads.

    ``display`` is for frontends only (a diff to colour, a command); the daemon
    caps ``output`` for the model and keeps the full text.
    """

    output: str
    is_error: bool = False
    display: Preview | None = None
    untrusted: bool = False
    """The output carries content from outside the user's control (a web page,
    an MCP server): the model is told so, and policies may tighten after it."""


class PathAccess(NamedTuple):
    """A path a tool call will touch, as the model wrote it."""

    path: str
    write: bool


class EditorFiles(Protocol):
    """The session's files as a frontend serving them has them (`ToolContext.files`):
    an editor's buffers, unsaved changes included.

    Every method answers at once when no frontend serves the file; a serving
    frontend is waited for a few seconds at most. ``path`` is absolute and
    normalised; a path outside the workspace is never served.
    """

    def serves(self, op: FileOp, path: Path) -> bool:
        """Whether a frontend serves ``op`` (``read`` or ``write``) of ``path`` now."""
        ...

    async def read_text(self, path: Path) -> str | None:
        """``path``'s text as the serving frontend has it; None when none serves
        it, it went away, did not answer in time or could not read it: read the
        disk then."""
        ...

    async def write_text(self, path: Path, text: str) -> bool:
        """Have the serving frontend write ``text`` as the whole of ``path``; True
        once it says written. False when none serves it, it went away or did not
        answer in time: write the disk yourself. Raises `ToolError` when it
        refused (the message says why)."""
        ...


class ToolContext(Protocol):
    """What a running tool may use. One per call."""

    @property
    def session_id(self) -> str:
        """The session the call belongs to."""

    @property
    def workspace(self) -> Path:
        """The session's workspace directory (absolute, resolved)."""

    @property
    def turn(self) -> int:
        """The session's turn number this call belongs to (for per-turn limits)."""

    @property
    def state(self) -> dict[str, Any]:
        """Scratch state of this plugin for this session, kept between calls.

        Lives in memory: it is empty again after a daemon restart, so keep only
        what is safe to lose (``kfd_fs`` keeps the hashes of files it read).
        """

    @property
    def config(self) -> Mapping[str, Any]:
        """This tool's ``[tools.<name>]`` table from the configuration.

        The daemon reads the config again when it changes: read the table
        here, per call, and a change applies without a restart.
        """

    def resolve(self, path: str) -> Path:
        """``path`` made absolute against the workspace (``~`` expanded).

        Symlinks are not resolved: that is the policy's job, before the call.
        """

    def output(self, text: str) -> None:
        """Stream a chunk of output to every attached frontend.

        Chunks are batched into ``tool.output`` events; this never blocks.
        What the model reads is the returned `ToolResult`, not these chunks.
        """

    @property
    def sandbox(self) -> Sandbox:
        """How programs this call starts must be confined."""

    @property
    def granted(self) -> frozenset[str]:
        """What the user granted this call beyond the usual (`ApprovalNeeded`)."""

    @property
    def files(self) -> EditorFiles:
        """The session's files as an editor serving them has them (see `EditorFiles`)."""

    def read_denied(self, path: str) -> str | None:
        """The read rule that keeps ``path`` from being read (``read(**/.env)``), or None.

        The permission decision saw only the paths `Tool.paths` named. A tool
        that reads files the model did not name one by one (a search through a
        tree: ``grep``, ``glob``) asks this about each file, leaves out every
        file it names a rule for, and says in its result how many it left out
        and why. ``deny`` and ``ask`` read rules count (a file cannot be asked
        about in the middle of a search); ``allow`` rules never lift them.

        ``path`` is absolute and normalised. Symlinks are not followed: ask
        about the real path too where it may differ. Pure and fast (no I/O).
        """


class Tool(abc.ABC, Generic[ArgsT]):
    """A tool the model can call.

    Subclasses set the class attributes and implement `run`. The arguments
    arrive already validated and converted to ``Args``.
    """

    name: str
    """The name the model calls; lowercase, ``[a-z0-9_]``. Usually a class
    attribute; a tool made at run time (an MCP server's) sets it per instance."""

    description: str
    """What the tool does and when to use it, for the model. Keep it short."""

    Args: type[ArgsT]
    """A msgspec Struct describing the arguments; its schema is sent."""

    parameters: dict[str, Any] | None = None
    """A JSON schema sent instead of the one derived from ``Args``, for tools
    whose schema is only known at run time. Such a tool sets ``Args = JsonArgs``
    and validates what it needs itself (or lets its server do it)."""

    read_only: ClassVar[bool] = False
    """True if the tool changes nothing: it may run without asking in the
    default mode and concurrently with other read-only calls."""

    edits_files: ClassVar[bool] = False
    """True if the tool only edits files (the ``accept-edits`` mode allows it)."""

    network: ClassVar[bool] = False
    """True if the tool reaches the network (policies may ask before it)."""

    writes_only_paths: ClassVar[bool] = False
    """True if a call writes no file but those its `paths` name for writing. kfd
    then checkpoints just those files (cheap) so the turn can be undone; for any
    other tool that is not read-only it snapshots the whole workspace before
    and after the call."""

    deferrable: bool = False
    """True if the model may be shown this tool only after it searched for it
    (``tool_search``), when many such tools are offered: set it for tools that
    come by the dozen and are rarely all needed (an MCP server's)."""

    schema_budget: ClassVar[int] = 0
    """Bytes the tool's definition (name, description and parameters, as
    compact JSON) may take; 0 for no limit. Every byte is sent with every
    model request: kfd's own tests hold each built-in tool to its budget."""

    def summary(self, args: ArgsT) -> str:
        """A short line naming the key argument, for frontends."""
        return ""

    def paths(self, args: ArgsT) -> Sequence[PathAccess]:
        """The paths this call will read or write, for the policy."""
        return ()

    def domains(self, args: ArgsT, config: Mapping[str, Any]) -> Sequence[str] | None:
        """The hosts this call sends requests to, for the policy (network tools only).

        ``config`` is the tool's ``[tools.<name>]`` table. What a request sends
        leaves the machine: in the default mode each domain no rule allows asks
        (the answer keeps a rule such as ``web_fetch(domain:docs.python.org)``),
        in ``plan`` it is denied. Return ``[]`` when the call reaches no host of
        its own choosing (a local MCP server), None when the tool cannot say:
        every call then asks as a call to a new domain would.
        """
        return None

    def session_rule(self, args: ArgsT) -> str:
        """The rule that "allow for this session" records for this call.

        Make it exact (``bash(npm test)``), never a wildcard the user did not
        see: the default names the tool and its summary.
        """
        summary = self.summary(args)
        return f"{self.name}({summary})" if summary else self.name

    async def unavailable(self, workspace: Path, config: Mapping[str, Any]) -> str | None:
        """Why this tool cannot work for a session in ``workspace``; None if it can.

        ``config`` is the tool's ``[tools.<name>]`` table as it stands now
        (`ToolContext.config`: the daemon reloads the config when it changes).
        Awaited before every model request: answer from a cache, and check
        again only when what the answer depends on changed (that table, the
        programs installed, the files of the workspace).
        The reason is for the user (``kfd context``, ``kfd status``): say what
        is missing and how to get it. A check that raises, or takes more than
        a few seconds, leaves the tool out of that request.
        """
        return None

    async def preview(self, args: ArgsT, ctx: ToolContext) -> Preview:
        """What an approval prompt shows: a diff, a command, or a summary.

        Called only when the call must be approved, before it runs. Raise
        `ToolError` when the call cannot succeed as it stands (``edit`` of a
        file not read in this session): the user is not asked, and the model
        reads the error as the call's result. Nothing has run then.
        """
        return Preview(summary=self.summary(args))

    @abc.abstractmethod
    async def run(self, args: ArgsT, ctx: ToolContext) -> ToolResult:
        """Do the work. Cancellation arrives as `asyncio.CancelledError`:
        stop child processes and re-raise."""


class JsonArgs(msgspec.Struct, frozen=True):
    """The arguments of a tool with a run-time schema (`Tool.parameters`)."""

    values: dict[str, Any]
    """The JSON object the model sent, as decoded."""


class ToolSource(Protocol):
    """Tools that appear while the daemon runs (an MCP server's, say).

    The daemon calls `tools` before each model request and for
    ``daemon.status`` with ``refresh_tools``; a source answers from its cache
    when nothing changed. A source may start what it needs on the first call
    (that is how MCP servers start lazily). A name already taken by a static
    tool or an earlier source is skipped and reported.
    """

    name: str

    async def tools(self) -> Sequence[Tool[Any]]:
        """The tools offered now. Raise nothing: report trouble in `kfd_status`."""
        ...


@dataclass(frozen=True, slots=True)
class SuppliedServers:
    """The MCP servers the frontends supplied for one session (`SessionToolSource`)."""

    session_id: str
    workspace: Path
    """The session's workspace (absolute, resolved): where a stdio server runs."""
    servers: tuple[McpServer, ...]
    sandbox: Sandbox
    """How a program started for them must be confined (``[sandbox]`` now)."""


class SessionToolSource(ToolSource, Protocol):
    """A tool source that also serves what frontends supply for one session."""

    async def session_tools(self, supplied: SuppliedServers) -> Sequence[Tool[Any]]:
        """The tools of ``supplied``'s servers now, for the session's next request.

        Called before each model request of a session that has supplied
        servers, with all of them: stop those no longer supplied, start the new
        ones (lazily, as `ToolSource.tools` does; a changed server is a new
        one), answer from a cache otherwise. Raise nothing: a server that fails
        offers no tools and says why in `kfd_status`. Tool names taken by the
        static tools or the daemon's sources are skipped and reported.
        """
        ...

    async def end_session(self, session_id: str) -> None:
        """The session's supplied servers are withdrawn (their frontend left):
        stop what was started for them."""
        ...


class FinishedCall(msgspec.Struct, kw_only=True, frozen=True):
    """A tool call that has just run, as an `AfterToolHook` sees it."""

    session_id: str
    tool: str
    arguments: dict[str, Any]
    paths: list[PathAccess] = msgspec.field(default_factory=list)
    """What ``Tool.paths`` named for this call, as the model wrote them
    (resolve them with `ToolContext.resolve`)."""
    read_only: bool = False
    edits_files: bool = False


class AfterToolHook(Protocol):
    """Sees every finished tool call and may add a note to its result."""

    name: str

    async def after_tool(
        self, call: FinishedCall, result: ToolResult, ctx: ToolContext
    ) -> str | None:
        """Text appended to the result the model reads, or None.

        Called after the tool returned (error results included), before the
        result is recorded. Keep it short and bounded in time: the daemon
        gives up on a hook after a few seconds and ignores its exceptions.
        """
        ...


class ResolvedPath(NamedTuple):
    """A path of a tool call after symlinks were followed."""

    requested: str
    real: str
    write: bool
    inside_workspace: bool


class PolicyRequest(msgspec.Struct, kw_only=True):
    """A tool call about to be decided."""

    session_id: str
    tool: str
    arguments: dict[str, Any]
    read_only: bool
    edits_files: bool
    workspace: str
    mode: Mode
    paths: list[ResolvedPath] = msgspec.field(default_factory=list)
    session_rule: str = ""
    session_rules: list[str] = msgspec.field(default_factory=list)
    """Rules the user allowed for this session ("allow for this session")."""
    network: bool = False
    """The call may reach the network (`Tool.network`, or a bash call asking for it)."""
    untrusted: bool = False
    """The session read untrusted content earlier in this turn (`ToolResult.untrusted`)."""
    domains: list[str] | None = None
    """For a network tool: the hosts the call reaches (`Tool.domains`), None if unknown."""


class Verdict(msgspec.Struct, frozen=True):
    """A policy's vote with the reason the user (and model) will see."""

    decision: Literal["allow", "ask", "deny"]
    reason: str


class Policy(Protocol):
    """A permission policy. ``check`` returns a `Verdict` or None to abstain."""

    name: str

    async def check(self, request: PolicyRequest) -> Verdict | None: ...


class Hooks:
    """The hook specifications (pluggy reads the methods' signatures)."""

    @hookspec
    def kfd_tools(self, config: Mapping[str, Any]) -> Sequence[Tool[Any]]:  # type: ignore[empty-body]
        """Return the tools this plugin offers.

        Called once at daemon start. ``config`` is the whole ``[tools]`` table
        of the configuration; read your tool's ``[tools.<name>]`` from it.
        """

    @hookspec
    def kfd_tool_sources(self, config: Mapping[str, Any]) -> Sequence[ToolSource]:  # type: ignore[empty-body]
        """Return sources of tools that appear while the daemon runs.

        Called once at daemon start. ``config`` is the whole configuration as
        plain data (every section: a source reads its own, as ``kfd_mcp``
        reads ``[mcp]``). Start nothing here: a source starts what it needs
        the first time its `ToolSource.tools` is awaited.
        """

    @hookspec
    def kfd_policies(self, config: Mapping[str, Any]) -> Sequence[Policy]:  # type: ignore[empty-body]
        """Return permission policies. Called once at daemon start."""

    @hookspec
    def kfd_after_tool_hooks(self, config: Mapping[str, Any]) -> Sequence[AfterToolHook]:  # type: ignore[empty-body]
        """Return hooks that see every finished tool call (`AfterToolHook`).

        Called once at daemon start with the ``[tools]`` table, like `kfd_tools`.
        """

    @hookspec
    def kfd_event(self, event: Event) -> None:
        """Observe an event of any session after it is durable (or, for
        streaming events, as it is published). Must return quickly: start a
        task for slow work. Exceptions are logged and ignored."""

    @hookspec
    def kfd_status(self) -> Mapping[str, Any] | None:
        """Return a snapshot of the plugin's state (plain JSON-able data).

        Called for every ``daemon.status`` request; must return at once. The
        daemon reports it under the plugin's name in ``StatusResult.plugin_status``
        (``kfd mcp list`` reads the ``mcp`` plugin's servers from there).
        """

    @hookspec
    def kfd_shutdown(self) -> Coroutine[Any, Any, None] | None:
        """Return a coroutine that stops what the plugin started, or None.

        Called once when the daemon stops, after the sessions ended; the daemon
        awaits every plugin's coroutine concurrently, a few seconds at most.
        """
