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
- `kfd_policies` -- permission policies that vote on every tool call.

While serving:

- `kfd_event` -- every event of every session, after it is durable.

Tools
-----
A tool subclasses `Tool`, declares its arguments as a `msgspec.Struct`
(the JSON schema the model sees is derived from it, docstrings included),
and implements ``run``. Whatever ``run`` raises as `ToolError` reaches the
model as an error result with that message; any other exception reaches it as
an error result naming the exception, and the turn goes on.

Policies
--------
Every tool call is decided ``allow``, ``ask`` or ``deny`` before it runs. The
daemon's own mode rules vote first, then every plugin policy, in registration
order; ``deny`` from anyone wins over ``ask``, which wins over ``allow``. A
policy that has no opinion returns None. pluggy cannot await, so
`kfd_policies` returns `Policy` objects whose async ``check`` the daemon
awaits itself.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeVar

import msgspec
import pluggy

from kfd.protocol import Event, Mode, Preview

__all__ = [
    "Event",
    "PathAccess",
    "Policy",
    "PolicyRequest",
    "Preview",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "Verdict",
    "hookimpl",
    "hookspec",
]

PROJECT = "kfd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ArgsT = TypeVar("ArgsT", bound=msgspec.Struct)


class ToolError(Exception):
    """Raise from `Tool.run` to return an error result with this message.

    Write the message for the model: what failed, why, and what to do next
    ("old_string appears 3 times; add surrounding lines or set replace_all").
    """


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


class ToolContext(Protocol):
    """What a running tool may use. One per call."""

    @property
    def session_id(self) -> str:
        """The session the call belongs to."""

    @property
    def workspace(self) -> Path:
        """The session's workspace directory (absolute, resolved)."""

    @property
    def state(self) -> dict[str, Any]:
        """Scratch state of this plugin for this session, kept between calls.

        Lives in memory: it is empty again after a daemon restart, so keep only
        what is safe to lose (``kfd_fs`` keeps the hashes of files it read).
        """

    @property
    def config(self) -> Mapping[str, Any]:
        """This tool's ``[tools.<name>]`` table from the configuration."""

    def resolve(self, path: str) -> Path:
        """``path`` made absolute against the workspace (``~`` expanded).

        Symlinks are not resolved: that is the policy's job, before the call.
        """

    def output(self, text: str) -> None:
        """Stream a chunk of output to every attached frontend.

        Chunks are batched into ``tool.output`` events; this never blocks.
        What the model reads is the returned `ToolResult`, not these chunks.
        """


class Tool(abc.ABC, Generic[ArgsT]):
    """A tool the model can call.

    Subclasses set the class attributes and implement `run`. The arguments
    arrive already validated and converted to ``Args``.
    """

    name: ClassVar[str]
    """The name the model calls; lowercase, ``[a-z0-9_]``."""

    description: ClassVar[str]
    """What the tool does and when to use it, for the model. Keep it short."""

    Args: type[ArgsT]
    """A msgspec Struct describing the arguments; its schema is sent."""

    read_only: ClassVar[bool] = False
    """True if the tool changes nothing: it may run without asking in the
    default mode and concurrently with other read-only calls."""

    edits_files: ClassVar[bool] = False
    """True if the tool only edits files (the ``accept-edits`` mode allows it)."""

    network: ClassVar[bool] = False
    """True if the tool reaches the network (policies may ask before it)."""

    def summary(self, args: ArgsT) -> str:
        """A short line naming the key argument, for frontends."""
        return ""

    def paths(self, args: ArgsT) -> Sequence[PathAccess]:
        """The paths this call will read or write, for the policy."""
        return ()

    def session_rule(self, args: ArgsT) -> str:
        """The rule that "allow for this session" records for this call.

        Make it exact (``bash(npm test)``), never a wildcard the user did not
        see: the default names the tool and its summary.
        """
        summary = self.summary(args)
        return f"{self.name}({summary})" if summary else self.name

    async def preview(self, args: ArgsT, ctx: ToolContext) -> Preview:
        """What an approval prompt shows: a diff, a command, or a summary."""
        return Preview(summary=self.summary(args))

    @abc.abstractmethod
    async def run(self, args: ArgsT, ctx: ToolContext) -> ToolResult:
        """Do the work. Cancellation arrives as `asyncio.CancelledError`:
        stop child processes and re-raise."""


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
    def kfd_policies(self, config: Mapping[str, Any]) -> Sequence[Policy]:  # type: ignore[empty-body]
        """Return permission policies. Called once at daemon start."""

    @hookspec
    def kfd_event(self, event: Event) -> None:
        """Observe an event of any session after it is durable (or, for
        streaming events, as it is published). Must return quickly: start a
        task for slow work. Exceptions are logged and ignored."""
