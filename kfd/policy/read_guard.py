"""Read rules as a predicate over paths, for tools that read whole trees.

``grep`` and ``glob`` read (or list) files the model never named one by one,
so no decision saw them. They ask a `ReadGuard` about each file instead and
leave out what a ``deny`` or ``ask`` read rule names (a file cannot be asked
about in the middle of a search): ``.env``, private keys,
``read(**/secrets/**)``... Allow rules play no part: deny beats allow.

The guard answers exactly as `kfd.policy.rules.path_match` would for each
rule, but fast: the patterns of one base (the workspace, home, ``/``) are
matched together first, as one regular expression made of pathspec's own
(pathspec would try them one by one: 3x slower for the built-in rules), and
only a path that matches is checked rule by rule to name the rule. Pure: no
I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pathspec
from pathspec.util import normalize_file

from kfd.policy.rules import SourcedRule, path_match

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
        by_base: dict[str, list[str]] = {}
        anywhere: list[str] = []
        for sourced in chosen:
            spec = (sourced.rule.spec or "").strip()
            if not spec:
                continue
            if spec == "~" or spec.startswith("~/"):
                base, pattern = self._home, spec[2:] or "**"
            elif spec.startswith("/"):
                base, pattern = "/", spec
            else:
                base, pattern = self._workspace, spec
                if pattern.startswith("**/"):
                    anywhere.append(pattern)
            by_base.setdefault(base, []).append(pattern)
        self._bases = [(base, _spec(patterns)) for base, patterns in by_base.items()]
        self._anywhere = _spec(anywhere) if anywhere else None
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

    def _may_match(self, path: str) -> bool:
        for base, spec in self._bases:
            relative = _relative(path, base)
            if relative is not None and spec(relative or "."):
                return True
        if self._anywhere is not None and _relative(path, self._workspace) is None:
            return self._anywhere(path.lstrip("/") or ".")
        return False

    def _rule_for(self, path: str) -> str | None:
        for sourced in self._rules:
            spec = sourced.rule.spec or ""
            if path_match(spec, path, self._workspace, self._home):
                return sourced.rule.text
        return None


def _restricts_reads(sourced: SourcedRule, tool: str) -> bool:
    rule = sourced.rule
    if sourced.decision == "allow" or rule.spec is None or rule.domain is not None:
        return False
    return rule.tool == "read" or (tool != "read" and rule.names(tool))


def _spec(patterns: list[str]) -> Callable[[str], bool]:
    """Whether a relative path matches any of ``patterns``, anchored as
    `kfd.policy.rules` anchors one (no negations: any match is a match)."""
    spec = pathspec.GitIgnoreSpec.from_lines(["/" + pattern.lstrip("/") for pattern in patterns])
    parts = [
        _UNNAMED.sub("(?:", compiled.regex.pattern)
        for compiled in spec.patterns
        if isinstance(compiled, pathspec.RegexPattern)
        and compiled.include
        and compiled.regex is not None
    ]
    try:
        combined = re.compile("|".join(f"(?:{part})" for part in parts))
    except (re.error, TypeError):  # a pathspec whose regexes do not combine: one by one
        return lambda relative: spec.match_file(relative)
    if not parts:
        return lambda relative: False
    return lambda relative: combined.search(normalize_file(relative)) is not None


_UNNAMED = re.compile(r"\(\?P<\w+>")
"""A named group: pathspec names one in each pattern, and names cannot repeat."""


def _relative(path: str, base: str) -> str | None:
    if base == "/":
        return path.lstrip("/")
    if path == base:
        return ""
    if path.startswith(base + "/"):
        return path[len(base) + 1 :]
    return None
