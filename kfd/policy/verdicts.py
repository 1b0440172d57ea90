"""Outcomes and findings: how a decision is accumulated, strictest first.

Every judge (`judge_paths`, `judge_bash`, `judge_tool`) records what it finds
in one `Findings`; the strictest finding wins (deny over ask over allow), and
the first of equally strict ones gives the reason, so every verdict names the
rule and its source, or the mode, that decided it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from kfd.api import PolicyRequest, Verdict
from kfd.policy.rules import SOURCE_LABELS, Decision, SourcedRule

__all__ = [
    "STRICTNESS",
    "Findings",
    "Outcome",
    "combine",
    "mode_outcome",
    "most_specific",
    "outcome",
]

STRICTNESS = {"allow": 0, "ask": 1, "deny": 2}


class Outcome(msgspec.Struct, frozen=True):
    """A decision with what made it: the rule and its source, or the mode."""

    decision: Decision
    reason: str
    rule: str = ""
    """The rule that decided, if one did."""
    source: str = ""
    """Where that rule comes from (`kfd.policy.rules.SOURCE_LABELS`), or ``mode``."""

    def verdict(self) -> Verdict:
        return Verdict(self.decision, self.reason)


def outcome(decision: Decision, reason: str, rule: SourcedRule | None = None) -> Outcome:
    """An outcome naming ``rule`` (and its source), if one decided."""
    if rule is None:
        return Outcome(decision, reason)
    return Outcome(decision, reason, rule.rule.text, SOURCE_LABELS[rule.source])


@dataclass(slots=True)
class Findings:
    """The strictest outcome so far; the first of equally strict ones stays."""

    best: Outcome | None = None

    def add(self, found: Outcome) -> None:
        if self.best is None or STRICTNESS[found.decision] > STRICTNESS[self.best.decision]:
            self.best = found

    # `deny` and `ask` make no outcome that `add` would drop (a line may ask for each
    # of hundreds of files it writes: the first one's reason stays).

    def deny(self, reason: str, rule: SourcedRule | None = None) -> None:
        if self.best is None or self.best.decision != "deny":
            self.add(outcome("deny", reason, rule))

    def ask(self, reason: str, rule: SourcedRule | None = None) -> None:
        if self.best is None or self.best.decision == "allow":
            self.add(outcome("ask", reason, rule))

    def rule(self, sourced: SourcedRule, what: str) -> bool:
        """Record a deny or ask rule that applies to ``what``; True for an allow rule."""
        if sourced.decision == "deny":
            self.deny(f"{what} is denied by {sourced.describe()}", sourced)
        elif sourced.decision == "ask":
            self.ask(f"{what} needs asking by {sourced.describe()}", sourced)
        return sourced.decision == "allow"

    @property
    def decision(self) -> Decision | None:
        return self.best.decision if self.best is not None else None

    @property
    def refused(self) -> Outcome | None:
        """The finding if it asks or denies; None while everything is allowed."""
        if self.best is not None and self.best.decision != "allow":
            return self.best
        return None


_SOURCE_RANK = {"always": 0, "session": 1, "project": 2, "user": 3, "built-in": 4}


def most_specific(rules: Sequence[SourcedRule]) -> SourcedRule:
    """The rule of the highest source (always, session, project, user, built-in)."""
    return min(rules, key=lambda s: _SOURCE_RANK[s.source])


def mode_outcome(request: PolicyRequest, read_only: bool) -> Outcome:
    """What the mode decides when no rule did."""
    if request.mode == "auto":
        return Outcome("allow", "auto mode", source="mode")
    if read_only:
        return Outcome("allow", "read-only", source="mode")
    if request.mode == "accept-edits" and request.edits_files:
        return Outcome("allow", "accept-edits mode", source="mode")
    return Outcome("ask", f"{request.mode} mode asks before `{request.tool}`", source="mode")


def combine(verdicts: Iterable[Verdict | None]) -> Verdict:
    """The strictest verdict; the first of equally strict ones gives the reason."""
    strictest: Verdict | None = None
    for verdict in verdicts:
        if verdict is None:
            continue
        if strictest is None or STRICTNESS[verdict.decision] > STRICTNESS[strictest.decision]:
            strictest = verdict
    return strictest or Verdict("ask", "no policy decided")
