"""Facts about a bash line: what it runs (`kfd.policy.shell`), and what its words name.

The I/O half of a bash decision. Every word that can be a path
(`kfd.policy.reading.candidates`) is resolved, symlinks followed, from the
workspace and from every directory the line changes into (``cd``, ``pushd``,
``git -C``, ``env -C``): a word naming a file outside the workspace, or a
file a rule restricts, is seen however the line reaches it. A glob is
expanded the way bash would (dotfiles only where the pattern names them), so
each file it names is checked too. A directory a command reads whole
(``grep -r``, ``cp -r``, ``tar c``, an unknown program's operand) is walked
for paths the read rules restrict. A command's program is looked at when its
name does not say what runs (``./g``, a copy of git in the workspace). The
files git tracks are read from its index for ``git diff`` and ``git grep``.
Anything that cannot be pinned down (a variable, ``xargs`` input, a glob
matching too much) is listed as unknown: the engine asks about it.

Blocking (it stats the file system): call `line_facts` through a thread.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from collections.abc import Mapping, Sequence

import msgspec

from kfd.policy import word_paths
from kfd.policy.entries import Entries, current, look
from kfd.policy.facts import CommandFacts, LineFacts, PathFact, TreeFact
from kfd.policy.gitconfig import (
    NAMED_FILES,
    SYSTEM_FILE,
    entries_in_effect,
    repository_files,
    repository_keys,
    user_files,
    user_named_files,
)
from kfd.policy.gitindex import Tracked, index_paths, repository_tops, submodule_checkouts
from kfd.policy.gitpush import (
    PUSH,
    Configured,
    Legacy,
    configured_options,
    entry_of,
    legacy_remotes,
    remotes_file_refspecs,
)
from kfd.policy.paths import inside, instruction_links, real_path
from kfd.policy.reading import Reading, candidates, git_read, read_command
from kfd.policy.rules import PathMatcher
from kfd.policy.shell import RiskKind, SimpleCommand, analyze
from kfd.policy.shell.model import command_key
from kfd.policy.shell.redirects import SAFE_WRITE_TARGETS
from kfd.policy.tree_walk import walk
from kfd.policy.unpack_facts import unpacked, unpacking_of
from kfd.policy.word_paths import (
    MAX_BASES,
    absolute,
    looks_in_proc,
    matches,
    normal_relative,
    path_fact,
    proc_cwd,
)
from kfd.regular import read_regular

__all__ = ["MAX_GLOB_MATCHES", "MAX_TREE_ENTRIES", "line_facts", "path_fact"]

MAX_GLOB_MATCHES = 2_000
"""A glob matching more files than this is an unknown argument (too many to check)."""
MAX_TREE_ENTRIES = 20_000
"""A directory tree with more entries than this is not walked to its end (it asks)."""
MAX_SUBMODULE_DEPTH = 4
"""Submodules within submodules followed at most (deeper: the git command asks)."""
MAX_TREE_HITS = 5
"""Restricted paths named per tree (one is enough to ask)."""

_NUMERIC_PARAMETER = re.compile(r'"?\$\{?[!$?#]\}?"?')
_SOCKETS = ("/dev/tcp/", "/dev/udp/")
_REDIRECT_WRITE = RiskKind.REDIRECT_WRITE
"""Read once: an enum member looked up on its class costs 70 ns, for each of a long
line's hundreds of risks."""
_KEPT_FACTS: dict[str, dict[tuple[str, str], tuple[PathFact, str, Entries]]] = {}
"""`_Gatherer.quick_fact`'s facts between decisions, by workspace, then word and
directory: each with the directory it names an entry of (as spelled) and that
directory's `Entries`, good while `kfd.policy.entries.current` gives them again."""
_KEPT_FACTS_LIMIT = 20_000
"""Facts kept per workspace before starting over (some 5 MB)."""
_KEPT_WORKSPACES = 8
"""Workspaces facts are kept for before starting over."""


def line_facts(
    command: str,
    workspace: str,
    *,
    restricted: PathMatcher | None = None,
    path_dirs: Sequence[str] | None = None,
    home: str = "",
) -> LineFacts:
    """Analyze ``command`` and resolve everything its words may name from ``workspace``.

    ``restricted`` matches the paths read rules deny or ask about (trees are
    walked for them, git's index is read for them); ``path_dirs`` is the
    ``PATH`` commands run with (default: this process's); ``home`` where a bare
    ``cd`` goes (default: this process's).
    """
    analysis = analyze(command)
    root = real_path(workspace)
    home = home or os.path.expanduser("~")
    bases = word_paths.bases(analysis.commands, workspace, home)
    lost = bases is None
    bases = bases or [workspace]
    dirs = list(path_dirs) if path_dirs is not None else os.environ.get("PATH", "").split(":")
    links = instruction_links(workspace)
    gatherer = _Gatherer(workspace, root, bases, restricted, dirs, analysis.inputs, links, home)
    commands, distinct = _gathered(gatherer, analysis.commands)
    if len(commands) > 1:
        commands = _after_tree_rewrites(commands)
    if lost:
        why = f"the line changes directory in more ways than kfd follows ({MAX_BASES})"
        commands = [msgspec.structs.replace(c, unknown=[*c.unknown, why]) for c in commands]
    # A file named by a redirection or a writing operand, from every directory the
    # line may be in (`cd docs && echo x > notes.md` writes docs/notes.md).
    targets: dict[tuple[str, bool], None] = {}
    for redirect in analysis.redirects:
        target = redirect.target
        if redirect.static and _file(target):
            targets[target, redirect.direction != "read"] = None  # (where first met)
    named = {word for word, _ in targets}
    # The subjects of the redirections' risks are named already, most of them: the rest
    # kept, not a list of hundreds walked again.
    written = [
        risk.subject
        for risk in analysis.risks
        if risk.kind == _REDIRECT_WRITE and risk.subject not in named
    ]
    # A command met again writes what it wrote the first time (`command_key` leaves
    # out only redirections, which `_written_operands` does not read).
    written += [w for facts in distinct for w in _written_operands(facts.command)]
    written += [w for facts in distinct for w in gatherer.scoped_writes(facts.command)]
    for subject in written:
        # Writes found in options and operands (`git diff --output=x`, `tee x`).
        if subject not in named and _file(subject):
            targets.setdefault((subject, True))
            named.add(subject)
    redirects = _target_facts(gatherer, targets, bases)
    # Each distinct command once: a command's reading is its key's (words, dynamic
    # ones, open end), and a line may repeat one hundreds of times.
    if any(unpacking_of(read_command(facts.command)) for facts in distinct):
        commands = _with_unpacked(gatherer, commands, redirects, analysis.inputs)
    return LineFacts(analysis=analysis, commands=commands, redirects=redirects)


def _target_facts(
    gatherer: _Gatherer, targets: dict[tuple[str, bool], None], bases: list[str]
) -> list[PathFact]:
    """Each target (word, written) resolved from every base, each word, path and access
    once. From one base each target is one path, met once: nothing need be kept to
    tell (a line may write hundreds of files)."""
    resolve, replace = gatherer.resolve, msgspec.structs.replace  # for each of hundreds
    if len(bases) == 1:
        return [replace(resolve(word, bases[0]), write=write) for word, write in targets]
    facts: list[PathFact] = []
    seen: set[tuple[str, str, bool]] = set()
    for word, write in targets:
        for base in bases:
            fact = resolve(word, base)
            if (word, fact.path, write) not in seen:
                seen.add((word, fact.path, write))
                facts.append(replace(fact, write=write))
    return facts


def _with_unpacked(
    gatherer: _Gatherer,
    commands: list[CommandFacts],
    redirects: list[PathFact],
    inputs: list[str],
) -> list[CommandFacts]:
    """``commands`` with the files each writes from its data (`kfd.policy.unpack_facts`).

    A data file is a fact only if nothing else on the line may change it first: a
    redirection writing it, another command naming it, or a command running code
    kfd does not follow (`git apply p` after `./gen.sh`) makes its names unknown."""
    written = {fact.real for fact in redirects if fact.write is not False}
    found = _unpacking(gatherer, commands, written, inputs)
    # What the line's unpacking writes may be a data file too, its own among them: a
    # statement met again is listed once (round 26: `tar xf a.tar; tar xf a.tar` with
    # an `a.tar` inside wrote what the second reading named). Read again with those.
    members = {fact.real for cf in found for fact in cf.unpacked}
    if members - written:
        found = _unpacking(gatherer, commands, written | members, inputs)
    return found


def _unpacking(
    gatherer: _Gatherer, commands: list[CommandFacts], written: set[str], inputs: list[str]
) -> list[CommandFacts]:
    found: list[CommandFacts] = []
    for index, cf in enumerate(commands):
        reading = read_command(cf.command)
        unpacking = unpacking_of(reading)
        if unpacking is None:
            found.append(cf)
            continue
        others = [c for i, c in enumerate(commands) if i != index and c.command != cf.command]
        runs = next((c for c in others if read_command(c.command).runs_code), None)
        named = frozenset(written | {fact.real for c in others for fact in c.paths})
        reads_redirect = any(r.direction == "read" for r in cf.command.redirects)
        places = [os.path.join(b, *cf.command.chdir) for b in gatherer.bases]
        result = unpacked(
            cf.command,
            reading,
            unpacking,
            bases=places,
            tops=gatherer.repositories(cf.command) if unpacking.format == "git-patch" else [],
            resolve=gatherer.resolve,
            changed=named,
            here_documents=inputs if inputs and len(commands) == 1 and not reads_redirect else None,
        )
        unknown = [*cf.unknown, *result.unknown]
        if runs is not None:
            unknown.append(
                f"`{runs.command.source}` runs code kfd does not follow, which may change "
                "the data this command writes from"
            )
        found.append(msgspec.structs.replace(cf, unpacked=result.paths, unknown=unknown))
    return found


_TREE_WRITERS = frozenset(
    {"checkout", "switch", "restore", "reset", "merge", "pull", "rebase", "cherry-pick"}
    | {"revert", "stash", "am", "read-tree", "checkout-index", "clone", "worktree", "mv"}
    | {"submodule", "sparse-checkout", "bisect", "subtree", "filter-branch", "apply"}
)
"""git subcommands that write working-tree files from the repository's objects."""


_LINK_MAKERS = frozenset({"ln", "link", "patch"})
"""Programs that make links from their words or data: always."""
_LINK_MOVERS = frozenset({"cp", "mv", "rsync", "install"})
"""Programs that copy or move what they name: when something they name is a link
(round 26: `cp -P d/l src/l2; cat src/l2/k` with `d/l` a link to the secrets)."""


def _may_put_links(cf: CommandFacts, reading: Reading) -> bool:
    """Whether a command may leave a link where a later command's path leads."""
    program = reading.program
    if program in _LINK_MAKERS:
        return True
    if program in _LINK_MOVERS:
        return any(fact.path != fact.real for fact in cf.paths)
    if program != "git":
        return False
    path = reading.parsed.path if reading.parsed is not None else []
    return not path or path[0] in _TREE_WRITERS


def _after_tree_rewrites(commands: list[CommandFacts]) -> list[CommandFacts]:
    """``commands``, with one that may put a link in place (`_may_put_links`: git
    writing the working tree from its objects, a patch, a copy of a link), every
    other that names a path made unknown: what it names may be that link, which kfd
    cannot see beforehand (round 25: `git checkout evil -- l e; cat e l/k` read
    `.env` outside the workspace and a denied secret, in auto mode). Those before it
    too: a statement met again is listed once, and a loop runs one many times
    (round 26: `cat e; git checkout evil -- e; cat e`)."""
    maker = next((cf for cf in commands if _may_put_links(cf, read_command(cf.command))), None)
    if maker is None:
        return commands
    why = f"`{maker.command.source}` on the line may put links where its paths lead"
    return [  # (a command naming no path reads nothing such a link could redirect)
        msgspec.structs.replace(c, unknown=[*c.unknown, why])
        if c is not maker and (c.paths or c.trees)
        else c
        for c in commands
    ]


def _gathered(
    gatherer: _Gatherer, commands: list[SimpleCommand]
) -> tuple[list[CommandFacts], list[CommandFacts]]:
    """Each command's facts, gathered once per distinct command (`command_key`, kept
    in `CommandFacts.key`); and the distinct ones, each once, in order."""
    if len(commands) < 2:
        facts = [gatherer.command(c) for c in commands]
        return facts, facts
    found: dict[bytes, CommandFacts] = {}
    facts = []
    key_of, replace = command_key, msgspec.structs.replace  # for each of hundreds
    for command in commands:
        key = key_of(command)
        known = found.get(key)
        if known is None:
            known = found[key] = replace(gatherer.command(command), key=key)
            facts.append(known)
        else:
            facts.append(replace(known, command=command))
    return facts, list(found.values())


def _file(target: str) -> bool:
    """A write target that is a file (not a terminal, a null device or a socket)."""
    if not target or "\0" in target:
        return False  # a NUL cuts the name short: the analyzer's risk stands
    return target not in SAFE_WRITE_TARGETS and not target.startswith(_SOCKETS)


def _written_operands(command: SimpleCommand) -> list[str]:
    """Operands a program writes whatever its options (``tee FILE``, ``uniq IN OUT``)."""
    reading = read_command(command)
    if reading.parsed is None:
        return []
    operands = [o for o in reading.parsed.operands if o is not None]
    if "writes-operands" in reading.traits:
        return operands
    if "writes-last-operand" in reading.traits and len(operands) > 1:
        return operands[-1:]
    return []


def _prefix_operand(reading: Reading) -> bool:
    """Whether a program that takes the prefix of the names it writes as its last
    operand (``split INPUT PREFIX``) is given one."""
    if "prefix-operand" not in reading.traits or reading.parsed is None:
        return False
    return sum(1 for o in reading.parsed.operands if o is not None) > 1 or any(
        o is None for o in reading.parsed.operands
    )


class _Gatherer:
    """Resolves the words of each command of one line (caches what it walked)."""

    def __init__(
        self,
        workspace: str,
        root: str,
        bases: list[str],
        restricted: PathMatcher | None,
        path_dirs: list[str],
        inputs: list[str],
        instructions: Mapping[str, str],
        home: str = "",
    ) -> None:
        self.home = home
        self.inputs = inputs
        self.instructions = instructions
        self.workspace = workspace
        self.root = root
        self.bases = bases
        self.restricted = restricted if restricted else None
        self.path_dirs = path_dirs
        self.trees: dict[tuple[str, bool], TreeFact] = {}
        self.indexes: dict[str, Tracked | None] = {}
        self.tops: dict[tuple[str, ...], list[str]] = {}
        self.keys: dict[str, list[str]] = {}
        self.settings: dict[str | None, tuple[tuple[str, str], ...] | None] = {}
        self.resolved: dict[tuple[str, str], PathFact] = {}
        self.real_bases: dict[str, str] = {workspace: root}
        """Where each base really is (`real_base`); the workspace's is ``root``, found
        by `line_facts` the moment before (not again: a few system calls a line)."""
        self.directories: dict[str, Entries | None] = {}
        """The directories `quick_fact` looked in, by spelling, checked once a line."""
        if root not in _KEPT_FACTS and len(_KEPT_FACTS) >= _KEPT_WORKSPACES:
            _KEPT_FACTS.clear()
        self.kept_facts = _KEPT_FACTS.setdefault(root, {})
        self.plain_bases: dict[str, tuple[str, str, frozenset[str] | None]] = {}
        self.normal_bases = {
            b for b in bases if b == os.path.normpath(b) and b[:1] == "/" and b[:2] != "//"
        }
        """The bases a plain relative word can be joined to as they are."""
        self.workspace_path = _workspace_path(tuple(path_dirs), workspace, root)
        self.root_prefix = root.rstrip(os.sep) + os.sep
        """What a path under the workspace starts with (`kfd.policy.paths.inside`)."""

    def command(self, command: SimpleCommand) -> CommandFacts:
        reading = read_command(command)
        paths: dict[str, PathFact] = {}
        resolve, keep = self.resolve, paths.setdefault  # for each of hundreds of words
        for candidate in candidates(command, reading, self.inputs):
            for base in self.bases:
                fact = resolve(candidate, base)
                keep(fact.path, fact)
        if "into-directory" in reading.traits:
            for fact in self.into_directory(reading):
                paths.setdefault(fact.path, fact)
        unknown, option_matches = self.unknown_words(command, reading, paths)
        names, identity = self.identity(command)
        trees = self.walk_trees(reading, paths, command)
        index_hits = self.index_hits(reading, paths, command)
        git_config: list[str] = []
        configured = Configured()
        if reading.program == "git":
            git_config = self.git_config(command)
            for path in self.configured_reads(command, reading):
                paths.setdefault(path.path, path)
            configured = self.configured_push(command, reading)
        return CommandFacts(
            command=command,
            paths=list(paths.values()),
            unknown=unknown,
            option_matches=option_matches,
            names=names,
            identity=identity,
            trees=trees,
            index_hits=index_hits,
            git_config=git_config,
            configured=sorted(configured.options),
            maybe_configured=sorted(configured.maybe),
            from_top=not command.chdir and len(self.bases) == 1,
        )

    def resolve(self, word: str, base: str) -> PathFact:
        """`path_fact`, once per word and directory in a line.

        A fact made before (`quick_fact`) is given again while the entries of its
        directory hold: a long ``git add`` costs a few lookups a word. Where they
        are not kept (changed just now), a plain name (no ``/``) that is not in
        the directory needs no system call: nothing is there to follow (a
        script's words are mostly such).
        """
        key = (word, base)
        fact = self.resolved.get(key)
        if fact is None:
            kept = self.kept_facts.get(key)
            if kept is not None:
                fact, head, where = kept
                links = self.instructions
                if (self.directories.get(head) is where or self.entries_at(head) is where) and (
                    not links or links.get(fact.real, "") == fact.instruction
                ):
                    return fact  # as good as new, and quicker to find again
                fact = None
            if "/" not in word and word != "." and word != ".." and not self.kept_at(base):
                spelled, real_prefix, names = self.plain_bases.get(base) or self.plain_base(base)
                if names is not None and word not in names:
                    real = real_prefix + word
                    fact = PathFact(
                        word=word,
                        path=spelled + word
                        if spelled
                        else os.path.normpath(os.path.join(base, word)),
                        real=real,
                        inside=real == self.root or real.startswith(self.root_prefix),
                        instruction=self.instructions.get(real, ""),
                    )
            if fact is None:
                fact = self.quick_fact(word, base) or path_fact(
                    word, base, self.root, instructions=self.instructions
                )
            self.resolved[key] = fact
        return fact

    def quick_fact(self, word: str, base: str) -> PathFact | None:
        """`path_fact` for a path whose last component is not a symlink, from its
        directory's entries (`kfd.policy.entries`), which are checked once a line (a
        long ``git add`` names hundreds of files in a few directories); the fact is
        kept with them for `resolve` to give again while they hold. None when the
        last component is a symlink (or the path a root): `path_fact`."""
        if base in self.normal_bases and normal_relative(word):
            path = f"{base}/{word}" if base != "/" else f"/{word}"  # what `absolute` gives
        elif ".." in word.split("/"):
            return None  # past a link, `..` is where the kernel goes, not the spelling
        else:
            path = absolute(word, base)
        head, _, name = path.rpartition("/")
        head = head or "/"
        if not name or "\0" in path:
            return None
        entries = self.entries_at(head)
        if entries is None:
            real_head = self.real_bases.get(head) or self.real_base(head)
            real = f"{real_head}/{name}" if real_head != "/" else f"/{name}"
            entry = look(real)
        else:
            real, entry = entries.prefix + name, entries.entry(name)
        if entry is None:
            return None  # a symbolic link
        kind, links = entry
        fact = PathFact(
            word=word,
            path=path,
            real=real,
            inside=real == self.root or real.startswith(self.root_prefix),
            links=links,
            kind=kind,
            instruction=self.instructions.get(real, ""),
        )
        if entries is not None and entries.kept:
            if len(self.kept_facts) >= _KEPT_FACTS_LIMIT:
                self.kept_facts.clear()
            self.kept_facts[word, base] = (fact, head, entries)
        return fact

    def kept_at(self, base: str) -> bool:
        """Whether a plain name in ``base`` is better found by `quick_fact`: the base's
        entries are kept (the name's fact will be), and it is spelled as it is."""
        if base not in self.normal_bases:
            return False
        entries = self.entries_at(base)
        return entries is not None and entries.kept

    def entries_at(self, head: str) -> Entries | None:
        """The entries of directory ``head`` (as spelled) now, checked once a line."""
        entries = self.directories.get(head)
        if entries is None and head not in self.directories:
            real = self.real_bases.get(head) or self.real_base(head)
            entries = self.directories[head] = current(real)
        return entries

    def plain_base(self, base: str) -> tuple[str, str, frozenset[str] | None]:
        """What `resolve` joins a plain name to in ``base``, found once per line: the
        base's spelling as `absolute` gives it (empty where `os.path.normpath` must
        make it), its real path, both ending in ``/``, and the names in it (None:
        not known, `listing`)."""
        spelled = "" if base not in self.normal_bases else base + "/" if base != "/" else "/"
        real = self.real_base(base)
        real = real + "/" if real != "/" else "/"
        plain = self.plain_bases[base] = (spelled, real, self.listing(base))
        return plain

    @staticmethod
    def listing(base: str) -> frozenset[str] | None:
        """The names in ``base`` (for `plain_base`, which keeps them for the line): none
        where nothing is there (or a file is); None where it cannot be listed (no read
        permission, a loop): a name there may be anything, a link to ``.env`` too, and
        is looked up as any path."""
        try:
            return frozenset(os.listdir(base))
        except OSError as error:
            return frozenset() if error.errno in (errno.ENOENT, errno.ENOTDIR) else None
        except ValueError:
            return None

    def real_base(self, base: str) -> str:
        real = self.real_bases.get(base)
        if real is None:
            real = self.real_bases[base] = real_path(base)
        return real

    def unknown_words(
        self, command: SimpleCommand, reading: Reading, paths: dict[str, PathFact]
    ) -> tuple[list[str], list[str]]:
        """Why arguments are only known when it runs, and the glob matches it would
        read as options (`CommandFacts.option_matches`)."""
        unknown: list[str] = []
        options: list[str] = []
        if reading.text:
            return unknown, options  # `echo $HOME`: printed, never a path
        for index, reason in command.dynamic.items():
            word = command.argv[index]
            pattern = command.patterns.get(index)
            if index == 0:
                continue
            if _NUMERIC_PARAMETER.fullmatch(word):
                continue  # `$!`, `$$`, `$?`, `$#`: a number, never a path
            if pattern is not None and not reading.text:
                matched = self.expand(pattern)
                if isinstance(matched, str):
                    unknown.append(f"{word} {matched}")
                    matched = []
                for fact in matched:
                    paths.setdefault(fact.path, fact)
                    if fact.word.startswith("-") or "/-" in fact.word[:1]:
                        # `rm *` with a file named `-rf`: the program reads an option.
                        options.append(f"{word} matches {fact.word}, read as an option")
            elif pattern is not None:
                continue  # `echo *`: text, never read
            else:
                unknown.append(f"{word}: {reason}")
        if "\0" in "".join(command.argv):  # all words at once: a line may have a thousand
            for index, word in enumerate(command.argv):
                if "\0" in word and index not in command.dynamic:
                    unknown.append(f"{word!r} holds a NUL character")
        if command.open_ended:
            unknown.append("more arguments are added when it runs (xargs, find -exec)")
        if "lists" in reading.effects:
            unknown.append(
                "it reads files named where kfd cannot check them: in another file, on its "
                "input, by patterns (--files0-from, -T, zip -@ or -R)"
            )
        if "anywhere" in reading.effects:
            unknown.append("it writes where its input names, outside the workspace too (tar -P)")
        if "prefix" in reading.effects or _prefix_operand(reading):
            unknown.append(
                "it writes files under names it makes from a prefix as it runs (csplit -f, "
                "split's prefix, git checkout-index --prefix)"
            )
        return unknown, options

    def expand(self, pattern: str) -> list[PathFact] | str:
        """The files a glob names, as bash expands it (hidden files only when the
        pattern starts a name with a dot, as Python's glob does too), or why they
        cannot be known.

        A pattern that goes up (``..``) through a directory missing now names what
        it would once an earlier command of the line made the directory: the
        pattern is also read with its ``..`` taken lexically, as a path through a
        missing directory is (``mkdir d; cat d/../.e*`` read ``.env``). A pattern
        that looks in ``/proc`` is not expanded by the daemon (`looks_in_proc`),
        but for ``/proc/self/cwd``, the command's directory."""
        facts: list[PathFact] = []
        patterns = [pattern]
        if ".." in pattern.split("/"):
            patterns.append(os.path.normpath(pattern))
        for base in self.bases:
            for spelling in dict.fromkeys(patterns):
                if spelling.startswith("/"):
                    spelling = proc_cwd(spelling, base)
                if looks_in_proc(spelling, base):
                    return (
                        "looks in /proc, where every process sees directories of its own: "
                        "kfd cannot expand it as the command will"
                    )
                for index, match in enumerate(matches(spelling, base)):
                    if index >= MAX_GLOB_MATCHES:
                        return f"matches more than {MAX_GLOB_MATCHES} files"
                    facts.append(self.resolve(match, base))
        return facts

    def identity(self, command: SimpleCommand) -> tuple[list[str], str]:
        """The program names the command may run, and why it may be any program."""
        if not command.argv or 0 in command.dynamic:
            return [], ""
        program = command.argv[0]
        name = os.path.basename(program)
        if "/" not in program:
            for directory in self.workspace_path:
                if os.path.lexists(os.path.join(self.workspace, directory, program)):
                    return [name], f"{program} is found in the workspace through PATH"
            return [], ""
        # The line may run it from any of its directories: every one counts.
        names: list[str] = [name]
        why = ""
        for base in self.bases:
            real = real_path(os.path.join(base, program))
            if not os.path.exists(real):
                why = why or f"{program} does not exist yet: it may become any program"
            elif inside(real, self.root):
                why = why or f"{program} is a program in the workspace: it may be any program"
            else:
                # Every name along the links counts (./npm2 -> /usr/bin/npm ->
                # ../lib/node_modules/npm/bin/npm-cli.js is npm).
                for target in _link_names(os.path.join(base, program), real):
                    if target not in ("busybox", "toybox", *names):
                        names.append(target)
        return names, why

    def walk_trees(
        self, reading: Reading, paths: dict[str, PathFact], command: SimpleCommand
    ) -> list[TreeFact]:
        restricted = self.restricted
        if restricted is None or not (reading.reads_trees or reading.follows_links):
            # A lister that follows links (`find -L`, `ls -RL`) reads names wherever
            # they lead: its trees are walked for links too.
            return []
        # Every directory it names, but those only given as an option's value
        # (`tar -C dir`, `--exclude-dir=x`): over-asking is the safe side.
        values: set[str] = set()
        parsed = reading.parsed
        if parsed is not None:
            # A directory given to an option the program reads (`diff --from-file=DIR
            # NAME` reads DIR/NAME) is a tree it reads.
            spec = parsed.current
            read = {v for n, v in parsed.values if "reads" in spec.effect(n)}
            values = {v for _, v in parsed.values} - set(reading.path_operands()) - read
        roots = [f for f in paths.values() if f.kind == "dir" and f.word not in values]
        default = reading.default_tree()
        if default:
            roots += [self.resolve(default, base) for base in self.bases]
        follow = reading.follows_links
        return [self.tree(fact, restricted, follow) for fact in roots]

    def tree(self, fact: PathFact, restricted: PathMatcher, follow: bool) -> TreeFact:
        key = (fact.real, follow)
        cached = self.trees.get(key)
        if cached is None:
            found = walk(
                fact.real,
                fact.path,
                restricted,
                max_entries=MAX_TREE_ENTRIES,
                max_hits=MAX_TREE_HITS,
                links=follow,
            )
            cached = self.trees[key] = TreeFact(
                root=fact.word,
                hits=found.hits,
                complete=found.complete,
                links=found.links,
                linked=found.linked,
            )
        return cached

    def index_hits(
        self, reading: Reading, paths: dict[str, PathFact], command: SimpleCommand
    ) -> list[str] | None:
        """The tracked files a read rule restricts that a ``git diff``/``git grep``
        may print (relative to the workspace), in every repository git may find
        from where the command runs (``git -C nested``, ``cd nested &&``), and in
        their submodules' checkouts; None when kfd cannot tell."""
        read = git_read(reading, lambda: {fact.word: fact.kind for fact in paths.values()})
        if read is None or read.source != "index":
            return []
        hits: list[str] = []
        for real in self.repositories(command):
            if not inside(real, self.root):
                return None  # a repository kfd does not read the index of
            shown = os.path.relpath(real, self.root)
            top = os.path.normpath(os.path.join(self.workspace, shown))
            if top not in self.indexes:
                self.indexes[top] = index_paths(top)
            tracked = self.indexes[top]
            if tracked is None:
                return None
            if self.restricted is None:
                continue
            hits += [
                os.path.normpath(os.path.join(shown, p))
                for p in tracked.paths
                if self.restricted(os.path.join(top, p))
            ]
            for submodule in tracked.submodules:
                found = walk(
                    os.path.join(top, submodule),
                    os.path.normpath(os.path.join(shown, submodule)),
                    self.restricted,
                    max_entries=MAX_TREE_ENTRIES,
                    max_hits=MAX_TREE_HITS,
                )
                if not found.complete:
                    return None
                hits += found.hits
        return hits[:MAX_TREE_HITS]

    def git_config(self, command: SimpleCommand) -> list[str]:
        """What makes git run a program in the configuration of each repository
        ``command`` may run in (`kfd.policy.gitconfig`)."""
        found: list[str] = []
        for top in self.repositories(command):
            if top not in self.keys:  # once per line: `git add a && git commit` reads it once
                self.keys[top] = repository_keys(top, self.home) + self.submodule_keys(top)
            found += self.keys[top]
        return found

    def configured_push(self, command: SimpleCommand, reading: Reading) -> Configured:
        """The options a ``git push`` has by the configuration git reads in each
        repository it may run in (`kfd.policy.gitpush`), its ``-c`` ones last."""
        parsed = reading.parsed
        if parsed is None or parsed.path != PUSH:
            return Configured()
        given = [entry_of(c) for c in command.git_config if not c.startswith("--")]
        unreadable = len(given) < len(command.git_config)  # --config-env: a value unknown
        tops: list[str | None] = [*self.repositories(command)] or [None]
        found = []
        for top in tops:
            entries = self.entries(top)
            known = None if entries is None or unreadable else [*entries, *given]
            legacy = _legacy_remotes(top, legacy_remotes(parsed, known)) if top else {}
            found.append(configured_options(parsed, known, legacy))
        options = frozenset.intersection(*(f.options for f in found))
        maybe = frozenset().union(*(f.options | f.maybe for f in found)) - options
        return Configured(options, maybe)

    def scoped_writes(self, command: SimpleCommand) -> list[str]:
        """The files a command writes without naming them, by the scope it writes
        (`kfd.policy.reading.Reading.written_scopes`): for ``git config``, the
        repository's own configuration (in every repository it may run in; ``.git/config``
        where it finds none), the user's, or the system's."""
        found: list[str] = []
        for scope in read_command(command).written_scopes():
            if scope == "global":
                found += user_files(self.home)
            elif scope == "system":
                found.append(SYSTEM_FILE)
            else:  # the repository's own: local, worktree, or a scope kfd does not know
                for top in self.repositories(command):
                    found += repository_files(top) or [os.path.join(top, ".git", "config")]
                if not self.repositories(command):
                    found += [os.path.join(b, *command.chdir, ".git", "config") for b in self.bases]
        return found

    def entries(self, top: str | None) -> tuple[tuple[str, str], ...] | None:
        """`entries_in_effect` in the repository at ``top``, once per line."""
        if top not in self.settings:
            self.settings[top] = entries_in_effect(top, self.home)
        return self.settings[top]

    def submodule_keys(self, top: str, depth: int = 0) -> list[str]:
        """`repository_keys` of the submodule checkouts git enters from ``top``
        (`submodule_checkouts`), and of theirs, `MAX_SUBMODULE_DEPTH` deep."""
        checkouts = submodule_checkouts(top)
        if checkouts is None:
            return [f"{top}/.git (kfd cannot read its index to find the submodules git enters)"]
        found: list[str] = []
        for checkout in checkouts:
            if depth >= MAX_SUBMODULE_DEPTH:
                return [f"{checkout} (submodules nested deeper than kfd follows)"]
            found += repository_keys(checkout, self.home)
            found += self.submodule_keys(checkout, depth + 1)
        return found

    def into_directory(self, reading: Reading) -> list[PathFact]:
        """The paths ``cp a b DIR`` (``-t DIR``, ``mv``, ``ln``, ``install``) writes
        in DIR, named by no word: ``DIR/a``, ``DIR/b`` (`cp proj/.gitconfig .` in a
        home workspace writes ``~/.gitconfig``)."""
        parsed = reading.parsed
        if parsed is None:
            return []
        operands = [o for o in parsed.operands if o is not None]
        named = [v for n, v in parsed.values if n == "target-directory"]
        pairs = [(d, operands) for d in named] or (
            [(operands[-1], operands[:-1])] if len(operands) > 1 else []
        )
        found: list[PathFact] = []
        for directory, sources in pairs:
            for base in self.bases:
                if self.resolve(directory, base).kind != "dir":
                    continue
                for source in sources:
                    name = os.path.basename(source.rstrip("/"))
                    if name not in ("", ".", ".."):
                        found.append(self.resolve(os.path.join(directory, name), base))
        return found

    def configured_reads(self, command: SimpleCommand, reading: Reading) -> list[PathFact]:
        """The files the user's own git configuration has this git command read in
        the repositories it may run in (`NAMED_FILES`: ``.git-blame-ignore-revs``),
        which the repository may have made a link to anything: read paths like any
        other. A subcommand kfd cannot name may be any."""
        path = reading.parsed.path if reading.parsed is not None else []
        subcommand = path[0] if path else ""
        named = [
            value
            for key, value in (user_named_files(self.home) if self.home else ())
            if not subcommand or subcommand in NAMED_FILES[key]
        ]
        facts: list[PathFact] = []
        for top in self.repositories(command) if named else ():
            spelled = os.path.normpath(
                os.path.join(self.workspace, os.path.relpath(top, self.root))
            )
            for name in named:
                if name.startswith("~/"):
                    name = os.path.join(self.home, name[2:])
                facts.append(self.resolve(name, spelled))
        return facts

    def repositories(self, command: SimpleCommand) -> list[str]:
        """The repository tops git may use from the directories ``command`` may run
        in (`repository_tops`); found once per line for each ``git -C`` path, since
        a git command asks for them up to three times (index, configuration, files
        the user's configuration names)."""
        key = tuple(command.chdir)
        tops = self.tops.get(key)
        if tops is None:
            directories = [real_path(os.path.join(base, *key)) for base in self.bases]
            found = [top for d in directories for top in repository_tops(d)]
            tops = self.tops[key] = list(dict.fromkeys(found))
        return tops


MAX_REMOTES_FILE = 64 * 1024
"""The most of a ``$GIT_DIR/remotes/<name>`` file kfd reads (larger: unreadable)."""


def _legacy_remotes(top: str, names: Sequence[str]) -> Legacy:
    """The ``Push:`` refspecs of the ``remotes/<name>`` file of each of ``names`` in the
    common git directory of the repository at ``top`` (`kfd.policy.gitpush`): empty
    where there is none, None where kfd cannot read it (not a regular file, too large,
    denied, or the git directory itself unknown)."""
    if not names:
        return {}
    own = repository_files(top)
    if own is None:
        return dict.fromkeys(names)
    common = os.path.dirname(own[0])
    found: dict[str, tuple[str, ...] | None] = {}
    for name in names:
        try:
            data = read_regular(os.path.join(common, "remotes", name), MAX_REMOTES_FILE)
        except (FileNotFoundError, NotADirectoryError):
            found[name] = ()  # git reads no file: nothing more to push
        except OSError:
            found[name] = None
        else:
            found[name] = remotes_file_refspecs(data.decode("utf-8", "surrogateescape"))
    return found


def _link_names(path: str, real: str, limit: int = 40) -> list[str]:
    """The names a program is reached by: each link's target along the chain from
    ``path``, and the file itself (``real``, its real path)."""
    names: list[str] = []
    current = path
    for _ in range(limit):
        try:
            target = os.readlink(current)
        except OSError:
            break  # not a link (or gone): the chain ends here
        current = os.path.join(os.path.dirname(current), target)
        names.append(os.path.basename(target.rstrip("/")))
    name = os.path.basename(real)
    if name not in names:
        names.append(name)
    return names


@functools.lru_cache(maxsize=64)
def _workspace_path(path_dirs: tuple[str, ...], workspace: str, root: str) -> list[str]:
    """The ``PATH`` entries the workspace controls: a bare name found there may be anything."""
    return [
        d
        for d in path_dirs
        if not d or not os.path.isabs(d) or inside(real_path(os.path.join(workspace, d)), root)
    ]
