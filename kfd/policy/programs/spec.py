"""What kfd knows about a program's command line, as typed values.

The knowledge itself is data (`kfd/policy/programs/data/`): option tables
generated from each program's own ``--help`` (``options-*.json``, written by
``scripts/program_options.py`` and checked against the installed programs by
``tests/unit/test_program_knowledge.py``), and what the options mean, written
by hand (``meaning.toml``, whose header lists its keys). This module turns
both into `ProgramSpec` values once, on first use.

An option line of the data is its spellings, then its arity:
``"-t --target-directory ="`` (a required value), ``"--interactive =?"`` (an
optional value, attached only), ``"-f --force"`` (no value). The canonical
name of an option is its first long spelling without dashes, else its first
short one (``"-i"`` is ``i``): rules and commands are compared by it.
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

__all__ = ["Arity", "OptionSpec", "ProgramSpec", "Style", "known_programs", "spec_for"]

Arity = Literal["", "=", "=?"]
"""No value, a required value, an optional value (attached only)."""

Style = Literal["gnu", "git", "pflag", "nopt", "find", "dd", "tar", "plain", "next"]
"""How a program reads its command line.

``gnu``: getopt_long (clusters, ``--name=value``, unique prefixes of long
names, options after operands). ``git``: git's parse-options (the same, plus
``-<number>``). ``pflag``: Go's pflag/cobra (no prefixes, ``-n=value``,
boolean flags take ``=true``). ``nopt``: npm's option parser (prefixes).
``find``: find's expressions. ``dd``: ``key=value`` operands. ``tar``: GNU
with tar's old bundled first word (``tar czf out.tgz dir``). ``plain``:
options up to the first operand, then operands only (wrappers, builtins).
``next``: tree's own parser (GNU long options, but each option of a cluster
that takes a value takes the next word: ``-Lo 1 FILE`` is ``-L 1 -o FILE``).
"""

_DATA = "kfd.policy.programs.data"


DataFormat = Literal["patch", "git-patch", "tar", "zip"]
"""How a data file names the files a program writes from it (`kfd.policy.data_names`):
a diff for ``patch``, a diff or mailbox for ``git apply``/``git am`` (paths from
the repository's top), an archive."""


@dataclass(frozen=True, slots=True)
class Unpacking:
    """A program that writes the files its data names (``patch``, ``tar x``, ``unzip``):
    where the data comes from and how its names become paths (``unpacks`` in
    ``meaning.toml``). Options are canonical names."""

    format: DataFormat
    data: frozenset[str] = frozenset()
    """Options whose value is the data file (``-i``, ``-f``); ``-`` is standard input."""
    operands: Literal["all", "first", "second", "none"] = "all"
    """Which operands are data files (none given, nor by an option: standard input)."""
    directory: frozenset[str] = frozenset()
    """Options naming the directory it writes in (``-d``, ``-C``, ``--directory``)."""
    strip: frozenset[str] = frozenset()
    """Options giving how many leading components of a name it drops."""
    flatten: frozenset[str] = frozenset()
    """Options making it drop every directory of a name (``unzip -j``)."""
    when: frozenset[str] = frozenset()
    """Options without one of which it writes nothing (``tar``: ``-x``); empty: always."""
    reads_with: frozenset[str] = frozenset()
    """Options that make it only read (``git apply --check``), unless one of `writes_with`."""
    writes_with: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option of one program."""

    name: str
    """Canonical: the first long spelling without dashes, else the first short letter."""
    spellings: tuple[str, ...]
    arity: Arity = ""


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    """A program (or one of its subcommands) and its options."""

    name: str
    style: Style = "gnu"
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    """By spelling (``-f``, ``--force``; ``of`` for dd)."""
    long_spellings: tuple[str, ...] = ()
    """Every ``--long`` spelling, sorted, for unique-prefix look-ups."""
    commands: Mapping[str, ProgramSpec] = field(default_factory=dict)
    """Subcommands by name (``git push``, ``docker container``)."""
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Another spelling of a subcommand path: ``rm`` is ``container rm``."""
    abbreviate_commands: bool = False
    """A unique prefix of a subcommand names it (npm: ``npm inst`` is ``npm install``)."""
    open_commands: bool = False
    """An unknown subcommand may still run (git aliases and ``git-*`` programs,
    docker plug-ins, package.json scripts): it may be anything."""
    opaque: frozenset[str] = frozenset()
    """Subcommands that may do what others do in ways kfd does not follow."""
    negations: bool = False
    """``--no-OPTION`` is OPTION negated."""
    numeric: bool = False
    """``-<digits>`` is an option (``head -5``, ``git log -3``)."""
    implies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """An option (or ``option=value``) that means others too (``cp -a`` is recursive)."""
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """An option's values by each spelling the program takes for them
    (``--interactive=no`` is ``never``), for `canonical_value`."""
    effects: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """What an option (or ``option=value``) makes the program do, by canonical
    name: see the header of ``meaning.toml``."""
    traits: frozenset[str] = frozenset()
    """What the program does whatever its options (``tree``, ``content``, ``text``...)."""
    colon_operand: str = ""
    """An operand starting with ``:`` (after any ``+``) means this option (``git push
    origin :main``: delete)."""
    plus_operand: str = ""
    """An operand starting with ``+`` means this option (``git push origin +main``: force)."""
    command_after: int | None = None
    """The operands after this many are a command the program runs (``docker run IMAGE CMD``)."""
    command_after_dashdash: bool = False
    """The words after ``--`` are a command the program runs (``kubectl exec POD -- CMD``)."""
    pattern_operand: frozenset[str] | None = None
    """Its first operand is a pattern, not a path, unless one of these options gives it."""
    default_tree: str = ""
    scopes: Mapping[str, str] = field(default_factory=dict)
    """Whose file it writes when no option names one, by the option choosing it (``""``:
    none chosen): ``git config --global`` writes the user's configuration."""
    reads_with: frozenset[str] = frozenset()
    """Options, or first operands, that make a program with `scopes` only read."""
    writes_with: frozenset[str] = frozenset()
    """Options that make a program with `scopes` write whatever its operands."""
    """The directory it reads when given no path (``grep -r``, ``rg``: ``.``)."""
    unpacks: Unpacking | None = None
    """It writes the files a data file names (`Unpacking`)."""
    source: str = ""
    """Where the option table comes from (``rm (GNU coreutils) 9.1 --help``)."""

    def option(self, spelling: str) -> OptionSpec | None:
        """The option spelled exactly ``spelling``, if the program has it."""
        return self.options.get(spelling)

    def effect(self, name: str) -> frozenset[str]:
        """The effects of the option (or ``option=value``) named ``name``."""
        return self.effects.get(name, frozenset())


@functools.cache
def parse_option(line: str) -> OptionSpec:
    """An option from its data line (``"-t --target-directory ="``)."""
    words = line.split()
    arity: Arity = ""
    if words and words[-1] in ("=", "=?"):
        arity = "=" if words.pop() == "=" else "=?"
    if not words or not all(len(w) > 1 or w.isalnum() for w in words):
        raise ValueError(f"bad option line {line!r}")
    longs = [w for w in words if w.startswith("--")]
    name = (longs[0] if longs else words[0]).lstrip("-")
    return OptionSpec(name, tuple(words), arity)


def _program(
    name: str,
    table: Mapping[str, Any],
    meaning: Mapping[str, Any],
    inherited: Sequence[str] = (),
    parent_style: str = "gnu",
    inherited_effects: Mapping[str, Sequence[str]] | None = None,
) -> ProgramSpec:
    """One program from its generated table and its meaning; ``inherited``: option
    lines (and their effects) of the program its subcommands accept too (kubectl's
    global flags, npm's configuration)."""
    lines = [*table.get("options", ()), *meaning.get("options", ()), *inherited]
    style = meaning.get("style", table.get("style", parent_style))
    anywhere = meaning.get("global_anywhere", table.get("global_anywhere"))
    shared = lines if anywhere else []
    effects: dict[str, list[str]] = {k: list(v) for k, v in (inherited_effects or {}).items()}
    for effect, names in meaning.get("effects", {}).items():
        effects.setdefault(effect, []).extend(names)
    shared_effects = effects if anywhere else {}
    sub_tables: dict[str, Any] = dict(table.get("commands", {}))
    sub_meanings: dict[str, Any] = dict(meaning.get("commands", {}))
    for sub in meaning.get("subcommands", ()):
        sub_tables.setdefault(sub, {})

    def build(sub: str) -> ProgramSpec:
        sub_table = dict(sub_tables.get(sub, {}))
        sub_table["options"] = _like(sub, sub_tables, sub_meanings)
        sub_meaning = dict(sub_meanings.get(sub, {}))
        if printing := _content_like(sub, sub_meanings):
            own = dict(sub_meaning.get("effects", {}))
            own["content"] = [*own.get("content", ()), *printing]
            sub_meaning["effects"] = own
        if anywhere:  # what the shared options mean holds in every subcommand too
            for key in ("implies", "values"):
                sub_meaning[key] = {**meaning.get(key, {}), **sub_meaning.get(key, {})}
        return _program(f"{name} {sub}", sub_table, sub_meaning, shared, style, shared_effects)

    commands = _Lazy(sorted(set(sub_tables) | set(sub_meanings)), build)
    options: dict[str, OptionSpec] = {}
    for line in lines:
        option = parse_option(line)
        for spelling in option.spellings:
            options.setdefault(spelling, option)
    aliases = {
        alias: tuple(target.split())
        for alias, target in {**table.get("aliases", {}), **meaning.get("aliases", {})}.items()
    }
    return ProgramSpec(
        name=name,
        style=style,
        options=options,
        long_spellings=tuple(sorted(s for s in options if s.startswith("--"))),
        commands=commands,
        aliases=aliases,
        abbreviate_commands=bool(meaning.get("abbreviate_commands", False)),
        open_commands=bool(meaning.get("open_commands", False)),
        opaque=frozenset(meaning.get("opaque", ())),
        negations=bool(meaning.get("negations", style in ("git", "nopt"))),
        numeric=bool(meaning.get("numeric", False)),
        implies={k: tuple(v) for k, v in meaning.get("implies", {}).items()},
        values={
            option: {spelling: value for value, names in table.items() for spelling in names}
            for option, table in meaning.get("values", {}).items()
        },
        effects=_effects(effects),
        traits=frozenset(meaning.get("traits", ())),
        plus_operand=str(meaning.get("plus_operand", "")),
        colon_operand=str(meaning.get("colon_operand", "")),
        command_after=meaning.get("command_after"),
        command_after_dashdash=bool(meaning.get("command_after_dashdash", False)),
        pattern_operand=(
            frozenset(meaning["pattern_operand"]) if "pattern_operand" in meaning else None
        ),
        default_tree=str(meaning.get("default_tree", "")),
        scopes=dict(meaning.get("scopes", {})),
        reads_with=frozenset(meaning.get("reads_with", ())),
        writes_with=frozenset(meaning.get("writes_with", ())),
        unpacks=_unpacking(meaning.get("unpacks")),
        source=str(meaning.get("source", table.get("source", ""))),
    )


def _unpacking(table: Mapping[str, Any] | None) -> Unpacking | None:
    """`Unpacking` from its ``meaning.toml`` table (lists of option names)."""
    if table is None:
        return None
    sets = {key: frozenset(value) for key, value in table.items() if isinstance(value, list)}
    return Unpacking(table["format"], operands=table.get("operands", "all"), **sets)


class _Lazy(Mapping[str, "ProgramSpec"]):
    """Subcommands built on first use: git has 140, kubectl's carry its global flags."""

    def __init__(self, names: Sequence[str], build: Callable[[str], ProgramSpec]) -> None:
        self._names = frozenset(names)
        self._build = build
        self._built: dict[str, ProgramSpec] = {}

    def __getitem__(self, name: str) -> ProgramSpec:
        spec = self._built.get(name)
        if spec is None:
            if name not in self._names:
                raise KeyError(name)
            spec = self._built[name] = self._build(name)
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


def _like(
    name: str,
    tables: Mapping[str, Any],
    meanings: Mapping[str, Any],
    seen: frozenset[str] = frozenset(),
) -> list[str]:
    """The option lines of a subcommand's table, with those of the siblings it is
    ``options_like`` (``git show`` reads ``git log``'s, which reads ``git diff``'s)."""
    lines = list(tables.get(name, {}).get("options", ()))
    for sibling in meanings.get(name, {}).get("options_like", ()):
        if sibling not in seen:
            lines += _like(sibling, tables, meanings, seen | {name})
            lines += meanings.get(sibling, {}).get("options", ())
    return lines


def _content_like(
    name: str, meanings: Mapping[str, Any], seen: frozenset[str] = frozenset()
) -> list[str]:
    """The options that print content in the siblings a subcommand is ``options_like``:
    an option that prints what files held (``--check``, ``-p``) does so in every
    command that takes it (``git log --check`` printed history lines of ``.env``
    while ``git diff --check`` asked: log's list was written by hand)."""
    found: list[str] = []
    for sibling in meanings.get(name, {}).get("options_like", ()):
        if sibling not in seen:
            found += meanings.get(sibling, {}).get("effects", {}).get("content", ())
            found += _content_like(sibling, meanings, seen | {name})
    return found


def _effects(table: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """``{effect: [option, ...]}`` in the data, ``{option: {effect, ...}}`` here."""
    by_option: dict[str, set[str]] = {}
    for effect, names in table.items():
        for name in names:
            by_option.setdefault(name, set()).add(effect)
    return {name: frozenset(effects) for name, effects in by_option.items()}


def _read(name: str) -> str:
    return resources.files(_DATA).joinpath(name).read_text(encoding="utf-8")


@functools.cache
def _knowledge() -> _Lazy:
    """Every program kfd knows, each built from the data files on first use."""
    tables: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files(_DATA).iterdir(), key=lambda e: e.name):
        if entry.name.startswith("options-") and entry.name.endswith(".json"):
            tables.update(json.loads(_read(entry.name)))
    meanings: dict[str, Any] = tomllib.loads(_read("meaning.toml"))
    names = {name: name for name in set(tables) | set(meanings)}
    for name, meaning in meanings.items():
        for alias in meaning.get("also", ()):
            names[alias] = name
    programs: dict[str, ProgramSpec] = {}

    def build(name: str) -> ProgramSpec:
        real = names[name]
        if real not in programs:
            programs[real] = _program(real, tables.get(real, {}), meanings.get(real, {}))
        return programs[real]

    return _Lazy(sorted(names), build)


def spec_for(program: str) -> ProgramSpec | None:
    """What kfd knows about ``program`` (a bare name: ``rm``, ``git``), or None."""
    return _knowledge().get(program)


def known_programs() -> frozenset[str]:
    """Every program name kfd has a spec for."""
    return frozenset(_knowledge())


def canonical_value(spec: ProgramSpec, option: str, value: str) -> str:
    """``value`` of ``option`` as the program reads it: its `ProgramSpec.values` spelling,
    or a prefix of spellings that all mean one value (GNU ``argmatch``: ``--interactive=n``
    is ``never``, as are ``no`` and ``none``); else as given."""
    spellings = spec.values.get(option)
    if not spellings or not value:
        return value
    exact = spellings.get(value)
    if exact is not None:
        return exact
    meant = {canonical for spelling, canonical in spellings.items() if spelling.startswith(value)}
    return meant.pop() if len(meant) == 1 else value
