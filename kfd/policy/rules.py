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

Path specifiers are gitignore-style globs (``**`` spans directories; matched
in time linear in the path, whoever wrote them: `kfd.policy.globs`),
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

Everything here is pure (no tree-sitter) but for one look at the file system: where
the directories a path specifier names really are (`_anchors`), once per compiled
matcher.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import unicodedata
from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from kfd.policy.command_rules import command_pattern
from kfd.policy.globs import glob_regex, literal, wildcards
from kfd.policy.real import where

__all__ = [
    "GRANT",
    "MAX_RULE_CHARS",
    "SOURCE_LABELS",
    "Decision",
    "PathMatcher",
    "Rule",
    "RuleError",
    "RuleSource",
    "SourcedRule",
    "could_match_under",
    "domain_match",
    "grant_rule",
    "grants_of",
    "normal_host",
    "parse_rule",
    "spec_matcher",
]

MAX_RULE_CHARS = 64 * 1024
"""Longer rule text is refused (a command rule holds a whole command line)."""
MAX_PATH_RULE_CHARS = 4096
"""Longer path patterns are refused (no path is longer; compiling one costs time)."""

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
    if spec is not None and match.group("tool") != "bash" and not spec.startswith("domain:"):
        # A path pattern: checked here, where a bad one is a config error to fix,
        # not at every decision of the workspace it applies in.
        if len(spec) > MAX_PATH_RULE_CHARS:
            raise RuleError(f"a path rule is at most {MAX_PATH_RULE_CHARS} characters")
        if "\0" in spec:
            raise RuleError(f"{_short(text)!r}: no path holds a NUL byte")
        try:
            glob_regex(_anchor(spec, "/", "/")[1])
        except ValueError as exc:
            raise RuleError(f"{_short(text)!r}: {exc}") from exc
    return Rule(stripped, match.group("tool"), spec)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


# -- paths --------------------------------------------------------------------


def _anchor(spec: str, workspace: str, home: str) -> tuple[str, str]:
    """(the directory a path specifier is relative to, the pattern relative to it),
    tidied as a path is (`_tidy`: ``./x``, ``a//b`` and ``a/./b`` named nothing, the
    first being how other tools write a rule). A relative specifier's leading
    ``..`` moves its anchor up."""
    if spec == "~" or spec.startswith("~/"):
        return home, _tidy(spec[2:]) or "**"
    if spec.startswith("/"):
        return "/", "/" + _tidy(spec)
    parts = spec.split("/")
    base = workspace
    while parts and parts[0] in ("..", "."):
        if parts.pop(0) == "..":
            base = os.path.dirname(base.rstrip("/")) or "/"
    return base, _tidy("/".join(parts)) or "**"


def _tidy(pattern: str) -> str:
    """``pattern`` without empty and ``.`` components, and with each ``..`` taking back
    the name before it (a name, not a wildcard); a trailing ``/`` kept (a directory)."""
    kept: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and kept and kept[-1] != ".." and not wildcards(kept[-1]):
            kept.pop()
            continue
        if part == ".." and not kept and pattern.startswith("/"):
            continue  # `/..` is `/`
        kept.append(part)
    tidied = "/".join(kept)
    return tidied + "/" if tidied and pattern.endswith("/") else tidied


def _anchors(spec: str, workspace: str, home: str, restricting: bool) -> list[tuple[str, str]]:
    """Every (anchor, pattern) a path specifier matches from: `_anchor`'s, and where the
    place it names really is. Paths are weighed where they really are: with a home
    reached through a link (``/home`` -> ``/var/home``), ``read(~/.aws/**)`` spelled
    at ``$HOME`` alone never met ``/var/home/u/.aws/credentials``. The home is
    taken normalised and real for every rule (it is the user's, not the
    workspace's); for a rule that denies or asks, also every literal name at the
    specifier's head, the last one too (``~/.aws`` a link of a dotfile manager,
    ``keys/``, ``prod.json`` links elsewhere), as the kernel resolves them
    (`kfd.policy.real.where`: at a bounded cost, whatever links a repository holds).
    An allow rule holds only where it says, whatever a link in the workspace may
    later lead there."""
    base, pattern = _anchor(spec, workspace, home)
    found = [(base, pattern)]
    homeward = spec == "~" or spec.startswith("~/")
    if homeward:
        for place in (os.path.normpath(home), where(home)):
            if place is not None and (place, pattern) not in found:
                found.append((place, pattern))
    if not restricting:
        return found
    raw = spec[2:] if homeward else spec
    spelled = raw if raw.startswith("/") else f"{home if homeward else workspace}/{raw}"
    parts = spelled.split("/")
    names = 0
    while names < len(parts) and not wildcards(parts[names]):
        names += 1
    head = "/".join(parts[:names]) or "/"
    real = where(head)  # the kernel's reading of the spelling, `..` after a link and all
    if real is None or real == "/" or real == os.path.normpath(head):
        return found
    tail = "/".join(part for part in parts[names:] if part not in ("", "."))
    if tail:
        found.append(("/", literal(real) + "/" + tail))
    else:  # the specifier names a place: it, and what is under it
        found += [("/", literal(real)), ("/", literal(real) + "/**")]
    return found


_BACKUPS = r"(?:~|\.(?:bak|orig|old|save|swp))?\Z"
"""The suffixes editors and tools give a file's copies (`PathMatcher`: a name rule
covers them too; ``read(**/.env)`` leaves ``.env~`` as readable as ``.env``
would be)."""

_MAX_REMEMBERED_PATHS = 100_000
"""Paths a `PathMatcher` remembers before it starts over (a few MB at most)."""


class PathMatcher:
    """Many path specifiers against many paths, fast: a walk of a tree tests thousands.

    Whether one of the specifiers matches: gitignore globs (`kfd.policy.globs`,
    in time linear in the path's length, whatever the rules say), anchored as
    the module says; a path with a newline in it matches too (pathspec's ``.``
    stopped at one: ``**/.env`` missed ``a\\nb/.env``, so a deny rule did not
    apply), and a name rule (``**/x``) also matches x's backups (`_BACKUPS`).
    A specifier that names a file anywhere (``**/.env``, ``**/*.pem``) is
    tested against each component of a path with one regular expression; the
    others are compiled into one regular expression per anchor.
    """

    def __init__(
        self,
        specs: Sequence[str],
        workspace: str,
        home: str,
        *,
        restricting: bool = False,
        remember: int = _MAX_REMEMBERED_PATHS,
    ) -> None:
        groups: dict[str, list[str]] = {}
        names: list[str] = []
        anywhere: list[str] = []
        for spec in (s.strip() for s in specs):
            if not spec:
                continue
            anchors = _anchors(spec, workspace, home, restricting)
            base, pattern = anchors[0]
            name = pattern[3:] if pattern.startswith("**/") else ""
            if base == workspace and name and not _SPECIAL_NAME.search(name):
                # `**/x` matches a file or directory named x anywhere, and what is under
                # it; and x's backups (`x~`, `x.bak`, ...): a copy of a secret is one.
                names.append(fnmatch.translate(name).removesuffix(r"\Z") + _BACKUPS)
                continue
            for place, spelled in anchors:
                groups.setdefault(place, []).append(glob_regex(spelled))
            if base == workspace and pattern.startswith("**/"):
                anywhere.append(glob_regex(pattern))  # `**/x/**` outside the workspace too
        self._groups = [(base, re.compile("|".join(rx), re.DOTALL)) for base, rx in groups.items()]
        self._names = re.compile("|".join(names), re.DOTALL) if names else None
        self._anywhere = re.compile("|".join(anywhere), re.DOTALL) if anywhere else None
        self._workspace = workspace
        self._remember = remember
        self._seen: dict[str, bool] = {}
        """Paths already matched: a matcher is kept per rule set (the same tree is
        walked decision after decision), and matching is pure."""
        self._named: dict[str, bool] = {}
        """Path components already matched against the name rules: most paths share
        most of theirs (``src``, the workspace's own), and the match of one
        component is pure too. Dropped, like ``_seen``, when it grows too large."""

    def __bool__(self) -> bool:
        return bool(self._groups) or self._names is not None

    def __call__(self, path: str) -> bool:
        """Whether the absolute, normalised ``path`` matches one of the specifiers."""
        seen = self._seen.get(path)
        if seen is None:
            if len(self._seen) >= self._remember:
                self._seen.clear()
            seen = self._seen[path] = self._match(path)
        return seen

    def _match(self, path: str) -> bool:
        names = self._names
        if names is not None:
            named = self._named
            for part in path.split("/"):
                if not part:
                    continue
                hit = named.get(part)
                if hit is None:
                    if len(named) >= self._remember:
                        named.clear()
                    hit = named[part] = names.match(part) is not None
                if hit:
                    return True
        for base, regex in self._groups:
            relative = _relative(path, base)
            if relative is not None and regex.match(relative or "."):
                return True
        anywhere = self._anywhere
        if anywhere is not None and _relative(path, self._workspace) is None:
            return bool(anywhere.match(path.lstrip("/") or "."))
        return False


_SPECIAL_NAME = re.compile(r"[/\\]|\*\*|^!")
"""A name glob that is more than one path component (or escapes, or negates)."""


@functools.lru_cache(maxsize=1024)
def spec_matcher(spec: str, workspace: str, home: str, *, restricting: bool = False) -> PathMatcher:
    """One path specifier, compiled: what every decision matches a path with
    (``restricting``: of a rule that denies or asks, `_anchors`).

    It remembers the paths it matched: the same few are weighed decision after
    decision.
    """
    return PathMatcher([spec], workspace, home, restricting=restricting, remember=4096)


def could_match_under(spec: str, directory: str, workspace: str, home: str) -> bool:
    """Whether the path specifier ``spec`` may match some path under ``directory``
    (absolute), whatever that directory holds or once held: for readers of a
    repository's history, which kfd cannot list."""
    spec = spec.strip()
    if not spec:
        return False
    return any(
        _could_match_under(base, pattern, directory, workspace)
        for base, pattern in _anchors(spec, workspace, home, restricting=True)
    )


def _could_match_under(base: str, pattern: str, directory: str, workspace: str) -> bool:
    if base == workspace and pattern.startswith("**/"):
        return True
    relative = _relative(directory, base)
    if relative is None:
        return _relative(base, directory) is not None  # the rule's anchor is inside
    segments = [s for s in pattern.strip("/").split("/") if s]
    for wanted, part in zip(segments, [p for p in relative.split("/") if p], strict=False):
        if wanted == "**":
            return True
        if not fnmatch.fnmatchcase(part, wanted):
            return False
    return True


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
        host = normal_host(urlsplit(url.strip()).hostname or "")
    except ValueError:
        return False
    if not host or not pattern:
        return False
    return fnmatch.fnmatchcase(host, normal_host(pattern))


def normal_host(host: str) -> str:
    """A host name as the network sees it: lower case, no final dot, internationalised
    names in their ASCII form (``ＥＶＩＬ.example`` is ``evil.example``, as a client's
    IDNA encoding makes it)."""
    host = host.strip().rstrip(".").lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return unicodedata.normalize("NFKC", host).lower()


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
