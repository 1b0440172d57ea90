"""What the REPL prints above the prompt: one small record per kind of thing.

`kfd_repl.view` turns session events into these blocks; `kfd_repl.render`
turns them into terminal text. Keeping the two apart keeps the decisions (what
to show) testable without a terminal, and the looks in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kfd import protocol as p

NoteLevel = Literal["info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class Header:
    """The first lines after attaching: which session, where, with what."""

    info: p.SessionInfo
    history_cut: bool = False
    """Older events exist than the ones replayed below the header."""


@dataclass(frozen=True, slots=True)
class UserText:
    """A user message as it entered the transcript."""

    text: str
    author: str | None = None
    """The frontend that sent it, when it was not this terminal."""
    paste: int | None = None
    """Set for a long message (a paste): shown collapsed, ``/expand N`` shows it whole."""


@dataclass(frozen=True, slots=True)
class AssistantText:
    """A complete piece of the model's answer, as Markdown."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolLine:
    """A finished tool call: one line, then its diff or (folded) output."""

    name: str
    summary: str
    status: p.ToolStatus
    duration_ms: float = 0.0
    output: str = ""
    """Shown folded under the line; empty for calls whose output is the model's business."""
    diff: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalAsk:
    """A tool call waits for a yes or no: what it would do."""

    event: p.ApprovalRequested


@dataclass(frozen=True, slots=True)
class ApprovalAnswer:
    """How an approval was answered, and by whom."""

    tool: str
    decision: p.ApprovalDecision
    by: str | None
    """The frontend that answered: None for this terminal, "" for the daemon itself."""
    message: str = ""
    rule: str = ""
    what: str = ""
    """The command (or summary) that was asked about, so the answer says what it decided."""


@dataclass(frozen=True, slots=True)
class Note:
    """A line about the session rather than from it (mode changed, retries, errors)."""

    text: str
    level: NoteLevel = "info"


@dataclass(frozen=True, slots=True)
class Listing:
    """Plain lines a command prints (/help, /sessions, /cost ...)."""

    title: str
    lines: tuple[str, ...] = ()


Block = Header | UserText | AssistantText | ToolLine | ApprovalAsk | ApprovalAnswer | Note | Listing
