"""Read a command line the way its program does: options normalised, operands in order.

`parse` turns the words after a program's name into a `Parsed`: subcommands
resolved through their aliases (``docker rm`` is ``docker container rm``),
every option under its canonical name whatever its spelling (``-R``, ``-r``,
``--recursive``, ``--rec``, ``-rf``...), the values options take (attached
with ``=``, glued to a short option, or the next word), and the operands in
order. What the program would read differently from us is never guessed
away: an option the table lacks, an abbreviation that fits several options,
a word only known at run time, an unknown subcommand (a git alias), each
leaves a mark (`Parsed.uncertain`), and a rule that may match then asks.

Pure: no I/O. The knowledge comes from `kfd.policy.programs.spec`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple, cast, overload

from kfd.policy.programs.spec import OptionSpec, ProgramSpec, canonical_value, spec_for

__all__ = ["NUMBER", "Arg", "Parsed", "parse"]

NUMBER = "<number>"
"""The canonical name of ``-<digits>`` (``head -5``)."""


class Arg(NamedTuple):
    """One word of a command line: its text, and whether that text is what runs.
    (A tuple: commands of a thousand words make as many, fast.)"""

    text: str
    static: bool = True


@dataclass(slots=True)
class Parsed:
    """A command line read the way its program reads it."""

    spec: ProgramSpec
    path: list[str] = field(default_factory=list)
    """The canonical subcommand path (``["container", "rm"]``)."""
    options: dict[str, list[str]] = field(default_factory=dict)
    """Canonical option name to its values (``""`` for an option without one)."""
    operands: list[str | None] = field(default_factory=list)
    """In order; None for a word only known at run time (it may be several words, or none)."""
    positions: list[int] = field(default_factory=list)
    """Where each operand is among the words parsed."""
    values: list[tuple[str, str]] = field(default_factory=list)
    """(canonical option, value) of every option value, in order: paths to check."""
    unknown: list[str] = field(default_factory=list)
    """Options the program's table lacks, as written."""
    ambiguous: dict[str, frozenset[str]] = field(default_factory=dict)
    """An abbreviation that fits several options: the canonical names it may be."""
    dynamic: bool = False
    """A word is only known when the command runs."""
    open: bool = False
    """The subcommand is not one kfd knows (an alias, a plug-in): it may be anything."""
    after_dashdash: int | None = None
    """The index in ``operands`` where ``--`` ended the options, if it did."""
    command: list[Arg] | None = None
    """The command the program runs from its own words (``docker run IMAGE CMD``)."""
    _memo: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    """Answers computed once a parse is complete (a parse is read many times)."""

    @property
    def uncertain(self) -> bool:
        """Whether the program may read this line otherwise than we did."""
        return bool(self.unknown or self.ambiguous or self.dynamic or self.open)

    @property
    def current(self) -> ProgramSpec:
        """The spec of the innermost subcommand reached."""
        found = self._memo.get("current")
        if isinstance(found, ProgramSpec):
            return found
        spec = self.spec
        for name in self.path:
            spec = spec.commands[name]
        self._memo["current"] = spec
        return spec

    def effective_options(self) -> frozenset[str]:
        """Every option given, with what they imply (``cp -a``: ``recursive`` too)."""
        found = self._memo.get("effective")
        if isinstance(found, frozenset):
            return found
        spec = self.current
        names: set[str] = set()
        pending = [
            *self.options,
            *(f"{n}={canonical_value(spec, n, v)}" for n, vs in self.options.items() for v in vs),
        ]
        while pending:
            name = pending.pop()
            if name in names:
                continue
            names.add(name)
            pending.extend(spec.implies.get(name, ()))
        if spec.plus_operand and any(o and o.startswith("+") for o in self.operands):
            names.add(spec.plus_operand)
        if spec.colon_operand and any(o and o.lstrip("+").startswith(":") for o in self.operands):
            names.add(spec.colon_operand)
        effective = frozenset(n for n in names if "=" not in n)
        self._memo["effective"] = effective
        return effective

    def effects(self) -> frozenset[str]:
        """What the options given make the program do (`ProgramSpec.effects`)."""
        memo = self._memo.get("effects")
        if isinstance(memo, frozenset):
            return memo
        spec = self.current
        found: set[str] = set()
        for name, values in self.options.items():
            found |= spec.effect(name)
            for value in values:
                found |= spec.effect(f"{name}={canonical_value(spec, name, value)}")
        for name in self.effective_options():
            found |= spec.effect(name)
        effects = frozenset(found)
        self._memo["effects"] = effects
        return effects

    def add(self, option: OptionSpec | str, value: str = "", *, valued: bool = False) -> None:
        """Record an option (and its value)."""
        name = option if isinstance(option, str) else option.name
        self._memo.clear()
        self.options.setdefault(name, []).append(value)
        if valued:
            self.values.append((name, value))


def parse(spec: ProgramSpec, words: Sequence[Arg]) -> Parsed:
    """Read ``words`` (the command line after the program's name) as ``spec`` says."""
    parsed = Parsed(spec)
    if spec.style == "find":
        _find(spec, words, parsed)
    elif spec.style == "dd":
        _dd(spec, words, parsed)
    else:
        if spec.style == "tar" and words and words[0].static and words[0].text[:1] not in "-":
            words = _unbundle(spec, words)
        _options(spec, words, parsed)
    return parsed


@functools.lru_cache(maxsize=4096)
def parse_argv(
    program: str, argv: tuple[str, ...], dynamic: frozenset[int], open_ended: bool
) -> Parsed | None:
    """``argv[1:]`` read as the program kfd knows as ``program`` reads it (None if it
    knows none), ``dynamic`` the indexes of words only known at run time (as written in
    ``argv``), ``open_ended`` for words appended at run time. Kept: a decision reads
    each command's words while analysing its line, while gathering its paths and while
    matching rules, and a long ``git add`` has hundreds. The result is shared: never
    change it."""
    spec = spec_for(program)
    if spec is None:
        return None
    if not dynamic and not open_ended:
        return parse(spec, _Known(argv[1:]))
    statics = (i not in dynamic for i in range(1, len(argv))) if dynamic else repeat(True)
    args = args_of(argv[1:], statics)
    if open_ended:
        args.append(Arg("", static=False))
    return parse(spec, args)


class _Known(Sequence[Arg]):
    """Words all known before the command runs (most commands'), each made an `Arg`
    only when read: the plain operands of a long command are taken as texts
    (`_plain_run`), and making hundreds of `Arg` s cost more than reading them."""

    __slots__ = ("texts",)

    def __init__(self, texts: tuple[str, ...]) -> None:
        self.texts = texts

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> Arg: ...
    @overload
    def __getitem__(self, index: slice) -> list[Arg]: ...
    def __getitem__(self, index: int | slice) -> Arg | list[Arg]:
        if isinstance(index, slice):
            return [Arg(text) for text in self.texts[index]]
        return Arg(self.texts[index])


def args_of(texts: Iterable[str], statics: Iterable[bool]) -> list[Arg]:
    """`Arg` of each text, built without the NamedTuple's constructor (a Python function:
    a third of a 400-word command's analysis)."""
    pairs = zip(texts, statics, strict=False)  # `statics` may be endless (`repeat`)
    return cast("list[Arg]", list(map(tuple.__new__, repeat(Arg), pairs)))


def _options(spec: ProgramSpec, words: Sequence[Arg], parsed: Parsed) -> None:
    current = spec
    operands_here = 0
    ended = False
    i = 0
    count = len(words)
    while i < count:
        word = words[i]
        position = i
        i += 1
        text, static = word
        if ended and current.command_after_dashdash and parsed.command is None:
            parsed.command = list(words[position:])
        if not static or ended or text == "-" or text[:1] != "-":
            # `commands` last: a lazy table's length is a call, and operands come by the
            # thousand (`git add …`).
            if static and operands_here == 0 and not ended and current.commands:
                parsed.open = parsed.open or text in current.opaque
                found = _subcommand(current, text, parsed)
                if found is not None:
                    current = found
                    continue
                if current.open_commands:
                    parsed.open = True
            if not static:
                parsed.dynamic = True
            if current.command_after is not None and operands_here == current.command_after:
                parsed.command = list(words[position:])
            parsed.operands.append(text if static else None)
            parsed.positions.append(position)
            operands_here += 1
            if current.style == "plain":
                ended = True
            elif current.command_after is None and i < count:
                # The plain operands that follow (`git add a b c …`), taken at once:
                # up to the next word that is not one.
                end, texts = _plain_run(words, i)
                parsed.operands += texts
                parsed.positions += range(i, end)
                operands_here += end - i
                i = end
            continue
        if text == "--":
            ended = True
            parsed.after_dashdash = len(parsed.operands)
            if current.command_after_dashdash:
                parsed.command = list(words[i:])
            continue
        if current.numeric and text[1:].isdigit():
            parsed.add(NUMBER, text[1:])
        elif text.startswith("--"):
            i = _long(current, text, words, i, parsed)
        else:
            i = _short(current, text, words, i, parsed)


def _plain_run(words: Sequence[Arg], start: int) -> tuple[int, Sequence[str]]:
    """Where the run of plain operands from ``start`` ends, and their texts: at the
    first word known only at run time or starting with ``-`` (the caller reads it,
    an option or ``-``), else at the end."""
    if isinstance(words, _Known):
        # By searches of the texts joined (no word holds a NUL: bash cannot pass
        # one), not a look at each of hundreds of words.
        texts = words.texts
        joined = "\0" + "\0".join(texts[start:])
        if joined.count("\0") == len(texts) - start:
            at = joined.find("\0-")
            end = len(texts) if at == -1 else start + joined.count("\0", 0, at)
            return end, texts[start:end]
    for end, (text, static) in enumerate(words[start:], start):
        if not static or text[:1] == "-":
            return end, [word[0] for word in words[start:end]]
    return len(words), [word[0] for word in words[start:]]


def _subcommand(spec: ProgramSpec, text: str, parsed: Parsed) -> ProgramSpec | None:
    """Step into the subcommand ``text`` names (through aliases and prefixes), if one."""
    path: tuple[str, ...] | None = None
    if text in spec.aliases:
        path = spec.aliases[text]
    elif text in spec.commands:
        path = (text,)
    elif spec.abbreviate_commands and text:
        names = {n for n in (*spec.commands, *spec.aliases) if n.startswith(text)}
        targets = {spec.aliases.get(n, (n,)) for n in names}
        if len(targets) == 1:
            path = targets.pop()
    if path is None:
        return None
    current = spec
    for name in path:
        found = current.commands.get(name)
        if found is None:
            return None
        current = found
    parsed.path.extend(path)
    return current


def _long(spec: ProgramSpec, text: str, words: Sequence[Arg], i: int, parsed: Parsed) -> int:
    name, eq, attached = text.partition("=")
    option = spec.option(name)
    if option is None and spec.negations and name.startswith("--no-"):
        positive = spec.option("--" + name[5:])
        if positive is not None:
            parsed.add("no-" + positive.name)
            return i
    if option is None and spec.style in ("gnu", "git", "nopt", "tar", "next") and len(name) > 2:
        fits = {spec.options[s].name: spec.options[s] for s in _prefixed(spec, name)}
        if len(fits) == 1:
            option = next(iter(fits.values()))
        elif len(fits) > 1:
            parsed.ambiguous[text] = frozenset(fits)
            # The program refuses an ambiguous abbreviation, but had it taken a value
            # the next word would be no operand: never let it shift what follows.
            if not eq and any(o.arity == "=" for o in fits.values()) and i < len(words):
                parsed.values.append(("", words[i].text))
                return i + 1
            return i
    if option is None:
        parsed.unknown.append(text)
        return i
    if eq:
        parsed.add(option, attached, valued=True)
    elif option.arity == "=" and i < len(words):
        parsed.dynamic = parsed.dynamic or not words[i].static
        parsed.add(option, words[i].text, valued=True)
        return i + 1
    else:
        parsed.add(option)
    return i


def _prefixed(spec: ProgramSpec, name: str) -> list[str]:
    """The long spellings ``name`` abbreviates (it is no exact spelling)."""
    return [s for s in spec.long_spellings if s.startswith(name)]


def _short(spec: ProgramSpec, text: str, words: Sequence[Arg], i: int, parsed: Parsed) -> int:
    whole = spec.option(text) if len(text) > 2 else None
    if whole is not None:
        # A spelling of several letters the table lists as one option (zip -TT CMD,
        # strace -ff): the program reads it whole, not as a cluster.
        if whole.arity == "=" and i < len(words):
            parsed.dynamic = parsed.dynamic or not words[i].static
            parsed.add(whole, words[i].text, valued=True)
            return i + 1
        parsed.add(whole)
        return i
    letters = text[1:]
    for j, letter in enumerate(letters):
        option = spec.option("-" + letter)
        if option is None:
            # The rest of the cluster may be this unknown option's value: stop here.
            parsed.unknown.append("-" + letters[j:])
            return i
        rest = letters[j + 1 :]
        if spec.style == "pflag" and rest.startswith("="):
            parsed.add(option, rest[1:], valued=True)
            return i
        if option.arity == "":
            parsed.add(option)
            continue
        if spec.style == "next":
            # tree's own parser: each option of a cluster that takes a value takes the
            # next word (`-Lo 1 FILE` is `-L 1 -o FILE`); the letters after it are
            # options still.
            if i < len(words):
                parsed.dynamic = parsed.dynamic or not words[i].static
                parsed.add(option, words[i].text, valued=True)
                i += 1
            else:
                parsed.add(option)
            continue
        if rest or option.arity == "=?":
            parsed.add(option, rest, valued=bool(rest))
            return i
        if i < len(words):
            parsed.dynamic = parsed.dynamic or not words[i].static
            parsed.add(option, words[i].text, valued=True)
            return i + 1
        parsed.add(option)
        return i
    return i


def _unbundle(spec: ProgramSpec, words: Sequence[Arg]) -> list[Arg]:
    """tar's old style: ``tar czf out.tgz dir`` is ``tar -c -z -f out.tgz dir``."""
    first, rest = words[0].text, list(words[1:])
    out: list[Arg] = []
    for letter in first:
        option = spec.option("-" + letter)
        out.append(Arg("-" + letter))
        if option is not None and option.arity == "=" and rest:
            out.append(rest.pop(0))
    return [*out, *rest]


_FIND_SCRIPTS = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_FIND_OPERATORS = frozenset({"(", ")", "!", ",", "-a", "-o", "-and", "-or", "-not"})


def _find(spec: ProgramSpec, words: Sequence[Arg], parsed: Parsed) -> None:
    """find [-H -L -P -D opts -Olevel] [starting-point...] [expression]."""
    i = 0
    while i < len(words) and words[i].static and words[i].text in ("-H", "-L", "-P"):
        parsed.add(words[i].text[1:])
        i += 1
    while i < len(words):
        word = words[i]
        if word.static and (
            (word.text.startswith("-") and len(word.text) > 1) or word.text in "(!"
        ):
            break
        parsed.dynamic = parsed.dynamic or not word.static
        parsed.operands.append(word.text if word.static else None)
        parsed.positions.append(i)
        i += 1
    while i < len(words):
        word = words[i]
        i += 1
        if not word.static:
            parsed.dynamic = True
            continue
        if word.text in _FIND_OPERATORS:
            continue
        option = spec.option(word.text)
        if option is None:
            parsed.unknown.append(word.text)
            continue
        if word.text in _FIND_SCRIPTS:
            end = i
            while end < len(words) and words[end].text not in (";", "+"):
                end += 1
            parsed.add(option, " ".join(w.text for w in words[i:end]))
            i = end + 1
        elif option.arity == "=" and i < len(words):
            parsed.dynamic = parsed.dynamic or not words[i].static
            parsed.add(option, words[i].text, valued=True)
            i += 1
        else:
            parsed.add(option)


def _dd(spec: ProgramSpec, words: Sequence[Arg], parsed: Parsed) -> None:
    """dd's ``operand=value`` words are its options (``if=``, ``of=``...)."""
    for word in words:
        if not word.static:
            parsed.dynamic = True
            parsed.operands.append(None)
            continue
        key, eq, value = word.text.partition("=")
        option = spec.option(key) if eq else None
        if option is not None:
            parsed.add(option, value, valued=True)
        elif word.text.startswith("--"):
            _long(spec, word.text, (), 0, parsed)
        else:
            parsed.unknown.append(word.text)
