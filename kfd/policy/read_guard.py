"""Read rules as a predicate over paths, for tools that read whole trees.

``grep`` and ``glob`` read (or list) files the model never named one by one,
so no decision saw them. They ask a `ReadGuard` about each file instead and
leave out what a ``deny`` or ``ask`` read rule names (a file cannot be asked
about in the middle of a search): ``.env``, private keys,
``read(**/secrets/**)``... Allow rules play no part: deny beats allow.

The guard answers as `kfd.policy.rules.spec_matcher` does for each rule
(what every decision matches paths with), but fast: every pattern is tested
at once first (`kfd.policy.rules.PathMatcher`, the matcher the bash analyser
walks trees with), and only a path that matches is checked rule by rule to
name the rule. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from kfd.policy.rules import PathMatcher, SourcedRule, spec_matcher

__all__ = ["ReadGuard"]

_CACHE_LIMIT = 8192


class ReadGuard:
    """Which read rule keeps a path from being read, if one does."""

    def __init__(
        self, rules: Iterable[SourcedRule], workspace: str, home: str, tool: str = "read"
    ) -> None:
        chosen = [sourced for sourced in rules if _restricts_reads(sourced, tool)]
        chosen.sort(key=lambda sourced: sourced.decision != "deny")  # deny names first
        self._rules = chosen
        self._workspace = workspace.rstrip("/") or "/"
        self._home = home.rstrip("/") or "/"
        specs = [(sourced.rule.spec or "").strip() for sourced in chosen]
        self._may_match = PathMatcher(
            [spec for spec in specs if spec], self._workspace, self._home, restricting=True
        )
        self._cache: dict[str, str | None] = {}

    def __bool__(self) -> bool:
        """False when no rule restricts reads (then nothing is ever left out)."""
        return bool(self._rules)

    def __call__(self, path: str) -> str | None:
        """The rule (``read(**/.env)``) that denies or asks before reading ``path``.

        ``path`` is absolute and normalised. Symlinks are not followed: ask
        about the real path too where it may differ.
        """
        if not self._rules:
            return None
        try:
            return self._cache[path]
        except KeyError:
            pass
        found = self._rule_for(path) if self._may_match(path) else None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[path] = found
        return found

    def _rule_for(self, path: str) -> str | None:
        for sourced in self._rules:
            spec = sourced.rule.spec or ""
            if spec_matcher(spec, self._workspace, self._home, restricting=True)(path):
                return sourced.rule.text
        return None


def _restricts_reads(sourced: SourcedRule, tool: str) -> bool:
    rule = sourced.rule
    if sourced.decision == "allow" or rule.spec is None or rule.domain is not None:
        return False
    return rule.tool == "read" or (tool != "read" and rule.names(tool))
