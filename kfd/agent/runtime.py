"""What every session shares: config, provider, tools, policies, journal, store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfd.agent.accounting import Accounting
    from kfd.agent.tools import ToolRegistry
    from kfd.api import AfterToolHook, Policy
    from kfd.checkpoints.service import Checkpoints
    from kfd.commands.book import CommandBook
    from kfd.config import Config
    from kfd.daemon.journal import Journal
    from kfd.gateway.types import Provider
    from kfd.policy.rulebook import RuleBook
    from kfd.store.db import Store


@dataclass(slots=True)
class Runtime:
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
    commands: CommandBook | None = None
    """Custom commands of the user and of trusted projects (`kfd.commands`); set by the daemon."""
    checkpoints: Checkpoints | None = None
    """What each turn changed in the files, to undo it (`kfd.checkpoints`); set by the daemon."""
