"""How a tool call is decided: a pure function of the facts (`kfd.policy.facts`).

No I/O here: paths arrive resolved and bash lines analyzed, so every decision
is a plain function call a test can make. Whatever the order below, the
strictest finding wins (deny over ask over allow), and every verdict names
the rule and its source, or the mode, that decided it.

Deny
  - a deny rule matches (the tool, the command or one of its parts, a path,
    a domain, the exact call), from any source;
  - ``plan`` mode and a tool (or a command) that is not read-only;
  - a write outside the workspace that no allow rule covers.
Ask
  - an ask rule matches, or a deny rule *may* match a command whose words are
    not all known;
  - a write to a protected path (`kfd.policy.defaults.protected`), in every mode;
  - a read outside the workspace that no allow rule covers (for bash: any
    word naming a path outside, and redirections out of the workspace);
  - a bash line the analyzer cannot fully account for (substitutions, dynamic
    command names, wrappers it does not know...), or with arguments only known
    at run time (variables, ``xargs``): unless the user allowed that exact line;
  - a bash call asking for the network, unless ``[sandbox] network = true``;
  - untrusted content read earlier in the turn, and a call that changes things
    or reaches the network that only the mode (not a rule) would allow.
Allow
  - an allow rule covers the call (for bash: every command of the line, word
    for word, or the exact line);
  - ``auto`` mode; a read-only tool; ``accept-edits`` and a file edit.
Otherwise ask.

Plugin policies vote after the built-in decision; `combine` keeps the
strictest verdict, so no plugin can loosen a built-in "ask".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from kfd.api import PolicyRequest, Verdict
from kfd.policy.defaults import READ_ONLY_RULES, protected
from kfd.policy.facts import CallFacts, CommandFacts, LineFacts, PathFact
from kfd.policy.rules import (
    SOURCE_LABELS,
    Decision,
    Match,
    RuleError,
    SourcedRule,
    allow_match,
    command_pattern,
    domain_match,
    parse_rule,
    path_match,
    restrict_match,
)
from kfd.policy.shell import RiskKind, SimpleCommand

__all__ = ["Outcome", "allowing_rule", "combine", "decide", "decide_facts", "read_only"]

_STRICTNESS = {"allow": 0, "ask": 1, "deny": 2}
_WRITE_RULES = frozenset({"edit"})
_READ_RULES = frozenset({"read"})
_SOFT_RISKS = frozenset({RiskKind.DYNAMIC_ARGUMENT, RiskKind.REDIRECT_WRITE})
"""Risks the engine weighs itself: unknown arguments (`CommandFacts.unknown`)
and redirections (their targets are `LineFacts.redirects`)."""


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


@dataclass(slots=True)
class _Findings:
    """The strictest outcome so far; the first of equally strict ones stays."""

    best: Outcome | None = None

    def add(self, outcome: Outcome) -> None:
        if self.best is None or _STRICTNESS[outcome.decision] > _STRICTNESS[self.best.decision]:
            self.best = outcome

    def deny(self, reason: str, rule: SourcedRule | None = None) -> None:
        self.add(_outcome("deny", reason, rule))

    def ask(self, reason: str, rule: SourcedRule | None = None) -> None:
        self.add(_outcome("ask", reason, rule))

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


def _outcome(decision: Decision, reason: str, rule: SourcedRule | None) -> Outcome:
    if rule is None:
        return Outcome(decision, reason)
    return Outcome(decision, reason, rule.rule.text, SOURCE_LABELS[rule.source])


def decide(request: PolicyRequest) -> Verdict:
    """The built-in verdict from the request alone (no rules, no bash analysis)."""
    paths = [PathFact.of(resolved, request.workspace) for resolved in request.paths]
    rules = []
    for text in request.session_rules:
        try:
            rules.append(SourcedRule(parse_rule(text), "allow", "session"))
        except RuleError:
            continue
    return decide_facts(CallFacts(request=request, paths=paths, rules=rules)).verdict()


def decide_facts(facts: CallFacts) -> Outcome:
    """The built-in decision for one tool call."""
    if facts.request.tool == "bash" and facts.line is not None:
        return _decide_bash(facts, facts.line)
    return _decide_tool(facts)


# -- any tool -----------------------------------------------------------------


def _decide_tool(facts: CallFacts) -> Outcome:
    request = facts.request
    found = _Findings()
    allowed: SourcedRule | None = None
    url = request.arguments.get("url")
    for sourced in facts.rules:
        rule = sourced.rule
        if not rule.names(request.tool):
            continue
        if rule.spec is None or rule.text == request.session_rule:
            hit = True
        elif rule.domain is not None:
            hit = isinstance(url, str) and domain_match(rule.domain, url)
        else:
            continue  # a path rule: weighed per path below
        if not hit:
            continue
        what = f"`{request.tool}`" if rule.spec is None else "this call"
        if found.rule(sourced, what) and allowed is None:
            allowed = sourced
    exact = allowed is not None and allowed.rule.text == request.session_rule
    paths_allowed = _weigh_paths(facts, facts.paths, found, exact=exact)
    if request.mode == "plan" and not request.read_only:
        found.deny(
            f"plan mode: `{request.tool}` changes things and only read-only tools run; "
            "describe the change instead, or ask the user to switch modes"
        )
    if allowed is None and paths_allowed is not None:
        allowed = paths_allowed
    _weigh_untrusted(facts, found, allowed, mutating=not request.read_only)
    if found.best is not None and found.best.decision != "allow":
        return found.best
    if allowed is not None:
        return _outcome("allow", f"allowed by {allowed.describe()}", allowed)
    return _mode(request, request.read_only)


def _weigh_paths(
    facts: CallFacts, paths: Sequence[PathFact], found: _Findings, *, exact: bool
) -> SourcedRule | None:
    """Weigh each path (`_weigh_path`); the allow rule covering all of them, if one does."""
    allows = [_weigh_path(facts, fact, found, exact=exact) for fact in paths]
    if not allows or any(allow is None for allow in allows):
        return None
    return allows[0]


def _weigh_path(
    facts: CallFacts, fact: PathFact, found: _Findings, *, exact: bool
) -> SourcedRule | None:
    """Path rules, protected paths, hard links and the workspace guard for one path.

    Returns the allow rule covering it, if any. ``exact``: the user allowed this
    very call, which waives the workspace guard (never a deny or a protected path).
    """
    shell = facts.request.tool == "bash"
    verb = _verb(fact.write)
    deciding = _path_rules(facts, fact, fact.write)
    allows = [sourced for sourced in deciding if found.rule(sourced, f"{verb} {fact.word}")]
    allow = allows[0] if allows else None
    changes = fact.write is not False
    if changes and (why := protected(fact.path) or protected(fact.real)):
        found.ask(f"{verb} {fact.word}: {why} always asks")
    if changes and fact.links > 1:
        found.ask(
            f"{verb} {fact.word}, which has {fact.links} hard links: it may be a file "
            "outside the workspace too"
        )
    if fact.inside or exact or allow is not None:
        return allow
    where = fact.real if fact.word in (fact.real, fact.path) else f"{fact.real} (as {fact.word})"
    if not fact.write:
        found.ask(f"{verb} outside the workspace: {where}")
    elif shell:  # the sandbox refuses it anyway; the user may know better
        found.ask(f"writes outside the workspace: {where}")
    else:
        found.deny(
            f"writes outside the workspace: {where}; a rule such as "
            f"edit({fact.real}) in [permissions] allow would allow it"
        )
    return None


def _path_rules(facts: CallFacts, fact: PathFact, write: bool | None) -> list[SourcedRule]:
    """The rules about this path: ``read(...)``/``edit(...)`` by access, or the tool's own."""
    families: set[str] = set()
    if write is None or write is False:
        families |= _READ_RULES
    if write is None or write is True:
        families |= _WRITE_RULES
    tool = facts.request.tool
    matching = []
    for sourced in facts.rules:
        rule = sourced.rule
        if rule.spec is None or rule.domain is not None:
            continue
        if rule.tool not in families and (tool == "bash" or not rule.names(tool)):
            continue
        # A path is denied (or asked) under any name, allowed only where it really is.
        spellings = (fact.real,) if sourced.decision == "allow" else (fact.path, fact.real)
        workspace = facts.request.workspace
        if any(path_match(rule.spec, p, workspace, facts.home) for p in spellings):
            matching.append(sourced)
    return matching


def _verb(write: bool | None) -> str:
    return {True: "writes", False: "reads", None: "names"}[write]


def _weigh_untrusted(
    facts: CallFacts, found: _Findings, allowed: SourcedRule | None, *, mutating: bool
) -> None:
    """After untrusted content, only an explicit rule allows what changes or reaches out."""
    request = facts.request
    if not facts.untrusted or not (mutating or request.network):
        return
    if allowed is not None and allowed.source != "built-in":
        return
    if found.decision == "deny":
        return
    found.ask(
        f"untrusted content from `{facts.untrusted}` was read this turn: kfd asks before "
        f"`{request.tool}` {'reaches the network' if request.network else 'changes things'} "
        "for the rest of the turn"
    )


def _mode(request: PolicyRequest, read_only: bool) -> Outcome:
    if request.mode == "auto":
        return Outcome("allow", "auto mode", source="mode")
    if read_only:
        return Outcome("allow", "read-only", source="mode")
    if request.mode == "accept-edits" and request.edits_files:
        return Outcome("allow", "accept-edits mode", source="mode")
    return Outcome("ask", f"{request.mode} mode asks before `{request.tool}`", source="mode")


# -- bash ---------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    facts: CommandFacts
    allowed: SourcedRule | None = None
    read_only: bool = False


def _decide_bash(facts: CallFacts, line: LineFacts) -> Outcome:
    request = facts.request
    command = str(request.arguments.get("command", "")).strip()
    found = _Findings()
    bash_rules = [s for s in facts.rules if s.rule.names("bash")]
    whole: SourcedRule | None = None
    exact: SourcedRule | None = None
    for sourced in bash_rules:
        rule = sourced.rule
        if rule.spec is None:
            if found.rule(sourced, "`bash`") and whole is None:
                whole = sourced
        elif rule.spec.strip() == command and found.rule(sourced, "this command"):
            exact = exact or sourced
    parts = [_weigh_command(part, bash_rules, found) for part in line.commands]
    for part in parts:
        if part.allowed is None and whole is not None:
            part.allowed = whole
    writes = [fact for fact in line.redirects if fact.write]
    read_only_line = all(part.read_only for part in parts) and not writes
    _weigh_line_paths(facts, line, parts, found, exact=exact is not None)
    if exact is None:
        _weigh_risks(line, found)
        for part in parts:
            if part.facts.unknown:
                source = part.facts.command.source
                found.ask(
                    f"`{source}` has arguments only known when it runs "
                    f"({'; '.join(part.facts.unknown)})"
                )
    if request.arguments.get("network") is True and not facts.network_allowed:
        found.ask(
            "the command asks for network access; the sandbox keeps it off unless you "
            "allow this call ([sandbox] network = true allows every command)"
        )
    if request.mode == "plan" and not read_only_line:
        found.deny(
            "plan mode: only read-only commands run (ls, cat, git status, ...); "
            "describe the change instead, or ask the user to switch modes"
        )
    allowed = exact
    if allowed is None and parts and all(part.allowed is not None for part in parts):
        allowed = _most_specific([part.allowed for part in parts if part.allowed is not None])
    if not read_only_line:
        _weigh_untrusted(facts, found, allowed, mutating=True)
    if found.best is not None and found.best.decision != "allow":
        return found.best
    if exact is not None:
        return _outcome("allow", f"allowed by {exact.describe()}", exact)
    if not parts:
        return Outcome("allow", "the line runs no command", source="mode")
    if allowed is not None:
        return _allowed_parts(parts, allowed)
    if request.mode == "auto":
        return Outcome("allow", "auto mode", source="mode")
    uncovered = next(part for part in parts if part.allowed is None)
    return Outcome(
        "ask",
        f"{request.mode} mode asks before `bash`: `{uncovered.facts.command.source}` "
        "matches no allow rule",
        source="mode",
    )


def _weigh_command(cf: CommandFacts, rules: Sequence[SourcedRule], found: _Findings) -> _Part:
    """Deny and ask rules against one command (and its wrappers); the allow rule for it."""
    command = cf.command
    part = _Part(cf, allowed=allowing_rule(command, rules))
    argvs: list[tuple[list[str], Iterable[int], bool]] = [
        (command.argv, command.dynamic, command.open_ended),
        *((wrapper, (), False) for wrapper in command.wrappers),
    ]
    for sourced in rules:
        spec = sourced.rule.spec
        pattern = command_pattern(spec) if spec is not None else None
        if pattern is None:
            continue
        if sourced.decision == "allow":
            continue
        best = Match.NO
        for argv, dynamic, open_ended in argvs:
            match = restrict_match(pattern, argv, list(dynamic), open_ended)
            best = max(best, match, key=lambda m: m.value)
        if best is Match.NO:
            continue
        if best is Match.YES:
            found.rule(sourced, f"`{command.source}`")
        else:
            found.ask(
                f"`{command.source}` may match {sourced.describe()}: some of its words are only "
                "known when it runs",
                sourced,
            )
    part.read_only = read_only(command)
    return part


def allowing_rule(command: SimpleCommand, rules: Sequence[SourcedRule]) -> SourcedRule | None:
    """The first rule of ``rules`` allowing this command word for word, if one does."""
    for sourced in rules:
        spec = sourced.rule.spec
        if sourced.decision != "allow" or spec is None or not sourced.rule.names("bash"):
            continue
        pattern = command_pattern(spec)
        if pattern is not None and allow_match(
            pattern, command.argv, command.dynamic, command.open_ended
        ):
            return sourced
    return None


def read_only(command: SimpleCommand) -> bool:
    """Whether the command is one of the built-in read-only ones (``ls``, ``git status``...)."""
    return any(
        allow_match(pattern, command.argv, command.dynamic, command.open_ended)
        for rule in READ_ONLY_RULES
        if rule.spec is not None and (pattern := command_pattern(rule.spec)) is not None
    )


def _weigh_line_paths(
    facts: CallFacts,
    line: LineFacts,
    parts: Sequence[_Part],
    found: _Findings,
    *,
    exact: bool,
) -> None:
    """Every word and redirection of the line: a read-only command's words are reads,
    any other command's words may be written."""
    for part in parts:
        for fact in part.facts.paths:
            access = False if part.read_only else None
            _weigh_path(facts, msgspec.structs.replace(fact, write=access), found, exact=exact)
    for fact in line.redirects:
        _weigh_path(facts, fact, found, exact=exact)


def _weigh_risks(line: LineFacts, found: _Findings) -> None:
    for risk in line.analysis.risks:
        if risk.kind not in _SOFT_RISKS:
            found.ask(f"{risk.message}: kfd cannot tell everything this line runs")
        elif risk.kind == RiskKind.REDIRECT_WRITE and not any(
            fact.word == risk.subject for fact in line.redirects
        ):
            found.ask(f"{risk.message}, a target kfd cannot check")


_SOURCE_RANK = {"always": 0, "session": 1, "project": 2, "user": 3, "built-in": 4}


def _most_specific(rules: Sequence[SourcedRule]) -> SourcedRule:
    return min(rules, key=lambda s: _SOURCE_RANK[s.source])


def _allowed_parts(parts: Sequence[_Part], allowed: SourcedRule) -> Outcome:
    if len(parts) == 1:
        return _outcome("allow", f"allowed by {allowed.describe()}", allowed)
    described = "; ".join(
        f"`{part.facts.command.source}` by {part.allowed.describe()}"
        for part in parts
        if part.allowed is not None
    )
    return _outcome("allow", f"every command is allowed: {described}", allowed)


def combine(verdicts: Iterable[Verdict | None]) -> Verdict:
    """The strictest verdict; the first of equally strict ones gives the reason."""
    strictest: Verdict | None = None
    for verdict in verdicts:
        if verdict is None:
            continue
        if strictest is None or _STRICTNESS[verdict.decision] > _STRICTNESS[strictest.decision]:
            strictest = verdict
    return strictest or Verdict("ask", "no policy decided")
