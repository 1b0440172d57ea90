"""What one command does with its words: the facts of a command kfd can derive by
reading it, with no I/O.

Both halves of a bash decision use it: the gather step (`kfd.policy.line_facts`)
to know which words to resolve and which directories to walk, the decision
(`kfd.policy.judge_bash`) to know what the command reads, writes and runs.
The knowledge comes from `kfd.policy.programs`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kfd.policy.programs.argv import Parsed, parse_argv
from kfd.policy.programs.builtins import builtin_for
from kfd.policy.programs.identity import INTERPRETERS
from kfd.policy.programs.spec import ProgramSpec, spec_for
from kfd.policy.programs.wrappers import wrapper_for
from kfd.policy.shell import SimpleCommand

__all__ = [
    "GitRead",
    "Reading",
    "candidates",
    "git_read",
    "program_words",
    "read_command",
    "script_words",
]

_GLUED_LETTERS = 12
"""How many letters of a short-option cluster may come before a glued value (``-xzf.env``)."""
_WRITES = frozenset({"writes", "runs", "script", "edits"})
_SCRIPTISH = re.compile(r"[\s;&|()<>`'\"$={},]+")
# What cannot be part of a program's name: anything that separates it from the
# code around it, in a shell or another language (`!rm` in vim, `'rm'` in Python).
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_./+-]+")
_HEXISH = re.compile(r"[0-9a-fA-F]{4,64}")
_GIT_NO_HISTORY = frozenset({"no-index"})
_GIT_NOT_WORKTREE = frozenset({"cached", "staged", "merge-base", "no-index"})


@dataclass(frozen=True, slots=True)
class Reading:
    """A command read by kfd's knowledge of its program."""

    program: str
    """The name it was called by, without its directory."""
    spec: ProgramSpec | None
    parsed: Parsed | None
    known: bool
    """kfd knows what the program does with its words (a table, a builtin, a wrapper)."""

    @property
    def current(self) -> ProgramSpec | None:
        return self.parsed.current if self.parsed is not None else self.spec

    @property
    def effects(self) -> frozenset[str]:
        return self.parsed.effects() if self.parsed is not None else frozenset()

    @property
    def traits(self) -> frozenset[str]:
        current = self.current
        return current.traits if current is not None else frozenset()

    @property
    def text(self) -> bool:
        """Its operands are text, not paths (``echo``, ``test``)."""
        return "text" in self.traits

    @property
    def runs_code(self) -> bool:
        """It may run code kfd does not read: a program it does not know, or an
        interpreter (`kfd.policy.programs.identity.INTERPRETERS`: ``sed`` runs
        shell code with its ``e`` command and reads files with ``R``)."""
        return not self.known or self.program in INTERPRETERS

    @property
    def reads_trees(self) -> bool:
        """Given a directory, it may read the contents of the files in it."""
        return "tree" in self.traits or "tree" in self.effects or not self.known

    @property
    def follows_links(self) -> bool:
        """In a tree it reads, it follows symbolic links to what they point to (``grep -R``):
        a link may lead anywhere. A program kfd does not know may."""
        return "follows" in self.traits or "follows" in self.effects or not self.known

    @property
    def changes(self) -> bool:
        """Its options make it write a file, or run something, beyond its usual work."""
        return bool(_WRITES & self.effects)

    @property
    def clean(self) -> bool:
        """Every option is one kfd knows (any, for a program that only prints text or
        tests: ``test -f x``). Words only known at run time are the gather step's
        business (`kfd.policy.facts.CommandFacts.unknown`)."""
        parsed = self.parsed
        if parsed is None:
            return False
        return self.text or not (parsed.unknown or parsed.ambiguous or parsed.open)

    def path_operands(self) -> list[str]:
        """The operands that may be paths (a grep pattern is not one)."""
        parsed = self.parsed
        if parsed is None or self.text:
            return []
        operands = [o for o in parsed.operands if o is not None]
        spec = self.current
        pattern = spec.pattern_operand if spec is not None else None
        if pattern is not None and operands and not pattern & set(parsed.options):
            operands = operands[1:]
        return operands

    def written_scopes(self) -> tuple[str, ...]:
        """Whose files it writes without naming them (`ProgramSpec.scopes`: ``git config
        user.name x`` the repository's, ``--global`` the user's): none when an option
        names the file (a write as any), or when it only reads. A form kfd cannot read
        (an unknown option, a word known only at run time) writes."""
        parsed = self.parsed
        spec = self.current
        if parsed is None or spec is None or not spec.scopes:
            return ()
        given = set(parsed.options)
        if any("writes" in spec.effect(name) for name in given):
            return ()
        operands = parsed.operands
        if not (parsed.uncertain or given & spec.writes_with) and (
            given & spec.reads_with
            or (operands and operands[0] in spec.reads_with)
            or (len(operands) == 1 and "." in (operands[0] or ""))
        ):
            return ()
        chosen = [spec.scopes[name] for name in given if name and name in spec.scopes]
        return tuple(dict.fromkeys(chosen or [spec.scopes.get("", "")]))

    def default_tree(self) -> str:
        """The directory it reads when it is given no path to read (``grep -r foo``)."""
        spec = self.current
        if spec is None or not spec.default_tree or not (self.reads_trees or self.follows_links):
            return ""
        return "" if self.path_operands() else spec.default_tree


def read_command(command: SimpleCommand) -> Reading:
    """Read ``command`` by what kfd knows of its program."""
    return _read(tuple(command.argv), frozenset(command.dynamic), command.open_ended)


@functools.lru_cache(maxsize=4096)
def _read(argv: tuple[str, ...], dynamic: frozenset[int], open_ended: bool) -> Reading:
    program = os.path.basename(argv[0]) if argv else ""
    spec = spec_for(program)
    known = spec is not None or builtin_for(program) is not None or wrapper_for(program) is not None
    if spec is None:
        return Reading(program, None, None, known)
    return Reading(program, spec, parse_argv(program, argv, dynamic, open_ended), known)


def _all_plain(words: Sequence[str]) -> bool:
    """Whether `_add_candidates` reads each of ``words`` as itself alone: none starts
    with ``-`` or ``@``, none holds ``=`` or ``:``. (Substring tests on the words
    joined by NULs: a 4 KB line in a few microseconds, where a regular expression
    took a hundred.)"""
    joined = "\0".join(words)
    return not (
        joined.startswith(("-", "@"))
        or "\0-" in joined
        or "\0@" in joined
        or "=" in joined
        or ":" in joined
    )


def forget() -> None:
    """Drop the readings kept of commands and words (`kfd.policy.engine.forget_words`)."""
    _read.cache_clear()
    _word.cache_clear()


def candidates(command: SimpleCommand, reading: Reading, inputs: Sequence[str] = ()) -> list[str]:
    """Every word of ``command`` that may be a path, each as the program may read it.

    A word itself (``-d/../.env`` too), the value of ``--opt=value`` and
    ``key=value``, a value glued to a short option (``-f.env``), ``@file``
    (curl reads it), git's ``REV:path``, the option values the program's
    table knows of, and the words of its wrappers (a lock file, ``-C dir``).
    For a program kfd does not know (or an interpreter), the words of any script
    it may run: in
    its arguments (``x -c 'cat .env'``) or in the line's here-documents
    (``python3 - <<EOF``), given as ``inputs``.
    """
    found: dict[str, None] = {}
    git = reading.program == "git"
    glued = reading.parsed is None or bool(_unknown(reading))
    text, runs_code, dynamic = reading.text, reading.runs_code, command.dynamic
    words = command.argv[1:]
    if not (text or runs_code or dynamic) and _all_plain(words):
        found = dict.fromkeys(words)  # each word itself (a `git add` of a thousand)
        words = []
    for index, word in enumerate(words, 1):
        if dynamic and index in dynamic:
            continue
        if text and not word.startswith("-"):
            continue
        if word[:1] not in "-@" and "=" not in word and ":" not in word:
            found.setdefault(word, None)  # `_add_candidates`, inline: words by the thousand
        else:
            _add_candidates(found, word, git=git, glued=glued)
        if runs_code and _SCRIPTISH.search(word):
            # A program kfd does not know, or an interpreter, may run a word as code
            # (`x -c 'cat .env'`, `sed 'R .env'`): every word in it may be a path.
            for token in script_words(word):
                _add_candidates(found, token, git=False, glued=False)
    if runs_code:
        for script in inputs:
            for token in dict.fromkeys(script_words(script)):  # a script repeats its words
                _add_candidates(found, token, git=False, glued=False)
    if reading.parsed is not None:
        for _, value in reading.parsed.values:
            for candidate in _word(value, git=git, glued=False):
                found.setdefault(candidate, None)
    for word in (*command.wrapper_words, *command.chdir):
        found.setdefault(word, None)
    return [c for c in found if c and c != "-" and "\0" not in c]


def script_words(text: str) -> list[str]:
    """The words of a script in any language, roughly: what is between blanks, quotes,
    brackets and shell operators (to look for paths and program names in it)."""
    return [token for token in _SCRIPTISH.split(text) if token]


def program_words(text: str) -> list[str]:
    """The distinct words of ``text`` that may name a program a script runs, in any language:
    cut at every character no program name holds (``vim -c '!rm -rf x'``,
    ``gdb -ex 'shell rm'``), with a value glued to a short option
    (``man -Hrm``) and leading ``+`` (``vim +!rm``) taken off too."""
    found: dict[str, None] = {}
    # Each distinct word once, in order (a 4 KB here-document repeats most of its words).
    for token in dict.fromkeys(_NOT_IN_NAME.split(text)):
        if not token:
            continue
        found[token] = None
        if token[0] == "+":
            bare = token.lstrip("+")
            if bare:
                found.setdefault(bare, None)
        if len(token) > 2 and token[0] == "-" and token[1] != "-":
            found.setdefault(token[2:], None)
    return list(found)


def _unknown(reading: Reading) -> list[str]:
    return reading.parsed.unknown if reading.parsed is not None else []


def _add_candidates(found: dict[str, None], word: str, *, git: bool, glued: bool) -> None:
    """Add what ``word`` may name (`_word`) to ``found``; a plain word names itself
    (words come by the thousand: a long ``git add``, a here-document)."""
    if word[:1] not in "-@" and "=" not in word and ":" not in word:
        found.setdefault(word, None)
    else:
        for candidate in _word(word, git=git, glued=glued):
            found.setdefault(candidate, None)


@functools.lru_cache(maxsize=8192)
def _word(word: str, *, git: bool, glued: bool) -> tuple[str, ...]:
    if not word or word in ("-", "--"):
        return ()
    out = [word]
    _, equals, value = word.partition("=")
    if equals and value:
        out.append(value)
        if value.startswith("@"):
            out.append(value[1:])
    if word.startswith("@") and len(word) > 1:
        out.append(word[1:])
    if glued and word.startswith("-") and not word.startswith("--"):
        letters = 1
        while letters < min(len(word), _GLUED_LETTERS + 1) and word[letters].isalnum():
            out.append(word[letters + 1 :])
            letters += 1
    if git and ":" in word:
        # `HEAD:.env`, `:0:.env` (a stage of the index), `-L1,5:file`.
        tail = word.split(":", 1)[1]
        if tail[:1].isdigit() and tail[1:2] == ":":
            tail = tail[2:]
        out.append(tail.lstrip("/") if tail.startswith("/") and word.startswith(":/") else tail)
        out.append(word.rsplit(":", 1)[1])
    return tuple(c for c in out if c)


@dataclass(frozen=True, slots=True)
class GitRead:
    """A git command that prints file contents: from the index, or from history."""

    source: str
    """``index`` (tracked files as they are: ``git diff``, ``git grep``) or ``history``."""
    pathspecs: tuple[str, ...]
    """What it is limited to (empty: the whole repository)."""
    files: frozenset[str] = frozenset()
    """The pathspecs that name a file now (not a directory whose past may hold others)."""


_PATHSPEC_MAGIC = re.compile(r"[*?\[\\]|\A:")
"""What makes a pathspec a pattern: git's glob characters (a backslash escapes the
next one: ``.en\\v`` matches ``.env``) or leading magic (``:!src``)."""
_GIT_WHOLE_COMMITS = frozenset({"full-diff"})
"""Options printing every file of the commits a pathspec selects, not only its own."""


def _scope(pathspec: str) -> str:
    """The directory a git pathspec stays in: itself, unless it is a pattern or has
    magic (``'*.env'``, ``':!src'``, ``':(icase).ENV'``), which may name any path, or
    is empty (the root of a tree: ``HEAD:``)."""
    return "." if not pathspec or _PATHSPEC_MAGIC.search(pathspec) else pathspec


def git_read(reading: Reading, kinds_of: Callable[[], Mapping[str, str]]) -> GitRead | None:
    """Whether a git command prints file contents, and from where (None: it does not).

    ``kinds_of()`` says what each word names now (``file``, ``dir``, ``missing``): git,
    too, takes an operand for a path when it exists and for a revision otherwise.
    Asked only for a command that may print contents (never for a ``git add`` of a
    thousand paths, whose mapping would cost more than the rest of this).
    """
    parsed = reading.parsed
    if reading.program != "git" or parsed is None or not parsed.path:
        return None
    spec = parsed.current
    effects = parsed.effects()
    traits = spec.traits
    options = parsed.effective_options()
    if options & _GIT_NO_HISTORY:
        return None
    content = "content" in effects or "content" in traits or "index" in traits
    # An option kfd cannot read may be one that prints patches (`git reflog show -p`,
    # `git stash list -p` take log's options): unsure, it may print content.
    content = content or bool(parsed.unknown or parsed.ambiguous)
    # Any operand with a `:`, looked for in all of them at once (`filter` drops the
    # words only known at run time): a `git add` may have a thousand.
    if not content and ":" not in "\0".join(filter(None, parsed.operands)):
        return None  # nothing printed, and no blob named (`git add` of a thousand paths)
    kinds = kinds_of()
    cut = parsed.after_dashdash if parsed.after_dashdash is not None else len(parsed.operands)
    before = [o for o in parsed.operands[:cut] if o is not None]
    after = [o for o in parsed.operands[cut:] if o is not None]
    patterns = spec.pattern_operand if spec is not None else None
    if "index" in traits and before and not (patterns and patterns & options):
        before = before[1:]  # git grep PATTERN [REV...] [-- PATH...] (no -e, no -f)
    paths = [_scope(o) for o in before if kinds.get(o, "missing") != "missing"]
    paths += [_scope(o) for o in after]
    revisions = [o for o in before if kinds.get(o, "missing") == "missing"]
    blobs = any(_HEXISH.fullmatch(r) or ":" in r for r in revisions)
    named = [r.split(":", 1)[1] for r in revisions if ":" in r and not r.startswith(":/")]
    if named and len(named) == len(revisions) and not paths:
        # `git show HEAD:README.md`: the blobs it names, and nothing else; a tree
        # (`HEAD:`, `HEAD:src`) holds whatever is under it.
        scopes = tuple(_scope(n) for n in named)
        return GitRead("history", scopes, frozenset(n for n in named if kinds.get(n) == "file"))
    if "no-content" in effects and "content" not in effects and not blobs:
        content = False
    if not content:
        return None
    if parsed.dynamic:
        return GitRead("history", ())  # a word only known at run time may be any revision
    worktree = parsed.path[0] == "diff" and not (options & _GIT_NOT_WORKTREE)
    if named:
        # A pathspec after `REV:dir` is relative to that tree (`git grep x HEAD:secrets
        # -- db.txt` reads secrets/db.txt): each tree named is read whole.
        paths = [_scope(n) for n in named]
    if options & _GIT_WHOLE_COMMITS or any(_HEXISH.fullmatch(r) for r in revisions):
        # `git log -p --full-diff -- app.py`: the commits' every file. An object id may
        # name a blob or a tree, which no pathspec limits (`git show <blob> -- app.py`
        # prints the blob): any path.
        paths = []
    files = frozenset(p for p in paths if kinds.get(p) == "file")
    if "follow" in options:
        files = frozenset()  # --follow goes through renames: any path may be among them
    if ("index" in traits or worktree) and not revisions:
        return GitRead("index", tuple(paths), files)
    return GitRead("history", tuple(paths), files)
