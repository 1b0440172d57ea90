"""Judging a bash line: every command it runs, every word that can be a path.

Pure (no I/O): the line arrives analyzed and its words resolved
(`kfd.policy.facts.LineFacts`). In order of what wins:

Deny
  - a deny rule matches one of the line's commands, by meaning
    (`kfd.policy.command_rules.restrict_match`), or one of its paths;
  - ``plan`` mode and a line not proven read-only;
  - a redirection writing outside the workspace that no ``edit(...)`` rule allows.
Ask
  - an ask rule matches, or a deny or ask rule *may* match (a word only known
    at run time, an unknown option, a git alias, a program whose identity is
    unknown, an unknown program whose arguments name the rule's program);
  - anything the analyzer cannot account for (`kfd.policy.shell`: substitutions,
    code bash evaluates from data, wrappers it does not know...), arguments
    only known at run time, a line that only assigns values only known at run
    time (default mode): unless the user allowed that exact line;
  - a redirection writing a file in default mode, unless an ``edit(...)`` rule
    allows it; paths outside the workspace; protected paths; trees and
    histories holding paths a read rule restricts;
  - the network, unless ``[sandbox] network = true``;
  - untrusted content read earlier in the turn, and a line that changes things
    which only the mode (not a rule) would allow.
Allow
  - every command of the line matches an allow rule, word for word, or the user
    allowed the exact line; otherwise the mode decides (``auto`` allows).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kfd.policy.command_rules import (
    CommandPattern,
    CommandView,
    Match,
    allow_match,
    command_pattern,
    literal_pattern,
    restrict_match,
    rule_program,
    rule_words_given,
)
from kfd.policy.defaults import READ_ONLY_RULES
from kfd.policy.facts import CallFacts, CommandFacts, LineFacts
from kfd.policy.judge_paths import (
    weigh_each,
    weigh_history,
    weigh_index,
    weigh_touched,
    weigh_tree,
)
from kfd.policy.judge_tool import weigh_untrusted
from kfd.policy.programs.identity import canonical
from kfd.policy.reading import Reading, git_read, program_words, read_command
from kfd.policy.rules import SourcedRule
from kfd.policy.shell import RiskKind, SimpleCommand
from kfd.policy.verdicts import Findings, Outcome, most_specific, outcome

__all__ = ["allowing_rule", "decide_bash", "read_only"]

_REDIRECT_WRITE = RiskKind.REDIRECT_WRITE
"""Read once: an enum member looked up on its class costs 70 ns, for each of a long
line's hundreds of risks."""
_SOFT_RISKS = frozenset({RiskKind.DYNAMIC_ARGUMENT, _REDIRECT_WRITE})
"""Risks weighed through the facts: unknown arguments (`CommandFacts.unknown`) and
writes (`LineFacts.redirects`)."""


@dataclass(slots=True)
class _Part:
    facts: CommandFacts
    reading: Reading
    allowed: SourcedRule | None = None
    read_only: bool = False


def decide_bash(facts: CallFacts, line: LineFacts) -> Outcome:
    """The built-in decision for one bash line."""
    request = facts.request
    # Only what bash itself separates words by: `str.strip` also takes \f, \v, \r,
    # NBSP..., which bash keeps in the first or last word (`python3 check.py\f`
    # runs another file than the rule's `python3 check.py`).
    command = str(request.arguments.get("command", "")).strip(_BLANKS)
    found = Findings()
    bash_rules, restricting = _bash_rules(tuple(facts.rules))
    whole: SourcedRule | None = None
    exact: SourcedRule | None = None
    for sourced in bash_rules:
        rule = sourced.rule
        if rule.spec is None:
            if found.rule(sourced, "`bash`") and whole is None:
                whole = sourced
        elif _exact_line(sourced, command) and found.rule(sourced, "this command"):
            exact = exact or sourced
    base = request.workspace
    inputs = _Inputs(line)
    # A command met again (`command_key`: other redirections around the same words)
    # has the same verdict: weighed once, its part standing for each time it is met
    # (its source is in its key too). What holds of every part holds of `distinct`.
    weighed: dict[bytes, _Part] = {}
    parts: list[_Part] = []
    several = len(line.commands) > 1
    for cf in line.commands:
        key = (cf.key or cf.key_of()) if several else b""  # (set by the gather step)
        known = weighed.get(key)
        if known is not None:
            parts.append(known)
            continue
        part = weighed[key] = _weigh_command(cf, bash_rules, restricting, found, base, inputs)
        if part.allowed is None and whole is not None:
            part.allowed = whole
        _weigh_command_paths(facts, part, found, exact=exact is not None)
        parts.append(part)
    writes = any(fact.write for fact in line.redirects)
    weigh_touched(facts, line.redirects, found, exact=exact is not None)
    # What follows only asks: a line that asks or denies already keeps its first
    # reason, and its hundreds of commands need not be read again for another.
    if exact is None and found.refused is None:
        _weigh_risks(line, found)
    for cf in line.commands if found.refused is None else ():
        if cf.option_matches:
            found.ask(f"`{cf.command.source}`: {'; '.join(cf.option_matches)}")
    if request.arguments.get("network") is True and not facts.network_allowed:
        found.ask(
            "the command asks for network access; the sandbox keeps it off unless you "
            "allow this call ([sandbox] network = true allows every command)"
        )
    distinct = weighed.values()
    if parts:
        read_only_line = all(p.read_only for p in distinct) and not writes and not _risky(line)
    else:
        read_only_line = not line.analysis.expansions and not writes and not _risky(line)
    if request.mode == "plan" and not read_only_line:
        found.deny(
            "plan mode: only read-only commands run (ls, cat, git status, ...); "
            "describe the change instead, or ask the user to switch modes"
        )
    allowed = exact
    if allowed is None and parts and all(part.allowed is not None for part in distinct):
        allowed = most_specific([part.allowed for part in distinct if part.allowed is not None])
    if not read_only_line:
        weigh_untrusted(facts, found, allowed, mutating=True)
    if found.refused is not None:
        return found.refused
    if exact is not None:
        return outcome("allow", f"allowed by {exact.describe()}", exact)
    if not parts:
        if read_only_line:
            return Outcome("allow", "the line runs no command", source="mode")
        if request.mode == "auto":
            return Outcome("allow", "auto mode", source="mode")
        return Outcome(
            "ask",
            f"{request.mode} mode asks: the line runs no command but sets values only known "
            "when it runs",
            source="mode",
        )
    if allowed is not None:
        return _allowed_parts(parts, allowed)
    if request.mode == "auto":
        return Outcome("allow", "auto mode", source="mode")
    uncovered = next(part for part in distinct if part.allowed is None)
    return Outcome(
        "ask",
        f"{request.mode} mode asks before `bash`: `{uncovered.facts.command.source}` "
        "matches no allow rule",
        source="mode",
    )


def _risky(line: LineFacts) -> bool:
    """Whether the line holds a risk its facts do not weigh (asked for last: a line that
    writes is not read-only whatever its hundreds of risks)."""
    return any(risk.kind not in _SOFT_RISKS for risk in line.analysis.risks)


class _Inputs:
    """What a program may read as code: the line's here-documents, and any other
    command's arguments, which reach it through a pipe, a file or a variable
    (``echo 'rm -rf x' | at now``). Spelled out when a command first needs them (one
    that runs code, weighed against a rule): most lines never do, and joining the
    words of hundreds of commands costs a third of what judging them does."""

    __slots__ = ("line", "texts")

    def __init__(self, line: LineFacts) -> None:
        self.line = line
        self.texts: list[str] | None = None

    def __call__(self) -> list[str]:
        if self.texts is None:
            commands = self.line.commands
            self.texts = [
                *self.line.analysis.inputs,
                *(" ".join(cf.command.argv[1:]) for cf in commands if len(commands) > 1),
            ]
        return self.texts


_PATTERN_CHARACTERS = frozenset("*?[")
_BLANKS = " \t\n"
"""What bash separates words and lines by at the ends of a line."""


def _exact_line(sourced: SourcedRule, command: str) -> bool:
    """Whether ``sourced`` allows exactly this line as the user wrote or approved it:
    a kept approval (`session`, `always`: literal), or a rule of the user's (or a
    trusted project's) holding no pattern character. A built-in rule is a pattern
    (``sort *``), never a line someone allowed, and neither is a rule with ``*``:
    its text may equal a line whose glob expands to anything."""
    spec = sourced.rule.spec
    if spec is None or spec.strip(_BLANKS) != command:
        return False
    if sourced.source in ("session", "always"):
        return True
    return sourced.source != "built-in" and _PATTERN_CHARACTERS.isdisjoint(spec)


def _view(cf: CommandFacts, argv: Sequence[str], base: str, *, whole: bool) -> CommandView:
    command = cf.command
    return CommandView(
        argv=argv,
        dynamic=command.dynamic if whole else (),
        open_ended=command.open_ended if whole else False,
        names=frozenset(cf.names) if whole and cf.names else frozenset(),
        unknown=bool(cf.identity) if whole else False,
        base=base,
        paths={fact.word: fact.path for fact in cf.paths},
        configured=frozenset(cf.configured) if whole else frozenset(),
        maybe_configured=frozenset(cf.maybe_configured) if whole else frozenset(),
    )


@functools.lru_cache(maxsize=64)
def _bash_rules(
    rules: tuple[SourcedRule, ...],
) -> tuple[tuple[SourcedRule, ...], tuple[tuple[SourcedRule, CommandPattern], ...]]:
    """The rules about bash, and those that deny or ask with their command patterns
    (a rule set serves many decisions: read once)."""
    about = tuple(s for s in rules if s.rule.names("bash"))
    restricting = [
        (s, command_pattern(s.rule.spec))
        for s in about
        if s.decision != "allow" and s.rule.spec is not None
    ]
    return about, tuple((s, p) for s, p in restricting if p is not None)


def _weigh_command(
    cf: CommandFacts,
    rules: Sequence[SourcedRule],
    restricting: Sequence[tuple[SourcedRule, CommandPattern]],
    found: Findings,
    base: str,
    inputs: Callable[[], Sequence[str]],
) -> _Part:
    """Deny and ask rules against one command (and its wrappers); the allow rule for it."""
    command = cf.command
    reading = read_command(command)
    part = _Part(cf, reading, allowed=allowing_rule(command, rules))
    views = [_view(cf, command.argv, base, whole=True)]
    views += [_view(cf, wrapper, base, whole=False) for wrapper in command.wrappers]
    named: dict[str, str] | None = None
    for sourced, pattern in restricting:
        best = max((restrict_match(pattern, view) for view in views), key=lambda m: m.value)
        if best is Match.YES:
            found.rule(sourced, f"`{command.source}`")
        elif best is Match.MAYBE:
            found.ask(
                f"`{command.source}` may be what {sourced.describe()} names: {_why_maybe(cf)}",
                sourced,
            )
        elif reading.runs_code and pattern.words:
            if named is None:
                named = _programs_named(command, inputs())
            token = named.get(rule_program(pattern)[0])
            if token:
                found.ask(
                    f"`{command.source}` runs code kfd does not know (a program it has no "
                    f"table for, or an interpreter), and its arguments name `{token}`, which "
                    f"{sourced.describe()} restricts",
                    sourced,
                )
            elif (
                not reading.known
                and "/" in command.argv[0]
                and rule_words_given(pattern, command.argv)
            ):
                # `/usr/lib/node_modules/npm/bin/npm-cli.js publish`: a program file kfd
                # does not know by its name, given the words a rule names after its
                # program, may be that program under another name (a name found on PATH
                # is what it says: `pip install` is not `npm install`).
                found.ask(
                    f"`{command.source}` runs a program kfd does not know, with the words "
                    f"{sourced.describe()} names after its program: it may be that program",
                    sourced,
                )
    part.read_only = (
        read_only(command)
        and reading.clean
        and not reading.changes
        and not cf.unknown
        and not cf.option_matches
        and not cf.unpacked
    )
    if part.allowed is not None and part.allowed.source == "built-in" and not part.read_only:
        part.allowed = None  # the built-in rules allow only what is read-only
    return part


def _why_maybe(cf: CommandFacts) -> str:
    if cf.identity:
        return cf.identity
    if cf.maybe_configured:
        return (
            f"the configuration git reads may give it {', '.join(cf.maybe_configured)} "
            "(kfd cannot tell which remote it pushes to, or cannot read that configuration)"
        )
    if cf.command.dynamic or cf.command.open_ended:
        return "some of its words are only known when it runs"
    return (
        "kfd cannot tell how the program reads these words (an option it does not know, "
        "an abbreviation of several, or a subcommand that may be an alias)"
    )


def _programs_named(command: SimpleCommand, inputs: Sequence[str]) -> dict[str, str]:
    """The program names in ``command``'s arguments (and the line's here-documents, which
    it may read as a script), each with the word that names it (``unshare rm -rf x``,
    ``script -qc 'rm -rf x'``, ``python3 - <<< 'os.system("rm -rf x")'``)."""
    words = [w for i, w in enumerate(command.argv) if i > 0 and i not in command.dynamic]
    named: dict[str, str] = {}
    for text in (*words, *inputs):
        for name, token in _programs_in(text).items():
            named.setdefault(name, token)
    return named


@functools.lru_cache(maxsize=1024)
def _programs_in(text: str) -> dict[str, str]:
    """The program names in one word or script, each with the first word that names it.
    Pure, so kept: a 4 KB here-document is read for every rule and command that asks.
    The result is shared: never change it."""
    named: dict[str, str] = {}
    for token in program_words(text):
        name = os.path.basename(token) if "/" in token else token
        named.setdefault(name, token)
        rewritten = canonical(name)
        if rewritten is not None:
            named.setdefault(rewritten[0], token)
    return named


def forget_programs() -> None:
    """Drop the program names kept of words and scripts (`kfd.policy.engine.forget_words`)."""
    _programs_in.cache_clear()


def _weigh_command_paths(facts: CallFacts, part: _Part, found: Findings, *, exact: bool) -> None:
    """Every word that can be a path: a read-only command's words are reads, any other
    command's words may be written; trees, histories and tracked files it reads."""
    cf = part.facts
    access = False if part.read_only else None
    program = cf.command.source if len(cf.command.source) <= 80 else cf.command.argv[0]
    if cf.git_config:
        found.ask(
            f"`{program}`: the repository's own git configuration or hooks make git run a "
            f"program or read what it names ({'; '.join(cf.git_config[:3])}); look at it before "
            "allowing git there"
        )
    weigh_each(facts, cf.paths, found, exact=exact, write=access)
    # What its data names: a patch's targets, an archive's members.
    weigh_touched(facts, cf.unpacked, found, exact=exact)
    for tree in cf.trees:
        weigh_tree(facts, program, tree, found)
    read = git_read(part.reading, lambda: {fact.word: fact.kind for fact in cf.paths})
    if read is None:
        return
    if read.source == "history":
        weigh_history(facts, program, read, found)
    else:
        hits = cf.index_hits
        if hits and read.pathspecs and cf.from_top:
            hits = [h for h in hits if any(_under(h, p) for p in read.pathspecs)]
        weigh_index(facts, program, hits, found)


def _under(path: str, scope: str) -> bool:
    scope = os.path.normpath(scope)
    return scope == "." or path == scope or path.startswith(scope.rstrip("/") + "/")


def _weigh_risks(line: LineFacts, found: Findings) -> None:
    checked = {fact.word for fact in line.redirects}
    for risk in line.analysis.risks:
        if risk.kind not in _SOFT_RISKS:
            found.ask(f"{risk.message}: kfd cannot tell everything this line runs")
        elif risk.kind == _REDIRECT_WRITE and risk.subject not in checked:
            found.ask(f"{risk.message}, a target kfd cannot check")
    for cf in line.commands:
        if cf.unknown:
            found.ask(
                f"`{cf.command.source}` has arguments only known when it runs "
                f"({'; '.join(cf.unknown)})"
            )


_Indexed = tuple[int, SourcedRule, CommandPattern]
"""An allow rule's place in its rule set, the rule, and its words (`_allow_index`)."""


def allowing_rule(command: SimpleCommand, rules: Sequence[SourcedRule]) -> SourcedRule | None:
    """The first rule of ``rules`` allowing this command word for word, if one does."""
    index = _allow_index(tuple(rules))
    argv = command.argv
    first = argv[0] if argv else ""
    none: list[_Indexed] = []
    candidates = [*index.get((first, argv[1]), none)] if len(argv) > 1 else []
    candidates += [*index.get((first,), none), *index.get((), none)]
    for _, sourced, pattern in (
        sorted(candidates, key=_order) if len(candidates) > 1 else candidates
    ):
        if allow_match(pattern, argv, command.dynamic, command.open_ended):
            return sourced
    return None


def _order(indexed: _Indexed) -> int:
    return indexed[0]


@functools.lru_cache(maxsize=64)
def _allow_index(rules: tuple[SourcedRule, ...]) -> dict[tuple[str, ...], list[_Indexed]]:
    """The bash allow rules by their first two words (allow rules match word for word;
    ``git status`` is looked at for ``git status`` only, not for every git command), with
    their place in ``rules``; ``(word,)`` holds the rules of one word, ``()`` those that
    match any command (``bash(*)``)."""
    index: dict[tuple[str, ...], list[_Indexed]] = {}
    for order, sourced in enumerate(rules):
        spec = sourced.rule.spec
        if sourced.decision != "allow" or spec is None or not sourced.rule.names("bash"):
            continue
        # Session and "always" rules are exact commands an approval kept, never patterns.
        kept = sourced.source in ("session", "always")
        pattern = literal_pattern(spec) if kept else command_pattern(spec)
        if pattern is not None:
            index.setdefault(pattern.words[:2], []).append((order, sourced, pattern))
    return index


_READ_ONLY = tuple(
    SourcedRule(rule, "allow", "built-in") for rule in sorted(READ_ONLY_RULES, key=lambda r: r.text)
)


def read_only(command: SimpleCommand) -> bool:
    """Whether the command is one of the built-in read-only ones (``ls``, ``git status``...)."""
    return allowing_rule(command, _READ_ONLY) is not None


def _allowed_parts(parts: Sequence[_Part], allowed: SourcedRule) -> Outcome:
    if len(parts) == 1:
        return outcome("allow", f"allowed by {allowed.describe()}", allowed)
    described = "; ".join(
        f"`{part.facts.command.source}` by {part.allowed.describe()}"
        for part in parts
        if part.allowed is not None
    )
    return outcome("allow", f"every command is allowed: {described}", allowed)
