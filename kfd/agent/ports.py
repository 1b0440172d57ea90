"""What the steps of a turn may use of a live session: small Protocols, low in the graph.

`kfd.agent.session.Session` is the one class that has all of them. The steps
(`kfd.agent.context` and what it calls: `prompt`, `compaction`, `recall`;
the task list; the turn loop in `kfd.agent.turn`) are written against these
Protocols, so ``session.py`` imports the steps and no step imports
``session.py``: the dependencies point one way, and a step can be driven by
anything that has the members it names.

- `SessionEvents` -- the session's identity and its event log;
- `AgentSession` -- plus the transcript, the context state and the shared runtime
  (what context building, compaction and recall read);
- `TurnSession` -- plus what the turn loop drives: the lifecycle, the live
  output, the approvals, the session's rules and its tools' state.

The accounting (`kfd.agent.accounting.Billed`) names its own, smaller need:
the runtime it is part of is above this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from kfd.agent.approvals import Approvals
    from kfd.agent.context_state import ContextState
    from kfd.agent.lifecycle import LifecycleEvent, State
    from kfd.agent.live import LiveOutput
    from kfd.agent.runtime import Runtime
    from kfd.protocol import Event, FrontendRef, SessionInfo, ToolCall, TurnOverride
    from kfd.transcript import Message


class SessionEvents(Protocol):
    """A session's identity and its event log."""

    info: SessionInfo

    @property
    def id(self) -> str:
        """The session id (``info.id``)."""
        ...

    def emit(
        self, event: Event, *, message: Message | None = None, tool_output: str | None = None
    ) -> asyncio.Future[None]:
        """Log a durable event (and a transcript message); the future resolves once
        it is on disk and published."""
        ...

    def publish(self, event: Event) -> None:
        """Publish an ephemeral event (never logged)."""
        ...


class AgentSession(SessionEvents, Protocol):
    """What building the model's context reads and changes of a session."""

    messages: list[Message]
    """The transcript; it only grows."""
    context: ContextState
    runtime: Runtime

    @property
    def busy(self) -> bool:
        """A turn runs (or is queued to)."""
        ...

    def update(
        self,
        by: FrontendRef | None = None,
        put_back: TurnOverride | None = None,
        **changes: Any,
    ) -> asyncio.Future[None]:
        """Change title, mode, model, archived or budget, and tell everyone; the
        future resolves once the change is on disk."""
        ...

    def ensure_requested(self, call: ToolCall) -> None:
        """Log ``tool.requested`` for ``call`` if it is not logged yet (a result
        is never logged without its request)."""
        ...


class TurnSession(AgentSession, Protocol):
    """What the turn loop drives of a session."""

    live: LiveOutput
    approvals: Approvals
    session_rules: list[str]
    """Rules kept with "allow for this session"."""
    tool_state: dict[str, dict[str, Any]]
    """Per plugin: state its tools share across calls (`kfd.api.ToolContext.state`)."""

    @property
    def lifecycle(self) -> State:
        """Where the session is in its lifecycle (`kfd.agent.lifecycle`)."""
        ...

    def advance(self, event: LifecycleEvent) -> State:
        """Apply a lifecycle event; the status frontends see follows."""
        ...
