"""What every session shares: config, provider, tools, policies, journal, store.

The daemon builds one `Runtime` at start (`kfd.daemon.server`) and gives it
to every session. The journal is named by what a session needs of it
(`Journal`), so the agent does not depend on the daemon that implements it
(`kfd.daemon.journal.Journal`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

    from kfd.agent.accounting import Accounting
    from kfd.agent.editor_files import FileRouter
    from kfd.agent.tools import ToolRegistry
    from kfd.api import AfterToolHook, Policy
    from kfd.checkpoints.service import Checkpoints
    from kfd.commands.book import CommandBook
    from kfd.config import Config
    from kfd.gateway.types import Provider
    from kfd.policy.rulebook import RuleBook
    from kfd.protocol import Event, SessionInfo
    from kfd.store.db import MessageRow, Store


class Journal(Protocol):
    """Orders, persists and publishes events: durable before visible."""

    def append(
        self,
        event: Event,
        *,
        session: SessionInfo | None = None,
        message: MessageRow | None = None,
        tool_output: tuple[str, str, str] | None = None,
        sync: bool = False,
    ) -> asyncio.Future[None]:
        """Queue a durable event; the future resolves once it is on disk and published
        (``sync``: synced to disk)."""
        ...

    def publish(self, event: Event) -> None:
        """Publish an ephemeral event behind the durable ones on their way."""
        ...

    def publish_global(self, topic: bytes, event: Event) -> None:
        """Publish a daemon-wide event on ``topic``."""
        ...

    async def drain(self) -> None:
        """Wait until every event queued so far is on disk and published."""
        ...

    @property
    def published(self) -> dict[str, int]:
        """The last durable seq published, per session."""
        ...


@dataclass(slots=True)
class Runtime:
    """The daemon's services every session uses."""

    config: Config
    provider: Provider
    tools: ToolRegistry
    policies: list[Policy]
    journal: Journal
    store: Store
    accounting: Accounting
    delta_window_s: float = 0.004
    """Model text: at most one delta event per window while tokens pour in."""
    output_window_s: float = 0.02
    """Tool output: at most one output event per window."""
    after_tool_hooks: list[AfterToolHook] = field(default_factory=list)
    """Plugins' hooks that may add a note to every tool result."""
    rule_book: RuleBook | None = None
    """Permission rules of every source (`kfd.policy.rulebook`); set by the daemon."""
    files: FileRouter | None = None
    """The frontends serving sessions' files (`kfd.daemon.file_delegates`); set by the daemon."""
    commands: CommandBook | None = None
    """Custom commands of the user and of trusted projects (`kfd.commands`); set by the daemon."""
    checkpoints: Checkpoints | None = None
    """What each turn changed in the files, to undo it (`kfd.checkpoints`); set by the daemon."""
