"""Facts about a bash line: what it runs (`kfd.policy.shell`) and where its paths are.

Every static argument of every command may be a path, so each is resolved
(symlinks followed) against the workspace and against every directory the
line changes into (``cd``, ``pushd``, ``git -C``): a word naming a file
outside the workspace is seen however the line reaches it. A plain glob
(``*.py``, ``src/*.c``: relative, no ``..``, nothing hidden) is expanded the
way bash would, so each file it names is checked too. Any other word the
analyzer could not pin down (a variable, a brace expansion, ``xargs`` input)
is listed as unknown: the engine asks about it.

Blocking (it stats the file system): call `line_facts` through a thread.
"""

from __future__ import annotations

import glob
import os
import re

from kfd.policy.facts import CommandFacts, LineFacts, PathFact
from kfd.policy.paths import hard_links, inside
from kfd.policy.shell import RiskKind, SimpleCommand, analyze

__all__ = ["MAX_GLOB_MATCHES", "line_facts", "path_fact"]

MAX_GLOB_MATCHES = 2_000
"""A glob matching more files than this is an unknown argument (too many to check)."""

_NUMERIC_PARAMETER = re.compile(r'"?\$\{?[!$?#]\}?"?')
_PLAIN_GLOB = re.compile(r"[A-Za-z0-9_./*?\[\]@+,:%=-]+")
_DEVICES = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2", "/dev/tty"}
)
_SOCKETS = ("/dev/tcp/", "/dev/udp/")
_DIRECTORY_CHANGERS = frozenset({"cd", "pushd"})


def line_facts(command: str, workspace: str) -> LineFacts:
    """Analyze ``command`` and resolve every path it may touch from ``workspace``."""
    analysis = analyze(command)
    root = os.path.realpath(workspace)
    bases = _bases(analysis.commands, workspace)
    commands = [_command_facts(c, bases, root) for c in analysis.commands]
    redirects: list[PathFact] = []
    for redirect in analysis.redirects:
        if redirect.static and _file(redirect.target):
            write = redirect.direction != "read"
            redirects.append(path_fact(redirect.target, workspace, root, write=write))
    named = {fact.word for fact in redirects}
    for risk in analysis.risks:
        # Writes the analyzer found in options (`git diff --output=x`, `find -fprint x`).
        subject = risk.subject
        if risk.kind == RiskKind.REDIRECT_WRITE and subject not in named and _file(subject):
            redirects.append(path_fact(subject, workspace, root, write=True))
            named.add(subject)
    return LineFacts(analysis=analysis, commands=commands, redirects=redirects)


def path_fact(word: str, base: str, root: str, *, write: bool | None = None) -> PathFact:
    """Resolve one path as written, relative to ``base``; ``root`` is the real workspace."""
    path = os.path.normpath(os.path.join(base, word))
    real = os.path.realpath(path)
    return PathFact(
        word=word,
        path=path,
        real=real,
        inside=inside(real, root),
        write=write,
        links=hard_links(real),
    )


def _file(target: str) -> bool:
    """A redirection target that is a file (not a terminal, a null device or a socket)."""
    if not target or "\0" in target:
        return False  # a NUL cuts the name short: the analyzer's risk stands
    return target not in _DEVICES and not target.startswith(_SOCKETS)


def _bases(commands: list[SimpleCommand], workspace: str) -> list[str]:
    """The workspace and every directory the line may run a command in."""
    bases = [workspace]
    for command in commands:
        targets = list(command.chdir)
        if command.argv and command.argv[0] in _DIRECTORY_CHANGERS:
            targets += [
                word
                for index, word in enumerate(command.argv[1:], 1)
                if index not in command.dynamic and not word.startswith("-")
            ]
        for target in targets:
            directory = os.path.normpath(os.path.join(workspace, target))
            if directory not in bases:
                bases.append(directory)
    return bases


def _command_facts(command: SimpleCommand, bases: list[str], root: str) -> CommandFacts:
    paths: dict[str, PathFact] = {}
    unknown: list[str] = []
    for index, word in enumerate(command.argv):
        if index == 0:
            continue  # the program: rules match it, it is not a file the command touches
        reason = command.dynamic.get(index)
        if "\0" in word:  # no program gets it: bash cannot pass a NUL in an argument
            unknown.append(f"{word!r} holds a NUL character")
        elif reason is None:
            for candidate in _candidates(word):
                for base in bases:
                    fact = path_fact(candidate, base, root)
                    paths.setdefault(fact.path, fact)
        elif _NUMERIC_PARAMETER.fullmatch(word):
            continue  # `$!`, `$$`, `$?`, `$#`: a number, never a path
        elif reason == "glob pattern" and _plain_glob(word):
            matched = _expand(word, bases, root)
            if matched is None:
                unknown.append(f"{word} matches more than {MAX_GLOB_MATCHES} files")
            for fact in matched or ():
                paths.setdefault(fact.path, fact)
        else:
            unknown.append(f"{word}: {reason}")
    if command.open_ended:
        unknown.append("more arguments are added when it runs (xargs, find -exec)")
    return CommandFacts(command=command, paths=list(paths.values()), unknown=unknown)


def _candidates(word: str) -> list[str]:
    """The paths a static word may name: itself, or the value of ``--opt=value``/``of=x``."""
    if not word or word == "-":
        return []
    name, equals, value = word.partition("=")
    if word.startswith("-"):
        return [value] if equals and value else []
    if equals and value and "/" not in name:
        return [word, value]
    return [word]


def _plain_glob(word: str) -> bool:
    """A glob that can only name visible files under the directory it runs in."""
    if not _PLAIN_GLOB.fullmatch(word) or word.startswith("/"):
        return False
    return not any(part == ".." or part.startswith(".") for part in word.split("/") if part)


def _expand(pattern: str, bases: list[str], root: str) -> list[PathFact] | None:
    facts: list[PathFact] = []
    for base in bases:
        for index, match in enumerate(glob.iglob(pattern, root_dir=base)):
            if index >= MAX_GLOB_MATCHES:
                return None
            facts.append(path_fact(match, base, root))
    return facts
