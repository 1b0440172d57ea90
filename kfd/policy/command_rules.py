"""How a command rule (the text inside ``bash(…)``) meets a command.

Specifiers are split into words like a shell would (`shlex`); a final
unquoted ``*`` means "these words, then any further arguments or none".

An *allow* rule matches a command only word for word (`allow_match`): a word
the analyser could not pin down never matches, so reordering words can lose
an allow, never gain one.

A *deny* or *ask* rule matches by meaning (`restrict_match`): the rule and the
command are both read the way the program reads its command line
(`kfd.policy.programs`): ``rm -rf`` is ``rm -R -f``, ``rm --recursive
--force``, ``rm --rec --for``, ``/bin/rm -fr``; ``git push --force`` is ``git
push -f`` and ``git push origin +main``; ``docker rm`` is ``docker container
remove``. Options in the command beyond the rule's never undo a match; an
unquoted ``*`` in the middle of a rule stands for any words (``find * -delete``).
Where the command may mean something the rule names but kfd cannot tell (a
word only known at run time, an option the table lacks, an abbreviation that
fits several options, a git alias, a program whose identity is unknown) the
answer is `Match.MAYBE`, and the engine asks. Loose where a match
restricts, strict where it permits.

Pure: no I/O. What the engine knows about where the command's words point
comes in a `CommandView`.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import os
import re
import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import msgspec

from kfd.policy.programs.argv import Arg, Parsed, parse, parse_argv
from kfd.policy.programs.identity import canonical
from kfd.policy.programs.spec import spec_for

__all__ = [
    "WILDCARD",
    "CommandPattern",
    "CommandView",
    "Match",
    "allow_match",
    "command_pattern",
    "literal_pattern",
    "matches_rule",
    "restrict_match",
    "rule_for",
    "rule_program",
    "rule_words_given",
]

WILDCARD = "\0*"
"""An unquoted ``*`` in the middle of a restricting rule: any words, or none."""


class CommandPattern(msgspec.Struct, frozen=True):
    """A command specifier split into words."""

    words: tuple[str, ...]
    prefix: bool
    """It ended in `` *``: any further arguments (or none) match."""
    wildcards: frozenset[int] = frozenset()
    """Indexes of unquoted ``*`` words before the end (`WILDCARD` for restricting rules)."""


@functools.lru_cache(maxsize=4096)
def command_pattern(spec: str) -> CommandPattern | None:
    """The words of a command specifier; None if it does not split (unbalanced quotes)."""
    stripped = spec.strip()
    prefix = stripped == "*" or (stripped.endswith("*") and stripped[-2:-1].isspace())
    if prefix:
        stripped = stripped[:-1]
    try:
        words = tuple(shlex.split(stripped))
        raw = shlex.split(stripped, posix=False)
    except ValueError:
        return None
    if not words and not prefix:
        return None
    wildcards = frozenset(
        i for i, (word, written) in enumerate(zip(words, raw, strict=False)) if written == "*"
    )
    return CommandPattern(words, prefix, wildcards if len(raw) == len(words) else frozenset())


@functools.lru_cache(maxsize=4096)
def literal_pattern(spec: str) -> CommandPattern | None:
    """The words of a command an approval allowed, every one literal: ``bash(./x *)``
    kept from approving ``./x *`` (a glob) allows that command again, never
    ``./x --anything``; ``bash(*)`` allows a command named ``*``, not every one."""
    try:
        words = tuple(shlex.split(spec.strip()))
    except ValueError:
        return None
    return CommandPattern(words, prefix=False) if words else None


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


def matches_rule(rule_spec: str, argv: list[str]) -> bool:
    """Whether an allow rule's specifier covers one static argv (see `allow_match`)."""
    pattern = command_pattern(rule_spec)
    return pattern is not None and allow_match(pattern, argv, (), open_ended=False)


def rule_for(argv: list[str]) -> str:
    """The rule specifier that allows exactly this argv and nothing else.

    This is what "allow for this session" records: the words quoted with
    `shlex.join`, never a wildcard (a final `*` argument comes out quoted).
    """
    if not argv:
        raise ValueError("a rule needs at least one word")
    return shlex.join(argv)


class Match(Enum):
    """How a restricting (deny or ask) rule meets a command."""

    NO = 0
    MAYBE = 1
    """kfd cannot tell: a word only known at run time, an unknown option or program..."""
    YES = 2


@dataclass(slots=True)
class CommandView:
    """A command as the matcher sees it: its words, and what the gather step found."""

    argv: Sequence[str]
    dynamic: Collection[int] = ()
    open_ended: bool = False
    names: frozenset[str] = frozenset()
    """Every program name it may be (``./g`` that links to git: ``{"g", "git"}``)."""
    unknown: bool = False
    """Its program file is in the workspace, or not there yet: it may be any program."""
    base: str = ""
    """The directory its relative paths are resolved from."""
    paths: Mapping[str, str] = field(default_factory=dict)
    """Word to the absolute path it names (for comparing ``/`` with ``//`` or ``../..``)."""
    configured: frozenset[str] = frozenset()
    """Options it has by the configuration its program reads (``git push`` to a remote
    with ``mirror = true``: ``mirror``), as if given."""
    maybe_configured: frozenset[str] = frozenset()
    """Options the configuration may give it: a rule naming one may match."""
    _parsed: dict[str, Parsed] = field(default_factory=dict)

    def program_names(self) -> frozenset[str]:
        return self.names or frozenset({os.path.basename(self.argv[0])})

    def parsed(self, program: str) -> Parsed | None:
        """The command read as ``program`` reads its command line (None: unknown program)."""
        if program not in self._parsed:
            argv, dynamic = tuple(self.argv), frozenset(self.dynamic)
            parsed = parse_argv(program, argv, dynamic, self.open_ended)
            if parsed is None:
                return None
            self._parsed[program] = parsed
        return self._parsed[program]


def rule_program(pattern: CommandPattern) -> tuple[str, ...]:
    """The program words of a rule, canonical (``git-push`` is ``("git", "push")``)."""
    if not pattern.words:
        return ()
    first = pattern.words[0]
    return canonical(first) or (os.path.basename(first),)


@functools.lru_cache(maxsize=1024)
def _rule_meaning(pattern: CommandPattern) -> tuple[str, Parsed | None, tuple[str, ...]]:
    """(program, the rule read as its program reads it, the rule's words after it)."""
    program, *more = rule_program(pattern)
    rest = (*more, *pattern.words[1:])
    spec = spec_for(program)
    if spec is None:
        return program, None, rest
    offset = len(more) - 1
    args = [Arg(WILDCARD if (i - offset) in pattern.wildcards else w) for i, w in enumerate(rest)]
    return program, parse(spec, args), rest


def restrict_match(pattern: CommandPattern, command: CommandView) -> Match:
    """Whether a deny or ask rule applies to this command, by meaning (module docstring)."""
    if not pattern.words:  # `*`
        return Match.YES
    if not command.argv:
        return Match.NO
    if 0 in command.dynamic:
        return Match.MAYBE
    program, rule, rest = _rule_meaning(pattern)
    if program in command.program_names():
        found = _against(program, rule, rest, pattern, command)
        if found is not Match.NO or not command.unknown:
            return found
    if command.unknown and rest:
        # It may be any program (a copy of git under another name): MAYBE when its
        # words read as the rule's do. A rule naming only a program says nothing
        # its words could show.
        found = _against(program, rule, rest, pattern, command, opaque=False)
        return Match.MAYBE if found is not Match.NO else Match.NO
    return Match.NO


def _against(
    program: str,
    rule: Parsed | None,
    rest: tuple[str, ...],
    pattern: CommandPattern,
    command: CommandView,
    *,
    opaque: bool = True,
) -> Match:
    """How the rule meets the command read as ``program``; ``opaque``: an unknown
    subcommand may be anything (false for a program only guessed to be ``program``)."""
    parsed = command.parsed(program)
    if rule is None or parsed is None:
        return _loose(rest, pattern, command)
    if parsed.open and opaque and (rule.path or rule.operands or rule.options):
        return Match.MAYBE  # an alias, a plug-in: it may be what the rule names
    positions = _positional(parsed, rule, pattern, command, loose=opaque)
    if positions is Match.NO:
        return Match.NO
    options = _options(rule, parsed, command, loose=opaque)
    if options is Match.NO:
        return Match.NO
    return Match(min(positions.value, options.value))


def _positional(
    parsed: Parsed, rule: Parsed, pattern: CommandPattern, command: CommandView, *, loose: bool
) -> Match:
    wanted: list[str | None] = [*rule.path, *rule.operands]
    given: list[str | None] = [*parsed.path, *parsed.operands]
    equal = functools.partial(_same_operand, command)
    found = _sequence(wanted, given, pattern.prefix, equal)
    if found is Match.NO and loose and (parsed.unknown or parsed.ambiguous):
        # An unknown option may have taken a word as its value: any may be missing.
        loose = _subsequence(wanted, [g for g in given if g is not None], equal)
        return Match.MAYBE if loose else Match.NO
    return found


def _sequence(
    wanted: Sequence[str | None],
    given: Sequence[str | None],
    prefix: bool,
    equal: functools.partial[bool],
) -> Match:
    """Whether ``given`` is ``wanted`` (or starts with it, for a prefix rule).

    ``WILDCARD`` in ``wanted`` stands for any words; None in ``given`` for words
    only known at run time (any, or none): those make a match MAYBE.
    """
    if not any(g is None for g in given):
        return Match.YES if _fits(wanted, list(given), prefix, equal) else Match.NO
    known = list(given[: given.index(None)])
    if prefix and _fits(wanted, known, True, equal) and WILDCARD not in wanted:
        return Match.YES  # what comes after the known words cannot undo the match
    flexible = [WILDCARD if g is None else g for g in given]
    if _fits(wanted, flexible, prefix, equal, loose=True):
        return Match.MAYBE
    return Match.NO


def _fits(
    wanted: Sequence[str | None],
    given: Sequence[str | None],
    prefix: bool,
    equal: functools.partial[bool],
    *,
    loose: bool = False,
) -> bool:
    """Glob-like matching of word sequences (`WILDCARD` on either side when ``loose``)."""

    @functools.cache
    def fit(i: int, j: int) -> bool:
        if i == len(wanted):
            return prefix or j == len(given) or (loose and all(g == WILDCARD for g in given[j:]))
        if wanted[i] == WILDCARD:
            return fit(i + 1, j) or (j < len(given) and fit(i, j + 1))
        if j == len(given):
            return False
        if loose and given[j] == WILDCARD:
            return fit(i, j + 1) or fit(i + 1, j) or fit(i + 1, j + 1)
        return equal(wanted[i], given[j]) and fit(i + 1, j + 1)

    return fit(0, 0)


def rule_words_given(pattern: CommandPattern, argv: Sequence[str]) -> bool:
    """Whether the rule's words after its program (``publish`` of ``npm publish *``;
    options and wildcards aside) are all among ``argv``'s arguments, in order."""
    wanted = [w for w in (*rule_program(pattern)[1:], *pattern.words[1:]) if w[:1] not in "-*"]
    return bool(wanted) and _subsequence(wanted, argv[1:], operator.eq)


def _subsequence(
    wanted: Sequence[str | None],
    given: Sequence[str | None],
    equal: Callable[[str | None, str | None], bool],
) -> bool:
    position = 0
    for word in wanted:
        if word == WILDCARD:
            continue
        while position < len(given) and not equal(word, given[position]):
            position += 1
        if position == len(given):
            return False
        position += 1
    return True


def _same_operand(command: CommandView, rule_word: str | None, word: str | None) -> bool:
    """Rule and command operands are the same: equal, the same octal number (``777``,
    ``0777``), or the same path (``/`` and ``//``, ``build`` and ``./build/``)."""
    if rule_word is None or word is None:
        return False
    if rule_word == word:
        return True
    if rule_word.isdigit() and set(rule_word) <= set("01234567"):
        wanted = int(rule_word, 8)
        if word.isdigit() and set(word) <= set("01234567"):
            if wanted and _sets_modes(command):
                # A mode granting at least the rule's bits is it (1777 is 777 and the
                # sticky bit), as a symbolic mode is read below.
                return int(word, 8) & wanted == wanted
            return int(word, 8) == wanted
        granted = _symbolic_mode(word) if wanted and _sets_modes(command) else None
        if granted is not None:  # chmod a+rwx is chmod 777 spelled in symbols
            return granted & wanted == wanted
    if "*" in rule_word:
        # A `*` inside a word of a deny or ask rule (`cp * /etc/*`, `dd of=/dev/*`)
        # stands for any text there, paths compared as paths (`//etc/./x`).
        if fnmatch.fnmatchcase(word, rule_word):
            return True
        if not _pathlike(rule_word) or not _pathlike(word):
            return False
        mine = command.paths.get(word) or _absolute(word, command.base)
        return fnmatch.fnmatchcase(mine, _absolute(rule_word, command.base))
    if not _pathlike(rule_word) or not _pathlike(word):
        return False
    mine = command.paths.get(word) or _absolute(word, command.base)
    return _absolute(rule_word, command.base) == mine


# An action's permissions: octal digits (GNU: `=777`), a "who" to copy (`go=u`), or
# letters; the copy comes before the letters, which could match empty before it.
_MODE_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[0-7]+|[ugo]|[rwxXst]*))+)")
_MODE_ACTION = re.compile(r"([-+=])([0-7]+|[ugo]|[rwxXst]*)")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_PERMS = {"r": 0o444, "w": 0o222, "x": 0o111, "X": 0o111, "s": 0o6000, "t": 0o1000}


def _symbolic_mode(word: str) -> int | None:
    """The mode bits a symbolic chmod mode sets starting from none (``a+rwx``: 0o777),
    or None if ``word`` is not one. No "who" counts as everyone: the umask that
    narrows it is not known when deciding."""
    bits = 0
    for clause in word.split(","):
        found = _MODE_CLAUSE.fullmatch(clause)
        if found is None:
            return None
        who = 0
        for letter in found.group(1) or "a":
            who |= 0o7777 if letter == "a" else _WHO[letter]
        for op, perms in _MODE_ACTION.findall(found.group(2)):
            mask = int(perms, 8) if perms[:1].isdigit() else 0
            for letter in perms if not mask else "":
                mask |= _PERMS.get(letter, 0o777 if letter in "ugo" else 0)
            if op == "=":
                bits &= ~who
            bits = bits & ~(mask & who) if op == "-" else bits | (mask & who)
    return bits


_MODE_PROGRAMS = frozenset({"chmod", "mkdir", "install"})
"""Programs whose numbers are file modes, read by what they grant."""


def _sets_modes(command: CommandView) -> bool:
    program = os.path.basename(command.argv[0]) if command.argv else ""
    return program in _MODE_PROGRAMS or not _MODE_PROGRAMS.isdisjoint(command.names)


def _pathlike(word: str) -> bool:
    return "/" in word or word in (".", "..") or not word.startswith("-")


def _absolute(word: str, base: str) -> str:
    path = os.path.normpath(os.path.join(base or "/", word))
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _options(rule: Parsed, parsed: Parsed, command: CommandView, *, loose: bool) -> Match:
    """The rule's options (with their values, if it gives any) are among the command's;
    ``loose``: an option kfd cannot read may be one of them."""
    implies = parsed.current.implies
    configured = _implied(implies, command.configured)
    have = parsed.effective_options() | configured
    maybe = _implied(implies, command.maybe_configured)
    result = Match.YES
    for name, values in rule.options.items():
        if name in have and all(_has_value(parsed, name, v, command) for v in values if v):
            continue
        if not any(values) and name in implies and have.issuperset(implies[name]):
            continue  # the rule's `git branch -D` is the command's `-d -f` spelled out
        if name in have:
            result = Match.MAYBE if parsed.uncertain else Match.NO
        elif (
            name in maybe
            or any(name in candidates for candidates in parsed.ambiguous.values())
            or parsed.dynamic
            or (loose and (parsed.unknown or parsed.open))
        ):
            result = Match.MAYBE
        else:
            return Match.NO
        if result is Match.NO:
            return result
    for implied in rule.effective_options() - set(rule.options):
        if implied not in have and not parsed.uncertain:
            return Match.NO
    return result


def _implied(implies: Mapping[str, Sequence[str]], names: Collection[str]) -> frozenset[str]:
    """``names`` with every option they imply (``mirror``: ``force`` too)."""
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(implies.get(name, ()))
    return frozenset(found)


def _has_value(parsed: Parsed, name: str, value: str, command: CommandView) -> bool:
    return any(_same_operand(command, value, given) for given in parsed.options.get(name, ()))


def _loose(rest: tuple[str, ...], pattern: CommandPattern, command: CommandView) -> Match:
    """A program kfd has no table for: options as a set (clusters split), operands in order.

    Without knowing which options take values, a rule's words found in order
    among the command's (but not exactly) may match: MAYBE.
    """
    rule_positional, rule_options = _split_words(rest, pattern)
    dynamic = set(command.dynamic)
    words = [w if i not in dynamic else None for i, w in enumerate(command.argv)][1:]
    if command.open_ended:
        words.append(None)
    known = [w for w in words if w is not None]
    _, options = _split_words(tuple(known), None)
    equal = functools.partial(_same_operand, command)
    exact = _sequence(rule_positional, [w for w in _positional_words(words)], pattern.prefix, equal)
    if exact is not Match.NO and rule_options <= options:
        return exact
    if _subsequence(rule_positional, known, equal) and (
        rule_options <= options or not rule_options <= set(known)
    ):
        return Match.MAYBE
    return Match.NO


def _positional_words(words: list[str | None]) -> list[str | None]:
    out: list[str | None] = []
    ended = False
    for word in words:
        if word is None or ended or not word.startswith("-") or word == "-":
            out.append(word)
        elif word == "--":
            ended = True
    return out


def _split_words(
    words: Sequence[str], pattern: CommandPattern | None
) -> tuple[list[str | None], frozenset[str]]:
    """(positional words, option words) with short clusters split (``-rf``: ``-r``, ``-f``)."""
    positional: list[str | None] = []
    options: set[str] = set()
    ended = False
    offset = len(pattern.words) - len(words) if pattern is not None else 0
    for index, word in enumerate(words):
        if pattern is not None and index + offset in pattern.wildcards:
            positional.append(WILDCARD)
        elif ended or not word.startswith("-") or word == "-":
            positional.append(word)
        elif word == "--":
            ended = True
        elif word[1:].isalpha() and not word.startswith("--"):
            options.update(f"-{letter}" for letter in word[1:])
        else:
            options.add(word)
    return positional, frozenset(options)
