"""Judging the paths a call touches: rules, the workspace guard, protected files, trees.

Pure (no I/O): paths arrive resolved (`kfd.policy.facts.PathFact`), trees
walked (`TreeFact`). A path is weighed under every name it goes by (as
written and where it really is): a deny or ask rule matches either, an
allow rule only where the path really is.

- ``read(...)`` rules apply to every path read, ``edit(...)`` rules to every
  path written; a command's argument whose use is unknown meets both.
- Writing a protected path (`kfd.policy.defaults.protected`), and reading or
  writing a file with several hard links, asks in every mode.
- Outside the workspace, a read asks and a write is denied unless an allow
  rule names the path (a command's argument outside asks: the sandbox
  refuses the write anyway).
- A directory read whole asks when it holds a path a read rule restricts; a
  repository's history read asks when such a path may be in it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from kfd.policy.defaults import home_configuration, own_directories, protected
from kfd.policy.facts import CallFacts, PathFact, TreeFact
from kfd.policy.globs import literal
from kfd.policy.paths import real_path
from kfd.policy.reading import GitRead
from kfd.policy.rules import PathMatcher, SourcedRule, could_match_under, spec_matcher
from kfd.policy.verdicts import Findings

__all__ = [
    "path_rules",
    "restricted_reads",
    "weigh_each",
    "weigh_history",
    "weigh_index",
    "weigh_path",
    "weigh_paths",
    "weigh_touched",
    "weigh_tree",
]

_WRITE_RULES = frozenset({"edit"})
_READ_RULES = frozenset({"read"})


def weigh_paths(
    facts: CallFacts, paths: Sequence[PathFact], found: Findings, *, exact: bool
) -> SourcedRule | None:
    """Weigh each path (`weigh_path`); the allow rule covering all of them, if one does."""
    allows = [weigh_path(facts, fact, found, exact=exact) for fact in paths]
    if not allows or any(allow is None for allow in allows):
        return None
    return allows[0]


def weigh_each(
    facts: CallFacts, paths: Sequence[PathFact], found: Findings, *, exact: bool, write: bool | None
) -> None:
    """`weigh_path` for each of ``paths``, touched as ``write`` says (a command's words:
    read, or maybe written). A command may name hundreds of paths that nothing
    names (`_unremarkable`): those cost a few lookups each."""
    shared = _shared(facts)
    for fact in paths:
        if _unremarkable(shared, fact, write, exact):
            continue
        if fact.write is not write:  # gathered as None: a copy only for a read
            fact = msgspec.structs.replace(fact, write=write)
        _weigh_path(facts, fact, found, exact=exact, redirect=False)


def _unremarkable(shared: _Shared, fact: PathFact, write: bool | None, exact: bool) -> bool:
    """Whether `weigh_path` would find nothing to say about ``fact`` touched as ``write``
    and return no rule: no path rule names it under either name, it is not
    protected (or only read), has one link, and is in the workspace (or the user
    allowed this very call). What the rules and guards say of each spelling is
    kept (`_said`): a path met again, in this call or an earlier one, costs a
    lookup, and a long ``git add`` names hundreds. Of a path spelled twice (a
    link), what is said of either spelling counts: a guard of the other one only
    sends it the long way, which finds what is there to find."""
    if not (fact.inside or exact) or fact.links > 1:
        return False
    path, real = fact.path, fact.real
    said = shared.known.get(path)
    if said is None:
        said = _said(shared, path)
    if real != path:
        said |= _said(shared, real)
    return not said & _NAMED and (
        write is False
        or not (fact.instruction or said & _GUARDED or (fact.inside and said & _HOME))
    )


_NAMED, _GUARDED, _HOME = 1, 2, 4
"""What `_said` tells of a spelling: a path rule names it; writing it asks wherever
it is (protected, a hooks directory); writing it asks if it is in the workspace
(the home's configuration)."""
_KNOWN_PATHS = 20_000
"""Spellings `_said` remembers per rule set, at the most (then it starts again)."""


def _said(shared: _Shared, path: str) -> int:
    """What the rules and the guards say of ``path`` as one spelling of a path: the
    tests of `_unremarkable` that read nothing but the spelling, kept in
    ``shared.known`` (they are pure, as `PathMatcher` keeps its matches)."""
    said = shared.known.get(path)
    if said is not None:
        return said
    said = _NAMED if shared.quick(path) else 0
    if protected(path, shared.own) is not None or (shared.hooks and _hooks(path, shared.hooks)):
        said |= _GUARDED
    if home_configuration(path, *shared.places) is not None:
        said |= _HOME
    if len(shared.known) >= _KNOWN_PATHS:
        shared.known.clear()
    shared.known[path] = said
    return said


def weigh_path(
    facts: CallFacts, fact: PathFact, found: Findings, *, exact: bool, redirect: bool = False
) -> SourcedRule | None:
    """Path rules, protected paths, hard links and the workspace guard for one path.

    Returns the allow rule covering it, if any. ``exact``: the user allowed this
    very call, which waives the workspace guard (never a deny or a protected
    path). ``redirect``: a shell redirection writes it (outside: denied).
    """
    if _unremarkable(_shared(facts), fact, fact.write, exact):
        return None
    return _weigh_path(facts, fact, found, exact=exact, redirect=redirect)


def _weigh_path(
    facts: CallFacts, fact: PathFact, found: Findings, *, exact: bool, redirect: bool
) -> SourcedRule | None:
    """`weigh_path` the long way, whatever the path (the reference `_unremarkable`
    is tested against)."""
    shell = facts.request.tool == "bash"
    verb = _verb(fact.write)
    deciding = path_rules(facts, fact, fact.write)
    allows = [sourced for sourced in deciding if found.rule(sourced, f"{verb} {fact.word}")]
    allow = allows[0] if allows else None
    changes = fact.write is not False
    own = _shared(facts).own
    real = fact.real if fact.real != fact.path else None  # a second spelling, if any
    if changes and (
        why := protected(fact.path, own)
        or (real is not None and protected(real, own))
        or _leads_here(fact)
        or (fact.inside and _home_configuration(facts, fact))
        or _hooks(fact.real, facts.hooks)
    ):
        found.ask(f"{verb} {fact.word}: {why} always asks")
    if fact.links > 1:  # read or written, its content is also another path's
        found.ask(
            f"{verb} {fact.word}, which has {fact.links} hard links: it may be a file "
            "outside the workspace too"
        )
    if fact.inside or exact or allow is not None:
        return allow
    where = fact.real if fact.word in (fact.real, fact.path) else f"{fact.real} (as {fact.word})"
    if not fact.write:
        found.ask(f"{verb} outside the workspace: {where}")
    elif shell and not redirect:  # the sandbox refuses it anyway; the user may know better
        found.ask(f"writes outside the workspace: {where}")
    else:
        found.deny(
            f"writes outside the workspace: {where}; a rule such as "
            f"edit({fact.real}) in [permissions] allow would allow it"
        )
    return None


def _hooks(real: str, hooks: Sequence[str]) -> str | None:
    """Why writing ``real`` always asks when it is in a directory git runs hooks from."""
    for directory in hooks:
        if real == directory or real.startswith(directory + os.sep):
            return f"a git hooks directory ({directory}: core.hooksPath, git runs what is there)"
    return None


def _home_configuration(facts: CallFacts, fact: PathFact) -> str | None:
    """`home_configuration` of the file as it really is."""
    home, workspace = _shared(facts).places
    return home_configuration(fact.real, home, workspace)


def _leads_here(fact: PathFact) -> str | None:
    if not fact.instruction:
        return None
    return (
        f"the instruction file {fact.instruction} is a link to it (kfd gives it to the "
        "model in every session)"
    )


def weigh_touched(
    facts: CallFacts, paths: Sequence[PathFact], found: Findings, *, exact: bool
) -> None:
    """`weigh_path` for each of ``paths`` (a line's redirections, the files an archive
    names); each one written is like an edit: an ``edit(...)`` allow rule, or the
    ``accept-edits`` and ``auto`` modes, allow it; the default mode asks, ``plan``
    denies. The call's `_Shared` is found once, since a line may write hundreds of
    files (``echo x > out1; echo y > out2; ...``)."""
    shared = _shared(facts)
    mode = facts.request.mode
    refused = False  # (a line refused stays so: not asked again for each of hundreds)
    for fact in paths:
        write = fact.write
        allow = (
            None
            if _unremarkable(shared, fact, write, exact)
            else _weigh_path(facts, fact, found, exact=exact, redirect=bool(write))
        )
        if not write or allow is not None or exact:
            continue
        # What the mode says of a write no rule allows. A line that asks already
        # keeps its first reason: the next is not even spelled (default mode asks
        # about each of the hundreds of files a line may write).
        if mode == "plan":
            found.deny(
                f"plan mode: the command writes {fact.word}; only read-only commands run "
                "(describe the change instead, or ask the user to switch modes)"
            )
        elif mode == "default" and not refused:
            if found.refused is None:
                found.ask(
                    f"the command writes {fact.word}: default mode asks before it writes a file"
                )
            refused = True


def path_rules(facts: CallFacts, fact: PathFact, write: bool | None) -> list[SourcedRule]:
    """The rules about this path: ``read(...)``/``edit(...)`` by access, or the tool's own."""
    families: set[str] = set()
    if write is None or write is False:
        families |= _READ_RULES
    if write is None or write is True:
        families |= _WRITE_RULES
    tool = facts.request.tool
    workspace = facts.request.workspace
    shared = _shared(facts)
    if not shared.quick(fact.path) and (fact.real == fact.path or not shared.quick(fact.real)):
        return []  # no path rule matches either spelling: most paths, most of the time
    matching = []
    for sourced, spec in shared.candidates:
        rule = sourced.rule
        if rule.tool not in families and (tool == "bash" or not rule.names(tool)):
            continue
        matcher = spec_matcher(spec, workspace, facts.home, restricting=sourced.decision != "allow")
        # A path is denied (or asked) under any name, allowed only where it really is.
        if matcher(fact.real) or (sourced.decision != "allow" and matcher(fact.path)):
            matching.append(sourced)
    return matching


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every path of one call is weighed with."""

    quick: PathMatcher
    """All the path rules as one matcher."""
    candidates: list[tuple[SourcedRule, str]]
    """Each path rule, with the specifier it matches."""
    own: tuple[str, ...]
    """kfd's own directories (`kfd.policy.defaults.own_directories`)."""
    places: tuple[str, str]
    """The home directory and the workspace, as they really are."""
    hooks: tuple[str, ...]
    """`CallFacts.hooks`."""
    known: dict[str, int]
    """`_said` of the spellings met, kept for every call with the same rules, places
    and hooks (`_known`)."""


_last_shared: list[tuple[CallFacts, _Shared]] = []


def _shared(facts: CallFacts) -> _Shared:
    """`_Shared` for ``facts``, made once per call: a command may name thousands of
    paths, and hashing the rules (or reading the environment) for each cost more
    than weighing it. The last call's is kept, by identity (``facts`` is frozen)."""
    last = _last_shared[-1] if _last_shared else None
    if last is not None and last[0] is facts:
        return last[1]
    quick, candidates = _path_rules(tuple(facts.rules), facts.request.workspace, facts.home)
    places = (real_path(facts.home), real_path(facts.request.workspace))
    own = own_directories()
    known = _known(quick, own, places, facts.hooks)
    shared = _Shared(quick, candidates, own, places, facts.hooks, known)
    _last_shared[:] = [(facts, shared)]
    return shared


@functools.lru_cache(maxsize=16)
def _known(
    quick: PathMatcher, own: tuple[str, ...], places: tuple[str, str], hooks: tuple[str, ...]
) -> dict[str, int]:
    """Where `_said` keeps what it found, for everything its answer depends on (``quick``
    is one matcher per rule set, by identity: `_path_rules` keeps it)."""
    del quick, own, places, hooks  # the key, nothing more
    return {}


@functools.lru_cache(maxsize=64)
def _path_rules(
    rules: tuple[SourcedRule, ...], workspace: str, home: str
) -> tuple[PathMatcher, list[tuple[SourcedRule, str]]]:
    """The path rules of a rule set, and all of them as one matcher: a quick "no rule
    here" for most paths, most of the time."""
    # A bash rule's specifier is a command, never a path: `path_rules` passes it by
    # for every tool (its tool is no path family, and names no tool but bash), so
    # it is left out here, where its words made a costly pattern of "paths".
    found = [
        (s, literal(s.rule.spec) if s.source in _KEPT else s.rule.spec)  # `src/**`: one odd file
        for s in rules
        if s.rule.spec is not None and s.rule.domain is None and s.rule.tool != "bash"
    ]
    specs = [spec for _, spec in found]
    return PathMatcher(specs, workspace, home, restricting=True), found  # every place


_KEPT = frozenset({"session", "always"})
"""Rules an approval kept: the exact path that was approved, never a pattern."""


def restricted_reads(rules: Sequence[SourcedRule]) -> list[SourcedRule]:
    """The ``read(...)`` rules that deny or ask: what trees and histories are checked for."""
    return [
        sourced
        for sourced in rules
        if sourced.decision != "allow"
        and sourced.rule.tool == "read"
        and sourced.rule.spec is not None
        and sourced.rule.domain is None
    ]


def weigh_tree(facts: CallFacts, program: str, tree: TreeFact, found: Findings) -> None:
    """A directory read whole that holds (or may hold) a restricted path asks."""
    if tree.hits:
        shown = ", ".join(tree.hits[:3])
        found.ask(
            f"`{program}` reads the whole of {tree.root}, which holds {shown}: a read rule "
            "restricts it; name the files it needs instead"
        )
    elif not tree.complete:
        found.ask(
            f"`{program}` reads the whole of {tree.root}, too large for kfd to check for "
            "files a read rule restricts"
        )
    if tree.linked:
        shown = ", ".join(tree.linked[:3])
        found.ask(
            f"`{program}` reads the whole of {tree.root}, which holds {shown}, with other "
            "hard links: a file a read rule restricts may be there under another name"
        )
    if tree.links:
        shown = ", ".join(tree.links[:3])
        found.ask(
            f"`{program}` follows the symbolic links under {tree.root} ({shown}), which may "
            "lead anywhere: name the files it needs, or read them without following links"
        )


def weigh_history(facts: CallFacts, program: str, read: GitRead, found: Findings) -> None:
    """A command printing file contents from the repository's history (``git log -p``,
    ``git show``) asks when a restricted path may be among them: kfd cannot list
    every path a history ever held."""
    workspace = facts.request.workspace
    scopes = read.pathspecs or (".",)
    for sourced in restricted_reads(facts.rules):
        spec = sourced.rule.spec
        assert spec is not None
        for scope in scopes:
            directory = os.path.normpath(os.path.join(workspace, scope))
            if scope in read.files:
                # A file today: its history is its own (renames aside: --follow).
                hit = spec_matcher(spec, workspace, facts.home, restricting=True)(directory)
            else:
                hit = could_match_under(spec, directory, workspace, facts.home)
            if hit:
                what = "the repository" if scope == "." else scope
                found.ask(
                    f"`{program}` prints past contents of files in {what}, which may include "
                    f"a file {sourced.describe()} restricts; limit it to the paths it needs "
                    "(git log -p -- src/)",
                    sourced,
                )
                return


def weigh_index(facts: CallFacts, program: str, hits: list[str] | None, found: Findings) -> None:
    """``git diff`` and ``git grep`` print tracked files: one a read rule restricts asks."""
    if hits is None:
        found.ask(f"`{program}` prints tracked files, and kfd could not read git's index")
    elif hits:
        found.ask(
            f"`{program}` prints tracked files, among them {', '.join(hits[:3])}, which a read "
            "rule restricts"
        )


def _verb(write: bool | None) -> str:
    return {True: "writes", False: "reads", None: "names"}[write]
