"""Permission rules: their syntax, and how one rule matches one fact.

A rule is ``tool`` or ``tool(specifier)``:

=============================== ==============================================
``bash(git status)``            exactly that command, no further arguments
``bash(npm run test *)``        those words, then any further arguments or none
``edit(src/**)``                a file written anywhere under ``src/``
``read(**/.env)``               a file named ``.env`` read anywhere
``web_fetch(domain:docs.python.org)`` a URL on that host (``*.python.org``: subdomains)
``mcp__github__*``              every tool whose name matches the glob
``write(notes.md)``             that tool, on that path
=============================== ==============================================

Path specifiers are gitignore-style globs (``**`` spans directories),
anchored at the workspace when relative, at ``/`` when absolute, at the home
directory with ``~/``. A relative one starting with ``**/`` matches outside
the workspace too. ``read(...)`` rules apply to every path any tool reads,
``edit(...)`` rules to every path any tool writes; a rule naming another tool
applies to that tool's paths.

Command specifiers are split into words like a shell would (`shlex`). An
*allow* rule matches a command only word for word (`allow_match`): a word the
analyzer could not pin down never matches. A *deny* or *ask* rule matches
loosely (`restrict_match`): options in any order and cluster (``rm -rf`` is
``rm -fr`` is ``rm -r -f``), the command name with or without its directory
(``/bin/rm``), and "maybe" when an unknown word could complete the match.
Loose where a match restricts, strict where it permits: reordering words can
lose an allow, never escape a deny.

Everything here is pure: no I/O, no tree-sitter.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shlex
from collections.abc import Collection, Sequence
from enum import Enum
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import pathspec

__all__ = [
    "GRANT",
    "MAX_RULE_CHARS",
    "SOURCE_LABELS",
    "CommandPattern",
    "Decision",
    "Match",
    "Rule",
    "RuleError",
    "RuleSource",
    "SourcedRule",
    "allow_match",
    "command_pattern",
    "domain_match",
    "grant_rule",
    "grants_of",
    "parse_rule",
    "path_match",
    "restrict_match",
]

MAX_RULE_CHARS = 64 * 1024
"""Longer rule text is refused (a command rule holds a whole command line)."""

Decision = Literal["allow", "ask", "deny"]

RuleSource = Literal["built-in", "user", "project", "session", "always"]
"""Where a rule comes from, lowest to highest; deny beats ask beats allow whatever it is."""

SOURCE_LABELS: dict[RuleSource, str] = {
    "built-in": "built-in default",
    "user": "user config",
    "project": "project config",
    "session": "allowed for this session",
    "always": "always allowed for this project",
}

_RULE = re.compile(r"(?P<tool>[A-Za-z0-9_.*?\[\]-]+)(?:\((?P<spec>.*)\))?", re.DOTALL)


class RuleError(ValueError):
    """Rule text that does not parse; the message says what is wrong."""


class Rule(msgspec.Struct, frozen=True):
    """One parsed rule."""

    text: str
    """The rule as written (what users see and the store keeps)."""
    tool: str
    """A tool name, or a glob over tool names (``mcp__github__*``)."""
    spec: str | None = None
    """The specifier between the parentheses; None for a bare tool rule."""

    @property
    def domain(self) -> str | None:
        """The host pattern of a ``domain:`` specifier."""
        if self.spec is not None and self.spec.startswith("domain:"):
            return self.spec[len("domain:") :].strip().lower()
        return None

    def names(self, tool: str) -> bool:
        """Whether this rule is about ``tool`` (by name or glob)."""
        if self.tool == tool:
            return True
        return any(c in self.tool for c in "*?[") and fnmatch.fnmatchcase(tool, self.tool)


class SourcedRule(msgspec.Struct, frozen=True):
    """A rule with its decision and where it comes from."""

    rule: Rule
    decision: Decision
    source: RuleSource

    def describe(self) -> str:
        """``bash(ls *) (built-in default)``."""
        return f"{self.rule.text} ({SOURCE_LABELS[self.source]})"


def parse_rule(text: str) -> Rule:
    """Parse ``tool`` or ``tool(specifier)``; raises `RuleError` saying why not."""
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"a rule is at most {MAX_RULE_CHARS} characters")
    stripped = text.strip()
    match = _RULE.fullmatch(stripped)
    if match is None:
        raise RuleError(
            f"{_short(text)!r} is not a rule: write tool or tool(specifier), "
            "e.g. bash(git status), edit(src/**), mcp__github__*"
        )
    spec = match.group("spec")
    if spec is not None and not spec.strip():
        raise RuleError(f"{_short(text)!r}: the specifier in the parentheses is empty")
    if spec is not None and match.group("tool") == "bash" and command_pattern(spec) is None:
        raise RuleError(f"{_short(text)!r}: the command has unbalanced quotes")
    return Rule(stripped, match.group("tool"), spec)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


# -- commands -----------------------------------------------------------------


class CommandPattern(msgspec.Struct, frozen=True):
    """A command specifier split into words."""

    words: tuple[str, ...]
    prefix: bool
    """It ended in `` *``: any further arguments (or none) match."""


@functools.lru_cache(maxsize=4096)
def command_pattern(spec: str) -> CommandPattern | None:
    """The words of a command specifier; None if it does not split (unbalanced quotes)."""
    stripped = spec.strip()
    prefix = stripped == "*" or (stripped.endswith("*") and stripped[-2:-1].isspace())
    if prefix:
        stripped = stripped[:-1]
    try:
        words = tuple(shlex.split(stripped))
    except ValueError:
        return None
    if not words and not prefix:
        return None
    return CommandPattern(words, prefix)


def allow_match(
    pattern: CommandPattern, argv: Sequence[str], dynamic: Collection[int], open_ended: bool
) -> bool:
    """Whether an allow rule covers this command, word for word.

    ``dynamic`` holds the indexes of words the analyzer could not pin down;
    ``open_ended``: more arguments are appended at run time (``xargs``).
    """
    words = pattern.words
    if not argv or len(argv) < len(words):
        return False
    if any(index < len(words) for index in dynamic):
        return False
    if pattern.prefix:
        return tuple(argv[: len(words)]) == words
    return not dynamic and not open_ended and tuple(argv) == words


class Match(Enum):
    """How a restricting (deny or ask) rule meets a command."""

    NO = 0
    MAYBE = 1
    """An unknown word (a variable, ``xargs`` input) could make it match."""
    YES = 2


def restrict_match(
    pattern: CommandPattern, argv: Sequence[str], dynamic: Collection[int], open_ended: bool
) -> Match:
    """Whether a deny or ask rule applies to this command, loosely (see the module doc)."""
    words = pattern.words
    if not argv:
        return Match.NO
    if not words:  # `*`
        return Match.YES
    if 0 in dynamic:
        return Match.MAYBE
    if os.path.basename(argv[0]) != os.path.basename(words[0]):
        return Match.NO
    rule_positional, rule_options = _split_words(words[1:])
    first_unknown = min(dynamic) if dynamic else None
    known = argv[1:] if first_unknown is None else argv[1:first_unknown]
    positional, options = _split_words(known)
    if first_unknown is None and not open_ended:
        if pattern.prefix:
            fits = positional[: len(rule_positional)] == rule_positional
            return Match.YES if fits and rule_options <= options else Match.NO
        fits = positional == rule_positional and options == rule_options
        return Match.YES if fits else Match.NO
    known_prefix = positional[: len(rule_positional)] == rule_positional
    if pattern.prefix and known_prefix and rule_options <= options:
        return Match.YES  # what comes after the known words cannot undo the match
    # Unknown words may add any positional or option after the known ones.
    shared = min(len(positional), len(rule_positional))
    if positional[:shared] != rule_positional[:shared]:
        return Match.NO
    if not pattern.prefix and len(positional) > len(rule_positional):
        return Match.NO
    return Match.MAYBE


_SHORT_CLUSTER = re.compile(r"-[A-Za-z]+")


def _split_words(words: Sequence[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """(positional words, option words) with short clusters split (``-rf``: ``-r``, ``-f``)."""
    positional: list[str] = []
    options: set[str] = set()
    ended = False
    for word in words:
        if ended or not word.startswith("-") or word == "-":
            positional.append(word)
        elif word == "--":
            ended = True
        elif _SHORT_CLUSTER.fullmatch(word):
            options.update(f"-{letter}" for letter in word[1:])
        else:
            options.add(word)
    return tuple(positional), frozenset(options)


# -- paths --------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(["/" + pattern.lstrip("/")])


def path_match(spec: str, path: str, workspace: str, home: str) -> bool:
    """Whether the absolute, normalised ``path`` matches the path specifier ``spec``."""
    spec = spec.strip()
    if not spec:
        return False
    if spec == "~" or spec.startswith("~/"):
        base, pattern = home, spec[2:] or "**"
    elif spec.startswith("/"):
        base, pattern = "/", spec
    else:
        base, pattern = workspace, spec
    relative = _relative(path, base)
    if relative is None:
        if base != workspace or not pattern.startswith("**/"):
            return False
        relative = path.lstrip("/")  # `**/x` matches wherever x is
    return bool(_glob(pattern).match_file(relative or "."))


def _relative(path: str, base: str) -> str | None:
    if base == "/":
        return path.lstrip("/")
    base = base.rstrip("/")
    if path == base:
        return ""
    if path.startswith(base + "/"):
        return path[len(base) + 1 :]
    return None


# -- domains ------------------------------------------------------------------


def domain_match(pattern: str, url: str) -> bool:
    """Whether ``url``'s host matches a ``domain:`` pattern (``*.example.org`` for subdomains)."""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    if not host or not pattern:
        return False
    return fnmatch.fnmatchcase(host, pattern.rstrip("."))


# -- grants -------------------------------------------------------------------

GRANT = "grant"
"""The pseudo-tool of grant rules: what a tool asked for while it ran (`kfd.api.ApprovalNeeded`)."""


def grant_rule(tool: str, grant: str) -> str:
    """The session rule "allow for this session" keeps for a grant: ``grant(bash:unsandboxed)``."""
    return f"{GRANT}({tool}:{grant})"


def grants_of(session_rules: Sequence[str], tool: str) -> frozenset[str]:
    """What the session granted ``tool`` for the rest of the session."""
    prefix = f"{GRANT}({tool}:"
    return frozenset(
        rule[len(prefix) : -1]
        for rule in session_rules
        if rule.startswith(prefix) and rule.endswith(")")
    )
